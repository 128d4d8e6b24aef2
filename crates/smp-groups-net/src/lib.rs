#![forbid(unsafe_code)]
//! SMP transport for smp-groups: TLS 1.3 as SMP relays speak it.
//!
//! - [`client_config`] / [`SmpTlsStream::connect`]: the client side, which identifies the
//!   relay by the key hash of its address (SHA-256 of the DER identity certificate) and
//!   accepts Ed25519 and Ed448 certificates.
//! - [`ServerIdentity`] / [`SmpTlsStream::accept`]: the relay side, with an identity
//!   certificate and an online certificate it signs, kept in a data directory.
//! - [`SmpTlsStream::session_id`]: the SMP session id, which is the `verify_data` of the
//!   client's TLS Finished message on both sides (see `docs/net.md`).
//!
//! - [`SmpTransport`]: the SMP block transport on top: the hello blocks of the SMP
//!   handshake, then 16384-byte blocks, encrypted with the block chain from version 11.
//!   [`SmpTransport::into_split`] splits it into a [`BlockReader`] and a [`BlockWriter`].
//!
//! - [`SmpClient`]: an async SMP client (commands matched to responses, batching,
//!   events, keep-alive, timeouts), and [`ReconnectingClient`], which reconnects and
//!   resubscribes.
//!
//! Everything is written against generic `AsyncRead + AsyncWrite + Unpin` streams, so it
//! runs over TCP and over in-memory pipes alike; a [`Dialer`] says how a client obtains
//! its stream to a relay ([`TcpDialer`] by default).
//!
//! # Example
//!
//! A relay's identity is made once and kept in its data directory; clients
//! know the relay by the key hash of its identity certificate (the `keyHash`
//! of `smp://keyHash@host:port`).
//!
//! ```
//!
//! use smp_groups_net::ServerIdentity;
//!
//! let dir = std::env::temp_dir().join(format!("smp-net-doc-{}", std::process::id()));
//! let identity = ServerIdentity::load_or_create(&dir)?;
//! let again = ServerIdentity::load_or_create(&dir)?;
//! assert_eq!(identity.key_hash(), again.key_hash());
//! assert_eq!(identity.key_hash(), smp_groups_crypto::sha256(identity.identity_der()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), smp_groups_net::NetError>(())
//! ```

mod block;
mod cert;
mod client;
mod config;
mod der;
mod dial;
mod error;
mod handshake;
mod identity;
mod keylog;
mod recording;
mod session_id;
mod stream;
mod verify;

pub use block::{BlockReader, BlockWriter, SmpTransport, TransportReader, TransportWriter};
pub use client::{
    ClientError, ConnectionEvent, EventReceiver, ReceivedMessage, ReconnectConfig,
    ReconnectingClient, SmpClient, SmpClientConfig,
};
pub use config::{ALPN_SMP, client_config, server_config};
pub use dial::{BoxedStream, ByteStream, DialFuture, Dialer, TcpDialer};
pub use error::{CertError, HandshakeError, NetError, SessionIdError};
pub use identity::ServerIdentity;
pub use session_id::client_finished_from_records;
pub use stream::SmpTlsStream;
pub use verify::{KeyHashVerifier, validate_chain};
