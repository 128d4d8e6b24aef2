//! Durable storage of queues and undelivered messages: SQLite in WAL mode.
//!
//! Message bodies live here only: the relay keeps each queue's record, its
//! message count and the id of its first message in memory, and reads a body
//! when it delivers it. Every change made while handling a batch of commands
//! is written inside one transaction ([`QueueStore::begin`] .. [`QueueStore::commit`]);
//! the relay answers those commands only after the commit, so a restart (or a
//! crash of the process) loses no accepted message and no queue.
//! `PRAGMA user_version` holds the schema version; a store written by a newer
//! relay, or a file that is not a relay store, is refused with a typed error
//! rather than guessed at.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::types::{
    AuthKey, DhSecret, ID_LEN, MessageBody, MsgId, QueueId, QueueMode, QueueRecord, QueueStatus,
    StoredMessage,
};

/// The schema version this relay writes and reads.
pub const QUEUE_STORE_VERSION: i64 = 2;

/// The file name of the store inside the data directory.
pub const STORE_FILE: &str = "relay.sqlite3";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueStoreError {
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
    /// The data directory or the store file cannot be created or read.
    #[error("relay data {path}: {source}")]
    Io {
        /// The directory or file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A queue with one of these ids exists already.
    #[error("a queue with this id exists already")]
    Duplicate,
    /// A batch of changes was rolled back (the cause is the first failure).
    #[error("relay store: changes not committed: {0}")]
    Batch(String),
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

/// The first message of a queue, as the relay keeps it in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontMessage {
    /// Its id.
    pub id: MsgId,
    /// When it was accepted (Unix seconds).
    pub ts: i64,
    /// True for the quota marker.
    pub quota: bool,
}

/// One queue as loaded at start: its record, whether it accepts messages
/// (quota state), how many messages it holds and their body bytes, and its
/// first message. Bodies are not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedQueue {
    /// The record.
    pub record: QueueRecord,
    /// False after the quota was reached, until the queue is emptied.
    pub can_write: bool,
    /// Messages waiting (the quota marker included).
    pub count: u64,
    /// Bytes of the waiting message bodies.
    pub bytes: u64,
    /// The first waiting message.
    pub front: Option<FrontMessage>,
}

/// The relay's SQLite store.
#[derive(Debug)]
pub struct QueueStore {
    conn: Connection,
    in_batch: bool,
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
  can_write INTEGER NOT NULL,
  msg_count INTEGER NOT NULL DEFAULT 0,
  msg_bytes INTEGER NOT NULL DEFAULT 0
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

/// Version 1 to 2: each queue's message count and body bytes are kept in its
/// row, so that start-up reads one row per queue and no message.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE queues ADD COLUMN msg_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN msg_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE queues SET
  msg_count = (SELECT count(*) FROM messages m WHERE m.recipient_id = queues.recipient_id),
  msg_bytes = (SELECT coalesce(sum(length(body)), 0) FROM messages m
               WHERE m.recipient_id = queues.recipient_id);
";

/// WAL frames after which a commit checkpoints them into the database
/// (SQLite's default is 1000). A message's pages are written to the WAL when
/// it is stored and again when it is removed; most of them are the same
/// pages, reused for the next messages, so a longer interval copies each
/// page into the database once for many commits (16 MiB of WAL at 4 KiB
/// pages). Durability does not depend on it: a commit is in the WAL.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4096;

/// Prepared statements kept (every statement of the store, with room).
const STATEMENT_CACHE: usize = 32;

const FRONT_SQL: &str =
    "SELECT msg_id, ts, quota FROM messages WHERE recipient_id = ?1 ORDER BY seq LIMIT 1";

const FRONT_MESSAGE_SQL: &str = "SELECT msg_id, ts, quota, notification, body FROM messages
     WHERE recipient_id = ?1 ORDER BY seq LIMIT 1";

fn corrupt(e: rusqlite::Error) -> QueueStoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            QueueStoreError::Corrupt(e.to_string())
        }
        _ => QueueStoreError::Sqlite(e),
    }
}

/// The store holds every queue's DH secret: the database is created readable
/// by its owner only (mode 0600) before SQLite opens it, so SQLite gives its
/// `-wal` and `-shm` files the same mode; files left with wider modes by an
/// older relay are tightened.
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_col(v: i64, what: &str) -> Result<u64, QueueStoreError> {
    u64::try_from(v).map_err(|_| QueueStoreError::Corrupt(format!("negative {what}")))
}

impl QueueStore {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open_dir(dir: &Path, durability: Durability) -> Result<Self, QueueStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| QueueStoreError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        Self::open_file(&dir.join(STORE_FILE), durability)
    }

    /// Opens (creating if needed) the store in file `path`.
    pub fn open_file(path: &Path, durability: Durability) -> Result<Self, QueueStoreError> {
        restrict_permissions(path).map_err(|source| QueueStoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(path)?;
        Self::init(conn, durability, true)
    }

    /// A store that lives in memory only (tests and benchmarks).
    pub fn in_memory() -> Result<Self, QueueStoreError> {
        Self::init(Connection::open_in_memory()?, Durability::Process, false)
    }

    fn init(conn: Connection, durability: Durability, wal: bool) -> Result<Self, QueueStoreError> {
        // The first statement that reads the file tells a non-database apart.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if version > QUEUE_STORE_VERSION {
            return Err(QueueStoreError::NewerVersion {
                found: version,
                supported: QUEUE_STORE_VERSION,
            });
        }
        if wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(corrupt)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(QueueStoreError::Corrupt(format!(
                    "cannot switch the store to WAL mode (got {mode})"
                )));
            }
        }
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Machine => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;
             PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES};"
        ))?;
        // The bundled SQLite is built with STAT4, under which a statement
        // comparing a bound parameter with an indexed column is compiled
        // again on every step after its parameters change (every query by
        // queue id here): the query planner's stability guarantee keeps the
        // plan made at the first prepare (the schema has one plan anyway).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(QueueStoreError::Corrupt(check));
        }
        if version == 0 {
            let tables: i64 = conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )?;
            if tables != 0 {
                return Err(QueueStoreError::Corrupt(
                    "the file is an SQLite database but not a relay store".into(),
                ));
            }
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {QUEUE_STORE_VERSION}; COMMIT;"
            ))?;
        } else if version == 1 {
            conn.execute_batch(&format!(
                "BEGIN; {MIGRATE_1_TO_2} PRAGMA user_version = {QUEUE_STORE_VERSION}; COMMIT;"
            ))
            .map_err(corrupt)?;
        }
        Ok(Self {
            conn,
            in_batch: false,
        })
    }

    /// Caps the database at `pages` pages (as a full disk would: writes
    /// beyond fail with `SQLITE_FULL`); for tests of store failures.
    pub fn limit_pages(&self, pages: u32) -> Result<(), QueueStoreError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Starts the transaction the next changes are written in.
    pub fn begin(&mut self) -> Result<(), QueueStoreError> {
        if !self.in_batch {
            self.conn.prepare_cached("BEGIN")?.execute([])?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Commits the changes since [`QueueStore::begin`].
    pub fn commit(&mut self) -> Result<(), QueueStoreError> {
        if self.in_batch {
            self.in_batch = false;
            let done = self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut c| c.execute([]));
            if let Err(e) = done {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Drops the changes since [`QueueStore::begin`].
    pub fn rollback(&mut self) {
        if self.in_batch {
            self.in_batch = false;
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                // SQLite may have rolled back already (a full disk does).
                tracing::debug!(error = %e, "rollback");
            }
        }
    }

    /// Every queue, with its message count and first message (no bodies).
    pub fn load(&self) -> Result<Vec<LoadedQueue>, QueueStoreError> {
        let mut out = Vec::new();
        let mut q = self.conn.prepare(
            "SELECT recipient_id, sender_id, recipient_key, rcv_dh_secret, sender_key, mode,
                    status, can_write, msg_count, msg_bytes FROM queues",
        )?;
        let mut rows = q.query([])?;
        while let Some(row) = rows.next()? {
            let recipient_id = id_col(&row.get::<_, Vec<u8>>(0)?, "recipient id")?;
            let sender_id = id_col(&row.get::<_, Vec<u8>>(1)?, "sender id")?;
            let recipient_key = key_col(&row.get::<_, Vec<u8>>(2)?)?;
            let secret = zeroize_vec(row.get::<_, Vec<u8>>(3)?);
            let rcv_dh_secret = DhSecret::from_slice(&secret).ok_or_else(|| {
                QueueStoreError::Corrupt("queue DH secret is not 32 bytes".into())
            })?;
            let sender_key = match row.get::<_, Option<Vec<u8>>>(4)? {
                Some(k) => Some(key_col(&k)?),
                None => None,
            };
            let mode = match row.get::<_, Option<i64>>(5)? {
                None => None,
                Some(0) => Some(QueueMode::Messaging),
                Some(1) => Some(QueueMode::Contact),
                Some(m) => return Err(QueueStoreError::Corrupt(format!("unknown queue mode {m}"))),
            };
            let status = match row.get::<_, i64>(6)? {
                0 => QueueStatus::Active,
                1 => QueueStatus::Off,
                s => {
                    return Err(QueueStoreError::Corrupt(format!(
                        "unknown queue status {s}"
                    )));
                }
            };
            let can_write = row.get::<_, i64>(7)? != 0;
            let count = u64_col(row.get(8)?, "message count")?;
            let bytes = u64_col(row.get(9)?, "message bytes")?;
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
                count,
                bytes,
                front: None,
            });
        }
        drop(rows);
        for lq in &mut out {
            if lq.count > 0 {
                lq.front = self.front(&lq.record.recipient_id)?;
            }
        }
        Ok(out)
    }

    /// The first message of a queue, without its body.
    pub fn front(&self, rid: &QueueId) -> Result<Option<FrontMessage>, QueueStoreError> {
        let row = self
            .conn
            .prepare_cached(FRONT_SQL)?
            .query_row(params![rid.as_slice()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        row.map(|(id, ts, quota)| {
            Ok(FrontMessage {
                id: id_col(&id, "message id")?,
                ts,
                quota: quota != 0,
            })
        })
        .transpose()
    }

    /// The first message of a queue with its body (read when it is delivered).
    pub fn front_message(&self, rid: &QueueId) -> Result<Option<StoredMessage>, QueueStoreError> {
        let row = self
            .conn
            .prepare_cached(FRONT_MESSAGE_SQL)?
            .query_row(params![rid.as_slice()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            })
            .optional()?;
        row.map(|(id, ts, quota, notification, body)| {
            Ok(StoredMessage {
                id: id_col(&id, "message id")?,
                ts,
                body: if quota != 0 {
                    MessageBody::Quota
                } else {
                    MessageBody::Message {
                        notification: notification != 0,
                        body,
                    }
                },
            })
        })
        .transpose()
    }

    /// Every message of a queue, oldest first (for tests and checks).
    pub fn messages(&self, rid: &QueueId) -> Result<Vec<StoredMessage>, QueueStoreError> {
        let mut m = self.conn.prepare_cached(
            "SELECT msg_id, ts, quota, notification, body FROM messages
             WHERE recipient_id = ?1 ORDER BY seq",
        )?;
        let mut rows = m.query(params![rid.as_slice()])?;
        let mut out = Vec::new();
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
            out.push(StoredMessage { id, ts, body });
        }
        Ok(out)
    }

    /// Adds a new queue.
    pub fn insert_queue(&self, q: &QueueRecord) -> Result<(), QueueStoreError> {
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
                q.rcv_dh_secret.as_bytes().as_slice(),
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
                Err(QueueStoreError::Duplicate)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the sender's key of a secured queue.
    pub fn set_sender_key(&self, rid: &QueueId, key: &AuthKey) -> Result<(), QueueStoreError> {
        self.conn
            .prepare_cached("UPDATE queues SET sender_key = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), key.to_spki_der()])?;
        Ok(())
    }

    /// Records a queue's status.
    pub fn set_status(&self, rid: &QueueId, status: QueueStatus) -> Result<(), QueueStoreError> {
        self.conn
            .prepare_cached("UPDATE queues SET status = ?2 WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice(), status_col(status)])?;
        Ok(())
    }

    /// Deletes a queue and its messages.
    pub fn delete_queue(&self, rid: &QueueId) -> Result<(), QueueStoreError> {
        self.conn
            .prepare_cached("DELETE FROM messages WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice()])?;
        self.conn
            .prepare_cached("DELETE FROM queues WHERE recipient_id = ?1")?
            .execute(params![rid.as_slice()])?;
        Ok(())
    }

    /// Appends a message to a queue and records its new quota state.
    pub fn push_message(
        &self,
        rid: &QueueId,
        msg: &StoredMessage,
        can_write: bool,
    ) -> Result<(), QueueStoreError> {
        let (quota, notification, body): (i64, i64, &[u8]) = match &msg.body {
            MessageBody::Message { notification, body } => (0, i64::from(*notification), body),
            MessageBody::Quota => (1, 0, &[]),
        };
        self.conn
            .prepare_cached(
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
        self.conn
            .prepare_cached(
                "UPDATE queues SET can_write = ?2, msg_count = msg_count + 1,
                   msg_bytes = msg_bytes + ?3 WHERE recipient_id = ?1",
            )?
            .execute(params![
                rid.as_slice(),
                i64::from(can_write),
                len_i64(body.len())
            ])?;
        Ok(())
    }

    /// Removes the first message of a queue if its id is `id`; returns the
    /// removed body's length.
    pub fn remove_front(&self, rid: &QueueId, id: &MsgId) -> Result<Option<u64>, QueueStoreError> {
        let removed: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM messages WHERE seq =
                   (SELECT seq FROM messages WHERE recipient_id = ?1 ORDER BY seq LIMIT 1)
                 AND msg_id = ?2 RETURNING length(body)",
            )?
            .query_row(params![rid.as_slice(), id.as_slice()], |r| r.get(0))
            .optional()?;
        let Some(len) = removed else {
            return Ok(None);
        };
        self.conn
            .prepare_cached(
                "UPDATE queues SET msg_count = msg_count - 1, msg_bytes = msg_bytes - ?2
                 WHERE recipient_id = ?1",
            )?
            .execute(params![rid.as_slice(), len])?;
        Ok(Some(u64_col(len, "body length")?))
    }

    /// Deletes the leading messages of a queue accepted before `old` (stopping
    /// at the quota marker, as the reference does); returns how many and their
    /// body bytes.
    pub fn expire(&self, rid: &QueueId, old: i64) -> Result<(u64, u64), QueueStoreError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM messages WHERE recipient_id = ?1 AND seq < coalesce(
               (SELECT min(seq) FROM messages WHERE recipient_id = ?1 AND (quota = 1 OR ts >= ?2)),
               9223372036854775807)
             RETURNING length(body)",
        )?;
        let mut rows = stmt.query(params![rid.as_slice(), old])?;
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(row) = rows.next()? {
            n += 1;
            bytes += u64_col(row.get(0)?, "body length")?;
        }
        drop(rows);
        if n > 0 {
            self.conn
                .prepare_cached(
                    "UPDATE queues SET msg_count = msg_count - ?2, msg_bytes = msg_bytes - ?3
                     WHERE recipient_id = ?1",
                )?
                .execute(params![
                    rid.as_slice(),
                    i64::try_from(n).unwrap_or(i64::MAX),
                    i64::try_from(bytes).unwrap_or(i64::MAX)
                ])?;
        }
        Ok((n, bytes))
    }

    /// How many messages are stored in all (for checks and reports).
    pub fn message_count(&self) -> Result<u64, QueueStoreError> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .optional()?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }
}

/// Wipes a column's copy of a secret once it is read.
fn zeroize_vec(v: Vec<u8>) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(v)
}

fn status_col(s: QueueStatus) -> i64 {
    match s {
        QueueStatus::Active => 0,
        QueueStatus::Off => 1,
    }
}

fn id_col(b: &[u8], what: &str) -> Result<[u8; ID_LEN], QueueStoreError> {
    <[u8; ID_LEN]>::try_from(b)
        .map_err(|_| QueueStoreError::Corrupt(format!("{what} is {} bytes, not {ID_LEN}", b.len())))
}

fn key_col(b: &[u8]) -> Result<AuthKey, QueueStoreError> {
    AuthKey::from_spki_der(b).ok_or_else(|| QueueStoreError::Corrupt("unreadable queue key".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail by panicking

    use rusqlite::StatementStatus;

    use super::*;
    use crate::types::AuthKey;

    fn queue(n: u8) -> QueueRecord {
        QueueRecord {
            recipient_id: [n; ID_LEN],
            sender_id: [n.wrapping_add(100); ID_LEN],
            recipient_key: AuthKey::Ed25519(
                smp_groups_crypto::ed25519::SigningKey::generate(
                    &mut smp_groups_crypto::rng::seeded(u64::from(n)),
                )
                .public_key(),
            ),
            rcv_dh_secret: DhSecret::from_slice(&[n; 32]).unwrap(),
            sender_key: None,
            mode: None,
            status: QueueStatus::Active,
        }
    }

    /// Queries by queue id keep their compiled plan when their parameters
    /// change (the bundled SQLite's STAT4 would compile them again on every
    /// step: a fifth of the store thread's time in the relay benchmark).
    #[test]
    fn statements_are_not_compiled_again_per_queue() {
        let dir = std::env::temp_dir().join(format!("smp-relay-store-qpsg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
        store.begin().unwrap();
        for n in 1..=3 {
            store.insert_queue(&queue(n)).unwrap();
            let msg = StoredMessage {
                id: [n; ID_LEN],
                ts: 1,
                body: MessageBody::Message {
                    notification: false,
                    body: vec![n; 5000],
                },
            };
            store.push_message(&[n; ID_LEN], &msg, true).unwrap();
        }
        store.commit().unwrap();
        for _ in 0..3 {
            store.begin().unwrap();
            for n in 1..=3 {
                assert!(store.front_message(&[n; ID_LEN]).unwrap().is_some());
                assert!(store.front(&[n; ID_LEN]).unwrap().is_some());
            }
            store.commit().unwrap();
        }
        for sql in [FRONT_SQL, FRONT_MESSAGE_SQL] {
            let stmt = store.conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
