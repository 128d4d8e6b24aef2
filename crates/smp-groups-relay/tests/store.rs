//! The store refuses files it cannot trust, with typed errors.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use common::temp_dir;
use smp_groups_relay::{Durability, QueueStore, QueueStoreError};
use smp_groups_relay::{QUEUE_STORE_VERSION, STORE_FILE};

#[test]
fn newer_schema_is_refused() {
    let dir = temp_dir("newer");
    drop(QueueStore::open_dir(&dir, Durability::Process).unwrap());
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}",
        QUEUE_STORE_VERSION + 1
    ))
    .unwrap();
    drop(conn);
    match QueueStore::open_dir(&dir, Durability::Process) {
        Err(QueueStoreError::NewerVersion { found, supported }) => {
            assert_eq!(
                (found, supported),
                (QUEUE_STORE_VERSION + 1, QUEUE_STORE_VERSION)
            );
        }
        other => panic!("expected NewerVersion, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_file_is_corrupt() {
    let dir = temp_dir("garbage");
    std::fs::write(dir.join(STORE_FILE), vec![0x5a; 8192]).unwrap();
    let err = QueueStore::open_dir(&dir, Durability::Process).unwrap_err();
    assert!(matches!(err, QueueStoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn foreign_database_is_refused() {
    let dir = temp_dir("foreign");
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute_batch("CREATE TABLE other (x INTEGER)")
        .unwrap();
    drop(conn);
    let err = QueueStore::open_dir(&dir, Durability::Process).unwrap_err();
    assert!(matches!(err, QueueStoreError::Corrupt(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_rows_are_reported() {
    let dir = temp_dir("rows");
    drop(QueueStore::open_dir(&dir, Durability::Process).unwrap());
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute(
        "INSERT INTO queues (recipient_id, sender_id, recipient_key, rcv_dh_secret, sender_key,
           mode, status, can_write) VALUES (?1, ?2, ?3, ?4, NULL, NULL, 0, 1)",
        rusqlite::params![vec![1u8; 24], vec![2u8; 24], vec![0u8; 5], vec![0u8; 32]],
    )
    .unwrap();
    drop(conn);
    let store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, QueueStoreError::Corrupt(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store of schema version 1 (no per-queue counts) is migrated: each queue's
/// message count and body bytes are computed once, and its messages are there.
#[test]
fn version_1_store_is_migrated() {
    let dir = temp_dir("v1");
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute_batch(
        "CREATE TABLE queues (recipient_id BLOB PRIMARY KEY NOT NULL, sender_id BLOB NOT NULL UNIQUE,
           recipient_key BLOB NOT NULL, rcv_dh_secret BLOB NOT NULL, sender_key BLOB, mode INTEGER,
           status INTEGER NOT NULL, can_write INTEGER NOT NULL);
         CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT,
           recipient_id BLOB NOT NULL REFERENCES queues(recipient_id) ON DELETE CASCADE,
           msg_id BLOB NOT NULL, ts INTEGER NOT NULL, quota INTEGER NOT NULL,
           notification INTEGER NOT NULL, body BLOB NOT NULL);
         CREATE INDEX messages_by_queue ON messages(recipient_id, seq);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let key =
        smp_groups_crypto::ed25519::SigningKey::generate(&mut smp_groups_crypto::rng::seeded(1))
            .public_key()
            .to_spki_der();
    conn.execute(
        "INSERT INTO queues VALUES (?1, ?2, ?3, ?4, NULL, NULL, 0, 1)",
        rusqlite::params![vec![1u8; 24], vec![2u8; 24], key, vec![3u8; 32]],
    )
    .unwrap();
    for (i, len) in [(1u8, 10usize), (2, 20), (3, 30)] {
        conn.execute(
            "INSERT INTO messages (recipient_id, msg_id, ts, quota, notification, body)
             VALUES (?1, ?2, ?3, 0, 0, ?4)",
            rusqlite::params![vec![1u8; 24], vec![i; 24], i64::from(i), vec![0u8; len]],
        )
        .unwrap();
    }
    drop(conn);
    let store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!((loaded[0].count, loaded[0].bytes), (3, 60));
    assert_eq!(loaded[0].front.map(|f| (f.id, f.ts)), Some(([1u8; 24], 1)));
    assert_eq!(store.messages(&[1u8; 24]).unwrap().len(), 3);
    drop(store);
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, QUEUE_STORE_VERSION);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The store holds every queue's DH secret: it and its WAL and shared-memory
/// files are readable by the owner only, and wider modes left by an older
/// relay are tightened when it is opened.
#[cfg(unix)]
#[test]
fn store_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = temp_dir("modes");
    let store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.join(format!("{STORE_FILE}{suffix}"));
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    drop(store);
    let file = dir.join(STORE_FILE);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(QueueStore::open_dir(&dir, Durability::Process).unwrap());
    assert_eq!(mode(&file), 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}
