//! Reconciling a received `G_CHECK` with our own view (the group RFC's integrity
//! approach 1), entry by entry:
//!
//! * same id, same digest: the reporter and we agree up to there (`confirmed`);
//! * same id, different digest: equivocation, reported at once;
//! * the reporter is behind us: fine for now; if its next check, received at
//!   least the grace period later, is still short of where we were, it is
//!   [`Behind`](crate::ViolationKind::Behind);
//! * we are behind the reporter: we keep its digest and compare when our chain
//!   reaches that id; if its next check, received at least the grace period
//!   later, finds us still short, it is [`Missing`](crate::ViolationKind::Missing).
//!
//! A check is authenticated by the pairwise connection it arrives on: the caller
//! passes the member of that connection as `reporter`, and the check's sequence
//! number `seq`, which is the connection message id
//! ([`MsgHeader::snd_msg_id`](smp_groups_wire::agent::MsgHeader)) of the message
//! that carried it, strictly increasing per connection and verified by the
//! connection chain. A check is rejected whole ([`CheckError`]) when its first
//! entry does not name the reporter (a check forwarded or forged onto another
//! member's connection), when `seq` is not above the last accepted one
//! (a replay), or when any entry goes back from what the same reporter said
//! before (an old check).

use std::collections::BTreeSet;

use smp_groups_wire::agent::{GCheck, GCheckEntry, GCheckStatus, MemberId};

use crate::chain::Lookup;
use crate::error::CheckError;
use crate::group::{Expect, GroupIntegrity, flag};
use crate::time::Timestamp;
use crate::violation::{Violation, ViolationKind};

impl GroupIntegrity {
    /// Reconciles `check`, received from `reporter` with sequence number `seq`
    /// (see the module docs) at `now`. Returns the violations it reveals, each
    /// reported once until resolved, or rejects it with no change of state.
    pub fn on_check(
        &mut self,
        reporter: MemberId,
        seq: u64,
        check: &GCheck,
        now: Timestamp,
    ) -> Result<Vec<Violation>, CheckError> {
        self.validate_check(reporter, seq, check)?;
        if let Some(m) = self.member_mut(reporter) {
            m.last_seq = seq;
        }
        let mut out = Vec::new();
        for e in &check.entries {
            self.reconcile_entry(reporter, e, now, &mut out);
        }
        Ok(out)
    }

    fn validate_check(
        &self,
        reporter: MemberId,
        seq: u64,
        check: &GCheck,
    ) -> Result<(), CheckError> {
        let member = self
            .members
            .get(&reporter)
            .ok_or(CheckError::UnknownReporter(reporter))?;
        if seq <= member.last_seq {
            return Err(CheckError::Replayed {
                reporter,
                seq,
                last: member.last_seq,
            });
        }
        let first = check.entries.first().ok_or(CheckError::Empty(reporter))?;
        if first.member != reporter {
            return Err(CheckError::WrongReporter {
                reporter,
                named: first.member,
            });
        }
        let mut seen = BTreeSet::new();
        for e in &check.entries {
            if !seen.insert(e.member) {
                return Err(CheckError::DuplicateEntry {
                    reporter,
                    sender: e.member,
                });
            }
            if let Some(before) = member.views.get(&e.member).and_then(|v| v.last)
                && e.msg_id < before
            {
                return Err(CheckError::Regressed {
                    reporter,
                    sender: e.member,
                    before,
                    now: e.msg_id,
                });
            }
        }
        Ok(())
    }

    fn reconcile_entry(
        &mut self,
        reporter: MemberId,
        e: &GCheckEntry,
        now: Timestamp,
        out: &mut Vec<Violation>,
    ) {
        let sender = e.member;
        let Some(chain) = self.chain(sender) else {
            // A sender we do not know (not yet introduced to us, or removed).
            return;
        };
        let (head_id, head) = (chain.head_id(), chain.head());
        let lookup = chain.digest_at(e.msg_id);
        let is_me = sender == self.me;
        let grace = self.config.lag_grace_ms;
        let Some(view) = self
            .member_mut(reporter)
            .map(|m| m.views.entry(sender).or_default())
        else {
            return;
        };
        let mut violation = |kind| {
            out.push(Violation {
                sender,
                reporter,
                kind,
            });
        };

        if e.status == GCheckStatus::Bad && view.raise(flag::PEER_BAD) {
            violation(ViolationKind::ReportedBad);
        }
        // The previous check left the reporter behind us: has it caught up?
        if let Some(x) = view.behind
            && now >= x.since.plus_millis(grace)
        {
            view.behind = None;
            if e.msg_id < x.target {
                if view.raise(flag::BEHIND) {
                    violation(ViolationKind::Behind {
                        reported: e.msg_id,
                        expected: x.target,
                    });
                }
            } else {
                view.clear(flag::BEHIND);
            }
        }
        // The previous check left us behind the reporter: have we caught up?
        if let Some(x) = view.ahead
            && now >= x.since.plus_millis(grace)
        {
            view.ahead = None;
            if head_id < x.target {
                if view.raise(flag::MISSING) {
                    violation(ViolationKind::Missing {
                        ours: head_id,
                        theirs: x.target,
                    });
                }
            } else {
                view.clear(flag::MISSING);
            }
        }
        let mut equivocation = false;
        match lookup {
            Lookup::At(ours) if ours == e.digest => {
                view.confirmed = view.confirmed.max(e.msg_id);
                if head_id > e.msg_id && view.behind.is_none() {
                    view.behind = Some(Expect {
                        target: head_id,
                        digest: head,
                        since: now,
                    });
                }
            }
            Lookup::At(ours) => {
                equivocation = true;
                if view.raise(flag::EQUIVOCATION) {
                    violation(ViolationKind::Equivocation {
                        msg_id: e.msg_id,
                        ours,
                        theirs: e.digest,
                    });
                }
            }
            Lookup::Ahead if is_me => {
                if view.raise(flag::UNSENT) {
                    violation(ViolationKind::UnsentClaimed {
                        claimed: e.msg_id,
                        sent: head_id,
                    });
                }
            }
            Lookup::Ahead => {
                if view.ahead.is_none() {
                    view.ahead = Some(Expect {
                        target: e.msg_id,
                        digest: e.digest,
                        since: now,
                    });
                }
            }
            Lookup::Unverifiable => {
                // Too old to compare; it is still behind us.
                if view.behind.is_none() {
                    view.behind = Some(Expect {
                        target: head_id,
                        digest: head,
                        since: now,
                    });
                }
            }
        }
        view.last = Some(e.msg_id);
        if equivocation && let Some(c) = self.chain_mut(sender) {
            c.bad = true;
        }
    }
}
