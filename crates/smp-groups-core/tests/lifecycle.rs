//! The whole group lifecycle through the simulation, without faults.

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event, ReceiptStatus};
use smp_groups_wire::agent::MemberId;

fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 16,
        ..Config::default()
    }
}

fn count(events: &[smp_groups_core::ClientEvent], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(&e.event)).count()
}

#[test]
fn pairwise_connection_and_messages() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 1);
    let (a, b) = sim.connect(0, 1).expect("connected");
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::Con { alias, .. } if *alias == a)
        ),
        1
    );
    assert_eq!(
        count(
            sim.events(1),
            |e| matches!(e, Event::Con { alias, .. } if *alias == b)
        ),
        1
    );
    sim.command(
        0,
        Command::SendConn {
            alias: a.clone(),
            body: b"hi".to_vec(),
        },
    );
    sim.settle_all();
    let got: Vec<(u64, Vec<u8>)> = sim
        .events(1)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ConnMsg { msg_id, body, .. } => Some((*msg_id, body.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"hi");
    sim.command(
        1,
        Command::AckConn {
            alias: b,
            msg_id: got[0].0,
        },
    );
    sim.settle_all();
    let queued: Vec<u64> = sim
        .events(0)
        .iter()
        .filter_map(|e| match &e.event {
            Event::Queued { msg_id, .. } => Some(*msg_id),
            _ => None,
        })
        .collect();
    assert_eq!(queued.len(), 1);
    let id = queued[0];
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::ConnSent { msg_id, .. } if *msg_id == id)
        ),
        1
    );
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::ConnRcvd { msg_id, .. } if *msg_id == id)
        ),
        1
    );
}

fn member_id(sim: &Sim, h: &GroupHandle) -> MemberId {
    sim.agent(h.agent)
        .and_then(|a| a.member_id(&h.alias))
        .expect("member")
}

#[test]
fn group_lifecycle_of_four() {
    let mut sim = Sim::new(4, &config(), Faults::default(), 7);
    let hs = sim.build_group(4).expect("group");
    for h in &hs {
        let members = sim.agent(h.agent).expect("up").members(&h.alias);
        assert_eq!(members.len(), 3, "agent {} sees {members:?}", h.agent);
    }
    // The last member reported MEM for itself, the others MEM for it.
    assert_eq!(
        count(sim.events(3), |e| matches!(
            e,
            Event::Mem { member: None, .. }
        )),
        1
    );
    let m3 = member_id(&sim, &hs[3]);
    for i in 0..3 {
        assert_eq!(
            count(
                sim.events(i),
                |e| matches!(e, Event::Mem { member: Some(m), .. } if *m == m3)
            ),
            1,
            "agent {i}"
        );
    }
    // Member 2 sends; every other member gets it, acks it; 2 gets RCVD from all.
    sim.command(
        2,
        Command::Send {
            group: hs[2].alias.clone(),
            body: b"hello group".to_vec(),
        },
    );
    sim.settle_all();
    let m2 = member_id(&sim, &hs[2]);
    for h in [&hs[0], &hs[1], &hs[3]] {
        let msgs: Vec<u64> = sim
            .events(h.agent)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg {
                    member,
                    msg_id,
                    body,
                    ..
                } if *member == m2 && body == b"hello group" => Some(*msg_id),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 1, "agent {}", h.agent);
        sim.command(
            h.agent,
            Command::Ack {
                group: h.alias.clone(),
                msg_id: msgs[0],
            },
        );
    }
    sim.settle_all();
    assert_eq!(
        count(sim.events(2), |e| matches!(
            e,
            Event::Sent {
                member: Some(_),
                ..
            }
        )),
        3
    );
    assert_eq!(
        count(sim.events(2), |e| matches!(
            e,
            Event::Sent { member: None, .. }
        )),
        1
    );
    assert_eq!(
        count(sim.events(2), |e| matches!(
            e,
            Event::Rcvd {
                member: Some(_),
                status: ReceiptStatus::Ok,
                ..
            }
        )),
        3
    );
    assert_eq!(
        count(sim.events(2), |e| matches!(
            e,
            Event::Rcvd {
                member: None,
                status: ReceiptStatus::Ok,
                ..
            }
        )),
        1
    );

    // 1 removes 3: 3 is out, everyone else sees REMD, 1 gets REMD (by us).
    sim.command(
        1,
        Command::Remove {
            group: hs[1].alias.clone(),
            member: m3,
        },
    );
    sim.settle_all();
    assert_eq!(count(sim.events(3), |e| matches!(e, Event::Out { .. })), 1);
    assert_eq!(
        count(sim.events(1), |e| matches!(
            e,
            Event::Removed { by: None, .. }
        )),
        1
    );
    for i in [0, 2] {
        assert_eq!(
            count(sim.events(i), |e| matches!(
                e,
                Event::Removed { by: Some(_), .. }
            )),
            1
        );
    }
    // 2 leaves: 0 and 1 see LEFT.
    sim.command(
        2,
        Command::Leave {
            group: hs[2].alias.clone(),
        },
    );
    sim.settle_all();
    for i in [0, 1] {
        assert_eq!(
            count(sim.events(i), |e| matches!(
                e,
                Event::Left {
                    member: Some(_),
                    ..
                }
            )),
            1
        );
    }
    // 0 deletes: 1 sees DELD by 0, 0 sees DELD once confirmed.
    sim.command(
        0,
        Command::Delete {
            group: hs[0].alias.clone(),
        },
    );
    sim.settle_all();
    assert_eq!(
        count(sim.events(1), |e| matches!(
            e,
            Event::Deleted { by: Some(_), .. }
        )),
        1
    );
    assert_eq!(
        count(sim.events(0), |e| matches!(
            e,
            Event::Deleted { by: None, .. }
        )),
        1
    );
    for i in 0..4 {
        assert!(sim.agent(i).expect("up").groups().is_empty(), "agent {i}");
    }
    assert_eq!(sim.queued_messages(), 0);
}

#[test]
fn removing_the_last_other_member_empties_the_group() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 11);
    let hs = sim.build_group(2).expect("group");
    let m1 = member_id(&sim, &hs[1]);
    sim.command(
        0,
        Command::Remove {
            group: hs[0].alias.clone(),
            member: m1,
        },
    );
    sim.settle_all();
    let events: Vec<&Event> = sim.events(0).iter().map(|e| &e.event).collect();
    let removed = events
        .iter()
        .position(|e| matches!(e, Event::Removed { by: None, .. }))
        .expect("REMD");
    let empty = events
        .iter()
        .position(|e| matches!(e, Event::Empty { group } if *group == hs[0].alias))
        .expect("EMPTY");
    assert!(removed < empty, "EMPTY follows REMD");
    assert_eq!(
        count(sim.events(0), |e| matches!(e, Event::Empty { .. })),
        1
    );
    assert_eq!(count(sim.events(1), |e| matches!(e, Event::Out { .. })), 1);
}

/// The status queries answer from real state: members as they join and
/// leave, a send awaiting receipts until every member acknowledged it,
/// connections, invitations, and a check round started by `Check`.
#[test]
fn status_queries_follow_the_group() {
    use smp_groups_core::{ConnState, GroupState, MemberState};
    use smp_groups_wire::agent::GCheckStatus;

    let mut sim = Sim::new(4, &config(), Faults::default(), 11);
    let hs = sim.build_group(3).expect("group");
    let (m0, m1, m2) = (
        member_id(&sim, &hs[0]),
        member_id(&sim, &hs[1]),
        member_id(&sim, &hs[2]),
    );
    let a0 = sim.agent(0).expect("up");
    let groups = a0.group_statuses();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].alias, hs[0].alias);
    assert_eq!(groups[0].me, m0);
    assert_eq!((groups[0].members, groups[0].connected), (2, 2));
    assert_eq!(groups[0].state, GroupState::Active);
    let members = a0.member_statuses(&hs[0].alias).expect("group");
    assert_eq!(members.iter().map(|m| m.member).collect::<Vec<_>>(), {
        let mut v = vec![m1, m2];
        v.sort();
        v
    });
    for m in &members {
        assert_eq!(m.state, MemberState::Full, "{m:?}");
        assert!(m.relay.is_some() && m.peer_relay.is_some(), "{m:?}");
        assert_eq!(
            (m.last_sent, m.last_received, m.chain),
            (Some(0), Some(0), Some(GCheckStatus::Ok))
        );
    }
    assert!(a0.member_statuses("nope").is_err());
    // Agent 0's visible connections with 1 and 2 are ready.
    let conns = a0.conn_statuses();
    assert_eq!(conns.len(), 2);
    assert!(conns.iter().all(|c| c.state == ConnState::Ready));
    assert!(conns.iter().all(|c| c.relay.is_some() && c.last_sent > 0));

    // A send awaits both receipts, then one, then none.
    sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: b"status?".to_vec(),
        },
    );
    let pending = sim
        .agent(0)
        .expect("up")
        .pending_sends(&hs[0].alias)
        .expect("group");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].ext_msg_id, 1);
    assert_eq!(pending[0].awaiting.len(), 2);
    sim.settle_all();
    let pending = sim
        .agent(0)
        .expect("up")
        .pending_sends(&hs[0].alias)
        .expect("group");
    assert_eq!(pending.len(), 1, "no receipt before the clients ACK");
    assert!(pending[0].unsent.is_empty());
    let msg_of = |sim: &Sim, i: usize| {
        sim.events(i)
            .iter()
            .find_map(|e| match &e.event {
                Event::Msg { msg_id, .. } => Some(*msg_id),
                _ => None,
            })
            .expect("message")
    };
    let id1 = msg_of(&sim, 1);
    sim.command(
        1,
        Command::Ack {
            group: hs[1].alias.clone(),
            msg_id: id1,
        },
    );
    sim.settle_all();
    let pending = sim
        .agent(0)
        .expect("up")
        .pending_sends(&hs[0].alias)
        .expect("group");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].awaiting, vec![m2]);
    let id2 = msg_of(&sim, 2);
    sim.command(
        2,
        Command::Ack {
            group: hs[2].alias.clone(),
            msg_id: id2,
        },
    );
    sim.settle_all();
    let a0 = sim.agent(0).expect("up");
    assert!(a0.pending_sends(&hs[0].alias).expect("group").is_empty());
    let st = a0.integrity_status(&hs[0].alias).expect("group");
    // Unsigned receipts confirm nothing in the chain: checks will.
    assert_eq!((st.last_sent, st.delivered_to_all), (1, 0));
    let a1 = sim.agent(1).expect("up");
    let from0 = a1
        .member_statuses(&hs[1].alias)
        .expect("group")
        .into_iter()
        .find(|m| m.member == m0)
        .expect("member 0");
    assert_eq!(from0.last_received, Some(1));

    // No check is scheduled (config): `Check` starts one now.
    let before = a1.integrity_status(&hs[1].alias).expect("group");
    let of0 = |s: &smp_groups_core::IntegrityStatus| {
        s.members
            .iter()
            .find(|m| m.member == m0)
            .expect("member 0")
            .last_check_received
    };
    assert_eq!(of0(&before), 0);
    let at = sim.now();
    let corr = sim.command(
        0,
        Command::Check {
            group: hs[0].alias.clone(),
        },
    );
    assert!(matches!(sim.response(0, &corr), Some(Event::Ok { .. })));
    let sent = sim
        .agent(0)
        .expect("up")
        .integrity_status(&hs[0].alias)
        .expect("group");
    assert!(sent.last_check_sent.as_millis() >= at);
    assert_eq!(sent.since_check, 0);
    sim.settle_all();
    for h in [&hs[1], &hs[2]] {
        let st = sim
            .agent(h.agent)
            .expect("up")
            .integrity_status(&h.alias)
            .expect("group");
        assert!(of0(&st) > 0, "agent {} recorded no check", h.agent);
        assert!(st.violations.is_empty());
    }
    // Their checks in turn confirm our message 1: the integrity point moves.
    for h in [&hs[1], &hs[2]] {
        sim.command(
            h.agent,
            Command::Check {
                group: h.alias.clone(),
            },
        );
    }
    sim.settle_all();
    let a0 = sim.agent(0).expect("up");
    assert_eq!(
        a0.integrity_status(&hs[0].alias)
            .expect("group")
            .delivered_to_all,
        1
    );
    assert!(
        a0.member_statuses(&hs[0].alias)
            .expect("group")
            .iter()
            .all(|m| m.confirmed == Some(1))
    );

    // An invitation waits for JOIN.
    let (_, conn3) = sim.connect(0, 3).expect("connected");
    let (conn03, _) = sim.connect(0, 3).expect("connected");
    sim.command(
        0,
        Command::Intro {
            conn: conn03,
            group: hs[0].alias.clone(),
            info: b"group".to_vec(),
        },
    );
    sim.settle_all();
    let invs = sim.agent(3).expect("up").pending_invitations();
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].conn, conn3);

    // Member 2 leaves: the others list it as left.
    sim.command(
        2,
        Command::Leave {
            group: hs[2].alias.clone(),
        },
    );
    sim.settle_all();
    let a0 = sim.agent(0).expect("up");
    let left = a0
        .member_statuses(&hs[0].alias)
        .expect("group")
        .into_iter()
        .find(|m| m.member == m2)
        .expect("member 2 listed");
    assert_eq!(left.state, MemberState::Left);
    assert_eq!(a0.group_statuses()[0].connected, 1);
}

/// A membership change above the approval threshold waits in
/// `pending_approvals` until the client decides.
#[test]
fn pending_approvals_until_decided() {
    let cfg = Config {
        approval_threshold: 1,
        ..config()
    };
    let mut sim = Sim::new(3, &cfg, Faults::default(), 5);
    let g0 = sim.create_group(0).expect("group");
    let g1 = sim.invite(&g0, 1).expect("joined");
    sim.settle_all();
    assert!(sim.agent(1).expect("up").pending_approvals().is_empty());
    sim.invite(&g0, 2).expect("joined");
    sim.settle_all();
    let waiting = sim.agent(1).expect("up").pending_approvals();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].group, g1.alias);
    let by = member_id(&sim, &g0);
    assert!(matches!(
        waiting[0].change,
        smp_groups_core::Change::Add { by: b, .. } if b == by
    ));
    sim.command(
        1,
        Command::Approve {
            group: g1.alias.clone(),
            approval: waiting[0].approval,
            accept: true,
        },
    );
    sim.settle_all();
    assert!(sim.agent(1).expect("up").pending_approvals().is_empty());
    assert_eq!(sim.agent(1).expect("up").members(&g1.alias).len(), 2);
}

/// `RJCT`: a refused invitation is forgotten, is not joined, and survives a
/// restart as refused; the group goes on without the invitee.
#[test]
fn a_refused_invitation_is_forgotten() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 23);
    let g = sim.create_group(0).expect("group");
    let (c01, _) = sim.connect(0, 1).expect("connected");
    sim.command(
        0,
        Command::Intro {
            conn: c01,
            group: g.alias.clone(),
            info: b"come".to_vec(),
        },
    );
    sim.settle_all();
    let inv = sim
        .events(1)
        .iter()
        .find_map(|e| match &e.event {
            Event::GroupRequest { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .expect("a request");
    let corr = sim.command(
        1,
        Command::RejectInvitation {
            invitation: inv.clone(),
        },
    );
    assert_eq!(
        sim.response(1, &corr),
        Some(&Event::Ok { alias: inv.clone() })
    );
    sim.crash(1);
    sim.restart(1).expect("restarts");
    for cmd in [
        Command::RejectInvitation {
            invitation: inv.clone(),
        },
        Command::JoinGroup {
            alias: None,
            invitation: inv.clone(),
        },
    ] {
        let corr = sim.command(1, cmd);
        assert!(
            matches!(
                sim.response(1, &corr),
                Some(Event::Err(smp_groups_core::CommandError::NoInvitation(i))) if *i == inv
            ),
            "{:?}",
            sim.response(1, &corr)
        );
    }
    assert!(sim.agent(1).expect("agent 1").groups().is_empty());
    // The group goes on: agent 2 joins.
    sim.invite(&g, 2).expect("agent 2 joins");
    sim.settle_all();
    assert_eq!(sim.agent(0).expect("agent 0").members(&g.alias).len(), 1);
}
