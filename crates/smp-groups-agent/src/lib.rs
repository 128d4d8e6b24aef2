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
//!   reaches SMP relays over TLS with `smp-groups-net`'s client. Tests run
//!   real relays in their process and reach them through the same client over
//!   in-memory pipes (`testing::MemoryRelays`, with the `test-util` feature).
//! * [`server`]: the client text protocol on TCP, with its status queries
//!   (`LIST`, `PENDING`, `MEMBERS`, `STATUS`, `PROOF`) answered as rows.
//! * [`records`]: the stored form of the core's records in the agent's
//!   database.
//!
//! # Example
//!
//! Alice makes a group and invites bob over their connection; bob joins and
//! gets alice's message. Everything goes through a real relay over TLS.
//!
//! ```
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use smp_groups_agent::{Agent, AgentConfig, EventStream, NetworkRelay};
//! use smp_groups_relay::Relay;
//! use smp_groups_wire::client::AgentEvent;
//!
//! async fn wait<T>(
//!     events: &mut EventStream,
//!     f: impl Fn(AgentEvent) -> Option<T>,
//! ) -> Result<T, &'static str> {
//!     loop {
//!         if let Some(x) = f(events.next().await.ok_or("agent stopped")?.event) {
//!             return Ok(x);
//!         }
//!     }
//! }
//!
//! let dir = std::env::temp_dir().join(format!("smp-agent-doc-{}", std::process::id()));
//! let relay = Relay::spawn_local(&dir).await?;
//! let net = Arc::new(NetworkRelay::new());
//! let alice = Agent::open(AgentConfig::new("alice", &relay.address(), None), net.clone())?;
//! let bob = Agent::open(AgentConfig::new("bob", &relay.address(), None), net)?;
//! let (mut ae, mut be) = (alice.events().await?, bob.events().await?);
//!
//! // A pairwise connection first: the group's invitation travels on it.
//! let conn = alice.new_connection(Some("bob")).await?;
//! let inv = wait(&mut ae, |e| match e {
//!     AgentEvent::Inv { invitation, .. } => Some(invitation.as_str().to_owned()),
//!     _ => None,
//! })
//! .await?;
//! let inv = smp_groups_wire::base64url::decode_unpadded(&inv, "invitation")?;
//! bob.join_connection(Some("alice"), inv).await?;
//! wait(&mut ae, |e| matches!(e, AgentEvent::Con { .. }).then_some(())).await?;
//!
//! let group = alice.create_group(Some("club"), b"Book club").await?;
//! alice.invite(&conn, &group, b"Book club").await?;
//! let req = wait(&mut be, |e| match e {
//!     AgentEvent::Req { invitation, .. } => Some(invitation.as_str().to_owned()),
//!     _ => None,
//! })
//! .await?;
//! let bobs = bob.join(Some("club"), &req).await?;
//! wait(&mut be, |e| matches!(e, AgentEvent::GroupMem { member: None, .. }).then_some(())).await?;
//!
//! alice.send(&group, b"first meeting on Friday").await?;
//! let body = wait(&mut be, |e| match e {
//!     AgentEvent::GroupMsg { body, .. } => Some(body),
//!     _ => None,
//! })
//! .await?;
//! assert_eq!(body, b"first meeting on Friday");
//! assert_eq!(bob.members(&bobs).await?.len(), 1); // alice
//! relay.shutdown().await;
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
#![forbid(unsafe_code)]

mod agent;
mod error;
mod events;
mod network;
pub mod records;
mod relay_client;
mod runtime;
pub mod server;
mod status;
#[cfg(feature = "test-util")]
pub mod testing;

pub use agent::{Agent, AgentConfig, EventStream};
pub use error::Error;
pub use network::NetworkRelay;
pub use relay_client::{RelayClient, RelayConnector, RelayContext};
pub use runtime::{Delivery, Metrics};
