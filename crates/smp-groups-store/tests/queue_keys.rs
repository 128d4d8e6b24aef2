//! The queue key table: durable across reopening, shared between connections,
//! damaged rows refused.

#![allow(clippy::unwrap_used)]

use smp_groups_store::{QueueKey, Store, StoreError};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smp-groups-qk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("agent.db")
}

#[test]
fn keys_survive_reopening_and_removal_sticks() {
    let path = temp("reopen");
    {
        let store = Store::open(&path).unwrap();
        let mut keys = store.queue_keys().unwrap();
        keys.put("smp://a", b"q1", &[1; 64]).unwrap();
        keys.put("smp://a", b"q2", &[2; 64]).unwrap();
        keys.put("smp://b", b"q1", &[3; 64]).unwrap();
        keys.put("smp://a", b"q2", &[4; 64]).unwrap();
        keys.remove("smp://a", b"q1").unwrap();
    }
    let store = Store::open(&path).unwrap();
    let mut got = store.queue_keys().unwrap().load().unwrap();
    got.sort_by(|a, b| (&a.server, &a.rcv_id).cmp(&(&b.server, &b.rcv_id)));
    assert_eq!(
        got,
        vec![
            QueueKey {
                server: "smp://a".into(),
                rcv_id: b"q2".to_vec(),
                secret: vec![4; 64]
            },
            QueueKey {
                server: "smp://b".into(),
                rcv_id: b"q1".to_vec(),
                secret: vec![3; 64]
            },
        ]
    );
}

#[test]
fn a_damaged_secret_is_refused_and_oversized_ones_are_not_written() {
    let path = temp("damaged");
    let store = Store::open(&path).unwrap();
    let mut keys = store.queue_keys().unwrap();
    assert!(matches!(
        keys.put("smp://a", b"q", &vec![0; 2000]),
        Err(StoreError::TooLarge { .. })
    ));
    keys.put("smp://a", b"q", &[7; 64]).unwrap();
    drop(keys);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE queue_keys SET secret = x'00'", [])
        .unwrap();
    drop(raw);
    let err = store.queue_keys().unwrap().load().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptRow {
                table: "queue_keys",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn in_memory_stores_have_their_own_table() {
    let store = Store::open_in_memory().unwrap();
    let mut keys = store.queue_keys().unwrap();
    keys.put("smp://a", b"q", &[9; 64]).unwrap();
    assert_eq!(keys.load().unwrap().len(), 1);
}
