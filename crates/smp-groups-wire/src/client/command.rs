//! Commands a client sends to its agent.

use super::error::{ErrorCode, LineError};
use super::token::{Alias, CorrId, Cursor, Entity, EntityKind, InvitationText};
use super::writer::LineWriter;

/// A command from the client to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientCommand {
    /// `C:a NEW` (or `C: NEW`): create a pairwise connection; answered by `INV`.
    NewConn {
        /// The alias, or `None` for the agent to pick one.
        conn: Option<Alias>,
    },
    /// `C:a JOIN invitation`: join a connection; answered by `OK`, later `CON`.
    Join {
        /// The alias, or `None` for the agent to pick one.
        conn: Option<Alias>,
        /// The invitation from the other side's `INV`.
        invitation: InvitationText,
    },
    /// `C:a SEND msg`: send a message on a connection; answered by `SENT id`.
    Send {
        /// The connection.
        conn: Alias,
        /// The message.
        body: Vec<u8>,
    },
    /// `C:a ACK id`: the client has processed message `id`.
    Ack {
        /// The connection.
        conn: Alias,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `C:a DEL`: delete a connection.
    DelConn {
        /// The connection.
        conn: Alias,
    },
    /// `C:a INTRO G:g gInfo`: invite the peer of connection `a` to group `g`.
    Intro {
        /// The connection to the invitee.
        conn: Alias,
        /// The group.
        group: Alias,
        /// Group information for the invitee.
        info: Vec<u8>,
    },
    /// `G:g NEW gInfo` (or `G: NEW gInfo`): create a group.
    NewGroup {
        /// The alias, or `None` for the agent to pick one.
        group: Option<Alias>,
        /// Group information.
        info: Vec<u8>,
    },
    /// `G:g JOIN g:inv` (or `G: JOIN g:inv`): accept a group invitation.
    JoinGroup {
        /// The alias, or `None` for the agent to pick one.
        group: Option<Alias>,
        /// The invitation, as named by the `REQ` event.
        invitation: Alias,
    },
    /// `g:inv RJCT`: refuse a group invitation; answered by `g:inv OK`.
    Reject {
        /// The invitation, as named by the `REQ` event.
        invitation: Alias,
    },
    /// `G:g SEND msg`: send a message to the group.
    GroupSend {
        /// The group.
        group: Alias,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g DSEND C:a msg`: send a direct message to member `a` only, over
    /// the hidden connection with it; answered by `G:g DSENT id`.
    DirectSend {
        /// The group.
        group: Alias,
        /// The member, by its local alias.
        member: Alias,
        /// The message.
        body: Vec<u8>,
    },
    /// `G:g ACK id`: the client has processed group message `id` (or direct
    /// message `id`: the ids of one group are never shared).
    GroupAck {
        /// The group.
        group: Alias,
        /// The agent's id of the message.
        msg_id: u64,
    },
    /// `G:g LEAVE`: leave the group.
    Leave {
        /// The group.
        group: Alias,
    },
    /// `G:g REM C:a`: remove a member.
    Remove {
        /// The group.
        group: Alias,
        /// The member, by its local alias.
        member: Alias,
    },
    /// `G:g DEL`: delete the group.
    DelGroup {
        /// The group.
        group: Alias,
    },
    /// `G:g ALLOW reqId`: approve a pending membership change.
    Allow {
        /// The group.
        group: Alias,
        /// The request, from the `APPROVE` event.
        req_id: u64,
    },
    /// `G:g DENY reqId`: refuse a pending membership change.
    Deny {
        /// The group.
        group: Alias,
        /// The request, from the `APPROVE` event.
        req_id: u64,
    },
    /// `G: LIST`: every group; answered by `G: LIST rows`.
    ListGroups,
    /// `C: LIST`: every connection; answered by `C: LIST rows`.
    ListConns,
    /// `G: PENDING`: group invitations waiting for `JOIN` and membership
    /// changes waiting for `ALLOW`/`DENY`; answered by `G: PENDING rows`.
    Pending,
    /// `G:g MEMBERS`: the group's other members; answered by `G:g MEMBERS rows`.
    Members {
        /// The group.
        group: Alias,
    },
    /// `G:g STATUS`: the group's integrity state and its messages awaiting
    /// receipts; answered by `G:g STATUS rows`.
    Status {
        /// The group.
        group: Alias,
    },
    /// `G:g PROOF id [C:s]`: the signed receipts we hold for message `id`
    /// (the group-wide id) of member `s`, ours without it; answered by
    /// `G:g PROOF rows`.
    Proof {
        /// The group.
        group: Alias,
        /// The message's group-wide id (`S=` in `MSG`; for ours, `sent` in
        /// `MEMBERS`).
        msg_id: u64,
        /// Its sender, `None` for our own messages.
        sender: Option<Alias>,
    },
    /// `G:g CHECK`: send our integrity check to every member now; answered by `OK`.
    Check {
        /// The group.
        group: Alias,
    },
    /// `G:g INFO gInfo`: set the group's information for every member;
    /// answered by `OK`.
    SetInfo {
        /// The group.
        group: Alias,
        /// The new group information.
        info: Vec<u8>,
    },
    /// `G:g PROFILE profile`: set our own member profile in the group for
    /// every member; answered by `OK`.
    SetProfile {
        /// The group.
        group: Alias,
        /// The new profile.
        profile: Vec<u8>,
    },
}

impl ClientCommand {
    /// The entity the command is about.
    pub fn entity(&self) -> Entity {
        match self {
            Self::NewConn { conn } | Self::Join { conn, .. } => Entity::Conn(conn.clone()),
            Self::Send { conn, .. }
            | Self::Ack { conn, .. }
            | Self::DelConn { conn }
            | Self::Intro { conn, .. } => Entity::Conn(Some(conn.clone())),
            Self::NewGroup { group, .. } | Self::JoinGroup { group, .. } => {
                Entity::Group(group.clone())
            }
            Self::ListGroups | Self::Pending => Entity::Group(None),
            Self::ListConns => Entity::Conn(None),
            Self::Reject { invitation } => Entity::Invitation(invitation.clone()),
            Self::GroupSend { group, .. }
            | Self::DirectSend { group, .. }
            | Self::GroupAck { group, .. }
            | Self::Leave { group }
            | Self::Remove { group, .. }
            | Self::DelGroup { group }
            | Self::Allow { group, .. }
            | Self::Deny { group, .. }
            | Self::Members { group }
            | Self::Status { group }
            | Self::Proof { group, .. }
            | Self::Check { group }
            | Self::SetInfo { group, .. }
            | Self::SetProfile { group, .. } => Entity::Group(Some(group.clone())),
        }
    }

    /// The command word.
    pub fn word(&self) -> &'static str {
        match self {
            Self::NewConn { .. } | Self::NewGroup { .. } => "NEW",
            Self::Join { .. } | Self::JoinGroup { .. } => "JOIN",
            Self::Send { .. } | Self::GroupSend { .. } => "SEND",
            Self::Ack { .. } | Self::GroupAck { .. } => "ACK",
            Self::DelConn { .. } | Self::DelGroup { .. } => "DEL",
            Self::Intro { .. } => "INTRO",
            Self::DirectSend { .. } => "DSEND",
            Self::Leave { .. } => "LEAVE",
            Self::Remove { .. } => "REM",
            Self::Allow { .. } => "ALLOW",
            Self::Deny { .. } => "DENY",
            Self::ListGroups | Self::ListConns => "LIST",
            Self::Pending => "PENDING",
            Self::Members { .. } => "MEMBERS",
            Self::Status { .. } => "STATUS",
            Self::Proof { .. } => "PROOF",
            Self::Check { .. } => "CHECK",
            Self::Reject { .. } => "RJCT",
            Self::SetInfo { .. } => "INFO",
            Self::SetProfile { .. } => "PROFILE",
        }
    }

    /// How many tokens precede the payload of a command, if it has one.
    pub(crate) fn payload_index(kind: EntityKind, word: &[u8]) -> Option<usize> {
        match (kind, word) {
            (EntityKind::Conn, b"SEND")
            | (EntityKind::Group, b"NEW" | b"SEND" | b"INFO" | b"PROFILE") => Some(0),
            (EntityKind::Conn, b"INTRO") | (EntityKind::Group, b"DSEND") => Some(1),
            _ => None,
        }
    }

    /// Appends the transmission with `corr_id`, CRLF and block included.
    pub fn write(&self, corr_id: &CorrId, out: &mut Vec<u8>) {
        let w = LineWriter::start(out, corr_id, &self.entity(), self.word());
        let w = match self {
            Self::NewConn { .. }
            | Self::DelConn { .. }
            | Self::Leave { .. }
            | Self::DelGroup { .. }
            | Self::ListGroups
            | Self::ListConns
            | Self::Pending
            | Self::Members { .. }
            | Self::Status { .. }
            | Self::Check { .. }
            | Self::Reject { .. } => w,
            Self::Join { invitation, .. } => w.word(invitation.as_str()),
            Self::Send { body, .. } | Self::GroupSend { body, .. } => w.payload(body),
            Self::Ack { msg_id, .. } | Self::GroupAck { msg_id, .. } => w.number(*msg_id),
            Self::Intro { group, info, .. } => {
                w.entity(&Entity::Group(Some(group.clone()))).payload(info)
            }
            Self::NewGroup { info, .. } | Self::SetInfo { info, .. } => w.payload(info),
            Self::SetProfile { profile, .. } => w.payload(profile),
            Self::JoinGroup { invitation, .. } => w.entity(&Entity::Invitation(invitation.clone())),
            Self::Remove { member, .. } => w.conn(member),
            Self::DirectSend { member, body, .. } => w.conn(member).payload(body),
            Self::Allow { req_id, .. } | Self::Deny { req_id, .. } => w.number(*req_id),
            Self::Proof { msg_id, sender, .. } => w.number(*msg_id).opt_conn(sender.as_ref()),
        };
        w.finish();
    }

    /// Parses the command after `corrId SP entity SP`, given the entity.
    pub(crate) fn parse_body(entity: &Entity, c: &mut Cursor<'_>) -> Result<Self, LineError> {
        let word = c.token();
        let unknown = || {
            LineError::new(
                ErrorCode::UnknownCommand,
                format!(
                    "{} is not a command for {}",
                    String::from_utf8_lossy(word),
                    kind_name(entity.kind())
                ),
            )
        };
        let need = |a: &Option<Alias>| {
            a.clone()
                .ok_or_else(|| LineError::syntax("this command needs an alias"))
        };
        let none = |a: &Option<Alias>, cmd: Self| match a {
            None => Ok(cmd),
            Some(_) => Err(LineError::syntax("this command takes no alias")),
        };
        let cmd = match entity {
            Entity::Conn(conn) => match word {
                b"NEW" => Self::NewConn { conn: conn.clone() },
                b"JOIN" => Self::Join {
                    conn: conn.clone(),
                    invitation: InvitationText::new(c.required("invitation")?)?,
                },
                b"SEND" => Self::Send {
                    conn: need(conn)?,
                    body: c.payload()?,
                },
                b"ACK" => Self::Ack {
                    conn: need(conn)?,
                    msg_id: c.number("message id")?,
                },
                b"DEL" => Self::DelConn { conn: need(conn)? },
                b"INTRO" => Self::Intro {
                    conn: need(conn)?,
                    group: c.group()?,
                    info: c.payload()?,
                },
                b"LIST" => none(conn, Self::ListConns)?,
                _ => return Err(unknown()),
            },
            Entity::Group(group) => match word {
                b"NEW" => Self::NewGroup {
                    group: group.clone(),
                    info: c.payload()?,
                },
                b"JOIN" => Self::JoinGroup {
                    group: group.clone(),
                    invitation: c.invitation()?,
                },
                b"SEND" => Self::GroupSend {
                    group: need(group)?,
                    body: c.payload()?,
                },
                b"DSEND" => Self::DirectSend {
                    group: need(group)?,
                    member: c.conn()?,
                    body: c.payload()?,
                },
                b"ACK" => Self::GroupAck {
                    group: need(group)?,
                    msg_id: c.number("message id")?,
                },
                b"LEAVE" => Self::Leave {
                    group: need(group)?,
                },
                b"REM" => Self::Remove {
                    group: need(group)?,
                    member: c.conn()?,
                },
                b"DEL" => Self::DelGroup {
                    group: need(group)?,
                },
                b"ALLOW" => Self::Allow {
                    group: need(group)?,
                    req_id: c.number("request id")?,
                },
                b"DENY" => Self::Deny {
                    group: need(group)?,
                    req_id: c.number("request id")?,
                },
                b"LIST" => none(group, Self::ListGroups)?,
                b"PENDING" => none(group, Self::Pending)?,
                b"MEMBERS" => Self::Members {
                    group: need(group)?,
                },
                b"STATUS" => Self::Status {
                    group: need(group)?,
                },
                b"CHECK" => Self::Check {
                    group: need(group)?,
                },
                b"PROOF" => Self::Proof {
                    group: need(group)?,
                    msg_id: c.number("message id")?,
                    sender: c.opt_conn()?,
                },
                b"INFO" => Self::SetInfo {
                    group: need(group)?,
                    info: c.payload()?,
                },
                b"PROFILE" => Self::SetProfile {
                    group: need(group)?,
                    profile: c.payload()?,
                },
                _ => return Err(unknown()),
            },
            Entity::Invitation(invitation) => match word {
                b"RJCT" => Self::Reject {
                    invitation: invitation.clone(),
                },
                _ => return Err(unknown()),
            },
            Entity::None => return Err(unknown()),
        };
        c.end()?;
        Ok(cmd)
    }
}

pub(crate) fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::None => "an empty entity",
        EntityKind::Conn => "a connection",
        EntityKind::Group => "a group",
        EntityKind::Invitation => "an invitation",
    }
}
