//! Storage writes: one atomic [`StoreBatch`] per input, and the records
//! [`crate::Agent::restore`] rebuilds an agent from.

use serde::{Deserialize, Serialize};

/// The version of the stored records' layout.
/// Version 4 added [`Key::Sent`] records and a catch-up in progress to each
/// member's integrity state. Version 5 puts each record's own layout version
/// first in its value ([`layout`]); [`crate::Agent::restore`] migrates
/// records of an older layout, and reads a store of version 4 (every record
/// at layout 1, rewritten whole in the first batch after the restore).
pub const SCHEMA_VERSION: u32 = crate::record::VERSIONED_SCHEMA;

pub use crate::record::layout;

/// The key of one stored record. Values are the record's layout version
/// ([`layout`]), one byte, then the postcard-encoded record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// Agent-wide settings and counters.
    Meta,
    /// A connection (visible or hidden), by its local id.
    Conn(u64),
    /// A group, by its local alias.
    Group(String),
    /// A received group invitation, by its id.
    Invitation(String),
    /// A relay operation in flight, by its id.
    Op(u64),
    /// One member of a group (by the group's local alias and the member id):
    /// what we know of it and its integrity state. Kept apart from the group's
    /// record so that a store write is proportional to what changed, not to
    /// the group's size.
    Member(String, [u8; 16]),
    /// One of our own group messages kept for catch-up (by the group's local
    /// alias and the message's extMsgId; `crate::HISTORY_MAX_MESSAGES` per
    /// group at most).
    Sent(String, u64),
    /// The direct messages of a group (by its local alias): ours waiting for
    /// the relay or a receipt, those received waiting for the client's `ACK`,
    /// and the direct message ids of each member pair. Absent when there are
    /// none. A store written before direct messages existed has none and
    /// loads as it is.
    Direct(String),
    /// The stamps of a group's information and of its members' profiles,
    /// and our own profile in it (by the group's local alias); written once
    /// one of them was set or updated (`GINFO`, `PROFILE`).
    Profiles(String),
    /// A signed group message kept to hand to members we add (by the group's
    /// local alias and a local sequence number; `Config::history` bounds
    /// them).
    Shared(String, u64),
    /// One signed receipt a group keeps as proof of delivery (by the
    /// group's local alias and a local number; `crate::PROOF_WINDOW`
    /// messages of each sender, `crate::MAX_PROOF_UNITS_KEPT` receipts at
    /// most per group). A store written before proofs existed has none and
    /// loads as it is.
    Proof(String, u64),
    /// The members one of our recent group messages was sent to, whose
    /// receipts its proof needs (by the group's local alias and the
    /// message's extMsgId; `crate::PROOF_WINDOW` per group at most).
    ProofSent(String, u64),
}

/// The storage writes of one input, to be applied atomically before any relay
/// operation or client event of the same input is acted on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreBatch {
    /// [`SCHEMA_VERSION`] of the records.
    pub schema: u32,
    /// Records to insert or replace.
    pub puts: Vec<(Key, Vec<u8>)>,
    /// Records to delete.
    pub deletes: Vec<Key>,
}

impl StoreBatch {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// Why stored records could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The store holds another schema version.
    #[error("stored schema {found}, expected {expected}")]
    Schema {
        /// The version found.
        found: u32,
        /// The version this code reads.
        expected: u32,
    },
    /// A record has a layout this code does not read (written by a newer
    /// version of it).
    #[error("record {key:?} has layout {found}; this version reads up to {known}")]
    Layout {
        /// Its key.
        key: Key,
        /// The layout found.
        found: u8,
        /// The newest layout this code reads.
        known: u8,
    },
    /// A record of an older layout could not be migrated.
    #[error("record {key:?} of layout {from} could not be migrated: {reason}")]
    Migration {
        /// Its key.
        key: Key,
        /// The layout it has.
        from: u8,
        /// Why.
        reason: String,
    },
    /// A record could not be decoded.
    #[error("record {key:?} is corrupt: {reason}")]
    Corrupt {
        /// Its key.
        key: Key,
        /// The decoding error.
        reason: String,
    },
    /// No `Meta` record.
    #[error("no agent metadata record")]
    NoMeta,
}

#[cfg(test)]
mod tests {
    use crate::history::SentRec;
    use crate::state::AnchorRec;

    /// A kept message stored before send times were kept (its prev and
    /// content only) still loads, with time 0; one stored now keeps its
    /// time; a record cut short is refused.
    #[test]
    fn kept_messages_load_with_and_without_their_send_time() {
        #[derive(serde::Serialize)]
        struct Old {
            prev: AnchorRec,
            #[serde(with = "crate::serde_bytes")]
            content: Vec<u8>,
        }
        let prev = AnchorRec::At(7, [3; 32]);
        let old = postcard::to_allocvec(&Old {
            prev,
            content: b"kept".to_vec(),
        })
        .expect("encodes");
        let rec = SentRec::from_stored(&old).expect("an old record loads");
        assert_eq!(
            rec,
            SentRec {
                prev,
                content: b"kept".to_vec(),
                snd_ts: 0,
            }
        );
        let new = SentRec {
            prev,
            content: b"kept".to_vec(),
            snd_ts: 1_700_000_000_123,
        };
        let bytes = postcard::to_allocvec(&new).expect("encodes");
        assert_eq!(SentRec::from_stored(&bytes), Ok(new));
        assert!(SentRec::from_stored(&old[..old.len() - 1]).is_err());
    }
}
