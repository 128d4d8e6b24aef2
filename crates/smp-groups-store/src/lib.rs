#![forbid(unsafe_code)]
//! Durable storage for smp-groups agents: one SQLite database in WAL mode.
//!
//! Every input of the agent becomes one [`Transaction`], committed
//! all-or-nothing by [`Store::apply`]. A transaction carries:
//!
//! - the record writes of the input (typed keys and values of the agent's
//!   state, here as bytes);
//! - the **processed mark** of the received message the input handled, so
//!   that the message is acknowledged to the relay only after its effects are
//!   durable, and a redelivery after a crash is recognised
//!   ([`Store::is_processed`]) and only acknowledged;
//! - the **client events** of the input, numbered contiguously and kept until
//!   [`Store::mark_delivered`].
//!
//! [`Writer`] runs a store's commits on a thread of its own, and
//! [`Transaction::merge`] folds several inputs' transactions into one commit.
//!
//! Records are opaque byte keys and values: the store knows nothing of the
//! agent's state machine. The agent crate maps the core's typed records to
//! them (`smp_groups_agent::records`). The relay operations an input
//! produces are not stored apart: the core keeps each operation in flight as
//! one of its records and re-issues them when restored, and the runtime
//! performs them only after the commit.
//!
//! A file that is not a database, was written by a newer version, or holds a
//! damaged row gives a typed [`StoreError`], never silently lost data.
//!
//! # Example
//!
//! One input's records, its processed mark and its client event, committed
//! together; the event stays pending until the client has it.
//!
//! ```
//!
//! use smp_groups_store::{Store, Transaction};
//!
//! let mut store = Store::open_in_memory()?;
//! let mut txn = Transaction::new();
//! txn.puts.push((b"conn/1".to_vec(), b"state".to_vec()));
//! txn.processed.push((b"queue-1".to_vec(), b"msg-9".to_vec()));
//! txn.events_add.push(b"C:bob CON\r\n".to_vec());
//! let applied = store.apply(&txn)?;
//!
//! assert_eq!(store.get(b"conn/1")?, Some(b"state".to_vec()));
//! assert!(store.is_processed(b"queue-1", b"msg-9")?);
//! assert_eq!(store.pending_events()?.len(), 1);
//! store.mark_delivered(applied.event_seqs[0])?;
//! assert!(store.pending_events()?.is_empty());
//! # Ok::<(), smp_groups_store::StoreError>(())
//! ```
//!
//! `docs/store.md` describes the schema, the transaction rules and the
//! exactly-once argument.

mod checksum;
mod error;
mod limits;
mod queue_keys;
mod schema;
mod store;
mod txn;
mod writer;

pub use error::StoreError;
pub use limits::{Durability, Limits, Options};
pub use queue_keys::{MAX_QUEUE_SECRET, QueueKey, QueueKeys};
pub use schema::{APPLICATION_ID, STORE_VERSION};
pub use store::Store;
pub use txn::{Applied, PendingEvent, ProcessedMark, Record, Transaction};
pub use writer::Writer;
