//! Joining: our own join (`GROUP`, `JOIN`, `MEM` from our introducer, its
//! deadline) and the members introduced to us (`INTRO`, `FWD`, `MEM`).

use smp_groups_wire::agent::{AMessage, ConnInvitation, GroupEnvelope, MemberId, MemberInfo};
use smp_groups_wire::{DecodeWith, Reader};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{JoinTrack, MemberStatus, Mid, Note, Owner};

impl Agent {
    /// Forgets a received group invitation (`RJCT`).
    pub(crate) fn cmd_reject_invitation(
        &mut self,
        invitation: &str,
    ) -> Result<Event, CommandError> {
        if self.take_invitation(invitation).is_none() {
            return Err(CommandError::NoInvitation(invitation.to_owned()));
        }
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
        let Ok(AMessage::Group(GroupEnvelope::Group(gi))) = AMessage::decode_with(&mut r, limits)
        else {
            return Err(CommandError::NoInvitation(invitation.to_owned()));
        };
        let invite = smp_groups_wire::decode_all::<ConnInvitation>(gi.invitation.as_slice())
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        // Checked before anything changes (the connection parses them again).
        smp_groups_crypto::ratchet::X3dhParams::from_bytes(invite.e2e_params.as_slice())
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
        m.peer_anchor = invite.anchor.map(Into::into);
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
        self.take_invitation(invitation);
        self.touch_group(&alias);
        Ok(Event::Ok { alias })
    }

    /// `INTRO`: `by` introduces a new member to us; we invite it. `LINTRO`
    /// (`late`): the new member joined concurrently with us, and gets our
    /// messages since our join again (`crate::history`).
    pub(crate) fn on_intro(
        &mut self,
        conn: u64,
        group: &str,
        by: Mid,
        info: &MemberInfo,
        late: bool,
    ) {
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
        if let Some(g) = self.edit_group(group) {
            g.insert_member(x, m);
        }
        let cid = self.new_inviter_conn(Owner::Member {
            group: group.to_owned(),
            member: x,
        });
        if let Some(m) = self.edit_member(group, x) {
            m.conn = Some(cid);
        }
        if late {
            self.replay_sent(group, x, cid);
        }
        self.tell_removals(group, x, cid);
        self.introduce_late(group, x);
    }

    /// `FWD`: our introducer forwards member `info`'s invitation.
    pub(crate) fn on_fwd(&mut self, group: &str, by: Mid, info: &MemberInfo, invitation: &[u8]) {
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
                && let Some(m) = self.edit_member(group, x)
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
        if let Some(g) = self.edit_group(group) {
            g.insert_member(x, m);
        }
        self.tell_removals(group, x, cid);
        self.introduce_late(group, x);
    }

    /// `MEM x` from `from`.
    pub(crate) fn on_mem(&mut self, group: &str, from: Mid, x: Mid) {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.edit_group(group) else {
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

    /// As a new member: once every introduction was forwarded and we are
    /// connected to every member, report `MEM`.
    pub(crate) fn check_join_done(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(j) = g.join.as_mut() else { return };
        if j.done || !j.intros_done {
            return;
        }
        if g.members
            .values()
            .any(|m| m.status == MemberStatus::Pending)
        {
            return;
        }
        j.done = true;
        let introducer = j.introducer;
        let me = g.me;
        let conn = g.members.get(&introducer).and_then(|m| m.conn);
        self.touch_group(group);
        self.event(Event::Mem {
            group: group.to_owned(),
            member: None,
        });
        if let Some(c) = conn {
            self.enqueue(
                c,
                &AMessage::Group(GroupEnvelope::Mem(MemberId(me))),
                Note::None,
            );
        }
    }
}
