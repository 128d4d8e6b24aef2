//! Leaving (`LEFT`), an emptied group (`EMPTY`) and deleting (`DEL`, `DELD`).

use smp_groups_wire::agent::{AMessage, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::state::{GroupStatus, Mid, Note};

impl Agent {
    /// Leaves `group`: `LEFT` to every member we reached, then forget it
    /// (the client's `LEAVE`, or our join that cannot complete).
    pub(crate) fn leave_group(&mut self, group: &str) {
        let conns = self.member_conns(group);
        self.send_left(group);
        self.drop_group(group, &conns);
        self.event(Event::Left {
            group: group.to_owned(),
            member: None,
        });
    }

    pub(crate) fn cmd_leave(&mut self, group: &str) -> Result<Event, CommandError> {
        self.group_mut(group)?;
        self.leave_group(group);
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

    /// Connection ids of every member of the group.
    pub(crate) fn member_conns(&self, group: &str) -> Vec<u64> {
        self.groups
            .get(group)
            .map(|g| g.members.values().filter_map(|m| m.conn).collect())
            .unwrap_or_default()
    }

    /// `LEFT`: member `x` left the group.
    pub(crate) fn on_left(&mut self, group: &str, x: Mid) {
        self.close_member(group, x);
        self.member_gone(group, x);
        self.event(Event::Left {
            group: group.to_owned(),
            member: Some(MemberId(x)),
        });
        self.check_empty(group);
    }

    /// `DEL` from member `by` on connection `conn`: the group is deleted.
    pub(crate) fn on_del(&mut self, conn: u64, group: &str, by: Mid) {
        self.enqueue(conn, &AMessage::Group(GroupEnvelope::Deld), Note::None);
        // Members we are adding may be unknown to the deleter: they
        // hear of the deletion from us. So do members we added that
        // we are still introducing to the deleter (a late
        // introduction: it joined concurrently and may not know them).
        let mut tell = self.unfinished_add_conns(group);
        tell.extend(self.introduced_late_to(group, by));
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
            by: Some(MemberId(by)),
        });
    }
}

#[cfg(test)]
mod tests {
    use smp_groups_wire::agent::{EnvelopeKind, GroupEnvelope, MemberId};

    use super::super::testing::{events, from, group_with, queued};
    use crate::{Config, Event};

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];

    #[test]
    fn the_last_member_leaving_empties_the_group_once() {
        let mut a = group_with(Config::default(), &[A, B]);
        from(&mut a, A, 10, GroupEnvelope::Left);
        let left = |x| Event::Left {
            group: "g".into(),
            member: Some(MemberId(x)),
        };
        assert_eq!(events(&mut a), vec![left(A)]);
        assert!(a.groups["g"].gone.contains(&A));
        assert!(a.conns.get(&10).is_none_or(|c| c.closing));
        from(&mut a, B, 11, GroupEnvelope::Left);
        assert_eq!(
            events(&mut a),
            vec![left(B), Event::Empty { group: "g".into() }]
        );
        // The group stays, empty: no second EMPTY for nothing.
        a.check_empty("g");
        assert_eq!(events(&mut a), vec![]);
    }

    #[test]
    fn del_from_a_member_answers_deld_and_deletes_the_group() {
        let mut a = group_with(Config::default(), &[A, B]);
        from(&mut a, A, 10, GroupEnvelope::Del);
        // DELD to the deleter, before the connection closes.
        assert_eq!(queued(&a, 10).first(), Some(&EnvelopeKind::Deld));
        // The other member heard of it from the deleter: nothing from us.
        assert!(!queued(&a, 11).contains(&EnvelopeKind::Del));
        assert!(!a.groups.contains_key("g"));
        assert_eq!(
            events(&mut a),
            vec![Event::Deleted {
                group: "g".into(),
                by: Some(MemberId(A)),
            }]
        );
    }
}
