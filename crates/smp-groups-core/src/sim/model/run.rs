//! The runner: applies a case's operations to the simulation and records what
//! the checks need (who holds which group, member ids, what was sent to whom).

use std::collections::{BTreeMap, BTreeSet};

use smp_groups_wire::agent::MemberId;

use super::{CheckFailure, Op, Stats};
use crate::sim::{GroupHandle, Sim};
use crate::{Command, CommandError, Event};

/// One message sent by the scenario.
pub(super) struct Sent {
    pub(super) generation: usize,
    pub(super) sender_agent: usize,
    pub(super) sender: MemberId,
    pub(super) body: Vec<u8>,
    /// The sender's local id for it (from `Queued`).
    pub(super) int_id: Option<u64>,
    /// Agents whose join was complete when it was sent (the sender's too).
    pub(super) to: BTreeSet<usize>,
}

/// One direct message the scenario sent, that the sender's agent accepted.
pub(super) struct DirectSent {
    pub(super) generation: usize,
    pub(super) sender_agent: usize,
    pub(super) sender: MemberId,
    pub(super) recipient_agent: usize,
    pub(super) body: Vec<u8>,
    /// The sender's local id for it (from `DirectQueued`).
    pub(super) int_id: u64,
}

/// One group's life: created by one agent, deleted perhaps.
pub(super) struct Generation {
    pub(super) creator: usize,
    pub(super) handles: BTreeMap<usize, GroupHandle>,
    pub(super) deleted: bool,
    /// The agent that deleted it.
    pub(super) deleted_by: Option<usize>,
    /// Agents whose removal a member accepted (`OK`), in the order issued.
    pub(super) removed: BTreeSet<usize>,
}

/// A case being run.
pub(super) struct Run {
    pub(super) sim: Sim,
    pub(super) gens: Vec<Generation>,
    pub(super) ids: BTreeMap<(usize, usize), MemberId>,
    pub(super) sent: Vec<Sent>,
    pub(super) direct: Vec<DirectSent>,
    pub(super) answered: BTreeSet<(usize, String, u64)>,
    pub(super) stats: Stats,
}

impl Run {
    /// Agent 0 created `first` in `sim`.
    pub(super) fn new(sim: Sim, first: GroupHandle) -> Self {
        let mut run = Self {
            sim,
            gens: vec![Generation {
                creator: 0,
                handles: BTreeMap::from([(0, first)]),
                deleted: false,
                deleted_by: None,
                removed: BTreeSet::new(),
            }],
            ids: BTreeMap::new(),
            sent: Vec::new(),
            direct: Vec::new(),
            answered: BTreeSet::new(),
            stats: Stats::default(),
        };
        run.id_of(0, 0);
        run
    }

    fn seed(&self) -> u64 {
        self.sim.seed()
    }

    fn current(&self) -> usize {
        self.gens.len() - 1
    }

    fn handle(&self, g: usize, i: usize) -> Option<&GroupHandle> {
        self.gens.get(g).and_then(|x| x.handles.get(&i))
    }

    pub(super) fn holds(&self, g: usize, i: usize) -> bool {
        match (self.handle(g, i), self.sim.agent(i)) {
            (Some(h), Some(a)) => a.groups().contains(&h.alias),
            _ => false,
        }
    }

    /// Agent `i` finished joining generation `g` (or created it).
    pub(super) fn complete(&self, g: usize, i: usize) -> bool {
        let Some(h) = self.handle(g, i) else {
            return false;
        };
        self.gens[g].creator == i
            || self.sim.events(i).iter().any(
                |e| matches!(&e.event, Event::Mem { group, member: None } if *group == h.alias),
            )
    }

    pub(super) fn id_of(&mut self, g: usize, i: usize) -> Option<MemberId> {
        if let Some(id) = self.ids.get(&(g, i)) {
            return Some(*id);
        }
        let alias = self.handle(g, i)?.alias.clone();
        let id = self.sim.agent(i)?.member_id(&alias)?;
        self.ids.insert((g, i), id);
        Some(id)
    }

    fn holders(&self, g: usize) -> Vec<usize> {
        self.gens[g]
            .handles
            .keys()
            .copied()
            .filter(|i| self.holds(g, *i))
            .collect()
    }

    fn pick(list: &[usize], i: usize) -> Option<usize> {
        (!list.is_empty()).then(|| list[i % list.len()])
    }

    /// Answers every approval request not yet answered (accepting it).
    pub(super) fn approve_pending(&mut self) -> bool {
        let mut todo = Vec::new();
        for i in 0..self.sim.len() {
            if !self.sim.is_up(i) {
                continue;
            }
            for e in self.sim.events(i) {
                if let Event::ApprovalRequired {
                    group, approval, ..
                } = &e.event
                    && !self.answered.contains(&(i, group.clone(), *approval))
                {
                    todo.push((i, group.clone(), *approval));
                }
            }
        }
        for (i, group, approval) in &todo {
            self.answered.insert((*i, group.clone(), *approval));
            self.stats.approvals += 1;
            self.sim.command(
                *i,
                Command::Approve {
                    group: group.clone(),
                    approval: *approval,
                    accept: true,
                },
            );
        }
        !todo.is_empty()
    }

    /// Applies operation number `k`.
    pub(super) fn apply(&mut self, op: &Op, k: usize) -> Result<(), CheckFailure> {
        self.stats.ops += 1;
        let g = self.current();
        let holders = self.holders(g);
        let outside: Vec<usize> = (0..self.sim.len())
            .filter(|i| !self.gens[g].handles.contains_key(i))
            .collect();
        let complete: Vec<usize> = holders
            .iter()
            .copied()
            .filter(|i| self.complete(g, *i))
            .collect();
        let resolved = match *op {
            // Members still joining refuse `INTRO`: adds pick among the others.
            Op::Add { by, who } => Self::pick(
                if complete.is_empty() {
                    &holders
                } else {
                    &complete
                },
                by,
            )
            .zip(Self::pick(&outside, who))
            .map(|(by, who)| Op::Add { by, who }),
            Op::Send { by } => Self::pick(&holders, by).map(|by| Op::Send { by }),
            Op::DirectSend { by, to } => Self::pick(&complete, by)
                .zip(Self::pick(&complete, to))
                .filter(|(by, to)| by != to)
                .map(|(by, to)| Op::DirectSend { by, to }),
            Op::Leave(i) => Self::pick(&holders, i).map(Op::Leave),
            Op::Remove { by, who } => Self::pick(&holders, by)
                .zip(Self::pick(&holders, who))
                .filter(|(by, who)| by != who)
                .map(|(by, who)| Op::Remove { by, who }),
            Op::Delete { by } => Self::pick(&holders, by).map(|by| Op::Delete { by }),
            ref other => Some(other.clone()),
        };
        let Some(op) = resolved else {
            self.stats.no_choice += 1;
            return Ok(());
        };
        self.stats.applied += 1;
        match op {
            Op::Add { by, who } => self.add(g, by, who)?,
            Op::Send { by } => self.send(g, by, k),
            Op::DirectSend { by, to } => self.direct_send(g, by, to, k),
            Op::Leave(i) => {
                if let Some(h) = self.handle(g, i).cloned() {
                    self.sim.command(i, Command::Leave { group: h.alias });
                }
            }
            Op::Remove { by, who } => self.remove(g, by, who)?,
            Op::Delete { by } => self.delete(g, by)?,
            Op::Crash(i) => {
                self.stats.crashes += 1;
                self.sim.crash(i);
            }
            Op::Settle => {
                self.restart_all()?;
                self.sim.settle_all();
                self.approve_pending();
                self.sim.settle_all();
            }
            Op::Run(ms) => {
                let t = self.sim.now() + u64::from(ms);
                self.sim.run_until(t);
                self.restart_all()?;
                self.approve_pending();
            }
        }
        Ok(())
    }

    fn add(&mut self, g: usize, by: usize, who: usize) -> Result<(), CheckFailure> {
        if !self.sim.is_up(who) || !self.sim.is_up(by) {
            self.restart_all()?;
        }
        if !self.complete(g, by) {
            // The agent refuses `INTRO` until its own join is complete.
            self.stats.add_refused += 1;
            return Ok(());
        }
        let Some(h) = self.handle(g, by).cloned() else {
            return Ok(());
        };
        if let Some(nh) = self.sim.invite(&h, who) {
            self.gens[g].handles.insert(who, nh);
            self.id_of(g, who);
        } else {
            ensure!(
                self.seed(),
                !self.holds(g, by),
                "seed {}: add of {who} by {by} failed while {by} holds the group",
                self.seed()
            );
            self.stats.add_lost_introducer += 1;
        }
        Ok(())
    }

    fn send(&mut self, g: usize, by: usize, k: usize) {
        let Some(sender) = self.id_of(g, by) else {
            return;
        };
        let Some(h) = self.handle(g, by).cloned() else {
            return;
        };
        let to: BTreeSet<usize> = if self.complete(g, by) {
            self.gens[g]
                .handles
                .keys()
                .copied()
                .filter(|i| *i != by && self.holds(g, *i) && self.complete(g, *i))
                .collect()
        } else {
            BTreeSet::new()
        };
        let body = format!("m{k}").into_bytes();
        let corr = self.sim.command(
            by,
            Command::Send {
                group: h.alias,
                body: body.clone(),
            },
        );
        let int_id = match self.sim.response(by, &corr) {
            Some(Event::Queued { msg_id, .. }) => Some(*msg_id),
            _ => None,
        };
        self.stats.sends += 1;
        self.sent.push(Sent {
            generation: g,
            sender_agent: by,
            sender,
            body,
            int_id,
            to,
        });
    }

    fn direct_send(&mut self, g: usize, by: usize, to: usize, k: usize) {
        let (Some(sender), Some(recipient)) = (self.id_of(g, by), self.id_of(g, to)) else {
            return;
        };
        let Some(h) = self.handle(g, by).cloned() else {
            return;
        };
        let body = format!("d{k}").into_bytes();
        let corr = self.sim.command(
            by,
            Command::DirectSend {
                group: h.alias,
                member: recipient,
                body: body.clone(),
            },
        );
        // Refused (the agent is down, or does not count the member as
        // connected yet): nothing to check.
        let Some(Event::DirectQueued { msg_id, .. }) = self.sim.response(by, &corr) else {
            return;
        };
        let int_id = *msg_id;
        self.stats.direct_sends += 1;
        self.direct.push(DirectSent {
            generation: g,
            sender_agent: by,
            sender,
            recipient_agent: to,
            body,
            int_id,
        });
    }

    fn remove(&mut self, g: usize, by: usize, who: usize) -> Result<(), CheckFailure> {
        let (Some(member), Some(h)) = (self.id_of(g, who), self.handle(g, by).cloned()) else {
            return Ok(());
        };
        let corr = self.sim.command(
            by,
            Command::Remove {
                group: h.alias,
                member,
            },
        );
        match self.sim.response(by, &corr) {
            Some(Event::Ok { .. }) => {
                self.gens[g].removed.insert(who);
            }
            Some(Event::Err(CommandError::NoMember(_))) => {
                // It already left or was removed by someone else.
                self.stats.remove_gone += 1;
            }
            other => {
                ensure!(
                    self.seed(),
                    !self.complete(g, by),
                    "seed {}: remove refused: {other:?}",
                    self.seed()
                );
                self.stats.refused_joining += 1;
            }
        }
        Ok(())
    }

    fn delete(&mut self, g: usize, by: usize) -> Result<(), CheckFailure> {
        let Some(h) = self.handle(g, by).cloned() else {
            return Ok(());
        };
        let corr = self.sim.command(by, Command::Delete { group: h.alias });
        if !matches!(self.sim.response(by, &corr), Some(Event::Ok { .. })) {
            // Refused while its own join is in progress.
            ensure!(
                self.seed(),
                !self.complete(g, by),
                "seed {}: delete refused",
                self.seed()
            );
            self.stats.refused_joining += 1;
            return Ok(());
        }
        self.stats.deletes += 1;
        self.gens[g].deleted = true;
        self.gens[g].deleted_by = Some(by);
        // Life goes on in a new group created by the same agent.
        let Some(nh) = self.sim.create_group(by) else {
            return Err(CheckFailure::new(
                self.seed(),
                format!(
                    "seed {}: agent {by} could not create a group after deleting one",
                    self.seed()
                ),
            ));
        };
        self.gens.push(Generation {
            creator: by,
            handles: BTreeMap::from([(by, nh)]),
            deleted: false,
            deleted_by: None,
            removed: BTreeSet::new(),
        });
        self.id_of(g + 1, by);
        Ok(())
    }

    /// Restarts every crashed agent from its store.
    pub(super) fn restart_all(&mut self) -> Result<(), CheckFailure> {
        for i in 0..self.sim.len() {
            if !self.sim.is_up(i)
                && let Err(e) = self.sim.restart(i)
            {
                return Err(CheckFailure::new(
                    self.seed(),
                    format!("seed {}: agent {i} could not be restored: {e}", self.seed()),
                ));
            }
        }
        Ok(())
    }
}
