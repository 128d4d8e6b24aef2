//! Responses and events the agent sends to its client.

use super::command::kind_name;
use super::error::{ErrorCode, LineError};
use super::meta::MsgMeta;
use super::rows::{Row, encode_rows, parse_rows};
use super::token::{Alias, CorrId, Cursor, Entity, EntityKind, InvitationText, MAX_DETAIL_LEN};
use super::writer::LineWriter;

/// The delivery status in `RCVD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RcvdStatus {
    /// `ok`: delivered, and the receiver's hash (and signature, if any) match.
    Ok,
    /// `bad_hash`: the receiver reported a different hash of the message.
    BadHash,
    /// `bad_sig`: the receipt's signature did not verify.
    BadSig,
}

impl RcvdStatus {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::BadHash => "bad_hash",
            Self::BadSig => "bad_sig",
        }
    }

    fn parse(t: &[u8]) -> Result<Self, LineError> {
        match t {
            b"ok" => Ok(Self::Ok),
            b"bad_hash" => Ok(Self::BadHash),
            b"bad_sig" => Ok(Self::BadSig),
            _ => Err(LineError::syntax("status must be ok, bad_hash or bad_sig")),
        }
    }
}

/// The kind of integrity violation in `VIOLATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// `hash`: members hold different content for the same message id of the
    /// sender (equivocation).
    Hash,
    /// `gap`: messages from the sender are missing and were not reconciled by the
    /// next integrity check.
    Gap,
    /// `sig`: a signature by the member did not verify.
    Sig,
    /// `members`: the member's list of the group's members differs from
    /// ours at a stable point, in two of its checks (the id is the number of
    /// members in its list).
    Members,
}

impl ViolationKind {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Gap => "gap",
            Self::Sig => "sig",
            Self::Members => "members",
        }
    }

    fn parse(t: &[u8]) -> Result<Self, LineError> {
        match t {
            b"hash" => Ok(Self::Hash),
            b"gap" => Ok(Self::Gap),
            b"sig" => Ok(Self::Sig),
            b"members" => Ok(Self::Members),
            _ => Err(LineError::syntax(
                "violation must be hash, gap, sig or members",
            )),
        }
    }
}

/// Who is at fault in `FAULT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultSource {
    /// `peer`: the other end of the connection (or the member).
    Peer,
    /// `relay`: the relay.
    Relay,
    /// `local`: this agent.
    Local,
}

impl FaultSource {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Relay => "relay",
            Self::Local => "local",
        }
    }

    fn parse(t: &[u8]) -> Result<Self, LineError> {
        match t {
            b"peer" => Ok(Self::Peer),
            b"relay" => Ok(Self::Relay),
            b"local" => Ok(Self::Local),
            _ => Err(LineError::syntax(
                "fault source must be peer, relay or local",
            )),
        }
    }
}

/// What cannot make progress, in `FAULT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// `peer_queue_gone`: the peer's queue is gone; nothing more can be sent.
    PeerQueueGone,
    /// `queue_refused`: the relay refused to create our queue; the connection
    /// cannot be established.
    QueueRefused,
    /// `queue_gone`: our queue is gone at the relay; nothing more arrives.
    QueueGone,
    /// `bad_confirmation`: a confirmation could not be processed (the
    /// invitation stays open).
    BadConfirmation,
    /// `undecryptable`: several messages in a row could not be decrypted.
    Undecryptable,
    /// `internal`: one of the agent's own steps failed; the connection's
    /// outgoing messages cannot move.
    Internal,
    /// `send_refused`: the relay refused a send for a reason of its own (too
    /// large for it, blocked); the peer is not known to be gone, and the send
    /// is retried at the longest interval.
    SendRefused,
}

impl FaultKind {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PeerQueueGone => "peer_queue_gone",
            Self::QueueRefused => "queue_refused",
            Self::QueueGone => "queue_gone",
            Self::BadConfirmation => "bad_confirmation",
            Self::Undecryptable => "undecryptable",
            Self::Internal => "internal",
            Self::SendRefused => "send_refused",
        }
    }

    fn parse(t: &[u8]) -> Result<Self, LineError> {
        match t {
            b"peer_queue_gone" => Ok(Self::PeerQueueGone),
            b"queue_refused" => Ok(Self::QueueRefused),
            b"queue_gone" => Ok(Self::QueueGone),
            b"bad_confirmation" => Ok(Self::BadConfirmation),
            b"undecryptable" => Ok(Self::Undecryptable),
            b"internal" => Ok(Self::Internal),
            b"send_refused" => Ok(Self::SendRefused),
            _ => Err(LineError::syntax("unknown fault kind")),
        }
    }
}

/// A membership change waiting for the client's `ALLOW` or `DENY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Approval {
    /// `ADD C:by info`: member `by` introduces a new member described by `info`
    /// (the agent sends the new member's id, base64url).
    Add {
        /// The member making the change.
        by: Alias,
        /// What describes the new member (the agent: its member id, base64url).
        info: Vec<u8>,
    },
    /// `REM C:by C:member`: member `by` removes `member`.
    Remove {
        /// The member making the change.
        by: Alias,
        /// The member being removed.
        member: Alias,
    },
}

/// The question a [`AgentEvent::Rows`] answer answers: its word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RowsKind {
    /// `LIST` (on `G:` every group, on `C:` every connection).
    List,
    /// `PENDING`: invitations and approvals waiting for the client.
    Pending,
    /// `MEMBERS`: a group's members.
    Members,
    /// `STATUS`: a group's integrity state and sends awaiting receipts.
    Status,
    /// `PROOF`: the signed receipts held for one group message.
    Proof,
}

impl RowsKind {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "LIST",
            Self::Pending => "PENDING",
            Self::Members => "MEMBERS",
            Self::Status => "STATUS",
            Self::Proof => "PROOF",
        }
    }

    fn parse(word: &[u8]) -> Option<Self> {
        match word {
            b"LIST" => Some(Self::List),
            b"PENDING" => Some(Self::Pending),
            b"MEMBERS" => Some(Self::Members),
            b"STATUS" => Some(Self::Status),
            b"PROOF" => Some(Self::Proof),
            _ => None,
        }
    }
}

/// A response or event from the agent to the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentEvent {
    /// `OK`: the command succeeded (the entity carries an alias the agent picked).
    Ok {
        /// The entity.
        entity: Entity,
    },
    /// `ERR CODE [detail]`: the command failed or the line was rejected.
    Error {
        /// The entity, or [`Entity::None`] if it could not be read.
        entity: Entity,
        /// The code.
        code: ErrorCode,
        /// A human-readable detail (printable, no CR or LF; the encoder replaces
        /// control characters with `?`).
        detail: Option<String>,
    },
    /// `C:a INV invitation`: the invitation for a new connection.
    Inv {
        /// The connection.
        conn: Alias,
        /// The invitation for the other side's `JOIN`.
        invitation: InvitationText,
    },
    /// `C:a CON`: the connection is established.
    Con {
        /// The connection.
        conn: Alias,
    },
    /// `C:a SENT id`: the message was sent.
    Sent {
        /// The connection.
        conn: Alias,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `C:a MSG integrity R=id,time B=id,time S=id,time msg`: a message was
    /// received.
    Msg {
        /// The connection.
        conn: Alias,
        /// The agent's id of the message, for `ACK` (`R=`).
        msg_id: u64,
        /// Its integrity, and the ids and times of the relay and the sender.
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `C:a RCVD id status`: the peer received message `id`.
    Rcvd {
        /// The connection.
        conn: Alias,
        /// The agent's id of the message.
        msg_id: u64,
        /// The delivery status.
        status: RcvdStatus,
    },
    /// `C:a FAULT source kind`: the connection cannot make progress.
    Fault {
        /// The connection.
        conn: Alias,
        /// Who is at fault.
        source: FaultSource,
        /// What cannot make progress.
        kind: FaultKind,
    },
    /// `C:a REQ g:inv gInfo`: the peer invites us to a group.
    Req {
        /// The connection the invitation came on.
        conn: Alias,
        /// The invitation's alias, for `JOIN`.
        invitation: Alias,
        /// Group information.
        info: Vec<u8>,
    },
    /// `G:g CON C:a`: connected to a member.
    GroupCon {
        /// The group.
        group: Alias,
        /// The member.
        member: Alias,
    },
    /// `G:g MEM [C:a]`: the member (or we, without an alias) is connected to all members.
    GroupMem {
        /// The group.
        group: Alias,
        /// The member, or `None` for ourselves.
        member: Option<Alias>,
    },
    /// `G:g SENT C:a id`: a group message was sent to one member.
    GroupSentTo {
        /// The group.
        group: Alias,
        /// The member.
        member: Alias,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `G:g SENT id`: a group message was sent to all members.
    GroupSent {
        /// The group.
        group: Alias,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `G:g MSG C:a integrity R=id,time B=id,time S=extMsgId,time msg`: a
    /// group message from a member.
    GroupMsg {
        /// The group.
        group: Alias,
        /// The sender.
        member: Alias,
        /// The agent's id of the message, for `ACK` (`R=`).
        msg_id: u64,
        /// Its integrity in the sender's group chain, and the ids and times of
        /// the relay and the sender (whose id is the group-wide `extMsgId`).
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g RCVD [C:a] id status`: a member (or, without an alias, every member)
    /// received our group message.
    GroupRcvd {
        /// The group.
        group: Alias,
        /// The member, or `None` for all.
        member: Option<Alias>,
        /// The agent's id of the message.
        msg_id: u64,
        /// The delivery status.
        status: RcvdStatus,
    },
    /// `G:g DSENT [C:a] id`: without an alias, the answer to `DSEND` (the
    /// direct message is queued under `id`); with one, the relay took it
    /// for member `a`.
    DirectSent {
        /// The group.
        group: Alias,
        /// The member, or `None` in the answer to `DSEND`.
        member: Option<Alias>,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `G:g DMSG C:a integrity R=id,time B=id,time S=dMsgId,time msg`: a
    /// direct message from member `a` to us only.
    DirectMsg {
        /// The group.
        group: Alias,
        /// The sender.
        member: Alias,
        /// The agent's id of the message, for `ACK` (`R=`).
        msg_id: u64,
        /// Its integrity in the pair's own ordering of direct messages, and
        /// the ids and times of the relay and the sender (whose id counts
        /// its direct messages to us).
        meta: MsgMeta,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g DRCVD C:a id status`: member `a` received our direct message.
    DirectRcvd {
        /// The group.
        group: Alias,
        /// The member.
        member: Alias,
        /// The agent's id of the message.
        msg_id: u64,
        /// The delivery status (`ok` or `bad_hash`).
        status: RcvdStatus,
    },
    /// `G:g DFAIL C:a id reason`: our direct message to member `a` will not
    /// be delivered or confirmed: the member left or was removed, or the
    /// group ended, first.
    DirectFailed {
        /// The group.
        group: Alias,
        /// The member.
        member: Alias,
        /// The agent's id of the message.
        msg_id: u64,
        /// How far it got.
        reason: DirectFailure,
    },
    /// `G:g LEFT [C:a]`: the member left (or, without an alias, we left).
    Left {
        /// The group.
        group: Alias,
        /// The member, or `None` for ourselves.
        member: Option<Alias>,
    },
    /// `G:g REMD C:a [C:b]`: member `a` was removed by `b` (or by us).
    Removed {
        /// The group.
        group: Alias,
        /// The removed member.
        member: Alias,
        /// Who removed it, or `None` for ourselves.
        by: Option<Alias>,
    },
    /// `G:g OUT C:a`: we were removed by member `a`.
    Out {
        /// The group.
        group: Alias,
        /// Who removed us.
        by: Alias,
    },
    /// `G:g EMPTY`: every other member left.
    Empty {
        /// The group.
        group: Alias,
    },
    /// `G:g DELD [C:a]`: the group was deleted by member `a` (or, confirmed, by us).
    Deleted {
        /// The group.
        group: Alias,
        /// Who deleted it, or `None` for ourselves.
        by: Option<Alias>,
    },
    /// `G:g APPROVE reqId change`: a membership change needs the client's decision.
    Approve {
        /// The group.
        group: Alias,
        /// The request, for `ALLOW` / `DENY`.
        req_id: u64,
        /// The change.
        change: Approval,
    },
    /// `G:g VIOLATION C:a kind id [C:b]`: an integrity violation by member `a` at
    /// its message `id`, found by us or reported by member `b`.
    Violation {
        /// The group.
        group: Alias,
        /// The member at fault.
        member: Alias,
        /// What was violated.
        kind: ViolationKind,
        /// The member's group-wide message id concerned.
        msg_id: u64,
        /// The member who reported it, or `None` if we found it.
        reporter: Option<Alias>,
    },
    /// `G:g FAULT source kind [C:a]`: the connection with member `a` (or,
    /// without an alias, something of the group's) cannot make progress.
    GroupFault {
        /// The group.
        group: Alias,
        /// The member, if the fault concerns the connection with one.
        member: Option<Alias>,
        /// Who is at fault.
        source: FaultSource,
        /// What cannot make progress.
        kind: FaultKind,
    },
    /// `G:g INFO C:a gInfo`: the group's information, as member `a` set it,
    /// replaced the one we had.
    GroupInfo {
        /// The group.
        group: Alias,
        /// The member who set it.
        member: Alias,
        /// The group information.
        info: Vec<u8>,
    },
    /// `G:g PROFILE C:a profile`: member `a`'s profile in the group, when we
    /// first learn it (with `CON`, if not empty) and when it changes.
    Profile {
        /// The group.
        group: Alias,
        /// The member.
        member: Alias,
        /// Its profile.
        profile: Vec<u8>,
    },
    /// `entity WORD length` and a block of rows: the answer to a status query
    /// (`LIST`, `PENDING`, `MEMBERS`, `STATUS`), one record per line. Always
    /// written in the length form, the block empty when there are no rows.
    Rows {
        /// The query's entity (`G:`, `C:` or `G:g`).
        entity: Entity,
        /// The query.
        kind: RowsKind,
        /// The records.
        rows: Vec<Row>,
    },
}

impl AgentEvent {
    /// The entity the event is about.
    pub fn entity(&self) -> Entity {
        match self {
            Self::Ok { entity } | Self::Error { entity, .. } | Self::Rows { entity, .. } => {
                entity.clone()
            }
            Self::Inv { conn, .. }
            | Self::Con { conn }
            | Self::Sent { conn, .. }
            | Self::Msg { conn, .. }
            | Self::Rcvd { conn, .. }
            | Self::Fault { conn, .. }
            | Self::Req { conn, .. } => Entity::Conn(Some(conn.clone())),
            Self::GroupCon { group, .. }
            | Self::GroupMem { group, .. }
            | Self::GroupSentTo { group, .. }
            | Self::GroupSent { group, .. }
            | Self::GroupMsg { group, .. }
            | Self::GroupRcvd { group, .. }
            | Self::DirectSent { group, .. }
            | Self::DirectMsg { group, .. }
            | Self::DirectRcvd { group, .. }
            | Self::DirectFailed { group, .. }
            | Self::Left { group, .. }
            | Self::Removed { group, .. }
            | Self::Out { group, .. }
            | Self::Empty { group }
            | Self::Deleted { group, .. }
            | Self::Approve { group, .. }
            | Self::Violation { group, .. }
            | Self::GroupFault { group, .. }
            | Self::GroupInfo { group, .. }
            | Self::Profile { group, .. } => Entity::Group(Some(group.clone())),
        }
    }

    /// The event word.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "OK",
            Self::Error { .. } => "ERR",
            Self::Inv { .. } => "INV",
            Self::Con { .. } | Self::GroupCon { .. } => "CON",
            Self::Sent { .. } | Self::GroupSentTo { .. } | Self::GroupSent { .. } => "SENT",
            Self::Msg { .. } | Self::GroupMsg { .. } => "MSG",
            Self::Rcvd { .. } | Self::GroupRcvd { .. } => "RCVD",
            Self::Req { .. } => "REQ",
            Self::DirectSent { .. } => "DSENT",
            Self::DirectMsg { .. } => "DMSG",
            Self::DirectRcvd { .. } => "DRCVD",
            Self::DirectFailed { .. } => "DFAIL",
            Self::GroupMem { .. } => "MEM",
            Self::Left { .. } => "LEFT",
            Self::Removed { .. } => "REMD",
            Self::Out { .. } => "OUT",
            Self::Empty { .. } => "EMPTY",
            Self::Deleted { .. } => "DELD",
            Self::Approve { .. } => "APPROVE",
            Self::Violation { .. } => "VIOLATION",
            Self::Fault { .. } | Self::GroupFault { .. } => "FAULT",
            Self::Rows { kind, .. } => kind.as_str(),
            Self::GroupInfo { .. } => "INFO",
            Self::Profile { .. } => "PROFILE",
        }
    }

    /// How many tokens precede the payload of an event, if it has one. `args` is
    /// the line after the word, for events whose shape depends on an argument.
    pub(crate) fn payload_index(kind: EntityKind, word: &[u8], args: &[u8]) -> Option<usize> {
        match (kind, word) {
            (EntityKind::Conn, b"REQ") | (EntityKind::Group, b"INFO" | b"PROFILE") => Some(1),
            (EntityKind::Conn, b"MSG") => Some(MsgMeta::token_count(args)),
            (EntityKind::Group, b"MSG" | b"DMSG") => {
                let mut c = Cursor::new(args, None);
                c.token();
                Some(1 + MsgMeta::token_count(c.rest()))
            }
            (EntityKind::Conn, b"LIST")
            | (EntityKind::Group, b"LIST" | b"PENDING" | b"MEMBERS" | b"STATUS" | b"PROOF") => {
                Some(0)
            }
            (EntityKind::Group, b"APPROVE") => {
                let mut c = Cursor::new(args, None);
                c.token();
                (c.token() == b"ADD").then_some(3)
            }
            _ => None,
        }
    }

    /// Appends the transmission with `corr_id`, CRLF and block included.
    pub fn write(&self, corr_id: &CorrId, out: &mut Vec<u8>) {
        let block;
        let w = LineWriter::start(out, corr_id, &self.entity(), self.word());
        let w = match self {
            Self::Rows { rows, .. } => {
                block = encode_rows(rows);
                w.block(&block)
            }
            Self::Ok { .. } | Self::Con { .. } | Self::Empty { .. } => w,
            Self::Error { code, detail, .. } => {
                let w = w.word(code.as_str());
                match detail {
                    Some(d) => w.word(&sanitize(d)),
                    None => w,
                }
            }
            Self::Inv { invitation, .. } => w.word(invitation.as_str()),
            Self::Sent { msg_id, .. } | Self::GroupSent { msg_id, .. } => w.number(*msg_id),
            Self::Msg {
                msg_id, meta, body, ..
            } => meta.write(*msg_id, w).payload(body),
            Self::Rcvd { msg_id, status, .. } => w.number(*msg_id).word(status.as_str()),
            Self::Req {
                invitation, info, ..
            } => w
                .entity(&Entity::Invitation(invitation.clone()))
                .payload(info),
            Self::GroupCon { member, .. } => w.conn(member),
            Self::GroupMem { member, .. } | Self::Left { member, .. } => {
                w.opt_conn(member.as_ref())
            }
            Self::GroupSentTo { member, msg_id, .. } => w.conn(member).number(*msg_id),
            Self::GroupMsg {
                member,
                msg_id,
                meta,
                body,
                ..
            }
            | Self::DirectMsg {
                member,
                msg_id,
                meta,
                body,
                ..
            } => meta.write(*msg_id, w.conn(member)).payload(body),
            Self::GroupRcvd {
                member,
                msg_id,
                status,
                ..
            } => w
                .opt_conn(member.as_ref())
                .number(*msg_id)
                .word(status.as_str()),
            Self::DirectSent { member, msg_id, .. } => w.opt_conn(member.as_ref()).number(*msg_id),
            Self::DirectRcvd {
                member,
                msg_id,
                status,
                ..
            } => w.conn(member).number(*msg_id).word(status.as_str()),
            Self::DirectFailed {
                member,
                msg_id,
                reason,
                ..
            } => w.conn(member).number(*msg_id).word(reason.as_str()),
            Self::Removed { member, by, .. } => w.conn(member).opt_conn(by.as_ref()),
            Self::Out { by, .. } => w.conn(by),
            Self::GroupInfo { member, info, .. } => w.conn(member).payload(info),
            Self::Profile {
                member, profile, ..
            } => w.conn(member).payload(profile),
            Self::Deleted { by, .. } => w.opt_conn(by.as_ref()),
            Self::Approve { req_id, change, .. } => {
                let w = w.number(*req_id);
                match change {
                    Approval::Add { by, info } => w.word("ADD").conn(by).payload(info),
                    Approval::Remove { by, member } => w.word("REM").conn(by).conn(member),
                }
            }
            Self::Violation {
                member,
                kind,
                msg_id,
                reporter,
                ..
            } => w
                .conn(member)
                .word(kind.as_str())
                .number(*msg_id)
                .opt_conn(reporter.as_ref()),
            Self::Fault { source, kind, .. } => w.word(source.as_str()).word(kind.as_str()),
            Self::GroupFault {
                member,
                source,
                kind,
                ..
            } => w
                .word(source.as_str())
                .word(kind.as_str())
                .opt_conn(member.as_ref()),
        };
        w.finish();
    }

    /// Parses the event after `corrId SP entity SP`, given the entity.
    pub(crate) fn parse_body(entity: &Entity, c: &mut Cursor<'_>) -> Result<Self, LineError> {
        let word = c.token();
        let unknown = || {
            LineError::new(
                ErrorCode::UnknownCommand,
                format!(
                    "{} is not an event for {}",
                    String::from_utf8_lossy(word),
                    kind_name(entity.kind())
                ),
            )
        };
        match word {
            b"OK" => {
                c.end()?;
                return Ok(Self::Ok {
                    entity: entity.clone(),
                });
            }
            b"ERR" => {
                let code = c.required("error code")?;
                let code = ErrorCode::parse(code)
                    .ok_or_else(|| LineError::syntax("unknown error code"))?;
                let detail = c.rest();
                if detail.len() > MAX_DETAIL_LEN {
                    return Err(LineError::new(ErrorCode::Large, "error detail too long"));
                }
                if detail.iter().any(|b| !(0x20..0x7f).contains(b)) {
                    return Err(LineError::syntax("error detail must be printable ASCII"));
                }
                let detail =
                    (!detail.is_empty()).then(|| String::from_utf8_lossy(detail).into_owned());
                return Ok(Self::Error {
                    entity: entity.clone(),
                    code,
                    detail,
                });
            }
            _ => {}
        }
        if let Some(kind) = RowsKind::parse(word) {
            let known = matches!(
                (entity, kind),
                (Entity::Conn(None), RowsKind::List)
                    | (Entity::Group(None), RowsKind::List | RowsKind::Pending)
                    | (
                        Entity::Group(Some(_)),
                        RowsKind::Members | RowsKind::Status | RowsKind::Proof
                    )
            );
            if !known {
                return Err(unknown());
            }
            let rows = parse_rows(&c.payload()?)?;
            c.end()?;
            return Ok(Self::Rows {
                entity: entity.clone(),
                kind,
                rows,
            });
        }
        let need = |a: &Option<Alias>| {
            a.clone()
                .ok_or_else(|| LineError::syntax("this event needs an alias"))
        };
        let ev = match entity {
            Entity::Conn(conn) => {
                let conn = need(conn)?;
                match word {
                    b"INV" => Self::Inv {
                        conn,
                        invitation: InvitationText::new(c.required("invitation")?)?,
                    },
                    b"CON" => Self::Con { conn },
                    b"SENT" => Self::Sent {
                        conn,
                        msg_id: c.number("message id")?,
                    },
                    b"MSG" => {
                        let (msg_id, meta) = MsgMeta::parse(c)?;
                        Self::Msg {
                            conn,
                            msg_id,
                            meta,
                            body: c.payload()?,
                        }
                    }
                    b"RCVD" => Self::Rcvd {
                        conn,
                        msg_id: c.number("message id")?,
                        status: RcvdStatus::parse(c.required("status")?)?,
                    },
                    b"REQ" => Self::Req {
                        conn,
                        invitation: c.invitation()?,
                        info: c.payload()?,
                    },
                    b"FAULT" => Self::Fault {
                        conn,
                        source: FaultSource::parse(c.required("fault source")?)?,
                        kind: FaultKind::parse(c.required("fault kind")?)?,
                    },
                    _ => return Err(unknown()),
                }
            }
            Entity::Group(group) => {
                let group = need(group)?;
                Self::parse_group(group, word, c).ok_or_else(unknown)??
            }
            Entity::Invitation(_) | Entity::None => return Err(unknown()),
        };
        c.end()?;
        Ok(ev)
    }

    fn parse_group(
        group: Alias,
        word: &[u8],
        c: &mut Cursor<'_>,
    ) -> Option<Result<Self, LineError>> {
        let parse = |c: &mut Cursor<'_>| -> Result<Self, LineError> {
            Ok(match word {
                b"CON" => Self::GroupCon {
                    group,
                    member: c.conn()?,
                },
                b"MEM" => Self::GroupMem {
                    group,
                    member: c.opt_conn()?,
                },
                b"SENT" => {
                    // `SENT C:a id` or `SENT id`.
                    let mut probe = c.clone();
                    if probe.token().starts_with(b"C:") {
                        Self::GroupSentTo {
                            group,
                            member: c.conn()?,
                            msg_id: c.number("message id")?,
                        }
                    } else {
                        Self::GroupSent {
                            group,
                            msg_id: c.number("message id")?,
                        }
                    }
                }
                b"MSG" => {
                    let member = c.conn()?;
                    let (msg_id, meta) = MsgMeta::parse(c)?;
                    Self::GroupMsg {
                        group,
                        member,
                        msg_id,
                        meta,
                        body: c.payload()?,
                    }
                }
                b"RCVD" => {
                    let mut probe = c.clone();
                    let member = if probe.token().starts_with(b"C:") {
                        Some(c.conn()?)
                    } else {
                        None
                    };
                    Self::GroupRcvd {
                        group,
                        member,
                        msg_id: c.number("message id")?,
                        status: RcvdStatus::parse(c.required("status")?)?,
                    }
                }
                b"DSENT" => {
                    let mut probe = c.clone();
                    let member = if probe.token().starts_with(b"C:") {
                        Some(c.conn()?)
                    } else {
                        None
                    };
                    Self::DirectSent {
                        group,
                        member,
                        msg_id: c.number("message id")?,
                    }
                }
                b"DMSG" => {
                    let member = c.conn()?;
                    let (msg_id, meta) = MsgMeta::parse(c)?;
                    Self::DirectMsg {
                        group,
                        member,
                        msg_id,
                        meta,
                        body: c.payload()?,
                    }
                }
                b"DRCVD" => Self::DirectRcvd {
                    group,
                    member: c.conn()?,
                    msg_id: c.number("message id")?,
                    status: RcvdStatus::parse(c.required("status")?)?,
                },
                b"DFAIL" => Self::DirectFailed {
                    group,
                    member: c.conn()?,
                    msg_id: c.number("message id")?,
                    reason: DirectFailure::parse(c.required("reason")?)?,
                },
                b"LEFT" => Self::Left {
                    group,
                    member: c.opt_conn()?,
                },
                b"REMD" => Self::Removed {
                    group,
                    member: c.conn()?,
                    by: c.opt_conn()?,
                },
                b"OUT" => Self::Out {
                    group,
                    by: c.conn()?,
                },
                b"EMPTY" => Self::Empty { group },
                b"INFO" => Self::GroupInfo {
                    group,
                    member: c.conn()?,
                    info: c.payload()?,
                },
                b"PROFILE" => Self::Profile {
                    group,
                    member: c.conn()?,
                    profile: c.payload()?,
                },
                b"DELD" => Self::Deleted {
                    group,
                    by: c.opt_conn()?,
                },
                b"APPROVE" => {
                    let req_id = c.number("request id")?;
                    let change = match c.required("change")? {
                        b"ADD" => Approval::Add {
                            by: c.conn()?,
                            info: c.payload()?,
                        },
                        b"REM" => Approval::Remove {
                            by: c.conn()?,
                            member: c.conn()?,
                        },
                        _ => return Err(LineError::syntax("change must be ADD or REM")),
                    };
                    Self::Approve {
                        group,
                        req_id,
                        change,
                    }
                }
                b"FAULT" => Self::GroupFault {
                    group,
                    source: FaultSource::parse(c.required("fault source")?)?,
                    kind: FaultKind::parse(c.required("fault kind")?)?,
                    member: c.opt_conn()?,
                },
                _ => Self::Violation {
                    group,
                    member: c.conn()?,
                    kind: ViolationKind::parse(c.required("violation")?)?,
                    msg_id: c.number("message id")?,
                    reporter: c.opt_conn()?,
                },
            })
        };
        let known = matches!(
            word,
            b"CON"
                | b"MEM"
                | b"SENT"
                | b"MSG"
                | b"RCVD"
                | b"DSENT"
                | b"DMSG"
                | b"DRCVD"
                | b"DFAIL"
                | b"LEFT"
                | b"REMD"
                | b"OUT"
                | b"EMPTY"
                | b"DELD"
                | b"APPROVE"
                | b"VIOLATION"
                | b"FAULT"
                | b"INFO"
                | b"PROFILE"
        );
        known.then(|| parse(c))
    }
}

/// How far a direct message got before its member or group went (`DFAIL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectFailure {
    /// `unsent`: the relay never took it.
    Unsent,
    /// `unconfirmed`: the relay took it, and no receipt will come.
    Unconfirmed,
}

impl DirectFailure {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsent => "unsent",
            Self::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(t: &[u8]) -> Result<Self, LineError> {
        match t {
            b"unsent" => Ok(Self::Unsent),
            b"unconfirmed" => Ok(Self::Unconfirmed),
            _ => Err(LineError::syntax("reason must be unsent or unconfirmed")),
        }
    }
}

/// Replaces anything but printable ASCII with `?` and bounds the length, so a
/// detail never breaks the line.
fn sanitize(detail: &str) -> String {
    detail
        .chars()
        .take(MAX_DETAIL_LEN)
        .map(|ch| if (' '..='~').contains(&ch) { ch } else { '?' })
        .collect()
}
