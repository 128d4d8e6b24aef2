//! Group commands from the client: `NEW`, `INTRO`, `JOIN`, `SEND`, `ACK`,
//! `LEAVE`, `REM`, `DEL`, and approvals.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_integrity::{GroupIntegrity, MAX_MEMBERS, Timestamp};
use smp_groups_wire::Reader;
use smp_groups_wire::agent::{AMessage, Content, Digest, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::conn::InviteRec;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{
    AddTrack, AnchorRec, ChangeRec, Group, GroupStatus, JoinTrack, Member, MemberStatus, Mid, Note,
    Owner, SendTrack,
};

impl Agent {
    fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn new_group_state(&mut self, id: [u8; 16], me: Mid, info: Vec<u8>) -> Group {
        let signing_seed: [u8; 32] = self.random_bytes();
        let mut config = smp_groups_integrity::Config::new(smp_groups_wire::agent::GroupId(id));
        config.check_interval_ms = self.cfg.check_interval_ms;
        config.check_every_messages = self.cfg.check_every_messages;
        // A member behind another's check gets one check interval to catch
        // up (60 s at most, the integrity default), so a withholding is
        // reported within two rounds however short the interval is.
        if let Some(t) = self.cfg.check_interval_ms {
            config.lag_grace_ms = config.lag_grace_ms.min(t.max(1));
        }
        config.max_members = MAX_MEMBERS;
        config.window = self.cfg.check_window.max(1);
        config.max_held = self.cfg.check_window.max(1);
        let mut integrity =
            GroupIntegrity::new(config, MemberId(me), Timestamp::from_millis(self.now));
        let signing_key = SigningKey::from_seed(signing_seed);
        integrity.set_own_signing_key(signing_key.public_key());
        Group {
            id,
            info,
            me,
            signing_key,
            status: GroupStatus::Active,
            members: BTreeMap::new(),
            integrity,
            next_msg_id: 1,
            sends: BTreeMap::new(),
            ext_to_int: BTreeMap::new(),
            recvs: BTreeMap::new(),
            adds: BTreeMap::new(),
            join: None,
            removals: BTreeMap::new(),
            approvals: BTreeMap::new(),
            open_invs: BTreeMap::new(),
            open_offered: BTreeMap::new(),
            gone: BTreeSet::new(),
            had_members: false,
            history: BTreeMap::new(),
            history_dropped: false,
            direct: crate::direct::DirectBook::default(),
            profiles: crate::profile::Profiles::default(),
            shared: BTreeMap::new(),
            history_seen: BTreeSet::new(),
            members_mismatch: BTreeMap::new(),
            proofs: crate::proof::ProofBook::default(),
        }
    }

    pub(crate) fn active_group(&mut self, alias: &str) -> Result<&mut Group, CommandError> {
        let g = self.group_mut(alias)?;
        if g.status != GroupStatus::Active {
            return Err(CommandError::State("the group is being deleted"));
        }
        Ok(g)
    }

    pub(crate) fn new_member(&self, alias: &str, introduced_by: Option<Mid>) -> Member {
        let my_anchor = self
            .groups
            .get(alias)
            .map_or(AnchorRec::Genesis, |g| g.integrity.self_anchor().into());
        Member {
            conn: None,
            status: MemberStatus::Pending,
            signing_key: None,
            profile: Vec::new(),
            since: self.now,
            introduced_by,
            my_anchor,
            peer_anchor: None,
            announced: false,
            receipts: Vec::new(),
            receipts_due: None,
        }
    }

    pub(crate) fn cmd_new_group(
        &mut self,
        alias: Option<String>,
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let alias = self.take_alias(alias, "g")?;
        let id: [u8; 16] = self.random_bytes();
        let me: Mid = self.random_bytes();
        let g = self.new_group_state(id, me, info);
        self.groups.insert(alias.clone(), g);
        self.touch_group(&alias);
        Ok(Event::Ok { alias })
    }

    pub(crate) fn cmd_intro(
        &mut self,
        conn: &str,
        group: &str,
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let via = self.visible_conn(conn)?;
        if self
            .conns
            .get(&via)
            .is_none_or(|c| c.status != crate::state::ConnStatus::Ready)
        {
            return Err(CommandError::State("the connection is not established"));
        }
        let g = self.active_group(group)?;
        if g.joining() {
            // We do not know every member yet: whoever we added would not either.
            return Err(CommandError::State("our own join is not complete"));
        }
        let member: Mid = self.random_bytes();
        let m = self.new_member(group, None);
        let g = self.group_mut(group)?;
        g.insert_member(member, m);
        g.adds.insert(
            member,
            AddTrack {
                via_conn: Some(via),
                group_info: info,
                ..AddTrack::default()
            },
        );
        let cid = self.new_inviter_conn(Owner::Member {
            group: group.to_owned(),
            member,
        });
        if let Some(m) = self.group_mut(group)?.members.get_mut(&member) {
            m.conn = Some(cid);
        }
        self.touch_group(group);
        Ok(Event::Ok {
            alias: conn.to_owned(),
        })
    }

    /// Forgets a received group invitation (`RJCT`).
    pub(crate) fn cmd_reject_invitation(
        &mut self,
        invitation: &str,
    ) -> Result<Event, CommandError> {
        if self.invitations.remove(invitation).is_none() {
            return Err(CommandError::NoInvitation(invitation.to_owned()));
        }
        self.dirty
            .insert(crate::store::Key::Invitation(invitation.to_owned()));
        Ok(Event::Ok {
            alias: invitation.to_owned(),
        })
    }

    pub(crate) fn cmd_join_group(
        &mut self,
        alias: Option<String>,
        invitation: &str,
    ) -> Result<Event, CommandError> {
        let inv = self
            .invitations
            .get(invitation)
            .ok_or_else(|| CommandError::NoInvitation(invitation.to_owned()))?;
        let limits = self.limits();
        let mut r = Reader::new(&inv.envelope);
        let Ok(AMessage::Group(GroupEnvelope::Group(gi))) = AMessage::read(&mut r, &limits) else {
            return Err(CommandError::NoInvitation(invitation.to_owned()));
        };
        let invite: InviteRec = postcard::from_bytes(gi.invitation.as_slice())
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        // Checked before anything changes (the connection parses them again).
        smp_groups_crypto::ratchet::X3dhParams::from_bytes(&invite.params)
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        let alias = self.take_alias(alias, "g")?;
        let me = gi.member_id.0;
        let introducer = gi.introducer.member_id.0;
        let g = self.new_group_state(gi.group_id.0, me, gi.group_info.into_vec());
        let my_info = (me, *g.signing_key.public_key().as_bytes(), Vec::new());
        self.groups.insert(alias.clone(), g);
        let mut m = self.new_member(&alias, None);
        m.signing_key = Some(gi.introducer.signing_key);
        m.profile = gi.introducer.profile.into_vec();
        m.peer_anchor = invite.anchor;
        let my_anchor = m.my_anchor;
        let g = self.group_mut(&alias)?;
        g.insert_member(introducer, m);
        let deadline = self.now.saturating_add(self.cfg.pending_member_ttl_ms);
        let g = self.group_mut(&alias)?;
        g.join = Some(JoinTrack {
            introducer,
            intros_done: false,
            done: false,
            deadline,
        });
        let cid = match self.new_joiner_conn(
            Owner::Member {
                group: alias.clone(),
                member: introducer,
            },
            &invite,
            Some(my_info),
            Some(my_anchor),
            Vec::new(),
        ) {
            Ok(cid) => cid,
            Err(e) => {
                // Nothing of the join stays behind.
                self.forget_sent(&alias);
                self.forget_shared(&alias);
                self.groups.remove(&alias);
                self.touch_group(&alias);
                return Err(e);
            }
        };
        if let Some(m) = self.group_mut(&alias)?.members.get_mut(&introducer) {
            m.conn = Some(cid);
        }
        self.invitations.remove(invitation);
        self.dirty
            .insert(crate::store::Key::Invitation(invitation.to_owned()));
        self.touch_group(&alias);
        Ok(Event::Ok { alias })
    }

    pub(crate) fn cmd_send(&mut self, group: &str, body: Vec<u8>) -> Result<Event, CommandError> {
        if body.len() > self.cfg.max_message_len {
            return Err(CommandError::TooLarge {
                len: body.len(),
                max: self.cfg.max_message_len,
            });
        }
        // Members whose queue is gone get nothing more.
        let gone: BTreeSet<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer_gone_at.is_some())
            .map(|(id, _)| *id)
            .collect();
        // Everything that can fail before the group changes.
        let content = Content::new(body).map_err(|e| CommandError::Internal(e.to_string()))?;
        #[cfg(feature = "cheat")]
        let cheat = self.cheat;
        let g = self.active_group(group)?;
        let prev: AnchorRec = g.integrity.self_anchor().into();
        let sent = g
            .integrity
            .on_sent(content.as_slice())
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let int_id = g.next_msg_id;
        g.next_msg_id += 1;
        #[cfg_attr(not(feature = "cheat"), allow(unused_mut))]
        let mut targets: Vec<(Mid, u64)> = g
            .members
            .iter()
            .filter_map(|(id, m)| m.conn.map(|c| (*id, c)))
            .filter(|(_, c)| !gone.contains(c))
            .collect();
        // A cheater (tests only) leaves some targets out, or sends them
        // other content, under the same id; its own chain stays honest.
        #[cfg(feature = "cheat")]
        let cheat_plan = cheat.map(|c| {
            let ids: Vec<Mid> = targets.iter().map(|(m, _)| *m).collect();
            c.plan(sent.ext_msg_id, &ids)
        });
        #[cfg(feature = "cheat")]
        if let Some(plan) = &cheat_plan {
            targets.retain(|(m, _)| !plan.withheld.contains(m));
        }
        g.ext_to_int.insert(sent.ext_msg_id, int_id);
        g.sends.insert(
            int_id,
            SendTrack {
                ext_msg_id: sent.ext_msg_id,
                content_hash: sent.content_hash.0,
                sent_pending: targets.iter().map(|(m, _)| *m).collect(),
                rcvd_pending: targets.iter().map(|(m, _)| *m).collect(),
                status: crate::ReceiptStatus::Ok,
                sent_done: false,
            },
        );
        self.touch_group(group);
        self.expect_receipts(
            group,
            sent.ext_msg_id,
            targets.iter().map(|(m, _)| *m).collect(),
        );
        let snd_ts = self.now;
        self.keep_sent(group, sent.ext_msg_id, prev, snd_ts, content.as_slice());
        let env = match self.sign_group_msg(group, sent.ext_msg_id, snd_ts, &content) {
            Some(signed) => signed,
            None => GroupEnvelope::Msg {
                ext_msg_id: sent.ext_msg_id,
                snd_ts,
                content,
            },
        };
        let msg = AMessage::Group(env);
        #[cfg(feature = "cheat")]
        let altered_msg = cheat_plan
            .as_ref()
            .filter(|p| !p.altered.is_empty())
            .and_then(|_| {
                let AMessage::Group(GroupEnvelope::Msg { content, .. }) = &msg else {
                    return None;
                };
                let mut body = content.as_slice().to_vec();
                body.extend_from_slice(crate::cheat::EQUIVOCATION_MARK);
                Some(AMessage::Group(GroupEnvelope::Msg {
                    ext_msg_id: sent.ext_msg_id,
                    snd_ts,
                    content: Content::new(body).ok()?,
                }))
            });
        for (member, conn) in &targets {
            #[cfg(feature = "cheat")]
            let msg = match (&altered_msg, &cheat_plan) {
                (Some(alt), Some(p)) if p.altered.contains(member) => alt,
                _ => &msg,
            };
            #[cfg(not(feature = "cheat"))]
            let msg = &msg;
            self.enqueue(
                *conn,
                msg,
                Note::GroupMsg {
                    int_id,
                    member: *member,
                },
            );
        }
        // Open invitation slots get it too: the member who will use one has
        // the slot's anchor, and reads on from there.
        let slots: Vec<u64> = self
            .groups
            .get(group)
            .map(|g| g.open_offered.values().copied().collect())
            .unwrap_or_default();
        for c in slots {
            self.enqueue(c, &msg, Note::None);
        }
        if targets.is_empty() {
            self.finish_send_track(group, int_id);
        }
        Ok(Event::Queued {
            alias: group.to_owned(),
            msg_id: int_id,
        })
    }

    pub(crate) fn cmd_ack(&mut self, group: &str, msg_id: u64) -> Result<Event, CommandError> {
        let policy = self.cfg.receipts;
        let now = self.now;
        let g = self.group_mut(group)?;
        let r = g.recvs.remove(&msg_id).ok_or(CommandError::NoId(msg_id))?;
        // A member that is gone gets no receipt.
        let full = g.members.get_mut(&r.from).is_some_and(|m| {
            m.receipts.push((r.ext_msg_id, r.content_hash));
            m.receipts_due
                .get_or_insert(now.saturating_add(policy.max_delay_ms));
            m.receipts.len() >= policy.batch_len() || policy.max_delay_ms == 0
        });
        self.touch_group(group);
        if full {
            self.send_receipts(group, r.from);
        }
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// Sends the receipts waiting for member `x`: one `RCVD` for a single
    /// message, otherwise `RCVDS` envelopes of up to the policy's batch size,
    /// each with one signature.
    pub(crate) fn send_receipts(&mut self, group: &str, x: Mid) {
        let policy = self.cfg.receipts;
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let (gid, me) = (smp_groups_wire::agent::GroupId(g.id), MemberId(g.me));
        let Some(m) = g.members.get_mut(&x) else {
            return;
        };
        let pending = std::mem::take(&mut m.receipts);
        m.receipts_due = None;
        let Some(conn) = m.conn else {
            tracing::debug!(group, member = %MemberId(x), count = pending.len(), "receipts for a member not connected: dropped");
            return;
        };
        let mut envs = Vec::new();
        let mut signed = Vec::new();
        for chunk in pending.chunks(policy.batch_len()) {
            let list: Vec<(u64, Digest)> = chunk.iter().map(|(id, h)| (*id, Digest(*h))).collect();
            // RCVD and RCVDS sign the same bytes: the list form.
            let sig = policy.sign.then(|| {
                let payload =
                    smp_groups_integrity::receipts_payload(&gid, &MemberId(x), &me, &list);
                g.signing_key.sign(&payload).to_bytes()
            });
            if let Some(sig) = sig {
                signed.push((list.clone(), sig));
            }
            let env = match list.as_slice() {
                [(id, digest)] => GroupEnvelope::Rcvd {
                    ext_msg_id: *id,
                    digest: *digest,
                    sig,
                },
                _ => GroupEnvelope::Receipts {
                    sig,
                    receipts: list,
                },
            };
            envs.push(env);
        }
        self.touch_group(group);
        for (list, sig) in signed {
            // Our own signed receipts are part of the proof we can show.
            self.keep_receipt(group, (x, me.0), &list, sig);
        }
        for env in envs {
            self.enqueue(conn, &AMessage::Group(env), Note::None);
        }
    }

    pub(crate) fn cmd_leave(&mut self, group: &str) -> Result<Event, CommandError> {
        self.group_mut(group)?;
        let conns = self.member_conns(group);
        self.send_left(group);
        self.drop_group(group, &conns);
        self.event(Event::Left {
            group: group.to_owned(),
            member: None,
        });
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    pub(crate) fn cmd_remove(&mut self, group: &str, member: Mid) -> Result<Event, CommandError> {
        let g = self.active_group(group)?;
        if g.joining() {
            // Members we do not know yet would never hear of the removal.
            return Err(CommandError::State("our own join is not complete"));
        }
        let Some(target) = g.members.get(&member) else {
            return Err(CommandError::NoMember(MemberId(member)));
        };
        let target_conn = target.conn;
        // Our `OUT` reaches the member only over an established connection:
        // if ours is not (a member we are still being connected with), the
        // others tell it too (`REMT`).
        let reached = target_conn
            .and_then(|c| self.conns.get(&c))
            .is_some_and(|c| c.status == crate::state::ConnStatus::Ready);
        let g = self.active_group(group)?;
        let others: Vec<(Mid, u64)> = g
            .members
            .iter()
            .filter(|(id, _)| **id != member)
            .filter_map(|(id, m)| m.conn.map(|c| (*id, c)))
            .collect();
        g.removals
            .insert(member, others.iter().map(|(m, _)| *m).collect());
        self.touch_group(group);
        if let Some(c) = target_conn {
            self.enqueue(c, &AMessage::Group(GroupEnvelope::Out), Note::None);
        }
        let rem = if reached {
            GroupEnvelope::Rem(MemberId(member))
        } else {
            GroupEnvelope::RemTell(MemberId(member))
        };
        for (_, c) in &others {
            self.enqueue(*c, &AMessage::Group(rem.clone()), Note::None);
        }
        self.retire_member(group, member, true);
        self.member_gone(group, member);
        self.check_removal_done(group, member);
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    pub(crate) fn cmd_delete(&mut self, group: &str) -> Result<Event, CommandError> {
        let until = self.now.saturating_add(self.cfg.removal_grace_ms);
        let g = self.active_group(group)?;
        if g.joining() {
            // Members we do not know yet would never hear of the deletion.
            return Err(CommandError::State("our own join is not complete"));
        }
        let targets: Vec<(Mid, u64)> = g
            .members
            .iter()
            .filter_map(|(id, m)| m.conn.map(|c| (*id, c)))
            .collect();
        g.status = GroupStatus::Deleting {
            waiting: targets.iter().map(|(m, _)| *m).collect(),
            until,
        };
        tracing::debug!(group, waiting = ?targets.iter().map(|(m, c)| (MemberId(*m).to_string(), *c)).collect::<Vec<_>>(), "deleting");
        self.touch_group(group);
        for (_, c) in &targets {
            self.enqueue(*c, &AMessage::Group(GroupEnvelope::Del), Note::None);
        }
        self.check_delete_done(group);
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    pub(crate) fn cmd_approve(
        &mut self,
        group: &str,
        approval: u64,
        accept: bool,
    ) -> Result<Event, CommandError> {
        let g = self.group_mut(group)?;
        let p = g
            .approvals
            .remove(&approval)
            .ok_or(CommandError::NoId(approval))?;
        self.touch_group(group);
        if let ChangeRec::OpenAdd { member, by } = p.change {
            self.answer_open_add(group, p.conn, (member, by), &p.envelope, accept);
            return Ok(Event::Ok {
                alias: group.to_owned(),
            });
        }
        let limits = self.limits();
        let mut r = Reader::new(&p.envelope);
        let env = match AMessage::read(&mut r, &limits) {
            Ok(AMessage::Group(env)) => env,
            Ok(_) => {
                let detail = "a stored approval that is not a group envelope";
                self.refuse(
                    FaultSource::Local,
                    FaultKind::Internal,
                    At::conn(p.conn),
                    &detail,
                );
                return Err(CommandError::Internal(detail.to_owned()));
            }
            Err(e) => {
                let detail = format!("a stored approval: {e}");
                self.refuse(
                    FaultSource::Local,
                    FaultKind::Internal,
                    At::conn(p.conn),
                    &detail,
                );
                return Err(CommandError::Internal(detail));
            }
        };
        let owner = self.conns.get(&p.conn).map(|c| c.owner.clone());
        // A removal approved after its remover left: the remover's envelope
        // would now be refused as coming from a member that is gone, but the
        // removal was made while it was a member (below).
        let remover_gone = accept
            && matches!(env, GroupEnvelope::Rem(_) | GroupEnvelope::RemTell(_))
            && matches!(&owner, Some(Owner::Member { group: g, member })
                if self.groups.get(g).is_some_and(|x| x.gone.contains(member)));
        if let Some(Owner::Member {
            group: gname,
            member,
        }) = owner
            && !remover_gone
        {
            if accept {
                self.apply_group_envelope(p.conn, &gname, member, 0, env);
            } else if let GroupEnvelope::Intro(info) | GroupEnvelope::IntroLate(info) = env {
                // Declined: answer with an empty invitation so the
                // introducer does not wait for us.
                self.send_inv(p.conn, info.member_id.0, Vec::new());
            } else if let GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x) = env {
                // Declined: we keep the member, but the remover's removal
                // is answered (`REMD`) so that it completes rather than
                // waiting for us for ever; the split shows in `G_CHECK`'s
                // member set if it lasts (`docs/integrity.md`).
                tracing::info!(group, member = %x, "removal refused by the client");
                self.enqueue(p.conn, &AMessage::Group(GroupEnvelope::Remd(x)), Note::None);
            }
        } else if let (
            true,
            GroupEnvelope::Rem(x) | GroupEnvelope::RemTell(x),
            ChangeRec::Remove { by, .. },
        ) = (accept, &env, p.change)
        {
            // The remover left (or its connection closed) while the removal
            // waited for us: it was a member when it removed, so the removal
            // still applies, like everywhere else; nobody waits for a `REMD`
            // (`regression_member_view_after_removals_and_leave_open_n5`).
            if self
                .groups
                .get(group)
                .is_some_and(|g| !g.gone.contains(&x.0))
            {
                self.apply_removal(group, x.0, by, true);
            }
        } else {
            // The member's connection closed while the change waited.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::member(group, None, Some(p.conn)),
                &"an approved change from a connection that is gone",
            );
        }
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// Connection ids of every member of the group.
    pub(crate) fn member_conns(&self, group: &str) -> Vec<u64> {
        self.groups
            .get(group)
            .map(|g| g.members.values().filter_map(|m| m.conn).collect())
            .unwrap_or_default()
    }

    /// Forgets a group: its connections close after their outboxes are sent.
    pub(crate) fn drop_group(&mut self, group: &str, conns: &[u64]) {
        for c in conns {
            self.close_conn(*c);
        }
        // Second connections with members (crossed invitations) close too;
        // nothing is queued on them (we send on the first).
        let extra: Vec<u64> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                !c.closing
                    && c.retire_at.is_none()
                    && !conns.contains(id)
                    && matches!(&c.owner, crate::state::Owner::Member { group: g, .. } if g == group)
            })
            .map(|(id, _)| *id)
            .collect();
        for c in extra {
            self.close_conn(c);
        }
        // Connections of pending open invitations too.
        self.forget_sent(group);
        self.direct_group_dropped(group);
        self.forget_shared(group);
        self.forget_proofs(group);
        if let Some(g) = self.groups.remove(group) {
            for c in g.open_offered.values() {
                self.close_conn(*c);
            }
        }
        self.touch_group(group);
    }
}
