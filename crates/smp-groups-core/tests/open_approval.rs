//! Approval of adds through open invitations (`Config::open_invitations`):
//! above `Config::approval_threshold`, a member whose open invitation a new
//! member joins asks its client first, as for an `INTRO`, and holds the
//! connection until the answer; a refusal lets the add complete without it.
//!
//! The group is 0, 1, 2 (each holding the others' open invitations); 0 adds
//! 3 at size 3, above a threshold of 2: 3 joins the open invitations of 1
//! and 2 that 0 forwards, and 1 and 2 are asked.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{check_round, config, count, members_reported, received};
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Change, Command, Config, Event};
use smp_groups_wire::agent::MemberId;

/// The group of three, and 3 invited by 0 with everything settled: 1 and 2
/// are asked. Returns the simulation and the four handles.
fn asked(seed: u64) -> (Sim, Vec<GroupHandle>) {
    let cfg = Config {
        open_invitations: true,
        approval_threshold: 2,
        ..config()
    };
    let mut sim = Sim::new(4, &cfg, Faults::default(), seed);
    let mut hs = sim.build_group(3).expect("group of 3");
    let intros = sim.counts().get("INTRO").copied().unwrap_or(0);
    let h = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    hs.push(h);
    // The add went through open invitations only.
    assert_eq!(sim.counts().get("INTRO").copied().unwrap_or(0), intros);
    (sim, hs)
}

fn id(sim: &Sim, hs: &[GroupHandle], i: usize) -> MemberId {
    sim.agent(i)
        .and_then(|a| a.member_id(&hs[i].alias))
        .expect("member id")
}

fn members(sim: &Sim, hs: &[GroupHandle], i: usize) -> BTreeSet<MemberId> {
    sim.agent(i)
        .expect("up")
        .members(&hs[i].alias)
        .into_iter()
        .collect()
}

/// Agent `i`'s approval requests: (approval, change).
fn requests(sim: &Sim, i: usize) -> Vec<(u64, Change)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ApprovalRequired {
                approval, change, ..
            } => Some((*approval, *change)),
            _ => None,
        })
        .collect()
}

fn answer(sim: &mut Sim, hs: &[GroupHandle], i: usize, approval: u64, accept: bool) {
    let corr = sim.command(
        i,
        Command::Approve {
            group: hs[i].alias.clone(),
            approval,
            accept,
        },
    );
    assert!(matches!(sim.response(i, &corr), Some(Event::Ok { .. })));
    sim.settle_all();
}

fn joined(sim: &Sim, i: usize) -> usize {
    count(sim.events(i), |e| {
        matches!(e, Event::Mem { member: None, .. })
    })
}

fn announced(sim: &Sim, i: usize, x: MemberId) -> usize {
    count(
        sim.events(i),
        |e| matches!(e, Event::Mem { member: Some(m), .. } if *m == x),
    )
}

/// 1 and 2 asked, with the add as the change (3 added by 0), shown by
/// `pending_approvals`; 3's join waits, and nothing 3 sent reached them.
fn assert_waiting(sim: &Sim, hs: &[GroupHandle]) -> (u64, u64) {
    let (id0, id3) = (id(sim, hs, 0), id(sim, hs, 3));
    let mut ids = Vec::new();
    for i in [1, 2] {
        let r = requests(sim, i);
        assert_eq!(
            r.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            vec![Change::Add {
                member: id3,
                by: id0
            }],
            "agent {i} asked once, for 3 added by 0"
        );
        let pending = sim.agent(i).expect("up").pending_approvals();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].approval, r[0].0);
        assert_eq!(pending[0].group, hs[i].alias);
        assert!(!members(sim, hs, i).contains(&id3));
        assert!(
            received(sim, i).iter().all(|(m, _)| *m != id3),
            "agent {i} got 3's message before its approval"
        );
        assert_eq!(
            count(
                sim.events(i),
                |e| matches!(e, Event::GroupCon { member, .. } if *member == id3)
            ),
            0
        );
        ids.push(r[0].0);
    }
    // 3 is connected to its introducer only, and its join waits.
    assert_eq!(joined(sim, 3), 0);
    assert_eq!(announced(sim, 0, id3), 0);
    assert_eq!(
        count(sim.events(3), |e| matches!(e, Event::GroupCon { .. })),
        1
    );
    (ids[0], ids[1])
}

/// 3 sends a group message while its join waits (it goes to every member it
/// knows, once connected).
fn send_from_3(sim: &mut Sim, hs: &[GroupHandle]) {
    sim.command(
        3,
        Command::Send {
            group: hs[3].alias.clone(),
            body: b"from 3".to_vec(),
        },
    );
    sim.settle_all();
}

/// Agent `i` never connected to member `x` and was told once that it will
/// not (`LEFT` for it).
fn assert_told_will_not_connect(sim: &Sim, i: usize, x: MemberId) {
    assert_eq!(
        count(
            sim.events(i),
            |e| matches!(e, Event::GroupCon { member, .. } if *member == x)
        ),
        0
    );
    assert_eq!(
        count(
            sim.events(i),
            |e| matches!(e, Event::Left { member: Some(m), .. } if *m == x)
        ),
        1
    );
}

#[test]
fn an_add_through_an_open_invitation_asks_and_converges_when_accepted() {
    let (mut sim, hs) = asked(31);
    send_from_3(&mut sim, &hs);
    let (a1, a2) = assert_waiting(&sim, &hs);
    answer(&mut sim, &hs, 1, a1, true);
    // 1 holds 3 now; the join still waits for 2.
    assert!(members(&sim, &hs, 1).contains(&id(&sim, &hs, 3)));
    assert_eq!(joined(&sim, 3), 0);
    answer(&mut sim, &hs, 2, a2, true);
    let all: BTreeSet<MemberId> = (0..4).map(|i| id(&sim, &hs, i)).collect();
    for i in 0..4 {
        let mut expect = all.clone();
        expect.remove(&id(&sim, &hs, i));
        assert_eq!(members(&sim, &hs, i), expect, "agent {i}");
        assert!(sim.agent(i).expect("up").pending_approvals().is_empty());
    }
    assert_eq!(joined(&sim, 3), 1);
    let id3 = id(&sim, &hs, 3);
    for i in 0..3 {
        assert_eq!(announced(&sim, i, id3), 1, "agent {i} reports MEM 3");
        // The message 3 sent while it waited, once.
        let got: Vec<_> = received(&sim, i)
            .into_iter()
            .filter(|(m, _)| *m == id3)
            .collect();
        assert_eq!(got, vec![(id3, b"from 3".to_vec())], "agent {i}");
    }
}

#[test]
fn a_refused_add_through_an_open_invitation_completes_without_the_refuser() {
    let (mut sim, hs) = asked(32);
    send_from_3(&mut sim, &hs);
    let (a1, a2) = assert_waiting(&sim, &hs);
    answer(&mut sim, &hs, 1, a1, true);
    answer(&mut sim, &hs, 2, a2, false);
    let ids: Vec<MemberId> = (0..4).map(|i| id(&sim, &hs, i)).collect();
    // Nobody stalls: 3's join and 0's add complete. 3 was told that 2 will
    // not connect (`LEFT` on the held connection, instead of `HELLO`): its
    // join completes without 2, never connected to it.
    assert_eq!(joined(&sim, 3), 1);
    assert_told_will_not_connect(&sim, 3, ids[2]);
    assert_eq!(
        count(sim.events(3), |e| matches!(e, Event::Fault { .. })),
        0
    );
    assert_eq!(announced(&sim, 0, ids[3]), 1);
    assert_eq!(announced(&sim, 1, ids[3]), 1);
    // The lists, as after a refused `INTRO`: 0 and 1 hold everyone, 2 lacks 3
    // and 3 lacks 2.
    for i in [0, 1] {
        assert_eq!(members(&sim, &hs, i).len(), 3, "agent {i}");
    }
    assert_eq!(members(&sim, &hs, 2), [ids[0], ids[1]].into());
    assert_eq!(members(&sim, &hs, 3), [ids[0], ids[1]].into());
    assert_eq!(announced(&sim, 2, ids[3]), 0);
    assert!(sim.agent(2).expect("up").pending_approvals().is_empty());
    // 3's message reached 0 and 1, never 2.
    assert!(received(&sim, 2).iter().all(|(m, _)| *m != ids[3]));
    assert_eq!(
        received(&sim, 1)
            .iter()
            .filter(|(m, _)| *m == ids[3])
            .count(),
        1
    );
    // The group goes on: a message from 0 completes (`RCVD` for all).
    let corr = sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: b"after".to_vec(),
        },
    );
    let Some(Event::Queued { msg_id, .. }) = sim.response(0, &corr).cloned() else {
        panic!("queued");
    };
    sim.settle_all();
    let mut from = BTreeMap::new();
    sim.ack_all(&hs, &mut from);
    sim.settle_all();
    sim.run_until(sim.now() + 10_000);
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::Rcvd { member: None, msg_id: m, .. } if *m == msg_id)
        ),
        1
    );
    // 2 holds no connection with 3 (only with 0 and 1), nor the reverse.
    for (i, other) in [(2, 3), (3, 2)] {
        let statuses = sim
            .agent(i)
            .expect("up")
            .member_statuses(&hs[i].alias)
            .expect("group");
        assert!(
            statuses
                .iter()
                .filter(|s| s.member == ids[other])
                .all(|s| s.relay.is_none()),
            "agent {i} holds a connection with {other}"
        );
    }
    // The member set in `G_CHECK` reports the split as for a refused
    // `INTRO` (`tests/members_check.rs`), at the second round.
    check_round(&mut sim, &hs);
    check_round(&mut sim, &hs);
    let expect: BTreeMap<usize, BTreeMap<MemberId, (u16, u16)>> = [
        (0, [(ids[2], (4, 3)), (ids[3], (4, 3))].into()),
        (1, [(ids[2], (4, 3)), (ids[3], (4, 3))].into()),
        (2, [(ids[0], (3, 4)), (ids[1], (3, 4))].into()),
        (3, [(ids[0], (3, 4)), (ids[1], (3, 4))].into()),
    ]
    .into();
    assert_eq!(members_reported(&sim, &hs), expect);
}

#[test]
fn an_open_invitation_approval_waits_across_a_restart() {
    let (mut sim, hs) = asked(33);
    send_from_3(&mut sim, &hs);
    let (a1, a2) = assert_waiting(&sim, &hs);
    sim.crash(1);
    sim.run_until(sim.now() + 5_000);
    sim.restart(1).expect("restored");
    sim.settle_all();
    // Still asked, still held.
    let pending = sim.agent(1).expect("up").pending_approvals();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].approval, a1);
    assert_eq!(
        pending[0].change,
        Change::Add {
            member: id(&sim, &hs, 3),
            by: id(&sim, &hs, 0)
        }
    );
    assert_waiting(&sim, &hs);
    answer(&mut sim, &hs, 2, a2, true);
    assert_eq!(joined(&sim, 3), 0);
    answer(&mut sim, &hs, 1, a1, true);
    assert_eq!(joined(&sim, 3), 1);
    let id3 = id(&sim, &hs, 3);
    for i in 0..3 {
        assert_eq!(members(&sim, &hs, i).len(), 3, "agent {i}");
        assert_eq!(announced(&sim, i, id3), 1, "agent {i}");
        assert_eq!(
            received(&sim, i).iter().filter(|(m, _)| *m == id3).count(),
            1,
            "agent {i}"
        );
    }
    assert_eq!(members(&sim, &hs, 3).len(), 3);
}

#[test]
fn a_member_that_leaves_with_an_open_invitation_add_unanswered_does_not_stall_it() {
    let (mut sim, hs) = asked(34);
    let (a1, _) = assert_waiting(&sim, &hs);
    let ids: Vec<MemberId> = (0..4).map(|i| id(&sim, &hs, i)).collect();
    // 2 leaves without answering: its `LEFT` goes to the members it holds
    // (0 and 1), and to 3 on the held connection, which 3 waits on.
    let corr = sim.command(
        2,
        Command::Leave {
            group: hs[2].alias.clone(),
        },
    );
    assert!(matches!(sim.response(2, &corr), Some(Event::Ok { .. })));
    sim.settle_all();
    answer(&mut sim, &hs, 1, a1, true);
    assert_eq!(joined(&sim, 3), 1);
    assert_eq!(announced(&sim, 0, ids[3]), 1);
    // 3 never connected to 2: it was told at once (not by the relay's
    // report, a removal grace later, that 2's queue is gone).
    assert_told_will_not_connect(&sim, 3, ids[2]);
    for (i, expect) in [
        (0, [ids[1], ids[3]]),
        (1, [ids[0], ids[3]]),
        (3, [ids[0], ids[1]]),
    ] {
        assert_eq!(members(&sim, &hs, i), expect.into(), "agent {i}");
    }
}
