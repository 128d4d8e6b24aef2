//! Opening a store written with an older schema migrates it, in one
//! transaction; a failed migration leaves the file at its old version.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use smp_groups_store::{
    APPLICATION_ID, Limits, Options, STORE_VERSION, Store, StoreError, Transaction,
};

/// A file exactly as version 1 of the store wrote it.
fn write_v1(path: &std::path::Path, value: &[u8]) {
    let raw = common::raw(path);
    raw.execute_batch(
        "PRAGMA journal_mode = WAL;
         BEGIN;
         CREATE TABLE counters (
             id INTEGER PRIMARY KEY CHECK (id = 0),
             record_schema INTEGER NOT NULL,
             next_outbox_id INTEGER NOT NULL,
             next_event_seq INTEGER NOT NULL,
             delivered_upto INTEGER NOT NULL
         );
         INSERT INTO counters VALUES (0, 1, 3, 4, 1);
         CREATE TABLE records (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE outbox (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
         CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
         CREATE TABLE processed (queue BLOB PRIMARY KEY, msg_id BLOB NOT NULL) WITHOUT ROWID;
         INSERT INTO outbox VALUES (2, X'0102');
         INSERT INTO events VALUES (2, X'e2'), (3, X'e3');
         INSERT INTO processed VALUES (X'71', X'6d');
         PRAGMA user_version = 1;
         COMMIT;",
    )
    .unwrap();
    raw.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    raw.execute(
        "INSERT INTO records (key, value) VALUES (X'01', ?1), (X'02', X'')",
        [value],
    )
    .unwrap();
}

fn version(path: &std::path::Path) -> i64 {
    common::raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn v1_store_is_migrated_with_its_data() {
    let dir = common::TempDir::new("migrate");
    let path = dir.file("old.sqlite3");
    write_v1(&path, b"agent state");
    assert_eq!(version(&path), 1);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(
        s.load_records().unwrap(),
        vec![(vec![1], b"agent state".to_vec()), (vec![2], vec![])]
    );
    assert_eq!(s.record_schema().unwrap(), 1);
    let out = s.outbox().unwrap();
    assert_eq!(
        (out.len(), out[0].id, out[0].body.clone()),
        (1, 2, vec![1, 2])
    );
    let ev: Vec<(u64, Vec<u8>)> = s
        .pending_events()
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.body))
        .collect();
    assert_eq!(ev, vec![(2, vec![0xe2]), (3, vec![0xe3])]);
    assert!(s.is_processed(b"q", b"m").unwrap());
    // The counters carried over: the next ids follow the old ones.
    let mut t = Transaction::new();
    t.outbox_add = vec![vec![9]];
    t.events_add = vec![vec![9]];
    let a = s.apply(&t).unwrap();
    assert_eq!((a.outbox_ids, a.event_seqs), (vec![3], vec![4]));
    drop(s);
    assert_eq!(version(&path), STORE_VERSION);
    // Migrated rows carry checksums: damage to them is now detected.
    common::raw(&path)
        .execute("UPDATE records SET value = X'00' WHERE key = X'01'", [])
        .unwrap();
    let s = Store::open(&path).unwrap();
    assert!(matches!(
        s.load_records(),
        Err(StoreError::CorruptRow {
            table: "records",
            ..
        })
    ));
}

#[test]
fn failed_migration_leaves_the_old_version() {
    let dir = common::TempDir::new("migrate-fail");
    let path = dir.file("old.sqlite3");
    // A value over the limit cannot be given a checksum: migration step 2 fails.
    write_v1(&path, &[5; 64]);
    let mut limits = Limits::default();
    limits.max_value_len = 32;
    let mut opts = Options::default();
    opts.limits = limits;
    match Store::open_with(&path, opts) {
        Err(StoreError::Migration {
            from: 1,
            to: 2,
            reason,
        }) => {
            assert!(reason.contains("64 bytes"), "{reason}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert_eq!(version(&path), 1);
    // The columns of step 2 were rolled back with it.
    let cols: i64 = common::raw(&path)
        .query_row(
            "SELECT count(*) FROM pragma_table_info('records') WHERE name = 'sum'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cols, 0);
    // With the default limits, the same file migrates.
    let s = Store::open(&path).unwrap();
    assert_eq!(s.load_records().unwrap()[0].1, vec![5; 64]);
}

#[test]
fn new_store_is_created_at_the_current_version() {
    let dir = common::TempDir::new("migrate-new");
    let path = dir.file("new.sqlite3");
    drop(Store::open(&path).unwrap());
    assert_eq!(version(&path), STORE_VERSION);
    let app: i64 = common::raw(&path)
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
}
