//! Message integrity for smp-groups: detecting a group member that tells
//! different members different things, or withholds messages from some of them.
//!
//! Three mechanisms, all pure (no IO, no clock: time is a [`Timestamp`] passed
//! in), with serde-serializable state:
//!
//! * [`ConnectionChain`]: per pairwise connection, every agent message carries a
//!   sequential id and the digest of the previous message; the receiver's
//!   verdict is one of ok, bad id, duplicate, skipped, bad hash ([`ConnVerdict`]).
//! * [`GroupIntegrity`]: per group, a hash chain per sender over everything
//!   received from it ([`chain`] defines it), `G_CHECK` building on a schedule and
//!   reconciliation of the checks other members send, producing [`Violation`]s
//!   that name the sender and the reporting member.
//! * [`Receipt`]: Ed25519-signed receipts over chain digests, verifiable by any
//!   member and batchable for re-broadcast ([`ReceiptBatch`]).
//!
//! The rules, what is detected within how many rounds, what is not, and the cost
//! are in `docs/integrity.md`.
//!
//! # Example
//!
//! A sender that equivocates: `a` and `b` receive different contents under the
//! same id; `b` finds out from `a`'s `G_CHECK`.
//!
//! ```
//! use smp_groups_integrity::{Anchor, Config, Delivery, GroupIntegrity, Timestamp, ViolationKind};
//! use smp_groups_wire::agent::{GroupId, MemberId};
//!
//! let (a, b, s) = (MemberId([1; 16]), MemberId([2; 16]), MemberId([3; 16]));
//! let config = Config::new(GroupId([9; 16]));
//! let t0 = Timestamp::from_millis(0);
//! let mut at_a = GroupIntegrity::new(config.clone(), a, t0);
//! let mut at_b = GroupIntegrity::new(config, b, t0);
//! for (me, other) in [(&mut at_a, b), (&mut at_b, a)] {
//!     me.add_member(other, Anchor::Genesis, None)?;
//!     me.add_member(s, Anchor::Genesis, None)?;
//! }
//!
//! // `s` sends message 1: "hello" to a, "goodbye" to b.
//! let got = at_a.on_received(s, 1, b"hello")?;
//! assert_eq!(got.delivery, Delivery::Chained { from: 1, to: 1 });
//! at_b.on_received(s, 1, b"goodbye")?;
//!
//! // One minute later, `a`'s check is due; it travels to `b` on the a-b
//! // connection, whose message id (here 1) is the check's sequence number.
//! let t1 = Timestamp::from_millis(60_000);
//! assert!(at_a.due(t1));
//! let check = at_a.build_check(t1);
//! let violations = at_b.on_check(a, 1, &check, t1)?;
//! assert_eq!(violations.len(), 1);
//! assert_eq!((violations[0].sender, violations[0].reporter), (s, a));
//! assert!(matches!(violations[0].kind, ViolationKind::Equivocation { msg_id: 1, .. }));
//!
//! // The same check again is a replay.
//! assert!(at_b.on_check(a, 1, &check, t1).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod chain;
mod config;
mod connection;
mod error;
mod group;
mod receipt;
mod reconcile;
mod serde_ids;
mod time;
mod violation;

pub use chain::Anchor;
pub use config::{Config, MAX_MEMBERS};
pub use connection::{ConnVerdict, ConnectionChain};
pub use error::{CheckError, ConnError, MemberError, ReceiptError, ReceiveError, SendError};
pub use group::{Delivery, GroupIntegrity, MemberState, OpenKind, OpenViolation, Received, Sent};
pub use receipt::{
    BatchOutcome, MAX_BATCH_RECEIPTS, RECEIPT_LABEL, RECEIPT_LEN, RECEIPTS_LABEL, Receipt,
    ReceiptBatch, receipt_payload, receipts_payload,
};
pub use time::Timestamp;
pub use violation::{Violation, ViolationKind};
