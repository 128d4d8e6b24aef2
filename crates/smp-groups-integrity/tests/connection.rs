//! Per-connection chains: every verdict, state persistence, and a property test
//! over arbitrary delivery orders.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use smp_groups_integrity::{ConnError, ConnVerdict, ConnectionChain};
use smp_groups_wire::agent::{Digest, MsgHeader};

/// Sends `bodies` on `tx`, returning (header, encoded message) per message.
fn send_all(tx: &mut ConnectionChain, bodies: &[&[u8]]) -> Vec<(MsgHeader, Vec<u8>)> {
    bodies
        .iter()
        .map(|b| {
            let h = tx.next_header().unwrap();
            let mut msg = b"header-".to_vec();
            msg.extend_from_slice(&h.snd_msg_id.to_be_bytes());
            msg.extend_from_slice(b);
            tx.record_sent(&h, &msg).unwrap();
            (h, msg)
        })
        .collect()
}

#[test]
fn first_message_is_one_with_zero_previous_digest() {
    let tx = ConnectionChain::new();
    let h = tx.next_header().unwrap();
    assert_eq!(h.snd_msg_id, 1);
    assert_eq!(h.prev_msg_hash, Digest::ZERO);
}

#[test]
fn every_verdict() {
    let mut tx = ConnectionChain::new();
    let m = send_all(&mut tx, &[b"a", b"b", b"c", b"d", b"e"]);
    let mut rx = ConnectionChain::new();
    assert_eq!(rx.receive(&m[0].0, &m[0].1), ConnVerdict::Ok);
    assert_eq!(
        rx.receive(&m[0].0, &m[0].1),
        ConnVerdict::Duplicate { id: 1 }
    );
    assert_eq!(
        rx.receive(&m[0].0, b"other bytes"),
        ConnVerdict::BadId { id: 1, last: 1 }
    );
    assert_eq!(rx.receive(&m[1].0, &m[1].1), ConnVerdict::Ok);
    assert_eq!(
        rx.receive(&m[0].0, &m[0].1),
        ConnVerdict::BadId { id: 1, last: 2 }
    );
    // Message 3 is lost.
    assert_eq!(
        rx.receive(&m[3].0, &m[3].1),
        ConnVerdict::Skipped { from: 3, to: 3 }
    );
    assert_eq!(rx.last_received_id(), 4);
    // Message 5 claims a different history.
    let forged = MsgHeader {
        snd_msg_id: 5,
        prev_msg_hash: Digest([1; 32]),
    };
    assert_eq!(rx.receive(&forged, &m[4].1), ConnVerdict::BadHash { id: 5 });
    assert_eq!(rx.last_received_id(), 5);
    let zero = MsgHeader {
        snd_msg_id: 0,
        prev_msg_hash: Digest::ZERO,
    };
    assert_eq!(
        rx.receive(&zero, b"x"),
        ConnVerdict::BadId { id: 0, last: 5 }
    );
    assert!(!ConnVerdict::Duplicate { id: 1 }.accepted());
    assert!(ConnVerdict::Skipped { from: 1, to: 2 }.accepted());
}

#[test]
fn record_sent_requires_the_next_header() {
    let mut tx = ConnectionChain::new();
    let h = tx.next_header().unwrap();
    let wrong = MsgHeader { snd_msg_id: 2, ..h };
    assert_eq!(
        tx.record_sent(&wrong, b"m"),
        Err(ConnError::NotNextHeader {
            expected: 1,
            got: 2
        })
    );
    let stale_hash = MsgHeader {
        prev_msg_hash: Digest([9; 32]),
        ..h
    };
    assert!(tx.record_sent(&stale_hash, b"m").is_err());
    tx.record_sent(&h, b"m").unwrap();
    assert_eq!(tx.last_sent_id(), 1);
    assert_eq!(
        tx.next_header().unwrap().prev_msg_hash,
        ConnectionChain::message_digest(b"m")
    );
}

#[test]
fn state_survives_serialization() {
    let mut tx = ConnectionChain::new();
    let m = send_all(&mut tx, &[b"a", b"b", b"c"]);
    let mut rx = ConnectionChain::new();
    rx.receive(&m[0].0, &m[0].1);
    rx.receive(&m[1].0, &m[1].1);
    let json = serde_json::to_string(&rx).unwrap();
    let mut back: ConnectionChain = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rx);
    assert_eq!(back.receive(&m[2].0, &m[2].1), ConnVerdict::Ok);
    let tx2: ConnectionChain = postcard::from_bytes(&postcard::to_allocvec(&tx).unwrap()).unwrap();
    assert_eq!(tx2.next_header(), tx.next_header());
}

proptest! {
    /// Delivering any sequence of (possibly repeated, reordered, dropped) messages:
    /// the verdict is exactly determined by the id and the last accepted id.
    #[test]
    fn verdicts_follow_the_ids(order in prop::collection::vec(0usize..12, 0..40)) {
        let bodies: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 3]).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let mut tx = ConnectionChain::new();
        let m = send_all(&mut tx, &refs);
        let mut rx = ConnectionChain::new();
        let mut last = 0u64;
        for i in order {
            let (h, msg) = &m[i];
            let id = h.snd_msg_id;
            let expected = if id < last {
                ConnVerdict::BadId { id, last }
            } else if id == last {
                ConnVerdict::Duplicate { id }
            } else if id > last + 1 {
                ConnVerdict::Skipped { from: last + 1, to: id - 1 }
            } else {
                ConnVerdict::Ok
            };
            prop_assert_eq!(rx.receive(h, msg), expected);
            last = last.max(id);
            prop_assert_eq!(rx.last_received_id(), last);
        }
    }
}
