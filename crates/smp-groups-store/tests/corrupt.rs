//! Damaged, foreign or newer files give typed errors, never silent loss.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use smp_groups_store::{STORE_VERSION, Store, StoreError, Transaction};

fn populated(path: &std::path::Path) {
    let mut s = Store::open(path).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![
        (b"k1".to_vec(), b"a record of some length".to_vec()),
        (b"k2".to_vec(), b"another record".to_vec()),
    ];
    t.events_add = vec![b"ev1".to_vec(), b"ev2".to_vec(), b"ev3".to_vec()];
    s.apply(&t).unwrap();
}

#[test]
fn garbage_file_is_not_a_database() {
    let dir = common::TempDir::new("garbage");
    let path = dir.file("garbage.sqlite3");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    match Store::open(&path) {
        Err(StoreError::NotADatabase { path: p }) => assert_eq!(p, path),
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    // The file was not touched.
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn newer_schema_is_refused() {
    let dir = common::TempDir::new("newer");
    let path = dir.file("s.sqlite3");
    populated(&path);
    common::raw(&path)
        .pragma_update(None, "user_version", STORE_VERSION + 1)
        .unwrap();
    match Store::open(&path) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (STORE_VERSION + 1, STORE_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // Refusing changed nothing: the version is still the newer one.
    let v: i64 = common::raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, STORE_VERSION + 1);
}

#[test]
fn foreign_databases_are_refused() {
    let dir = common::TempDir::new("foreign");
    let other = dir.file("other.sqlite3");
    common::raw(&other)
        .execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');")
        .unwrap();
    assert!(matches!(Store::open(&other), Err(StoreError::Foreign(_))));
    let n: i64 = common::raw(&other)
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "nothing was created in the foreign file");
    let versioned = dir.file("versioned.sqlite3");
    common::raw(&versioned)
        .execute_batch("PRAGMA user_version = 1; PRAGMA application_id = 42;")
        .unwrap();
    assert!(matches!(
        Store::open(&versioned),
        Err(StoreError::Foreign(_))
    ));
}

#[test]
fn truncated_record_is_reported() {
    let dir = common::TempDir::new("truncated");
    let path = dir.file("s.sqlite3");
    populated(&path);
    common::raw(&path)
        .execute(
            "UPDATE records SET value = substr(value, 1, 5) WHERE key = CAST('k1' AS BLOB)",
            [],
        )
        .unwrap();
    let s = Store::open(&path).unwrap();
    match s.load_records() {
        Err(StoreError::CorruptRow { table, id, reason }) => {
            assert_eq!(table, "records");
            assert_eq!(id, hex::encode(b"k1"));
            assert!(reason.contains("5 bytes stored, 23 written"), "{reason}");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    assert!(matches!(s.get(b"k1"), Err(StoreError::CorruptRow { .. })));
    assert_eq!(s.get(b"k2").unwrap(), Some(b"another record".to_vec()));
}

#[test]
fn flipped_bytes_are_reported() {
    let dir = common::TempDir::new("flipped");
    let path = dir.file("s.sqlite3");
    populated(&path);
    let raw = common::raw(&path);
    raw.execute(
        "UPDATE records SET value = CAST('another recorx' AS BLOB) \
         WHERE key = CAST('k2' AS BLOB)",
        [],
    )
    .unwrap();
    raw.execute("UPDATE events SET body = X'657632ff' WHERE seq = 2", [])
        .unwrap();
    drop(raw);
    let s = Store::open(&path).unwrap();
    match s.get(b"k2") {
        Err(StoreError::CorruptRow {
            table: "records",
            reason,
            ..
        }) => {
            assert_eq!(reason, "checksum mismatch");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    assert!(matches!(
        s.pending_events(),
        Err(StoreError::CorruptRow {
            table: "events",
            ..
        })
    ));
}

#[test]
fn a_missing_event_is_reported_not_skipped() {
    let dir = common::TempDir::new("missing-event");
    let path = dir.file("s.sqlite3");
    populated(&path);
    common::raw(&path)
        .execute("DELETE FROM events WHERE seq = 2", [])
        .unwrap();
    let s = Store::open(&path).unwrap();
    match s.pending_events() {
        Err(StoreError::CorruptRow {
            table: "events",
            id,
            ..
        }) => assert_eq!(id, "3"),
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    common::raw(&path)
        .execute("DELETE FROM events WHERE seq = 3", [])
        .unwrap();
    assert!(matches!(
        Store::open(&path).unwrap().pending_events(),
        Err(StoreError::CorruptRow {
            table: "events",
            ..
        })
    ));
}

#[test]
fn damaged_pages_are_reported_at_open() {
    let dir = common::TempDir::new("pages");
    let path = dir.file("s.sqlite3");
    {
        let mut s = Store::open(&path).unwrap();
        for i in 0..200u32 {
            let mut t = Transaction::new();
            t.puts = vec![(i.to_be_bytes().to_vec(), vec![7; 300])];
            s.apply(&t).unwrap();
        }
    }
    // Checkpoint the log into the file, then overwrite a page in the middle.
    common::raw(&path)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096);
    for b in &mut bytes[4 * 4096..5 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    match Store::open(&path) {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
