//! Removals (`REM`, `REMT`, `REMD`, `OUT`) and members gone for any reason:
//! retiring their connections and completing what waited for them.

use smp_groups_wire::agent::{AMessage, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{GroupStatus, Mid, Note, Owner};

impl Agent {
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
        } else if let Some(g) = self.edit_group(group) {
            g.gone.insert(x);
        }
        self.check_empty(group);
    }

    /// We are removed by `by`: forget the group.
    pub(crate) fn removed_by(&mut self, group: &str, by: Mid) {
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

    /// A removed member: drop what is queued for it (unless `keep_outbox`) and
    /// read its connection only for concurrent removals until the grace ends.
    pub(crate) fn retire_member(&mut self, group: &str, x: Mid, keep_outbox: bool) {
        let until = self.now.saturating_add(self.cfg.removal_grace_ms);
        // Every connection with it: its `OUT`, `REM` or `DEL` may come on any
        // (invitations that crossed leave two).
        for c in self.attempts(group, x) {
            let Some(cs) = self.edit_conn(c) else {
                continue;
            };
            if !keep_outbox {
                let keep = usize::from(cs.in_flight.is_some());
                cs.outbox.truncate(keep);
            }
            cs.retire_at = Some(until);
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
        let Some(g) = self.edit_group(group) else {
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
        if abandon {
            self.leave_group(group);
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

    /// `REM` of member `x` by `by` on connection `conn`; with `tell` (`REMT`),
    /// the remover could not reach the member: we tell it.
    pub(crate) fn on_rem(&mut self, conn: u64, group: &str, by: Mid, x: Mid, tell: bool) {
        let at = At::member(group, Some(by), Some(conn));
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
        self.apply_removal(group, x, by, tell);
        self.enqueue(
            conn,
            &AMessage::Group(GroupEnvelope::Remd(MemberId(x))),
            Note::None,
        );
    }

    /// `REMD`: member `from` removed `x` as we asked.
    pub(crate) fn on_remd(&mut self, conn: u64, group: &str, from: Mid, x: Mid) {
        let at = At::member(group, Some(from), Some(conn));
        let waited = self
            .groups
            .get_mut(group)
            .and_then(|g| g.removals.get_mut(&x))
            .is_some_and(|set| set.remove(&from));
        if !waited {
            // A removal already complete, or not ours.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &format!("REMD {} for no removal waiting for it", MemberId(x)),
            );
        }
        self.check_removal_done(group, x);
    }
}

#[cfg(test)]
mod tests {
    use smp_groups_wire::agent::{EnvelopeKind, GroupEnvelope, MemberId};

    use super::super::testing::{NOW, events, from, group_with, queued};
    use crate::{Config, Event, FaultKind, FaultSource};

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];
    const C: [u8; 16] = [3; 16];

    #[test]
    fn rem_retires_the_member_and_answers_remd() {
        let cfg = Config {
            removal_grace_ms: 500,
            ..Config::default()
        };
        let mut a = group_with(cfg, &[A, B]);
        from(&mut a, A, 10, GroupEnvelope::Rem(MemberId(B)));
        let g = &a.groups["g"];
        assert!(!g.members.contains_key(&B));
        assert!(g.gone.contains(&B));
        // Its connection is still read for the grace (concurrent removals).
        assert_eq!(a.conns[&11].retire_at, Some(NOW + 500));
        assert_eq!(queued(&a, 10).last(), Some(&EnvelopeKind::Remd));
        assert!(events(&mut a).contains(&Event::Removed {
            group: "g".into(),
            member: MemberId(B),
            by: Some(MemberId(A)),
        }));
    }

    #[test]
    fn a_removal_completes_when_the_last_remd_comes() {
        let mut a = group_with(Config::default(), &[A, B]);
        if let Some(g) = a.groups.get_mut("g") {
            g.removals.insert(C, [A, B].into_iter().collect());
        }
        from(&mut a, A, 10, GroupEnvelope::Remd(MemberId(C)));
        assert_eq!(events(&mut a), vec![]);
        from(&mut a, B, 11, GroupEnvelope::Remd(MemberId(C)));
        assert_eq!(
            events(&mut a),
            vec![Event::Removed {
                group: "g".into(),
                member: MemberId(C),
                by: None,
            }]
        );
        assert!(a.groups["g"].removals.is_empty());
        // Once more: nothing waits for it.
        from(&mut a, B, 11, GroupEnvelope::Remd(MemberId(C)));
        assert_eq!(a.refusals().get(FaultSource::Nobody, FaultKind::Stale), 1);
        assert_eq!(events(&mut a), vec![]);
    }
}
