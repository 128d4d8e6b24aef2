//! The writer thread: commits in submission order, reports each outcome,
//! never blocks its caller, closes the store when asked.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::TempDir;
use smp_groups_store::{Store, StoreError, Transaction, Writer};

fn event(body: &[u8]) -> Transaction {
    let mut t = Transaction::new();
    t.events_add.push(body.to_vec());
    t
}

#[test]
fn commits_in_order_and_reports_each_outcome() {
    let dir = TempDir::new("writer-order");
    let path = dir.file("w.db");
    let writer = Writer::spawn(Store::open(&path).unwrap(), "test", 64).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..20u8 {
        let tx = tx.clone();
        writer
            .submit(event(&[i]), move |r| {
                tx.send((i, r.map(|a| a.event_seqs))).unwrap();
            })
            .unwrap();
    }
    // A delivered mark beyond the issued events fails, alone; the next
    // commits.
    let mut bad = Transaction::new();
    bad.delivered_upto = Some(99);
    let tx2 = tx.clone();
    writer
        .submit(bad, move |r| {
            tx2.send((100, r.map(|a| a.event_seqs))).unwrap();
        })
        .unwrap();
    let tx3 = tx.clone();
    writer
        .submit(event(b"after"), move |r| {
            tx3.send((101, r.map(|a| a.event_seqs))).unwrap();
        })
        .unwrap();
    for i in 0..20u8 {
        let (j, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(j, i);
        assert_eq!(r.unwrap(), vec![u64::from(i) + 1]);
    }
    let (j, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(j, 100);
    assert!(matches!(
        r,
        Err(StoreError::UnknownEvent { seq: 99, next: 21 })
    ));
    let (j, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(j, 101);
    assert_eq!(r.unwrap(), vec![21]);
    // Closed: the callback runs after the store is dropped; then refused.
    let (ctx, crx) = mpsc::channel();
    writer.close(move || ctx.send(()).unwrap()).unwrap();
    crx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(
        writer.submit(event(b"late"), |_| {}),
        Err(StoreError::WriterStopped)
    ));
    let s = Store::open(&path).unwrap();
    let bodies: Vec<Vec<u8>> = s
        .pending_events()
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .collect();
    assert_eq!(bodies.len(), 21);
    assert_eq!(bodies.last().unwrap(), b"after");
}

#[test]
fn a_full_queue_refuses_without_blocking() {
    let writer = Writer::spawn(Store::open_in_memory().unwrap(), "test", 1).unwrap();
    // The first job's callback holds the thread until released.
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    writer
        .submit(event(b"1"), move |r| {
            started_tx.send(r.is_ok()).unwrap();
            hold_rx.recv().unwrap();
        })
        .unwrap();
    assert!(started_rx.recv_timeout(Duration::from_secs(10)).unwrap());
    // One may wait; the next is refused at once.
    let (tx, rx) = mpsc::channel();
    writer
        .submit(event(b"2"), move |r| {
            tx.send(r.unwrap().event_seqs).unwrap();
        })
        .unwrap();
    assert!(matches!(
        writer.submit(event(b"3"), |_| {}),
        Err(StoreError::WriterBusy { depth: 1 })
    ));
    hold_tx.send(()).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), vec![2]);
}

#[test]
fn dropping_the_handle_finishes_the_queued_commits() {
    let dir = TempDir::new("writer-drop");
    let path = dir.file("w.db");
    let writer = Writer::spawn(Store::open(&path).unwrap(), "test", 8).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..5u8 {
        let tx = tx.clone();
        writer
            .submit(event(&[i]), move |r| tx.send(r.is_ok()).unwrap())
            .unwrap();
    }
    drop(writer);
    for _ in 0..5 {
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.pending_events().unwrap().len(), 5);
}
