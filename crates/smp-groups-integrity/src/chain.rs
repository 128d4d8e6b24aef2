//! The per-sender hash chain over a group's messages.
//!
//! ```text
//! content_hash_n = SHA-256(content_n)
//! chain_0        = SHA-256("smp-groups chain v1 genesis" || groupId(16) || senderMemberId(16))
//! chain_n        = SHA-256("smp-groups chain v1 step" || chain_{n-1}(32) || BE64(n) || content_hash_n(32))
//! ```
//!
//! where `n` is the sender's group-wide `extMsgId` (1, 2, 3, ...). Every member
//! computes the same `chain_n` for a sender exactly when it received the same
//! contents under ids 1..=n, so one 32-byte digest covers the sender's whole
//! history. A member that joined later starts from an [`Anchor`] (the sender's own
//! `(n, chain_n)` when the member connected to it) instead of `chain_0`.
//!
//! `SenderChain` keeps the head, a bounded window of recent points to compare
//! `G_CHECK` entries against, and a bounded buffer of messages that arrived ahead
//! of a gap.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use smp_groups_crypto::sha256;
use smp_groups_wire::agent::{Digest, GCheckStatus, GroupId, MemberId};

use crate::error::ReceiveError;
use crate::serde_ids;

/// Domain-separation label of `chain_0`.
pub const GENESIS_LABEL: &[u8] = b"smp-groups chain v1 genesis";
/// Domain-separation label of each chain step.
pub const STEP_LABEL: &[u8] = b"smp-groups chain v1 step";

/// `chain_0` of `sender` in `group`.
pub fn genesis(group: &GroupId, sender: &MemberId) -> Digest {
    let mut buf = Vec::with_capacity(GENESIS_LABEL.len() + 32);
    buf.extend_from_slice(GENESIS_LABEL);
    buf.extend_from_slice(&group.0);
    buf.extend_from_slice(&sender.0);
    Digest(sha256(&buf))
}

/// `chain_n` from `chain_{n-1}`, the id `n` and the content hash of message `n`.
pub fn chain_step(prev: &Digest, ext_msg_id: u64, content_hash: &Digest) -> Digest {
    let mut buf = Vec::with_capacity(STEP_LABEL.len() + 72);
    buf.extend_from_slice(STEP_LABEL);
    buf.extend_from_slice(&prev.0);
    buf.extend_from_slice(&ext_msg_id.to_be_bytes());
    buf.extend_from_slice(&content_hash.0);
    Digest(sha256(&buf))
}

/// SHA-256 of a message's content.
pub fn content_hash(content: &[u8]) -> Digest {
    Digest(sha256(content))
}

/// Where a member's chain for a sender starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// From the sender's first message (`chain_0`): members present since the
    /// sender joined.
    Genesis,
    /// After message `msg_id`, whose chain digest is `digest`: a member that joined
    /// after the sender had sent `msg_id` messages. The sender announces this
    /// ([`GroupIntegrity::self_anchor`](crate::GroupIntegrity::self_anchor)) when
    /// the two connect; its next message to the new member is `msg_id + 1`.
    At {
        /// The last id before the first message the member receives.
        msg_id: u64,
        /// `chain_{msg_id}` of the sender.
        digest: Digest,
    },
}

/// One point of a chain: message `id`, its content hash and `chain_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Point {
    pub(crate) id: u64,
    #[serde(with = "serde_ids::digest")]
    pub(crate) content: Digest,
    #[serde(with = "serde_ids::digest")]
    pub(crate) chain: Digest,
}

/// The result of looking a chain digest up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Our digest at that id.
    At(Digest),
    /// The id is beyond our head: we have not received that far.
    Ahead,
    /// The id is older than the window (or than our anchor): cannot compare.
    Unverifiable,
}

/// What one arrival did to a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The head advanced from `from` to `to` (`to >= from`), possibly through held
    /// messages.
    Chained { from: u64, to: u64 },
    /// Held beyond a gap; `expected` is the next id the chain needs.
    Held { expected: u64 },
    /// The same content under an id already received.
    Duplicate,
    /// An id at or before our window/anchor: cannot be checked, ignored.
    Stale,
    /// Different content under an id already received.
    Conflict,
    /// A message before our anchor, in order in a catch-up the sender started
    /// ([`SenderChain::rewind`]).
    Backfilled,
}

/// A catch-up in progress: the sender replays, in order, its messages between
/// an earlier anchor and the one it gave us first; they must chain up to that
/// first anchor's digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Backfill {
    /// The next id the catch-up needs.
    next_id: u64,
    /// The chain digest at `next_id - 1`.
    #[serde(with = "serde_ids::digest")]
    digest: Digest,
    /// The id of the first anchor: the catch-up ends there.
    end_id: u64,
    /// The first anchor's digest.
    #[serde(with = "serde_ids::digest")]
    end: Digest,
}

/// One sender's chain as one member sees it (also used for our own sent messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SenderChain {
    base_id: u64,
    #[serde(with = "serde_ids::digest")]
    base: Digest,
    head_id: u64,
    #[serde(with = "serde_ids::digest")]
    head: Digest,
    /// The last points up to `head_id`, consecutive ids, at most `window` of them.
    points: VecDeque<Point>,
    /// Content hashes of messages received beyond a gap, by id.
    held: BTreeMap<u64, [u8; 32]>,
    /// A violation was found for this sender.
    pub(crate) bad: bool,
    /// A catch-up before our anchor, in progress.
    backfill: Option<Backfill>,
}

impl SenderChain {
    pub(crate) fn new(group: &GroupId, sender: &MemberId, anchor: Anchor) -> Self {
        let (base_id, base) = match anchor {
            Anchor::Genesis => (0, genesis(group, sender)),
            Anchor::At { msg_id, digest } => (msg_id, digest),
        };
        Self {
            base_id,
            base,
            head_id: base_id,
            head: base,
            points: VecDeque::new(),
            held: BTreeMap::new(),
            bad: false,
            backfill: None,
        }
    }

    /// The sender starts a catch-up from `anchor`, earlier than the anchor it
    /// gave us first: the messages after it up to that anchor follow, in
    /// order. False (nothing changes) if `anchor` is not earlier or a
    /// catch-up is already in progress.
    pub(crate) fn rewind(&mut self, group: &GroupId, sender: &MemberId, anchor: Anchor) -> bool {
        let (id, digest) = match anchor {
            Anchor::Genesis => (0, genesis(group, sender)),
            Anchor::At { msg_id, digest } => (msg_id, digest),
        };
        if id >= self.base_id || self.backfill.is_some() {
            return false;
        }
        self.backfill = Some(Backfill {
            next_id: id + 1,
            digest,
            end_id: self.base_id,
            end: self.base,
        });
        true
    }

    /// A message at or before our anchor, during a catch-up.
    fn backfill(&mut self, id: u64, content: Digest) -> Option<Arrival> {
        let b = self.backfill.as_mut()?;
        if id > b.end_id {
            return None;
        }
        if id < b.next_id {
            return Some(Arrival::Duplicate);
        }
        if id > b.next_id {
            // Not in order: a catch-up comes in order on one connection.
            return Some(Arrival::Stale);
        }
        b.digest = chain_step(&b.digest, id, &content);
        b.next_id = id + 1;
        if id == b.end_id {
            let ok = b.digest == b.end;
            self.backfill = None;
            if !ok {
                return Some(Arrival::Conflict);
            }
        }
        Some(Arrival::Backfilled)
    }

    pub(crate) fn head_id(&self) -> u64 {
        self.head_id
    }

    pub(crate) fn head(&self) -> Digest {
        self.head
    }

    /// The highest id below `id` we have received: held beyond a gap, or
    /// else the head.
    pub(crate) fn received_below(&self, id: u64) -> u64 {
        self.held
            .range(..id)
            .next_back()
            .map_or(self.head_id, |(k, _)| *k)
    }

    pub(crate) fn has_gap(&self) -> bool {
        !self.held.is_empty()
    }

    pub(crate) fn status(&self) -> GCheckStatus {
        if self.bad {
            GCheckStatus::Bad
        } else if self.has_gap() {
            GCheckStatus::Gap
        } else {
            GCheckStatus::Ok
        }
    }

    /// Our chain digest at `id`.
    pub(crate) fn digest_at(&self, id: u64) -> Lookup {
        if id == self.head_id {
            return Lookup::At(self.head);
        }
        if id > self.head_id {
            return Lookup::Ahead;
        }
        if id == self.base_id {
            return Lookup::At(self.base);
        }
        self.point(id)
            .map_or(Lookup::Unverifiable, |p| Lookup::At(p.chain))
    }

    fn point(&self, id: u64) -> Option<&Point> {
        let first = self.points.front()?.id;
        let idx = usize::try_from(id.checked_sub(first)?).ok()?;
        self.points.get(idx)
    }

    /// Appends message `id` (which must be `head_id + 1`) to the chain.
    fn advance(&mut self, id: u64, content: Digest, window: usize) {
        self.head = chain_step(&self.head, id, &content);
        self.head_id = id;
        self.points.push_back(Point {
            id,
            content,
            chain: self.head,
        });
        while self.points.len() > window.max(1) {
            self.points.pop_front();
        }
    }

    /// Our own next message: assigns the id, returns `(id, chain digest)`.
    pub(crate) fn push_own(&mut self, content: Digest, window: usize) -> Option<(u64, Digest)> {
        let id = self.head_id.checked_add(1)?;
        self.advance(id, content, window);
        Some((id, self.head))
    }

    /// A message `id` with `content` hash arrived.
    pub(crate) fn receive(
        &mut self,
        id: u64,
        content: Digest,
        window: usize,
        max_held: usize,
    ) -> Result<Arrival, ReceiveError> {
        if id <= self.base_id
            && let Some(a) = self.backfill(id, content)
        {
            return Ok(a);
        }
        if id <= self.head_id {
            if id <= self.base_id {
                return Ok(Arrival::Stale);
            }
            return Ok(match self.point(id) {
                Some(p) if p.content == content => Arrival::Duplicate,
                Some(_) => Arrival::Conflict,
                None => Arrival::Stale,
            });
        }
        // id > head_id >= 0, so head_id + 1 cannot overflow.
        let expected = self.head_id + 1;
        if id > expected {
            if let Some(held) = self.held.get(&id) {
                return Ok(if *held == content.0 {
                    Arrival::Duplicate
                } else {
                    Arrival::Conflict
                });
            }
            let ahead = id - self.head_id;
            if ahead > u64::try_from(max_held).unwrap_or(u64::MAX) {
                return Err(ReceiveError::TooFarAhead {
                    id,
                    expected,
                    max_held,
                });
            }
            self.held.insert(id, content.0);
            return Ok(Arrival::Held { expected });
        }
        self.advance(id, content, window);
        while let Some(next) = self.head_id.checked_add(1) {
            let Some(c) = self.held.remove(&next) else {
                break;
            };
            self.advance(next, Digest(c), window);
        }
        Ok(Arrival::Chained {
            from: id,
            to: self.head_id,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const G: GroupId = GroupId([7; 16]);
    const S: MemberId = MemberId([1; 16]);

    fn h(n: u8) -> Digest {
        content_hash(&[n])
    }

    #[test]
    fn chain_formula_is_the_documented_one() {
        let mut pre = b"smp-groups chain v1 genesis".to_vec();
        pre.extend_from_slice(&[7; 16]);
        pre.extend_from_slice(&[1; 16]);
        let g = Digest(sha256(&pre));
        assert_eq!(genesis(&G, &S), g);
        let mut step = b"smp-groups chain v1 step".to_vec();
        step.extend_from_slice(&g.0);
        step.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        step.extend_from_slice(&sha256(b"hi"));
        assert_eq!(
            chain_step(&g, 1, &content_hash(b"hi")),
            Digest(sha256(&step))
        );
        // Different sender, different genesis.
        assert_ne!(genesis(&G, &MemberId([2; 16])), g);
    }

    #[test]
    fn gaps_are_held_and_filled() {
        let mut c = SenderChain::new(&G, &S, Anchor::Genesis);
        assert_eq!(c.receive(2, h(2), 8, 8), Ok(Arrival::Held { expected: 1 }));
        assert_eq!(c.status(), GCheckStatus::Gap);
        assert_eq!(c.receive(2, h(2), 8, 8), Ok(Arrival::Duplicate));
        assert_eq!(c.receive(2, h(9), 8, 8), Ok(Arrival::Conflict));
        assert_eq!(
            c.receive(1, h(1), 8, 8),
            Ok(Arrival::Chained { from: 1, to: 2 })
        );
        assert_eq!(c.status(), GCheckStatus::Ok);
        let mut d = SenderChain::new(&G, &S, Anchor::Genesis);
        d.receive(1, h(1), 8, 8).unwrap();
        d.receive(2, h(2), 8, 8).unwrap();
        assert_eq!(c.head(), d.head());
        assert_eq!(c.receive(1, h(1), 8, 8), Ok(Arrival::Duplicate));
        assert_eq!(c.receive(1, h(3), 8, 8), Ok(Arrival::Conflict));
        assert!(matches!(
            c.receive(11, h(1), 8, 8),
            Err(ReceiveError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn a_catch_up_fills_in_before_the_anchor_and_must_reach_it() {
        // The sender's chain: messages 1..=5.
        let mut full = SenderChain::new(&G, &S, Anchor::Genesis);
        for i in 1..=5u8 {
            full.receive(u64::from(i), h(i), 8, 8).unwrap();
        }
        let at = |id| {
            let Lookup::At(digest) = full.digest_at(id) else {
                panic!("in window")
            };
            Anchor::At { msg_id: id, digest }
        };
        // We were anchored after 4 and got 5; the sender catches us up from 1.
        let mut c = SenderChain::new(&G, &S, at(4));
        assert_eq!(
            c.receive(5, h(5), 8, 8),
            Ok(Arrival::Chained { from: 5, to: 5 })
        );
        assert!(!c.rewind(&G, &S, at(4)), "not earlier: nothing to do");
        assert!(c.rewind(&G, &S, at(1)));
        assert!(!c.rewind(&G, &S, Anchor::Genesis), "one catch-up at a time");
        assert_eq!(c.receive(3, h(3), 8, 8), Ok(Arrival::Stale), "out of order");
        assert_eq!(c.receive(2, h(2), 8, 8), Ok(Arrival::Backfilled));
        assert_eq!(c.receive(2, h(2), 8, 8), Ok(Arrival::Duplicate));
        assert_eq!(c.receive(3, h(3), 8, 8), Ok(Arrival::Backfilled));
        assert_eq!(c.receive(4, h(4), 8, 8), Ok(Arrival::Backfilled));
        assert_eq!(c.backfill, None, "the catch-up reached the first anchor");
        assert_eq!(c.receive(4, h(4), 8, 8), Ok(Arrival::Stale));
        assert_eq!(c.head(), full.head());
        // Content other than the sender's chain says: the last one conflicts.
        let mut d = SenderChain::new(&G, &S, at(3));
        assert!(d.rewind(&G, &S, Anchor::Genesis));
        assert_eq!(d.receive(1, h(1), 8, 8), Ok(Arrival::Backfilled));
        assert_eq!(d.receive(2, h(9), 8, 8), Ok(Arrival::Backfilled));
        assert_eq!(d.receive(3, h(3), 8, 8), Ok(Arrival::Conflict));
    }

    #[test]
    fn window_is_bounded() {
        let mut c = SenderChain::new(&G, &S, Anchor::Genesis);
        for i in 1..=20u8 {
            c.receive(u64::from(i), h(i), 4, 4).unwrap();
        }
        assert_eq!(c.points.len(), 4);
        assert!(matches!(c.digest_at(17), Lookup::At(_)));
        assert_eq!(c.digest_at(16), Lookup::Unverifiable);
        assert!(matches!(c.digest_at(0), Lookup::At(_)));
        assert_eq!(c.digest_at(21), Lookup::Ahead);
        assert_eq!(c.receive(3, h(3), 4, 4), Ok(Arrival::Stale));
    }

    #[test]
    fn anchored_chain_continues_the_senders_chain() {
        let mut full = SenderChain::new(&G, &S, Anchor::Genesis);
        for i in 1..=5u8 {
            full.receive(u64::from(i), h(i), 8, 8).unwrap();
        }
        let Lookup::At(d3) = full.digest_at(3) else {
            panic!("in window")
        };
        let mut late = SenderChain::new(
            &G,
            &S,
            Anchor::At {
                msg_id: 3,
                digest: d3,
            },
        );
        assert_eq!(late.receive(2, h(2), 8, 8), Ok(Arrival::Stale));
        late.receive(4, h(4), 8, 8).unwrap();
        late.receive(5, h(5), 8, 8).unwrap();
        assert_eq!(late.head(), full.head());
        assert_eq!(late.digest_at(3), Lookup::At(d3));
        assert_eq!(late.digest_at(2), Lookup::Unverifiable);
    }
}
