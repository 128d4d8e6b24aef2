//! The member set in `G_CHECK`: each member gives a digest of the members it
//! holds when nothing about the membership is in progress at its end, and a
//! member whose set differs from ours at two of its checks, at least the
//! integrity grace period apart, both compared at a stable point of ours with
//! no change of our own set between them, is reported
//! (`ViolationKind::Members`). See `docs/integrity.md`.

use std::collections::BTreeMap;

use smp_groups_crypto::sha256;
use smp_groups_integrity::{Violation, ViolationKind};
use smp_groups_wire::agent::{GCheckMembers, MAX_GCHECK_ENTRIES, MemberId};

use crate::Agent;
use crate::api::Event;
use crate::state::{Group, GroupStatus, MemberStatus, Mid};

/// Domain separation of the member set digest.
const MEMBERS_DOMAIN: &[u8] = b"smp-groups members v1";

/// A member set that differed from ours at one of its sender's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The sender's set.
    theirs: GCheckMembers,
    /// Ours when it was compared.
    ours: GCheckMembers,
    /// When the difference was first seen (ms).
    since: u64,
    /// Whether it was reported (once per pair of sets).
    reported: bool,
}

/// The mismatches seen, by sender (not stored: a restart starts over, which
/// only delays a report).
pub(crate) type Mismatches = BTreeMap<Mid, Mismatch>;

impl Group {
    /// Adds member `x` to our set. Every change of our set starts the
    /// member comparisons over: a difference counts only while our set stays
    /// the same, so a set that changes and changes back (a member joins, then
    /// leaves) is not taken for a lasting difference.
    pub(crate) fn insert_member(&mut self, x: Mid, m: crate::state::Member) {
        self.members.insert(x, m);
        self.members_mismatch.clear();
    }

    /// Removes member `x` from our set (see [`Group::insert_member`]).
    pub(crate) fn remove_member(&mut self, x: Mid) {
        self.members.remove(&x);
        self.members_mismatch.clear();
    }

    /// True when nothing about the membership is in progress at our end:
    /// active, our join done, no member pending or gone quiet, no change
    /// waiting for the client.
    fn membership_stable(&self, conns: &BTreeMap<u64, crate::state::Conn>) -> bool {
        self.status == GroupStatus::Active
            && !self.joining()
            && self.approvals.is_empty()
            && self.members.values().all(|m| {
                m.status != MemberStatus::Pending
                    && m.conn
                        .and_then(|c| conns.get(&c))
                        .is_some_and(|c| c.peer_gone_at.is_none() && !c.closing)
            })
    }

    /// Our member set (ourselves included) as `G_CHECK` gives it, if it is
    /// stable and fits the field.
    pub(crate) fn stable_members(
        &self,
        conns: &BTreeMap<u64, crate::state::Conn>,
    ) -> Option<GCheckMembers> {
        if !self.membership_stable(conns) {
            return None;
        }
        let mut ids: Vec<Mid> = self.members.keys().copied().collect();
        ids.push(self.me);
        ids.sort_unstable();
        let count = u16::try_from(ids.len())
            .ok()
            .filter(|n| usize::from(*n) <= MAX_GCHECK_ENTRIES)?;
        let mut input = Vec::with_capacity(MEMBERS_DOMAIN.len() + 16 * (ids.len() + 1));
        input.extend_from_slice(MEMBERS_DOMAIN);
        input.extend_from_slice(&self.id);
        for id in &ids {
            input.extend_from_slice(id);
        }
        Some(GCheckMembers {
            count,
            digest: smp_groups_wire::agent::Digest(sha256(&input)),
        })
    }
}

impl Agent {
    /// Compares the member set in `sender`'s check with ours; reports a
    /// difference seen at two of its checks at least the grace apart.
    pub(crate) fn compare_members(&mut self, group: &str, sender: Mid, theirs: GCheckMembers) {
        let now = self.now;
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let grace = g.integrity.config().lag_grace_ms;
        let Some(ours) = g.stable_members(&self.conns) else {
            // Not comparable now; what was seen stays for the next check.
            return;
        };
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if ours == theirs {
            g.members_mismatch.remove(&sender);
            return;
        }
        let report = match g.members_mismatch.get_mut(&sender) {
            Some(m) if m.theirs == theirs && m.ours == ours => {
                let due = !m.reported && now.saturating_sub(m.since) >= grace;
                m.reported |= due;
                due
            }
            _ => {
                g.members_mismatch.insert(
                    sender,
                    Mismatch {
                        theirs,
                        ours,
                        since: now,
                        reported: false,
                    },
                );
                false
            }
        };
        tracing::debug!(
            group,
            member = %MemberId(sender),
            ours = ours.count,
            theirs = theirs.count,
            report,
            "member sets differ"
        );
        if report {
            tracing::warn!(
                group,
                member = %MemberId(sender),
                ours = ours.count,
                theirs = theirs.count,
                "the member's list of members differs from ours"
            );
            self.event(Event::Violation {
                group: group.to_owned(),
                violation: Violation {
                    sender: MemberId(sender),
                    reporter: MemberId(sender),
                    kind: ViolationKind::Members {
                        ours: ours.count,
                        theirs: theirs.count,
                    },
                },
            });
        }
    }
}
