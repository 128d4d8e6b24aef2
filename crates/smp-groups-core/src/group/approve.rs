//! Membership changes waiting for the client's approval (above the group size
//! threshold).

use smp_groups_wire::agent::{AMessage, GroupEnvelope};
use smp_groups_wire::{DecodeWith, Reader};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{ChangeRec, Note, Owner, PendingApproval};

impl Agent {
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
        let env = match AMessage::decode_with(&mut r, limits) {
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

    /// Holds a membership change for the client's decision: stores it under
    /// a fresh id and asks (`ApprovalRequired`); returns the id.
    pub(crate) fn ask_approval(&mut self, group: &str, pending: PendingApproval) -> u64 {
        let id = self.alloc_id();
        let change = pending.change;
        if let Some(g) = self.edit_group(group) {
            g.approvals.insert(id, pending);
        }
        self.event(Event::ApprovalRequired {
            group: group.to_owned(),
            approval: id,
            change: change.into(),
        });
        id
    }
}
