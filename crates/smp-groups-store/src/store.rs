//! The store: one SQLite database in WAL mode.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::checksum::checksum;
use crate::error::StoreError;
use crate::limits::{Durability, Limits, Options};
use crate::schema;
use crate::txn::{Applied, PendingEvent, ProcessedMark, Record, Transaction};

/// The counters row, read and written inside each transaction.
struct Counters {
    record_schema: i64,
    next_event_seq: i64,
    delivered_upto: i64,
}

/// Durable agent storage: records, pending client events and the marks of
/// processed messages, all changed together by [`Store::apply`].
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    limits: Limits,
    /// The file (`None` in memory) and how it was opened, for
    /// [`Store::queue_keys`].
    path: Option<std::path::PathBuf>,
    options: Options,
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// Opens (creating if needed) the store at `path`: WAL mode, the chosen
    /// durability, migrations to the current schema in one transaction, and
    /// (if asked) an integrity check.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        restrict_permissions(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let conn = Connection::open(path).map_err(|e| StoreError::classify(e, path))?;
        let mut store = Self::setup(conn, options, path, true).map_err(|e| reclassify(e, path))?;
        store.path = Some(path.to_owned());
        Ok(store)
    }

    /// A store in memory, for tests and simulations.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with(Options::default())
    }

    /// A store in memory with the given options.
    pub fn open_in_memory_with(options: Options) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::setup(conn, options, Path::new(":memory:"), false)
    }

    fn setup(
        mut conn: Connection,
        options: Options,
        path: &Path,
        wal: bool,
    ) -> Result<Self, StoreError> {
        // A store is used by one agent; a second opener waits briefly for the lock.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if wal {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt(format!(
                    "{}: cannot use WAL (journal mode {mode})",
                    path.display()
                )));
            }
        }
        let sync = match options.durability {
            Durability::Full => "FULL",
            Durability::Process => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn, &options.limits)?;
        if options.check_on_open {
            let problems: Vec<String> = {
                let mut stmt = conn.prepare("PRAGMA quick_check")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            if problems.len() != 1 || problems.first().map(String::as_str) != Some("ok") {
                return Err(StoreError::Corrupt(problems.join("; ")));
            }
        }
        Ok(Self {
            conn,
            limits: options.limits,
            path: None,
            options,
        })
    }

    /// The table of relay queue keys, on its own connection to the same
    /// database (so a relay client can use it from another task). For a store
    /// in memory, the table is in a separate in-memory database.
    pub fn queue_keys(&self) -> Result<crate::QueueKeys, StoreError> {
        let conn = match &self.path {
            Some(path) => {
                let conn = Connection::open(path).map_err(|e| StoreError::classify(e, path))?;
                Self::setup(conn, self.options, path, true)
                    .map_err(|e| reclassify(e, path))?
                    .conn
            }
            None => {
                Self::setup(
                    Connection::open_in_memory()?,
                    self.options,
                    Path::new(":memory:"),
                    false,
                )?
                .conn
            }
        };
        Ok(crate::QueueKeys::new(conn))
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Commits `txn` atomically: either all of it is durable when this
    /// returns `Ok`, or none of it is visible.
    pub fn apply(&mut self, txn: &Transaction) -> Result<Applied, StoreError> {
        self.check_limits(txn)?;
        if txn.is_empty() {
            return Ok(Applied::default());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut c = read_counters(&tx)?;
        if let Some(s) = txn.record_schema {
            c.record_schema = i64::from(s);
        }
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO records (key, value, len, sum) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (k, v) in &txn.puts {
                put.execute(params![k, v, len_i64(v.len()), checksum(v)])?;
            }
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM records WHERE key = ?1")?;
            for k in &txn.deletes {
                del.execute(params![k])?;
            }
        }
        let mut applied = Applied::default();
        if !txn.events_add.is_empty() {
            let pending = u64_of(c.next_event_seq - 1 - c.delivered_upto, "counters", "0")?;
            let count = pending + txn.events_add.len() as u64;
            within(
                "pending client events",
                count,
                self.limits.max_pending_events,
            )?;
            applied.event_seqs = append(
                &tx,
                "INSERT INTO events (seq, body, len, sum) VALUES (?1, ?2, ?3, ?4)",
                &txn.events_add,
                &mut c.next_event_seq,
                "next_event_seq",
                "event sequence numbers",
            )?;
        }
        for (queue, msg_id) in &txn.processed {
            let last: Option<Vec<u8>> = tx
                .prepare_cached("SELECT msg_id FROM processed WHERE queue = ?1")?
                .query_row(params![queue], |r| r.get(0))
                .optional()?;
            if last.as_deref() == Some(msg_id.as_slice()) {
                return Err(StoreError::AlreadyProcessed {
                    queue: hex::encode(queue),
                    msg_id: hex::encode(msg_id),
                });
            }
            tx.prepare_cached("INSERT OR REPLACE INTO processed (queue, msg_id) VALUES (?1, ?2)")?
                .execute(params![queue, msg_id])?;
        }
        if let Some(seq) = txn.delivered_upto {
            mark(&tx, &mut c, seq)?;
        }
        {
            let mut forget = tx.prepare_cached("DELETE FROM processed WHERE queue = ?1")?;
            for q in &txn.forget_queues {
                forget.execute(params![q])?;
            }
        }
        write_counters(&tx, &c)?;
        tx.commit()?;
        Ok(applied)
    }

    fn check_limits(&self, txn: &Transaction) -> Result<(), StoreError> {
        let l = &self.limits;
        let count = txn.item_count();
        if count > l.max_items {
            return Err(StoreError::TooMany {
                what: "items in one transaction",
                count: count as u64,
                max: l.max_items as u64,
            });
        }
        let too_large = |what, len: usize, max: usize| {
            if len > max {
                Err(StoreError::TooLarge { what, len, max })
            } else {
                Ok(())
            }
        };
        for (k, v) in &txn.puts {
            too_large("a record key", k.len(), l.max_key_len)?;
            too_large("a record value", v.len(), l.max_value_len)?;
        }
        for k in &txn.deletes {
            too_large("a record key", k.len(), l.max_key_len)?;
        }
        for b in &txn.events_add {
            too_large("a client event", b.len(), l.max_body_len)?;
        }
        for (q, m) in &txn.processed {
            too_large("a queue id", q.len(), l.max_id_len)?;
            too_large("a message id", m.len(), l.max_id_len)?;
        }
        for q in &txn.forget_queues {
            too_large("a queue id", q.len(), l.max_id_len)?;
        }
        Ok(())
    }

    /// The layout version of the records, as last written by a transaction
    /// (0 before any).
    pub fn record_schema(&self) -> Result<u32, StoreError> {
        let c = read_counters(&self.conn)?;
        u32::try_from(c.record_schema).map_err(|_| StoreError::CorruptRow {
            table: "counters",
            id: "record_schema".into(),
            reason: format!("{} is not a u32", c.record_schema),
        })
    }

    /// Every record, in key order, each checked against its stored length and
    /// checksum.
    pub fn load_records(&self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value, len, sum FROM records ORDER BY key")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value, len, sum) = row?;
            verify(
                "records",
                || hex::encode(&key),
                &value,
                len,
                sum,
                self.limits.max_value_len,
            )?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// One record, checked like [`Store::load_records`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>, i64, i64)> = self
            .conn
            .prepare_cached("SELECT value, len, sum FROM records WHERE key = ?1")?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match row {
            None => Ok(None),
            Some((value, len, sum)) => {
                verify(
                    "records",
                    || hex::encode(key),
                    &value,
                    len,
                    sum,
                    self.limits.max_value_len,
                )?;
                Ok(Some(value))
            }
        }
    }

    /// The client events not yet marked delivered, in sequence order. Their
    /// sequence numbers are contiguous, following the last delivered one; a
    /// missing or damaged event is an error, never skipped.
    pub fn pending_events(&self) -> Result<Vec<PendingEvent>, StoreError> {
        // One read transaction: the counters and the rows from the same
        // snapshot, even while another connection commits.
        let tx = self.conn.unchecked_transaction()?;
        let c = read_counters(&tx)?;
        let mut stmt = tx.prepare("SELECT seq, body, len, sum FROM events ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut expect = c.delivered_upto + 1;
        for row in rows {
            let (seq, body, len, sum) = row?;
            if seq != expect {
                return Err(StoreError::CorruptRow {
                    table: "events",
                    id: seq.to_string(),
                    reason: format!("expected event {expect}"),
                });
            }
            verify(
                "events",
                || seq.to_string(),
                &body,
                len,
                sum,
                self.limits.max_body_len,
            )?;
            out.push(PendingEvent {
                seq: u64_of(seq, "events", "seq")?,
                body,
            });
            expect += 1;
        }
        if expect != c.next_event_seq {
            return Err(StoreError::CorruptRow {
                table: "events",
                id: expect.to_string(),
                reason: format!("missing; events up to {} were issued", c.next_event_seq - 1),
            });
        }
        Ok(out)
    }

    /// Marks every event up to and including `seq` as delivered to the
    /// client: they are removed and never returned again. Marking an event
    /// already marked is a no-op; `seq` must have been issued.
    pub fn mark_delivered(&mut self, seq: u64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut c = read_counters(&tx)?;
        if mark(&tx, &mut c, seq)? {
            write_counters(&tx, &c)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The last event sequence number marked delivered (0 if none).
    pub fn delivered_upto(&self) -> Result<u64, StoreError> {
        let c = read_counters(&self.conn)?;
        u64_of(c.delivered_upto, "counters", "delivered_upto")
    }

    /// The last processed message of every receive queue: (queue id, SMP
    /// message id), one per queue (so bounded by the number of queues). A
    /// runtime that commits off its own thread keeps these in memory to
    /// recognise redeliveries without reading the store.
    pub fn processed_marks(&self) -> Result<Vec<ProcessedMark>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT queue, msg_id FROM processed ORDER BY queue")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (queue, msg_id) = row?;
            if queue.len() > self.limits.max_id_len || msg_id.len() > self.limits.max_id_len {
                return Err(StoreError::CorruptRow {
                    table: "processed",
                    id: hex::encode(&queue[..queue.len().min(64)]),
                    reason: "an id over the length limit".to_owned(),
                });
            }
            out.push((queue, msg_id));
        }
        Ok(out)
    }

    /// True if the message `msg_id` received on `queue` was processed (its
    /// effects committed): a redelivery to acknowledge, not to process again.
    pub fn is_processed(&self, queue: &[u8], msg_id: &[u8]) -> Result<bool, StoreError> {
        let last: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT msg_id FROM processed WHERE queue = ?1")?
            .query_row(params![queue], |r| r.get(0))
            .optional()?;
        Ok(last.as_deref() == Some(msg_id))
    }
}

/// Removes the events up to `seq`; false if they were removed already.
fn mark(conn: &Connection, c: &mut Counters, seq: u64) -> Result<bool, StoreError> {
    let next = u64_of(c.next_event_seq, "counters", "next_event_seq")?;
    if seq >= next {
        return Err(StoreError::UnknownEvent { seq, next });
    }
    let seq = len_i64_u64(seq);
    if seq <= c.delivered_upto {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM events WHERE seq <= ?1")?
        .execute(params![seq])?;
    c.delivered_upto = seq;
    Ok(true)
}

/// An error on the first statements of a file that is not a database.
/// The store holds queue keys and ratchet state: the database is created
/// readable by its owner only (mode 0600) before SQLite opens it, so SQLite
/// gives its `-wal` and `-shm` files the same mode; files left by an older
/// version with wider modes are tightened.
pub(crate) fn restrict_permissions(path: &Path) -> std::io::Result<()> {
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

fn reclassify(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Sqlite(inner) => StoreError::classify(inner, path),
        other => other,
    }
}

fn read_counters(conn: &Connection) -> Result<Counters, StoreError> {
    let c = conn
        .prepare_cached(
            "SELECT record_schema, next_event_seq, delivered_upto FROM counters WHERE id = 0",
        )?
        .query_row([], |r| {
            Ok(Counters {
                record_schema: r.get(0)?,
                next_event_seq: r.get(1)?,
                delivered_upto: r.get(2)?,
            })
        })
        .optional()?
        .ok_or_else(|| StoreError::CorruptRow {
            table: "counters",
            id: "0".into(),
            reason: "missing".into(),
        })?;
    if c.delivered_upto < 0 || c.next_event_seq <= c.delivered_upto {
        return Err(StoreError::CorruptRow {
            table: "counters",
            id: "0".into(),
            reason: format!(
                "inconsistent: next event {}, delivered up to {}",
                c.next_event_seq, c.delivered_upto
            ),
        });
    }
    Ok(c)
}

fn write_counters(conn: &Connection, c: &Counters) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE counters SET record_schema = ?1, next_event_seq = ?2, delivered_upto = ?3 \
         WHERE id = 0",
    )?
    .execute(params![c.record_schema, c.next_event_seq, c.delivered_upto])?;
    Ok(())
}

/// Checks a stored value against its recorded length and checksum.
fn verify(
    table: &'static str,
    id: impl FnOnce() -> String,
    value: &[u8],
    len: i64,
    sum: i64,
    max: usize,
) -> Result<(), StoreError> {
    let reason = if len != len_i64(value.len()) {
        format!("{} bytes stored, {len} written", value.len())
    } else if value.len() > max {
        format!("{} bytes, over the limit of {max}", value.len())
    } else if sum != checksum(value) {
        "checksum mismatch".to_owned()
    } else {
        return Ok(());
    };
    Err(StoreError::CorruptRow {
        table,
        id: id(),
        reason,
    })
}

/// Refuses `count` items of `what` over `max`.
fn within(what: &'static str, count: u64, max: u64) -> Result<(), StoreError> {
    if count > max {
        return Err(StoreError::TooMany { what, count, max });
    }
    Ok(())
}

/// Inserts `bodies` with `insert` (number, body, length, checksum), numbered
/// from `next` on (the counter column `counter`); returns their numbers and
/// leaves `next` after the last.
fn append(
    tx: &rusqlite::Transaction<'_>,
    insert: &str,
    bodies: &[Vec<u8>],
    next: &mut i64,
    counter: &str,
    what: &'static str,
) -> Result<Vec<u64>, StoreError> {
    let mut add = tx.prepare_cached(insert)?;
    let mut numbers = Vec::with_capacity(bodies.len());
    for body in bodies {
        let n = *next;
        add.execute(params![n, body, len_i64(body.len()), checksum(body)])?;
        numbers.push(u64_of(n, "counters", counter)?);
        *next = bump(n, what)?;
    }
    Ok(numbers)
}

/// A length as SQLite's integer (lengths are bounded far below `i64::MAX`).
fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn len_i64_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored counter or id as `u64`; negative values mean damage.
fn u64_of(v: i64, table: &'static str, id: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::CorruptRow {
        table,
        id: id.to_owned(),
        reason: format!("negative value {v}"),
    })
}

/// The next id after `v`.
fn bump(v: i64, what: &'static str) -> Result<i64, StoreError> {
    v.checked_add(1).ok_or(StoreError::TooMany {
        what,
        count: u64::MAX,
        max: i64::MAX as u64,
    })
}
