//! Crash safety under a real process kill: a child process (this test binary,
//! re-executed) applies transactions in a loop and reports each commit; the
//! test kills it with SIGKILL at a random point, reopens the store and checks
//! that every transaction is either fully there or not at all, that every
//! reported commit survived, that event sequence numbers are contiguous and
//! that no event is lost or delivered twice.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use smp_groups_store::{Store, Transaction};

const CHILD_ENV: &str = "SMP_GROUPS_STORE_CRASH_CHILD";
const TEST_NAME: &str = "survives_sigkill_at_random_points";
const KILLS: usize = 24;
const QUEUE: &[u8] = b"queue";

/// The value batch `i` writes to key `k{i % 5}`: its number, then filler
/// whose length varies so that transactions span different page counts.
fn value(i: u64) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    let fill = usize::try_from(i * 997 % 3000).unwrap();
    v.extend(std::iter::repeat_n(u8::try_from(i % 251).unwrap(), fill));
    v
}

/// The transaction of batch `i` (1-based). Batch `i` gets event sequence
/// numbers `2i - 1` and `2i`.
fn batch(i: u64) -> Transaction {
    let mut t = Transaction::new();
    t.record_schema = Some(1);
    t.puts = vec![
        (format!("k{}", i % 5).into_bytes(), value(i)),
        (format!("tmp{i}").into_bytes(), value(i + 1)),
        (b"last".to_vec(), i.to_be_bytes().to_vec()),
    ];
    t.deletes = vec![format!("tmp{}", i - 1).into_bytes()];
    t.events_add = vec![event(i, 0), event(i, 1)];
    t.processed = vec![(QUEUE.to_vec(), i.to_be_bytes().to_vec())];
    t
}

fn event(i: u64, j: u8) -> Vec<u8> {
    let mut e = i.to_be_bytes().to_vec();
    e.push(j);
    e
}

fn last(s: &Store) -> u64 {
    s.get(b"last")
        .unwrap()
        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
}

/// Applies batches forever, printing "committed N" after each commit.
fn child(path: &Path) {
    let mut s = Store::open(path).unwrap();
    let mut out = std::io::stdout();
    for i in last(&s) + 1.. {
        s.apply(&batch(i)).unwrap();
        if writeln!(out, "committed {i}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return; // the test is gone
        }
    }
}

/// The state after batches 1..=n, exactly.
fn check_state(s: &Store, n: u64) {
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for k in 0..5 {
        if let Some(i) = (1..=n).rev().find(|i| i % 5 == k) {
            want.push((format!("k{k}").into_bytes(), value(i)));
        }
    }
    if n > 0 {
        want.push((b"last".to_vec(), n.to_be_bytes().to_vec()));
        want.push((format!("tmp{n}").into_bytes(), value(n + 1)));
    }
    want.sort();
    assert_eq!(s.load_records().unwrap(), want, "records after batch {n}");
    if n > 0 {
        assert!(s.is_processed(QUEUE, &n.to_be_bytes()).unwrap());
        assert!(!s.is_processed(QUEUE, &(n - 1).to_be_bytes()).unwrap());
        assert_eq!(s.record_schema().unwrap(), 1);
    }
}

/// Simple deterministic generator for the kill points.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn survives_sigkill_at_random_points() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let dir = common::TempDir::new("crash");
    let path = dir.file("agent.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut n = 0u64;
    // Every event the "client" took, in order.
    let mut taken: Vec<(u64, Vec<u8>)> = Vec::new();
    for round in 0..KILLS {
        let wait_for = 1 + rng.below(30);
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The pipe stays open until the child is dead, so that the child
        // never sees it close and ends on its own.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut reported = 0u64;
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("committed ") {
                reported = i.parse().unwrap();
                seen += 1;
                if seen == wait_for {
                    break;
                }
            }
        }
        // The child is still applying batches: kill it wherever it is.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        drop(lines);
        assert!(
            !status.success(),
            "round {round}: the child ended on its own"
        );
        assert!(reported > n, "round {round}: the child made no progress");

        let s = Store::open(&path).unwrap();
        let now = last(&s);
        assert!(
            now >= reported,
            "round {round}: commit {reported} reported, store at {now}"
        );
        n = now;
        check_state(&s, n);
        // Events: contiguous, following the last delivered one, exactly the
        // two of each batch not yet taken.
        let pending = s.pending_events().unwrap();
        let from = taken.last().map_or(1, |(seq, _)| seq + 1);
        let want: Vec<(u64, Vec<u8>)> = (from..=2 * n)
            .map(|seq| (seq, event(seq.div_ceil(2), u8::from(seq % 2 == 0))))
            .collect();
        let got: Vec<(u64, Vec<u8>)> = pending.into_iter().map(|e| (e.seq, e.body)).collect();
        assert_eq!(got, want, "round {round}: pending events");
        // The client takes a random prefix of them.
        let take = usize::try_from(rng.below(got.len() as u64 + 1)).unwrap();
        if take > 0 {
            taken.extend(got[..take].iter().cloned());
            drop(s);
            let mut s = Store::open(&path).unwrap();
            s.mark_delivered(taken.last().unwrap().0).unwrap();
        }
    }
    // Taken plus still pending is every event of batches 1..=n, once each.
    let s = Store::open(&path).unwrap();
    let mut all = taken;
    all.extend(
        s.pending_events()
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.body)),
    );
    let want: Vec<(u64, Vec<u8>)> = (1..=2 * n)
        .map(|seq| (seq, event(seq.div_ceil(2), u8::from(seq % 2 == 0))))
        .collect();
    assert_eq!(all, want);
    assert!(n >= KILLS as u64);
}
