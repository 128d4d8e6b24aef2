//! The core's typed records through the store (`smp_groups_agent::records`):
//! key encoding, batches applied as transactions, and an agent restored from
//! a reopened file.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use smp_groups_agent::records::{
    add_batch, decode_key, encode_key, from_batch, load_core, queue_key,
};
use smp_groups_core::{Agent, Command, Config, Input, Key, Output, SCHEMA_VERSION, Timestamp};
use smp_groups_store::{Store, StoreError, Transaction};

#[test]
fn keys_round_trip_and_sort_by_id() {
    let keys = [
        Key::Meta,
        Key::Conn(0),
        Key::Conn(7),
        Key::Conn(256),
        Key::Conn(u64::MAX),
        Key::Group(String::new()),
        Key::Group("friends ü".into()),
        Key::Invitation("inv1".into()),
        Key::Op(42),
        Key::Member("g".into(), [9; 16]),
        Key::Sent("g".into(), 3),
        Key::Sent("friends ü".into(), u64::MAX),
        Key::Profiles("g".into()),
        Key::Shared("g".into(), 5),
        Key::Direct("g".into()),
        Key::Direct("friends ü".into()),
        Key::Proof("g".into(), 3),
        Key::Proof("friends ü".into(), u64::MAX),
        Key::ProofSent("g".into(), 3),
    ];
    for k in &keys {
        assert_eq!(&decode_key(&encode_key(k)).unwrap(), k);
    }
    assert_eq!(encode_key(&Key::Conn(7)), [1, 0, 0, 0, 0, 0, 0, 0, 7]);
    assert_eq!(encode_key(&Key::Group("g".into())), [2, b'g']);
    // Each kind of record has its own tag: a group's Profiles (7) and
    // Direct (9) records never share a key.
    assert_eq!(encode_key(&Key::Profiles("g".into())), [7, b'g']);
    assert_eq!(encode_key(&Key::Shared("g".into(), 5))[0], 8);
    assert_eq!(encode_key(&Key::Direct("g".into())), [9, b'g']);
    assert_eq!(
        encode_key(&Key::Proof("g".into(), 258)),
        [10, 0, 0, 0, 0, 0, 0, 1, 2, b'g']
    );
    assert_eq!(encode_key(&Key::ProofSent("g".into(), 1))[0], 11);
    let mut encoded: Vec<Vec<u8>> = keys.iter().map(encode_key).collect();
    encoded.sort();
    encoded.dedup();
    assert_eq!(encoded.len(), keys.len(), "two keys share an encoding");
    assert_eq!(
        encode_key(&Key::Sent("g".into(), 258)),
        [6, 0, 0, 0, 0, 0, 0, 1, 2, b'g']
    );
    // Stored order (bytes) matches the numeric order of ids.
    assert!(encode_key(&Key::Conn(7)) < encode_key(&Key::Conn(256)));
}

#[test]
fn malformed_keys_are_damaged_rows() {
    for bad in [
        &[][..],
        &[0, 1],
        &[1, 0, 0],
        &[4; 10],
        &[2, 0xff, 0xfe],
        &[6, 0, 0, 1],
        &[6, 0, 0, 0, 0, 0, 0, 0, 1, 0xff],
        &[12],
        &[10, 0, 0, 1],
    ] {
        assert!(
            matches!(
                decode_key(bad),
                Err(StoreError::CorruptRow {
                    table: "records",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

/// Applies every output of `agent` the way the runtime does: each storage
/// batch as one transaction; returns the relay operations.
fn drain(agent: &mut Agent, store: &mut Store) -> Vec<smp_groups_core::RelayOp> {
    let mut ops = Vec::new();
    while let Some(out) = agent.poll() {
        match out {
            Output::Store(batch) => {
                store.apply(&from_batch(batch)).unwrap();
            }
            Output::Relay(op) => ops.push(op),
            Output::Event(_) => {}
        }
    }
    ops
}

#[test]
fn agent_restores_from_reopened_store() {
    let path = common::temp_db("records");
    let config = Config {
        approval_threshold: 5,
        ..Config::default()
    };
    let issued = {
        let mut store = Store::open(&path).unwrap();
        let mut agent = Agent::new(config.clone());
        assert!(drain(&mut agent, &mut store).is_empty());
        let mut rng = smp_groups_crypto::rng::seeded(1);
        agent.handle(
            Input::Command {
                corr: "1".into(),
                command: Command::NewConn {
                    alias: Some("bob".into()),
                },
            },
            Timestamp::from_millis(1_000),
            &mut rng,
        );
        let ops = drain(&mut agent, &mut store);
        assert!(
            !ops.is_empty(),
            "creating a connection issues relay operations"
        );
        ops
    };
    let store = Store::open(&path).unwrap();
    let loaded = load_core(&store).unwrap();
    assert_eq!(loaded.schema, SCHEMA_VERSION);
    assert_eq!(loaded.records.first().map(|r| &r.0), Some(&Key::Meta));
    assert!(loaded.records.iter().any(|(k, _)| matches!(k, Key::Op(_))));
    let mut agent = Agent::restore(loaded.records, loaded.schema).unwrap();
    assert_eq!(agent.config(), &config);
    // The restored agent re-issues the operations that were in flight.
    let mut reissued = Vec::new();
    while let Some(out) = agent.poll() {
        if let Output::Relay(op) = out {
            reissued.push(op);
        }
    }
    for op in &issued {
        assert!(reissued.contains(op), "{op:?} not re-issued");
    }
}

#[test]
fn batch_deletes_are_applied() {
    let mut store = Store::open_in_memory().unwrap();
    let mut b = smp_groups_core::StoreBatch {
        schema: SCHEMA_VERSION,
        puts: vec![(Key::Op(1), vec![1]), (Key::Op(2), vec![2])],
        deletes: vec![],
    };
    store.apply(&from_batch(b.clone())).unwrap();
    b.puts = vec![(Key::Invitation("i".into()), vec![3])];
    b.deletes = vec![Key::Op(1)];
    let mut t = Transaction::new();
    t.events_add = vec![vec![9]];
    add_batch(&mut t, b);
    store.apply(&t).unwrap();
    let recs = load_core(&store).unwrap().records;
    assert_eq!(
        recs,
        vec![
            (Key::Invitation("i".into()), vec![3]),
            (Key::Op(2), vec![2])
        ]
    );
    assert_eq!(store.pending_events().unwrap().len(), 1);
}

#[test]
fn queue_keys_are_unambiguous() {
    let a = queue_key("smp://a", b"bc").unwrap();
    let b = queue_key("smp://ab", b"c").unwrap();
    assert_ne!(a, b);
    assert_eq!(a, [&[0, 7][..], b"smp://a", b"bc"].concat());
    assert!(queue_key(&"x".repeat(70_000), b"q").is_none());
    let mut store = Store::open_in_memory().unwrap();
    let mut t = Transaction::new();
    t.processed = vec![(a.clone(), b"m".to_vec())];
    store.apply(&t).unwrap();
    assert!(store.is_processed(&a, b"m").unwrap());
    assert!(!store.is_processed(&b, b"m").unwrap());
}
