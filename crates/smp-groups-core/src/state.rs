//! The agent's stored state: connections, groups, received invitations, relay
//! operations in flight. Every type here is a postcard record (see [`crate::store`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::ratchet::{Ratchet, X3dhKeyPairs, X3dhParams};
use smp_groups_integrity::{Anchor, ConnectionChain, GroupIntegrity};
use smp_groups_wire::agent::Digest;

use crate::api::Change;
use crate::relay::{OpId, RelayOp};

/// A member id as stored (the raw bytes of a `MemberId`).
pub(crate) type Mid = [u8; 16];

/// Agent-wide record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) config: crate::Config,
    pub(crate) next_id: u64,
}

/// A chain anchor as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AnchorRec {
    Genesis,
    At(u64, [u8; 32]),
}

impl AnchorRec {
    /// The last message id before the chain continues (0 at genesis).
    pub(crate) fn msg_id(self) -> u64 {
        match self {
            Self::Genesis => 0,
            Self::At(id, _) => id,
        }
    }
}

impl From<Anchor> for AnchorRec {
    fn from(a: Anchor) -> Self {
        match a {
            Anchor::Genesis => Self::Genesis,
            Anchor::At { msg_id, digest } => Self::At(msg_id, digest.0),
        }
    }
}

impl From<AnchorRec> for smp_groups_wire::agent::ChainAnchor {
    fn from(a: AnchorRec) -> Self {
        match a {
            AnchorRec::Genesis => Self::Genesis,
            AnchorRec::At(ext_msg_id, d) => Self::At {
                ext_msg_id,
                digest: smp_groups_wire::agent::Digest(d),
            },
        }
    }
}

impl From<smp_groups_wire::agent::ChainAnchor> for AnchorRec {
    fn from(a: smp_groups_wire::agent::ChainAnchor) -> Self {
        match a {
            smp_groups_wire::agent::ChainAnchor::Genesis => Self::Genesis,
            smp_groups_wire::agent::ChainAnchor::At { ext_msg_id, digest } => {
                Self::At(ext_msg_id, digest.0)
            }
        }
    }
}

impl From<AnchorRec> for Anchor {
    fn from(a: AnchorRec) -> Self {
        match a {
            AnchorRec::Genesis => Self::Genesis,
            AnchorRec::At(msg_id, d) => Self::At {
                msg_id,
                digest: Digest(d),
            },
        }
    }
}

/// Who a connection belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Owner {
    /// A client-visible connection.
    Visible(String),
    /// A hidden connection with a group member.
    Member { group: String, member: Mid },
    /// An open invitation we handed to member `holder` for the next member it
    /// adds (open invitations variant); becomes a `Member` connection when used.
    Open { group: String, holder: Mid },
}

/// Where a connection is in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ConnStatus {
    /// Inviter: waiting for the receive queue to be created.
    NewQueue,
    /// Inviter: invitation handed out, waiting for the confirmation.
    Invited,
    /// Joiner: waiting for the reply queue to be created.
    JoinQueue,
    /// Joiner: confirmation sent, waiting for `HELLO`.
    Joined,
    /// Both sides can send.
    Ready,
}

/// A receive queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RcvQueue {
    pub(crate) server: String,
    pub(crate) rcv_id: Vec<u8>,
    pub(crate) snd_id: Vec<u8>,
}

/// A send queue (the peer's receive queue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SndQueue {
    pub(crate) server: String,
    pub(crate) snd_id: Vec<u8>,
    /// The key seed that authorizes sends once the queue is secured.
    pub(crate) auth: [u8; 32],
    /// Whether the next send is the unsecured confirmation.
    pub(crate) secured: bool,
}

/// What an outgoing item is for, to report delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Note {
    None,
    /// The last block of group message `int_id` to `member`.
    GroupMsg {
        int_id: u64,
        member: Mid,
    },
    /// A pairwise client message.
    ConnMsg {
        msg_id: u64,
    },
    /// The last block of our direct message `int_id` to the connection's
    /// member.
    Direct {
        int_id: u64,
    },
}

/// An outgoing item on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutItem {
    pub(crate) payload: Payload,
    pub(crate) note: Note,
    /// The envelope's kind, for counting.
    pub(crate) kind: crate::relay::SendKind,
}

/// An outgoing payload: plaintext until it is sealed (encrypted and chained),
/// which happens once when it reaches the head of the line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Payload {
    /// An encoded `AMessage`.
    Plain(#[serde(with = "crate::serde_bytes")] Vec<u8>),
    /// A ready agent envelope.
    Sealed(#[serde(with = "crate::serde_bytes")] Vec<u8>),
}

/// One pairwise connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Conn {
    pub(crate) owner: Owner,
    pub(crate) status: ConnStatus,
    pub(crate) rcv: Option<RcvQueue>,
    pub(crate) snd: Option<SndQueue>,
    pub(crate) keys: Option<X3dhKeyPairs>,
    /// Joiner: the inviter's keys, until the ratchet starts.
    pub(crate) peer_params: Option<X3dhParams>,
    pub(crate) ratchet: Option<Ratchet>,
    pub(crate) chain: ConnectionChain,
    pub(crate) outbox: VecDeque<OutItem>,
    pub(crate) in_flight: Option<OpId>,
    /// Joiner: our information for the confirmation.
    pub(crate) join_info: Vec<u8>,
    /// Pairwise: information from the peer.
    pub(crate) peer_info: Vec<u8>,
    /// Fragmented messages partly received.
    pub(crate) frags: crate::conn::Reassembly,
    pub(crate) next_frag_id: u64,
    pub(crate) next_msg_id: u64,
    /// Pairwise messages received, waiting for the client's `ACK`: local id ->
    /// (peer id, digest).
    pub(crate) unacked: BTreeMap<u64, (u64, [u8; 32])>,
    /// Pairwise messages sent and not yet acknowledged: connection message id
    /// -> local message id (receipts name the former).
    pub(crate) sent_ids: BTreeMap<u64, u64>,
    /// Pairwise messages sent: peer-visible id = local id.
    pub(crate) created_at: u64,
    /// Delete the connection once its outbox is empty.
    pub(crate) closing: bool,
    /// The member was removed: only `OUT`, `REM` and `DEL` sent before its
    /// removal are still read from it, until this time; then it is closed.
    pub(crate) retire_at: Option<u64>,
    /// Closing while our confirmation is out and `HELLO` has not come: the
    /// receive queue is kept until `HELLO` lets the outbox (a `LEFT`) go, or
    /// until this time, when what is left is dropped.
    pub(crate) linger_until: Option<u64>,
    /// When the peer's queue was found gone: nothing more can be sent, but
    /// what the peer sent before (its `LEFT`, say) is still read. A member
    /// connection is declared left once the removal grace has passed.
    pub(crate) peer_gone_at: Option<u64>,
    /// Our `KEY` for the receive queue is in flight: nothing is sent until it
    /// is done (the peer's answer would be signed).
    pub(crate) securing: bool,
}

impl Conn {
    /// Our open invitation, joined by a member whose add waits for the
    /// client's approval: established, but nothing is sent on it (not even
    /// `HELLO`) until the answer.
    pub(crate) fn held(&self) -> bool {
        matches!(self.owner, Owner::Open { .. })
            && self.status == ConnStatus::Ready
            && !self.closing
    }

    pub(crate) fn new(owner: Owner, status: ConnStatus, now: u64) -> Self {
        Self {
            owner,
            status,
            rcv: None,
            snd: None,
            keys: None,
            peer_params: None,
            ratchet: None,
            chain: ConnectionChain::new(),
            outbox: VecDeque::new(),
            in_flight: None,
            join_info: Vec::new(),
            peer_info: Vec::new(),
            frags: crate::conn::Reassembly::default(),
            next_frag_id: 1,
            next_msg_id: 1,
            unacked: BTreeMap::new(),
            sent_ids: BTreeMap::new(),
            created_at: now,
            closing: false,
            retire_at: None,
            linger_until: None,
            peer_gone_at: None,
            securing: false,
        }
    }
}

/// A member as another member knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MemberStatus {
    /// Invited or introduced; the connection is not established yet.
    Pending,
    /// The pairwise connection is established.
    Connected,
    /// Connected, and known to be connected to all members (`MEM`).
    Full,
}

/// One other member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    pub(crate) conn: Option<u64>,
    pub(crate) status: MemberStatus,
    pub(crate) signing_key: Option<[u8; 32]>,
    pub(crate) profile: Vec<u8>,
    pub(crate) since: u64,
    /// The member who introduced it to us (`None`: we introduced it, or it is
    /// our own introducer).
    pub(crate) introduced_by: Option<Mid>,
    /// Where our sent chain stood when we started sending to it.
    pub(crate) my_anchor: AnchorRec,
    /// Where its sent chain starts for us, once announced.
    pub(crate) peer_anchor: Option<AnchorRec>,
    /// Its introducer announced it connected to all (`MEM`) while our own
    /// connection with it was still pending: it becomes `Full` once connected.
    pub(crate) announced: bool,
    /// Its messages our client acknowledged whose receipts are not sent yet:
    /// (extMsgId, content hash), sent together ([`crate::ReceiptPolicy`]).
    pub(crate) receipts: Vec<(u64, [u8; 32])>,
    /// When the oldest of `receipts` must go out.
    pub(crate) receipts_due: Option<u64>,
}

/// The introducer's view of one member it adds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct AddTrack {
    /// Members asked for an invitation for the new member (`INTRO`), not yet answered.
    pub(crate) awaiting_inv: BTreeSet<Mid>,
    /// Members the new member was introduced to (or is being).
    pub(crate) introduced_to: BTreeSet<Mid>,
    /// Whether the new member is connected to us.
    pub(crate) connected: bool,
    /// Whether `MEM` was sent to the new member (all introductions forwarded).
    pub(crate) mem_sent: bool,
    /// Whether the new member reported being connected to all.
    pub(crate) done: bool,
    /// The visible connection the `GROUP` invitation goes on, until it is sent.
    pub(crate) via_conn: Option<u64>,
    /// The group information for the invitation.
    pub(crate) group_info: Vec<u8>,
}

/// The new member's view of its own join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JoinTrack {
    pub(crate) introducer: Mid,
    /// `MEM` from the introducer arrived: every introduction was forwarded.
    pub(crate) intros_done: bool,
    /// We reported `MEM` (to the client and the introducer).
    pub(crate) done: bool,
    /// A join not done by this time is abandoned (`LEFT` to every member
    /// reached), so that it never hangs when its introducer is gone.
    pub(crate) deadline: u64,
}

/// Our own group message being delivered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SendTrack {
    pub(crate) ext_msg_id: u64,
    pub(crate) content_hash: [u8; 32],
    pub(crate) sent_pending: BTreeSet<Mid>,
    pub(crate) rcvd_pending: BTreeSet<Mid>,
    /// The worst receipt status so far.
    pub(crate) status: crate::ReceiptStatus,
    /// `SENT` for all was reported.
    pub(crate) sent_done: bool,
}

/// A received group message waiting for the client's `ACK`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RecvTrack {
    pub(crate) from: Mid,
    pub(crate) ext_msg_id: u64,
    pub(crate) content_hash: [u8; 32],
}

/// A membership change waiting for the client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingApproval {
    pub(crate) change: ChangeRec,
    /// The connection the envelope came on, and the envelope (encoded
    /// `AMessage`). For [`ChangeRec::OpenAdd`], the connection is our open
    /// invitation the member joined, held until the answer, and `envelope`
    /// its confirmation's join information (a wire-encoded
    /// `Option<JoinInfo>`: `"0"`, or `"1"` and the `joinInfo`).
    pub(crate) conn: u64,
    pub(crate) envelope: Vec<u8>,
}

/// [`Change`] as stored.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum ChangeRec {
    Add {
        member: Mid,
        by: Mid,
    },
    Remove {
        member: Mid,
        by: Mid,
    },
    /// `member` joined our open invitation held by `by` (last, so that
    /// records stored before it read as they were).
    OpenAdd {
        member: Mid,
        by: Mid,
    },
}

impl From<ChangeRec> for Change {
    fn from(c: ChangeRec) -> Self {
        use smp_groups_wire::agent::MemberId;
        match c {
            ChangeRec::Add { member, by } | ChangeRec::OpenAdd { member, by } => Change::Add {
                member: MemberId(member),
                by: MemberId(by),
            },
            ChangeRec::Remove { member, by } => Change::Remove {
                member: MemberId(member),
                by: MemberId(by),
            },
        }
    }
}

/// Where the group is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum GroupStatus {
    Active,
    /// We deleted it and wait for `DELD` from the members in `waiting`, until
    /// `until` at the latest (a member that deleted the group on another
    /// member's `DEL` may never read ours).
    Deleting {
        /// Members whose `DELD` has not come yet.
        waiting: BTreeSet<Mid>,
        /// When the deletion completes without the missing answers.
        until: u64,
    },
}

/// One group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: [u8; 16],
    pub(crate) info: Vec<u8>,
    pub(crate) me: Mid,
    /// Our group signing key (stored as its seed; the key pair is derived
    /// once, when the record is read).
    pub(crate) signing_key: SigningKey,
    pub(crate) status: GroupStatus,
    /// Stored apart, one record per member ([`MemberRec`]).
    #[serde(skip)]
    pub(crate) members: BTreeMap<Mid, Member>,
    pub(crate) integrity: GroupIntegrity,
    pub(crate) next_msg_id: u64,
    pub(crate) sends: BTreeMap<u64, SendTrack>,
    pub(crate) ext_to_int: BTreeMap<u64, u64>,
    pub(crate) recvs: BTreeMap<u64, RecvTrack>,
    pub(crate) adds: BTreeMap<Mid, AddTrack>,
    pub(crate) join: Option<JoinTrack>,
    pub(crate) removals: BTreeMap<Mid, BTreeSet<Mid>>,
    pub(crate) approvals: BTreeMap<u64, PendingApproval>,
    /// Open invitations other members handed us, by member.
    pub(crate) open_invs: BTreeMap<Mid, Vec<u8>>,
    /// Our open invitation connections, by the member holding them.
    pub(crate) open_offered: BTreeMap<Mid, u64>,
    /// Members removed or gone: envelopes from them are rejected.
    pub(crate) gone: BTreeSet<Mid>,
    /// The members we were connected to ever reached a non-empty set.
    pub(crate) had_members: bool,
    /// Our own messages since our join completed, the last few, for catching
    /// up a member that joined concurrently (`crate::history`). Stored apart,
    /// one record each.
    #[serde(skip)]
    pub(crate) history: BTreeMap<u64, crate::history::SentRec>,
    /// The bounds dropped kept messages (not stored: a restart forgets it,
    /// which only affects a warning).
    #[serde(skip)]
    pub(crate) history_dropped: bool,
    /// Direct messages to and from single members (`crate::direct`). Stored
    /// apart ([`crate::store::Key::Direct`]).
    #[serde(skip)]
    pub(crate) direct: crate::direct::DirectBook,
    /// The stamps of the group information and member profiles held, and
    /// our own profile (`crate::profile`). Stored apart ([`Key::Profiles`]).
    ///
    /// [`Key::Profiles`]: crate::store::Key::Profiles
    #[serde(skip)]
    pub(crate) profiles: crate::profile::Profiles,
    /// Signed messages kept to hand to members we add, by local sequence
    /// number (`crate::history_share`). Stored apart, one record each.
    #[serde(skip)]
    pub(crate) shared: BTreeMap<u64, crate::history_share::SharedRec>,
    /// History messages already reported: (sender, extMsgId). Not stored: a
    /// restart during our join may report one again.
    #[serde(skip)]
    pub(crate) history_seen: BTreeSet<(Mid, u64)>,
    /// Member sets in members' checks that differed from ours
    /// (`crate::members_check`; not stored).
    #[serde(skip)]
    pub(crate) members_mismatch: crate::members_check::Mismatches,
    /// Signed receipts kept as proof of delivery (`crate::proof`). Stored
    /// apart, one record each ([`Key::Proof`], [`Key::ProofSent`]).
    ///
    /// [`Key::Proof`]: crate::store::Key::Proof
    /// [`Key::ProofSent`]: crate::store::Key::ProofSent
    #[serde(skip)]
    pub(crate) proofs: crate::proof::ProofBook,
}

/// A received group invitation (`GROUP`), waiting for `JOIN`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RecvInvitation {
    pub(crate) conn: String,
    /// The encoded `GROUP` envelope (`AMessage`).
    pub(crate) envelope: Vec<u8>,
}

/// Why a relay operation was issued: what to do with its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Purpose {
    /// The receive queue of this connection.
    RcvQueue(u64),
    /// The head of this connection's outbox.
    Send(u64),
    /// Securing this connection's receive queue: its outbox waits for it.
    Secure(u64),
    /// Subscribe, ack, delete: nothing follows.
    Plain,
}

/// A relay operation in flight (the outbox of relay operations).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingOp {
    pub(crate) op: RelayOp,
    pub(crate) purpose: Purpose,
    pub(crate) attempts: u32,
    /// When to retry, after a temporary failure.
    pub(crate) retry_at: Option<u64>,
}

impl Group {
    /// Our own join is still in progress: we may not know every member yet.
    pub(crate) fn joining(&self) -> bool {
        self.join.as_ref().is_some_and(|j| !j.done)
    }
}

/// One member's record: what we know of it, and its integrity state (once
/// connected). Written only when one of them changed.
#[derive(Serialize)]
pub(crate) struct MemberRecOut<'a> {
    pub(crate) member: &'a Member,
    pub(crate) integrity: Option<&'a smp_groups_integrity::MemberState>,
}

/// [`MemberRecOut`] as read back.
#[derive(Deserialize)]
pub(crate) struct MemberRecIn {
    pub(crate) member: Member,
    pub(crate) integrity: Option<smp_groups_integrity::MemberState>,
}
