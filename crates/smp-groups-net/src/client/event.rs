//! What a client reports besides command responses.

use smp_groups_wire::smp::ServerMsg;

use super::error::ClientError;

/// An event of a client connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A relay event for a queue: `MSG` (also when it came as the response to `SUB` or
    /// `ACK`), `END` or `DELD`. `entity_id` is the recipient queue id.
    Queue {
        /// The queue (recipient id).
        entity_id: Vec<u8>,
        /// The event.
        msg: ServerMsg,
    },
    /// The connection ended, for this reason.
    Disconnected(ClientError),
    /// ([`ReconnectingClient`](super::ReconnectingClient) only) A new connection is up
    /// and the remembered subscriptions were sent again; `resubscribed` of them
    /// succeeded, `failed` did not: those the relay refused are forgotten, those
    /// that failed otherwise (timed out, or the connection ended) are sent again on
    /// the next connection.
    Reconnected {
        /// Subscriptions re-established.
        resubscribed: usize,
        /// Subscriptions not re-established.
        failed: usize,
    },
}

/// The receiving end of a client's events.
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<ConnectionEvent>;
