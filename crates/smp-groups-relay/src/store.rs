//! Durable storage of queues and undelivered messages: SQLite in WAL mode.
//!
//! Every change is committed before the relay answers the command that made it,
//! so a restart (or a crash of the process) loses no accepted message and no
//! queue. `PRAGMA user_version` holds the schema version; a store written by a
//! newer relay, or a file that is not a relay store, is refused with a typed
//! error rather than guessed at.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::types::{
    AuthKey, ID_LEN, MessageBody, MsgId, QueueId, QueueMode, QueueRecord, QueueStatus,
    StoredMessage,
};

/// The schema version this relay writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The file name of the store inside the data directory.
pub const STORE_FILE: &str = "relay.sqlite3";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("relay store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file is not a relay store, or its contents are damaged.
    #[error("relay store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by a newer relay.
    #[error("relay store has schema version {found}; this relay reads up to {supported}")]
    NewerVersion {
        /// The version found in the file.
        found: i64,
        /// The newest version this relay reads.
        supported: i64,
    },
    /// The data directory cannot be created or read.
    #[error("relay data directory {path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A queue with one of these ids exists already.
    #[error("a queue with this id exists already")]
    Duplicate,
}

/// How durable each commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Commits survive a crash of the relay process (WAL, `synchronous=NORMAL`).
    #[default]
    Process,
    /// Commits also survive a crash of the machine (`synchronous=FULL`).
    Machine,
}

/// One queue as loaded at start: its record, whether it accepts messages
/// (quota state) and its messages in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedQueue {
    /// The record.
    pub record: QueueRecord,
    /// False after the quota was reached, until the queue is emptied.
    pub can_write: bool,
    /// The waiting messages, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// The relay's SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE queues (
  recipient_id BLOB PRIMARY KEY NOT NULL,
  sender_id BLOB NOT NULL UNIQUE,
  recipient_key BLOB NOT NULL,
  rcv_dh_secret BLOB NOT NULL,
  sender_key BLOB,
  mode INTEGER,
  status INTEGER NOT NULL,
  can_write INTEGER NOT NULL
);
CREATE TABLE messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient_id BLOB NOT NULL REFERENCES queues(recipient_id) ON DELETE CASCADE,
  msg_id BLOB NOT NULL,
  ts INTEGER NOT NULL,
  quota INTEGER NOT NULL,
  notification INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX messages_by_queue ON messages(recipient_id, seq);
";

fn corrupt(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Sqlite(e),
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open_dir(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        Self::open_file(&dir.join(STORE_FILE), durability)
    }

    /// Opens (creating if needed) the store in file `path`.
    pub fn open_file(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn, durability, true)
    }

    /// A store that lives in memory only (tests and benchmarks).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, Durability::Process, false)
    }

    fn init(conn: Connection, durability: Durability, wal: bool) -> Result<Self, StoreError> {
        // The first statement that reads the file tells a non-database apart.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(corrupt)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt(format!(
                    "cannot switch the store to WAL mode (got {mode})"
                )));
            }
        }
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Machine => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;"
        ))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(check));
        }
        if version == 0 {
            let tables: i64 = conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )?;
            if tables != 0 {
                return Err(StoreError::Corrupt(
                    "the file is an SQLite database but not a relay store".into(),
                ));
            }
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
        }
        Ok(Self { conn })
    }

    /// Every queue with its messages.
    pub fn load(&self) -> Result<Vec<LoadedQueue>, StoreError> {
        let mut out = Vec::new();
        let mut q = self.conn.prepare(
            "SELECT recipient_id, sender_id, recipient_key, rcv_dh_secret, sender_key, mode,
                    status, can_write FROM queues",
        )?;
        let mut rows = q.query([])?;
        while let Some(row) = rows.next()? {
            let recipient_id = id_col(&row.get::<_, Vec<u8>>(0)?, "recipient id")?;
            let sender_id = id_col(&row.get::<_, Vec<u8>>(1)?, "sender id")?;
            let recipient_key = key_col(&row.get::<_, Vec<u8>>(2)?)?;
            let secret: Vec<u8> = row.get(3)?;
            let rcv_dh_secret = <[u8; 32]>::try_from(secret.as_slice())
                .map_err(|_| StoreError::Corrupt("queue DH secret is not 32 bytes".into()))?;
            let sender_key = match row.get::<_, Option<Vec<u8>>>(4)? {
                Some(k) => Some(key_col(&k)?),
                None => None,
            };
            let mode = match row.get::<_, Option<i64>>(5)? {
                None => None,
                Some(0) => Some(QueueMode::Messaging),
                Some(1) => Some(QueueMode::Contact),
                Some(m) => return Err(StoreError::Corrupt(format!("unknown queue mode {m}"))),
            };
            let status = match row.get::<_, i64>(6)? {
                0 => QueueStatus::Active,
                1 => QueueStatus::Off,
                s => return Err(StoreError::Corrupt(format!("unknown queue status {s}"))),
            };
            let can_write = row.get::<_, i64>(7)? != 0;
            out.push(LoadedQueue {
                record: QueueRecord {
                    recipient_id,
                    sender_id,
                    recipient_key,
                    rcv_dh_secret,
                    sender_key,
                    mode,
                    status,
                },
                can_write,
                messages: Vec::new(),
            });
        }
        drop(rows);
        let mut m = self.conn.prepare(
            "SELECT msg_id, ts, quota, notification, body FROM messages
             WHERE recipient_id = ?1 ORDER BY seq",
        )?;
        for lq in &mut out {
            let mut rows = m.query(params![lq.record.recipient_id.as_slice()])?;
            while let Some(row) = rows.next()? {
                let id = id_col(&row.get::<_, Vec<u8>>(0)?, "message id")?;
                let ts: i64 = row.get(1)?;
                let body = if row.get::<_, i64>(2)? != 0 {
                    MessageBody::Quota
                } else {
                    MessageBody::Message {
                        notification: row.get::<_, i64>(3)? != 0,
                        body: row.get(4)?,
                    }
                };
                lq.messages.push(StoredMessage { id, ts, body });
            }
        }
        Ok(out)
    }

    /// Adds a new queue.
    pub fn insert_queue(&self, q: &QueueRecord) -> Result<(), StoreError> {
        let r = self
            .conn
            .prepare_cached(
                "INSERT INTO queues (recipient_id, sender_id, recipient_key, rcv_dh_secret,
                   sender_key, mode, status, can_write) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
            )?
            .execute(params![
                q.recipient_id.as_slice(),
                q.sender_id.as_slice(),
                q.recipient_key.to_spki_der(),
                q.rcv_dh_secret.as_slice(),
                q.sender_key.map(|k| k.to_spki_der()),
                q.mode.map(|m| match m {
                    QueueMode::Messaging => 0,
                    QueueMode::Contact => 1,
                }),
                status_col(q.status),
            ]);
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the sender's key of a secured queue.
    pub fn set_sender_key(&self, rid: &QueueId, key: &AuthKey) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE queues SET sender_key = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), key.to_spki_der()])?;
        Ok(())
    }

    /// Records a queue's status.
    pub fn set_status(&self, rid: &QueueId, status: QueueStatus) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE queues SET status = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), status_col(status)])?;
        Ok(())
    }

    /// Deletes a queue and its messages.
    pub fn delete_queue(&mut self, rid: &QueueId) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached("DELETE FROM messages WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice()])?;
        tx.prepare_cached("DELETE FROM queues WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice()])?;
        tx.commit()?;
        Ok(())
    }

    /// Appends a message to a queue and records its new quota state.
    pub fn push_message(
        &mut self,
        rid: &QueueId,
        msg: &StoredMessage,
        can_write: bool,
    ) -> Result<(), StoreError> {
        let (quota, notification, body): (i64, i64, &[u8]) = match &msg.body {
            MessageBody::Message { notification, body } => (0, i64::from(*notification), body),
            MessageBody::Quota => (1, 0, &[]),
        };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO messages (recipient_id, msg_id, ts, quota, notification, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            rid.as_slice(),
            msg.id.as_slice(),
            msg.ts,
            quota,
            notification,
            body
        ])?;
        tx.prepare_cached("UPDATE queues SET can_write = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), i64::from(can_write)])?;
        tx.commit()?;
        Ok(())
    }

    /// Removes the given messages of a queue and records its quota state.
    pub fn remove_messages(
        &mut self,
        rid: &QueueId,
        ids: &[MsgId],
        can_write: bool,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM messages WHERE seq =
                   (SELECT seq FROM messages WHERE recipient_id = ?1 AND msg_id = ?2
                    ORDER BY seq LIMIT 1)",
            )?;
            for id in ids {
                del.execute(params![rid.as_slice(), id.as_slice()])?;
            }
        }
        tx.prepare_cached("UPDATE queues SET can_write = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), i64::from(can_write)])?;
        tx.commit()?;
        Ok(())
    }

    /// How many messages are stored in all (for checks and reports).
    pub fn message_count(&self) -> Result<u64, StoreError> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .optional()?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }
}

fn status_col(s: QueueStatus) -> i64 {
    match s {
        QueueStatus::Active => 0,
        QueueStatus::Off => 1,
    }
}

fn id_col(b: &[u8], what: &str) -> Result<[u8; ID_LEN], StoreError> {
    <[u8; ID_LEN]>::try_from(b)
        .map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not {ID_LEN}", b.len())))
}

fn key_col(b: &[u8]) -> Result<AuthKey, StoreError> {
    AuthKey::from_spki_der(b).ok_or_else(|| StoreError::Corrupt("unreadable queue key".into()))
}
