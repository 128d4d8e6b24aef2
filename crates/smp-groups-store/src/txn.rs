//! What one input writes: the unit [`crate::Store::apply`] commits atomically.

/// A record: (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// Everything one input of the agent writes, committed all-or-nothing.
///
/// Applied in this order inside one SQLite transaction: record puts, record
/// deletes, new outbox items, new client events, outbox removals, the
/// processed message, the delivered mark, forgotten queues. Any failure (a limit, an unknown
/// outbox item, a message processed already, an IO error) rolls all of it
/// back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transaction {
    /// The layout version of the records, kept with them (see
    /// [`crate::Store::record_schema`]). `None` leaves it unchanged.
    pub record_schema: Option<u32>,
    /// Records to insert or replace: (key, value).
    pub puts: Vec<Record>,
    /// Records to delete (deleting a missing key is not an error).
    pub deletes: Vec<Vec<u8>>,
    /// Relay operations or envelopes to send once this transaction has
    /// committed. Each gets an outbox id, returned in [`Applied::outbox_ids`].
    pub outbox_add: Vec<Vec<u8>>,
    /// Outbox items the relay has confirmed, to remove. Each must exist.
    pub outbox_remove: Vec<u64>,
    /// Client events, each given the next sequence number (returned in
    /// [`Applied::event_seqs`]).
    pub events_add: Vec<Vec<u8>>,
    /// The received message whose processing this transaction commits:
    /// (queue id, SMP message id). Recorded so that its redelivery after a
    /// crash is recognised by [`crate::Store::is_processed`]; it must not have
    /// been processed before.
    pub processed_msg: Option<(Vec<u8>, Vec<u8>)>,
    /// Receive queues that were deleted: their processed-message marks go.
    pub forget_queues: Vec<Vec<u8>>,
    /// Marks every event up to this sequence number delivered, as
    /// [`crate::Store::mark_delivered`] does, without a commit of its own.
    pub delivered_upto: Option<u64>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// True if applying it would write nothing.
    pub fn is_empty(&self) -> bool {
        self.record_schema.is_none()
            && self.puts.is_empty()
            && self.deletes.is_empty()
            && self.outbox_add.is_empty()
            && self.outbox_remove.is_empty()
            && self.events_add.is_empty()
            && self.processed_msg.is_none()
            && self.forget_queues.is_empty()
            && self.delivered_upto.is_none()
    }

    /// The number of items, checked against [`crate::Limits::max_items`].
    pub(crate) fn item_count(&self) -> usize {
        self.puts.len()
            + self.deletes.len()
            + self.outbox_add.len()
            + self.outbox_remove.len()
            + self.events_add.len()
            + usize::from(self.processed_msg.is_some())
            + self.forget_queues.len()
            + usize::from(self.delivered_upto.is_some())
    }
}

/// What a committed transaction was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// The ids of the new outbox items, in the order of
    /// [`Transaction::outbox_add`]: send them now, remove them when confirmed.
    pub outbox_ids: Vec<u64>,
    /// The sequence numbers of the new events, in the order of
    /// [`Transaction::events_add`]: deliver them now, then
    /// [`crate::Store::mark_delivered`].
    pub event_seqs: Vec<u64>,
}

/// An item of the outbox: sent after the commit that wrote it, removed when
/// the relay confirms it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    /// Its id, in commit order.
    pub id: u64,
    /// The bytes to send.
    pub body: Vec<u8>,
}

/// A client event not yet marked delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    /// Its sequence number: contiguous, never reused.
    pub seq: u64,
    /// The event's bytes.
    pub body: Vec<u8>,
}
