//! Status queries on the client protocol: `G: LIST`, `C: LIST`, `G: PENDING`,
//! `G:g MEMBERS`, `G:g STATUS`, `G:g PROOF` answered with rows (`docs/protocol-client.md`).
//! Members are named `C:alias` as in events (the base64url of their member
//! id); absent values are `-`.

use std::fmt::Display;

use smp_groups_core::{
    Change, ConnStatus, DeliveryProof, GroupStatus, IntegrityStatus, MemberStatus,
    OpenViolationKind, PendingApproval, PendingDirect, PendingInvitation, PendingSend,
};
use smp_groups_wire::agent::MemberId;
use smp_groups_wire::client::{
    AgentEvent, ClientCommand, Entity, ErrorCode, LineError, Row, RowsKind,
};

use crate::agent::Agent;
use crate::error::Error;
use crate::events::{error_code, error_event, member_of};

fn member(m: &MemberId) -> String {
    format!("C:{}", m.to_base64url())
}

fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Builds a row from fields; a key the row refuses is a bug here, reported
/// as `ERR INTERNAL` rather than a panic.
fn row(fields: &[(&str, String)]) -> Result<Row, LineError> {
    fields.iter().try_fold(Row::new(), |r, (k, v)| r.with(k, v))
}

/// `G: LIST` rows.
pub(crate) fn group_rows(groups: &[GroupStatus]) -> Result<Vec<Row>, LineError> {
    groups
        .iter()
        .map(|g| {
            row(&[
                ("group", format!("G:{}", g.alias)),
                ("id", g.group_id.to_base64url()),
                ("me", member(&g.me)),
                ("members", g.members.to_string()),
                ("connected", g.connected.to_string()),
                ("state", g.state.as_str().to_owned()),
            ])
        })
        .collect()
}

/// `C: LIST` rows.
pub(crate) fn conn_rows(conns: &[ConnStatus]) -> Result<Vec<Row>, LineError> {
    conns
        .iter()
        .map(|c| {
            row(&[
                ("conn", format!("C:{}", c.alias)),
                ("state", c.state.as_str().to_owned()),
                ("relay", opt(c.relay.as_ref())),
                ("peer_relay", opt(c.peer_relay.as_ref())),
                ("sent", c.last_sent.to_string()),
                ("rcvd", c.last_received.to_string()),
                ("queued", c.queued.to_string()),
                ("unacked", c.unacked.to_string()),
            ])
        })
        .collect()
}

/// `G: PENDING` rows: invitations, then approvals.
pub(crate) fn pending_rows(
    invitations: &[PendingInvitation],
    approvals: &[PendingApproval],
) -> Result<Vec<Row>, LineError> {
    let mut rows = Vec::with_capacity(invitations.len() + approvals.len());
    for i in invitations {
        rows.push(row(&[
            ("invitation", format!("g:{}", i.id)),
            ("conn", format!("C:{}", i.conn)),
        ])?);
    }
    for a in approvals {
        let (change, m, by) = match a.change {
            Change::Add { member, by } => ("add", member, by),
            Change::Remove { member, by } => ("rem", member, by),
        };
        rows.push(row(&[
            ("approval", a.approval.to_string()),
            ("group", format!("G:{}", a.group)),
            ("change", change.to_owned()),
            ("member", member(&m)),
            ("by", member(&by)),
        ])?);
    }
    Ok(rows)
}

/// `G:g MEMBERS` rows.
pub(crate) fn member_rows(members: &[MemberStatus]) -> Result<Vec<Row>, LineError> {
    members
        .iter()
        .map(|m| {
            let mut fields = vec![
                ("member", member(&m.member)),
                ("state", m.state.as_str().to_owned()),
                ("relay", opt(m.relay.as_ref())),
                ("peer_relay", opt(m.peer_relay.as_ref())),
                ("sent", opt(m.last_sent)),
                ("rcvd", opt(m.last_received)),
                ("confirmed", opt(m.confirmed)),
                (
                    "chain",
                    opt(m.chain.map(smp_groups_wire::agent::GCheckStatus::as_str)),
                ),
            ];
            if !m.profile.is_empty() {
                fields.push(("profile", profile_value(&m.profile)));
            }
            row(&fields)
        })
        .collect()
}

fn violation_word(k: OpenViolationKind) -> &'static str {
    match k {
        OpenViolationKind::Equivocation => "equivocation",
        OpenViolationKind::Behind => "behind",
        OpenViolationKind::Missing => "missing",
        OpenViolationKind::UnsentClaimed => "unsent_claimed",
        OpenViolationKind::ReportedBad => "reported_bad",
        OpenViolationKind::ReceiptMismatch => "receipt_mismatch",
        _ => "other",
    }
}

/// `G:g STATUS` rows: the check schedule, each member's integrity, each
/// send still waiting (one row per member it waits for), each violation.
pub(crate) fn status_rows(
    i: &IntegrityStatus,
    sends: &[PendingSend],
    direct: &[PendingDirect],
) -> Result<Vec<Row>, LineError> {
    let mut rows = vec![row(&[
        ("check_sent", i.last_check_sent.as_millis().to_string()),
        (
            "next_check",
            opt(i.next_check.map(smp_groups_core::Timestamp::as_millis)),
        ),
        ("since_check", i.since_check.to_string()),
        ("sent", i.last_sent.to_string()),
        ("delivered", i.delivered_to_all.to_string()),
        ("sends", sends.len().to_string()),
        ("violations", i.violations.len().to_string()),
    ])?];
    for m in &i.members {
        rows.push(row(&[
            ("member", member(&m.member)),
            ("check_rcvd", m.last_check_received.to_string()),
            ("rcvd", m.last_received.to_string()),
            ("confirmed", m.confirmed.to_string()),
            ("chain", m.chain.as_str().to_owned()),
        ])?);
    }
    for s in sends {
        let waits = s
            .unsent
            .iter()
            .map(|m| (m, "send"))
            .chain(s.awaiting.iter().map(|m| (m, "receipt")));
        for (m, wait) in waits {
            rows.push(row(&[
                ("send", s.msg_id.to_string()),
                ("ext", s.ext_msg_id.to_string()),
                ("member", member(m)),
                ("wait", wait.to_owned()),
            ])?);
        }
    }
    for d in direct {
        rows.push(row(&[
            ("direct", d.msg_id.to_string()),
            ("id", d.direct_id.to_string()),
            ("member", member(&d.member)),
            ("wait", if d.sent { "receipt" } else { "send" }.to_owned()),
        ])?);
    }
    for v in &i.violations {
        rows.push(row(&[
            ("violation", violation_word(v.kind).to_owned()),
            ("sender", member(&v.sender)),
            ("reporter", member(&v.reporter)),
        ])?);
    }
    Ok(rows)
}

fn failed(entity: Entity, e: &Error) -> AgentEvent {
    match e {
        Error::Command(c) => error_event(entity, error_code(c), &c.to_string()),
        other => error_event(entity, ErrorCode::Internal, &other.to_string()),
    }
}

/// `G:g PROOF` rows: `proof sender receipts missing`, then `receipt hash
/// ids sig` for each signed receipt held (`ids`: how many messages the
/// signature covers, `hash`: the content hash signed for this message),
/// then `missing` for each member whose receipt we do not hold.
pub(crate) fn proof_rows(p: &DeliveryProof) -> Result<Vec<Row>, LineError> {
    let b64 = smp_groups_wire::base64url::encode_unpadded;
    let mut rows = vec![row(&[
        ("proof", p.ext_msg_id.to_string()),
        ("sender", member(&p.sender)),
        ("receipts", p.receipts.len().to_string()),
        ("missing", p.missing.len().to_string()),
    ])?];
    for u in &p.receipts {
        rows.push(row(&[
            ("receipt", member(&u.signer)),
            ("hash", opt(p.hash_signed_by(&u.signer).map(|d| b64(&d.0)))),
            ("ids", u.receipts.len().to_string()),
            ("sig", b64(&u.sig)),
        ])?);
    }
    for m in &p.missing {
        rows.push(row(&[("missing", member(m))])?);
    }
    Ok(rows)
}

/// The answer to a status query, or `None` if `cmd` is not one.
pub(crate) async fn answer(agent: &Agent, cmd: &ClientCommand) -> Option<AgentEvent> {
    let entity = cmd.entity();
    let (kind, rows) = match cmd {
        ClientCommand::ListGroups => (
            RowsKind::List,
            agent.group_statuses().await.map(|g| group_rows(&g)),
        ),
        ClientCommand::ListConns => (
            RowsKind::List,
            agent.conn_statuses().await.map(|c| conn_rows(&c)),
        ),
        ClientCommand::Pending => (
            RowsKind::Pending,
            agent
                .query(|c| pending_rows(&c.pending_invitations(), &c.pending_approvals()))
                .await,
        ),
        ClientCommand::Members { group } => (
            RowsKind::Members,
            agent
                .member_statuses(group.as_str())
                .await
                .map(|m| member_rows(&m)),
        ),
        ClientCommand::Status { group } => {
            // One query: the integrity state and the sends of the same moment.
            let g = group.as_str().to_owned();
            let got = agent
                .query(move |c| {
                    Ok((
                        c.integrity_status(&g)?,
                        c.pending_sends(&g)?,
                        c.pending_direct(&g)?,
                    ))
                })
                .await
                .and_then(|r| r.map_err(Error::Command));
            (
                RowsKind::Status,
                got.map(|(i, s, d)| status_rows(&i, &s, &d)),
            )
        }
        ClientCommand::Proof {
            group,
            msg_id,
            sender,
        } => {
            let sender = match sender {
                None => None,
                Some(a) => match member_of(a) {
                    Some(m) => Some(m),
                    None => {
                        return Some(error_event(
                            entity,
                            ErrorCode::UnknownEntity,
                            &format!("{a} is not a member alias"),
                        ));
                    }
                },
            };
            (
                RowsKind::Proof,
                agent
                    .delivery_proof(group.as_str(), sender, *msg_id)
                    .await
                    .map(|p| proof_rows(&p)),
            )
        }
        _ => return None,
    };
    Some(match rows {
        Err(e) => failed(entity, &e),
        Ok(Err(e)) => error_event(entity, ErrorCode::Internal, &e.detail),
        Ok(Ok(rows)) => AgentEvent::Rows { entity, kind, rows },
    })
}

/// The most profile bytes a `profile=` value shows (256 base64url characters).
const MAX_PROFILE_SHOWN: usize = 192;

/// A `profile=` value: the profile in base64url without padding, or `#` and
/// its length when it is too long for a value.
fn profile_value(profile: &[u8]) -> String {
    if profile.len() <= MAX_PROFILE_SHOWN {
        smp_groups_wire::base64url::encode_unpadded(profile)
    } else {
        format!("#{}", profile.len())
    }
}
