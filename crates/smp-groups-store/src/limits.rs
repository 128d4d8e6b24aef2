//! Bounds on everything the store accepts, and how durable commits are.

/// Size and count limits. Every item is checked before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest record key, bytes.
    pub max_key_len: usize,
    /// Longest record value, bytes.
    pub max_value_len: usize,
    /// Longest client event, bytes.
    pub max_body_len: usize,
    /// Longest queue id or message id, bytes.
    pub max_id_len: usize,
    /// Most items (puts, deletes, events, processed marks, forgotten queues)
    /// in one transaction.
    pub max_items: usize,
    /// Most client events waiting for delivery.
    pub max_pending_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_len: 1024,
            max_value_len: 16 * 1024 * 1024,
            max_body_len: 1024 * 1024,
            max_id_len: 1024,
            max_items: 65_536,
            max_pending_events: 1_000_000,
        }
    }
}

/// How durable a commit is when [`crate::Store::apply`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: the write-ahead log is synced on every commit, so a
    /// commit survives a crash of the process, of the operating system and a
    /// power loss. This is what acknowledging messages to the relay and
    /// delivering events to the client after commit rely on.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits survive a crash of the process, but a
    /// power loss or system crash may undo the last commits (never corrupting
    /// the file). Only for tests and benchmarks.
    Process,
}

/// How to open a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Size and count limits.
    pub limits: Limits,
    /// Durability of commits.
    pub durability: Durability,
    /// Run SQLite's `quick_check` when opening (linear in the file size).
    pub check_on_open: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            durability: Durability::Full,
            check_on_open: true,
        }
    }
}
