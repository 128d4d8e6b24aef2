//! Faults, restarts, fragments, approvals, determinism.

#![allow(clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeMap;

use common::{config, count, received};
use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, CommandError, Config, Event, ReceiptStatus};

const FAULTY: Faults = Faults {
    loss_ppm: 50_000,
    duplicate_ppm: 50_000,
    max_delay_ms: 300,
};

fn run(seed: u64) -> (u64, u64) {
    let mut sim = Sim::new(4, &config(), FAULTY, seed);
    let hs = sim.build_group(4).expect("group");
    for (k, h) in hs.iter().enumerate() {
        sim.command(
            h.agent,
            Command::Send {
                group: h.alias.clone(),
                body: vec![k as u8; 10],
            },
        );
    }
    sim.settle_all();
    (sim.trace_hash(), sim.steps())
}

#[test]
fn same_seed_same_trace() {
    let seed = 0x5eed;
    let first = run(seed);
    assert_eq!(first, run(seed), "seed {seed} does not reproduce");
    assert_ne!(first.0, run(seed + 1).0);
}

#[test]
fn lossy_network_delivers_exactly_once() {
    for seed in 1..=4 {
        let mut sim = Sim::new(5, &config(), FAULTY, seed);
        let hs = sim
            .build_group(5)
            .unwrap_or_else(|| panic!("seed {seed}: group"));
        for h in &hs {
            assert_eq!(
                sim.agent(h.agent).expect("up").members(&h.alias).len(),
                4,
                "seed {seed}"
            );
        }
        for (k, h) in hs.iter().enumerate() {
            for j in 0..3u8 {
                sim.command(
                    h.agent,
                    Command::Send {
                        group: h.alias.clone(),
                        body: vec![k as u8, j],
                    },
                );
            }
        }
        sim.settle_all();
        let mut seen = BTreeMap::new();
        sim.ack_all(&hs, &mut seen);
        sim.settle_all();
        for h in &hs {
            let got = received(&sim, h.agent);
            assert_eq!(got.len(), 12, "seed {seed} agent {}", h.agent);
            for (k, _) in hs.iter().enumerate().filter(|(k, _)| *k != h.agent) {
                for j in 0..3u8 {
                    assert_eq!(
                        got.iter().filter(|(_, b)| *b == vec![k as u8, j]).count(),
                        1,
                        "seed {seed}"
                    );
                }
            }
            // Every message we sent is confirmed received by all.
            assert_eq!(
                count(sim.events(h.agent), |e| matches!(
                    e,
                    Event::Rcvd {
                        member: None,
                        status: ReceiptStatus::Ok,
                        ..
                    }
                )),
                3,
                "seed {seed} agent {}",
                h.agent
            );
        }
    }
}

#[test]
fn restart_from_store_resumes_without_loss_or_duplicates() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 11);
    let hs = sim.build_group(3).expect("group");
    sim.crash(1);
    for j in 0..5u8 {
        sim.command(
            2,
            Command::Send {
                group: hs[2].alias.clone(),
                body: vec![j],
            },
        );
    }
    sim.settle_all();
    assert!(received(&sim, 1).is_empty());
    // Down for a long time (a day of virtual time).
    sim.run_until(sim.now() + 86_400_000 / 2);
    sim.restart(1).expect("restored");
    sim.settle_all();
    let got: Vec<Vec<u8>> = received(&sim, 1).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, (0..5u8).map(|j| vec![j]).collect::<Vec<_>>());
    // Crash in the middle of a busy exchange, restart at once, repeatedly.
    for round in 0..5u8 {
        sim.command(
            0,
            Command::Send {
                group: hs[0].alias.clone(),
                body: vec![100 + round],
            },
        );
        sim.run_until(sim.now() + 15);
        sim.crash(2);
        sim.restart(2).expect("restored");
        sim.settle_all();
    }
    let got = received(&sim, 2);
    for round in 0..5u8 {
        assert_eq!(
            got.iter().filter(|(_, b)| *b == vec![100 + round]).count(),
            1,
            "round {round}"
        );
    }
    // The restored agents still see the whole group.
    for h in &hs {
        assert_eq!(sim.agent(h.agent).expect("up").members(&h.alias).len(), 2);
    }
}

#[test]
fn large_messages_are_fragmented_and_reassembled() {
    let cfg = Config {
        max_message_len: 100_000,
        ..config()
    };
    let mut sim = Sim::new(3, &cfg, FAULTY, 5);
    let hs = sim.build_group(3).expect("group");
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let before = sim.counts().clone();
    sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: big.clone(),
        },
    );
    sim.settle_all();
    for i in [1, 2] {
        let got = received(&sim, i);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, big);
    }
    let frags = sim.counts().get("MSG/FRAG").copied().unwrap_or(0)
        - before.get("MSG/FRAG").copied().unwrap_or(0);
    assert_eq!(frags, 2 * 5, "70000 bytes in 5 blocks, to 2 members");
    let corr = sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: vec![0; 100_001],
        },
    );
    assert!(matches!(
        sim.response(0, &corr),
        Some(Event::Err(CommandError::TooLarge {
            len: 100_001,
            max: 100_000
        }))
    ));
}

#[test]
fn approval_above_threshold() {
    let cfg = Config {
        approval_threshold: 2,
        ..config()
    };
    let mut sim = Sim::new(4, &cfg, Faults::default(), 3);
    let mut hs = sim
        .build_group(3)
        .expect("group of 3 (member 2 was added at size 2)");
    // Adding a 4th: the group has 3 members, above the threshold, so members
    // 1 and 2 (not the introducer) ask their clients.
    let h = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    hs.push(h);
    let approvals = |sim: &Sim, i: usize| -> Vec<(String, u64)> {
        sim.events(i)
            .iter()
            .filter_map(|e| match &e.event {
                Event::ApprovalRequired {
                    group, approval, ..
                } => Some((group.clone(), *approval)),
                _ => None,
            })
            .collect()
    };
    let (a1, a2) = (approvals(&sim, 1), approvals(&sim, 2));
    assert_eq!((a1.len(), a2.len()), (1, 1));
    assert_eq!(sim.agent(1).expect("up").members(&hs[1].alias).len(), 2);
    sim.command(
        1,
        Command::Approve {
            group: a1[0].0.clone(),
            approval: a1[0].1,
            accept: true,
        },
    );
    sim.settle_all();
    assert_eq!(sim.agent(1).expect("up").members(&hs[1].alias).len(), 3);
    // Still waiting for member 2.
    assert_eq!(
        count(sim.events(3), |e| matches!(
            e,
            Event::Mem { member: None, .. }
        )),
        0
    );
    // Member 2 refuses: the new member completes without it.
    sim.command(
        2,
        Command::Approve {
            group: a2[0].0.clone(),
            approval: a2[0].1,
            accept: false,
        },
    );
    sim.settle_all();
    assert_eq!(sim.agent(2).expect("up").members(&hs[2].alias).len(), 2);
    assert_eq!(
        count(sim.events(3), |e| matches!(
            e,
            Event::Mem { member: None, .. }
        )),
        1
    );
    assert_eq!(sim.agent(3).expect("up").members(&hs[3].alias).len(), 2);
}

#[test]
fn gcheck_rounds_find_no_violation_among_honest_members() {
    let cfg = Config {
        check_every_messages: Some(2),
        ..config()
    };
    let mut sim = Sim::new(4, &cfg, FAULTY, 9);
    let hs = sim.build_group(4).expect("group");
    let before = sim.counts().get("G_CHECK").copied().unwrap_or(0);
    for round in 0..4u8 {
        for h in &hs {
            sim.command(
                h.agent,
                Command::Send {
                    group: h.alias.clone(),
                    body: vec![round],
                },
            );
        }
        sim.settle_all();
    }
    let checks = sim.counts().get("G_CHECK").copied().unwrap_or(0) - before;
    assert!(
        checks >= 4 * 3,
        "every member checked at least once: {checks}"
    );
    for h in &hs {
        assert_eq!(
            count(sim.events(h.agent), |e| matches!(
                e,
                Event::Violation { .. }
            )),
            0
        );
    }
}

#[test]
fn a_refused_removal_is_answered_and_the_removal_completes() {
    let cfg = Config {
        approval_threshold: 2,
        ..config()
    };
    let mut sim = Sim::new(3, &cfg, Faults::default(), 5);
    let hs = sim.build_group(3).expect("group of 3");
    let id2 = sim
        .agent(2)
        .and_then(|a| a.member_id(&hs[2].alias))
        .expect("id");
    let corr = sim.command(
        0,
        Command::Remove {
            group: hs[0].alias.clone(),
            member: id2,
        },
    );
    assert!(matches!(sim.response(0, &corr), Some(Event::Ok { .. })));
    sim.settle_all();
    let approval = sim
        .events(1)
        .iter()
        .find_map(|e| match &e.event {
            Event::ApprovalRequired { approval, .. } => Some(*approval),
            _ => None,
        })
        .expect("member 1 is asked");
    let removed_at_0 = |sim: &Sim| {
        count(
            sim.events(0),
            |e| matches!(e, Event::Removed { member, by: None, .. } if *member == id2),
        )
    };
    // The removal waits for member 1's answer.
    assert_eq!(removed_at_0(&sim), 0);
    sim.command(
        1,
        Command::Approve {
            group: hs[1].alias.clone(),
            approval,
            accept: false,
        },
    );
    sim.settle_all();
    // Answered: the remover's removal completes; member 1 keeps member 2
    // (its client said no) and applied nothing.
    assert_eq!(removed_at_0(&sim), 1);
    assert!(
        sim.agent(1)
            .expect("up")
            .members(&hs[1].alias)
            .contains(&id2)
    );
    assert_eq!(
        count(sim.events(1), |e| matches!(e, Event::Removed { .. })),
        0
    );
    assert_eq!(count(sim.events(2), |e| matches!(e, Event::Out { .. })), 1);
}
