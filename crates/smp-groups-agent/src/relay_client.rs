//! Relay access: the operations the core emits, performed by a [`RelayClient`].
//!
//! A client is given one operation at a time ([`RelayClient::perform`]) and
//! reports its result, and every message a relay delivers on a subscribed
//! queue, as [`RelayEvent`]s on the channel it was connected with. It never
//! blocks the runtime: a network client hands the operation to its connection
//! task; the in-process client ([`crate::InProcessRelay`]) runs it at once.

use smp_groups_core::{RelayEvent, RelayOp};
use tokio::sync::mpsc::UnboundedSender;

/// Performs relay operations for one agent.
pub trait RelayClient: Send {
    /// Starts `op`; its result (and later deliveries) arrive on the event channel.
    fn perform(&mut self, op: RelayOp);
}

/// Makes a [`RelayClient`] for an agent.
pub trait RelayConnector: Send + Sync {
    /// Connects agent `identity` (its stable name at the relays); results and
    /// deliveries are sent to `events`.
    fn connect(&self, identity: &str, events: UnboundedSender<RelayEvent>) -> Box<dyn RelayClient>;
}
