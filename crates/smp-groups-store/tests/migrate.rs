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

/// FNV-1a 64 as the store keeps it (signed), to write rows as version 2 and
/// later did.
fn sum(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_le_bytes(h.to_le_bytes())
}

/// A file exactly as version 3 of the store wrote it (the last with an
/// outbox): two outbox items not yet confirmed, records, events (1 delivered,
/// 2 and 3 pending), a processed mark and the (empty) queue keys table.
fn write_v3(path: &std::path::Path) {
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
         INSERT INTO counters VALUES (0, 3, 8, 4, 1);
         CREATE TABLE records (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE outbox (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
         CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
         CREATE TABLE processed (queue BLOB PRIMARY KEY, msg_id BLOB NOT NULL) WITHOUT ROWID;
         ALTER TABLE records ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
         ALTER TABLE records ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE outbox ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
         ALTER TABLE outbox ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE events ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
         ALTER TABLE events ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE queue_keys (
             server TEXT NOT NULL,
             rcv_id BLOB NOT NULL,
             secret BLOB NOT NULL,
             sum INTEGER NOT NULL,
             PRIMARY KEY (server, rcv_id)
         ) WITHOUT ROWID;
         INSERT INTO processed VALUES (X'71', X'6d');
         PRAGMA user_version = 3;
         COMMIT;",
    )
    .unwrap();
    raw.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    let records: [(&[u8], &[u8]); 2] = [(b"\x01", b"agent state"), (b"\x02", b"")];
    for (key, value) in records {
        let len = i64::try_from(value.len()).unwrap();
        raw.execute(
            "INSERT INTO records (key, value, len, sum) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![key, value, len, sum(value)],
        )
        .unwrap();
    }
    let numbered: [(&str, i64, &[u8]); 4] = [
        ("outbox", 6, &[7; 300]),
        ("outbox", 7, b"op"),
        ("events", 2, b"e2"),
        ("events", 3, b"e3"),
    ];
    for (table, id, body) in numbered {
        let len = i64::try_from(body.len()).unwrap();
        raw.execute(
            // (id or seq, body, len, sum), in the order of the columns.
            &format!("INSERT INTO {table} VALUES (?1, ?2, ?3, ?4)"),
            rusqlite::params![id, body, len, sum(body)],
        )
        .unwrap();
    }
}

fn has_table(path: &std::path::Path, name: &str) -> bool {
    common::raw(path)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        == 1
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
    let ev: Vec<(u64, Vec<u8>)> = s
        .pending_events()
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.body))
        .collect();
    assert_eq!(ev, vec![(2, vec![0xe2]), (3, vec![0xe3])]);
    assert!(s.is_processed(b"q", b"m").unwrap());
    // The counters carried over: the next sequence number follows the old ones.
    let mut t = Transaction::new();
    t.events_add = vec![vec![9]];
    let a = s.apply(&t).unwrap();
    assert_eq!(a.event_seqs, vec![4]);
    drop(s);
    assert_eq!(version(&path), STORE_VERSION);
    // Step 4 dropped the outbox (and its item) on the way.
    assert!(!has_table(&path, "outbox"));
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
fn v3_store_loses_its_outbox_and_keeps_everything_else() {
    let dir = common::TempDir::new("migrate-v3");
    let path = dir.file("v3.sqlite3");
    write_v3(&path);
    assert_eq!(version(&path), 3);
    assert!(has_table(&path, "outbox"));
    let mut s = Store::open(&path).unwrap();
    assert_eq!(version(&path), 4);
    assert_eq!(STORE_VERSION, 4);
    // The outbox table and its id counter are gone.
    assert!(!has_table(&path, "outbox"));
    let counter: i64 = common::raw(&path)
        .query_row(
            "SELECT count(*) FROM pragma_table_info('counters') WHERE name = 'next_outbox_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counter, 0);
    // Records, events, marks and counters survive, checksums still checked.
    assert_eq!(
        s.load_records().unwrap(),
        vec![(vec![1], b"agent state".to_vec()), (vec![2], vec![])]
    );
    assert_eq!(s.record_schema().unwrap(), 3);
    let ev: Vec<(u64, Vec<u8>)> = s
        .pending_events()
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.body))
        .collect();
    assert_eq!(ev, vec![(2, b"e2".to_vec()), (3, b"e3".to_vec())]);
    assert_eq!(s.delivered_upto().unwrap(), 1);
    assert!(s.is_processed(b"q", b"m").unwrap());
    // The queue keys table is untouched.
    let keys: i64 = common::raw(&path)
        .query_row("SELECT count(*) FROM queue_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, 0);
    assert!(has_table(&path, "queue_keys"));
    // Commits work on the migrated file, numbering events on.
    let mut t = Transaction::new();
    t.puts = vec![(vec![3], b"new".to_vec())];
    t.events_add = vec![b"e4".to_vec()];
    t.delivered_upto = Some(2);
    assert_eq!(s.apply(&t).unwrap().event_seqs, vec![4]);
    drop(s);
    // Reopening a version 4 file runs no step and keeps it all.
    let s = Store::open(&path).unwrap();
    assert_eq!(version(&path), 4);
    assert_eq!(s.load_records().unwrap().len(), 3);
    let seqs: Vec<u64> = s.pending_events().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 4]);
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
