//! Errors. Each names whose fault it is: the peer's input ([`CheckError`],
//! [`ReceiveError`], [`ReceiptError`]) or the caller's use of the API.

use smp_groups_wire::agent::MemberId;

/// A pairwise connection chain was misused by the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// `record_sent` was given a header other than `next_header()`'s.
    #[error("header is not the next one to send (expected id {expected}, got {got})")]
    NotNextHeader {
        /// The id `next_header()` gives.
        expected: u64,
        /// The id given.
        got: u64,
    },
    /// 2^64-1 messages were sent on this connection.
    #[error("message ids of this connection are exhausted")]
    IdsExhausted,
}

/// A received group message could not be taken into the sender's chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The sender is not a member of the group (as we know it).
    #[error("message from unknown member {0}")]
    UnknownSender(MemberId),
    /// A message claims to come from ourselves.
    #[error("message claims to come from this member")]
    FromSelf,
    /// The id is more than `max_held` ahead of the chain: the gap is too large to
    /// hold messages across.
    #[error("message id {id} is too far ahead (next expected {expected}, at most {max_held} held)")]
    TooFarAhead {
        /// The id received.
        id: u64,
        /// The id the chain needs next.
        expected: u64,
        /// The configured bound.
        max_held: usize,
    },
}

/// A received `G_CHECK` was rejected as a whole; no state changed and no verdict
/// was produced from it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The connection it arrived on belongs to no member (or to ourselves).
    #[error("G_CHECK from unknown member {0}")]
    UnknownReporter(MemberId),
    /// The first entry does not name the member whose connection it arrived on.
    #[error("G_CHECK from {reporter} names {named} as its reporter")]
    WrongReporter {
        /// The member whose connection carried the check.
        reporter: MemberId,
        /// The member the first entry names.
        named: MemberId,
    },
    /// Its sequence number is not above the last accepted check's from the same
    /// reporter: a replay (or a redelivery).
    #[error("G_CHECK from {reporter} replayed (sequence {seq}, last accepted {last})")]
    Replayed {
        /// The reporter.
        reporter: MemberId,
        /// The check's sequence number.
        seq: u64,
        /// The last accepted sequence number.
        last: u64,
    },
    /// The check has no entries.
    #[error("G_CHECK from {0} has no entries")]
    Empty(MemberId),
    /// Two entries name the same sender.
    #[error("G_CHECK from {reporter} has two entries for {sender}")]
    DuplicateEntry {
        /// The reporter.
        reporter: MemberId,
        /// The sender named twice.
        sender: MemberId,
    },
    /// An entry reports less of a sender than the same reporter reported before: a
    /// member's position in a chain never goes back, so this is an old check.
    #[error("G_CHECK from {reporter} goes back for {sender} (from {before} to {now})")]
    Regressed {
        /// The reporter.
        reporter: MemberId,
        /// The sender.
        sender: MemberId,
        /// The id the reporter reported before.
        before: u64,
        /// The id in this check.
        now: u64,
    },
}

/// A receipt was rejected; no state changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The signer is not a member.
    #[error("receipt signed by unknown member {0}")]
    UnknownSigner(MemberId),
    /// The signer announced no group signing key.
    #[error("member {0} has no group signing key")]
    NoKey(MemberId),
    /// The signature does not verify.
    #[error("receipt signature by {signer} does not verify")]
    BadSignature {
        /// The claimed signer.
        signer: MemberId,
    },
    /// A receipt for a message we cannot produce a digest for (not yet received,
    /// or older than the window).
    #[error("no chain digest for message {msg_id} of {sender}")]
    NoDigest {
        /// The sender.
        sender: MemberId,
        /// The message id.
        msg_id: u64,
    },
    /// The sender is not a member (nor ourselves).
    #[error("receipt for unknown sender {0}")]
    UnknownSender(MemberId),
}

/// Membership changes that cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// The member is already known (or is ourselves).
    #[error("member {0} is already known")]
    Exists(MemberId),
    /// The group is at its configured maximum size.
    #[error("the group already has its maximum of {0} members")]
    Full(usize),
}

/// Our own message could not be entered into our sent chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// 2^64-1 messages were sent to this group.
    #[error("message ids of this group are exhausted")]
    IdsExhausted,
}
