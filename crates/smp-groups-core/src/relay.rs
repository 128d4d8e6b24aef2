//! Relay operations the agent asks its driver to perform, and their results.
//!
//! These are the SMP operations the core needs, typed; the driver maps them to
//! SMP commands (`NEW`, `KEY`, `SUB`, `SEND`, `ACK`, `DEL`) on the named server.

use std::fmt;

use serde::{Deserialize, Serialize};
use smp_groups_wire::agent::EnvelopeKind;

/// Identifies one relay operation, to match its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// What one relay `SEND` carries, for metrics: the kind of the agent
/// envelope, and whether the send is one fragment of it. Written `MSG`, or
/// `MSG/FRAG` for a fragment (the form it is stored in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendKind {
    /// The envelope's kind.
    pub envelope: EnvelopeKind,
    /// True when this send is one fragment of that envelope.
    pub fragment: bool,
}

impl SendKind {
    /// A whole envelope of kind `envelope`.
    pub const fn whole(envelope: EnvelopeKind) -> Self {
        Self {
            envelope,
            fragment: false,
        }
    }

    /// One fragment of an envelope of kind `envelope`.
    pub const fn fragment_of(envelope: EnvelopeKind) -> Self {
        Self {
            envelope,
            fragment: true,
        }
    }
}

impl fmt::Display for SendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fragment {
            write!(f, "{}/FRAG", self.envelope)
        } else {
            write!(f, "{}", self.envelope)
        }
    }
}

impl std::str::FromStr for SendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, fragment) = match s.strip_suffix("/FRAG") {
            Some(name) => (name, true),
            None => (s, false),
        };
        EnvelopeKind::from_name(name)
            .map(|envelope| Self { envelope, fragment })
            .ok_or_else(|| format!("unknown envelope kind {s:?}"))
    }
}

impl Serialize for SendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SendKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One relay operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayOp {
    /// Create a receive queue (`NEW`); the creator is subscribed to it.
    CreateQueue {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
    },
    /// Secure a receive queue with the sender's public key (`KEY`).
    Secure {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
        /// The recipient id of the queue.
        rcv_id: Vec<u8>,
        /// The Ed25519 public key the sender authorizes its sends with.
        sender_key: [u8; 32],
    },
    /// Subscribe to a receive queue (`SUB`), e.g. after a restart.
    Subscribe {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
        /// The recipient id of the queue.
        rcv_id: Vec<u8>,
    },
    /// Send one message body to a queue (`SEND`).
    Send {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
        /// The sender id of the queue.
        snd_id: Vec<u8>,
        /// Seed of the Ed25519 key that authorizes the send (`None` for the first
        /// message to a queue that is not yet secured).
        auth: Option<[u8; 32]>,
        /// The envelope's kind, for metrics only: it does not travel.
        kind: SendKind,
        /// The agent envelope.
        #[serde(with = "crate::serde_bytes")]
        body: Vec<u8>,
    },
    /// Acknowledge the message last delivered from a queue (`ACK`).
    Ack {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
        /// The recipient id of the queue.
        rcv_id: Vec<u8>,
        /// The relay's id of the message.
        msg_id: Vec<u8>,
    },
    /// Delete a receive queue (`DEL`).
    Delete {
        /// Operation id.
        op: OpId,
        /// The relay.
        server: String,
        /// The recipient id of the queue.
        rcv_id: Vec<u8>,
    },
}

impl RelayOp {
    /// The operation id.
    pub fn op(&self) -> OpId {
        match self {
            Self::CreateQueue { op, .. }
            | Self::Secure { op, .. }
            | Self::Subscribe { op, .. }
            | Self::Send { op, .. }
            | Self::Ack { op, .. }
            | Self::Delete { op, .. } => *op,
        }
    }

    /// The SMP command the operation sends (`NEW`, `KEY`, `SUB`, `SEND`, `ACK`,
    /// `DEL`), for logs and counts.
    pub fn command_name(&self) -> &'static str {
        match self {
            Self::CreateQueue { .. } => "NEW",
            Self::Secure { .. } => "KEY",
            Self::Subscribe { .. } => "SUB",
            Self::Send { .. } => "SEND",
            Self::Ack { .. } => "ACK",
            Self::Delete { .. } => "DEL",
        }
    }

    /// The relay the operation goes to.
    pub fn server(&self) -> &str {
        match self {
            Self::CreateQueue { server, .. }
            | Self::Secure { server, .. }
            | Self::Subscribe { server, .. }
            | Self::Send { server, .. }
            | Self::Ack { server, .. }
            | Self::Delete { server, .. } => server,
        }
    }
}

/// Why a relay operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayError {
    /// Network failure or timeout: the operation is retried.
    Temporary,
    /// The queue does not exist (deleted by its recipient).
    NoQueue,
    /// The relay refused the authorization.
    Auth,
    /// The relay refused the operation itself, for a reason of its own (the
    /// message is too large for it, a command it does not take, the queue
    /// is blocked): the queue is not known to be gone. A send refused so is
    /// retried at the longest retry interval and reported to the client
    /// ([`crate::FaultKind::SendRefused`]); it never counts as the peer
    /// leaving.
    Refused,
}

/// What a relay reported, fed to [`crate::Agent::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// `CreateQueue` succeeded.
    QueueCreated {
        /// The operation.
        op: OpId,
        /// The recipient id.
        rcv_id: Vec<u8>,
        /// The sender id (given to the other side).
        snd_id: Vec<u8>,
    },
    /// Any other operation succeeded.
    Done {
        /// The operation.
        op: OpId,
    },
    /// The operation failed.
    Failed {
        /// The operation.
        op: OpId,
        /// Why.
        error: RelayError,
    },
    /// A message arrived on a subscribed receive queue; it must be acknowledged
    /// before the relay delivers the next one.
    Message {
        /// The relay.
        server: String,
        /// The recipient id of the queue.
        rcv_id: Vec<u8>,
        /// The relay's id of the message (for `Ack`).
        msg_id: Vec<u8>,
        /// The relay's timestamp of the message (when it accepted the
        /// sender's `SEND`), on the agent's time scale (milliseconds since
        /// the epoch of the `now` given to [`crate::Agent::handle`]; an SMP
        /// relay gives whole seconds since the Unix epoch).
        ts: crate::Timestamp,
        /// The agent envelope.
        body: Vec<u8>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_kinds_keep_their_stored_text() {
        for envelope in EnvelopeKind::ALL {
            for kind in [SendKind::whole(envelope), SendKind::fragment_of(envelope)] {
                let text = kind.to_string();
                assert_eq!(text.parse::<SendKind>(), Ok(kind));
                // Stored as the text (a postcard string), as before the type.
                let stored = postcard::to_allocvec(&kind).unwrap_or_default();
                assert_eq!(stored, postcard::to_allocvec(&text).unwrap_or_default());
                assert_eq!(postcard::from_bytes::<SendKind>(&stored).ok(), Some(kind));
            }
        }
        assert_eq!(
            SendKind::fragment_of(EnvelopeKind::Msg).to_string(),
            "MSG/FRAG"
        );
        assert!("BOGUS".parse::<SendKind>().is_err());
        assert!("/FRAG".parse::<SendKind>().is_err());
    }
}
