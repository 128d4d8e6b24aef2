//! The concurrency cases of `docs/groups.md`, each run on several seeds with
//! faults on.

mod common;

use std::collections::BTreeSet;

use common::{config, count, received};
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Event};
use smp_groups_wire::agent::MemberId;

const FAULTY: Faults = Faults {
    loss_ppm: 20_000,
    duplicate_ppm: 20_000,
    max_delay_ms: 200,
};
const SEEDS: std::ops::Range<u64> = 1..6;

fn id(sim: &Sim, h: &GroupHandle) -> MemberId {
    sim.agent(h.agent)
        .and_then(|a| a.member_id(&h.alias))
        .expect("member id")
}

/// The member set (ourselves included) each holder sees; all must be `expect`.
fn assert_views(sim: &Sim, hs: &[&GroupHandle], expect: &BTreeSet<MemberId>, seed: u64) {
    for h in hs {
        let a = sim.agent(h.agent).expect("up");
        assert!(
            a.groups().contains(&h.alias),
            "seed {seed}: agent {} lost the group",
            h.agent
        );
        let mut v: BTreeSet<MemberId> = a.members(&h.alias).into_iter().collect();
        v.extend(a.member_id(&h.alias));
        assert_eq!(&v, expect, "seed {seed}: agent {}", h.agent);
        assert_eq!(
            a.known_members(&h.alias).len(),
            expect.len() - 1,
            "seed {seed}: pending left"
        );
    }
}

fn holds(sim: &Sim, h: &GroupHandle) -> bool {
    sim.agent(h.agent)
        .is_some_and(|a| a.groups().contains(&h.alias))
}

#[test]
fn two_members_add_at_the_same_time() {
    for seed in SEEDS {
        let mut sim = Sim::new(5, &config(), FAULTY, seed);
        let hs = sim.build_group(3).expect("group");
        sim.connect(0, 3).expect("c");
        sim.connect(1, 4).expect("c");
        let h3 = sim.invite(&hs[0], 3).expect("invite 3");
        let h4 = sim.invite(&hs[1], 4).expect("invite 4");
        sim.settle_all();
        let all = [&hs[0], &hs[1], &hs[2], &h3, &h4];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
        // Messages flow between the two new members.
        sim.command(
            3,
            Command::Send {
                group: h3.alias.clone(),
                body: b"from 3".to_vec(),
            },
        );
        sim.settle_all();
        assert_eq!(
            received(&sim, 4)
                .iter()
                .filter(|(_, b)| b == b"from 3")
                .count(),
            1,
            "seed {seed}"
        );
    }
}

#[test]
fn removal_while_an_add_is_in_flight() {
    for seed in SEEDS {
        let mut sim = Sim::new(4, &config(), FAULTY, seed);
        let hs = sim.build_group(3).expect("group");
        sim.connect(0, 3).expect("c");
        let h3 = sim.invite(&hs[0], 3).expect("invite");
        let m2 = id(&sim, &hs[2]);
        sim.command(
            1,
            Command::Remove {
                group: hs[1].alias.clone(),
                member: m2,
            },
        );
        sim.settle_all();
        assert!(!holds(&sim, &hs[2]), "seed {seed}");
        let all = [&hs[0], &hs[1], &h3];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
        assert_eq!(
            count(sim.events(3), |e| matches!(
                e,
                Event::Mem { member: None, .. }
            )),
            1
        );
    }
}

#[test]
fn a_member_leaves_during_a_join() {
    for seed in SEEDS {
        let mut sim = Sim::new(4, &config(), FAULTY, seed);
        let hs = sim.build_group(3).expect("group");
        sim.connect(0, 3).expect("c");
        let h3 = sim.invite(&hs[0], 3).expect("invite");
        sim.command(
            2,
            Command::Leave {
                group: hs[2].alias.clone(),
            },
        );
        sim.settle_all();
        let all = [&hs[0], &hs[1], &h3];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
    }
}

#[test]
fn the_introducer_leaves_during_the_join() {
    for seed in SEEDS {
        let mut sim = Sim::new(4, &config(), FAULTY, seed);
        let hs = sim.build_group(3).expect("group");
        sim.connect(0, 3).expect("c");
        let h3 = sim.invite(&hs[0], 3).expect("invite");
        sim.command(
            0,
            Command::Leave {
                group: hs[0].alias.clone(),
            },
        );
        // Run past the pending-member expiry.
        sim.run_until(sim.now() + config().pending_member_ttl_ms + 1_000);
        sim.settle_all();
        let all = [&hs[1], &hs[2]];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
        // The new member either abandoned its join, or never got past it.
        assert!(
            !holds(&sim, &h3) || sim.agent(3).expect("up").members(&h3.alias).is_empty(),
            "seed {seed}"
        );
    }
}

#[test]
fn delete_while_messages_are_in_flight() {
    for seed in SEEDS {
        let mut sim = Sim::new(3, &config(), FAULTY, seed);
        let hs = sim.build_group(3).expect("group");
        for j in 0..3u8 {
            sim.command(
                1,
                Command::Send {
                    group: hs[1].alias.clone(),
                    body: vec![j],
                },
            );
        }
        sim.command(
            0,
            Command::Delete {
                group: hs[0].alias.clone(),
            },
        );
        sim.settle_all();
        for (i, h) in hs.iter().enumerate() {
            assert!(
                !holds(&sim, h),
                "seed {seed}: agent {i} still holds the group"
            );
            // Nothing about the group after it was deleted.
            let evs = sim.events(i);
            let del = evs
                .iter()
                .position(|e| matches!(e.event, Event::Deleted { .. }))
                .expect("DELD");
            assert!(
                !evs[del + 1..]
                    .iter()
                    .any(|e| matches!(&e.event, Event::Msg { group, .. } if *group == h.alias)),
                "seed {seed}: agent {i}"
            );
        }
        assert_eq!(
            count(sim.events(0), |e| matches!(
                e,
                Event::Deleted { by: None, .. }
            )),
            1
        );
        // Only the visible connections remain.
        for i in 0..3 {
            let visible = if i == 0 { 2 } else { 1 };
            assert_eq!(
                sim.agent(i).expect("up").connection_count(),
                visible,
                "seed {seed}: agent {i}"
            );
        }
    }
}

#[test]
fn a_removed_member_that_keeps_sending_is_rejected() {
    for seed in SEEDS {
        let mut sim = Sim::new(4, &config(), FAULTY, seed);
        let hs = sim.build_group(4).expect("group");
        let m3 = id(&sim, &hs[3]);
        // 3 is down while 0 removes it, so it does not know yet...
        sim.crash(3);
        sim.command(
            0,
            Command::Remove {
                group: hs[0].alias.clone(),
                member: m3,
            },
        );
        sim.settle_all();
        let before: Vec<usize> = (0..3).map(|i| received(&sim, i).len()).collect();
        // ...and sends as soon as it is back, before reading OUT.
        sim.restart(3).expect("restore");
        for j in 0..3u8 {
            sim.command(
                3,
                Command::Send {
                    group: hs[3].alias.clone(),
                    body: vec![j],
                },
            );
        }
        sim.settle_all();
        for (i, n) in before.iter().enumerate() {
            assert_eq!(
                received(&sim, i).len(),
                *n,
                "seed {seed}: agent {i} accepted it"
            );
        }
        assert_eq!(
            count(sim.events(3), |e| matches!(e, Event::Out { .. })),
            1,
            "seed {seed}"
        );
        let all = [&hs[0], &hs[1], &hs[2]];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
    }
}

#[test]
fn two_members_remove_each_other() {
    for seed in SEEDS {
        let mut sim = Sim::new(4, &config(), FAULTY, seed);
        let hs = sim.build_group(4).expect("group");
        let (m0, m1) = (id(&sim, &hs[0]), id(&sim, &hs[1]));
        sim.command(
            0,
            Command::Remove {
                group: hs[0].alias.clone(),
                member: m1,
            },
        );
        sim.command(
            1,
            Command::Remove {
                group: hs[1].alias.clone(),
                member: m0,
            },
        );
        sim.settle_all();
        assert!(!holds(&sim, &hs[0]) && !holds(&sim, &hs[1]), "seed {seed}");
        let all = [&hs[2], &hs[3]];
        let ids: BTreeSet<MemberId> = all.iter().map(|h| id(&sim, h)).collect();
        assert_views(&sim, &all, &ids, seed);
    }
}
