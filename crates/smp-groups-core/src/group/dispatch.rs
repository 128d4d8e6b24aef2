//! Group envelopes from other members: who may send what and when, and the
//! file that applies each kind.

use smp_groups_wire::Encode;
use smp_groups_wire::agent::{AMessage, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::Event;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{ChangeRec, GroupStatus, Mid, Note, Owner, PendingApproval, RecvInvitation};

impl Agent {
    pub(crate) fn on_group_envelope(
        &mut self,
        conn: u64,
        owner: &Owner,
        seq: u64,
        env: GroupEnvelope,
    ) {
        match owner {
            Owner::Visible(alias) => {
                let GroupEnvelope::Group(gi) = &env else {
                    let detail = format!(
                        "group envelope {} on a visible connection",
                        String::from_utf8_lossy(env.tag())
                    );
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        At::conn(conn),
                        &detail,
                    );
                    return;
                };
                {
                    let id = self.fresh_alias("i");
                    let info = gi.group_info.as_slice().to_vec();
                    self.keep_invitation(
                        id.clone(),
                        RecvInvitation {
                            conn: alias.clone(),
                            envelope: AMessage::Group(env).to_bytes(),
                        },
                    );
                    self.event(Event::GroupRequest {
                        conn: alias.clone(),
                        invitation: id,
                        info,
                    });
                }
            }
            // Refused by the caller (`dispatch`).
            Owner::Open { .. } => {}
            Owner::Member { group, member } => {
                let Some(g) = self.edit_group(group) else {
                    self.refuse(
                        FaultSource::Nobody,
                        FaultKind::Stale,
                        At::member(group, Some(*member), Some(conn)),
                        &format!("{} for a group we no longer hold", tag(&env)),
                    );
                    return;
                };
                // Whatever the envelope does to the group is stored with
                // this input (`edit_group` marked it).
                if g.gone.contains(member) {
                    // Only a retired connection's removals and deletion apply.
                    self.apply_group_envelope(conn, &group.clone(), *member, seq, env);
                    return;
                }
                let size = g.members.len() + 1;
                let change = match &env {
                    GroupEnvelope::Intro(info) | GroupEnvelope::IntroLate(info)
                        if !g.members.contains_key(&info.member_id.0) =>
                    {
                        Some(ChangeRec::Add {
                            member: info.member_id.0,
                            by: *member,
                        })
                    }
                    GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x)
                        if g.members.contains_key(&x.0) =>
                    {
                        Some(ChangeRec::Remove {
                            member: x.0,
                            by: *member,
                        })
                    }
                    _ => None,
                };
                if let Some(change) = change
                    && size > self.cfg.approval_threshold
                {
                    self.ask_approval(
                        group,
                        PendingApproval {
                            change,
                            conn,
                            envelope: AMessage::Group(env).to_bytes(),
                        },
                    );
                    return;
                }
                self.apply_group_envelope(conn, &group.clone(), *member, seq, env);
            }
        }
    }

    pub(crate) fn apply_group_envelope(
        &mut self,
        conn: u64,
        group: &str,
        sender: Mid,
        seq: u64,
        env: GroupEnvelope,
    ) {
        tracing::debug!(
            group,
            from = %MemberId(sender),
            env = %String::from_utf8_lossy(env.tag()),
            detail = ?env_detail(&env),
            "group envelope"
        );
        let at = At::member(group, Some(sender), Some(conn));
        let Some(g) = self.groups.get(group) else {
            // An approval answered after the group ended.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &format!("{} for a group we no longer hold", tag(&env)),
            );
            return;
        };
        if g.gone.contains(&sender) {
            // A removed member's removals and deletion, sent before it learned
            // of its own removal, still apply (concurrent removals).
            let retired = self.conns.get(&conn).is_some_and(|c| c.retire_at.is_some());
            if retired {
                self.apply_from_retired(conn, group, sender, &env);
            } else {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    at,
                    &format!("{} from a member that is gone", tag(&env)),
                );
            }
            return;
        }
        if let GroupStatus::Deleting { .. } = g.status {
            // Whoever confirmed, left, deleted too or removed us (concurrent
            // removal) will not answer any more.
            if matches!(
                env,
                GroupEnvelope::Deld | GroupEnvelope::Left | GroupEnvelope::Del | GroupEnvelope::Out
            ) {
                self.member_done_deleting(group, sender);
            } else {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    at,
                    &format!("{} while we delete the group", tag(&env)),
                );
            }
            return;
        }
        self.touch_group(group);
        match env {
            GroupEnvelope::Group(_) | GroupEnvelope::Deld => {
                // `GROUP` belongs on a visible connection; `DELD` answers a
                // `DEL` of ours, and we are not deleting.
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Unexpected,
                    at,
                    &format!("{} from a member", tag(&env)),
                );
            }
            GroupEnvelope::Intro(info) => self.on_intro(conn, group, sender, &info, false),
            GroupEnvelope::IntroLate(info) => self.on_intro(conn, group, sender, &info, true),
            GroupEnvelope::Inv {
                member_id,
                invitation,
            } => self.on_inv(group, sender, member_id.0, invitation),
            GroupEnvelope::Fwd { member, invitation } => {
                self.on_fwd(group, sender, &member, invitation.as_slice());
            }
            GroupEnvelope::OpenInv { invitation } => {
                self.on_open_inv(group, sender, invitation.into_vec());
            }
            GroupEnvelope::Mem(x) => self.on_mem(group, sender, x.0),
            GroupEnvelope::Left => self.on_left(group, sender),
            GroupEnvelope::Out => self.removed_by(group, sender),
            GroupEnvelope::Rem(x) => self.on_rem(conn, group, sender, x.0, false),
            GroupEnvelope::RemTell(x) => self.on_rem(conn, group, sender, x.0, true),
            GroupEnvelope::Remd(x) => self.on_remd(conn, group, sender, x.0),
            GroupEnvelope::Del => self.on_del(conn, group, sender),
            GroupEnvelope::Msg {
                ext_msg_id,
                snd_ts,
                content,
            } => {
                self.on_group_msg(group, sender, (ext_msg_id, snd_ts), content.as_slice());
            }
            GroupEnvelope::SignedMsg {
                ext_msg_id,
                snd_ts,
                sig,
                content,
            } => {
                let ids = (ext_msg_id, snd_ts);
                if self.on_group_msg(group, sender, ids, content.as_slice()) {
                    self.keep_received_signed(group, sender, ids, sig, content.as_slice());
                }
            }
            GroupEnvelope::History {
                sender: original,
                ext_msg_id,
                snd_ts,
                sig,
                content,
            } => self.on_history(
                group,
                sender,
                (original.0, ext_msg_id, snd_ts),
                sig,
                content.as_slice(),
            ),
            GroupEnvelope::CatchUp { ext_msg_id, digest } => {
                self.on_catch_up(conn, group, sender, ext_msg_id, digest);
            }
            GroupEnvelope::Rcvd {
                ext_msg_id,
                digest,
                sig,
            } => self.on_rcvd(group, sender, ext_msg_id, digest, sig),
            GroupEnvelope::DirectMsg {
                msg_id,
                snd_ts,
                content,
            } => self.on_direct_msg(conn, group, sender, (msg_id, snd_ts), content.as_slice()),
            GroupEnvelope::DirectRcvd { msg_id, digest } => {
                self.on_direct_rcvd(conn, group, sender, msg_id, digest);
            }
            GroupEnvelope::Info { ts, author, info } => {
                self.on_info(group, sender, (ts, author.0), info);
            }
            GroupEnvelope::Profile { ts, profile } => self.on_profile(group, sender, ts, profile),
            GroupEnvelope::Receipts { receipts, sig } => {
                self.on_receipts(group, sender, &receipts, sig, |gid, me| {
                    smp_groups_integrity::receipts_payload(
                        &smp_groups_wire::agent::GroupId(gid),
                        &MemberId(me),
                        &MemberId(sender),
                        &receipts,
                    )
                });
            }
            GroupEnvelope::Proof { units } => self.on_proof(group, sender, &units),
            GroupEnvelope::Check(check) => self.on_check(conn, group, sender, seq, &check),
        }
    }

    fn apply_from_retired(&mut self, conn: u64, group: &str, sender: Mid, env: &GroupEnvelope) {
        let me = self.groups.get(group).map(|g| g.me);
        match env {
            GroupEnvelope::Out => self.removed_by(group, sender),
            GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x) if Some(x.0) == me => {
                self.removed_by(group, sender);
            }
            GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x)
                if self
                    .groups
                    .get(group)
                    .is_some_and(|g| g.members.contains_key(&x.0)) =>
            {
                self.retire_member(group, x.0, false);
                self.member_gone(group, x.0);
                self.event(Event::Removed {
                    group: group.to_owned(),
                    member: *x,
                    by: Some(MemberId(sender)),
                });
                self.check_empty(group);
            }
            GroupEnvelope::Del => {
                // The deleter waits for our `DELD`.
                self.enqueue(conn, &AMessage::Group(GroupEnvelope::Deld), Note::None);
                // It was removed before it could hear of the members we
                // added since: they hear of the deletion from us (the others
                // get it twice; the second is stale).
                let mut conns = self.member_conns(group);
                for c in &conns {
                    if *c != conn {
                        self.enqueue(*c, &AMessage::Group(GroupEnvelope::Del), Note::None);
                    }
                }
                conns.push(conn);
                self.drop_group(group, &conns);
                self.event(Event::Deleted {
                    group: group.to_owned(),
                    by: Some(MemberId(sender)),
                });
            }
            _ => {
                // Only its removals and deletion apply.
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    At::member(group, Some(sender), Some(conn)),
                    &format!("{} from a member we removed", tag(env)),
                );
            }
        }
    }
}

/// The member an envelope names, for logs.
fn env_detail(env: &GroupEnvelope) -> Option<String> {
    match env {
        GroupEnvelope::Intro(info)
        | GroupEnvelope::IntroLate(info)
        | GroupEnvelope::Fwd { member: info, .. } => Some(info.member_id.to_string()),
        GroupEnvelope::Inv {
            member_id,
            invitation,
        } => Some(format!("{member_id} empty={}", invitation.is_empty())),
        GroupEnvelope::Mem(x)
        | GroupEnvelope::Rem(x)
        | GroupEnvelope::RemTell(x)
        | GroupEnvelope::Remd(x) => Some(x.to_string()),
        _ => None,
    }
}

/// An envelope's tag, for logs.
fn tag(env: &GroupEnvelope) -> String {
    String::from_utf8_lossy(env.tag()).into_owned()
}
