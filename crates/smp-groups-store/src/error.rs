//! The typed errors of the store.

use std::path::PathBuf;

/// Why a store operation failed. Nothing of a failed [`crate::Store::apply`]
/// is visible afterwards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not an SQLite database (or its header is destroyed).
    #[error("{path} is not a database file, or its header is damaged")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// SQLite found the database damaged, or its integrity check failed.
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    /// An SQLite database that was not written by this store.
    #[error("the database was not written by this store: {0}")]
    Foreign(String),
    /// The store was written by a newer version of this program.
    #[error("store schema version {found} is newer than this program reads (up to {supported})")]
    NewerSchema {
        /// The version found in the file.
        found: i64,
        /// The newest version this program reads.
        supported: i64,
    },
    /// A migration step could not be applied; the file is left at `from`.
    #[error("migrating the store from version {from} to {to} failed: {reason}")]
    Migration {
        /// The version of the file, which it still has.
        from: i64,
        /// The version that could not be reached.
        to: i64,
        /// What went wrong.
        reason: String,
    },
    /// One stored row does not match its recorded length or checksum, or is
    /// otherwise unreadable.
    #[error("stored {table} row {id} is damaged: {reason}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The row's key or id, hex or decimal.
        id: String,
        /// What does not match.
        reason: String,
    },
    /// An item is larger than the store's limit for it.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction, or the store, would hold more items than allowed.
    #[error("{count} {what}; the limit is {max}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// How many there would be.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A received message marked as processed was processed already.
    #[error("message {msg_id} on queue {queue} was processed already")]
    AlreadyProcessed {
        /// The queue, hex.
        queue: String,
        /// The message id, hex.
        msg_id: String,
    },
    /// An event sequence number that has not been issued yet.
    #[error("event {seq} has not been issued (the next is {next})")]
    UnknownEvent {
        /// The sequence number asked for.
        seq: u64,
        /// The next sequence number the store will issue.
        next: u64,
    },
    /// The store's directory could not be created.
    #[error("store directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The store's writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Thread(std::io::Error),
    /// The writer thread already has as many jobs waiting as it takes.
    #[error("the store's writer has {depth} jobs waiting already")]
    WriterBusy {
        /// How many jobs may wait.
        depth: usize,
    },
    /// The writer thread has closed the store (or ended).
    #[error("the store's writer is closed")]
    WriterStopped,
    /// Any other SQLite failure (for example, the disk is full).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Maps SQLite's "not a database" and "corrupt" codes to typed errors.
    pub(crate) fn classify(e: rusqlite::Error, path: &std::path::Path) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => Self::NotADatabase {
                path: path.to_owned(),
            },
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => Self::Corrupt(e.to_string()),
            _ => Self::Sqlite(e),
        }
    }
}
