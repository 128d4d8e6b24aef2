//! Refused inputs and anomalies: what the agent does not act on, whose fault it
//! is, counted.
//!
//! Every envelope, relay event or command the agent refuses (drops, or acts on
//! only in part) goes through one function, `Agent::refuse`: it counts the
//! refusal by [`FaultSource`] and [`FaultKind`] ([`Agent::refusals`]), and emits
//! a `tracing` event with the connection, group and member it concerns. Where
//! the refusal leaves something the client cares about unable to make progress
//! (a connection that can no longer deliver, a confirmation that cannot be
//! processed, our queue refused for good), the client also gets
//! [`Event::Fault`](crate::Event::Fault). `docs/faults.md` lists every kind,
//! where it is raised and at which level.
//!
//! [`Agent::refusals`]: crate::Agent::refusals

use std::collections::BTreeMap;
use std::fmt;

use smp_groups_wire::agent::MemberId;

/// Who is at fault for a refused input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultSource {
    /// The peer (the other end of a connection, a group member): what it sent
    /// is malformed, undecryptable, out of order, or not allowed now. Logged at
    /// `warn`.
    Peer,
    /// A relay (or the network in between): a message for a queue we do not
    /// have, an answer that does not fit the operation, an operation refused
    /// for good, a message delivered twice. Logged at `warn`, except
    /// [`FaultKind::Duplicate`] (`debug`: delivery is at least once).
    Relay,
    /// This agent: one of our own steps failed (encoding, encryption, an
    /// exhausted counter). A bug or an exhausted resource; logged at `warn`.
    Local,
    /// The client: a command refused (it was answered with an error). Logged
    /// at `debug`.
    Client,
    /// No one: an expected race. The input was valid when it was sent and
    /// refers to something that legitimately ended since (a group we left, a
    /// member that was removed, a connection we closed, an operation already
    /// answered). Logged at `debug`.
    Nobody,
}

impl FaultSource {
    /// The lower-case name (`peer`, `relay`, `local`, `client`, `nobody`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Relay => "relay",
            Self::Local => "local",
            Self::Client => "client",
            Self::Nobody => "nobody",
        }
    }
}

impl fmt::Display for FaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was refused, or what was wrong with an input that was still taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// An envelope, agent message, fragment or group envelope that does not
    /// decode, or fragments that do not join. Dropped.
    Malformed,
    /// A message on a connection that its ratchet cannot decrypt (not a
    /// replay). Dropped; the ratchet state is unchanged. Several in a row on one
    /// connection are reported to the client (the connection cannot make
    /// progress).
    Undecryptable,
    /// The same input again: a message the ratchet already decrypted (a
    /// redelivery by the relay, or a send retried after its answer was lost),
    /// a confirmation on a connection already confirmed, a group message,
    /// introduction answer or `G_CHECK` already taken. Dropped.
    Duplicate,
    /// A message whose connection sequence id is below the last one accepted
    /// (or the last id with other content). Dropped.
    ChainId,
    /// Messages of a connection's sequence never arrived (the message itself
    /// is taken). Counted, not dropped.
    ChainGap,
    /// A message whose hash of the previous message differs from the last one
    /// received: the peer's history of the connection differs from ours (the
    /// message is taken). Counted, not dropped.
    ChainFork,
    /// A valid message that the connection or group state does not allow now
    /// (`HELLO` on an established connection, a group envelope on a visible
    /// connection, a confirmation sent to a joiner...). Dropped.
    Unexpected,
    /// A confirmation that cannot be processed (bad keys, undecryptable, bad
    /// connection info or reply queue, an open invitation used by no member
    /// we can accept). Dropped; the invitation stays open. Reported to the
    /// client.
    BadConfirmation,
    /// The peer exceeded a bound (partly received fragmented messages, group
    /// messages held past a gap, the group's size). Dropped.
    OverLimit,
    /// A group message whose content conflicts with what we hold for the same
    /// id of its sender (also reported as a `VIOLATION`). Dropped.
    Conflict,
    /// An input about a group, member, connection or receive queue that has
    /// ended (we left, it was removed, the connection closed, the queue was
    /// deleted). Dropped.
    Stale,
    /// A relay message for a receive queue we do not have (and are not
    /// deleting). Acknowledged and dropped.
    UnknownQueue,
    /// A relay result for an operation that is not pending (a late answer to
    /// an operation that was retried or already answered). Dropped.
    UnknownOp,
    /// A relay result that does not fit its operation (a created queue for an
    /// operation that creates none, or no queue for one that does). Dropped;
    /// the operation stays pending.
    ResultMismatch,
    /// The relay refused to create our receive queue for good: the connection
    /// cannot be established. Reported to the client.
    QueueRefused,
    /// The relay refused to secure our receive queue for good (the connection
    /// goes on unsecured).
    SecureRefused,
    /// Our receive queue is gone at the relay (re-subscribing was refused):
    /// nothing more arrives on the connection. Reported to the client.
    QueueGone,
    /// The peer's queue is gone (a send was refused for good): nothing more
    /// can be sent on the connection. On a visible connection this is the
    /// peer's doing and is reported to the client; with a group member it is
    /// how its departure shows (it counts as left, `LEFT`), from
    /// [`FaultSource::Nobody`].
    PeerQueueGone,
    /// Another relay operation (`ACK`, `DEL`) refused for good.
    OpRefused,
    /// A receipt whose signature does not verify, or that is unsigned (or
    /// from a member whose key is unknown) while signed receipts are on: the
    /// client sees `RCVD ... bad_sig`.
    BadSignature,
    /// The relay refused one of our sends for a reason of its own
    /// ([`crate::RelayError::Refused`]: too large for it, blocked): the peer
    /// is not known to be gone, so nothing is dropped and no member counts
    /// as left; the send is retried at the longest retry interval. Reported
    /// to the client once, until a send on the connection goes through.
    SendRefused,
    /// One of our own steps failed (sealing a message, encoding a record): the
    /// connection's outbox cannot move. Reported to the client.
    Internal,
    /// A client command was refused (answered with an error).
    Command,
}

impl FaultKind {
    /// The snake_case name (`malformed`, `undecryptable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Undecryptable => "undecryptable",
            Self::Duplicate => "duplicate",
            Self::ChainId => "chain_id",
            Self::ChainGap => "chain_gap",
            Self::ChainFork => "chain_fork",
            Self::Unexpected => "unexpected",
            Self::BadConfirmation => "bad_confirmation",
            Self::OverLimit => "over_limit",
            Self::Conflict => "conflict",
            Self::Stale => "stale",
            Self::UnknownQueue => "unknown_queue",
            Self::UnknownOp => "unknown_op",
            Self::ResultMismatch => "result_mismatch",
            Self::QueueRefused => "queue_refused",
            Self::SecureRefused => "secure_refused",
            Self::QueueGone => "queue_gone",
            Self::PeerQueueGone => "peer_queue_gone",
            Self::OpRefused => "op_refused",
            Self::BadSignature => "bad_signature",
            Self::SendRefused => "send_refused",
            Self::Internal => "internal",
            Self::Command => "command",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a refusal is logged at `warn` (a fault by a peer, a relay or
/// ourselves, or a lost capability) rather than `debug` (an expected race, a
/// redelivery, a refused command).
pub(crate) fn is_warning(source: FaultSource, kind: FaultKind) -> bool {
    match source {
        FaultSource::Client | FaultSource::Nobody => false,
        FaultSource::Peer | FaultSource::Relay | FaultSource::Local => {
            !matches!(kind, FaultKind::Duplicate | FaultKind::UnknownOp)
        }
    }
}

/// What a [`Event::Fault`](crate::Event::Fault) is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultTarget {
    /// A client-visible connection.
    Conn(String),
    /// The hidden connection with a member of a group.
    Member {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
    },
    /// A group (an open invitation slot of it).
    Group(String),
}

/// How many inputs were refused, by source and kind, since the agent was
/// created or restored (the counts are not stored: a restart resets them).
/// Shown as `source/kind=count ...`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    counts: BTreeMap<(FaultSource, FaultKind), u64>,
}

impl RefusalCounts {
    pub(crate) fn count(&mut self, source: FaultSource, kind: FaultKind) {
        let n = self.counts.entry((source, kind)).or_default();
        *n = n.saturating_add(1);
    }

    /// The count for one source and kind.
    pub fn get(&self, source: FaultSource, kind: FaultKind) -> u64 {
        self.counts.get(&(source, kind)).copied().unwrap_or(0)
    }

    /// The count for one kind, whatever the source.
    pub fn of_kind(&self, kind: FaultKind) -> u64 {
        self.iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// The count for one source, whatever the kind.
    pub fn of_source(&self, source: FaultSource) -> u64 {
        self.iter()
            .filter(|(s, _, _)| *s == source)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Every refusal counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Every non-zero count: (source, kind, count), in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (FaultSource, FaultKind, u64)> + '_ {
        self.counts.iter().map(|((s, k), n)| (*s, *k, *n))
    }

    /// Adds another set of counts to these (e.g. over an agent's restarts).
    pub fn add(&mut self, other: &Self) {
        for (s, k, n) in other.iter() {
            let m = self.counts.entry((s, k)).or_default();
            *m = m.saturating_add(n);
        }
    }
}

impl fmt::Debug for RefusalCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefusalCounts({self})")
    }
}

impl fmt::Display for RefusalCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (s, k, n) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{s}/{k}={n}")?;
        }
        Ok(())
    }
}

/// Where a refusal happened: the connection (whose owner names the group and
/// member, or the visible alias), or a group and member directly.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct At<'a> {
    pub(crate) conn: Option<u64>,
    pub(crate) group: Option<&'a str>,
    pub(crate) member: Option<crate::state::Mid>,
}

impl<'a> At<'a> {
    /// On connection `id`.
    pub(crate) fn conn(id: u64) -> Self {
        Self {
            conn: Some(id),
            ..Self::default()
        }
    }

    /// In `group`, about `member` (if known), on connection `conn` (if any).
    pub(crate) fn member(
        group: &'a str,
        member: Option<crate::state::Mid>,
        conn: Option<u64>,
    ) -> Self {
        Self {
            conn,
            group: Some(group),
            member,
        }
    }
}

/// Consecutive undecryptable messages on one connection before the client is
/// told that the connection cannot make progress.
pub(crate) const UNDECRYPTABLE_REPORT: u32 = 3;

impl crate::Agent {
    /// Every input refused since this agent was created or restored, by who is
    /// at fault and what was refused. Not stored: a restart resets them.
    pub fn refusals(&self) -> &RefusalCounts {
        &self.refusals
    }

    /// The one place every refusal goes through: counts it and logs it (at
    /// `warn` for a fault by a peer, a relay or ourselves, at `debug` for an
    /// expected race, a redelivery or a refused command), with the
    /// connection, group and member it concerns.
    pub(crate) fn refuse(
        &mut self,
        source: FaultSource,
        kind: FaultKind,
        at: At<'_>,
        detail: &dyn fmt::Display,
    ) {
        self.refusals.count(source, kind);
        let (alias, group, member) = self.fault_context(at);
        let member = member.map(|m| MemberId(m).to_string());
        if is_warning(source, kind) {
            tracing::warn!(%source, %kind, conn = at.conn, alias, group, member, %detail, "input refused");
        } else {
            tracing::debug!(%source, %kind, conn = at.conn, alias, group, member, %detail, "input refused");
        }
    }

    /// A refusal that leaves a connection unable to make progress: counted,
    /// logged, and reported to the client ([`crate::Event::Fault`]).
    pub(crate) fn report(
        &mut self,
        source: FaultSource,
        kind: FaultKind,
        at: At<'_>,
        detail: &dyn fmt::Display,
    ) {
        self.refuse(source, kind, at, detail);
        let target = match self.fault_context(at) {
            (Some(alias), _, _) => Some(FaultTarget::Conn(alias)),
            (None, Some(group), Some(member)) => Some(FaultTarget::Member {
                group,
                member: MemberId(member),
            }),
            (None, Some(group), None) => Some(FaultTarget::Group(group)),
            (None, None, _) => None,
        };
        if let Some(target) = target {
            self.event(crate::Event::Fault {
                target,
                source,
                kind,
            });
        }
    }

    /// The visible alias, group and member a refusal concerns.
    fn fault_context(
        &self,
        at: At<'_>,
    ) -> (Option<String>, Option<String>, Option<crate::state::Mid>) {
        use crate::state::Owner;
        let owner = at.conn.and_then(|c| self.conns.get(&c)).map(|c| &c.owner);
        match (owner, at.group) {
            (_, Some(g)) => (None, Some(g.to_owned()), at.member),
            (Some(Owner::Visible(a)), None) => (Some(a.clone()), None, None),
            (Some(Owner::Member { group, member }), None) => {
                (None, Some(group.clone()), Some(*member))
            }
            (Some(Owner::Open { group, .. }), None) => (None, Some(group.clone()), None),
            (None, None) => (None, None, at.member),
        }
    }

    /// A message on connection `id` did not decrypt: counted; the client is
    /// told once when it happens several times in a row.
    pub(crate) fn undecryptable(&mut self, id: u64, detail: &dyn fmt::Display) {
        let n = self.undecryptable.entry(id).or_default();
        *n = n.saturating_add(1);
        if *n == UNDECRYPTABLE_REPORT {
            self.report(
                FaultSource::Peer,
                FaultKind::Undecryptable,
                At::conn(id),
                detail,
            );
        } else {
            self.refuse(
                FaultSource::Peer,
                FaultKind::Undecryptable,
                At::conn(id),
                detail,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! Group envelopes that honest peers never send, fed to the handlers
    //! directly: each is refused and counted with the right source and kind.

    use smp_groups_wire::agent::{
        Content, GroupEnvelope, Invitation, MemberId, MemberInfo, Profile,
    };

    use super::{FaultKind, FaultSource};
    use crate::state::Owner;
    use crate::{Agent, Command, Config, Input, Timestamp};

    const PEER: [u8; 16] = [9; 16];

    /// An agent holding group `g` (no members).
    fn agent() -> Agent {
        let mut a = Agent::new(Config::default());
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
        a.handle(
            Input::Command {
                corr: "1".into(),
                command: Command::NewGroup {
                    alias: Some("g".into()),
                    info: Vec::new(),
                },
            },
            Timestamp::from_millis(1),
            &mut rng,
        );
        while a.poll().is_some() {}
        a
    }

    fn from_peer(a: &mut Agent, env: GroupEnvelope) {
        let owner = Owner::Member {
            group: "g".into(),
            member: PEER,
        };
        a.on_group_envelope(77, &owner, 1, env);
    }

    fn only(a: &Agent, source: FaultSource, kind: FaultKind) {
        assert_eq!(a.refusals().get(source, kind), 1, "{}", a.refusals());
        assert_eq!(a.refusals().total(), 1, "{}", a.refusals());
    }

    #[test]
    fn an_envelope_for_a_group_we_no_longer_hold_is_stale() {
        let mut a = agent();
        let owner = Owner::Member {
            group: "left".into(),
            member: PEER,
        };
        a.on_group_envelope(77, &owner, 1, GroupEnvelope::Left);
        only(&a, FaultSource::Nobody, FaultKind::Stale);
    }

    #[test]
    fn an_envelope_from_a_member_that_is_gone_is_stale() {
        let mut a = agent();
        a.groups.get_mut("g").expect("group").gone.insert(PEER);
        from_peer(&mut a, GroupEnvelope::Left);
        only(&a, FaultSource::Nobody, FaultKind::Stale);
    }

    #[test]
    fn a_group_envelope_on_a_visible_connection_is_unexpected() {
        let mut a = agent();
        a.on_group_envelope(77, &Owner::Visible("c".into()), 1, GroupEnvelope::Left);
        only(&a, FaultSource::Peer, FaultKind::Unexpected);
    }

    #[test]
    fn a_removal_of_ourselves_by_rem_is_unexpected() {
        let mut a = agent();
        let me = a.groups["g"].me;
        from_peer(&mut a, GroupEnvelope::Rem(MemberId(me)));
        only(&a, FaultSource::Peer, FaultKind::Unexpected);
        assert!(a.groups.contains_key("g"));
    }

    #[test]
    fn deld_while_we_do_not_delete_is_unexpected() {
        let mut a = agent();
        from_peer(&mut a, GroupEnvelope::Deld);
        only(&a, FaultSource::Peer, FaultKind::Unexpected);
    }

    #[test]
    fn a_message_from_a_sender_we_are_not_connected_to_is_stale() {
        let mut a = agent();
        from_peer(
            &mut a,
            GroupEnvelope::Msg {
                ext_msg_id: 1,
                snd_ts: 0,
                content: Content::new(b"hi".to_vec()).expect("bounded"),
            },
        );
        only(&a, FaultSource::Nobody, FaultKind::Stale);
    }

    #[test]
    fn a_forwarded_invitation_that_does_not_parse_is_malformed() {
        let mut a = agent();
        let info = MemberInfo {
            member_id: MemberId([5; 16]),
            signing_key: [0; 32],
            profile: Profile::new(Vec::new()).expect("bounded"),
        };
        from_peer(
            &mut a,
            GroupEnvelope::Fwd {
                member: info,
                invitation: Invitation::new(b"garbage".to_vec()).expect("bounded"),
            },
        );
        only(&a, FaultSource::Peer, FaultKind::Malformed);
        // Nothing was added for it.
        assert!(a.groups["g"].members.is_empty());
        assert_eq!(a.connection_count(), 0);
    }

    #[test]
    fn mem_of_ourselves_from_a_member_that_did_not_introduce_us_is_unexpected() {
        let mut a = agent();
        let me = a.groups["g"].me;
        from_peer(&mut a, GroupEnvelope::Mem(MemberId(me)));
        only(&a, FaultSource::Peer, FaultKind::Unexpected);
    }

    #[test]
    fn an_answer_to_an_introduction_we_do_not_wait_for_is_stale() {
        let mut a = agent();
        from_peer(
            &mut a,
            GroupEnvelope::Inv {
                member_id: MemberId([5; 16]),
                invitation: Invitation::new(Vec::new()).expect("bounded"),
            },
        );
        only(&a, FaultSource::Nobody, FaultKind::Stale);
    }
}
