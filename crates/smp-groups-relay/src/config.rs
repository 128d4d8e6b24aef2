//! Relay settings, with the reference relay's defaults.

/// Default number of messages a queue holds before `ERR QUOTA`.
pub const DEFAULT_QUOTA: usize = 128;

/// Default message lifetime: 21 days.
pub const DEFAULT_MESSAGE_TTL: i64 = 21 * 86_400;

/// Default limit on queues in total.
pub const DEFAULT_MAX_QUEUES: u64 = 1_000_000;

/// Default limit on queues one connection creates.
pub const DEFAULT_MAX_QUEUES_PER_CONNECTION: u64 = 4_096;

/// Default limit on the bytes of message bodies stored in total: 16 GiB.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 16 << 30;

/// Settings of the queue logic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Messages a queue holds; the next `SEND` stores a quota marker and gets
    /// `ERR QUOTA`, and later ones get `ERR QUOTA` until the queue is emptied.
    pub quota: usize,
    /// Seconds after which undelivered messages are deleted; `None` keeps them.
    pub message_ttl: Option<i64>,
    /// Delete a queue's expired messages whenever a message is sent to it (the
    /// reference's default), besides the periodic sweep.
    pub expire_on_send: bool,
    /// Whether `NEW` is allowed at all.
    pub allow_new_queues: bool,
    /// When set, `NEW` must carry this basic-auth password.
    pub new_queue_password: Option<Vec<u8>>,
    /// Queues in total; `NEW` beyond gets `ERR QUOTA`.
    pub max_queues: u64,
    /// Queues one connection may create; `NEW` beyond gets `ERR QUOTA`.
    pub max_queues_per_connection: u64,
    /// Bytes of message bodies stored in total; a `SEND` that would pass it
    /// gets `ERR QUOTA` (nothing is stored).
    pub max_stored_bytes: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            quota: DEFAULT_QUOTA,
            message_ttl: Some(DEFAULT_MESSAGE_TTL),
            expire_on_send: true,
            allow_new_queues: true,
            new_queue_password: None,
            max_queues: DEFAULT_MAX_QUEUES,
            max_queues_per_connection: DEFAULT_MAX_QUEUES_PER_CONNECTION,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
        }
    }
}

/// The largest `SEND` body at SMP version `v` (the reference's `maxMessageLength`).
pub(crate) fn max_message_length(v: u16) -> usize {
    if v >= 11 {
        16048
    } else if v >= 8 {
        16064
    } else {
        16088
    }
}

/// The padded length of a delivered message body before encryption.
pub(crate) const RCV_PADDED_LEN: usize = 16106;
