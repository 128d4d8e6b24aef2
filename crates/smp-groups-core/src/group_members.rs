//! Member lifecycle inside a group: connected, connected to all (`MEM`), gone;
//! completion of sends, removals, deletion and joins; `G_CHECK` rounds and
//! expiry of members that never connected.

use smp_groups_integrity::Timestamp;
use smp_groups_wire::agent::{AMessage, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::Event;
use crate::conn::JoinInfo;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{AnchorRec, ChangeRec, GroupStatus, MemberStatus, Mid, Note, PendingApproval};

impl Agent {
    /// The hidden connection with `member` is established.
    pub(crate) fn member_connected(
        &mut self,
        conn: u64,
        group: &str,
        member: Mid,
        join: Option<JoinInfo>,
    ) {
        let at = At::member(group, Some(member), Some(conn));
        let Some(g) = self.groups.get_mut(group) else {
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
            if let Some((id, key, profile)) = j.member
                && id == member
            {
                m.signing_key = Some(key);
                // A profile from its `PROFILE` wins over an unstamped one.
                if !g.profiles.stamps.contains_key(&member) {
                    m.profile = profile;
                }
            }
            if let Some(a) = j.anchor {
                m.peer_anchor = Some(a);
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
        self.touch_group(group);
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
        let Some(g) = self.groups.get_mut(group) else {
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
            let new_info = self.member_info_pub(group, member);
            for (_, c) in conns {
                if let (Some(c), Some(info)) = (c, new_info.clone()) {
                    self.enqueue(c, &AMessage::Group(GroupEnvelope::Intro(info)), Note::None);
                }
            }
            for (x, inv) in fwd {
                if let (Some(c), Some(info), Ok(invitation)) = (
                    target,
                    self.member_info_pub(group, x),
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

    /// Open invitations variant: after connecting to a member, hand it an
    /// invitation it can forward to the next member it adds.
    fn offer_open_invitation(&mut self, group: &str, member: Mid) {
        if !self.cfg.open_invitations {
            return;
        }
        let Some(g) = self.groups.get(group) else {
            return;
        };
        if g.open_offered.contains_key(&member) {
            return;
        }
        let cid = self.new_inviter_conn(crate::state::Owner::Open {
            group: group.to_owned(),
            holder: member,
        });
        if let Some(g) = self.groups.get_mut(group) {
            g.open_offered.insert(member, cid);
        }
    }

    /// Our open invitation for `holder` is ready: hand it over (`OINV`).
    pub(crate) fn send_open_invitation(&mut self, group: &str, holder: Mid, invitation: Vec<u8>) {
        let conn = self
            .groups
            .get(group)
            .and_then(|g| g.members.get(&holder))
            .and_then(|m| m.conn);
        if let (Some(c), Ok(invitation)) =
            (conn, smp_groups_wire::agent::Invitation::new(invitation))
        {
            self.enqueue(
                c,
                &AMessage::Group(GroupEnvelope::OpenInv { invitation }),
                Note::None,
            );
        }
    }

    /// A member introduced by `holder` joined through our open invitation.
    /// Above [`crate::Config::approval_threshold`] the add waits for the
    /// client, like an `INTRO`: the connection is held (nothing is sent on it,
    /// not even `HELLO`, so the member sends us nothing) until the answer.
    pub(crate) fn open_invitation_used(
        &mut self,
        conn: u64,
        group: &str,
        holder: Mid,
        join: Option<JoinInfo>,
    ) {
        self.open_invitation_join(conn, group, holder, join, true);
    }

    fn open_invitation_join(
        &mut self,
        conn: u64,
        group: &str,
        holder: Mid,
        join: Option<JoinInfo>,
        ask: bool,
    ) {
        let member = join.as_ref().and_then(|j| j.member.as_ref()).map(|m| m.0);
        let removed = self.groups.get(group).and_then(|g| {
            member.filter(|x| g.gone.contains(x) && g.open_offered.get(&holder) == Some(&conn))
        });
        if let Some(x) = removed {
            self.open_invitation_used_by_removed(conn, group, holder, x);
            return;
        }
        let usable = self.groups.get(group).is_some_and(|g| {
            member.is_some_and(|x| x != g.me && !g.gone.contains(&x))
                && g.open_offered.get(&holder) == Some(&conn)
        });
        let (Some(x), true) = (member, usable) else {
            let me = self.groups.get(group).map(|g| g.me);
            let (source, kind, detail) = match member {
                None => (
                    FaultSource::Peer,
                    FaultKind::BadConfirmation,
                    "open invitation used without a member id",
                ),
                Some(x) if Some(x) == me => (
                    FaultSource::Peer,
                    FaultKind::BadConfirmation,
                    "open invitation used with our own member id",
                ),
                // The member is gone, or the slot was replaced or its holder
                // left meanwhile.
                Some(_) => (
                    FaultSource::Nobody,
                    FaultKind::Stale,
                    "open invitation used by a member that is gone, or a stale slot",
                ),
            };
            self.refuse(source, kind, At::member(group, member, Some(conn)), &detail);
            self.close_conn(conn);
            return;
        };
        let known = self
            .groups
            .get(group)
            .is_some_and(|g| g.members.contains_key(&x));
        let approval = self.groups.get(group).is_some_and(|g| {
            g.status == GroupStatus::Active && g.members.len() + 1 > self.cfg.approval_threshold
        });
        if ask && approval && !known {
            self.ask_open_add(conn, group, holder, x, join.as_ref());
            return;
        }
        let mut m = self.new_member(group, Some(holder));
        m.conn = Some(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            // Messages queued on the slot since it was offered follow the anchor
            // announced in the invitation.
            c.owner = crate::state::Owner::Member {
                group: group.to_owned(),
                member: x,
            };
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.open_offered.remove(&holder);
            // Already known through another invitation: this connection joins
            // the attempts with it.
            if !known {
                g.insert_member(x, m);
            }
        }
        self.touch_conn(conn);
        self.touch_group(group);
        self.member_connected(conn, group, x, join);
        // We are deleting the group: a member that joined through an open
        // invitation meanwhile was not told (its introducer may have finished
        // its add before our `DEL` reached it). It is told now, and the
        // deletion waits for its `DELD` too.
        let deleting = self
            .groups
            .get_mut(group)
            .and_then(|g| match &mut g.status {
                GroupStatus::Deleting { waiting, .. } => Some(waiting.insert(x)),
                GroupStatus::Active => None,
            });
        if let Some(new) = deleting {
            if new {
                self.enqueue(conn, &AMessage::Group(GroupEnvelope::Del), Note::None);
            }
            return;
        }
        if !known {
            self.tell_removals(group, x, conn);
            // Members we are adding concurrently may be unknown to its
            // introducer: we introduce them to it.
            self.introduce_late(group, x);
        }
        self.offer_open_invitation(group, holder);
    }

    /// Member `x` joined our open invitation held by `holder`, and the add
    /// waits for the client (`ApprovalRequired`). The connection stays an
    /// open invitation, held ([`crate::state::Conn::held`]); the join
    /// information is kept with the approval, so that both survive a restart.
    fn ask_open_add(
        &mut self,
        conn: u64,
        group: &str,
        holder: Mid,
        x: Mid,
        join: Option<&JoinInfo>,
    ) {
        let envelope = match postcard::to_allocvec(&join) {
            Ok(b) => b,
            Err(e) => {
                let detail = format!("join information of an add to approve: {e}");
                self.report(
                    FaultSource::Local,
                    FaultKind::Internal,
                    At::member(group, Some(x), Some(conn)),
                    &detail,
                );
                self.close_conn(conn);
                return;
            }
        };
        let change = ChangeRec::OpenAdd {
            member: x,
            by: holder,
        };
        let id = self.ask_approval(
            group,
            PendingApproval {
                change,
                conn,
                envelope,
            },
        );
        tracing::debug!(group, conn, member = %MemberId(x), by = %MemberId(holder), approval = id, "add through an open invitation waits for the client");
        self.touch_conn(conn);
    }

    /// Holds a membership change for the client's decision: stores it under
    /// a fresh id and asks (`ApprovalRequired`); returns the id.
    pub(crate) fn ask_approval(&mut self, group: &str, pending: PendingApproval) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.dirty.insert(crate::store::Key::Meta);
        let change = pending.change;
        if let Some(g) = self.groups.get_mut(group) {
            g.approvals.insert(id, pending);
        }
        self.touch_group(group);
        self.event(Event::ApprovalRequired {
            group: group.to_owned(),
            approval: id,
            change: change.into(),
        });
        id
    }

    /// The client's answer to an add through our open invitation
    /// ([`Self::ask_open_add`]). Accepted: the add goes on as if it had not
    /// waited. Refused: the member is told on the held connection that we
    /// will not connect (`LEFT` instead of `HELLO`, and the connection
    /// closes: [`Self::release_held`]), so that its join, and its
    /// introducer's add, complete without us, as after a refused `INTRO`;
    /// the holder gets a new open invitation.
    pub(crate) fn answer_open_add(
        &mut self,
        group: &str,
        conn: u64,
        (x, holder): (Mid, Mid),
        join: &[u8],
        accept: bool,
    ) {
        let held = self.conns.get(&conn).is_some_and(|c| {
            c.held()
                && matches!(&c.owner, crate::state::Owner::Open { group: g, holder: h }
                    if g == group && *h == holder)
        });
        if !held {
            // The holder or the group went while the add waited: the
            // connection was closed then (and the member told).
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::member(group, Some(x), Some(conn)),
                &"an answered add through an open invitation that is gone",
            );
            return;
        }
        if !accept {
            tracing::info!(group, member = %MemberId(x), "add through an open invitation refused by the client");
            self.close_conn(conn);
            if let Some(g) = self.groups.get_mut(group)
                && g.open_offered.get(&holder) == Some(&conn)
            {
                g.open_offered.remove(&holder);
            }
            self.touch_group(group);
            self.offer_open_invitation(group, holder);
            return;
        }
        match postcard::from_bytes::<Option<JoinInfo>>(join) {
            Ok(join) => self.open_invitation_join(conn, group, holder, join, false),
            Err(e) => {
                let detail = format!("a stored approval's join information: {e}");
                self.refuse(
                    FaultSource::Local,
                    FaultKind::Internal,
                    At::member(group, Some(x), Some(conn)),
                    &detail,
                );
                self.close_conn(conn);
            }
        }
    }

    /// A held open invitation closes without the add
    /// ([`crate::state::Conn::held`]): what we queued for the member (`HELLO`
    /// and our messages since the invitation was offered) is dropped, and
    /// `LEFT` goes instead, so that the member, which counts us among the
    /// members it must connect to, drops us without ever connecting: its
    /// join completes without us.
    pub(crate) fn release_held(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            // Nothing was sent (the outbox is held); kept if it were.
            let keep = usize::from(c.in_flight.is_some());
            c.outbox.truncate(keep);
        }
        self.enqueue(conn, &AMessage::Group(GroupEnvelope::Left), Note::None);
    }

    /// A member we already count as removed joined through our open
    /// invitation: it may not know of its removal yet, and what it sent
    /// before it learned of it (a deletion, a removal) still applies
    /// (concurrent removals). The connection is read as a retired one, within
    /// the removal grace; we send it nothing but `HELLO`.
    fn open_invitation_used_by_removed(&mut self, conn: u64, group: &str, holder: Mid, x: Mid) {
        tracing::debug!(group, conn, member = %MemberId(x), "open invitation used by a removed member: read as retired");
        let until = self.now.saturating_add(self.cfg.removal_grace_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.owner = crate::state::Owner::Member {
                group: group.to_owned(),
                member: x,
            };
            // `HELLO` (queued first) only.
            c.outbox.truncate(1);
            c.retire_at = Some(until);
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.open_offered.remove(&holder);
        }
        self.touch_conn(conn);
        self.touch_group(group);
        self.offer_open_invitation(group, holder);
    }

    pub(crate) fn member_info_pub(
        &self,
        group: &str,
        member: Mid,
    ) -> Option<smp_groups_wire::agent::MemberInfo> {
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
        Some(smp_groups_wire::agent::MemberInfo {
            member_id: MemberId(member),
            signing_key: key,
            profile: smp_groups_wire::agent::Profile::new(profile).ok()?,
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

    /// A removed member: drop what is queued for it (unless `keep_outbox`) and
    /// read its connection only for concurrent removals until the grace ends.
    pub(crate) fn retire_member(&mut self, group: &str, x: Mid, keep_outbox: bool) {
        let until = self.now.saturating_add(self.cfg.removal_grace_ms);
        // Every connection with it: its `OUT`, `REM` or `DEL` may come on any
        // (invitations that crossed leave two).
        for c in self.attempts(group, x) {
            let Some(cs) = self.conns.get_mut(&c) else {
                continue;
            };
            if !keep_outbox {
                let keep = usize::from(cs.in_flight.is_some());
                cs.outbox.truncate(keep);
            }
            cs.retire_at = Some(until);
            self.touch_conn(c);
        }
    }

    /// Closes the connection with a member, dropping what was not yet sent.
    pub(crate) fn close_member(&mut self, group: &str, x: Mid) {
        for c in self.attempts(group, x) {
            if let Some(cs) = self.conns.get_mut(&c) {
                let keep = usize::from(cs.in_flight.is_some());
                cs.outbox.truncate(keep);
            }
            self.close_conn(c);
        }
    }

    /// Member `x` is no longer in the group (left, removed, expired): forget it
    /// and complete everything that was waiting for it.
    pub(crate) fn member_gone(&mut self, group: &str, x: Mid) {
        self.direct_member_gone(group, x);
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        g.remove_member(x);
        g.gone.insert(x);
        // A deletion does not wait for a member that is gone.
        let deleting = if let GroupStatus::Deleting { waiting, .. } = &mut g.status {
            waiting.remove(&x);
            true
        } else {
            false
        };
        g.integrity.remove_member(MemberId(x));
        g.adds.remove(&x);
        g.open_invs.remove(&x);
        let offered = g.open_offered.remove(&x);
        let mut adds = Vec::new();
        for (y, add) in &mut g.adds {
            add.introduced_to.remove(&x);
            if add.awaiting_inv.remove(&x) {
                adds.push(*y);
            }
        }
        let removals: Vec<Mid> = g
            .removals
            .iter_mut()
            .filter_map(|(y, set)| set.remove(&x).then_some(*y))
            .collect();
        // Our introducer is gone before our join completed: the join is
        // abandoned (we leave the members we reached).
        let abandon = g
            .join
            .as_ref()
            .is_some_and(|j| j.introducer == x && !j.done);
        self.touch_group(group);
        if abandon {
            self.abandon_join(group);
            return;
        }
        if let Some(c) = offered {
            self.close_conn(c);
        }
        for y in adds {
            self.maybe_send_mem(group, y);
        }
        self.forget_in_sends(group, x);
        for y in removals {
            self.check_removal_done(group, y);
        }
        self.check_join_done(group);
        if deleting {
            self.check_delete_done(group);
        }
    }

    /// Member `x` will not get or acknowledge our messages: our sends stop
    /// waiting for it.
    pub(crate) fn forget_in_sends(&mut self, group: &str, x: Mid) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let sends: Vec<u64> = g
            .sends
            .iter_mut()
            .filter_map(|(id, t)| {
                let a = t.sent_pending.remove(&x);
                let b = t.rcvd_pending.remove(&x);
                (a || b).then_some(*id)
            })
            .collect();
        for id in sends {
            self.finish_send_track(group, id);
        }
    }

    /// Leaves a group whose join cannot complete: `LEFT` to every member we
    /// reached, then forget it.
    pub(crate) fn abandon_join(&mut self, group: &str) {
        let conns = self.member_conns(group);
        self.send_left(group);
        self.drop_group(group, &conns);
        self.event(Event::Left {
            group: group.to_owned(),
            member: None,
        });
    }

    /// `LEFT` to every member of the group, on the connection we send to it
    /// on. With invitations that crossed, that connection may be one that is
    /// not established (and never will be: we leave) while the other attempt
    /// is, or will be once `HELLO` comes, and the member reads us there: then
    /// `LEFT` goes on every attempt. (On an established connection it goes
    /// there only, after what is queued: on another attempt it could overtake
    /// our last messages.)
    pub(crate) fn send_left(&mut self, group: &str) {
        let members: Vec<(Mid, Option<u64>)> = self
            .groups
            .get(group)
            .map(|g| g.members.iter().map(|(x, m)| (*x, m.conn)).collect())
            .unwrap_or_default();
        let mut targets = Vec::new();
        for (x, conn) in members {
            let ready = conn
                .and_then(|c| self.conns.get(&c))
                .is_some_and(|c| c.status == crate::state::ConnStatus::Ready);
            targets.extend(conn);
            if !ready {
                let attempts = self.attempts(group, x);
                // What we queued for it waits on a connection that will not
                // be established now; an attempt whose confirmation is out
                // still delivers once `HELLO` comes, so it goes there, ahead
                // of `LEFT`.
                if let Some(from) = conn
                    && let Some(to) = self.deliverable_attempt(&attempts)
                {
                    self.move_outbox(from, to);
                }
                targets.extend(attempts);
            }
        }
        targets.sort_unstable();
        targets.dedup();
        for c in targets {
            self.enqueue(c, &AMessage::Group(GroupEnvelope::Left), Note::None);
        }
    }

    /// Among connection attempts with one member, the one that can still
    /// deliver what is queued on it: established, or with our confirmation
    /// out (it lingers for `HELLO` when closed).
    fn deliverable_attempt(&self, attempts: &[u64]) -> Option<u64> {
        let status = |c: &u64| self.conns.get(c).map(|c| c.status);
        attempts
            .iter()
            .find(|c| status(c) == Some(crate::state::ConnStatus::Ready))
            .or_else(|| {
                attempts
                    .iter()
                    .find(|c| status(c) == Some(crate::state::ConnStatus::Joined))
            })
            .copied()
    }

    pub(crate) fn check_empty(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.members.is_empty() && g.had_members && g.status == GroupStatus::Active {
            g.had_members = false;
            self.touch_group(group);
            self.event(Event::Empty {
                group: group.to_owned(),
            });
        }
    }

    /// A member `y` we learned of while removals of ours are in progress: it
    /// was introduced to the removed members before our `REM` could reach it
    /// (we did not know it), so it hears of them from us on `conn`, and each
    /// removal waits for its `REMD` too.
    pub(crate) fn tell_removals(&mut self, group: &str, y: Mid, conn: u64) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let mut removed = Vec::new();
        for (x, waiting) in &mut g.removals {
            if *x != y {
                waiting.insert(y);
                removed.push(*x);
            }
        }
        if removed.is_empty() {
            return;
        }
        self.touch_group(group);
        for x in removed {
            self.enqueue(
                conn,
                &AMessage::Group(GroupEnvelope::Rem(MemberId(x))),
                Note::None,
            );
        }
    }

    pub(crate) fn check_removal_done(&mut self, group: &str, x: Mid) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.removals
            .get(&x)
            .is_some_and(std::collections::BTreeSet::is_empty)
        {
            g.removals.remove(&x);
            self.touch_group(group);
            self.event(Event::Removed {
                group: group.to_owned(),
                member: MemberId(x),
                by: None,
            });
            // Removing the last other member empties the group too.
            self.check_empty(group);
        }
    }

    pub(crate) fn member_done_deleting(&mut self, group: &str, x: Mid) {
        if let Some(g) = self.groups.get_mut(group)
            && let GroupStatus::Deleting { waiting, .. } = &mut g.status
        {
            waiting.remove(&x);
            tracing::debug!(group, member = %MemberId(x), waiting = waiting.len(), "deletion confirmed");
            self.touch_group(group);
        }
        // Our `DEL` still goes out if it is queued: a member that removed us
        // at the same time (`OUT`) reads it on the retired connection.
        for c in self.attempts(group, x) {
            self.close_conn(c);
        }
        self.check_delete_done(group);
    }

    pub(crate) fn check_delete_done(&mut self, group: &str) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        if let GroupStatus::Deleting { waiting, until } = &g.status
            && (waiting.is_empty() || *until <= self.now)
        {
            if !waiting.is_empty() {
                tracing::warn!(
                    group,
                    unconfirmed = ?waiting.iter().map(|m| MemberId(*m).to_string()).collect::<Vec<_>>(),
                    "deletion completed without every member's confirmation"
                );
            }
            let conns = self.member_conns(group);
            self.drop_group(group, &conns);
            self.event(Event::Deleted {
                group: group.to_owned(),
                by: None,
            });
        }
    }

    /// The last block of our message `int_id` reached the relay for `member`.
    pub(crate) fn group_msg_sent(&mut self, group: &str, int_id: u64, member: Mid) {
        let Some(t) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.sends.get_mut(&int_id))
        else {
            return;
        };
        if !t.sent_pending.remove(&member) {
            return;
        }
        self.touch_group(group);
        self.event(Event::Sent {
            group: group.to_owned(),
            member: Some(MemberId(member)),
            msg_id: int_id,
        });
        self.finish_send_track(group, int_id);
    }

    /// Reports `SENT` / `RCVD` for all once nothing is pending.
    pub(crate) fn finish_send_track(&mut self, group: &str, int_id: u64) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(t) = g.sends.get_mut(&int_id) else {
            return;
        };
        let mut events = Vec::new();
        if t.sent_pending.is_empty() && !t.sent_done {
            t.sent_done = true;
            events.push(Event::Sent {
                group: group.to_owned(),
                member: None,
                msg_id: int_id,
            });
        }
        if t.sent_done && t.rcvd_pending.is_empty() {
            events.push(Event::Rcvd {
                group: group.to_owned(),
                member: None,
                msg_id: int_id,
                status: t.status,
            });
            let ext = t.ext_msg_id;
            g.sends.remove(&int_id);
            g.ext_to_int.remove(&ext);
        }
        self.touch_group(group);
        for e in events {
            self.event(e);
        }
    }

    /// `Command::Check`: our `G_CHECK` to every connected member now.
    pub(crate) fn cmd_check(&mut self, group: &str) -> Result<Event, crate::api::CommandError> {
        self.active_group(group)?;
        self.send_check(group);
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    pub(crate) fn send_check(&mut self, alias: &str) {
        let now = Timestamp::from_millis(self.now);
        let Some(g) = self.groups.get_mut(alias) else {
            return;
        };
        let members = g.stable_members(&self.conns);
        let Some(g) = self.groups.get_mut(alias) else {
            return;
        };
        let mut check = g.integrity.build_check(now);
        // Bounded by construction (`stable_members`); a check without the
        // set is still a check.
        if let Some(m) = members {
            check.members = Some(m);
        }
        let conns: Vec<u64> = g
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Pending)
            .filter_map(|m| m.conn)
            .collect();
        self.touch_group(alias);
        let env = AMessage::Group(GroupEnvelope::Check(check));
        for c in conns {
            self.enqueue(c, &env, Note::None);
        }
        self.broadcast_proofs(alias);
    }
}
