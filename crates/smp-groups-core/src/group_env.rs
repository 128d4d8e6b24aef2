//! Group envelopes from other members: introductions (`GROUP`, `INTRO`, `INV`,
//! `FWD`, `OINV`, `MEM`), departures (`LEFT`, `OUT`, `REM`, `REMD`, `DEL`,
//! `DELD`), messages (`MSG`, `RCVD`) and `G_CHECK`.

use smp_groups_crypto::ed25519::PublicKey;
use smp_groups_integrity::{Delivery, Timestamp};
use smp_groups_wire::Encode;
use smp_groups_wire::agent::{
    AMessage, ConnInvitation, GroupEnvelope, Invitation, MemberId, MemberInfo, Profile,
};

use crate::Agent;
use crate::api::Event;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{
    ChangeRec, GroupStatus, MemberStatus, Mid, Note, Owner, PendingApproval, RecvInvitation,
    RecvTrack,
};

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
                    self.invitations.insert(
                        id.clone(),
                        RecvInvitation {
                            conn: alias.clone(),
                            envelope: AMessage::Group(env).to_bytes(),
                        },
                    );
                    self.dirty.insert(crate::store::Key::Invitation(id.clone()));
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
                let Some(g) = self.groups.get_mut(group) else {
                    self.refuse(
                        FaultSource::Nobody,
                        FaultKind::Stale,
                        At::member(group, Some(*member), Some(conn)),
                        &format!("{} for a group we no longer hold", tag(&env)),
                    );
                    return;
                };
                // Whatever the envelope does to the group is stored with this input.
                self.dirty.insert(crate::store::Key::Group(group.clone()));
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
                if let Some(g) = self.groups.get_mut(group) {
                    g.open_invs.insert(sender, invitation.into_vec());
                }
            }
            GroupEnvelope::Mem(x) => self.on_mem(group, sender, x.0),
            GroupEnvelope::Left => {
                self.close_member(group, sender);
                self.member_gone(group, sender);
                self.event(Event::Left {
                    group: group.to_owned(),
                    member: Some(MemberId(sender)),
                });
                self.check_empty(group);
            }
            GroupEnvelope::Out => self.removed_by(group, sender),
            GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x) => {
                // `REMT`: the remover could not reach the member; we tell it.
                let tell = matches!(env, GroupEnvelope::RemTell(_));
                let x = x.0;
                let me = self.groups.get(group).map(|g| g.me);
                if me == Some(x) {
                    // A remover tells the member it removes with `OUT`.
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        at,
                        &"REM of ourselves",
                    );
                    return;
                }
                self.apply_removal(group, x, sender, tell);
                self.enqueue(
                    conn,
                    &AMessage::Group(GroupEnvelope::Remd(MemberId(x))),
                    Note::None,
                );
            }
            GroupEnvelope::Remd(x) => {
                let waited = self
                    .groups
                    .get_mut(group)
                    .and_then(|g| g.removals.get_mut(&x.0))
                    .is_some_and(|set| set.remove(&sender));
                if !waited {
                    // A removal already complete, or not ours.
                    self.refuse(
                        FaultSource::Nobody,
                        FaultKind::Stale,
                        at,
                        &format!("REMD {x} for no removal waiting for it"),
                    );
                }
                self.check_removal_done(group, x.0);
            }
            GroupEnvelope::Del => {
                self.enqueue(conn, &AMessage::Group(GroupEnvelope::Deld), Note::None);
                // Members we are adding may be unknown to the deleter: they
                // hear of the deletion from us. So do members we added that
                // we are still introducing to the deleter (a late
                // introduction: it joined concurrently and may not know them).
                let mut tell = self.unfinished_add_conns(group);
                tell.extend(self.introduced_late_to(group, sender));
                tell.sort_unstable();
                tell.dedup();
                for c in tell {
                    if c != conn {
                        self.enqueue(c, &AMessage::Group(GroupEnvelope::Del), Note::None);
                    }
                }
                let conns = self.member_conns(group);
                self.drop_group(group, &conns);
                self.event(Event::Deleted {
                    group: group.to_owned(),
                    by: Some(MemberId(sender)),
                });
            }
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
                let anchor = smp_groups_integrity::Anchor::At {
                    msg_id: ext_msg_id,
                    digest,
                };
                let started = self
                    .groups
                    .get_mut(group)
                    .is_some_and(|g| g.integrity.rewind(MemberId(sender), anchor));
                if started {
                    tracing::debug!(group, member = %MemberId(sender), from = ext_msg_id, "catch-up started");
                } else {
                    // Not earlier than the anchor it gave us (the first
                    // attempt already carried this one), or one in progress.
                    self.refuse(
                        FaultSource::Nobody,
                        FaultKind::Stale,
                        at,
                        &format!("CATCHUP from {ext_msg_id}: nothing to catch up"),
                    );
                }
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
            GroupEnvelope::Check(check) => {
                if let Some(theirs) = check.members {
                    self.compare_members(group, sender, theirs);
                }
                let now = Timestamp::from_millis(self.now);
                let Some(g) = self.groups.get_mut(group) else {
                    // Internal: found above in this input.
                    return;
                };
                match g.integrity.on_check(MemberId(sender), seq, &check, now) {
                    Ok(vs) => {
                        for v in vs {
                            self.event(Event::Violation {
                                group: group.to_owned(),
                                violation: v,
                            });
                        }
                    }
                    Err(e) => {
                        let (source, kind) = check_fault(&e);
                        self.refuse(source, kind, at, &format!("G_CHECK: {e}"));
                    }
                }
            }
        }
    }

    /// Member `x` is removed by `by` (a `REM` we accept): its connections
    /// retire and the client is told. A member not known yet is never
    /// accepted later.
    ///
    /// With `notify`, we tell `x` ourselves with `OUT` (as if we removed it):
    /// for a removal whose remover is gone, whose own `OUT` may never have
    /// reached `x` (its connection with `x` was not ready when it left).
    pub(crate) fn apply_removal(&mut self, group: &str, x: Mid, by: Mid, notify: bool) {
        let conn = self
            .groups
            .get(group)
            .and_then(|g| g.members.get(&x))
            .map(|m| m.conn);
        // Members we are adding may be unknown to the remover (it removed
        // before it heard of them) while we introduced them to `x`: they hear
        // of the removal from us, as of a deletion.
        let remover = self
            .groups
            .get(group)
            .and_then(|g| g.members.get(&by))
            .and_then(|m| m.conn);
        let target = conn.flatten();
        for c in self.unfinished_add_conns(group) {
            if Some(c) != remover && Some(c) != target {
                self.enqueue(
                    c,
                    &AMessage::Group(GroupEnvelope::Rem(MemberId(x))),
                    Note::None,
                );
            }
        }
        if let Some(conn) = conn {
            if let (true, Some(c)) = (notify, conn) {
                self.enqueue(c, &AMessage::Group(GroupEnvelope::Out), Note::None);
            }
            self.retire_member(group, x, notify);
            self.member_gone(group, x);
            self.event(Event::Removed {
                group: group.to_owned(),
                member: MemberId(x),
                by: Some(MemberId(by)),
            });
        } else if let Some(g) = self.groups.get_mut(group) {
            g.gone.insert(x);
        }
        self.check_empty(group);
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

    /// We are removed by `by`: forget the group.
    fn removed_by(&mut self, group: &str, by: Mid) {
        // Removed by a member we had removed ourselves (the two removals
        // crossed): its `REM` of us reaches only the members it was connected
        // with, and it is out too, so the members it never reached (those we
        // added since, or while it was being connected with them) would keep
        // us for ever. Every member we hold hears `LEFT` from us. Otherwise
        // the members we were adding cannot complete their join: tell them.
        let crossed = self.groups.get(group).is_some_and(|g| g.gone.contains(&by));
        let tell = if crossed {
            self.member_conns(group)
        } else {
            self.unfinished_add_conns(group)
        };
        for c in tell {
            self.enqueue(c, &AMessage::Group(GroupEnvelope::Left), Note::None);
        }
        let mut conns = self.member_conns(group);
        // Retired connections (members we removed) close too.
        conns.extend(
            self.conns
                .iter()
                .filter(|(_, c)| {
                    c.retire_at.is_some()
                        && matches!(&c.owner, Owner::Member { group: g, .. } if g == group)
                })
                .map(|(id, _)| *id),
        );
        self.drop_group(group, &conns);
        self.event(Event::Out {
            group: group.to_owned(),
            by: MemberId(by),
        });
    }

    /// The connections of the members we are adding whose join is not done.
    /// Connections of the members we added whose introduction to `x` still
    /// waits for `x`'s invitation: `x` may not know them yet.
    fn introduced_late_to(&self, group: &str, x: Mid) -> Vec<u64> {
        self.groups
            .get(group)
            .map(|g| {
                g.adds
                    .iter()
                    .filter(|(y, a)| **y != x && a.awaiting_inv.contains(&x))
                    .filter_map(|(y, _)| g.members.get(y).and_then(|m| m.conn))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn unfinished_add_conns(&self, group: &str) -> Vec<u64> {
        self.groups
            .get(group)
            .map(|g| {
                g.adds
                    .iter()
                    .filter(|(_, a)| !a.done)
                    .filter_map(|(x, _)| g.members.get(x).and_then(|m| m.conn))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn member_info(&self, group: &str, member: Mid) -> Option<MemberInfo> {
        let g = self.groups.get(group)?;
        let (key, profile) = if member == g.me {
            (
                *g.signing_key.public_key().as_bytes(),
                g.profiles.mine.clone(),
            )
        } else {
            let m = g.members.get(&member)?;
            (m.signing_key.unwrap_or([0; 32]), m.profile.clone())
        };
        Some(MemberInfo {
            member_id: MemberId(member),
            signing_key: key,
            profile: Profile::new(profile).ok()?,
        })
    }

    /// Our invitation for a member is ready: hand it to whoever needs it.
    pub(crate) fn on_invitation_ready(
        &mut self,
        group: &str,
        member: Mid,
        _conn: u64,
        invitation: Vec<u8>,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            // Not an input: we left the group while the queue was created
            // (its connection closes with the group).
            return;
        };
        if let Some(add) = g.adds.get_mut(&member)
            && let Some(via) = add.via_conn.take()
        {
            // We introduce `member`: the `GROUP` invitation on the visible connection.
            let info = add.group_info.clone();
            let gid = g.id;
            self.touch_group(group);
            let me = self.groups.get(group).map_or([0; 16], |g| g.me);
            let parts = self
                .member_info(group, me)
                .ok_or_else(|| "no member info".to_owned());
            let parts = parts.and_then(|introducer| {
                Ok((
                    introducer,
                    Invitation::new(invitation).map_err(|e| e.to_string())?,
                    smp_groups_wire::agent::GroupInfo::new(info).map_err(|e| e.to_string())?,
                ))
            });
            let (introducer, invitation, group_info) = match parts {
                Ok(p) => p,
                Err(e) => {
                    // The invitee never gets its invitation.
                    self.report(
                        FaultSource::Local,
                        FaultKind::Internal,
                        At::member(group, Some(member), Some(via)),
                        &format!("GROUP invitation: {e}"),
                    );
                    return;
                }
            };
            let env = GroupEnvelope::Group(smp_groups_wire::agent::GroupInvitation {
                group_id: smp_groups_wire::agent::GroupId(gid),
                member_id: MemberId(member),
                introducer,
                invitation,
                group_info,
            });
            self.enqueue(via, &AMessage::Group(env), Note::None);
            return;
        }
        if let Some(by) = g.members.get(&member).and_then(|m| m.introduced_by) {
            // Answer to an `INTRO`: our invitation goes back to the introducer.
            if let Some(c) = g.members.get(&by).and_then(|m| m.conn) {
                self.send_inv(c, member, invitation);
            }
        }
    }

    pub(crate) fn send_inv(&mut self, conn: u64, member: Mid, invitation: Vec<u8>) {
        if let Ok(invitation) = Invitation::new(invitation) {
            let env = GroupEnvelope::Inv {
                member_id: MemberId(member),
                invitation,
            };
            self.enqueue(conn, &AMessage::Group(env), Note::None);
        }
    }

    /// `INTRO`: `by` introduces a new member to us; we invite it. `LINTRO`
    /// (`late`): the new member joined concurrently with us, and gets our
    /// messages since our join again (`crate::history`).
    fn on_intro(&mut self, conn: u64, group: &str, by: Mid, info: &MemberInfo, late: bool) {
        let x = info.member_id.0;
        let Some(g) = self.groups.get(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        if x == g.me || g.members.contains_key(&x) || g.gone.contains(&x) {
            // Already known (a concurrent introduction) or gone: an empty
            // invitation tells the introducer not to wait for us.
            if late && g.members.contains_key(&x) {
                self.catch_up_known(group, x);
            }
            self.send_inv(conn, x, Vec::new());
            return;
        }
        let mut m = self.new_member(group, Some(by));
        m.signing_key = Some(info.signing_key);
        m.profile = info.profile.as_slice().to_vec();
        if late && let Some(anchor) = self.catch_up_anchor(group) {
            m.my_anchor = anchor;
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.insert_member(x, m);
        }
        let cid = self.new_inviter_conn(Owner::Member {
            group: group.to_owned(),
            member: x,
        });
        if let Some(m) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(&x))
        {
            m.conn = Some(cid);
        }
        if late {
            self.replay_sent(group, x, cid);
        }
        self.tell_removals(group, x, cid);
        self.introduce_late(group, x);
    }

    /// `INV`: member `from` invites the member `x` we introduce.
    fn on_inv(&mut self, group: &str, from: Mid, x: Mid, invitation: Invitation) {
        let Some(g) = self.groups.get_mut(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        let awaited = g
            .adds
            .get_mut(&x)
            .is_some_and(|add| add.awaiting_inv.remove(&from));
        if !awaited {
            // Its add ended (the member left or was removed), or the answer
            // came already.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::member(group, Some(from), None),
                &format!("INV for {} that we do not wait for", MemberId(x)),
            );
            return;
        }
        let target = g.members.get(&x).and_then(|m| m.conn);
        if !invitation.is_empty()
            && let (Some(c), Some(info)) = (target, self.member_info(group, from))
        {
            let env = GroupEnvelope::Fwd {
                member: info,
                invitation,
            };
            self.enqueue(c, &AMessage::Group(env), Note::None);
        }
        self.maybe_send_mem(group, x);
    }

    /// `FWD`: our introducer forwards member `info`'s invitation.
    fn on_fwd(&mut self, group: &str, by: Mid, info: &MemberInfo, invitation: &[u8]) {
        let x = info.member_id.0;
        let at = At::member(group, Some(by), None);
        let Some(g) = self.groups.get(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        if x == g.me {
            self.refuse(
                FaultSource::Peer,
                FaultKind::Unexpected,
                at,
                &"FWD of ourselves",
            );
            return;
        }
        if g.gone.contains(&x) {
            let detail = format!("FWD for {} that is gone", MemberId(x));
            self.refuse(FaultSource::Nobody, FaultKind::Stale, at, &detail);
            return;
        }
        let invite = match smp_groups_wire::decode_all::<ConnInvitation>(invitation) {
            Ok(invite) => invite,
            Err(e) => {
                let detail = format!("FWD for {}: invitation: {e}", MemberId(x));
                self.refuse(FaultSource::Peer, FaultKind::Malformed, at, &detail);
                return;
            }
        };
        if let Some(existing) = g.members.get(&x) {
            if existing.status != MemberStatus::Pending {
                // Introduced twice (concurrent introductions).
                let detail = format!("FWD for {} we are connected to", MemberId(x));
                self.refuse(FaultSource::Nobody, FaultKind::Duplicate, at, &detail);
                return;
            }
            // Introduced both ways at once: our invitation and theirs cross.
            // Both attempts go on (closing one could strand the other side,
            // which may already be joining it); the first one established is
            // used, and the other stays open until the member goes.
            tracing::debug!(group, member = %MemberId(x), "FWD for a pending member: a second attempt");
            let anchor = existing.my_anchor;
            if existing.peer_anchor.is_none()
                && let Some(m) = self
                    .groups
                    .get_mut(group)
                    .and_then(|g| g.members.get_mut(&x))
            {
                m.peer_anchor = invite.anchor.map(Into::into);
            }
            let (me, my_key) = {
                let Some(g) = self.groups.get(group) else {
                    return;
                };
                (g.me, *g.signing_key.public_key().as_bytes())
            };
            if let Err(e) = self.new_joiner_conn(
                Owner::Member {
                    group: group.to_owned(),
                    member: x,
                },
                &invite,
                Some((me, my_key, Vec::new())),
                Some(anchor),
                Vec::new(),
            ) {
                let detail = format!("FWD for {}: {e}", MemberId(x));
                self.refuse(FaultSource::Peer, FaultKind::Malformed, at, &detail);
            }
            self.touch_group(group);
            return;
        }
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let mut m = self.new_member(group, Some(by));
        m.signing_key = Some(info.signing_key);
        m.profile = info.profile.as_slice().to_vec();
        m.peer_anchor = invite.anchor.map(Into::into);
        let my_anchor = m.my_anchor;
        let me = g.me;
        let my_key = *g.signing_key.public_key().as_bytes();
        // The connection first: the member is added only if it can start.
        let cid = match self.new_joiner_conn(
            Owner::Member {
                group: group.to_owned(),
                member: x,
            },
            &invite,
            Some((me, my_key, Vec::new())),
            Some(my_anchor),
            Vec::new(),
        ) {
            Ok(cid) => cid,
            Err(e) => {
                let detail = format!("FWD for {}: {e}", MemberId(x));
                self.refuse(FaultSource::Peer, FaultKind::Malformed, at, &detail);
                return;
            }
        };
        m.conn = Some(cid);
        if let Some(g) = self.groups.get_mut(group) {
            g.insert_member(x, m);
        }
        self.tell_removals(group, x, cid);
        self.introduce_late(group, x);
    }

    /// We learned of member `x` from someone else: every member we introduced
    /// earlier who was not introduced to `x` gets introduced now.
    pub(crate) fn introduce_late(&mut self, group: &str, x: Mid) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(xconn) = g.members.get(&x).and_then(|m| m.conn) else {
            return;
        };
        let mut targets = Vec::new();
        for (y, add) in &mut g.adds {
            if *y != x && add.connected && !add.introduced_to.contains(&x) {
                add.introduced_to.insert(x);
                add.awaiting_inv.insert(x);
                targets.push(*y);
            }
        }
        for y in targets {
            if let Some(info) = self.member_info(group, y) {
                self.enqueue(
                    xconn,
                    &AMessage::Group(GroupEnvelope::IntroLate(info)),
                    Note::None,
                );
            }
        }
    }

    /// `MEM x` from `from`.
    fn on_mem(&mut self, group: &str, from: Mid, x: Mid) {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.groups.get_mut(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        if x == g.me {
            if let Some(j) = g.join.as_mut()
                && j.introducer == from
            {
                j.intros_done = true;
            } else {
                // Only our introducer announces us.
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Unexpected,
                    at,
                    &"MEM of ourselves from a member that did not introduce us",
                );
                return;
            }
            self.check_join_done(group);
            return;
        }
        if x == from {
            // The member we introduced is connected to all it was introduced to.
            let Some(add) = g.adds.get_mut(&x) else {
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Unexpected,
                    at,
                    &"MEM of itself from a member we did not add",
                );
                return;
            };
            if add.done {
                self.refuse(
                    FaultSource::Nobody,
                    FaultKind::Duplicate,
                    at,
                    &"MEM of itself again",
                );
                return;
            }
            add.done = true;
            let to: Vec<Mid> = add.introduced_to.iter().copied().collect();
            if let Some(m) = g.members.get_mut(&x) {
                m.status = MemberStatus::Full;
            }
            let conns: Vec<u64> = to
                .iter()
                .filter_map(|t| g.members.get(t).and_then(|m| m.conn))
                .collect();
            for c in conns {
                self.enqueue(
                    c,
                    &AMessage::Group(GroupEnvelope::Mem(MemberId(x))),
                    Note::None,
                );
            }
            self.event(Event::Mem {
                group: group.to_owned(),
                member: Some(MemberId(x)),
            });
            return;
        }
        // Another member's introducer announces it connected to all. That
        // says nothing of our own connection with it: a pending member stays
        // pending (it may have learned of us only after its `MEM`, and our two
        // invitations may still be crossing) and becomes full once connected.
        match g.members.get_mut(&x) {
            Some(m) if m.status == MemberStatus::Connected => {
                m.status = MemberStatus::Full;
                self.event(Event::Mem {
                    group: group.to_owned(),
                    member: Some(MemberId(x)),
                });
            }
            Some(m) if m.status == MemberStatus::Pending => m.announced = true,
            Some(_) => {}
            None => {
                // It left or was removed meanwhile, or we have not heard of it yet.
                let detail = format!("MEM for {} we do not know", MemberId(x));
                self.refuse(FaultSource::Nobody, FaultKind::Stale, at, &detail);
            }
        }
    }

    fn on_group_msg(
        &mut self,
        group: &str,
        from: Mid,
        (ext_msg_id, snd_ts): (u64, u64),
        content: &[u8],
    ) -> bool {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.groups.get_mut(group) else {
            // Internal: found by our caller in this input.
            return false;
        };
        let r = match g.integrity.on_received(MemberId(from), ext_msg_id, content) {
            Ok(r) => r,
            Err(e) => {
                let (source, kind) = match e {
                    // Not connected yet on our side (its first message
                    // overtook the handshake), or gone.
                    smp_groups_integrity::ReceiveError::UnknownSender(_) => {
                        (FaultSource::Nobody, FaultKind::Stale)
                    }
                    smp_groups_integrity::ReceiveError::TooFarAhead { .. } => {
                        (FaultSource::Peer, FaultKind::OverLimit)
                    }
                    _ => (FaultSource::Peer, FaultKind::Unexpected),
                };
                self.refuse(source, kind, at, &format!("MSG {ext_msg_id}: {e}"));
                return false;
            }
        };
        let dropped = match r.delivery {
            Delivery::Chained { .. } | Delivery::Held { .. } | Delivery::Backfilled => None,
            // The same message on two connections with the member (an open
            // invitation slot and another), or again after a restart.
            Delivery::Duplicate => Some((FaultSource::Nobody, FaultKind::Duplicate)),
            // Older than our anchor (sent before we joined) or the window.
            Delivery::Stale => Some((FaultSource::Nobody, FaultKind::Stale)),
            Delivery::Conflict => Some((FaultSource::Peer, FaultKind::Conflict)),
        };
        if let Some((source, kind)) = dropped {
            self.refuse(source, kind, at, &format!("MSG {ext_msg_id}"));
        }
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let deliver = matches!(
            r.delivery,
            Delivery::Chained { .. } | Delivery::Held { .. } | Delivery::Backfilled
        );
        let mut events = Vec::new();
        if deliver {
            let msg_id = g.next_msg_id;
            g.next_msg_id += 1;
            g.recvs.insert(
                msg_id,
                RecvTrack {
                    from,
                    ext_msg_id,
                    content_hash: smp_groups_integrity::chain::content_hash(content).0,
                },
            );
            // A gap is reported once, by the first message after it.
            let below = g.integrity.received_below(MemberId(from), ext_msg_id);
            let integrity = match (r.delivery, below) {
                (Delivery::Held { .. }, Some(b)) if b.saturating_add(1) < ext_msg_id => {
                    crate::MsgIntegrity::Skipped {
                        from: b + 1,
                        to: ext_msg_id - 1,
                    }
                }
                _ => crate::MsgIntegrity::Ok,
            };
            let meta = self.msg_meta(ext_msg_id, snd_ts, integrity);
            events.push(Event::Msg {
                group: group.to_owned(),
                member: MemberId(from),
                msg_id,
                meta,
                body: content.to_vec(),
            });
        }
        for v in r.violations {
            events.push(Event::Violation {
                group: group.to_owned(),
                violation: v,
            });
        }
        for e in events {
            self.event(e);
        }
        deliver
    }

    fn on_rcvd(
        &mut self,
        group: &str,
        from: Mid,
        ext_msg_id: u64,
        digest: smp_groups_wire::agent::Digest,
        sig: Option<[u8; 64]>,
    ) {
        self.on_receipts(group, from, &[(ext_msg_id, digest)], sig, |gid, me| {
            smp_groups_integrity::receipts_payload(
                &smp_groups_wire::agent::GroupId(gid),
                &MemberId(me),
                &MemberId(from),
                &[(ext_msg_id, digest)],
            )
        });
    }

    /// Receipts of `from` for our messages (`RCVD`: one, `RCVDS`: several)
    /// under one signature over `payload(group id, our id)`. The signature is
    /// checked once, and only if one of them is still awaited.
    fn on_receipts(
        &mut self,
        group: &str,
        from: Mid,
        receipts: &[(u64, smp_groups_wire::agent::Digest)],
        sig: Option<[u8; 64]>,
        payload: impl FnOnce([u8; 16], Mid) -> Vec<u8>,
    ) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let awaited = receipts.iter().any(|(id, _)| {
            g.ext_to_int
                .get(id)
                .and_then(|int_id| g.sends.get(int_id))
                .is_some_and(|t| t.rcvd_pending.contains(&from))
        });
        if !awaited {
            return;
        }
        let required = self.cfg.receipts.sign;
        let refused = match receipt_sig(g, from, sig, payload) {
            Sig::Valid => None,
            Sig::Missing if !required => None,
            Sig::Missing => {
                Some("unsigned or from a member whose key is unknown, while signed receipts are on")
            }
            Sig::Bad => Some("with a bad signature"),
        };
        if let Some(why) = refused {
            let detail = format!("{} receipt(s) {why}", receipts.len());
            self.refuse(
                FaultSource::Peer,
                FaultKind::BadSignature,
                At::member(group, Some(from), None),
                &detail,
            );
        }
        let sig_ok = refused.is_none();
        if let (Some(sig), true) = (sig, sig_ok) {
            // Signed and valid: kept as proof, and re-broadcast.
            let me = self.groups.get(group).map(|g| g.me);
            if let Some(me) = me {
                self.keep_receipt(group, (me, from), receipts, sig);
            }
        }
        for (id, digest) in receipts {
            self.apply_receipt(group, from, *id, *digest, sig_ok);
        }
    }

    /// One receipt of `from` for our message `ext_msg_id`, its signature
    /// already checked.
    fn apply_receipt(
        &mut self,
        group: &str,
        from: Mid,
        ext_msg_id: u64,
        digest: smp_groups_wire::agent::Digest,
        sig_ok: bool,
    ) {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.groups.get_mut(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        let Some(t) = g
            .ext_to_int
            .get(&ext_msg_id)
            .copied()
            .and_then(|int_id| Some((int_id, g.sends.get_mut(&int_id)?)))
        else {
            // The send is complete (everyone else answered, or stopped
            // waiting for this member).
            let detail = format!("receipt for {ext_msg_id}, a send no longer tracked");
            self.refuse(FaultSource::Nobody, FaultKind::Stale, at, &detail);
            return;
        };
        let (int_id, t) = t;
        if !t.rcvd_pending.remove(&from) {
            let detail = format!("receipt for {ext_msg_id} again");
            self.refuse(FaultSource::Nobody, FaultKind::Duplicate, at, &detail);
            return;
        }
        let status = if !sig_ok {
            crate::ReceiptStatus::BadSig
        } else if digest.0 == t.content_hash {
            crate::ReceiptStatus::Ok
        } else {
            crate::ReceiptStatus::BadHash
        };
        t.status = t.status.worst(status);
        self.event(Event::Rcvd {
            group: group.to_owned(),
            member: Some(MemberId(from)),
            msg_id: int_id,
            status,
        });
        self.finish_send_track(group, int_id);
    }
}

/// What a receipt's signature shows.
enum Sig {
    /// It verifies with the member's key.
    Valid,
    /// It does not verify.
    Bad,
    /// There is none, or the member's key is unknown: valid only while
    /// signed receipts are off.
    Missing,
}

/// Checks a receipt signature by `from` over `payload(group id, our id)`.
fn receipt_sig(
    g: &crate::state::Group,
    from: Mid,
    sig: Option<[u8; 64]>,
    payload: impl FnOnce([u8; 16], Mid) -> Vec<u8>,
) -> Sig {
    let key = g.members.get(&from).and_then(|m| m.signing_key);
    match (sig, key) {
        (Some(s), Some(k)) => {
            let ok = PublicKey::from_bytes(k)
                .verify(
                    &payload(g.id, g.me),
                    &smp_groups_crypto::ed25519::Signature::from_bytes(s),
                )
                .is_ok();
            if ok { Sig::Valid } else { Sig::Bad }
        }
        _ => Sig::Missing,
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

/// Whose fault a refused `G_CHECK` is: an old one again is a race (checks
/// cross on the way, or are sent again after a restart); the others are
/// malformed.
fn check_fault(e: &smp_groups_integrity::CheckError) -> (FaultSource, FaultKind) {
    use smp_groups_integrity::CheckError;
    match e {
        CheckError::Replayed { .. } | CheckError::Regressed { .. } => {
            (FaultSource::Nobody, FaultKind::Duplicate)
        }
        CheckError::UnknownReporter(_) => (FaultSource::Nobody, FaultKind::Stale),
        _ => (FaultSource::Peer, FaultKind::Malformed),
    }
}
