//! `G_CHECK` rounds: sending ours and handling our members' checks.

use smp_groups_integrity::Timestamp;
use smp_groups_wire::agent::{AMessage, GCheck, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::Event;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{MemberStatus, Mid, Note};

impl Agent {
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
        let Some(g) = self.groups.get(alias) else {
            return;
        };
        let members = g.stable_members(&self.conns);
        let Some(g) = self.edit_group(alias) else {
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
        let env = AMessage::Group(GroupEnvelope::Check(check));
        for c in conns {
            self.enqueue(c, &env, Note::None);
        }
        self.broadcast_proofs(alias);
    }

    /// A member's `G_CHECK`: its member set is compared with ours, and its
    /// chain reports with what we hold.
    pub(crate) fn on_check(&mut self, conn: u64, group: &str, from: Mid, seq: u64, check: &GCheck) {
        let at = At::member(group, Some(from), Some(conn));
        if let Some(theirs) = check.members {
            self.compare_members(group, from, theirs);
        }
        let now = Timestamp::from_millis(self.now);
        let Some(g) = self.edit_group(group) else {
            // Internal: found above in this input.
            return;
        };
        match g.integrity.on_check(MemberId(from), seq, check, now) {
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

#[cfg(test)]
mod tests {
    use smp_groups_wire::agent::EnvelopeKind;

    use super::super::testing::{group_with, queued};
    use crate::Config;
    use crate::state::MemberStatus;

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];

    #[test]
    fn a_check_goes_to_connected_members_and_restarts_the_round() {
        let mut a = group_with(Config::default(), &[A, B]);
        if let Some(m) = a.groups.get_mut("g").and_then(|g| g.members.get_mut(&B)) {
            m.status = MemberStatus::Pending;
        }
        if let Some(g) = a.groups.get_mut("g") {
            assert!(g.integrity.on_sent(b"hello").is_ok());
        }
        a.send_check("g");
        assert_eq!(queued(&a, 10), vec![EnvelopeKind::Check]);
        // Not to a member we are still connecting with.
        assert_eq!(queued(&a, 11), vec![]);
        // Nothing new since: the group is idle until something is sent.
        assert!(a.groups["g"].integrity.idle());
    }
}
