//! proptest strategies for client protocol values, shared by the client tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

use proptest::collection::vec;
use proptest::prelude::*;
use smp_groups_wire::client::{
    AgentEvent, Alias, Approval, ClientCommand, CorrId, DirectFailure, Entity, ErrorCode,
    FaultKind, FaultSource, InvitationText, MsgIntegrity, MsgMeta, RcvdStatus, Row, RowsKind,
    Transmission, ViolationKind,
};

/// Every integrity status, with any valid skipped range.
pub fn integrity() -> impl Strategy<Value = MsgIntegrity> {
    prop_oneof![
        Just(MsgIntegrity::Ok),
        Just(MsgIntegrity::BadHash),
        Just(MsgIntegrity::History),
        (1..u64::MAX, any::<u64>()).prop_map(|(from, extra)| MsgIntegrity::Skipped {
            from,
            to: from.saturating_add(extra % 1000),
        }),
    ]
}

/// Message metadata with any ids and times and relay ids of 0 to 255 bytes.
pub fn msg_meta() -> impl Strategy<Value = MsgMeta> {
    (
        integrity(),
        any::<u64>(),
        vec(any::<u8>(), 0..=255),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(integrity, rcv_ts, relay_msg_id, relay_ts, snd_msg_id, snd_ts)| MsgMeta {
                integrity,
                rcv_ts,
                relay_msg_id,
                relay_ts,
                snd_msg_id,
                snd_ts,
            },
        )
}

/// Every fault source.
pub fn fault_source() -> impl Strategy<Value = FaultSource> {
    prop_oneof![
        Just(FaultSource::Peer),
        Just(FaultSource::Relay),
        Just(FaultSource::Local)
    ]
}

/// Every fault kind.
pub fn fault_kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::PeerQueueGone),
        Just(FaultKind::QueueRefused),
        Just(FaultKind::QueueGone),
        Just(FaultKind::BadConfirmation),
        Just(FaultKind::Undecryptable),
        Just(FaultKind::Internal),
    ]
}

/// Valid aliases, 1 to 64 printable characters.
pub fn alias() -> impl Strategy<Value = Alias> {
    "[!-~]{1,64}".prop_map(|s| Alias::new(s).expect("valid alias"))
}

/// Valid corrIds, possibly empty.
pub fn corr_id() -> impl Strategy<Value = CorrId> {
    "[!-~]{0,32}".prop_map(|s| CorrId::new(s).expect("valid corrId"))
}

/// Valid invitation texts.
pub fn invitation_text() -> impl Strategy<Value = InvitationText> {
    "[!-~]{1,300}".prop_map(|s| InvitationText::new(s).expect("valid invitation"))
}

/// Payloads of every shape: short text (inline), text with CR/LF and binary
/// (length-prefixed), long (length-prefixed), and empty.
pub fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,80}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..200),
        vec(any::<u8>(), 1000..1100),
        Just(b"line1\r\nline2".to_vec()),
    ]
}

/// An alias or none.
pub fn opt_alias() -> impl Strategy<Value = Option<Alias>> {
    proptest::option::of(alias())
}

/// Any entity.
pub fn entity() -> impl Strategy<Value = Entity> {
    prop_oneof![
        Just(Entity::None),
        opt_alias().prop_map(Entity::Conn),
        opt_alias().prop_map(Entity::Group),
        alias().prop_map(Entity::Invitation),
    ]
}

/// Every client command.
pub fn command() -> impl Strategy<Value = ClientCommand> {
    prop_oneof![
        opt_alias().prop_map(|conn| ClientCommand::NewConn { conn }),
        (opt_alias(), invitation_text())
            .prop_map(|(conn, invitation)| ClientCommand::Join { conn, invitation }),
        (alias(), payload()).prop_map(|(conn, body)| ClientCommand::Send { conn, body }),
        (alias(), any::<u64>()).prop_map(|(conn, msg_id)| ClientCommand::Ack { conn, msg_id }),
        alias().prop_map(|conn| ClientCommand::DelConn { conn }),
        (alias(), alias(), payload()).prop_map(|(conn, group, info)| ClientCommand::Intro {
            conn,
            group,
            info
        }),
        (opt_alias(), payload()).prop_map(|(group, info)| ClientCommand::NewGroup { group, info }),
        (opt_alias(), alias())
            .prop_map(|(group, invitation)| ClientCommand::JoinGroup { group, invitation }),
        (alias(), payload()).prop_map(|(group, body)| ClientCommand::GroupSend { group, body }),
        (alias(), any::<u64>())
            .prop_map(|(group, msg_id)| ClientCommand::GroupAck { group, msg_id }),
        alias().prop_map(|group| ClientCommand::Leave { group }),
        (alias(), alias()).prop_map(|(group, member)| ClientCommand::Remove { group, member }),
        alias().prop_map(|group| ClientCommand::DelGroup { group }),
        (alias(), any::<u64>()).prop_map(|(group, req_id)| ClientCommand::Allow { group, req_id }),
        (alias(), any::<u64>()).prop_map(|(group, req_id)| ClientCommand::Deny { group, req_id }),
        Just(ClientCommand::ListGroups),
        Just(ClientCommand::ListConns),
        Just(ClientCommand::Pending),
        alias().prop_map(|group| ClientCommand::Members { group }),
        alias().prop_map(|group| ClientCommand::Status { group }),
        (alias(), any::<u64>(), proptest::option::of(alias())).prop_map(
            |(group, msg_id, sender)| ClientCommand::Proof {
                group,
                msg_id,
                sender
            }
        ),
        alias().prop_map(|group| ClientCommand::Check { group }),
        alias().prop_map(|invitation| ClientCommand::Reject { invitation }),
        (alias(), alias(), payload()).prop_map(|(group, member, body)| {
            ClientCommand::DirectSend {
                group,
                member,
                body,
            }
        }),
        (alias(), payload()).prop_map(|(group, info)| ClientCommand::SetInfo { group, info }),
        (alias(), payload())
            .prop_map(|(group, profile)| ClientCommand::SetProfile { group, profile }),
    ]
}

/// A status row of 1 to 4 fields (values printable, spaces and all: the
/// builder makes them printable).
pub fn row() -> impl Strategy<Value = Row> {
    vec(("[a-z0-9_]{1,8}", "[ -~]{0,12}"), 1..4).prop_map(|fields| {
        fields
            .into_iter()
            .fold(Row::new(), |r, (k, v)| r.with(&k, v).expect("valid key"))
    })
}

/// A status answer.
pub fn rows_event() -> impl Strategy<Value = AgentEvent> {
    let shape = prop_oneof![
        Just((Entity::Group(None), RowsKind::List)),
        Just((Entity::Conn(None), RowsKind::List)),
        Just((Entity::Group(None), RowsKind::Pending)),
        alias().prop_map(|a| (Entity::Group(Some(a)), RowsKind::Members)),
        alias().prop_map(|a| (Entity::Group(Some(a)), RowsKind::Status)),
        alias().prop_map(|a| (Entity::Group(Some(a)), RowsKind::Proof)),
    ];
    (shape, vec(row(), 0..5)).prop_map(|((entity, kind), rows)| AgentEvent::Rows {
        entity,
        kind,
        rows,
    })
}

fn status() -> impl Strategy<Value = RcvdStatus> {
    prop_oneof![
        Just(RcvdStatus::Ok),
        Just(RcvdStatus::BadHash),
        Just(RcvdStatus::BadSig)
    ]
}

fn code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(&ErrorCode::ALL[..])
}

/// Every agent event.
pub fn event() -> impl Strategy<Value = AgentEvent> {
    let conn_events = prop_oneof![
        entity().prop_map(|entity| AgentEvent::Ok { entity }),
        (entity(), code(), proptest::option::of("[ -~]{0,40}[!-~]")).prop_map(
            |(entity, code, detail)| AgentEvent::Error {
                entity,
                code,
                detail
            }
        ),
        (alias(), invitation_text())
            .prop_map(|(conn, invitation)| AgentEvent::Inv { conn, invitation }),
        alias().prop_map(|conn| AgentEvent::Con { conn }),
        (alias(), any::<u64>()).prop_map(|(conn, msg_id)| AgentEvent::Sent { conn, msg_id }),
        (alias(), any::<u64>(), msg_meta(), payload()).prop_map(|(conn, msg_id, meta, body)| {
            AgentEvent::Msg {
                conn,
                msg_id,
                meta,
                body,
            }
        }),
        (alias(), any::<u64>(), status()).prop_map(|(conn, msg_id, status)| AgentEvent::Rcvd {
            conn,
            msg_id,
            status
        }),
        (alias(), alias(), payload()).prop_map(|(conn, invitation, info)| AgentEvent::Req {
            conn,
            invitation,
            info
        }),
        (alias(), fault_source(), fault_kind())
            .prop_map(|(conn, source, kind)| { AgentEvent::Fault { conn, source, kind } }),
    ];
    let group_events = prop_oneof![
        (alias(), alias()).prop_map(|(group, member)| AgentEvent::GroupCon { group, member }),
        (alias(), opt_alias()).prop_map(|(group, member)| AgentEvent::GroupMem { group, member }),
        (alias(), alias(), any::<u64>()).prop_map(|(group, member, msg_id)| {
            AgentEvent::GroupSentTo {
                group,
                member,
                msg_id,
            }
        }),
        (alias(), any::<u64>()).prop_map(|(group, msg_id)| AgentEvent::GroupSent { group, msg_id }),
        (alias(), alias(), any::<u64>(), msg_meta(), payload()).prop_map(
            |(group, member, msg_id, meta, body)| AgentEvent::GroupMsg {
                group,
                member,
                msg_id,
                meta,
                body,
            }
        ),
        (alias(), opt_alias(), any::<u64>(), status()).prop_map(
            |(group, member, msg_id, status)| {
                AgentEvent::GroupRcvd {
                    group,
                    member,
                    msg_id,
                    status,
                }
            }
        ),
        (alias(), opt_alias()).prop_map(|(group, member)| AgentEvent::Left { group, member }),
        (alias(), alias(), opt_alias()).prop_map(|(group, member, by)| AgentEvent::Removed {
            group,
            member,
            by
        }),
        (alias(), alias()).prop_map(|(group, by)| AgentEvent::Out { group, by }),
        alias().prop_map(|group| AgentEvent::Empty { group }),
        (alias(), alias(), payload()).prop_map(|(group, member, info)| AgentEvent::GroupInfo {
            group,
            member,
            info
        }),
        (alias(), alias(), payload()).prop_map(|(group, member, profile)| AgentEvent::Profile {
            group,
            member,
            profile
        }),
        (alias(), opt_alias()).prop_map(|(group, by)| AgentEvent::Deleted { group, by }),
        (alias(), any::<u64>(), alias(), payload()).prop_map(|(group, req_id, by, info)| {
            AgentEvent::Approve {
                group,
                req_id,
                change: Approval::Add { by, info },
            }
        }),
        (alias(), any::<u64>(), alias(), alias()).prop_map(|(group, req_id, by, member)| {
            AgentEvent::Approve {
                group,
                req_id,
                change: Approval::Remove { by, member },
            }
        }),
        (
            alias(),
            alias(),
            prop_oneof![
                Just(ViolationKind::Hash),
                Just(ViolationKind::Gap),
                Just(ViolationKind::Sig)
            ],
            any::<u64>(),
            opt_alias()
        )
            .prop_map(
                |(group, member, kind, msg_id, reporter)| AgentEvent::Violation {
                    group,
                    member,
                    kind,
                    msg_id,
                    reporter
                }
            ),
        (alias(), opt_alias(), fault_source(), fault_kind()).prop_map(
            |(group, member, source, kind)| AgentEvent::GroupFault {
                group,
                member,
                source,
                kind
            }
        ),
    ];
    let direct_events = prop_oneof![
        (alias(), opt_alias(), any::<u64>()).prop_map(|(group, member, msg_id)| {
            AgentEvent::DirectSent {
                group,
                member,
                msg_id,
            }
        }),
        (alias(), alias(), any::<u64>(), msg_meta(), payload()).prop_map(
            |(group, member, msg_id, meta, body)| AgentEvent::DirectMsg {
                group,
                member,
                msg_id,
                meta,
                body,
            }
        ),
        (alias(), alias(), any::<u64>(), status()).prop_map(|(group, member, msg_id, status)| {
            AgentEvent::DirectRcvd {
                group,
                member,
                msg_id,
                status,
            }
        }),
        (
            alias(),
            alias(),
            any::<u64>(),
            prop_oneof![
                Just(DirectFailure::Unsent),
                Just(DirectFailure::Unconfirmed)
            ]
        )
            .prop_map(|(group, member, msg_id, reason)| AgentEvent::DirectFailed {
                group,
                member,
                msg_id,
                reason,
            }),
    ];
    prop_oneof![conn_events, group_events, direct_events, rows_event()]
}

/// Commands with corrIds.
pub fn command_tx() -> impl Strategy<Value = Transmission<ClientCommand>> {
    (corr_id(), command()).prop_map(|(c, m)| Transmission::new(c, m))
}

/// Events with corrIds.
pub fn event_tx() -> impl Strategy<Value = Transmission<AgentEvent>> {
    (corr_id(), event()).prop_map(|(c, m)| Transmission::new(c, m))
}
