//! The smp-groups agent: the runtime that executes the core state machine
//! durably, relay clients, the client text protocol server, and the
//! `smp-agent` binary.
//!
//! * [`Agent`]: the async API. [`Agent::open`] restores the agent from its
//!   SQLite database (or creates it) and starts one task that owns the core
//!   agent; every input's storage writes, relay operations and client events
//!   are committed in one transaction before anything is sent (see
//!   [`runtime`](crate::Delivery) and `docs/agent.md`).
//! * [`RelayClient`] / [`RelayConnector`]: relay access. [`NetworkRelay`]
//!   reaches SMP relays over TLS with `smp-groups-net`'s client;
//!   [`InProcessRelay`] runs the relay crate's queue logic in this process,
//!   without TLS (for unit tests of the runtime).
//! * [`server`]: the client text protocol on TCP; [`status`]: its status
//!   queries (`LIST`, `PENDING`, `MEMBERS`, `STATUS`) as rows.
//! * [`demo`]: the scripted group run of `smp-agent demo`.
#![forbid(unsafe_code)]

mod agent;
pub mod demo;
mod error;
pub mod events;
mod in_process;
mod network;
mod relay_client;
mod runtime;
pub mod server;
pub mod status;

pub use agent::{Agent, AgentConfig, EventStream};
pub use error::Error;
pub use in_process::{InProcessError, InProcessRelay};
pub use network::NetworkRelay;
pub use relay_client::{RelayClient, RelayConnector, RelayContext};
pub use runtime::{Delivery, Metrics};
