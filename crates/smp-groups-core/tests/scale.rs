//! A group grown one member at a time to 64 under loss, duplicates,
//! reordering and restarts; then every member sends. Everyone must converge on
//! the same 64 members, every message must reach every other member exactly
//! once, every send must complete, and no `VIOLATION` may be reported.
//! `SCALE_SEED` repeats a run (the seed is printed).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, Config, Event, ReceiptStatus};
use smp_groups_wire::agent::MemberId;

const N: usize = 64;

#[test]
fn group_of_64_under_faults_and_restarts() {
    let seed = std::env::var("SCALE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    eprintln!("SCALE_SEED={seed}");
    let cfg = Config {
        check_interval_ms: None,
        check_every_messages: Some(32),
        check_window: 64,
        approval_threshold: 2 * N,
        ..Config::default()
    };
    let faults = Faults {
        loss_ppm: 5_000,
        duplicate_ppm: 5_000,
        max_delay_ms: 50,
    };
    let mut sim = Sim::new(N, &cfg, faults, seed);
    let first = sim.create_group(0).expect("group");
    let mut handles = vec![first.clone()];
    for b in 1..N {
        assert!(sim.connect(0, b).is_some(), "seed {seed}: connect 0-{b}");
        let h = sim.invite(&first, b).expect("invitation accepted");
        handles.push(h);
        // Restarts while joins are under way.
        if b % 8 == 0 {
            sim.crash(b / 2);
            let t = sim.now() + 200;
            sim.run_until(t);
            sim.restart(b / 2).expect("restore");
        }
        sim.settle_all();
    }
    // Every member finished its join and sees all 64.
    let ids: Vec<MemberId> = handles
        .iter()
        .map(|h| {
            sim.agent(h.agent)
                .and_then(|a| a.member_id(&h.alias))
                .expect("id")
        })
        .collect();
    let all: BTreeSet<MemberId> = ids.iter().copied().collect();
    assert_eq!(all.len(), N);
    for h in &handles {
        let a = sim.agent(h.agent).expect("up");
        let me = a.member_id(&h.alias);
        let view: BTreeSet<MemberId> = a.members(&h.alias).into_iter().chain(me).collect();
        assert_eq!(
            view, all,
            "seed {seed}: agent {} sees another group",
            h.agent
        );
        if h.agent != 0 {
            assert!(
                sim.events(h.agent).iter().any(
                    |e| matches!(&e.event, Event::Mem { group, member: None } if *group == h.alias)
                ),
                "seed {seed}: agent {} never finished its join",
                h.agent
            );
        }
    }
    // Every member sends one message.
    let mut sent = BTreeMap::new();
    for h in &handles {
        let body = format!("hello from {}", h.agent).into_bytes();
        let corr = sim.command(
            h.agent,
            Command::Send {
                group: h.alias.clone(),
                body,
            },
        );
        let Some(Event::Queued { msg_id, .. }) = sim.response(h.agent, &corr).cloned() else {
            panic!("seed {seed}: send refused");
        };
        sent.insert(h.agent, msg_id);
    }
    sim.settle_all();
    let mut acked = BTreeMap::new();
    sim.ack_all(&handles, &mut acked);
    sim.settle_all();
    for h in &handles {
        let got: Vec<(MemberId, Vec<u8>)> = sim
            .events(h.agent)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg { member, body, .. } => Some((*member, body.clone())),
                _ => None,
            })
            .collect();
        for (s, sid) in handles.iter().zip(&ids) {
            if s.agent == h.agent {
                continue;
            }
            let body = format!("hello from {}", s.agent).into_bytes();
            let n = got.iter().filter(|(m, b)| m == sid && *b == body).count();
            assert_eq!(
                n, 1,
                "seed {seed}: agent {} got {} from {}",
                h.agent, n, s.agent
            );
        }
        assert_eq!(got.len(), N - 1, "seed {seed}: agent {} messages", h.agent);
        let id = sent[&h.agent];
        assert!(
            sim.events(h.agent).iter().any(|e| matches!(&e.event,
                Event::Rcvd { member: None, msg_id, status: ReceiptStatus::Ok, .. } if *msg_id == id)),
            "seed {seed}: the send of agent {} never completed",
            h.agent
        );
        assert!(
            !sim.events(h.agent)
                .iter()
                .any(|e| matches!(e.event, Event::Violation { .. })),
            "seed {seed}: agent {} reported a violation",
            h.agent
        );
    }
}
