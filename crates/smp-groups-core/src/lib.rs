//! Sans-IO state machines for smp-groups: pairwise connections and symmetric
//! groups of SMP agents.
//!
//! An [`Agent`] is the whole state of one agent. It takes inputs through
//! [`Agent::handle`] (client commands, relay results and delivered messages,
//! timer expiry), with the current time and a random number generator passed
//! in, and is then polled for outputs ([`Agent::poll`]): one atomic
//! [`StoreBatch`] per input, the relay operations to perform, the client events;
//! [`Agent::poll_timeout`] gives the next timer. It does no IO and reads no
//! clock, so a run is reproducible from its inputs and its seed.
//!
//! Every flow of the group RFC is here: pairwise connections (invitation,
//! confirmation, `HELLO`), groups (`NEW INTRO REQ JOIN CON MEM SEND SENT MSG ACK
//! RCVD LEAVE LEFT REM REMD OUT EMPTY DEL DELD`), introductions as in the RFC's
//! diagram and with open invitations, approvals above a group size, `G_CHECK`
//! rounds, and fragmentation of large messages. Every envelope on a connection
//! is chained (sequential id, previous message's hash) and encrypted with the
//! connection's double ratchet.
//!
//! Direct messages to one member of a group ([`Command::DirectSend`],
//! `crate::direct`) go on the hidden connection with that member as their own
//! envelope (`DMSG`), outside the group chains and `G_CHECK`.
//!
//! Read-only status queries ([`Agent::group_statuses`],
//! [`Agent::member_statuses`], [`Agent::conn_statuses`],
//! [`Agent::pending_invitations`], [`Agent::pending_approvals`],
//! [`Agent::pending_sends`], [`Agent::integrity_status`]) answer from the
//! state the agent keeps and change nothing; [`Command::Check`] starts a
//! `G_CHECK` round now.
//!
//! Every input the agent refuses is counted by who is at fault and what was
//! refused ([`Agent::refusals`], [`FaultSource`], [`FaultKind`]) and logged with
//! `tracing`; refusals that leave a connection unable to make progress reach
//! the client as [`Event::Fault`] (`docs/faults.md`).
//!
//! The semantics under concurrency are in `docs/groups.md`, the costs in
//! `docs/costs.md`. With the `sim` feature, `sim` runs many agents against
//! in-memory relays with a virtual clock and seeded faults.
//!
//! # Example
//!
//! The agent does no IO: a command goes in with the time and a generator,
//! and what to store, what to ask the relay and what to tell the client come
//! out, in that order.
//!
//! ```
//!
//! use smp_groups_core::{Agent, Command, Config, Input, Output, RelayOp, Timestamp};
//! use smp_groups_crypto::rng;
//!
//! let mut agent = Agent::new(Config {
//!     server: "smp://relay.example".into(),
//!     ..Config::default()
//! });
//! while agent.poll().is_some() {} // the new agent's first records
//! agent.handle(
//!     Input::Command {
//!         corr: "1".into(),
//!         command: Command::NewConn { alias: Some("bob".into()) },
//!     },
//!     Timestamp::from_millis(1_700_000_000_000),
//!     &mut rng::seeded(7),
//! );
//! let outputs: Vec<Output> = std::iter::from_fn(|| agent.poll()).collect();
//! // First the state to commit, then a queue to create on the relay.
//! assert!(matches!(outputs.first(), Some(Output::Store(_))));
//! assert!(outputs
//!     .iter()
//!     .any(|o| matches!(o, Output::Relay(RelayOp::CreateQueue { .. }))));
//! ```
#![forbid(unsafe_code)]

mod agent;
mod api;
#[cfg(feature = "cheat")]
mod cheat;
mod config;
mod conn;
mod direct;
mod fault;
mod group;
mod history;
mod history_share;
mod ids;
mod marks;
mod members_check;
mod profile;
mod proof;
mod query;
mod record;
mod relay;
mod serde_bytes;
mod state;
pub mod store;
mod time;
mod timers;

#[cfg(feature = "sim")]
pub mod sim;

pub use agent::{Agent, Input, Output};
pub use api::{
    Change, ClientEvent, Command, CommandError, DirectFailure, Event, MsgIntegrity, MsgMeta,
    ReceiptStatus,
};
#[cfg(feature = "cheat")]
pub use cheat::{Cheat, CheatMode};
pub use config::{Config, HistoryShare, ReceiptPolicy, Settings};
pub use fault::{FaultKind, FaultSource, FaultTarget, RefusalCounts};
pub use history::{HISTORY_MAX_BYTES, HISTORY_MAX_MESSAGES};
pub use history_share::{HISTORY_SHARE_MAX_BYTES, HISTORY_SHARE_MAX_MESSAGES};
pub use proof::{DeliveryProof, MAX_PROOF_UNITS_KEPT, PROOF_WINDOW};
pub use query::{
    ConnState, ConnStatus, GroupState, GroupStatus, IntegrityStatus, MemberIntegrity, MemberState,
    MemberStatus, OpenViolation, OpenViolationKind, PendingApproval, PendingDirect,
    PendingInvitation, PendingSend,
};
pub use relay::{OpId, RelayError, RelayEvent, RelayOp, SendKind};
pub use store::{Key, RestoreError, SCHEMA_VERSION, StoreBatch};
pub use time::Timestamp;
