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
