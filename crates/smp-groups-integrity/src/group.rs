//! [`GroupIntegrity`]: one member's integrity state for one group: its own sent
//! chain, a chain per sender it receives from, what each reporter's `G_CHECK`s
//! said, and the check schedule.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use smp_groups_crypto::ed25519::PublicKey;
use smp_groups_wire::agent::{Digest, GCheck, GCheckEntry, MemberId};

use crate::chain::{Anchor, Arrival, Lookup, SenderChain, content_hash};
use crate::config::{Config, MAX_MEMBERS};
use crate::error::{MemberError, ReceiveError, SendError};
use crate::serde_ids;
use crate::time::Timestamp;
use crate::violation::{Violation, ViolationKind};

/// A violation of this kind was reported for a (reporter, sender) pair and not
/// yet resolved: report it once.
pub(crate) mod flag {
    pub(crate) const EQUIVOCATION: u8 = 1;
    pub(crate) const BEHIND: u8 = 2;
    pub(crate) const MISSING: u8 = 4;
    pub(crate) const UNSENT: u8 = 8;
    pub(crate) const PEER_BAD: u8 = 16;
    pub(crate) const RECEIPT: u8 = 32;
}

/// A pending reconciliation: someone must reach `target` by a check received at
/// least the grace period after `since`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Expect {
    pub(crate) target: u64,
    #[serde(with = "serde_ids::digest")]
    pub(crate) digest: Digest,
    pub(crate) since: Timestamp,
}

/// What one reporter told us about one sender.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerView {
    /// The last id it reported (ids never go back).
    pub(crate) last: Option<u64>,
    /// The last id at which its digest matched ours.
    pub(crate) confirmed: u64,
    /// It was behind us: it must reach `target`.
    pub(crate) behind: Option<Expect>,
    /// We were behind it: we must reach `target`, with its digest there.
    pub(crate) ahead: Option<Expect>,
    /// Violations reported and not yet resolved (see [`flag`]).
    pub(crate) flags: u8,
}

impl PeerView {
    /// Sets `bit`; true if it was not set (the violation is new).
    pub(crate) fn raise(&mut self, bit: u8) -> bool {
        let new = self.flags & bit == 0;
        self.flags |= bit;
        new
    }

    pub(crate) fn clear(&mut self, bit: u8) {
        self.flags &= !bit;
    }
}

/// What one member's integrity state holds about another member: its chain
/// and what its checks and receipts said. Opaque; serde-serializable, so that a
/// store can keep it as a record of its own ([`GroupIntegrity::take_members`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// What we received from it.
    pub(crate) chain: SenderChain,
    /// Its group signing key, announced when it was introduced.
    pub(crate) key: Option<PublicKey>,
    /// The sequence number of its last accepted `G_CHECK` (0: none yet).
    pub(crate) last_seq: u64,
    /// What its checks and receipts said, by sender.
    #[serde(with = "serde_ids::member_map")]
    pub(crate) views: BTreeMap<MemberId, PeerView>,
}

/// What happened to a received group message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The sender's chain now covers ids `from..=to` (more than one when the
    /// message filled a gap and held messages followed it). Receipts can be
    /// produced for these ids.
    Chained {
        /// The id of this message.
        from: u64,
        /// The new head of the chain.
        to: u64,
    },
    /// The message arrived ahead of a gap and is held; the chain needs
    /// `expected` next. The caller still has the message: whether to show it to
    /// the client now is its choice.
    Held {
        /// The id the chain needs next.
        expected: u64,
    },
    /// The same content under an id already received: drop it.
    Duplicate,
    /// An id older than the window or than our anchor: cannot be checked; drop it.
    Stale,
    /// Different content under an id already received, or a catch-up that
    /// does not chain up to the anchor the sender gave first: see the
    /// violation.
    Conflict,
    /// A message from before our anchor, in order in a catch-up the sender
    /// started ([`GroupIntegrity::rewind`]): deliver it.
    Backfilled,
}

/// The result of [`GroupIntegrity::on_received`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// What happened to the message.
    pub delivery: Delivery,
    /// Violations found (a conflict, or a digest another member reported that
    /// our chain has now reached and that differs).
    pub violations: Vec<Violation>,
}

/// A violation raised and not yet resolved ([`GroupIntegrity::open_violations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenViolation {
    /// The member whose report disagrees with ours.
    pub reporter: MemberId,
    /// The member whose messages are in question.
    pub sender: MemberId,
    /// What disagrees.
    pub kind: OpenKind,
}

/// The kind of an [`OpenViolation`] (a [`ViolationKind`] without its figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenKind {
    /// [`ViolationKind::Equivocation`].
    Equivocation,
    /// [`ViolationKind::Behind`].
    Behind,
    /// [`ViolationKind::Missing`].
    Missing,
    /// [`ViolationKind::UnsentClaimed`].
    UnsentClaimed,
    /// [`ViolationKind::ReportedBad`].
    ReportedBad,
    /// [`ViolationKind::ReceiptMismatch`].
    ReceiptMismatch,
}

/// Our own message, entered into our sent chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The group-wide id to send it under (`extMsgId`), the same to every member.
    pub ext_msg_id: u64,
    /// SHA-256 of the content.
    pub content_hash: Digest,
    /// Our chain digest after it.
    pub chain: Digest,
}

/// One member's integrity state for one group. See the [crate docs](crate).
#[derive(Clone, Debug, Eq, Serialize, Deserialize)]
pub struct GroupIntegrity {
    pub(crate) config: Config,
    #[serde(with = "serde_ids::member")]
    pub(crate) me: MemberId,
    pub(crate) own_key: Option<PublicKey>,
    pub(crate) sent: SenderChain,
    #[serde(with = "serde_ids::member_map")]
    pub(crate) members: BTreeMap<MemberId, MemberState>,
    pub(crate) last_check_at: Timestamp,
    pub(crate) since_check: u64,
    /// Members whose state changed since [`GroupIntegrity::take_changed`].
    #[serde(skip)]
    pub(crate) changed: BTreeSet<MemberId>,
}

/// Equal states: what changed since the last store write does not count.
impl PartialEq for GroupIntegrity {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.me == other.me
            && self.own_key == other.own_key
            && self.sent == other.sent
            && self.members == other.members
            && self.last_check_at == other.last_check_at
            && self.since_check == other.since_check
    }
}

impl GroupIntegrity {
    /// A new state for member `me`, at time `now` (the first time-triggered check
    /// is due one interval later). Our own chain starts at genesis.
    pub fn new(config: Config, me: MemberId, now: Timestamp) -> Self {
        let sent = SenderChain::new(&config.group_id, &me, Anchor::Genesis);
        Self {
            config,
            me,
            own_key: None,
            sent,
            members: BTreeMap::new(),
            last_check_at: now,
            since_check: 0,
            changed: BTreeSet::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our member id.
    pub fn self_member(&self) -> MemberId {
        self.me
    }

    /// The other members, in id order.
    pub fn members(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.keys().copied()
    }

    /// Sets our own group signing key's public half, so that our own receipts
    /// re-broadcast by others verify too.
    pub fn set_own_signing_key(&mut self, key: PublicKey) {
        self.own_key = Some(key);
    }

    /// Adds a member: its chain starts at `anchor` (see [`Anchor`]); `key` is the
    /// group signing key it announced when it was introduced.
    pub fn add_member(
        &mut self,
        member: MemberId,
        anchor: Anchor,
        key: Option<PublicKey>,
    ) -> Result<(), MemberError> {
        if member == self.me || self.members.contains_key(&member) {
            return Err(MemberError::Exists(member));
        }
        let max = self.config.max_members.min(MAX_MEMBERS);
        if self.members.len() + 1 >= max {
            return Err(MemberError::Full(max));
        }
        let chain = SenderChain::new(&self.config.group_id, &member, anchor);
        self.changed.insert(member);
        self.members.insert(
            member,
            MemberState {
                chain,
                key,
                last_seq: 0,
                views: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Removes a member and everything known about and from it. True if it was a
    /// member.
    pub fn remove_member(&mut self, member: MemberId) -> bool {
        let was = self.members.remove(&member).is_some();
        self.changed.insert(member);
        for (id, m) in &mut self.members {
            if m.views.remove(&member).is_some() {
                self.changed.insert(*id);
            }
        }
        was
    }

    /// Where a member that joins now starts our chain: announce it to the member
    /// when connecting to it (our next message to it is `msg_id + 1`).
    pub fn self_anchor(&self) -> Anchor {
        Anchor::At {
            msg_id: self.sent.head_id(),
            digest: self.sent.head(),
        }
    }

    /// `sender` catches us up from `anchor`, earlier than the anchor it gave
    /// us first: its messages after `anchor`, up to that first anchor, follow
    /// in order and are delivered ([`Delivery::Backfilled`]); if they do not
    /// chain up to it, the last one is a [`Delivery::Conflict`]. False if
    /// nothing changed (not earlier, a catch-up already in progress, or not a
    /// member).
    pub fn rewind(&mut self, sender: MemberId, anchor: Anchor) -> bool {
        let group = self.config.group_id;
        self.member_mut(sender)
            .is_some_and(|m| m.chain.rewind(&group, &sender, anchor))
    }

    /// The head of `sender`'s chain as we have it: the last id received without a
    /// gap, and the chain digest there (`sender` may be ourselves: our sent chain).
    pub fn head(&self, sender: MemberId) -> Option<(u64, Digest)> {
        self.chain(sender).map(|c| (c.head_id(), c.head()))
    }

    /// The highest id of `sender` below `id` that we have received (held
    /// beyond a gap, or else the head of its chain). For a message `id` that
    /// arrived ahead of a gap ([`Delivery::Held`]), the ids after it up to
    /// `id - 1` are those missing just before it.
    pub fn received_below(&self, sender: MemberId, id: u64) -> Option<u64> {
        self.chain(sender).map(|c| c.received_below(id))
    }

    /// The last id of `sender` at which `reporter`'s view (check or receipt)
    /// matched ours.
    pub fn confirmed(&self, sender: MemberId, reporter: MemberId) -> Option<u64> {
        self.members
            .get(&reporter)?
            .views
            .get(&sender)
            .map(|v| v.confirmed)
    }

    /// The last id of our own messages that every other member has confirmed
    /// (by a matching check entry or receipt): delivered to all, unaltered.
    pub fn delivered_to_all(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.views.get(&self.me).map_or(0, |v| v.confirmed))
            .min()
            .unwrap_or_else(|| self.sent.head_id())
    }

    pub(crate) fn chain(&self, sender: MemberId) -> Option<&SenderChain> {
        if sender == self.me {
            Some(&self.sent)
        } else {
            self.members.get(&sender).map(|m| &m.chain)
        }
    }

    /// Another member's state, for a change: marks it changed.
    pub(crate) fn member_mut(&mut self, id: MemberId) -> Option<&mut MemberState> {
        let m = self.members.get_mut(&id)?;
        self.changed.insert(id);
        Some(m)
    }

    /// The members whose state changed since the last call (added, removed or
    /// modified): what a store that keeps one record per member must write.
    pub fn take_changed(&mut self) -> BTreeSet<MemberId> {
        std::mem::take(&mut self.changed)
    }

    /// One member's state, to store it as a record of its own.
    pub fn member_state(&self, id: MemberId) -> Option<&MemberState> {
        self.members.get(&id)
    }

    /// Takes every member's state out (to serialize the rest of the state
    /// without them); put them back with [`Self::restore_members`].
    pub fn take_members(&mut self) -> BTreeMap<MemberId, MemberState> {
        std::mem::take(&mut self.members)
    }

    /// Puts members' states back (after [`Self::take_members`], or when
    /// restoring from per-member records).
    pub fn restore_members(&mut self, members: BTreeMap<MemberId, MemberState>) {
        self.members.extend(members);
    }

    pub(crate) fn chain_mut(&mut self, sender: MemberId) -> Option<&mut SenderChain> {
        if sender == self.me {
            Some(&mut self.sent)
        } else {
            self.member_mut(sender).map(|m| &mut m.chain)
        }
    }

    /// Enters our own message into our sent chain and assigns its `extMsgId`.
    pub fn on_sent(&mut self, content: &[u8]) -> Result<Sent, SendError> {
        let hash = content_hash(content);
        let (ext_msg_id, chain) = self
            .sent
            .push_own(hash, self.config.window)
            .ok_or(SendError::IdsExhausted)?;
        self.since_check = self.since_check.saturating_add(1);
        Ok(Sent {
            ext_msg_id,
            content_hash: hash,
            chain,
        })
    }

    /// A group message from `sender` with id `ext_msg_id` arrived (after the
    /// pairwise connection accepted it).
    pub fn on_received(
        &mut self,
        sender: MemberId,
        ext_msg_id: u64,
        content: &[u8],
    ) -> Result<Received, ReceiveError> {
        if sender == self.me {
            return Err(ReceiveError::FromSelf);
        }
        let (window, max_held) = (self.config.window, self.config.max_held);
        let member = self
            .member_mut(sender)
            .ok_or(ReceiveError::UnknownSender(sender))?;
        let arrival = member
            .chain
            .receive(ext_msg_id, content_hash(content), window, max_held)?;
        let mut violations = Vec::new();
        let delivery = match arrival {
            Arrival::Chained { from, to } => {
                self.since_check = self.since_check.saturating_add(to - from + 1);
                self.reconcile_reached(sender, &mut violations);
                Delivery::Chained { from, to }
            }
            Arrival::Held { expected } => Delivery::Held { expected },
            Arrival::Backfilled => Delivery::Backfilled,
            Arrival::Duplicate => Delivery::Duplicate,
            Arrival::Stale => Delivery::Stale,
            Arrival::Conflict => {
                member.chain.bad = true;
                violations.push(Violation {
                    sender,
                    reporter: self.me,
                    kind: ViolationKind::Conflict { msg_id: ext_msg_id },
                });
                Delivery::Conflict
            }
        };
        Ok(Received {
            delivery,
            violations,
        })
    }

    /// Our chain for `sender` advanced: compare it with every digest another
    /// member reported ahead of us that we have now reached.
    fn reconcile_reached(&mut self, sender: MemberId, out: &mut Vec<Violation>) {
        let Some(chain) = self.chain(sender) else {
            return;
        };
        let head_id = chain.head_id();
        let reached: Vec<(MemberId, Expect, Lookup)> = self
            .members
            .iter()
            .filter_map(|(p, m)| {
                let x = m.views.get(&sender)?.ahead?;
                (x.target <= head_id).then(|| (*p, x, chain.digest_at(x.target)))
            })
            .collect();
        let mut bad = false;
        for (reporter, x, lookup) in reached {
            let Some(view) = self
                .member_mut(reporter)
                .and_then(|m| m.views.get_mut(&sender))
            else {
                continue;
            };
            view.ahead = None;
            view.clear(flag::MISSING);
            match lookup {
                Lookup::At(ours) if ours == x.digest => {
                    view.confirmed = view.confirmed.max(x.target);
                }
                Lookup::At(ours) => {
                    bad = true;
                    if view.raise(flag::EQUIVOCATION) {
                        out.push(Violation {
                            sender,
                            reporter,
                            kind: ViolationKind::Equivocation {
                                msg_id: x.target,
                                ours,
                                theirs: x.digest,
                            },
                        });
                    }
                }
                Lookup::Ahead | Lookup::Unverifiable => {}
            }
        }
        if bad && let Some(c) = self.chain_mut(sender) {
            c.bad = true;
        }
    }

    /// Whether a `G_CHECK` is due at `now` (interval elapsed, or enough messages
    /// since the last one).
    pub fn due(&self, now: Timestamp) -> bool {
        let by_time = self.next_check_at().is_some_and(|t| now >= t);
        let by_count = self
            .config
            .check_every_messages
            .is_some_and(|k| k > 0 && self.since_check >= k);
        by_time || by_count
    }

    /// Nothing was sent or received since the last check: a check now would
    /// say nothing new (a caller may skip time-triggered checks then).
    pub fn idle(&self) -> bool {
        self.since_check == 0
    }

    /// When the next time-triggered check is due (`None` without a time trigger).
    pub fn next_check_at(&self) -> Option<Timestamp> {
        self.config
            .check_interval_ms
            .map(|t| self.last_check_at.plus_millis(t))
    }

    /// When our last `G_CHECK` was built (or, before the first one, when this
    /// state was created: the schedule starts then).
    pub fn last_check_at(&self) -> Timestamp {
        self.last_check_at
    }

    /// Messages sent and received since our last `G_CHECK`.
    pub fn since_check(&self) -> u64 {
        self.since_check
    }

    /// The sequence number of the last `G_CHECK` accepted from `member`
    /// (0: none yet); `None` for a member we hold no state for.
    pub fn last_check_received(&self, member: MemberId) -> Option<u64> {
        self.members.get(&member).map(|m| m.last_seq)
    }

    /// The state of `sender`'s chain as our checks report it (`ok`, `gap`,
    /// `bad`; `sender` may be ourselves).
    pub fn chain_status(&self, sender: MemberId) -> Option<smp_groups_wire::agent::GCheckStatus> {
        self.chain(sender).map(SenderChain::status)
    }

    /// Violations reported and not yet resolved, by reporter then sender: each
    /// is raised once (a `Violation` was returned for it) and cleared when a
    /// later check or receipt resolves it.
    pub fn open_violations(&self) -> Vec<OpenViolation> {
        const KINDS: [(u8, OpenKind); 6] = [
            (flag::EQUIVOCATION, OpenKind::Equivocation),
            (flag::BEHIND, OpenKind::Behind),
            (flag::MISSING, OpenKind::Missing),
            (flag::UNSENT, OpenKind::UnsentClaimed),
            (flag::PEER_BAD, OpenKind::ReportedBad),
            (flag::RECEIPT, OpenKind::ReceiptMismatch),
        ];
        let mut out = Vec::new();
        for (reporter, m) in &self.members {
            for (sender, v) in &m.views {
                for (bit, kind) in KINDS {
                    if v.flags & bit != 0 {
                        out.push(OpenViolation {
                            reporter: *reporter,
                            sender: *sender,
                            kind,
                        });
                    }
                }
            }
        }
        out
    }

    /// Builds our `G_CHECK` and restarts the schedule at `now`. The first entry is
    /// our own sent chain; then one entry per member we receive from. Send it to
    /// every member on its pairwise connection.
    pub fn build_check(&mut self, now: Timestamp) -> GCheck {
        let mut entries = Vec::with_capacity(self.members.len() + 1);
        entries.push(entry(self.me, &self.sent));
        entries.extend(self.members.iter().map(|(id, m)| entry(*id, &m.chain)));
        self.last_check_at = now;
        self.since_check = 0;
        GCheck {
            entries,
            members: None,
        }
    }
}

fn entry(member: MemberId, chain: &SenderChain) -> GCheckEntry {
    GCheckEntry {
        member,
        msg_id: chain.head_id(),
        digest: chain.head(),
        status: chain.status(),
    }
}
