//! A transaction applies fully or not at all: failures in the middle of it
//! (after record writes, events and processed marks were already written
//! inside the SQLite transaction) leave nothing visible, and sequence numbers
//! are not consumed.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use smp_groups_store::{Store, StoreError, Transaction};

/// Everything the store shows, to compare before and after.
fn snapshot(s: &Store) -> String {
    format!(
        "{:?}|{:?}|{}|{}|{}",
        s.load_records().unwrap(),
        s.pending_events().unwrap(),
        s.delivered_upto().unwrap(),
        s.record_schema().unwrap(),
        s.is_processed(b"q", b"m1").unwrap(),
    )
}

fn seeded() -> Store {
    let mut s = Store::open_in_memory().unwrap();
    let mut t = Transaction::new();
    t.record_schema = Some(1);
    t.puts = vec![(b"a".to_vec(), b"old".to_vec())];
    t.events_add = vec![b"ev".to_vec()];
    s.apply(&t).unwrap();
    s
}

/// A transaction that writes everything, then fails on its last step.
fn failing_tail() -> Transaction {
    let mut t = Transaction::new();
    t.record_schema = Some(2);
    t.puts = vec![
        (b"a".to_vec(), b"new".to_vec()),
        (b"b".to_vec(), b"new".to_vec()),
    ];
    t.deletes = vec![b"a".to_vec()];
    t.events_add = vec![b"ev2".to_vec(), b"ev3".to_vec()];
    t.processed = vec![(b"q".to_vec(), b"m1".to_vec())];
    t
}

#[test]
fn unknown_delivered_mark_rolls_back_everything() {
    let mut s = seeded();
    let before = snapshot(&s);
    let mut t = failing_tail();
    // Applied after the records, events and processed mark were written:
    // events up to 3 exist inside the transaction, 99 does not.
    t.delivered_upto = Some(99);
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::UnknownEvent { seq: 99, next: 4 })
    ));
    assert_eq!(snapshot(&s), before);
    // Sequence numbers were not consumed by the failed transaction.
    let mut t = Transaction::new();
    t.events_add = vec![b"y".to_vec()];
    let a = s.apply(&t).unwrap();
    assert_eq!(a.event_seqs, vec![2]);
}

#[test]
fn already_processed_rolls_back_everything() {
    let mut s = seeded();
    let mut t = Transaction::new();
    t.processed = vec![(b"q".to_vec(), b"m1".to_vec())];
    s.apply(&t).unwrap();
    let before = snapshot(&s);
    let t = failing_tail();
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::AlreadyProcessed { .. })
    ));
    assert_eq!(snapshot(&s), before);
    assert_eq!(s.pending_events().unwrap().len(), 1);
}

#[test]
fn failure_inside_sqlite_rolls_back_everything() {
    // A trigger (standing in for a disk or constraint failure) makes SQLite
    // fail the processed-mark insert, after everything else was written.
    let dir = common::TempDir::new("sqlite-failure");
    let path = dir.file("s.sqlite3");
    let mut s = Store::open(&path).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![(b"a".to_vec(), b"old".to_vec())];
    t.events_add = vec![b"ev".to_vec()];
    s.apply(&t).unwrap();
    drop(s);
    let raw = common::raw(&path);
    raw.execute_batch(
        "CREATE TRIGGER fail_processed BEFORE INSERT ON processed \
         WHEN NEW.queue = X'66' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    drop(raw);
    let mut s = Store::open(&path).unwrap();
    let before = snapshot(&s);
    let mut t = failing_tail();
    t.processed = vec![(b"f".to_vec(), b"m".to_vec())];
    let err = s.apply(&t).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(snapshot(&s), before);
    drop(s);
    // Still nothing of it after reopening.
    let s = Store::open(&path).unwrap();
    assert_eq!(snapshot(&s), before);
}
