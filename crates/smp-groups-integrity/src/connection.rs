//! Per-connection integrity: every agent message on a pairwise connection carries a
//! sequential id and the digest of the previous message ([`MsgHeader`]); the
//! receiver checks both and returns a [`ConnVerdict`].
//!
//! The digest of a message is the SHA-256 of its complete plaintext agent message
//! as encoded (header included), so each message commits to the whole history of
//! the connection before it. The first message has id 1 and previous digest
//! [`Digest::ZERO`].

use serde::{Deserialize, Serialize};
use smp_groups_crypto::sha256;
use smp_groups_wire::agent::{Digest, MsgHeader};

use crate::error::ConnError;
use crate::serde_ids;

/// The receiver's verdict on one message of a pairwise connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnVerdict {
    /// The next id, and the previous digest matches: accepted.
    Ok,
    /// An id lower than the last accepted one, or the last id with different
    /// content (or id 0): rejected, the state is unchanged.
    BadId {
        /// The id received.
        id: u64,
        /// The last id accepted before it.
        last: u64,
    },
    /// The last accepted message again, byte for byte (a redelivery): the state is
    /// unchanged and the message must not be processed again.
    Duplicate {
        /// The id received.
        id: u64,
    },
    /// Messages `from..=to` never arrived; the message itself is accepted (its
    /// previous digest cannot be checked), and the chain continues from it.
    Skipped {
        /// First missing id.
        from: u64,
        /// Last missing id.
        to: u64,
    },
    /// The next id, but the previous digest differs from the digest of the last
    /// message received: the peer's history differs from ours. The message is
    /// accepted and the chain continues from it, so one fault is reported once.
    BadHash {
        /// The id received.
        id: u64,
    },
}

impl ConnVerdict {
    /// Whether the message should be processed (everything except
    /// [`BadId`](Self::BadId) and [`Duplicate`](Self::Duplicate)).
    pub fn accepted(self) -> bool {
        !matches!(self, Self::BadId { .. } | Self::Duplicate { .. })
    }
}

/// Both directions of one pairwise connection's message chain. Serializable, to be
/// stored with the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionChain {
    sent_id: u64,
    #[serde(with = "serde_ids::digest")]
    sent_hash: Digest,
    recv_id: u64,
    #[serde(with = "serde_ids::digest")]
    recv_hash: Digest,
}

impl ConnectionChain {
    /// A fresh connection: nothing sent or received.
    pub fn new() -> Self {
        Self::default()
    }

    /// The digest a message contributes to the chain: SHA-256 of its encoded bytes.
    pub fn message_digest(message: &[u8]) -> Digest {
        Digest(sha256(message))
    }

    /// The header for the next message to send (id and previous digest). Pass it,
    /// with the encoded message that contains it, to [`record_sent`](Self::record_sent).
    pub fn next_header(&self) -> Result<MsgHeader, ConnError> {
        let snd_msg_id = self.sent_id.checked_add(1).ok_or(ConnError::IdsExhausted)?;
        Ok(MsgHeader {
            snd_msg_id,
            prev_msg_hash: self.sent_hash,
        })
    }

    /// Records that `message` (the encoded agent message carrying `header`) was sent.
    /// `header` must be the one [`next_header`](Self::next_header) returned.
    pub fn record_sent(&mut self, header: &MsgHeader, message: &[u8]) -> Result<(), ConnError> {
        let expected = self.next_header()?;
        if *header != expected {
            return Err(ConnError::NotNextHeader {
                expected: expected.snd_msg_id,
                got: header.snd_msg_id,
            });
        }
        self.sent_id = header.snd_msg_id;
        self.sent_hash = Self::message_digest(message);
        Ok(())
    }

    /// Checks a received message (its `header` and the encoded agent message that
    /// carries it) and advances the receive state unless the verdict is
    /// [`BadId`](ConnVerdict::BadId) or [`Duplicate`](ConnVerdict::Duplicate).
    pub fn receive(&mut self, header: &MsgHeader, message: &[u8]) -> ConnVerdict {
        let id = header.snd_msg_id;
        let digest = Self::message_digest(message);
        let last = self.recv_id;
        if id == 0 || id < last {
            return ConnVerdict::BadId { id, last };
        }
        if id == last {
            return if digest == self.recv_hash {
                ConnVerdict::Duplicate { id }
            } else {
                ConnVerdict::BadId { id, last }
            };
        }
        // id > last, so last + 1 cannot overflow.
        let next = last + 1;
        let verdict = if id > next {
            ConnVerdict::Skipped {
                from: next,
                to: id - 1,
            }
        } else if header.prev_msg_hash == self.recv_hash {
            ConnVerdict::Ok
        } else {
            ConnVerdict::BadHash { id }
        };
        self.recv_id = id;
        self.recv_hash = digest;
        verdict
    }

    /// The id of the last message sent (0 before the first).
    pub fn last_sent_id(&self) -> u64 {
        self.sent_id
    }

    /// The id of the last message accepted (0 before the first).
    pub fn last_received_id(&self) -> u64 {
        self.recv_id
    }
}
