//! Read-only status queries on an [`Agent`]: its groups, a group's members,
//! its connections, what waits for the client, sends awaiting receipts, and a
//! group's integrity state. Every answer is built from the state the agent
//! already keeps; a query changes nothing and stores nothing.

use smp_groups_integrity::OpenKind;
use smp_groups_wire::agent::{GCheckStatus, GroupId, MemberId};

use crate::agent::Agent;
use crate::api::{Change, CommandError};
use crate::state::{self, Owner};
use crate::time::Timestamp;

/// Where a group is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// Our join is in progress: we may not know every member yet.
    Joining,
    /// Active.
    Active,
    /// We deleted it and wait for the members' `DELD`.
    Deleting,
}

impl GroupState {
    /// The lowercase name used by the client protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Active => "active",
            Self::Deleting => "deleting",
        }
    }
}

/// One group, as [`Agent::group_statuses`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group's local alias.
    pub alias: String,
    /// The group-wide id.
    pub group_id: GroupId,
    /// Our member id in it.
    pub me: MemberId,
    /// Other members we know (pending ones included; ourselves excluded).
    pub members: usize,
    /// Of those, the members our connection with is established.
    pub connected: usize,
    /// Where the group is in its life.
    pub state: GroupState,
}

/// A member's state as we see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// Invited or introduced; our connection with it is not established yet.
    Pending,
    /// Our connection with it is established.
    Connected,
    /// Connected, and known to be connected to every member (`MEM`).
    Full,
    /// It left or was removed: its messages are refused. Only its id is kept.
    Left,
}

impl MemberState {
    /// The lowercase name used by the client protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connected => "connected",
            Self::Full => "full",
            Self::Left => "left",
        }
    }
}

/// One other member of a group ([`Agent::member_statuses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its member id (the client protocol names it by the id's base64url text).
    pub member: MemberId,
    /// Its state.
    pub state: MemberState,
    /// The relay of our receive queue on the connection with it, once created.
    pub relay: Option<String>,
    /// The relay of its receive queue (where we send to it), once known.
    pub peer_relay: Option<String>,
    /// The last group message id we sent (our group-wide `extMsgId`; the same
    /// for every member, 0 before our first message). `None` for a member
    /// that left.
    pub last_sent: Option<u64>,
    /// The last of its group message ids received without a gap (its chain's
    /// head), once we hold integrity state for it.
    pub last_received: Option<u64>,
    /// The integrity point: the last of our message ids at which its checks or
    /// receipts matched our chain, once we hold integrity state for it.
    pub confirmed: Option<u64>,
    /// Its chain as our checks report it (`ok`, `gap`, `bad`).
    pub chain: Option<GCheckStatus>,
    /// Its profile in the group, as last learned (empty: none, or it left).
    pub profile: Vec<u8>,
}

/// Where a pairwise connection is in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnState {
    /// Inviter: the receive queue is being created.
    Creating,
    /// Inviter: the invitation is out, waiting for the confirmation.
    Invited,
    /// Joiner: the reply queue is being created.
    Joining,
    /// Joiner: the confirmation is sent, waiting for `HELLO`.
    Joined,
    /// Both sides can send.
    Ready,
    /// Being deleted once its outgoing messages are gone.
    Closing,
}

impl ConnState {
    /// The lowercase name used by the client protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Invited => "invited",
            Self::Joining => "joining",
            Self::Joined => "joined",
            Self::Ready => "ready",
            Self::Closing => "closing",
        }
    }
}

/// One client-visible pairwise connection ([`Agent::conn_statuses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnStatus {
    /// The connection's alias.
    pub alias: String,
    /// Where it is in its handshake.
    pub state: ConnState,
    /// The relay of our receive queue, once created.
    pub relay: Option<String>,
    /// The relay of the peer's receive queue, once known.
    pub peer_relay: Option<String>,
    /// The id of the last envelope we sent on it (0: none).
    pub last_sent: u64,
    /// The id of the last envelope we received on it (0: none).
    pub last_received: u64,
    /// Envelopes waiting to be sent.
    pub queued: usize,
    /// Messages received and not yet acknowledged by the client (`ACK`).
    pub unacked: usize,
}

/// A received group invitation waiting for `JOIN` ([`Agent::pending_invitations`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingInvitation {
    /// The invitation id (`g:id` in the client protocol).
    pub id: String,
    /// The connection it came on.
    pub conn: String,
}

/// A membership change waiting for the client's decision ([`Agent::pending_approvals`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingApproval {
    /// The group.
    pub group: String,
    /// The approval id (for `ALLOW` / `DENY`).
    pub approval: u64,
    /// The change.
    pub change: Change,
}

/// One of our group messages not yet received by every member
/// ([`Agent::pending_sends`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSend {
    /// The local message id (as `SENT` and `RCVD` name it).
    pub msg_id: u64,
    /// Its group-wide id.
    pub ext_msg_id: u64,
    /// Members it was not sent to yet.
    pub unsent: Vec<MemberId>,
    /// Members whose receipt has not come.
    pub awaiting: Vec<MemberId>,
}

/// One of our direct messages not confirmed yet ([`Agent::pending_direct`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingDirect {
    /// The local message id (as `DSENT` and `DRCVD` name it).
    pub msg_id: u64,
    /// Its direct id with that member (`S=` in the member's `DMSG`).
    pub direct_id: u64,
    /// The member it is for.
    pub member: MemberId,
    /// The relay took it; it waits for the member's receipt. Otherwise it
    /// waits to be sent.
    pub sent: bool,
}

/// The kind of a violation raised and not resolved yet.
pub type OpenViolationKind = OpenKind;

/// One member's part of a group's integrity state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberIntegrity {
    /// The member.
    pub member: MemberId,
    /// The sequence number of its last `G_CHECK` we accepted (its connection
    /// message id; 0: none yet).
    pub last_check_received: u64,
    /// The head of its chain as we have it.
    pub last_received: u64,
    /// The last of our message ids its checks or receipts confirmed.
    pub confirmed: u64,
    /// Its chain as our checks report it.
    pub chain: GCheckStatus,
}

/// A violation raised and not resolved yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenViolation {
    /// The member whose messages are in question.
    pub sender: MemberId,
    /// The member whose report disagrees with ours.
    pub reporter: MemberId,
    /// What disagrees.
    pub kind: OpenViolationKind,
}

/// A group's integrity state ([`Agent::integrity_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityStatus {
    /// When our last `G_CHECK` was sent (before the first one: when the group
    /// was created or joined, where the schedule starts).
    pub last_check_sent: Timestamp,
    /// When the next time-triggered check is due (`None` without a time
    /// trigger); an idle group skips it.
    pub next_check: Option<Timestamp>,
    /// Group messages sent and received since our last check.
    pub since_check: u64,
    /// Our own last group message id.
    pub last_sent: u64,
    /// The last of our message ids every member confirmed.
    pub delivered_to_all: u64,
    /// Each member we hold integrity state for (connected ones).
    pub members: Vec<MemberIntegrity>,
    /// Violations raised and not resolved yet.
    pub violations: Vec<OpenViolation>,
}

fn member_state(m: &state::Member) -> MemberState {
    match m.status {
        state::MemberStatus::Pending => MemberState::Pending,
        state::MemberStatus::Connected => MemberState::Connected,
        state::MemberStatus::Full => MemberState::Full,
    }
}

/// Read-only status queries: nothing changes, nothing is stored.
impl Agent {
    fn group_ref(&self, alias: &str) -> Result<&state::Group, CommandError> {
        self.groups
            .get(alias)
            .ok_or_else(|| CommandError::NoGroup(alias.to_owned()))
    }

    fn relays(&self, conn: Option<u64>) -> (Option<String>, Option<String>) {
        let c = conn.and_then(|c| self.conns.get(&c));
        (
            c.and_then(|c| c.rcv.as_ref()).map(|q| q.server.clone()),
            c.and_then(|c| c.snd.as_ref()).map(|q| q.server.clone()),
        )
    }

    /// Every group, by alias.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|(alias, g)| GroupStatus {
                alias: alias.clone(),
                group_id: GroupId(g.id),
                me: MemberId(g.me),
                members: g.members.len(),
                connected: g
                    .members
                    .values()
                    .filter(|m| m.status != state::MemberStatus::Pending)
                    .count(),
                state: match g.status {
                    state::GroupStatus::Deleting { .. } => GroupState::Deleting,
                    state::GroupStatus::Active if g.joining() => GroupState::Joining,
                    state::GroupStatus::Active => GroupState::Active,
                },
            })
            .collect()
    }

    /// The other members of a group: those we know (pending, connected, full),
    /// by member id, then those that left or were removed.
    pub fn member_statuses(&self, group: &str) -> Result<Vec<MemberStatus>, CommandError> {
        let g = self.group_ref(group)?;
        let (last_sent, _) = g.integrity.head(MemberId(g.me)).unwrap_or_default();
        let mut out = Vec::with_capacity(g.members.len() + g.gone.len());
        for (mid, m) in &g.members {
            let id = MemberId(*mid);
            let (relay, peer_relay) = self.relays(m.conn);
            out.push(MemberStatus {
                member: id,
                state: member_state(m),
                relay,
                peer_relay,
                last_sent: Some(last_sent),
                last_received: g.integrity.head(id).map(|(h, _)| h),
                confirmed: g
                    .integrity
                    .member_state(id)
                    .map(|_| g.integrity.confirmed(MemberId(g.me), id).unwrap_or(0)),
                chain: g
                    .integrity
                    .member_state(id)
                    .and_then(|_| g.integrity.chain_status(id)),
                profile: m.profile.clone(),
            });
        }
        for mid in g.gone.iter().filter(|m| !g.members.contains_key(*m)) {
            out.push(MemberStatus {
                member: MemberId(*mid),
                state: MemberState::Left,
                relay: None,
                peer_relay: None,
                last_sent: None,
                last_received: None,
                confirmed: None,
                chain: None,
                profile: Vec::new(),
            });
        }
        Ok(out)
    }

    /// The client-visible pairwise connections, by alias (the hidden ones
    /// with group members are in [`Self::member_statuses`]).
    pub fn conn_statuses(&self) -> Vec<ConnStatus> {
        let mut out: Vec<ConnStatus> = self
            .conns
            .values()
            .filter_map(|c| {
                let Owner::Visible(alias) = &c.owner else {
                    return None;
                };
                let state = if c.closing {
                    ConnState::Closing
                } else {
                    match c.status {
                        state::ConnStatus::NewQueue => ConnState::Creating,
                        state::ConnStatus::Invited => ConnState::Invited,
                        state::ConnStatus::JoinQueue => ConnState::Joining,
                        state::ConnStatus::Joined => ConnState::Joined,
                        state::ConnStatus::Ready => ConnState::Ready,
                    }
                };
                Some(ConnStatus {
                    alias: alias.clone(),
                    state,
                    relay: c.rcv.as_ref().map(|q| q.server.clone()),
                    peer_relay: c.snd.as_ref().map(|q| q.server.clone()),
                    last_sent: c.chain.last_sent_id(),
                    last_received: c.chain.last_received_id(),
                    queued: c.outbox.len(),
                    unacked: c.unacked.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        out
    }

    /// Received group invitations waiting for `JOIN`, by id.
    pub fn pending_invitations(&self) -> Vec<PendingInvitation> {
        self.invitations
            .iter()
            .map(|(id, r)| PendingInvitation {
                id: id.clone(),
                conn: r.conn.clone(),
            })
            .collect()
    }

    /// Membership changes waiting for the client's decision, by group then id.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.groups
            .iter()
            .flat_map(|(alias, g)| {
                g.approvals.iter().map(move |(id, p)| PendingApproval {
                    group: alias.clone(),
                    approval: *id,
                    change: p.change.into(),
                })
            })
            .collect()
    }

    /// Our messages in a group not yet sent to or received by every member
    /// (a message leaves this list when its `RCVD` for all is reported).
    pub fn pending_sends(&self, group: &str) -> Result<Vec<PendingSend>, CommandError> {
        let g = self.group_ref(group)?;
        Ok(g.sends
            .iter()
            .map(|(id, t)| PendingSend {
                msg_id: *id,
                ext_msg_id: t.ext_msg_id,
                unsent: t.sent_pending.iter().map(|m| MemberId(*m)).collect(),
                awaiting: t.rcvd_pending.iter().map(|m| MemberId(*m)).collect(),
            })
            .collect())
    }

    /// Our direct messages in a group not yet confirmed by their member
    /// (a message leaves this list at its `DRCVD` or `DFAIL`).
    pub fn pending_direct(&self, group: &str) -> Result<Vec<PendingDirect>, CommandError> {
        Ok(self.group_ref(group)?.direct.pending())
    }

    /// A group's integrity state: the check schedule, each connected member's
    /// last check and chain, the violations not resolved.
    pub fn integrity_status(&self, group: &str) -> Result<IntegrityStatus, CommandError> {
        let g = self.group_ref(group)?;
        let i = &g.integrity;
        let me = MemberId(g.me);
        let members = i
            .members()
            .map(|id| MemberIntegrity {
                member: id,
                last_check_received: i.last_check_received(id).unwrap_or(0),
                last_received: i.head(id).map_or(0, |(h, _)| h),
                confirmed: i.confirmed(me, id).unwrap_or(0),
                chain: i.chain_status(id).unwrap_or(GCheckStatus::Ok),
            })
            .collect();
        let violations = i
            .open_violations()
            .into_iter()
            .map(|v| OpenViolation {
                sender: v.sender,
                reporter: v.reporter,
                kind: v.kind,
            })
            .collect();
        Ok(IntegrityStatus {
            last_check_sent: i.last_check_at(),
            next_check: i.next_check_at(),
            since_check: i.since_check(),
            last_sent: i.head(me).map_or(0, |(h, _)| h),
            delivered_to_all: i.delivered_to_all(),
            members,
            violations,
        })
    }
}
