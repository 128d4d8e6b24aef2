//! The metadata of `MSG` events through the simulation: the sender's ids and
//! times, the relay's times (the simulated relay stamps a message with the
//! virtual time it executes the `SEND`, one hop after the sender's step; the
//! delivery takes one more hop), and the integrity status, ok in normal runs
//! and `Skipped` when the relay loses a message.

mod common;

use common::config;
use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, Event, MsgIntegrity, MsgMeta, Timestamp};

/// One hop of the simulation without faults (`HOP_MS`).
const HOP: u64 = 10;

fn ms(t: u64) -> Timestamp {
    Timestamp::from_millis(t)
}

/// The pairwise messages agent `i` received: (local id, meta, body).
fn conn_msgs(sim: &Sim, i: usize) -> Vec<(u64, MsgMeta, Vec<u8>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ConnMsg {
                msg_id, meta, body, ..
            } => Some((*msg_id, meta.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

/// The group messages agent `i` received: (local id, meta, body).
fn group_msgs(sim: &Sim, i: usize) -> Vec<(u64, MsgMeta, Vec<u8>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::Msg {
                msg_id, meta, body, ..
            } => Some((*msg_id, meta.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

/// Sends `body` on `alias` from agent 0 (pairwise, or to the group) at the
/// current time, then lets a second pass; returns the send time.
fn send(sim: &mut Sim, alias: &str, group: bool, body: &[u8]) -> u64 {
    let at = sim.now();
    let command = if group {
        Command::Send {
            group: alias.to_owned(),
            body: body.to_vec(),
        }
    } else {
        Command::SendConn {
            alias: alias.to_owned(),
            body: body.to_vec(),
        }
    };
    sim.command(0, command);
    sim.run_until(at + 1000);
    at
}

/// The queue of agent `i` holding the most waiting messages, and how many.
fn fullest_queue(sim: &Sim, i: usize) -> (String, Vec<u8>, usize) {
    sim.queued_for(i)
        .into_iter()
        .max_by_key(|(_, _, n)| *n)
        .expect("a queue with waiting messages")
}

#[test]
fn pairwise_msg_carries_the_sender_relay_and_receive_times() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 3);
    let (a, _b) = sim.connect(0, 1).expect("connected");
    sim.settle_all();
    sim.run_until(sim.now() + 5_000);
    let times: Vec<u64> = [b"one".as_slice(), b"two", b"three"]
        .into_iter()
        .map(|body| send(&mut sim, &a, false, body))
        .collect();
    sim.settle_all();
    let got = conn_msgs(&sim, 1);
    assert_eq!(got.len(), 3, "{got:?}");
    let mut last_snd = 0;
    for (k, ((msg_id, meta, body), at)) in got.iter().zip(&times).enumerate() {
        assert_eq!(*body, [b"one".as_slice(), b"two", b"three"][k]);
        assert_eq!(*msg_id, k as u64 + 1, "local ids count from 1");
        assert_eq!(meta.integrity, MsgIntegrity::Ok);
        assert!(meta.snd_msg_id > last_snd, "sender ids increase: {got:?}");
        last_snd = meta.snd_msg_id;
        // The sender's clock at SEND, the relay's when it executed the
        // SEND one hop later, ours when it was delivered one hop after.
        assert_eq!(meta.snd_ts, ms(*at));
        assert_eq!(meta.relay_ts, ms(at + HOP));
        assert_eq!(meta.rcv_ts, ms(at + 2 * HOP));
        assert!(!meta.relay_msg_id.is_empty());
    }
    // Nothing else was sent between them: consecutive sender ids.
    assert_eq!(got[2].1.snd_msg_id, got[0].1.snd_msg_id + 2, "{got:?}");
    assert_ne!(got[0].1.relay_msg_id, got[1].1.relay_msg_id);
}

#[test]
fn pairwise_msg_after_a_lost_message_is_skipped() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 4);
    let (a, _b) = sim.connect(0, 1).expect("connected");
    sim.settle_all();
    sim.crash(1);
    for body in [b"a".as_slice(), b"b", b"c"] {
        send(&mut sim, &a, false, body);
    }
    sim.settle_all();
    let (server, rcv_id, n) = fullest_queue(&sim, 1);
    assert_eq!(n, 3);
    assert!(sim.drop_queued(&server, &rcv_id, 1), "the relay loses b");
    sim.restart(1).expect("restarts");
    sim.settle_all();
    let got = conn_msgs(&sim, 1);
    let bodies: Vec<&[u8]> = got.iter().map(|(_, _, b)| b.as_slice()).collect();
    assert_eq!(bodies, [b"a".as_slice(), b"c"]);
    let (first, last) = (&got[0].1, &got[1].1);
    assert_eq!(first.integrity, MsgIntegrity::Ok);
    let lost = first.snd_msg_id + 1;
    assert_eq!(last.snd_msg_id, lost + 1);
    assert_eq!(
        last.integrity,
        MsgIntegrity::Skipped {
            from: lost,
            to: lost
        }
    );
    // The relay's times are when it took the sends, before the restart.
    assert!(first.relay_ts < last.relay_ts && last.relay_ts < last.rcv_ts);
}

#[test]
fn group_msg_carries_the_ext_msg_id_and_times() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 5);
    let hs = sim.build_group(3).expect("group");
    sim.settle_all();
    sim.run_until(sim.now() + 5_000);
    let times: Vec<u64> = [b"g1".as_slice(), b"g2"]
        .into_iter()
        .map(|body| send(&mut sim, &hs[0].alias, true, body))
        .collect();
    sim.settle_all();
    for i in [1, 2] {
        let got = group_msgs(&sim, i);
        assert_eq!(got.len(), 2, "{got:?}");
        for (k, (msg_id, meta, _)) in got.iter().enumerate() {
            // The sender's group-wide ids 1, 2 and its send times, the same
            // at every member; the relay's and ours per member.
            assert_eq!(meta.snd_msg_id, k as u64 + 1);
            assert_eq!(meta.snd_ts, ms(times[k]));
            assert_eq!(meta.integrity, MsgIntegrity::Ok);
            assert!(meta.snd_ts < meta.relay_ts && meta.relay_ts < meta.rcv_ts);
            assert!(*msg_id >= 1);
        }
        assert!(got[0].0 < got[1].0, "local ids increase");
    }
}

#[test]
fn group_msg_ahead_of_a_gap_is_skipped_and_the_gap_reported_once() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 6);
    let hs = sim.build_group(2).expect("group");
    sim.settle_all();
    sim.crash(1);
    for body in [b"g1".as_slice(), b"g2", b"g3", b"g4"] {
        send(&mut sim, &hs[0].alias, true, body);
    }
    sim.settle_all();
    let (server, rcv_id, n) = fullest_queue(&sim, 1);
    assert_eq!(n, 4);
    assert!(sim.drop_queued(&server, &rcv_id, 1), "the relay loses g2");
    sim.restart(1).expect("restarts");
    sim.settle_all();
    let got = group_msgs(&sim, 1);
    let seen: Vec<(u64, MsgIntegrity)> = got
        .iter()
        .map(|(_, m, _)| (m.snd_msg_id, m.integrity))
        .collect();
    assert_eq!(
        seen,
        [
            (1, MsgIntegrity::Ok),
            (3, MsgIntegrity::Skipped { from: 2, to: 2 }),
            (4, MsgIntegrity::Ok),
        ]
    );
}

#[test]
fn redelivered_messages_reach_the_client_once_and_ok() {
    let faults = Faults {
        duplicate_ppm: 1_000_000,
        ..Faults::default()
    };
    let mut sim = Sim::new(2, &config(), faults, 7);
    let (a, _b) = sim.connect(0, 1).expect("connected");
    sim.settle_all();
    for body in [b"x".as_slice(), b"y"] {
        send(&mut sim, &a, false, body);
    }
    sim.settle_all();
    let got = conn_msgs(&sim, 1);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, m, _)| m.integrity == MsgIntegrity::Ok));
    assert_eq!(got[1].1.snd_msg_id, got[0].1.snd_msg_id + 1);
}
