//! The SMP relay of smp-groups: the queue server agents send messages through.
//!
//! * [`state`]: the queue logic (`NEW`, `KEY`/`SKEY`, `SUB`, `SEND`, `MSG`,
//!   `ACK`, `GET`, `OFF`, `DEL`, `END`/`DELD`, quotas, expiry, authorization),
//!   free of sockets and clocks, driven by [`RelayState::handle`].
//! * [`protocol`]: SMP transmissions to requests and responses to
//!   transmissions, at the negotiated version.
//! * [`transport`] and [`server`]: the SMP handshake and block transport on
//!   the relay side, and the server (`smp-relay`, [`server::Relay::spawn_local`]).
//! * [`store`]: SQLite persistence of queues and undelivered messages.
//! * [`types`]: the domain types the logic speaks.
//! * [`auth`]: signature and authenticator checks.
//!
//! # Example
//!
//! A relay on a loopback port, storing in a directory, as tests and the
//! `smp-agent demo` embed it (`smp-relay` is the same server as a binary):
//!
//! ```
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use smp_groups_relay::server::Relay;
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

pub mod auth;
pub mod config;
pub mod protocol;
pub mod ratelog;
pub mod server;
pub mod signal;
pub mod state;
pub mod store;
pub mod transport;
pub mod types;

pub use config::RelayConfig;
pub use state::{BatchFailed, Refusals, RelayRng, RelayState, Session};
pub use store::{Durability, Store, StoreError};
