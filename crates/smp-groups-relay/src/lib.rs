//! The SMP relay of smp-groups: the queue server agents send messages through.
//!
//! Every item is at the crate root (the files are private):
//!
//! * the queue logic ([`RelayState`], driven by [`RelayState::handle`]):
//!   `NEW`, `KEY`/`SKEY`, `SUB`, `SEND`, `MSG`, `ACK`, `GET`, `OFF`, `DEL`,
//!   `END`/`DELD`, quotas, expiry, authorization, free of sockets and clocks;
//!   the domain types it speaks ([`Request`], [`Reply`], [`Outcome`], ...);
//! * SMP transmissions to requests and responses to transmissions, at the
//!   negotiated version ([`handle_batch`], [`encode_response`]), with the
//!   signature and authenticator checks ([`SessionAuth`], [`verify_request`]);
//! * the server: the SMP handshake and block transport on the relay side
//!   ([`Relay`], [`Relay::spawn_local`], [`RelayHandle`], which also serves
//!   streams connected otherwise than by TCP, [`RelayHandle::serve_stream`];
//!   `smp-relay` is the same server as a binary);
//! * SQLite persistence of queues and undelivered messages ([`QueueStore`]).
//!
//! # Example
//!
//! A relay on a loopback port, storing in a directory, as tests and the
//! `smp-agent demo` embed it (`smp-relay` is the same server as a binary):
//!
//! ```
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use smp_groups_relay::Relay;
//!
//! let dir = std::env::temp_dir().join(format!("smp-relay-doc-{}", std::process::id()));
//! let relay = Relay::spawn_local(&dir).await?;
//! // What agents put in their configuration.
//! assert!(relay.address().starts_with("smp://"));
//! assert_eq!(relay.stats().await.queues, 0);
//! relay.shutdown().await;
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
#![forbid(unsafe_code)]

mod auth;
mod config;
mod protocol;
mod ratelog;
mod server;
mod signal;
mod state;
mod store;
mod transport;
mod types;

pub use auth::{SessionAuth, verify_request};
pub use config::{
    DEFAULT_MAX_QUEUES, DEFAULT_MAX_QUEUES_PER_CONNECTION, DEFAULT_MAX_STORED_BYTES,
    DEFAULT_MESSAGE_TTL, DEFAULT_QUOTA, RelayConfig,
};
pub use protocol::{encode_response, handle_batch};
pub use server::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDSHAKES, Relay, RelayHandle, RelayStats, ServerConfig,
    ServerError, relay_address,
};
pub use signal::shutdown_signal;
pub use state::{BatchFailed, Refusals, RelayRng, RelayState, Session};
pub use store::{Durability, QUEUE_STORE_VERSION, QueueStore, QueueStoreError, STORE_FILE};
pub use types::{
    AuthKey, Authorization, CmdError, ConnId, DhSecret, ErrorCode, ID_LEN, MessageBody, MsgId,
    NewQueue, Outcome, QueueCommand, QueueId, QueueMode, QueueRecord, QueueStatus, Reply, Request,
    Response, StoredMessage,
};
