//! Property tests over random operation sequences with faults: convergence,
//! exactly-once delivery, no event naming an unknown entity, no panic.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::ack_all;
use proptest::prelude::*;
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event};
use smp_groups_wire::agent::MemberId;

#[derive(Clone, Debug)]
enum Op {
    Add { by: usize, who: usize },
    Send { by: usize },
    Leave(usize),
    Remove { by: usize, who: usize },
    Crash(usize),
    Run(u16),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..n, 0..n).prop_map(|(by, who)| Op::Add { by, who }),
        4 => (0..n).prop_map(|by| Op::Send { by }),
        1 => (0..n).prop_map(Op::Leave),
        1 => (0..n, 0..n).prop_map(|(by, who)| Op::Remove { by, who }),
        1 => (0..n).prop_map(Op::Crash),
        3 => (0u16..2000).prop_map(Op::Run),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, Faults, u64)> {
    (3usize..=8).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..30),
            (0u32..30_000, 0u32..30_000, 0u64..300).prop_map(|(l, d, m)| Faults {
                loss_ppm: l,
                duplicate_ppm: d,
                max_delay_ms: m,
            }),
            any::<u64>(),
        )
    })
}

struct Sent {
    sender: MemberId,
    body: Vec<u8>,
    /// Agents whose member id the sender knew when it sent.
    to: BTreeSet<usize>,
    sender_agent: usize,
}

struct Run {
    sim: Sim,
    handles: BTreeMap<usize, GroupHandle>,
    ids: BTreeMap<usize, MemberId>,
    departed: BTreeSet<usize>,
    sent: Vec<Sent>,
}

impl Run {
    fn holds(&self, i: usize) -> bool {
        match (self.handles.get(&i), self.sim.agent(i)) {
            (Some(h), Some(a)) => a.groups().contains(&h.alias),
            _ => false,
        }
    }

    fn id_of(&mut self, i: usize) -> Option<MemberId> {
        if let Some(id) = self.ids.get(&i) {
            return Some(*id);
        }
        let h = self.handles.get(&i)?;
        let id = self.sim.agent(i)?.member_id(&h.alias)?;
        self.ids.insert(i, id);
        Some(id)
    }

    /// Agents holding the group, in order: operations pick among them.
    fn holders(&self) -> Vec<usize> {
        self.handles
            .keys()
            .copied()
            .filter(|i| self.holds(*i))
            .collect()
    }

    fn pick(list: &[usize], i: usize) -> Option<usize> {
        (!list.is_empty()).then(|| list[i % list.len()])
    }

    fn apply(&mut self, op: &Op, k: usize) {
        let holders = self.holders();
        let outside: Vec<usize> = (0..self.sim.len())
            .filter(|i| !self.handles.contains_key(i))
            .collect();
        let op = match *op {
            Op::Add { by, who } => match (Self::pick(&holders, by), Self::pick(&outside, who)) {
                (Some(by), Some(who)) => Op::Add { by, who },
                _ => return,
            },
            Op::Send { by } => match Self::pick(&holders, by) {
                Some(by) => Op::Send { by },
                None => return,
            },
            Op::Leave(i) => match Self::pick(&holders, i) {
                Some(i) => Op::Leave(i),
                None => return,
            },
            Op::Remove { by, who } => match (Self::pick(&holders, by), Self::pick(&holders, who)) {
                (Some(by), Some(who)) => Op::Remove { by, who },
                _ => return,
            },
            ref other => other.clone(),
        };
        match op {
            Op::Add { by, who } => {
                if !self.holds(by) || self.handles.contains_key(&who) || !self.sim.is_up(who) {
                    return;
                }
                let Some(h) = self.handles.get(&by).cloned() else {
                    return;
                };
                if let Some(nh) = self.sim.invite(&h, who) {
                    self.handles.insert(who, nh);
                    self.id_of(who);
                }
            }
            Op::Send { by } => {
                if !self.holds(by) {
                    return;
                }
                let Some(h) = self.handles.get(&by).cloned() else {
                    return;
                };
                let Some(sender) = self.id_of(by) else { return };
                let known: BTreeSet<MemberId> = self
                    .sim
                    .agent(by)
                    .map(|a| a.known_members(&h.alias))
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let to = self
                    .ids
                    .iter()
                    .filter(|(_, id)| known.contains(id))
                    .map(|(i, _)| *i)
                    .collect();
                let body = format!("m{k}").into_bytes();
                self.sim.command(
                    by,
                    Command::Send {
                        group: h.alias,
                        body: body.clone(),
                    },
                );
                self.sent.push(Sent {
                    sender,
                    body,
                    to,
                    sender_agent: by,
                });
            }
            Op::Leave(i) => {
                if !self.holds(i) {
                    return;
                }
                let Some(h) = self.handles.get(&i).cloned() else {
                    return;
                };
                self.sim.command(i, Command::Leave { group: h.alias });
                self.departed.insert(i);
            }
            Op::Remove { by, who } => {
                if by == who || !self.holds(by) || !self.handles.contains_key(&who) {
                    return;
                }
                let Some(member) = self.id_of(who) else {
                    return;
                };
                let Some(h) = self.handles.get(&by).cloned() else {
                    return;
                };
                if !self
                    .sim
                    .agent(by)
                    .is_some_and(|a| a.known_members(&h.alias).contains(&member))
                {
                    return;
                }
                self.sim.command(
                    by,
                    Command::Remove {
                        group: h.alias,
                        member,
                    },
                );
                self.departed.insert(who);
            }
            Op::Crash(i) => {
                if i != 0 {
                    self.sim.crash(i);
                }
            }
            Op::Run(ms) => {
                let t = self.sim.now() + u64::from(ms);
                self.sim.run_until(t);
                self.restart_all();
            }
        }
    }

    fn restart_all(&mut self) {
        for i in 0..self.sim.len() {
            if !self.sim.is_up(i) {
                self.sim.restart(i).expect("restore");
            }
        }
    }
}

fn check(n: usize, ops: &[Op], faults: Faults, seed: u64) -> Result<(), TestCaseError> {
    let cfg = Config {
        check_interval_ms: None,
        check_every_messages: Some(4),
        check_window: 64,
        pending_member_ttl_ms: 120_000,
        ..Config::default()
    };
    let mut sim = Sim::new(n, &cfg, faults, seed);
    for b in 1..n {
        for a in 0..b {
            prop_assert!(sim.connect(a, b).is_some(), "seed {seed}: connect");
        }
    }
    let first = sim.create_group(0).expect("group");
    let mut run = Run {
        sim,
        handles: BTreeMap::from([(0, first)]),
        ids: BTreeMap::new(),
        departed: BTreeSet::new(),
        sent: Vec::new(),
    };
    run.id_of(0);
    for (k, op) in ops.iter().enumerate() {
        run.apply(op, k);
    }
    run.restart_all();
    run.sim.settle_all();
    let hs: Vec<GroupHandle> = run.handles.values().cloned().collect();
    let mut seen = BTreeMap::new();
    ack_all(&mut run.sim, &hs, &mut seen);
    run.sim.settle_all();

    // Members whose join completed and who still hold the group.
    let remaining: Vec<usize> = run
        .handles
        .keys()
        .copied()
        .filter(|i| run.holds(*i) && !run.departed.contains(i))
        .filter(|i| {
            *i == 0
                || run
                    .sim
                    .events(*i)
                    .iter()
                    .any(|e| matches!(e.event, Event::Mem { member: None, .. }))
        })
        .collect();
    // 1. Convergence.
    let views: BTreeMap<usize, BTreeSet<MemberId>> = remaining
        .iter()
        .map(|i| {
            let h = &run.handles[i];
            let a = run.sim.agent(*i).expect("up");
            let mut v: BTreeSet<MemberId> = a.members(&h.alias).into_iter().collect();
            v.extend(a.member_id(&h.alias));
            (*i, v)
        })
        .collect();
    let mut distinct: Vec<&BTreeSet<MemberId>> = views.values().collect();
    distinct.dedup();
    prop_assert!(distinct.len() <= 1, "seed {seed}: views differ: {views:?}");

    // 2. Exactly once, to every member present at send time that remains.
    for s in &run.sent {
        if !remaining.contains(&s.sender_agent) {
            continue;
        }
        for r in &s.to {
            if !remaining.contains(r) {
                continue;
            }
            let got = run
                .sim
                .events(*r)
                .iter()
                .filter(|e| matches!(&e.event, Event::Msg { member, body, .. } if *member == s.sender && *body == s.body))
                .count();
            prop_assert_eq!(
                got,
                1,
                "seed {}: {:?} from {} to {}",
                seed,
                String::from_utf8_lossy(&s.body),
                s.sender_agent,
                r
            );
        }
    }
    // No agent receives a message twice.
    for i in 0..n {
        let mut bodies = BTreeSet::new();
        for e in run.sim.events(i) {
            if let Event::Msg { member, body, .. } = &e.event {
                prop_assert!(
                    bodies.insert((*member, body.clone())),
                    "seed {seed}: agent {i} got a duplicate"
                );
            }
        }
    }
    // 3. No event names an unknown member or group.
    let known: BTreeSet<MemberId> = run.ids.values().copied().collect();
    for i in 0..n {
        let alias = run.handles.get(&i).map(|h| h.alias.clone());
        for e in run.sim.events(i) {
            let (group, members): (Option<&String>, Vec<MemberId>) = match &e.event {
                Event::GroupCon { group, member } | Event::Msg { group, member, .. } => {
                    (Some(group), vec![*member])
                }
                Event::Mem { group, member }
                | Event::Left { group, member }
                | Event::Sent { group, member, .. }
                | Event::Rcvd { group, member, .. } => {
                    (Some(group), member.iter().copied().collect())
                }
                Event::Removed { group, member, by } => {
                    (Some(group), std::iter::once(*member).chain(*by).collect())
                }
                Event::Out { group, by } => (Some(group), vec![*by]),
                Event::Deleted { group, by } => (Some(group), by.iter().copied().collect()),
                Event::Empty { group } => (Some(group), vec![]),
                _ => (None, vec![]),
            };
            if let Some(g) = group {
                prop_assert_eq!(
                    Some(g),
                    alias.as_ref(),
                    "seed {}: agent {} names group {}",
                    seed,
                    i,
                    g
                );
            }
            for m in members {
                prop_assert!(
                    known.contains(&m),
                    "seed {seed}: agent {i} names unknown member {m}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CORE_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_with_faults((n, ops, faults, seed) in scenario()) {
        check(n, &ops, faults, seed)?;
    }
}
