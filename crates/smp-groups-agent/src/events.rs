//! The client protocol's view of the core: core events as [`AgentEvent`]s,
//! client commands as core [`Command`]s, members named by aliases.
//!
//! A group member appears to the client as `C:alias`, where the alias is the
//! base64url form (no padding) of its group member id, so `REM C:alias` names
//! the member directly. Invitations to connections travel as base64url text.

use smp_groups_core::{
    Change, Command, CommandError, DirectFailure, Event, FaultKind, FaultSource, FaultTarget,
    MsgIntegrity, MsgMeta, ReceiptStatus,
};
use smp_groups_integrity::{Violation, ViolationKind as Kind};
use smp_groups_wire::agent::MemberId;
use smp_groups_wire::base64url;
use smp_groups_wire::client::FaultSource as TextFaultSource;
use smp_groups_wire::client::{
    AgentEvent, Alias, Approval, ClientCommand, Entity, ErrorCode, InvitationText, RcvdStatus,
    ViolationKind,
};
use smp_groups_wire::client::{DirectFailure as TextDirectFailure, FaultKind as TextFaultKind};
use smp_groups_wire::client::{MsgIntegrity as TextIntegrity, MsgMeta as TextMeta};

/// The alias a member has in client events.
pub(crate) fn member_alias(member: &MemberId) -> Option<Alias> {
    Alias::new(member.to_base64url()).ok()
}

/// The member named by a client alias.
pub(crate) fn member_of(alias: &Alias) -> Option<MemberId> {
    MemberId::from_base64url(alias.as_str().as_bytes()).ok()
}

fn alias(text: &str) -> Option<Alias> {
    Alias::new(text).ok()
}

/// The error code of a failed command.
pub(crate) fn error_code(e: &CommandError) -> ErrorCode {
    match e {
        CommandError::NoConn(_)
        | CommandError::NoGroup(_)
        | CommandError::NoInvitation(_)
        | CommandError::NoMember(_)
        | CommandError::NoId(_) => ErrorCode::UnknownEntity,
        CommandError::Duplicate(_) => ErrorCode::Duplicate,
        CommandError::TooLarge { .. } => ErrorCode::Large,
        CommandError::State(_) | CommandError::MemberNotReady(_) | CommandError::MemberGone(_) => {
            ErrorCode::Prohibited
        }
        CommandError::BadInvitation(_) | CommandError::BadAlias { .. } => ErrorCode::Syntax,
        _ => ErrorCode::Internal,
    }
}

/// An error event on `entity`.
pub(crate) fn error_event(entity: Entity, code: ErrorCode, detail: &str) -> AgentEvent {
    let detail: String = detail
        .chars()
        .filter(|c| (' '..='~').contains(c))
        .take(1024)
        .collect();
    AgentEvent::Error {
        entity,
        code,
        detail: (!detail.is_empty()).then_some(detail),
    }
}

/// The response to a command on `entity` (the command's entity, with the alias
/// the agent picked when the command left it empty).
pub(crate) fn response(entity: &Entity, event: &Event) -> AgentEvent {
    let is_group = matches!(entity, Entity::Group(_));
    match event {
        Event::Ok { alias: a } => match alias(a) {
            Some(a) if matches!(entity, Entity::Invitation(_)) => AgentEvent::Ok {
                entity: Entity::Invitation(a),
            },
            Some(a) if is_group => AgentEvent::Ok {
                entity: Entity::Group(Some(a)),
            },
            Some(a) => AgentEvent::Ok {
                entity: Entity::Conn(Some(a)),
            },
            None => AgentEvent::Ok {
                entity: entity.clone(),
            },
        },
        Event::Queued { alias: a, msg_id } => match alias(a) {
            Some(a) if is_group => AgentEvent::GroupSent {
                group: a,
                msg_id: *msg_id,
            },
            Some(a) => AgentEvent::Sent {
                conn: a,
                msg_id: *msg_id,
            },
            None => error_event(entity.clone(), ErrorCode::Internal, "bad alias"),
        },
        Event::Err(e) => error_event(entity.clone(), error_code(e), &e.to_string()),
        Event::DirectQueued { group, msg_id } => match alias(group) {
            Some(group) => AgentEvent::DirectSent {
                group,
                member: None,
                msg_id: *msg_id,
            },
            None => error_event(entity.clone(), ErrorCode::Internal, "bad alias"),
        },
        other => to_agent_event(other).unwrap_or_else(|| {
            error_event(entity.clone(), ErrorCode::Internal, "unexpected response")
        }),
    }
}

fn violation(group: Alias, v: &Violation) -> Option<AgentEvent> {
    let (kind, msg_id) = match v.kind {
        Kind::Equivocation { msg_id, .. }
        | Kind::Conflict { msg_id }
        | Kind::ReceiptMismatch { msg_id, .. } => (ViolationKind::Hash, msg_id),
        Kind::Behind { reported, .. } => (ViolationKind::Gap, reported.saturating_add(1)),
        Kind::Missing { ours, .. } => (ViolationKind::Gap, ours.saturating_add(1)),
        Kind::UnsentClaimed { claimed, .. } => (ViolationKind::Hash, claimed),
        Kind::ReportedBad => (ViolationKind::Sig, 0),
        Kind::Members { theirs, .. } => (ViolationKind::Members, u64::from(theirs)),
    };
    Some(AgentEvent::Violation {
        group,
        member: member_alias(&v.sender)?,
        kind,
        msg_id,
        reporter: member_alias(&v.reporter),
    })
}

/// A core fault as `FAULT`: only the sources and kinds the client protocol
/// names (core reports no others to the client; `None` for any other).
fn fault(target: &FaultTarget, source: FaultSource, kind: FaultKind) -> Option<AgentEvent> {
    let source = match source {
        FaultSource::Peer => TextFaultSource::Peer,
        FaultSource::Relay => TextFaultSource::Relay,
        FaultSource::Local => TextFaultSource::Local,
        _ => return None,
    };
    let kind = match kind {
        FaultKind::PeerQueueGone => TextFaultKind::PeerQueueGone,
        FaultKind::QueueRefused => TextFaultKind::QueueRefused,
        FaultKind::QueueGone => TextFaultKind::QueueGone,
        FaultKind::BadConfirmation => TextFaultKind::BadConfirmation,
        FaultKind::Undecryptable => TextFaultKind::Undecryptable,
        FaultKind::Internal => TextFaultKind::Internal,
        FaultKind::SendRefused => TextFaultKind::SendRefused,
        _ => return None,
    };
    Some(match target {
        FaultTarget::Conn(a) => AgentEvent::Fault {
            conn: alias(a)?,
            source,
            kind,
        },
        FaultTarget::Member { group, member } => AgentEvent::GroupFault {
            group: alias(group)?,
            member: Some(member_alias(member)?),
            source,
            kind,
        },
        FaultTarget::Group(group) => AgentEvent::GroupFault {
            group: alias(group)?,
            member: None,
            source,
            kind,
        },
        _ => return None,
    })
}

/// A message's metadata in the client protocol's terms.
fn msg_meta(m: &MsgMeta) -> TextMeta {
    let integrity = match m.integrity {
        MsgIntegrity::Ok => TextIntegrity::Ok,
        MsgIntegrity::Skipped { from, to } => TextIntegrity::Skipped { from, to },
        MsgIntegrity::BadHash => TextIntegrity::BadHash,
        MsgIntegrity::History => TextIntegrity::History,
    };
    TextMeta {
        integrity,
        rcv_ts: m.rcv_ts.as_millis(),
        relay_msg_id: m.relay_msg_id.clone(),
        relay_ts: m.relay_ts.as_millis(),
        snd_msg_id: m.snd_msg_id,
        snd_ts: m.snd_ts.as_millis(),
    }
}

/// `None` when the member has no alias; `Some(None)` for "ourselves".
#[allow(clippy::option_option)]
fn opt_member(m: Option<&MemberId>) -> Option<Option<Alias>> {
    match m {
        None => Some(None),
        Some(m) => member_alias(m).map(Some),
    }
}

/// A core event the agent sends on its own, in the client protocol's terms
/// (`None` for events that are only responses: `Ok`, `Queued`, `Err`).
pub(crate) fn to_agent_event(event: &Event) -> Option<AgentEvent> {
    Some(match event {
        Event::Ok { .. } | Event::Queued { .. } | Event::DirectQueued { .. } | Event::Err(_) => {
            return None;
        }
        Event::Invitation {
            alias: a,
            invitation,
        } => AgentEvent::Inv {
            conn: alias(a)?,
            invitation: InvitationText::new(base64url::encode_unpadded(invitation)).ok()?,
        },
        Event::Con { alias: a, .. } => AgentEvent::Con { conn: alias(a)? },
        Event::ConnSent { alias: a, msg_id } => AgentEvent::Sent {
            conn: alias(a)?,
            msg_id: *msg_id,
        },
        Event::ConnMsg {
            alias: a,
            msg_id,
            meta,
            body,
        } => AgentEvent::Msg {
            conn: alias(a)?,
            msg_id: *msg_id,
            meta: msg_meta(meta),
            body: body.clone(),
        },
        Event::ConnRcvd { alias: a, msg_id } => AgentEvent::Rcvd {
            conn: alias(a)?,
            msg_id: *msg_id,
            status: RcvdStatus::Ok,
        },
        Event::GroupRequest {
            conn,
            invitation,
            info,
        } => AgentEvent::Req {
            conn: alias(conn)?,
            invitation: alias(invitation)?,
            info: info.clone(),
        },
        Event::GroupCon { group, member } => AgentEvent::GroupCon {
            group: alias(group)?,
            member: member_alias(member)?,
        },
        Event::Mem { group, member } => AgentEvent::GroupMem {
            group: alias(group)?,
            member: opt_member(member.as_ref())?,
        },
        Event::Sent {
            group,
            member: Some(m),
            msg_id,
        } => AgentEvent::GroupSentTo {
            group: alias(group)?,
            member: member_alias(m)?,
            msg_id: *msg_id,
        },
        Event::Sent {
            group,
            member: None,
            msg_id,
        } => AgentEvent::GroupSent {
            group: alias(group)?,
            msg_id: *msg_id,
        },
        Event::Msg {
            group,
            member,
            msg_id,
            meta,
            body,
        } => AgentEvent::GroupMsg {
            group: alias(group)?,
            member: member_alias(member)?,
            msg_id: *msg_id,
            meta: msg_meta(meta),
            body: body.clone(),
        },
        Event::Rcvd {
            group,
            member,
            msg_id,
            status,
        } => AgentEvent::GroupRcvd {
            group: alias(group)?,
            member: opt_member(member.as_ref())?,
            msg_id: *msg_id,
            status: match status {
                ReceiptStatus::Ok => RcvdStatus::Ok,
                ReceiptStatus::BadHash => RcvdStatus::BadHash,
                ReceiptStatus::BadSig => RcvdStatus::BadSig,
            },
        },
        Event::DirectSent {
            group,
            member,
            msg_id,
        } => AgentEvent::DirectSent {
            group: alias(group)?,
            member: Some(member_alias(member)?),
            msg_id: *msg_id,
        },
        Event::DirectMsg {
            group,
            member,
            msg_id,
            meta,
            body,
        } => AgentEvent::DirectMsg {
            group: alias(group)?,
            member: member_alias(member)?,
            msg_id: *msg_id,
            meta: msg_meta(meta),
            body: body.clone(),
        },
        Event::DirectRcvd {
            group,
            member,
            msg_id,
            status,
        } => AgentEvent::DirectRcvd {
            group: alias(group)?,
            member: member_alias(member)?,
            msg_id: *msg_id,
            status: match status {
                ReceiptStatus::Ok => RcvdStatus::Ok,
                ReceiptStatus::BadHash => RcvdStatus::BadHash,
                ReceiptStatus::BadSig => RcvdStatus::BadSig,
            },
        },
        Event::DirectFailed {
            group,
            member,
            msg_id,
            reason,
        } => AgentEvent::DirectFailed {
            group: alias(group)?,
            member: member_alias(member)?,
            msg_id: *msg_id,
            reason: match reason {
                DirectFailure::Unsent => TextDirectFailure::Unsent,
                DirectFailure::Unconfirmed => TextDirectFailure::Unconfirmed,
            },
        },
        Event::Left { group, member } => AgentEvent::Left {
            group: alias(group)?,
            member: opt_member(member.as_ref())?,
        },
        Event::Removed { group, member, by } => AgentEvent::Removed {
            group: alias(group)?,
            member: member_alias(member)?,
            by: opt_member(by.as_ref())?,
        },
        Event::Out { group, by } => AgentEvent::Out {
            group: alias(group)?,
            by: member_alias(by)?,
        },
        Event::Empty { group } => AgentEvent::Empty {
            group: alias(group)?,
        },
        Event::GroupInfo {
            group,
            member,
            info,
        } => AgentEvent::GroupInfo {
            group: alias(group)?,
            member: member_alias(member)?,
            info: info.clone(),
        },
        Event::MemberProfile {
            group,
            member,
            profile,
        } => AgentEvent::Profile {
            group: alias(group)?,
            member: member_alias(member)?,
            profile: profile.clone(),
        },
        Event::Deleted { group, by } => AgentEvent::Deleted {
            group: alias(group)?,
            by: opt_member(by.as_ref())?,
        },
        Event::ApprovalRequired {
            group,
            approval,
            change,
        } => AgentEvent::Approve {
            group: alias(group)?,
            req_id: *approval,
            change: match change {
                Change::Add { member, by } => Approval::Add {
                    by: member_alias(by)?,
                    info: member.to_base64url().into_bytes(),
                },
                Change::Remove { member, by } => Approval::Remove {
                    by: member_alias(by)?,
                    member: member_alias(member)?,
                },
            },
        },
        Event::Violation {
            group,
            violation: v,
        } => return violation(alias(group)?, v),
        Event::Fault {
            target,
            source,
            kind,
        } => return fault(target, *source, *kind),
    })
}

/// Why a client command cannot be given to the core.
#[derive(Debug)]
pub(crate) struct Rejected {
    /// The error code.
    pub code: ErrorCode,
    /// The detail.
    pub detail: String,
}

fn opt(a: Option<&Alias>) -> Option<String> {
    a.map(|a| a.as_str().to_owned())
}

/// The core command for a client command.
pub(crate) fn to_command(cmd: &ClientCommand) -> Result<Command, Rejected> {
    Ok(match cmd {
        ClientCommand::NewConn { conn } => Command::NewConn {
            alias: opt(conn.as_ref()),
        },
        ClientCommand::Join { conn, invitation } => Command::JoinConn {
            alias: opt(conn.as_ref()),
            invitation: base64url::decode_unpadded(invitation.as_str(), "invitation").map_err(
                |e| Rejected {
                    code: ErrorCode::Syntax,
                    detail: format!("invitation: {e}"),
                },
            )?,
            info: Vec::new(),
        },
        ClientCommand::Send { conn, body } => Command::SendConn {
            alias: conn.as_str().to_owned(),
            body: body.clone(),
        },
        ClientCommand::Ack { conn, msg_id } => Command::AckConn {
            alias: conn.as_str().to_owned(),
            msg_id: *msg_id,
        },
        ClientCommand::DelConn { conn } => Command::DelConn {
            alias: conn.as_str().to_owned(),
        },
        ClientCommand::Intro { conn, group, info } => Command::Intro {
            conn: conn.as_str().to_owned(),
            group: group.as_str().to_owned(),
            info: info.clone(),
        },
        ClientCommand::NewGroup { group, info } => Command::NewGroup {
            alias: opt(group.as_ref()),
            info: info.clone(),
        },
        ClientCommand::JoinGroup { group, invitation } => Command::JoinGroup {
            alias: opt(group.as_ref()),
            invitation: invitation.as_str().to_owned(),
        },
        ClientCommand::Reject { invitation } => Command::RejectInvitation {
            invitation: invitation.as_str().to_owned(),
        },
        ClientCommand::GroupSend { group, body } => Command::Send {
            group: group.as_str().to_owned(),
            body: body.clone(),
        },
        ClientCommand::DirectSend {
            group,
            member,
            body,
        } => Command::DirectSend {
            group: group.as_str().to_owned(),
            member: member_of(member).ok_or_else(|| Rejected {
                code: ErrorCode::UnknownEntity,
                detail: format!("no member {}", member.as_str()),
            })?,
            body: body.clone(),
        },
        ClientCommand::GroupAck { group, msg_id } => Command::Ack {
            group: group.as_str().to_owned(),
            msg_id: *msg_id,
        },
        ClientCommand::Leave { group } => Command::Leave {
            group: group.as_str().to_owned(),
        },
        ClientCommand::Remove { group, member } => Command::Remove {
            group: group.as_str().to_owned(),
            member: member_of(member).ok_or_else(|| Rejected {
                code: ErrorCode::UnknownEntity,
                detail: format!("no member {}", member.as_str()),
            })?,
        },
        ClientCommand::DelGroup { group } => Command::Delete {
            group: group.as_str().to_owned(),
        },
        ClientCommand::Allow { group, req_id } => Command::Approve {
            group: group.as_str().to_owned(),
            approval: *req_id,
            accept: true,
        },
        ClientCommand::Deny { group, req_id } => Command::Approve {
            group: group.as_str().to_owned(),
            approval: *req_id,
            accept: false,
        },
        ClientCommand::Check { group } => Command::Check {
            group: group.as_str().to_owned(),
        },
        ClientCommand::SetInfo { group, info } => Command::SetInfo {
            group: group.as_str().to_owned(),
            info: info.clone(),
        },
        ClientCommand::SetProfile { group, profile } => Command::SetProfile {
            group: group.as_str().to_owned(),
            profile: profile.clone(),
        },
        // Queries are answered by `status::answer`, never by the core's
        // command path.
        ClientCommand::ListGroups
        | ClientCommand::ListConns
        | ClientCommand::Pending
        | ClientCommand::Members { .. }
        | ClientCommand::Status { .. }
        | ClientCommand::Proof { .. } => {
            return Err(Rejected {
                code: ErrorCode::Internal,
                detail: format!("{} is a status query", cmd.word()),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_aliases_round_trip_and_reject_other_text() {
        let m = MemberId([7; 16]);
        let a = member_alias(&m).unwrap();
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(member_of(&a), Some(m));
        assert_eq!(member_of(&Alias::new("bob").unwrap()), None);
    }

    #[test]
    fn removing_an_unknown_alias_is_unknown_entity() {
        let cmd = ClientCommand::Remove {
            group: Alias::new("g").unwrap(),
            member: Alias::new("nobody").unwrap(),
        };
        let err = to_command(&cmd).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownEntity);
    }

    #[test]
    fn responses_name_the_entity_and_map_errors() {
        let group = Entity::Group(None);
        let ok = response(
            &group,
            &Event::Ok {
                alias: "club".into(),
            },
        );
        assert_eq!(
            ok,
            AgentEvent::Ok {
                entity: Entity::Group(Some(Alias::new("club").unwrap()))
            }
        );
        let conn = Entity::Conn(Some(Alias::new("a").unwrap()));
        let sent = response(
            &conn,
            &Event::Queued {
                alias: "a".into(),
                msg_id: 3,
            },
        );
        assert_eq!(
            sent,
            AgentEvent::Sent {
                conn: Alias::new("a").unwrap(),
                msg_id: 3
            }
        );
        let err = response(
            &group,
            &Event::Err(CommandError::TooLarge { len: 9, max: 1 }),
        );
        assert!(
            matches!(
                err,
                AgentEvent::Error {
                    code: ErrorCode::Large,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = response(&conn, &Event::Err(CommandError::Duplicate("a".into())));
        assert!(
            matches!(
                err,
                AgentEvent::Error {
                    code: ErrorCode::Duplicate,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn faults_reach_the_client_on_their_connection_or_group() {
        let ev = to_agent_event(&Event::Fault {
            target: FaultTarget::Conn("bob".into()),
            source: FaultSource::Peer,
            kind: FaultKind::PeerQueueGone,
        });
        assert_eq!(
            ev,
            Some(AgentEvent::Fault {
                conn: Alias::new("bob").unwrap(),
                source: TextFaultSource::Peer,
                kind: TextFaultKind::PeerQueueGone,
            })
        );
        let m = MemberId([3; 16]);
        let ev = to_agent_event(&Event::Fault {
            target: FaultTarget::Member {
                group: "team".into(),
                member: m,
            },
            source: FaultSource::Relay,
            kind: FaultKind::QueueGone,
        });
        assert_eq!(
            ev,
            Some(AgentEvent::GroupFault {
                group: Alias::new("team").unwrap(),
                member: member_alias(&m),
                source: TextFaultSource::Relay,
                kind: TextFaultKind::QueueGone,
            })
        );
        // Kinds core only counts have no text form.
        let ev = to_agent_event(&Event::Fault {
            target: FaultTarget::Conn("bob".into()),
            source: FaultSource::Peer,
            kind: FaultKind::Malformed,
        });
        assert_eq!(ev, None);
    }

    #[test]
    fn invitations_travel_as_base64url_text() {
        let ev = to_agent_event(&Event::Invitation {
            alias: "a".into(),
            invitation: vec![0, 255, 1],
        })
        .unwrap();
        let AgentEvent::Inv { invitation, .. } = ev else {
            panic!("{ev:?}")
        };
        let cmd = ClientCommand::Join {
            conn: None,
            invitation,
        };
        let Command::JoinConn { invitation, .. } = to_command(&cmd).unwrap() else {
            panic!()
        };
        assert_eq!(invitation, vec![0, 255, 1]);
    }
}
