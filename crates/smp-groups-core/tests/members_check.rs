//! The member set in `G_CHECK`: a member that refused an add (its client
//! said no) keeps a member list other than the rest, and the checks show it:
//! every member whose list differs from a peer's reports that peer
//! (`ViolationKind::Members`) at the second check round, the grace period
//! after the first, and not before; the same run with the add accepted
//! reports nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{check_round, config, members_reported};
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event};
use smp_groups_wire::agent::MemberId;

/// Builds 0, 1, 2; 0 adds 3 with approval above 2 members, 1 accepts, 2
/// answers `accept`. Returns the simulation and the handles.
fn run(accept: bool) -> (Sim, Vec<GroupHandle>) {
    let cfg = Config {
        approval_threshold: 2,
        ..config()
    };
    let mut sim = Sim::new(4, &cfg, Faults::default(), 21);
    let mut hs = sim.build_group(3).expect("group of 3");
    let h = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    hs.push(h);
    for (i, answer) in [(1, true), (2, accept)] {
        let (group, approval) = sim
            .events(i)
            .iter()
            .find_map(|e| match &e.event {
                Event::ApprovalRequired {
                    group, approval, ..
                } => Some((group.clone(), *approval)),
                _ => None,
            })
            .expect("asked");
        sim.command(
            i,
            Command::Approve {
                group,
                approval,
                accept: answer,
            },
        );
        sim.settle_all();
    }
    (sim, hs)
}

fn any_violation(sim: &Sim, i: usize) -> bool {
    sim.events(i)
        .iter()
        .any(|e| matches!(e.event, Event::Violation { .. }))
}

#[test]
fn a_refused_add_is_reported_by_both_sides_in_the_second_round() {
    let (mut sim, hs) = run(false);
    let id = |i: usize| {
        sim.agent(i)
            .and_then(|a| a.member_id(&hs[i].alias))
            .expect("member id")
    };
    let ids: Vec<MemberId> = (0..4).map(id).collect();
    // The lists now: 0 and 1 hold everyone, 2 lacks 3 and 3 lacks 2.
    let members = |i: usize| -> BTreeSet<MemberId> {
        sim.agent(i)
            .expect("up")
            .members(&hs[i].alias)
            .into_iter()
            .collect()
    };
    assert_eq!(members(0).len(), 3);
    assert!(!members(2).contains(&ids[3]) && !members(3).contains(&ids[2]));

    check_round(&mut sim, &hs);
    for h in &hs {
        assert!(
            !any_violation(&sim, h.agent),
            "agent {} reported after one round",
            h.agent
        );
    }
    check_round(&mut sim, &hs);
    let got = members_reported(&sim, &hs);
    let expect: BTreeMap<usize, BTreeMap<MemberId, (u16, u16)>> = [
        (0, [(ids[2], (4, 3)), (ids[3], (4, 3))].into()),
        (1, [(ids[2], (4, 3)), (ids[3], (4, 3))].into()),
        (2, [(ids[0], (3, 4)), (ids[1], (3, 4))].into()),
        (3, [(ids[0], (3, 4)), (ids[1], (3, 4))].into()),
    ]
    .into();
    assert_eq!(got, expect);
    // Reported once: a third round with the same lists adds nothing.
    check_round(&mut sim, &hs);
    assert_eq!(members_reported(&sim, &hs), expect);
}

#[test]
fn an_accepted_add_reports_nothing() {
    let (mut sim, hs) = run(true);
    for h in &hs {
        assert_eq!(sim.agent(h.agent).expect("up").members(&h.alias).len(), 3);
    }
    for _ in 0..3 {
        check_round(&mut sim, &hs);
    }
    for h in &hs {
        assert!(!any_violation(&sim, h.agent), "agent {}", h.agent);
    }
    // The checks carried the member set (4 members everywhere).
    assert!(sim.counts().get("G_CHECK").copied().unwrap_or(0) >= 3 * 12);
}
