//! SMP (agent <-> relay), byte-exact with the reference implementation at
//! protocol versions 6 to 19.
//!
//! * [`version`]: [`Version`], [`VersionRange`], the feature thresholds and
//!   declared maximum sizes ([`limits`]), and the versioned codec traits
//!   [`SmpEncode`] / [`SmpDecode`].
//! * [`base64url`]: the text encoding of key hashes, ids and keys.
//! * [`keys`]: Ed25519 / X25519 public keys as DER SubjectPublicKeyInfo.
//! * [`server`]: relay addresses (`smp://keyHash@hosts:port`), binary and text.
//! * [`queue_uri`]: queue addresses handed to senders.
//! * [`handshake`]: server and client hello, handshake blocks; [`x509`] splits
//!   the signed session key.
//! * [`transmission`] and [`batch`]: transmissions, the bytes to authorize,
//!   batches and block packing.
//! * [`command`], [`response`], [`error_type`]: commands, relay responses and
//!   error codes, with their version-gated fields.
//! * [`message`]: the message layers inside `SEND` and `MSG`.
//!
//! The grammar is written out in `docs/protocol-smp.md`.

pub use crate::base64url;
pub mod batch;
pub mod command;
pub mod error_type;
pub mod handshake;
pub mod keys;
pub mod message;
mod new_queue;
pub mod queue_uri;
pub mod response;
pub mod server;
pub mod transmission;
pub mod version;
pub mod x509;

pub use batch::{decode_batch, encode_batch, encode_batch1, pack_batches};
pub use command::{Command, MsgFlags, RecipientCommand, SenderCommand};
pub use error_type::ErrorType;
pub use handshake::{ClientHello, ServerHello};
pub use keys::{AuthPublicKey, Ed25519PublicKey, X25519PublicKey};
pub use message::{ClientMessage, ClientMsgEnvelope, PrivHeader, RcvMsgBody};
pub use queue_uri::SmpQueueUri;
pub use response::{QueueIds, ServerMsg};
pub use server::{Host, KeyHash, Port, ProtocolServer};
pub use transmission::{
    Transmission, TransmissionAuth, decode_auth, encode_auth, encode_for_auth, encode_to_send,
};
pub use version::{SmpDecode, SmpEncode, Version, VersionRange, limits};
