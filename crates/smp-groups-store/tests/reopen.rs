//! Everything committed is there after closing and reopening the file.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use smp_groups_store::{Store, Transaction};

#[test]
fn committed_state_survives_reopen() {
    let dir = common::TempDir::new("reopen");
    let path = dir.file("nested/dir/agent.sqlite3");
    {
        let mut s = Store::open(&path).unwrap();
        for i in 0..20u8 {
            let mut t = Transaction::new();
            t.record_schema = Some(7);
            t.puts = vec![(vec![i % 4], vec![i; 100])];
            t.events_add = vec![vec![i, 0], vec![i, 1]];
            t.processed = vec![(b"q".to_vec(), vec![i])];
            s.apply(&t).unwrap();
        }
        s.mark_delivered(30).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.record_schema().unwrap(), 7);
    let recs = s.load_records().unwrap();
    assert_eq!(
        recs,
        vec![
            (vec![0], vec![16; 100]),
            (vec![1], vec![17; 100]),
            (vec![2], vec![18; 100]),
            (vec![3], vec![19; 100]),
        ]
    );
    let ev = s.pending_events().unwrap();
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (31..=40).collect::<Vec<_>>());
    assert_eq!(ev[0].body, vec![15, 0]);
    assert_eq!(ev[9].body, vec![19, 1]);
    assert_eq!(s.delivered_upto().unwrap(), 30);
    assert!(s.is_processed(b"q", &[19]).unwrap());
    assert!(!s.is_processed(b"q", &[18]).unwrap());
}

#[test]
fn file_is_in_wal_mode() {
    let dir = common::TempDir::new("wal");
    let path = dir.file("s.sqlite3");
    let mut s = Store::open(&path).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![(b"k".to_vec(), b"v".to_vec())];
    s.apply(&t).unwrap();
    let raw = common::raw(&path);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, smp_groups_store::STORE_VERSION);
}

/// The database holds queue keys and ratchet state: it and its WAL and
/// shared-memory files are readable by the owner only, whatever the umask,
/// and a file left with a wider mode is tightened when opened.
#[cfg(unix)]
#[test]
fn database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = common::TempDir::new("modes");
    let path = dir.file("agent.sqlite3");
    let mut s = Store::open(&path).unwrap();
    let mut t = Transaction::new();
    t.puts = vec![(b"k".to_vec(), b"v".to_vec())];
    s.apply(&t).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    drop(s);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path).unwrap());
    assert_eq!(mode(&path), 0o600);
}
