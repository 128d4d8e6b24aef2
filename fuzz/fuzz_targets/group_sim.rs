//! Stateful fuzzing of the group state machine: arbitrary sequences of group
//! operations and faults, driven through the deterministic simulation.
//!
//! Checked on every run: nothing panics; no member receives a group message
//! twice; no event names a member that does not exist; and once everything
//! settled, the members that completed their join and still hold the group
//! all see the same member set.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event};
use smp_groups_wire::agent::MemberId;

#[derive(Arbitrary, Debug)]
enum Op {
    Add { by: u8, who: u8 },
    Send { by: u8, len: u16 },
    Ack,
    Leave(u8),
    Remove { by: u8, who: u8 },
    Delete(u8),
    Crash(u8),
    Run(u16),
}

#[derive(Arbitrary, Debug)]
struct Script {
    agents: u8,
    loss: u16,
    duplicate: u16,
    delay: u8,
    seed: u64,
    open_invitations: bool,
    ops: Vec<Op>,
}

fn pick(list: &[usize], i: u8) -> Option<usize> {
    (!list.is_empty()).then(|| list[usize::from(i) % list.len()])
}

fn holds(sim: &Sim, h: &GroupHandle) -> bool {
    sim.agent(h.agent).is_some_and(|a| a.groups().contains(&h.alias))
}

fuzz_target!(|script: Script| {
    let n = 2 + usize::from(script.agents % 4);
    let faults = Faults {
        loss_ppm: u32::from(script.loss % 50_000),
        duplicate_ppm: u32::from(script.duplicate % 50_000),
        max_delay_ms: u64::from(script.delay),
    };
    let config = Config {
        check_interval_ms: None,
        check_every_messages: Some(3),
        check_window: 32,
        open_invitations: script.open_invitations,
        pending_member_ttl_ms: 120_000,
        max_message_len: 40_000,
        ..Config::default()
    };
    let mut sim = Sim::new(n, &config, faults, script.seed);
    let Some(first) = sim.create_group(0) else { panic!("create") };
    let mut handles: BTreeMap<usize, GroupHandle> = BTreeMap::from([(0, first)]);
    let mut ids: BTreeSet<MemberId> = BTreeSet::new();
    let mut departed = BTreeSet::new();
    let mut acked: BTreeMap<usize, usize> = BTreeMap::new();
    let mut k = 0u32;
    for op in script.ops.iter().take(12) {
        for (i, h) in &handles {
            if let Some(id) = sim.agent(*i).and_then(|a| a.member_id(&h.alias)) {
                ids.insert(id);
            }
        }
        let holders: Vec<usize> = handles.iter().filter(|(_, h)| holds(&sim, h)).map(|(i, _)| *i).collect();
        let outside: Vec<usize> = (0..n).filter(|i| !handles.contains_key(i)).collect();
        match *op {
            Op::Add { by, who } => {
                if let (Some(by), Some(who)) = (pick(&holders, by), pick(&outside, who))
                    && sim.is_up(who)
                    && let Some(h) = handles.get(&by).cloned()
                    && let Some(nh) = sim.invite(&h, who)
                {
                    handles.insert(who, nh);
                }
            }
            Op::Send { by, len } => {
                if let Some(by) = pick(&holders, by) {
                    k += 1;
                    let mut body = format!("m{k}:").into_bytes();
                    body.resize(body.len() + usize::from(len % 36_000), b'x');
                    let group = handles[&by].alias.clone();
                    sim.command(by, Command::Send { group, body });
                }
            }
            Op::Ack => {
                for (i, h) in &handles {
                    if !sim.is_up(*i) {
                        continue;
                    }
                    let start = acked.get(i).copied().unwrap_or(0);
                    let msgs: Vec<u64> = sim.events(*i)[start..]
                        .iter()
                        .filter_map(|e| match &e.event {
                            Event::Msg { msg_id, .. } => Some(*msg_id),
                            _ => None,
                        })
                        .collect();
                    acked.insert(*i, sim.events(*i).len());
                    for msg_id in msgs {
                        sim.command(*i, Command::Ack { group: h.alias.clone(), msg_id });
                    }
                }
            }
            Op::Leave(i) => {
                if let Some(i) = pick(&holders, i) {
                    sim.command(i, Command::Leave { group: handles[&i].alias.clone() });
                    departed.insert(i);
                }
            }
            Op::Remove { by, who } => {
                if let (Some(by), Some(who)) = (pick(&holders, by), pick(&holders, who))
                    && by != who
                    && let Some(member) = sim.agent(who).and_then(|a| a.member_id(&handles[&who].alias))
                {
                    sim.command(by, Command::Remove { group: handles[&by].alias.clone(), member });
                    departed.insert(who);
                }
            }
            Op::Delete(i) => {
                if let Some(i) = pick(&holders, i) {
                    sim.command(i, Command::Delete { group: handles[&i].alias.clone() });
                    departed.extend(handles.keys().copied());
                }
            }
            Op::Crash(i) => {
                let i = usize::from(i) % n;
                if i != 0 {
                    sim.crash(i);
                }
            }
            Op::Run(ms) => {
                let t = sim.now() + u64::from(ms);
                sim.run_until(t);
                for i in 0..n {
                    if !sim.is_up(i) {
                        sim.restart(i).expect("restore");
                    }
                }
            }
        }
    }
    for i in 0..n {
        if !sim.is_up(i) {
            sim.restart(i).expect("restore");
        }
    }
    sim.settle_all();

    for (i, h) in &handles {
        if let Some(id) = sim.agent(*i).and_then(|a| a.member_id(&h.alias)) {
            ids.insert(id);
        }
    }
    for i in 0..n {
        let mut got = BTreeSet::new();
        for e in sim.events(i) {
            let named: Vec<MemberId> = match &e.event {
                Event::Msg { member, body, .. } => {
                    assert!(got.insert((*member, body.clone())), "seed {}: duplicate delivery", script.seed);
                    vec![*member]
                }
                Event::GroupCon { member, .. } => vec![*member],
                Event::Mem { member, .. } | Event::Left { member, .. } => member.iter().copied().collect(),
                Event::Removed { member, by, .. } => std::iter::once(*member).chain(*by).collect(),
                Event::Out { by, .. } => vec![*by],
                _ => vec![],
            };
            for m in named {
                assert!(ids.contains(&m), "seed {}: unknown member {m}", script.seed);
            }
        }
    }
    let views: BTreeSet<BTreeSet<MemberId>> = handles
        .iter()
        .filter(|(i, h)| holds(&sim, h) && !departed.contains(*i))
        .filter(|(i, _)| **i == 0 || sim.events(**i).iter().any(|e| matches!(e.event, Event::Mem { member: None, .. })))
        .filter_map(|(i, h)| {
            let a = sim.agent(*i)?;
            let mut v: BTreeSet<MemberId> = a.members(&h.alias).into_iter().collect();
            v.extend(a.member_id(&h.alias));
            Some(v)
        })
        .collect();
    assert!(views.len() <= 1, "seed {}: members diverge: {views:?}", script.seed);
});
