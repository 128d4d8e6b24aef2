//! Adding a member: the introducer's side (`INTRO` to every member, their
//! `INV`, `MEM` once all are introduced) and a member's connection completing.

use smp_groups_wire::agent::{
    AMessage, GroupEnvelope, Invitation, JoinInfo, MemberId, MemberInfo, Profile,
};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{AddTrack, AnchorRec, Member, MemberStatus, Mid, Note, Owner};

impl Agent {
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

    /// The hidden connection with `member` is established.
    pub(crate) fn member_connected(
        &mut self,
        conn: u64,
        group: &str,
        member: Mid,
        join: Option<JoinInfo>,
    ) {
        let at = At::member(group, Some(member), Some(conn));
        let Some(g) = self.edit_group(group) else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &"connected for a group we no longer hold",
            );
            return;
        };
        let Some(m) = g
            .members
            .get_mut(&member)
            .filter(|_| !g.gone.contains(&member))
        else {
            // It left or was removed while the handshake ran.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &"connected with a member that is gone",
            );
            return;
        };
        if m.status != MemberStatus::Pending {
            // A second connection with the same member (invitations crossed):
            // it stays open and is read; we keep sending on the first.
            tracing::debug!(group, member = %MemberId(member), conn, "second connection with a member");
            return;
        }
        // The first connection established is the one we send on; what was
        // queued on another attempt moves to it.
        let previous = m.conn.replace(conn);
        if let Some(j) = join {
            if let Some(info) = j.member
                && info.member_id.0 == member
            {
                m.signing_key = Some(info.signing_key);
                // A profile from its `PROFILE` wins over an unstamped one.
                if !g.profiles.stamps.contains_key(&member) {
                    m.profile = info.profile.into_vec();
                }
            }
            if let Some(a) = j.anchor {
                m.peer_anchor = Some(a.into());
            }
        }
        let mut full_now = false;
        if m.status == MemberStatus::Pending {
            m.status = if m.announced {
                full_now = true;
                MemberStatus::Full
            } else {
                MemberStatus::Connected
            };
        }
        let anchor = m.peer_anchor.unwrap_or(AnchorRec::Genesis);
        let key = m
            .signing_key
            .map(smp_groups_crypto::ed25519::PublicKey::from_bytes);
        // Already present after a duplicate handshake: nothing to add.
        let full = match g.integrity.add_member(MemberId(member), anchor.into(), key) {
            Err(smp_groups_integrity::MemberError::Full(max)) => Some(max),
            _ => None,
        };
        g.had_members = true;
        if let Some(max) = full {
            // Its messages will be refused as from an unknown sender.
            self.refuse(
                FaultSource::Peer,
                FaultKind::OverLimit,
                at,
                &format!("the group's integrity state is full ({max} members)"),
            );
        }
        if let Some(p) = previous {
            self.move_outbox(p, conn);
        }
        self.event(Event::GroupCon {
            group: group.to_owned(),
            member: MemberId(member),
        });
        self.profiles_on_connect(group, member, conn);
        if full_now {
            self.event(Event::Mem {
                group: group.to_owned(),
                member: Some(MemberId(member)),
            });
        }
        // As the introducer of `member`: introduce it to everyone else.
        let Some(g) = self.edit_group(group) else {
            return;
        };
        if let Some(add) = g.adds.get_mut(&member)
            && !add.connected
        {
            add.connected = true;
            let others: Vec<Mid> = g.members.keys().copied().filter(|x| *x != member).collect();
            let mut intro = Vec::new();
            let mut fwd = Vec::new();
            for x in others {
                add.introduced_to.insert(x);
                if let Some(inv) = g.open_invs.remove(&x) {
                    fwd.push((x, inv));
                } else {
                    add.awaiting_inv.insert(x);
                    intro.push(x);
                }
            }
            let target = g.members.get(&member).and_then(|m| m.conn);
            let conns: Vec<(Mid, Option<u64>)> = intro
                .iter()
                .map(|x| (*x, g.members.get(x).and_then(|m| m.conn)))
                .collect();
            let new_info = self.member_info(group, member);
            for (_, c) in conns {
                if let (Some(c), Some(info)) = (c, new_info.clone()) {
                    self.enqueue(c, &AMessage::Group(GroupEnvelope::Intro(info)), Note::None);
                }
            }
            for (x, inv) in fwd {
                if let (Some(c), Some(info), Ok(invitation)) = (
                    target,
                    self.member_info(group, x),
                    smp_groups_wire::agent::Invitation::new(inv),
                ) {
                    let env = GroupEnvelope::Fwd {
                        member: info,
                        invitation,
                    };
                    self.enqueue(c, &AMessage::Group(env), Note::None);
                }
            }
            self.maybe_send_mem(group, member);
        }
        self.offer_open_invitation(group, member);
        self.check_join_done(group);
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

    /// `INV`: member `from` invites the member `x` we introduce.
    pub(crate) fn on_inv(&mut self, group: &str, from: Mid, x: Mid, invitation: Invitation) {
        let Some(g) = self.edit_group(group) else {
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

    /// We learned of member `x` from someone else: every member we introduced
    /// earlier who was not introduced to `x` gets introduced now.
    pub(crate) fn introduce_late(&mut self, group: &str, x: Mid) {
        let Some(g) = self.edit_group(group) else {
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

    /// The connections of the members we are adding whose join is not done.
    /// Connections of the members we added whose introduction to `x` still
    /// waits for `x`'s invitation: `x` may not know them yet.
    pub(crate) fn introduced_late_to(&self, group: &str, x: Mid) -> Vec<u64> {
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

    pub(crate) fn unfinished_add_conns(&self, group: &str) -> Vec<u64> {
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

    /// As introducer of `x`: once `x` is connected to us and every member
    /// answered, tell `x` that all introductions were forwarded.
    pub(crate) fn maybe_send_mem(&mut self, group: &str, x: Mid) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let conn = g.members.get(&x).and_then(|m| m.conn);
        let Some(add) = g.adds.get_mut(&x) else {
            return;
        };
        if add.connected && add.awaiting_inv.is_empty() && !add.mem_sent {
            add.mem_sent = true;
            self.touch_group(group);
            if let Some(c) = conn {
                self.send_history(group, x, c);
                self.enqueue(
                    c,
                    &AMessage::Group(GroupEnvelope::Mem(MemberId(x))),
                    Note::None,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use smp_groups_wire::agent::EnvelopeKind;

    use super::super::testing::{group_with, queued};
    use crate::Config;
    use crate::state::AddTrack;

    const A: [u8; 16] = [1; 16];
    const X: [u8; 16] = [7; 16];

    /// We add `X` (on connection 11); `A` was asked for an invitation.
    fn adding() -> crate::Agent {
        let mut a = group_with(Config::default(), &[A, X]);
        if let Some(g) = a.groups.get_mut("g") {
            g.adds.insert(
                X,
                AddTrack {
                    awaiting_inv: [A].into_iter().collect(),
                    introduced_to: [A].into_iter().collect(),
                    connected: true,
                    ..AddTrack::default()
                },
            );
        }
        a
    }

    #[test]
    fn mem_goes_once_every_invitation_was_forwarded() {
        let mut a = adding();
        a.maybe_send_mem("g", X);
        // `A` has not answered: `X` may not know every member yet.
        assert!(!queued(&a, 11).contains(&EnvelopeKind::Mem));
        if let Some(add) = a.groups.get_mut("g").and_then(|g| g.adds.get_mut(&X)) {
            add.awaiting_inv.clear();
        }
        a.maybe_send_mem("g", X);
        a.maybe_send_mem("g", X);
        let mems = queued(&a, 11)
            .into_iter()
            .filter(|k| *k == EnvelopeKind::Mem)
            .count();
        assert_eq!(mems, 1);
        assert!(a.groups["g"].adds[&X].mem_sent);
    }

    #[test]
    fn a_member_gone_no_longer_holds_up_mem() {
        let mut a = adding();
        // `A` left before it answered: the add goes on without it.
        a.member_gone("g", A);
        assert!(a.groups["g"].adds[&X].awaiting_inv.is_empty());
        assert!(queued(&a, 11).contains(&EnvelopeKind::Mem));
    }
}
