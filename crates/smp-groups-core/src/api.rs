//! The client-facing API of the core: commands in, events out.
//!
//! These are the seed's client commands and events, typed. The agent facade maps
//! the text protocol (`corrId entity command`) to and from them. Group members
//! are named by their group-scoped [`MemberId`]; the facade gives them aliases.

use smp_groups_integrity::Violation;
use smp_groups_wire::agent::MemberId;

use crate::fault::{FaultKind, FaultSource, FaultTarget};
use crate::time::Timestamp;

/// A client command, with the correlation id its response carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `C:a NEW`: create a pairwise connection; answered by [`Event::Invitation`].
    NewConn {
        /// The alias, or `None` for the agent to choose one.
        alias: Option<String>,
    },
    /// `C:a JOIN inv info`: join a pairwise connection.
    JoinConn {
        /// The alias, or `None` for the agent to choose one.
        alias: Option<String>,
        /// The invitation received out of band.
        invitation: Vec<u8>,
        /// Information for the other side.
        info: Vec<u8>,
    },
    /// `C:a SEND msg`: a pairwise message.
    SendConn {
        /// The connection.
        alias: String,
        /// The message.
        body: Vec<u8>,
    },
    /// `C:a ACK id`: the client processed a pairwise message.
    AckConn {
        /// The connection.
        alias: String,
        /// The message id from [`Event::ConnMsg`].
        msg_id: u64,
    },
    /// `C:a DEL`: delete a pairwise connection.
    DelConn {
        /// The connection.
        alias: String,
    },
    /// `G:g? NEW gInfo`: create a group.
    NewGroup {
        /// The alias, or `None` for the agent to choose one.
        alias: Option<String>,
        /// Group information, opaque to the agent.
        info: Vec<u8>,
    },
    /// `C:a INTRO G:g gInfo`: invite the peer of connection `conn` to group `group`.
    Intro {
        /// The visible connection to the invitee.
        conn: String,
        /// The group.
        group: String,
        /// Group information for the invitee.
        info: Vec<u8>,
    },
    /// `G:g? JOIN g:inv`: accept a group invitation.
    JoinGroup {
        /// The alias for the group, or `None` for the agent to choose one.
        alias: Option<String>,
        /// The invitation id from [`Event::GroupRequest`].
        invitation: String,
    },
    /// `g:inv RJCT`: refuse a received group invitation. It is forgotten;
    /// the introducer is not told (its pending member expires after
    /// [`crate::Config::pending_member_ttl_ms`]).
    RejectInvitation {
        /// The invitation id from [`Event::GroupRequest`].
        invitation: String,
    },
    /// `G:g SEND msg`.
    Send {
        /// The group.
        group: String,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g DSEND C:m msg`: a direct message to member `member` only, on
    /// the hidden connection with it; answered by [`Event::DirectQueued`].
    /// Refused for a member we do not know ([`CommandError::NoMember`]),
    /// one not connected yet ([`CommandError::MemberNotReady`]) and one that
    /// left or was removed ([`CommandError::MemberGone`]).
    DirectSend {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g ACK id`: the client processed a group message (or a direct
    /// message: one group's ids are never shared); sends the receipt.
    Ack {
        /// The group.
        group: String,
        /// The message id from [`Event::Msg`].
        msg_id: u64,
    },
    /// `G:g LEAVE`.
    Leave {
        /// The group.
        group: String,
    },
    /// `G:g REM member`.
    Remove {
        /// The group.
        group: String,
        /// The member to remove.
        member: MemberId,
    },
    /// `G:g DEL`.
    Delete {
        /// The group.
        group: String,
    },
    /// Send our `G_CHECK` to every connected member now, whatever the schedule.
    Check {
        /// The group.
        group: String,
    },
    /// `G:g INFO gInfo`: replace the group's information for every member
    /// (`crate::profile`).
    SetInfo {
        /// The group.
        group: String,
        /// The new group information.
        info: Vec<u8>,
    },
    /// `G:g PROFILE profile`: replace our own member profile in the group,
    /// for every member.
    SetProfile {
        /// The group.
        group: String,
        /// The new profile.
        profile: Vec<u8>,
    },
    /// Answer to [`Event::ApprovalRequired`].
    Approve {
        /// The group.
        group: String,
        /// The approval id.
        approval: u64,
        /// Apply the change (true) or refuse it.
        accept: bool,
    },
}

/// A membership change that waits for the client's approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `by` introduces a new member.
    Add {
        /// The new member.
        member: MemberId,
        /// The introducer.
        by: MemberId,
    },
    /// `by` removes a member.
    Remove {
        /// The member removed.
        member: MemberId,
        /// The member removing it.
        by: MemberId,
    },
}

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No connection with this alias.
    #[error("no connection {0}")]
    NoConn(String),
    /// No group with this alias.
    #[error("no group {0}")]
    NoGroup(String),
    /// No received invitation with this id.
    #[error("no invitation {0}")]
    NoInvitation(String),
    /// The alias is taken.
    #[error("alias {0} is in use")]
    Duplicate(String),
    /// The alias cannot be carried by the client protocol (empty, too long,
    /// or not printable ASCII without spaces): every event about it would be
    /// lost, so it is refused when it is given.
    #[error("bad alias {alias:?}: {reason}")]
    BadAlias {
        /// The alias given.
        alias: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The message is longer than the configured maximum.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The connection or group is not in a state that allows the command.
    #[error("not allowed now: {0}")]
    State(&'static str),
    /// An invitation could not be parsed.
    #[error("bad invitation: {0}")]
    BadInvitation(String),
    /// Not a member of the group.
    #[error("unknown member {0}")]
    NoMember(MemberId),
    /// The member's connection is not established yet: nothing can be sent
    /// to it alone.
    #[error("member {0} is not connected yet")]
    MemberNotReady(MemberId),
    /// The member left or was removed (or its queue is gone).
    #[error("member {0} left the group")]
    MemberGone(MemberId),
    /// No such message or approval.
    #[error("unknown id {0}")]
    NoId(u64),
    /// Local failure (crypto, encoding).
    #[error("internal: {0}")]
    Internal(String),
}

/// An event for the client. `corr` is the command's correlation id for responses,
/// `None` for events the agent sends on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvent {
    /// Correlation id of the command this answers.
    pub corr: Option<String>,
    /// The event.
    pub event: Event,
}

/// Client events (responses and notifications).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Generic success of a command on a connection or group alias.
    Ok {
        /// The alias (connection or group).
        alias: String,
    },
    /// A command failed.
    Err(CommandError),
    /// Response to `SEND`: the message is queued under this local id (`SENT` and
    /// `RCVD` events name it).
    Queued {
        /// The connection or group.
        alias: String,
        /// The local message id.
        msg_id: u64,
    },
    /// `C:a INV invitation`: a new connection's invitation.
    Invitation {
        /// The connection.
        alias: String,
        /// The invitation, to pass out of band.
        invitation: Vec<u8>,
    },
    /// `C:a CON`: the pairwise connection is established.
    Con {
        /// The connection.
        alias: String,
        /// The information the peer sent with its join (empty for the joiner).
        info: Vec<u8>,
    },
    /// `C:a SENT id`.
    ConnSent {
        /// The connection.
        alias: String,
        /// The message id.
        msg_id: u64,
    },
    /// `C:a MSG meta body`.
    ConnMsg {
        /// The connection.
        alias: String,
        /// The message id (for `ACK`).
        msg_id: u64,
        /// Its integrity on the connection, and the ids and times the relay
        /// and the sender gave it (the sender's id is the `sndMsgId` of the
        /// agent message that carried it).
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `C:a RCVD id`: the peer acknowledged a pairwise message.
    ConnRcvd {
        /// The connection.
        alias: String,
        /// The message id.
        msg_id: u64,
    },
    /// `C:a REQ g:inv gInfo`: an invitation to a group.
    GroupRequest {
        /// The connection it came on.
        conn: String,
        /// The invitation id, for `JOIN`.
        invitation: String,
        /// The group information.
        info: Vec<u8>,
    },
    /// `G:g CON member`: connected to a member.
    GroupCon {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
    },
    /// `G:g MEM [member]`: the member (or, with `None`, this agent) is connected to
    /// all members.
    Mem {
        /// The group.
        group: String,
        /// The member, or `None` for ourselves.
        member: Option<MemberId>,
    },
    /// `G:g SENT [member] id`: sent to one member, then (`None`) to all.
    Sent {
        /// The group.
        group: String,
        /// The member, or `None` once sent to all.
        member: Option<MemberId>,
        /// The local message id.
        msg_id: u64,
    },
    /// `G:g MSG member meta msg`.
    Msg {
        /// The group.
        group: String,
        /// The sender.
        member: MemberId,
        /// The local message id, for `ACK`.
        msg_id: u64,
        /// Its integrity in the sender's group chain, and the ids and times
        /// the relay and the sender gave it (the sender's id is its
        /// group-wide id, `extMsgId`, the id [`Violation`]s name).
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g RCVD [member] id status`: delivery to one member, then (`None`) to all.
    Rcvd {
        /// The group.
        group: String,
        /// The member, or `None` once received by all.
        member: Option<MemberId>,
        /// The local id of our message.
        msg_id: u64,
        /// What the receipt proved; for all members, the worst of theirs.
        status: ReceiptStatus,
    },
    /// `G:g DSENT id`: the answer to [`Command::DirectSend`]: the direct
    /// message is queued under this local id (the group's id space).
    DirectQueued {
        /// The group.
        group: String,
        /// The local message id.
        msg_id: u64,
    },
    /// `G:g DSENT member id`: the relay took our direct message for `member`.
    DirectSent {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// The local message id.
        msg_id: u64,
    },
    /// `G:g DMSG member meta msg`: a direct message from `member` to us only.
    DirectMsg {
        /// The group.
        group: String,
        /// The sender.
        member: MemberId,
        /// The local message id, for `ACK`.
        msg_id: u64,
        /// Its integrity in the pair's own ordering of direct messages (the
        /// sender's direct ids to us, 1, 2, 3, ...), and the ids and times
        /// the relay and the sender gave it.
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g DRCVD member id status`: `member` received our direct message.
    DirectRcvd {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// The local id of our message.
        msg_id: u64,
        /// [`ReceiptStatus::Ok`], or [`ReceiptStatus::BadHash`] when the
        /// member received other content (direct receipts are not signed).
        status: ReceiptStatus,
    },
    /// `G:g DFAIL member id reason`: our direct message to `member` will not
    /// be delivered or confirmed: the member left or was removed, or we left
    /// or deleted the group, first.
    DirectFailed {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// The local id of our message.
        msg_id: u64,
        /// How far it got.
        reason: DirectFailure,
    },
    /// `G:g LEFT [member]`: the member left (`None`: we left).
    Left {
        /// The group.
        group: String,
        /// The member, or `None` for ourselves.
        member: Option<MemberId>,
    },
    /// `G:g REMD member [by]`: a member is removed (by us when `by` is `None`,
    /// once every member confirmed).
    Removed {
        /// The group.
        group: String,
        /// The member removed.
        member: MemberId,
        /// Who removed it, `None` for us.
        by: Option<MemberId>,
    },
    /// `G:g OUT member`: we were removed by `by`.
    Out {
        /// The group.
        group: String,
        /// The member who removed us.
        by: MemberId,
    },
    /// `G:g EMPTY`: every other member left or was removed.
    Empty {
        /// The group.
        group: String,
    },
    /// `G:g DELD [member]`: the group is deleted (by `by`; by us when `None`, once
    /// every member confirmed).
    Deleted {
        /// The group.
        group: String,
        /// Who deleted it.
        by: Option<MemberId>,
    },
    /// `G:g INFO member gInfo`: the group's information, as `member` set it,
    /// replaced the one held (last writer wins, `crate::profile`).
    GroupInfo {
        /// The group.
        group: String,
        /// The member who set it.
        member: MemberId,
        /// The group information.
        info: Vec<u8>,
    },
    /// `G:g PROFILE member profile`: a member's profile, once when it
    /// connects (if not empty) and whenever it changes.
    MemberProfile {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// Its profile.
        profile: Vec<u8>,
    },
    /// A membership change waits for the client's decision (`Command::Approve`).
    ApprovalRequired {
        /// The group.
        group: String,
        /// The approval id.
        approval: u64,
        /// The change.
        change: Change,
    },
    /// An integrity violation found by `G_CHECK` reconciliation or a receipt.
    Violation {
        /// The group.
        group: String,
        /// What disagrees.
        violation: Violation,
    },
    /// An input was refused and what it concerns cannot make progress: a
    /// connection whose peer's queue is gone, our receive queue refused or
    /// lost at the relay, a confirmation that cannot be processed, several
    /// undecryptable messages in a row, a message we cannot seal. Every
    /// refusal is counted ([`crate::Agent::refusals`]) and logged; only these
    /// reach the client (`docs/faults.md`).
    Fault {
        /// The connection, member or group concerned.
        target: FaultTarget,
        /// Who is at fault.
        source: FaultSource,
        /// What was refused.
        kind: FaultKind,
    },
}

/// The metadata of a received message (the reference agent's `MsgMeta`):
/// the ids and times the sender, the relay and this agent gave it, and its
/// integrity in the sender's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgMeta {
    /// The sender's id of the message: on a pairwise connection, the
    /// sequential id of the agent message that carried it (every agent
    /// message counts; for a message in fragments, its last fragment); in a
    /// group, its group-wide id (`extMsgId`).
    pub snd_msg_id: u64,
    /// The sender's clock when its client sent the message, as the sender
    /// wrote it (0 for a group message an agent kept for catch-up before it
    /// recorded send times).
    pub snd_ts: Timestamp,
    /// The relay's id of the message (of its last fragment).
    pub relay_msg_id: Vec<u8>,
    /// The relay's timestamp of the message (of its last fragment), as
    /// [`crate::RelayEvent::Message`] gave it.
    pub relay_ts: Timestamp,
    /// When this agent received it: the time of the input that delivered it.
    pub rcv_ts: Timestamp,
    /// Its integrity in the sender's chain.
    pub integrity: MsgIntegrity,
}

/// The integrity of a received message in its sender's chain (the reference
/// agent's `MsgIntegrity`). A message that is dropped (a duplicate, an id
/// lower than one received, other content under a received id) is never
/// delivered, so its kinds are not here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgIntegrity {
    /// The next message of the chain (pairwise: and the previous message's
    /// hash it names matches).
    Ok,
    /// The sender's messages `from..=to` had not arrived when this one did.
    /// Pairwise, they are agent messages of the connection (lost: the chain
    /// goes on from this one); in a group, group messages (a later arrival
    /// fills the gap).
    Skipped {
        /// The first missing id.
        from: u64,
        /// The last missing id.
        to: u64,
    },
    /// Pairwise only: the hash of the previous message this one names is not
    /// the hash of the last message received on the connection (the peer's
    /// history differs from ours).
    BadHash,
    /// Group only: a message sent before we joined, handed to us by the
    /// member that added us (`HIST`) with its original sender's signature,
    /// which was checked. It is in no chain, gets no receipt and needs no
    /// `ACK` (its local id is 0).
    History,
}

/// How far a direct message got before its member or group went
/// ([`Event::DirectFailed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectFailure {
    /// The relay never took it.
    Unsent,
    /// The relay took it; no receipt will come.
    Unconfirmed,
}

/// What a receipt for one of our group messages proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// The member received what we sent (the content hash matches) and
    /// signed for it (when signed receipts are on).
    Ok,
    /// The member received other content than we sent.
    BadHash,
    /// The receipt's signature does not verify, or it is unsigned (or from a
    /// member whose key we do not know) while signed receipts are on.
    BadSig,
}

impl ReceiptStatus {
    /// True for [`ReceiptStatus::Ok`].
    pub fn is_ok(self) -> bool {
        self == Self::Ok
    }

    /// The worse of two statuses (a bad signature over a bad hash over ok).
    #[must_use]
    pub fn worst(self, other: Self) -> Self {
        match (self, other) {
            (Self::BadSig, _) | (_, Self::BadSig) => Self::BadSig,
            (Self::BadHash, _) | (_, Self::BadHash) => Self::BadHash,
            _ => Self::Ok,
        }
    }

    /// The byte a stored send record holds: `0` bad hash, `1` ok, `2` bad
    /// signature (the first two are the `false`/`true` of records written
    /// when the status was a boolean, so those still load).
    fn to_byte(self) -> u8 {
        match self {
            Self::BadHash => 0,
            Self::Ok => 1,
            Self::BadSig => 2,
        }
    }

    /// The status a stored byte holds ([`Self::to_byte`]); unknown bytes
    /// read as a bad signature (never as ok).
    fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::BadHash,
            1 => Self::Ok,
            _ => Self::BadSig,
        }
    }
}

// Stored as the one byte of `to_byte` (see there).
impl serde::Serialize for ReceiptStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.to_byte())
    }
}

impl<'de> serde::Deserialize<'de> for ReceiptStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(Self::from_byte)
    }
}

#[cfg(test)]
mod tests {
    use super::ReceiptStatus;

    /// Send records written when the status was a boolean still load: a
    /// stored `true` is ok, `false` a bad hash; every status round-trips.
    #[test]
    fn receipt_status_reads_the_old_boolean() {
        let old = |b: bool| -> ReceiptStatus {
            postcard::from_bytes(&postcard::to_allocvec(&b).expect("encodes")).expect("decodes")
        };
        assert_eq!(old(true), ReceiptStatus::Ok);
        assert_eq!(old(false), ReceiptStatus::BadHash);
        for s in [
            ReceiptStatus::Ok,
            ReceiptStatus::BadHash,
            ReceiptStatus::BadSig,
        ] {
            let bytes = postcard::to_allocvec(&s).expect("encodes");
            assert_eq!(bytes.len(), 1);
            assert_eq!(
                postcard::from_bytes::<ReceiptStatus>(&bytes).expect("decodes"),
                s
            );
        }
    }
}
