//! Integrity violations: what a member concludes, naming the sender whose messages
//! are in question and the member whose report (check or receipt) disagrees.

use std::fmt;

use smp_groups_wire::agent::{Digest, MemberId};

/// An integrity violation about `sender`'s messages, found by comparing our view
/// with `reporter`'s (the reporter is ourselves for [`ViolationKind::Conflict`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// The member whose messages are in question.
    pub sender: MemberId,
    /// The member whose view disagrees with ours.
    pub reporter: MemberId,
    /// What disagrees.
    pub kind: ViolationKind,
}

/// What disagrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// Equivocation: at the same `msg_id` the reporter's chain digest differs from
    /// ours, so the sender (or the reporter) told members different things.
    /// Reported at once.
    Equivocation {
        /// The id compared.
        msg_id: u64,
        /// Our chain digest at `msg_id`.
        ours: Digest,
        /// The reporter's.
        theirs: Digest,
    },
    /// The sender sent us two different contents under the same id.
    Conflict {
        /// The id.
        msg_id: u64,
    },
    /// The reporter was behind us for the sender and still was at its next check,
    /// after the grace period: messages `reported + 1 ..= expected` did not reach
    /// it (the sender withheld them, or the reporter hides them).
    Behind {
        /// The last id the reporter reported.
        reported: u64,
        /// The id we had when it was first behind.
        expected: u64,
    },
    /// We were behind the reporter for the sender and still are at its next check,
    /// after the grace period: messages `ours + 1 ..= theirs` did not reach us.
    Missing {
        /// Our last chained id.
        ours: u64,
        /// The id the reporter had.
        theirs: u64,
    },
    /// The reporter claims to have received more of our own messages than we sent.
    UnsentClaimed {
        /// The id claimed.
        claimed: u64,
        /// The last id we sent.
        sent: u64,
    },
    /// The reporter marks the sender `bad` in its check.
    ReportedBad,
    /// The reporter's member set differs from ours, at two of its checks at
    /// least the grace period apart, each sent and received at a stable
    /// point (no membership change in progress on either side). Found by the
    /// core from the checks' member sets; `sender` and `reporter` are both
    /// the member whose list differs.
    Members {
        /// How many members we have, ourselves included.
        ours: u16,
        /// How many the reporter has.
        theirs: u16,
    },
    /// A signed receipt from the reporter carries another digest than ours:
    /// another chain digest (this crate's chain receipts), or, in the signed
    /// receipts a sender re-broadcasts, another content hash than the one we
    /// signed for the same message: the sender sent us different contents
    /// under one id (or the reporter signed a hash it did not receive).
    ReceiptMismatch {
        /// The id receipted.
        msg_id: u64,
        /// Our digest for `msg_id`.
        ours: Digest,
        /// The digest in the receipt.
        theirs: Digest,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, r) = (self.sender, self.reporter);
        match self.kind {
            ViolationKind::Equivocation { msg_id, .. } => {
                write!(
                    f,
                    "messages of {s} up to {msg_id} differ between us and {r}"
                )
            }
            ViolationKind::Conflict { msg_id } => {
                write!(f, "{s} sent two different messages with id {msg_id}")
            }
            ViolationKind::Behind { reported, expected } => {
                write!(
                    f,
                    "{r} is missing messages {}..={expected} of {s}",
                    reported.saturating_add(1)
                )
            }
            ViolationKind::Missing { ours, theirs } => {
                write!(
                    f,
                    "we are missing messages {}..={theirs} of {s} that {r} has",
                    ours.saturating_add(1)
                )
            }
            ViolationKind::UnsentClaimed { claimed, sent } => {
                write!(f, "{r} claims message {claimed} of ours, we sent {sent}")
            }
            ViolationKind::ReportedBad => write!(f, "{r} reports an integrity violation by {s}"),
            ViolationKind::Members { ours, theirs } => write!(
                f,
                "the member list of {r} ({theirs} members) differs from ours ({ours})"
            ),
            ViolationKind::ReceiptMismatch { msg_id, .. } => {
                write!(
                    f,
                    "receipt by {r} for message {msg_id} of {s} does not match ours"
                )
            }
        }
    }
}
