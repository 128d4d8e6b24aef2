//! Direct messages to one member of a group (`DSEND`) through the
//! simulation: delivered to that member only, once, under loss, duplicates,
//! delays and crashes of either side; confirmed by a receipt; refused with a
//! typed error for unknown, pending and departed members; reported when the
//! member goes mid-send; and never part of the group chains.

mod common;

use std::collections::BTreeMap;

use common::{config, count};
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{
    Command, CommandError, DirectFailure, Event, MsgIntegrity, ReceiptStatus, Timestamp,
};
use smp_groups_wire::agent::MemberId;

fn mid(sim: &Sim, h: &GroupHandle) -> MemberId {
    sim.agent(h.agent)
        .and_then(|a| a.member_id(&h.alias))
        .expect("a member of the group")
}

fn dsend(sim: &mut Sim, from: &GroupHandle, to: MemberId, body: &[u8]) -> Event {
    let corr = sim.command(
        from.agent,
        Command::DirectSend {
            group: from.alias.clone(),
            member: to,
            body: body.to_vec(),
        },
    );
    sim.response(from.agent, &corr).cloned().expect("answered")
}

/// The direct messages agent `i` received: (local id, sender, sender's id,
/// integrity, body).
fn direct_msgs(sim: &Sim, i: usize) -> Vec<(u64, MemberId, u64, MsgIntegrity, Vec<u8>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::DirectMsg {
                msg_id,
                member,
                meta,
                body,
                ..
            } => Some((
                *msg_id,
                *member,
                meta.snd_msg_id,
                meta.integrity,
                body.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Acknowledges the direct messages agent `h` received since `from` (its
/// position in the events), if it is up; returns how many.
fn ack_direct(sim: &mut Sim, h: &GroupHandle, from: &mut usize) -> usize {
    if !sim.is_up(h.agent) {
        return 0;
    }
    let ids: Vec<u64> = sim.events(h.agent)[*from..]
        .iter()
        .filter_map(|e| match &e.event {
            Event::DirectMsg { msg_id, .. } => Some(*msg_id),
            _ => None,
        })
        .collect();
    *from = sim.events(h.agent).len();
    for msg_id in &ids {
        let corr = sim.command(
            h.agent,
            Command::Ack {
                group: h.alias.clone(),
                msg_id: *msg_id,
            },
        );
        assert!(
            matches!(sim.response(h.agent, &corr), Some(Event::Ok { .. })),
            "ACK {msg_id}: {:?}",
            sim.response(h.agent, &corr)
        );
    }
    ids.len()
}

fn queued_id(ev: &Event) -> u64 {
    let id = match ev {
        Event::DirectQueued { msg_id, .. } => Some(*msg_id),
        _ => None,
    };
    assert!(id.is_some(), "not queued: {ev:?}");
    id.unwrap_or_default()
}

/// Direct messages sent, by (sender, receiver): (local id, body).
type Sent = BTreeMap<(usize, usize), Vec<(u64, Vec<u8>)>>;

/// Per local id, the receipts agent `i` got for its direct messages.
fn direct_rcvd(sim: &Sim, i: usize) -> BTreeMap<u64, Vec<ReceiptStatus>> {
    let mut out: BTreeMap<u64, Vec<ReceiptStatus>> = BTreeMap::new();
    for e in sim.events(i) {
        if let Event::DirectRcvd { msg_id, status, .. } = &e.event {
            out.entry(*msg_id).or_default().push(*status);
        }
    }
    out
}

fn direct_sent(sim: &Sim, i: usize, msg_id: u64) -> usize {
    count(
        sim.events(i),
        |e| matches!(e, Event::DirectSent { msg_id: m, .. } if *m == msg_id),
    )
}

#[test]
fn a_direct_message_reaches_one_member_once_and_is_confirmed() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 11);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let (m0, m1) = (mid(&sim, &hs[0]), mid(&sim, &hs[1]));
    let at = sim.now();
    let id = queued_id(&dsend(&mut sim, &hs[0], m1, b"just you"));
    let id2 = queued_id(&dsend(&mut sim, &hs[0], m1, b"and again"));
    assert!(id2 > id);
    sim.settle_all();
    assert_eq!(direct_sent(&sim, 0, id), 1);
    assert_eq!(direct_sent(&sim, 0, id2), 1);
    let got = direct_msgs(&sim, 1);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got.iter()
            .map(|(_, from, snd, integrity, body)| (*from, *snd, *integrity, body.as_slice()))
            .collect::<Vec<_>>(),
        [
            (m0, 1, MsgIntegrity::Ok, b"just you".as_slice()),
            (m0, 2, MsgIntegrity::Ok, b"and again".as_slice()),
        ]
    );
    let meta = sim
        .events(1)
        .iter()
        .find_map(|e| match &e.event {
            Event::DirectMsg { meta, .. } => Some(meta.clone()),
            _ => None,
        })
        .expect("a direct message");
    assert_eq!(meta.snd_ts, Timestamp::from_millis(at));
    assert!(meta.snd_ts < meta.relay_ts && meta.relay_ts < meta.rcv_ts);
    assert!(!meta.relay_msg_id.is_empty());
    // Only that member: the third sees neither a direct nor a group message.
    assert!(direct_msgs(&sim, 2).is_empty());
    assert_eq!(count(sim.events(2), |e| matches!(e, Event::Msg { .. })), 0);
    assert_eq!(count(sim.events(1), |e| matches!(e, Event::Msg { .. })), 0);
    // No receipt before the client's ACK; one each after.
    assert!(direct_rcvd(&sim, 0).is_empty());
    let mut from = 0;
    assert_eq!(ack_direct(&mut sim, &hs[1], &mut from), 2);
    sim.settle_all();
    let rcvd = direct_rcvd(&sim, 0);
    assert_eq!(rcvd.get(&id), Some(&vec![ReceiptStatus::Ok]));
    assert_eq!(rcvd.get(&id2), Some(&vec![ReceiptStatus::Ok]));
    // An ACK again is refused; the envelopes were counted by type.
    let corr = sim.command(
        1,
        Command::Ack {
            group: hs[1].alias.clone(),
            msg_id: got[0].0,
        },
    );
    assert_eq!(
        sim.response(1, &corr),
        Some(&Event::Err(CommandError::NoId(got[0].0)))
    );
    assert_eq!(sim.counts().get("DMSG"), Some(&2));
    assert_eq!(sim.counts().get("DRCVD"), Some(&2));
}

#[test]
fn direct_messages_are_not_in_the_group_chain_or_checks() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 12);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let m1 = mid(&sim, &hs[1]);
    for body in [b"d1".as_slice(), b"d2", b"d3"] {
        dsend(&mut sim, &hs[0], m1, body);
    }
    sim.settle_all();
    let mut from = 0;
    ack_direct(&mut sim, &hs[1], &mut from);
    sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: b"to all".to_vec(),
        },
    );
    sim.settle_all();
    // The group message is the sender's first in its chain at both members.
    for i in [1, 2] {
        let ids: Vec<u64> = sim
            .events(i)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg { meta, .. } => Some(meta.snd_msg_id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [1], "agent {i}");
    }
    // Checks from every member agree: no violation anywhere, although only
    // one member saw the direct messages.
    for h in &hs {
        sim.command(
            h.agent,
            Command::Check {
                group: h.alias.clone(),
            },
        );
    }
    sim.settle_all();
    for h in &hs {
        sim.command(
            h.agent,
            Command::Check {
                group: h.alias.clone(),
            },
        );
    }
    sim.settle_all();
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(
            count(sim.events(i), |e| matches!(e, Event::Violation { .. })),
            0,
            "agent {i}"
        );
        let st = sim
            .agent(i)
            .and_then(|a| a.integrity_status(&h.alias).ok())
            .expect("status");
        assert_eq!(st.last_sent, u64::from(i == 0), "agent {i}: {st:?}");
        assert!(st.violations.is_empty(), "agent {i}: {st:?}");
    }
}

/// Several seeds with loss, duplicates and delays; direct messages both
/// ways between two pairs; each reaches its member exactly once, in order,
/// and each sender gets one receipt per message.
#[test]
fn exactly_once_under_loss_duplicates_and_delays() {
    for seed in [21, 22, 23] {
        let faults = Faults {
            loss_ppm: 100_000,
            duplicate_ppm: 200_000,
            max_delay_ms: 40,
        };
        let mut sim = Sim::new(3, &config(), faults, seed);
        sim.set_check_store(true);
        let hs = sim.build_group(3).expect("group");
        sim.settle_all();
        let ids: Vec<MemberId> = hs.iter().map(|h| mid(&sim, h)).collect();
        let pairs = [(0, 1), (1, 0), (0, 2), (2, 1)];
        let mut sent = Sent::new();
        for k in 0..4u8 {
            for &(a, b) in &pairs {
                let body = format!("{a}>{b}#{k}").into_bytes();
                let id = queued_id(&dsend(&mut sim, &hs[a], ids[b], &body));
                sent.entry((a, b)).or_default().push((id, body));
            }
            sim.run_until(sim.now() + 7);
        }
        let mut from = [0usize; 3];
        for _ in 0..4 {
            sim.settle_all();
            for (h, f) in hs.iter().zip(from.iter_mut()) {
                ack_direct(&mut sim, h, f);
            }
        }
        sim.settle_all();
        for (&(a, b), msgs) in &sent {
            let got: Vec<(u64, MsgIntegrity, Vec<u8>)> = direct_msgs(&sim, b)
                .into_iter()
                .filter(|(_, f, ..)| *f == ids[a])
                .map(|(_, _, snd, integrity, body)| (snd, integrity, body))
                .collect();
            let want: Vec<(u64, MsgIntegrity, Vec<u8>)> = msgs
                .iter()
                .enumerate()
                .map(|(k, (_, body))| (k as u64 + 1, MsgIntegrity::Ok, body.clone()))
                .collect();
            assert_eq!(got, want, "seed {seed}: {a} -> {b}");
            let rcvd = direct_rcvd(&sim, a);
            for (id, _) in msgs {
                assert_eq!(direct_sent(&sim, a, *id), 1, "seed {seed}: {a} -> {b}");
                assert_eq!(
                    rcvd.get(id),
                    Some(&vec![ReceiptStatus::Ok]),
                    "seed {seed}: {a} -> {b}"
                );
            }
        }
    }
}

#[test]
fn exactly_once_across_crashes_of_the_sender_and_the_receiver() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 31);
    sim.set_check_store(true);
    let hs = sim.build_group(2).expect("group");
    sim.settle_all();
    let (m0, m1) = (mid(&sim, &hs[0]), mid(&sim, &hs[1]));
    // The sender crashes right after the command: its send was issued, not
    // answered; the restored agent issues it again.
    let a = queued_id(&dsend(&mut sim, &hs[0], m1, b"before the crash"));
    sim.crash(0);
    sim.settle_all();
    sim.restart(0).expect("restores");
    sim.settle_all();
    // The receiver is down while more come, and crashes again once it
    // delivered them, before its client acknowledged them.
    sim.crash(1);
    let b = queued_id(&dsend(&mut sim, &hs[0], m1, b"while you were out"));
    let c = queued_id(&dsend(&mut sim, &hs[0], m1, b"and this"));
    sim.settle_all();
    sim.restart(1).expect("restores");
    sim.settle_all();
    assert_eq!(direct_msgs(&sim, 1).len(), 3);
    sim.crash(1);
    sim.restart(1).expect("restores");
    // And the other way, with the receiver (agent 0) crashing mid-way.
    let back = queued_id(&dsend(&mut sim, &hs[1], m0, b"reply"));
    sim.run_until(sim.now() + 15);
    sim.crash(0);
    sim.settle_all();
    sim.restart(0).expect("restores");
    sim.settle_all();
    let got: Vec<(u64, Vec<u8>)> = direct_msgs(&sim, 1)
        .into_iter()
        .map(|(_, _, snd, _, body)| (snd, body))
        .collect();
    assert_eq!(
        got,
        [
            (1, b"before the crash".to_vec()),
            (2, b"while you were out".to_vec()),
            (3, b"and this".to_vec()),
        ]
    );
    let back_got = direct_msgs(&sim, 0);
    assert_eq!(back_got.len(), 1, "{back_got:?}");
    assert_eq!(back_got[0].4, b"reply");
    // The ids the client saw before the crashes are still the ones to ACK.
    let (mut f0, mut f1) = (0, 0);
    assert_eq!(ack_direct(&mut sim, &hs[1], &mut f1), 3);
    assert_eq!(ack_direct(&mut sim, &hs[0], &mut f0), 1);
    sim.settle_all();
    let rcvd = direct_rcvd(&sim, 0);
    for id in [a, b, c] {
        assert_eq!(rcvd.get(&id), Some(&vec![ReceiptStatus::Ok]));
        assert_eq!(direct_sent(&sim, 0, id), 1);
    }
    assert_eq!(
        direct_rcvd(&sim, 1).get(&back),
        Some(&vec![ReceiptStatus::Ok])
    );
}

#[test]
fn unknown_pending_and_departed_members_are_refused() {
    let mut sim = Sim::new(4, &config(), Faults::default(), 41);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let m2 = mid(&sim, &hs[2]);
    let nobody = MemberId([0x77; 16]);
    assert_eq!(
        dsend(&mut sim, &hs[0], nobody, b"x"),
        Event::Err(CommandError::NoMember(nobody))
    );
    let corr = sim.command(
        0,
        Command::DirectSend {
            group: "nope".into(),
            member: m2,
            body: b"x".to_vec(),
        },
    );
    assert_eq!(
        sim.response(0, &corr),
        Some(&Event::Err(CommandError::NoGroup("nope".into())))
    );
    let too_big = vec![0u8; config().max_message_len + 1];
    assert!(matches!(
        dsend(&mut sim, &hs[0], m2, &too_big),
        Event::Err(CommandError::TooLarge { .. })
    ));
    // A member invited and not connected yet.
    let (conn, _) = sim.connect(0, 3).expect("connected");
    let before = sim.agent(0).map(|a| a.known_members(&hs[0].alias));
    sim.command(
        0,
        Command::Intro {
            conn,
            group: hs[0].alias.clone(),
            info: b"welcome".to_vec(),
        },
    );
    sim.settle_all();
    let pending = sim
        .agent(0)
        .map(|a| a.known_members(&hs[0].alias))
        .unwrap_or_default()
        .into_iter()
        .find(|m| !before.as_ref().is_some_and(|b| b.contains(m)))
        .expect("the invitee is pending");
    assert_eq!(
        dsend(&mut sim, &hs[0], pending, b"x"),
        Event::Err(CommandError::MemberNotReady(pending))
    );
    // A member that left.
    sim.command(
        2,
        Command::Leave {
            group: hs[2].alias.clone(),
        },
    );
    sim.settle_all();
    assert_eq!(
        dsend(&mut sim, &hs[0], m2, b"x"),
        Event::Err(CommandError::MemberGone(m2))
    );
    assert!(direct_msgs(&sim, 2).is_empty());
}

/// The direct messages to `x` that agent `i` reported failed.
fn failed_to(sim: &Sim, i: usize, x: MemberId) -> BTreeMap<u64, DirectFailure> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::DirectFailed {
                member,
                msg_id,
                reason,
                ..
            } if *member == x => Some((*msg_id, *reason)),
            _ => None,
        })
        .collect()
}

/// We remove the member while direct messages to it wait: one delivered
/// and not acknowledged, two still queued (our removal sends what was
/// queued before its `OUT`). None will be confirmed: each is reported
/// `unconfirmed`, once.
#[test]
fn a_member_we_remove_mid_send_is_reported() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 51);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let (m1, m2) = (mid(&sim, &hs[1]), mid(&sim, &hs[2]));
    let delivered = queued_id(&dsend(&mut sim, &hs[0], m2, b"read it?"));
    sim.settle_all();
    assert_eq!(direct_msgs(&sim, 2).len(), 1);
    let first = queued_id(&dsend(&mut sim, &hs[0], m2, b"first"));
    let second = queued_id(&dsend(&mut sim, &hs[0], m2, b"second"));
    sim.command(
        0,
        Command::Remove {
            group: hs[0].alias.clone(),
            member: m2,
        },
    );
    sim.settle_all();
    assert_eq!(
        failed_to(&sim, 0, m2),
        BTreeMap::from([
            (delivered, DirectFailure::Unconfirmed),
            (first, DirectFailure::Unconfirmed),
            (second, DirectFailure::Unconfirmed),
        ])
    );
    assert!(direct_rcvd(&sim, 0).is_empty());
    // The remaining member is unaffected, and the removed one is refused.
    let ok = queued_id(&dsend(&mut sim, &hs[0], m1, b"still here"));
    assert_eq!(
        dsend(&mut sim, &hs[0], m2, b"x"),
        Event::Err(CommandError::MemberGone(m2))
    );
    sim.settle_all();
    let mut from = 0;
    ack_direct(&mut sim, &hs[1], &mut from);
    sim.settle_all();
    assert_eq!(
        direct_rcvd(&sim, 0).get(&ok),
        Some(&vec![ReceiptStatus::Ok])
    );
    assert_eq!(failed_to(&sim, 0, m1), BTreeMap::new());
}

/// Another member removes the member while our direct messages to it are
/// still being sent (a large one goes in fragments, one at a time): what
/// the removal drops from the outbox is reported `unsent`, and never
/// reaches the removed member.
#[test]
fn a_member_removed_by_another_mid_send_is_reported() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 52);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let m2 = mid(&sim, &hs[2]);
    let big = vec![b'x'; 150_000];
    let large = queued_id(&dsend(&mut sim, &hs[0], m2, &big));
    let small = queued_id(&dsend(&mut sim, &hs[0], m2, b"after it"));
    sim.command(
        1,
        Command::Remove {
            group: hs[1].alias.clone(),
            member: m2,
        },
    );
    sim.settle_all();
    assert_eq!(
        failed_to(&sim, 0, m2),
        BTreeMap::from([
            (large, DirectFailure::Unsent),
            (small, DirectFailure::Unsent),
        ])
    );
    assert_eq!(direct_sent(&sim, 0, large), 0);
    assert_eq!(direct_sent(&sim, 0, small), 0);
    assert!(direct_msgs(&sim, 2).is_empty());
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::Removed { member, .. } if *member == m2)
        ),
        1
    );
}

#[test]
fn leaving_the_group_reports_waiting_direct_messages() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 61);
    sim.set_check_store(true);
    let hs = sim.build_group(2).expect("group");
    sim.settle_all();
    let m1 = mid(&sim, &hs[1]);
    let id = queued_id(&dsend(&mut sim, &hs[0], m1, b"bye?"));
    sim.settle_all();
    sim.command(
        0,
        Command::Leave {
            group: hs[0].alias.clone(),
        },
    );
    sim.settle_all();
    assert_eq!(
        count(sim.events(0), |e| matches!(
            e,
            Event::DirectFailed { msg_id, reason: DirectFailure::Unconfirmed, .. } if *msg_id == id
        )),
        1
    );
}

/// We leave while a direct message is still on its way to the relay: the
/// connection still sends what was queued before `LEFT`, so the message
/// may arrive (here it does) and is reported `unconfirmed`, not `unsent`.
#[test]
fn leaving_with_a_direct_message_still_queued_reports_it_unconfirmed() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 62);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    let m1 = mid(&sim, &hs[1]);
    let id = queued_id(&dsend(&mut sim, &hs[0], m1, b"last words"));
    sim.command(
        0,
        Command::Leave {
            group: hs[0].alias.clone(),
        },
    );
    sim.settle_all();
    assert_eq!(
        failed_to(&sim, 0, m1),
        BTreeMap::from([(id, DirectFailure::Unconfirmed)])
    );
    let got = direct_msgs(&sim, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].4, b"last words");
    assert!(direct_msgs(&sim, 2).is_empty());
}
