//! The store refuses files it cannot trust, with typed errors.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use common::temp_dir;
use smp_groups_relay::store::{SCHEMA_VERSION, STORE_FILE};
use smp_groups_relay::{Durability, Store, StoreError};

#[test]
fn newer_schema_is_refused() {
    let dir = temp_dir("newer");
    drop(Store::open_dir(&dir, Durability::Process).unwrap());
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    match Store::open_dir(&dir, Durability::Process) {
        Err(StoreError::NewerVersion { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerVersion, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_file_is_corrupt() {
    let dir = temp_dir("garbage");
    std::fs::write(dir.join(STORE_FILE), vec![0x5a; 8192]).unwrap();
    let err = Store::open_dir(&dir, Durability::Process).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
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
    let err = Store::open_dir(&dir, Durability::Process).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_rows_are_reported() {
    let dir = temp_dir("rows");
    drop(Store::open_dir(&dir, Durability::Process).unwrap());
    let conn = rusqlite::Connection::open(dir.join(STORE_FILE)).unwrap();
    conn.execute(
        "INSERT INTO queues VALUES (?1, ?2, ?3, ?4, NULL, NULL, 0, 1)",
        rusqlite::params![vec![1u8; 24], vec![2u8; 24], vec![0u8; 5], vec![0u8; 32]],
    )
    .unwrap();
    drop(conn);
    let store = Store::open_dir(&dir, Durability::Process).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
