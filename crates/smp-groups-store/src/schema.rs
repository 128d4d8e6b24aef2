//! The schema and its versioned migrations.
//!
//! `PRAGMA user_version` holds the store's schema version and
//! `PRAGMA application_id` marks the file as this store's. At open, every
//! missing migration step runs in one transaction, so a file is always at one
//! version: a failed or interrupted migration leaves it at the old one.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::checksum::checksum;
use crate::error::StoreError;
use crate::limits::Limits;

/// The schema version this program writes and reads.
pub const STORE_VERSION: i64 = 4;

/// The `application_id` of a store file ("SMPG").
pub const APPLICATION_ID: i64 = 0x534d_5047;

/// Version 1: records, outbox, events, processed messages, counters.
const V1: &str = "
CREATE TABLE counters (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    record_schema INTEGER NOT NULL,
    next_outbox_id INTEGER NOT NULL,
    next_event_seq INTEGER NOT NULL,
    delivered_upto INTEGER NOT NULL
);
INSERT INTO counters VALUES (0, 0, 1, 1, 0);
CREATE TABLE records (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE outbox (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE processed (queue BLOB PRIMARY KEY, msg_id BLOB NOT NULL) WITHOUT ROWID;
";

/// Version 2 adds the length and checksum of every stored value.
const V2: &str = "
ALTER TABLE records ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
ALTER TABLE records ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
ALTER TABLE outbox ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN len INTEGER NOT NULL DEFAULT -1;
ALTER TABLE events ADD COLUMN sum INTEGER NOT NULL DEFAULT 0;
";

/// Version 3 adds the recipient keys of the agent's relay queues.
const V3: &str = "
CREATE TABLE queue_keys (
    server TEXT NOT NULL,
    rcv_id BLOB NOT NULL,
    secret BLOB NOT NULL,
    sum INTEGER NOT NULL,
    PRIMARY KEY (server, rcv_id)
) WITHOUT ROWID;
";

/// Version 4 drops the outbox (relay operations are persisted by the core's
/// own records, `Key::Op`, which it re-issues when restored) and its id
/// counter. Items left in it by an older version are dropped with it: the
/// same operations are in the core's records.
const V4: &str = "
DROP TABLE outbox;
ALTER TABLE counters DROP COLUMN next_outbox_id;
";

/// Brings the database to [`STORE_VERSION`] (or refuses it), in one
/// transaction.
pub(crate) fn migrate(conn: &mut Connection, limits: &Limits) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if version > STORE_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: STORE_VERSION,
        });
    }
    if version < 0 {
        return Err(StoreError::Foreign(format!("user_version {version}")));
    }
    if version == 0 {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables != 0 || app != 0 {
            return Err(StoreError::Foreign(format!(
                "unversioned database with {tables} schema objects"
            )));
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    } else if app != APPLICATION_ID {
        return Err(StoreError::Foreign(format!("application_id {app:#x}")));
    }
    for to in (version + 1)..=STORE_VERSION {
        step(&tx, to, limits).map_err(|e| StoreError::Migration {
            from: version,
            to,
            reason: e.to_string(),
        })?;
    }
    if version != STORE_VERSION {
        tx.pragma_update(None, "user_version", STORE_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// One migration step, to version `to`.
fn step(tx: &Connection, to: i64, limits: &Limits) -> Result<(), StoreError> {
    match to {
        1 => tx.execute_batch(V1)?,
        2 => {
            tx.execute_batch(V2)?;
            fill_checksums(tx, "records", "key", limits.max_value_len)?;
            fill_checksums(tx, "outbox", "id", limits.max_body_len)?;
            fill_checksums(tx, "events", "seq", limits.max_body_len)?;
        }
        3 => tx.execute_batch(V3)?,
        4 => tx.execute_batch(V4)?,
        _ => {
            return Err(StoreError::Migration {
                from: to - 1,
                to,
                reason: "no such step".into(),
            });
        }
    }
    Ok(())
}

/// Computes the length and checksum of every existing value of `table` (whose
/// value column is `value` or `body`), refusing values over `max`.
fn fill_checksums(tx: &Connection, table: &str, id: &str, max: usize) -> Result<(), StoreError> {
    let col = if table == "records" { "value" } else { "body" };
    let rows: Vec<(rusqlite::types::Value, Vec<u8>)> = {
        let mut stmt = tx.prepare(&format!("SELECT {id}, {col} FROM {table}"))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut update = tx.prepare(&format!(
        "UPDATE {table} SET len = ?1, sum = ?2 WHERE {id} = ?3"
    ))?;
    for (key, value) in rows {
        if value.len() > max {
            return Err(StoreError::TooLarge {
                what: "a stored value",
                len: value.len(),
                max,
            });
        }
        let len = i64::try_from(value.len()).map_err(|_| StoreError::TooLarge {
            what: "a stored value",
            len: value.len(),
            max,
        })?;
        update.execute(params![len, checksum(&value), key])?;
    }
    Ok(())
}
