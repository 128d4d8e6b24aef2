//! What one input writes: the unit [`crate::Store::apply`] commits atomically.

use std::collections::HashSet;

/// A record: (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// The mark of a processed message: (queue id, SMP message id).
pub type ProcessedMark = (Vec<u8>, Vec<u8>);

/// Everything one input of the agent writes, committed all-or-nothing.
///
/// Applied in this order inside one SQLite transaction: record puts, record
/// deletes, new client events, the processed messages, the delivered mark,
/// forgotten queues. Any failure (a limit, a message processed already, a
/// delivered mark beyond the issued events, an IO error) rolls all of it
/// back.
///
/// Relay operations are not stored here: the core keeps a record of each
/// operation in flight among its records, and the runtime performs an
/// operation only after the commit holding its record returns.
///
/// Several inputs' transactions can be committed as one (group commit):
/// [`Transaction::merge`] folds a later transaction into an earlier one so
/// that applying the result once has the effect of applying both in order.
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
    /// Client events, each given the next sequence number (returned in
    /// [`Applied::event_seqs`]).
    pub events_add: Vec<Vec<u8>>,
    /// The received messages whose processing this transaction commits:
    /// (queue id, SMP message id), at most one per queue (one input handles
    /// one message; a merged transaction holds one per input). Recorded so
    /// that a redelivery after a crash is recognised by
    /// [`crate::Store::is_processed`]; a message must not have been processed
    /// before.
    pub processed: Vec<ProcessedMark>,
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
            && self.events_add.is_empty()
            && self.processed.is_empty()
            && self.forget_queues.is_empty()
            && self.delivered_upto.is_none()
    }

    /// The number of items, checked against [`crate::Limits::max_items`].
    pub fn item_count(&self) -> usize {
        self.puts.len()
            + self.deletes.len()
            + self.events_add.len()
            + self.processed.len()
            + self.forget_queues.len()
            + usize::from(self.delivered_upto.is_some())
    }

    /// Folds `later` (the transaction of a later input) into this one, so
    /// that applying the result once leaves the store as applying `self` and
    /// then `later` would:
    ///
    /// - records: a later put of a key replaces an earlier put or delete of
    ///   it, a later delete drops an earlier put (within one transaction puts
    ///   come before deletes, so the order of the two lists is kept);
    /// - events: `later`'s follow `self`'s, so their sequence numbers in
    ///   [`Applied`] come in the same order (the first
    ///   `self.events_add.len()` are `self`'s);
    /// - processed marks: both; a later mark of the same queue replaces the
    ///   earlier one, and takes the queue out of the earlier forgotten queues;
    /// - forgotten queues: both; a later forgotten queue drops an earlier
    ///   mark of it;
    /// - the delivered mark: the higher; the record schema: the later, if set.
    ///
    /// One difference remains: the merged transaction succeeds or fails as a
    /// whole.
    pub fn merge(&mut self, later: Transaction) {
        let Transaction {
            record_schema,
            puts,
            deletes,
            events_add,
            processed,
            forget_queues,
            delivered_upto,
        } = later;
        if record_schema.is_some() {
            self.record_schema = record_schema;
        }
        if !puts.is_empty() {
            let put: HashSet<&[u8]> = puts.iter().map(|(k, _)| k.as_slice()).collect();
            self.puts.retain(|(k, _)| !put.contains(k.as_slice()));
            self.deletes.retain(|k| !put.contains(k.as_slice()));
        }
        if !deletes.is_empty() {
            let del: HashSet<&[u8]> = deletes.iter().map(Vec::as_slice).collect();
            self.puts.retain(|(k, _)| !del.contains(k.as_slice()));
        }
        self.puts.extend(puts);
        self.deletes.extend(deletes);
        self.events_add.extend(events_add);
        for (queue, msg) in processed {
            self.processed.retain(|(q, _)| *q != queue);
            self.forget_queues.retain(|q| *q != queue);
            self.processed.push((queue, msg));
        }
        for queue in forget_queues {
            self.processed.retain(|(q, _)| *q != queue);
            if !self.forget_queues.contains(&queue) {
                self.forget_queues.push(queue);
            }
        }
        self.delivered_upto = self.delivered_upto.max(delivered_upto);
    }
}

/// What a committed transaction was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// The sequence numbers of the new events, in the order of
    /// [`Transaction::events_add`]: deliver them now, then
    /// [`crate::Store::mark_delivered`].
    pub event_seqs: Vec<u64>,
}

/// A client event not yet marked delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    /// Its sequence number: contiguous, never reused.
    pub seq: u64,
    /// The event's bytes.
    pub body: Vec<u8>,
}
