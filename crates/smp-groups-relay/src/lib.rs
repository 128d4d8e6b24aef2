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
