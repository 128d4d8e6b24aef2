//! Group commit: a merged transaction, applied once, leaves the store as
//! applying its parts one after the other does.

#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)] // tests fail by panicking

use smp_groups_store::{Store, StoreError, Transaction};

/// xorshift64*: a small deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What both stores look like.
fn snapshot(s: &Store) -> impl PartialEq + std::fmt::Debug {
    (
        s.load_records().unwrap(),
        s.pending_events()
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.body))
            .collect::<Vec<_>>(),
        s.processed_marks().unwrap(),
        s.delivered_upto().unwrap(),
        s.record_schema().unwrap(),
    )
}

/// One input's transaction: records over a few keys (so puts and deletes of
/// one key meet across inputs), events, a processed mark on one of a few queues, forgotten queues, a
/// delivered mark.
fn random_txn(rng: &mut Rng, issued_events: u64, msg: &mut u64) -> Transaction {
    let mut t = Transaction::new();
    if rng.below(4) == 0 {
        t.record_schema = Some(u32::try_from(rng.below(5)).unwrap());
    }
    for _ in 0..rng.below(4) {
        let k = vec![u8::try_from(rng.below(6)).unwrap()];
        let v = rng.next().to_be_bytes().to_vec();
        t.puts.push((k, v));
    }
    for _ in 0..rng.below(3) {
        t.deletes.push(vec![u8::try_from(rng.below(6)).unwrap()]);
    }
    for _ in 0..rng.below(3) {
        t.events_add.push(rng.next().to_be_bytes().to_vec());
    }
    if rng.below(2) == 0 {
        *msg += 1;
        t.processed = vec![(
            vec![b'q', u8::try_from(rng.below(3)).unwrap()],
            msg.to_be_bytes().to_vec(),
        )];
    }
    if rng.below(6) == 0 {
        t.forget_queues
            .push(vec![b'q', u8::try_from(rng.below(3)).unwrap()]);
    }
    if issued_events > 0 && rng.below(3) == 0 {
        t.delivered_upto = Some(1 + rng.below(issued_events));
    }
    t
}

#[test]
fn a_merged_group_equals_its_parts_applied_in_order() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut one_by_one = Store::open_in_memory().unwrap();
        let mut grouped = Store::open_in_memory().unwrap();
        let mut issued_events = 0;
        let mut msg = 0;
        for round in 0..30 {
            let k = 1 + rng.below(6);
            let mut merged = Transaction::new();
            let mut seqs = Vec::new();
            for _ in 0..k {
                let t = random_txn(&mut rng, issued_events, &mut msg);
                let applied = one_by_one.apply(&t).unwrap();
                seqs.extend(applied.event_seqs);
                merged.merge(t);
            }
            let applied = grouped.apply(&merged).unwrap();
            assert_eq!(applied.event_seqs, seqs, "seed {seed} round {round}");
            assert_eq!(
                snapshot(&one_by_one),
                snapshot(&grouped),
                "seed {seed} round {round}"
            );
            issued_events += seqs.len() as u64;
        }
    }
}

#[test]
fn merge_orders_puts_and_deletes_of_one_key() {
    let k = b"k".to_vec();
    // delete then put: the put stays.
    let mut a = Transaction::new();
    a.deletes.push(k.clone());
    let mut b = Transaction::new();
    b.puts.push((k.clone(), b"new".to_vec()));
    a.merge(b);
    assert_eq!(a.puts, vec![(k.clone(), b"new".to_vec())]);
    assert!(a.deletes.is_empty());
    // put then delete: nothing is put.
    let mut a = Transaction::new();
    a.puts.push((k.clone(), b"old".to_vec()));
    let mut b = Transaction::new();
    b.deletes.push(k.clone());
    a.merge(b);
    assert!(a.puts.is_empty());
    assert_eq!(a.deletes, vec![k.clone()]);
    // put then put: the later value only.
    let mut a = Transaction::new();
    a.puts.push((k.clone(), b"1".to_vec()));
    let mut b = Transaction::new();
    b.puts.push((k.clone(), b"2".to_vec()));
    a.merge(b);
    assert_eq!(a.puts, vec![(k, b"2".to_vec())]);
}

#[test]
fn marks_of_one_queue_in_a_group_keep_the_last_and_refuse_a_repeat() {
    let mut s = Store::open_in_memory().unwrap();
    let mut a = Transaction::new();
    a.processed = vec![(b"q".to_vec(), b"m1".to_vec())];
    let mut b = Transaction::new();
    b.processed = vec![
        (b"q".to_vec(), b"m2".to_vec()),
        (b"r".to_vec(), b"m1".to_vec()),
    ];
    a.merge(b);
    assert_eq!(a.processed.len(), 2);
    s.apply(&a).unwrap();
    assert!(s.is_processed(b"q", b"m2").unwrap());
    assert!(s.is_processed(b"r", b"m1").unwrap());
    // A group holding a message processed before fails as a whole.
    let mut c = Transaction::new();
    c.events_add.push(b"e".to_vec());
    let mut d = Transaction::new();
    d.processed = vec![(b"r".to_vec(), b"m1".to_vec())];
    c.merge(d);
    assert!(matches!(
        s.apply(&c),
        Err(StoreError::AlreadyProcessed { .. })
    ));
    assert!(s.pending_events().unwrap().is_empty());
}
