//! SMP (agent <-> relay), byte-exact with the reference implementation at
//! protocol versions 6 to 19.
//!
//! Every item is at this one path (the files are private):
//!
//! * versions: [`Version`], [`VersionRange`], the feature thresholds and
//!   declared maximum sizes ([`limits`]), and the versioned encoding
//!   [`SmpEncode`] (values whose grammar depends on the version decode with
//!   [`crate::DecodeWith`]`<Version>`);
//! * [`base64url`]: the text encoding of key hashes, ids and keys;
//! * keys: [`Ed25519PublicKey`] / [`X25519PublicKey`] as DER
//!   SubjectPublicKeyInfo, [`AuthPublicKey`];
//! * relay addresses (`smp://keyHash@hosts:port`), binary and text:
//!   [`ProtocolServer`], [`KeyHash`], [`Host`], [`Port`]; queue addresses
//!   handed to senders: [`SmpQueueUri`];
//! * the handshake: [`ServerHello`], [`ClientHello`], the handshake blocks
//!   ([`encode_handshake_block`]); the signed session key ([`SignedObject`]);
//! * transmissions, the bytes to authorize ([`encode_for_auth`]), batches and
//!   block packing ([`pack_batches`]);
//! * [`Command`], relay responses ([`ServerMsg`]) and error codes
//!   ([`ErrorType`]), with their version-gated fields;
//! * the message layers inside `SEND` and `MSG` ([`ClientMsgEnvelope`],
//!   [`ClientMessage`], [`RcvMsgBody`]).
//!
//! The grammar is written out in `docs/protocol-smp.md`.

pub use crate::base64url;
mod batch;
mod command;
mod error_type;
mod handshake;
mod keys;
mod message;
mod new_queue;
mod queue_uri;
mod response;
mod server;
mod transmission;
mod version;
mod x509;

pub use batch::{decode_batch, encode_batch, encode_batch1, pack_batches};
pub use command::{Command, MsgFlags, RecipientCommand, SenderCommand};
pub use error_type::{
    BlockingInfo, BlockingReason, BrokerError, CommandError, ErrorType, HandshakeError, ProxyError,
    TransportError,
};
pub use handshake::{
    CertChainPubKey, ClientHello, ClientService, ServerHello, ServiceRole, decode_handshake_block,
    encode_handshake_block,
};
pub use keys::{
    AuthPublicKey, ED25519_SPKI_PREFIX, Ed25519PublicKey, SPKI_LEN, X25519_SPKI_PREFIX,
    X25519PublicKey,
};
pub use message::{ClientMessage, ClientMsgEnvelope, PrivHeader, RcvMsgBody};
pub use new_queue::{
    BasicAuth, NewNtfCreds, NewQueue, QueueLinkData, QueueMode, QueueReqData, SubscriptionMode,
};
pub use queue_uri::{
    CLIENT_VERSION_SHORT_LINKS, CLIENT_VERSION_SRV_HOSTNAMES, MAX_QUEUE_URI_LEN, SmpQueueUri,
};
pub use response::{QueueIds, ServerMsg, ServerNtfCreds};
pub use server::{Host, KeyHash, Port, ProtocolServer};
pub use transmission::{
    AuthParts, Transmission, TransmissionAuth, decode_auth, encode_auth, encode_for_auth,
    encode_to_send,
};
pub use version::{SmpEncode, Version, VersionRange, limits};
pub use x509::{
    SignatureAlgorithm, SignedObject, Tlv, build_ed25519_signed, parse_single, read_tlv,
};
