//! The sync crate's decoders and merge from arbitrary bytes
//! (`smp-groups-sync`): sync messages (updates, snapshots, snapshot
//! requests) and stored replica states. Nothing panics, and what decodes
//! keeps the merge rule's laws:
//!
//! * a message that does not decode changes nothing;
//! * the messages merged in either order give the same entries
//!   (commutativity), merged again change nothing (idempotence);
//! * every entry held is within its bounds, and the replica's size count is
//!   the sum of its encoded entries;
//! * the state and a snapshot (whole, and cut into small parts) give back the
//!   same replica, resp. the same entries;
//! * a session acknowledges every message, and what it sends decodes.
//!
//! Input: up to 8 messages, each `u16 length (LE) || bytes` (the last one
//! takes what is left); the whole input is also read as a stored state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use smp_groups_sync::limits::{MAX_DEVICE_LEN, MAX_MESSAGE_LEN};
use smp_groups_sync::{Action, DeviceId, Entry, Key, ProfileField, Replica, Session, proto};

/// Physical time of the run (ms since the epoch).
const NOW: u64 = 1_700_000_000_000;

fn device(b: u8) -> DeviceId {
    DeviceId::new(&[b; 16]).expect("a 16-byte id")
}

/// A replica holding a few entries of its own, as a device would.
fn base() -> Replica {
    let mut r = Replica::new(device(1));
    r.edit(
        NOW,
        vec![
            (
                Key::profile(ProfileField::DisplayName),
                Some(b"Ada".to_vec()),
            ),
            (Key::preference("theme"), Some(b"dark".to_vec())),
            (Key::app("x"), None),
        ],
    )
    .expect("a valid edit");
    r
}

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < 8 {
        if data.len() < 2 || out.len() == 7 {
            out.push(data);
            break;
        }
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let (msg, tail) = rest.split_at(len.min(rest.len()));
        out.push(msg);
        data = tail;
    }
    out
}

fn entries(r: &Replica) -> Vec<(Key, Entry)> {
    r.entries().map(|(k, e)| (k.clone(), e.clone())).collect()
}

/// Every entry within its bounds, and the size count right.
fn check_invariants(r: &Replica) {
    let mut size = 0;
    for (k, e) in r.entries() {
        assert!(k.check(e.value.as_deref()).is_ok(), "{k} out of bounds");
        let d = e.stamp.device.as_bytes();
        assert!(!d.is_empty() && d.len() <= MAX_DEVICE_LEN);
        size += proto::Entry {
            namespace: k.namespace.to_i32(),
            name: k.name.clone(),
            stamp: Some(proto::Stamp {
                wall_ms: e.stamp.wall_ms,
                counter: e.stamp.counter,
                device: d.to_vec(),
            }),
            value: e.value.clone(),
        }
        .encoded_len();
    }
    assert_eq!(r.size(), size, "size count");
}

fn round_trips(r: &Replica) {
    let state = r.encode_state();
    let back = Replica::decode_state(&state).expect("own state decodes");
    assert_eq!(&back, r, "state round trip");

    let snap = r.snapshot();
    if snap.len() <= MAX_MESSAGE_LEN {
        let s = Replica::from_snapshot(device(9), NOW, &snap).expect("own snapshot decodes");
        assert_eq!(entries(&s), entries(r), "snapshot round trip");
    }
    let mut parts = Replica::new(device(9));
    for p in r.snapshot_parts(512) {
        let a = parts.apply(NOW, &p).expect("own snapshot part decodes");
        assert_eq!(a.dropped, 0);
    }
    assert_eq!(entries(&parts), entries(r), "snapshot parts round trip");
}

fuzz_target!(|data: &[u8]| {
    // The whole input as a stored state.
    if let Ok(r) = Replica::decode_state(data) {
        check_invariants(&r);
        round_trips(&r);
    }

    let msgs = split(data);

    // In order, through a session (as a device handles group messages).
    let mut session = Session::new(base());
    for (id, m) in (1u64..).zip(&msgs) {
        let before = session.replica().clone();
        let actions = session.on_message(NOW, id, m);
        assert_eq!(
            actions.last(),
            Some(&Action::Ack(id)),
            "every message acknowledged"
        );
        for a in &actions {
            if let Action::Send(body) = a {
                assert!(
                    Replica::new(device(9)).apply(NOW, body).is_ok(),
                    "what a session sends decodes"
                );
            }
        }
        if before.clone().apply(NOW, m).is_err() {
            assert_eq!(
                session.replica(),
                &before,
                "a refused message changes nothing"
            );
        }
    }
    let a = session.replica().clone();
    check_invariants(&a);

    // In reverse order.
    let mut b = base();
    for m in msgs.iter().rev() {
        let _ = b.apply(NOW, m);
    }
    check_invariants(&b);
    // The remote bounds (4 x the document bounds) that could make the order
    // matter are far beyond what one input holds.
    assert_eq!(entries(&a), entries(&b), "merge is commutative");

    // Again: nothing changes.
    let mut again = a.clone();
    for m in &msgs {
        if let Ok(applied) = again.apply(NOW, m) {
            assert_eq!(applied.merged, 0, "merge is idempotent");
            assert!(applied.changes.is_empty());
        }
    }
    assert_eq!(entries(&again), entries(&a));

    round_trips(&a);
});
