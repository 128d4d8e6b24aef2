//! Open invitations (`OINV`): handed to members ahead of time, used by the
//! next member they add, and the approval of such an add.

use smp_groups_wire::Encode;
use smp_groups_wire::agent::{AMessage, GroupEnvelope, JoinInfo, MemberId};

use crate::Agent;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{ChangeRec, GroupStatus, Mid, Note, PendingApproval};

impl Agent {
    /// Open invitations variant: after connecting to a member, hand it an
    /// invitation it can forward to the next member it adds.
    pub(crate) fn offer_open_invitation(&mut self, group: &str, member: Mid) {
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
        if let Some(g) = self.edit_group(group) {
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
        let member = join
            .as_ref()
            .and_then(|j| j.member.as_ref())
            .map(|m| m.member_id.0);
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
        if let Some(c) = self.edit_conn(conn) {
            // Messages queued on the slot since it was offered follow the anchor
            // announced in the invitation.
            c.owner = crate::state::Owner::Member {
                group: group.to_owned(),
                member: x,
            };
        }
        if let Some(g) = self.edit_group(group) {
            g.open_offered.remove(&holder);
            // Already known through another invitation: this connection joins
            // the attempts with it.
            if !known {
                g.insert_member(x, m);
            }
        }
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
        let envelope = join.cloned().to_bytes();
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
            if let Some(g) = self.edit_group(group)
                && g.open_offered.get(&holder) == Some(&conn)
            {
                g.open_offered.remove(&holder);
            }
            self.touch_group(group);
            self.offer_open_invitation(group, holder);
            return;
        }
        match smp_groups_wire::decode_all::<Option<JoinInfo>>(join) {
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
        if let Some(c) = self.edit_conn(conn) {
            c.owner = crate::state::Owner::Member {
                group: group.to_owned(),
                member: x,
            };
            // `HELLO` (queued first) only.
            c.outbox.truncate(1);
            c.retire_at = Some(until);
        }
        if let Some(g) = self.edit_group(group) {
            g.open_offered.remove(&holder);
        }
        self.offer_open_invitation(group, holder);
    }

    /// `OINV`: member `from` hands us an open invitation for the next member
    /// we add.
    pub(crate) fn on_open_inv(&mut self, group: &str, from: Mid, invitation: Vec<u8>) {
        if let Some(g) = self.edit_group(group) {
            g.open_invs.insert(from, invitation);
        }
    }
}
