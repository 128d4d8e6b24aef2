//! Apply, read back, events, processed marks, limits.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use smp_groups_store::{Limits, Options, Store, StoreError, Transaction};

fn put(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

#[test]
fn records_put_replace_delete() {
    let mut s = Store::open_in_memory().unwrap();
    let mut t = Transaction::new();
    t.record_schema = Some(3);
    t.puts = vec![put(b"b", b"2"), put(b"a", b"1"), put(b"c", b"3")];
    s.apply(&t).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![put(b"a", b"one")];
    t.deletes = vec![b"c".to_vec(), b"missing".to_vec()];
    s.apply(&t).unwrap();
    assert_eq!(
        s.load_records().unwrap(),
        vec![put(b"a", b"one"), put(b"b", b"2")]
    );
    assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get(b"c").unwrap(), None);
    assert_eq!(s.record_schema().unwrap(), 3);
}

#[test]
fn events_contiguous_and_marked() {
    let mut s = Store::open_in_memory().unwrap();
    let mut t = Transaction::new();
    t.events_add = vec![b"e1".to_vec(), b"e2".to_vec(), b"e3".to_vec()];
    assert_eq!(s.apply(&t).unwrap().event_seqs, vec![1, 2, 3]);
    let seqs: Vec<u64> = s.pending_events().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    s.mark_delivered(2).unwrap();
    let p = s.pending_events().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].seq, p[0].body.as_slice()), (3, b"e3".as_slice()));
    assert_eq!(s.delivered_upto().unwrap(), 2);
    // Marking again is a no-op; marking the future is an error.
    s.mark_delivered(1).unwrap();
    assert_eq!(s.pending_events().unwrap().len(), 1);
    assert!(matches!(
        s.mark_delivered(4),
        Err(StoreError::UnknownEvent { seq: 4, next: 4 })
    ));
    s.mark_delivered(3).unwrap();
    assert!(s.pending_events().unwrap().is_empty());
    let mut t = Transaction::new();
    t.events_add = vec![b"e4".to_vec()];
    assert_eq!(s.apply(&t).unwrap().event_seqs, vec![4]);
}

#[test]
fn processed_messages_are_recognised() {
    let mut s = Store::open_in_memory().unwrap();
    assert!(!s.is_processed(b"q1", b"m1").unwrap());
    let mut t = Transaction::new();
    t.processed = vec![(b"q1".to_vec(), b"m1".to_vec())];
    t.puts = vec![put(b"k", b"v")];
    s.apply(&t).unwrap();
    assert!(s.is_processed(b"q1", b"m1").unwrap());
    assert!(!s.is_processed(b"q2", b"m1").unwrap());
    // Processing the same message again is refused, and writes nothing.
    let mut t = Transaction::new();
    t.processed = vec![(b"q1".to_vec(), b"m1".to_vec())];
    t.puts = vec![put(b"k", b"twice")];
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::AlreadyProcessed { .. })
    ));
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    // The next message on the queue replaces the mark (SMP delivers the next
    // message only after the previous one is acknowledged).
    let mut t = Transaction::new();
    t.processed = vec![(b"q1".to_vec(), b"m2".to_vec())];
    s.apply(&t).unwrap();
    assert!(s.is_processed(b"q1", b"m2").unwrap());
    assert!(!s.is_processed(b"q1", b"m1").unwrap());
    let mut t = Transaction::new();
    t.forget_queues = vec![b"q1".to_vec()];
    s.apply(&t).unwrap();
    assert!(!s.is_processed(b"q1", b"m2").unwrap());
}

#[test]
fn limits_are_enforced_before_writing() {
    let mut limits = Limits::default();
    limits.max_value_len = 8;
    limits.max_items = 3;
    limits.max_pending_events = 2;
    let mut opts = Options::default();
    opts.limits = limits;
    let mut s = Store::open_in_memory_with(opts).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![put(b"a", b"12345678"), put(b"b", b"123456789")];
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::TooLarge { len: 9, max: 8, .. })
    ));
    let mut t = Transaction::new();
    t.deletes = vec![vec![1], vec![2], vec![3], vec![4]];
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::TooMany {
            count: 4,
            max: 3,
            ..
        })
    ));
    let mut t = Transaction::new();
    t.events_add = vec![vec![1], vec![2]];
    s.apply(&t).unwrap();
    let mut t = Transaction::new();
    t.events_add = vec![vec![3]];
    t.puts = vec![put(b"x", b"y")];
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::TooMany {
            count: 3,
            max: 2,
            ..
        })
    ));
    assert_eq!(s.get(b"x").unwrap(), None);
    s.mark_delivered(1).unwrap();
    s.apply(&t).unwrap();
    assert!(s.load_records().unwrap().len() == 1);
}

#[test]
fn delivered_mark_inside_a_transaction() {
    let mut s = Store::open_in_memory().unwrap();
    let mut t = Transaction::new();
    t.events_add = vec![b"e1".to_vec(), b"e2".to_vec()];
    s.apply(&t).unwrap();
    // The next input's transaction marks the previous burst and adds one event.
    let mut t = Transaction::new();
    t.events_add = vec![b"e3".to_vec()];
    t.delivered_upto = Some(2);
    assert_eq!(s.apply(&t).unwrap().event_seqs, vec![3]);
    let p = s.pending_events().unwrap();
    assert_eq!((p.len(), p[0].seq), (1, 3));
    assert_eq!(s.delivered_upto().unwrap(), 2);
    // A mark beyond what was issued fails the whole transaction.
    let mut t = Transaction::new();
    t.puts = vec![put(b"k", b"v")];
    t.delivered_upto = Some(9);
    assert!(matches!(
        s.apply(&t),
        Err(StoreError::UnknownEvent { seq: 9, next: 4 })
    ));
    assert_eq!(s.get(b"k").unwrap(), None);
    assert_eq!(s.pending_events().unwrap().len(), 1);
}
