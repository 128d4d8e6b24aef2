//! Relay access: the operations the core emits, performed by a [`RelayClient`].
//!
//! A client is given one operation at a time ([`RelayClient::perform`]) and
//! reports its result, and every message a relay delivers on a subscribed
//! queue, as [`RelayEvent`]s on the channel of its [`RelayContext`]. It never
//! blocks the runtime: the network client ([`crate::NetworkRelay`]) runs each
//! operation on its own task.

use std::sync::Arc;

use smp_groups_core::{RelayEvent, RelayOp};
use smp_groups_crypto::rng::RandomSource;
use smp_groups_store::QueueKeys;
use tokio::sync::mpsc::UnboundedSender;

/// Performs relay operations for one agent.
pub trait RelayClient: Send {
    /// Starts `op`; its result (and later deliveries) arrive on the event channel.
    fn perform(&mut self, op: RelayOp);
}

/// What an agent gives the relay client it connects.
#[derive(Debug)]
pub struct RelayContext {
    /// The agent's stable name (for logs).
    pub identity: String,
    /// Where operation results and delivered messages go.
    pub events: UnboundedSender<RelayEvent>,
    /// The durable table for the recipient secrets of the agent's queues, in
    /// the agent's own database.
    pub keys: QueueKeys,
    /// The agent's randomness (queue keys are drawn from it).
    pub random: Arc<dyn RandomSource>,
}

/// Makes a [`RelayClient`] for an agent.
pub trait RelayConnector: Send + Sync {
    /// Connects the agent described by `context` (fails when its stored queue
    /// keys cannot be read).
    fn connect(&self, context: RelayContext) -> Result<Box<dyn RelayClient>, crate::Error>;
}
