//! The recipient keys of an agent's relay queues.
//!
//! A relay client creates a queue with a fresh signing key and DH key; the
//! relay answers with the queue ids. The secret half (here opaque bytes: the
//! client's format) must outlive a crash, or the queue is lost with every
//! message in it, so it is committed before the queue is reported to the
//! agent. A crash between the two leaves an unused row, never a queue without
//! its key.

use rusqlite::{Connection, params};

use crate::checksum::checksum;
use crate::error::StoreError;

/// The largest secret a row may hold.
pub const MAX_QUEUE_SECRET: usize = 1024;

/// One stored queue key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKey {
    /// The relay address.
    pub server: String,
    /// The recipient id of the queue.
    pub rcv_id: Vec<u8>,
    /// The client's secret for the queue.
    pub secret: Vec<u8>,
}

/// The `queue_keys` table, on its own connection ([`crate::Store::queue_keys`]).
#[derive(Debug)]
pub struct QueueKeys {
    conn: Connection,
}

impl QueueKeys {
    pub(crate) fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// Stores (or replaces) the secret of queue `rcv_id` on `server`; durable
    /// when this returns.
    pub fn put(&mut self, server: &str, rcv_id: &[u8], secret: &[u8]) -> Result<(), StoreError> {
        if secret.len() > MAX_QUEUE_SECRET {
            return Err(StoreError::TooLarge {
                what: "a queue secret",
                len: secret.len(),
                max: MAX_QUEUE_SECRET,
            });
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO queue_keys (server, rcv_id, secret, sum) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![server, rcv_id, secret, checksum(secret)])?;
        Ok(())
    }

    /// Forgets queue `rcv_id` on `server` (after it is deleted).
    pub fn remove(&mut self, server: &str, rcv_id: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM queue_keys WHERE server = ?1 AND rcv_id = ?2")?
            .execute(params![server, rcv_id])?;
        Ok(())
    }

    /// Every stored key, each checked against its checksum.
    pub fn load(&self) -> Result<Vec<QueueKey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT server, rcv_id, secret, sum FROM queue_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (server, rcv_id, secret, sum) = row?;
            if secret.len() > MAX_QUEUE_SECRET || checksum(&secret) != sum {
                return Err(StoreError::CorruptRow {
                    table: "queue_keys",
                    id: format!("{server} {}", hex::encode(&rcv_id)),
                    reason: "secret does not match its checksum".to_owned(),
                });
            }
            out.push(QueueKey {
                server,
                rcv_id,
                secret,
            });
        }
        Ok(out)
    }
}
