//! Scenario helpers: visible connections, groups, adding members, driven to
//! completion through the simulation.

use std::collections::BTreeMap;

use crate::api::{Command, Event};

use super::Sim;

/// Settle horizon: far beyond retry delays, short of the pending-member expiry.
pub(super) const HORIZON_MS: u64 = 600_000;

/// One agent's alias of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupHandle {
    /// The agent.
    pub agent: usize,
    /// Its alias for the group.
    pub alias: String,
}

impl Sim {
    /// The response to the command with correlation id `corr` on agent `i`.
    pub fn response(&self, i: usize, corr: &str) -> Option<&Event> {
        self.events(i)
            .iter()
            .find(|e| e.corr.as_deref() == Some(corr))
            .map(|e| &e.event)
    }

    /// Acknowledges every group and direct message the agents of `hs`
    /// received and did not acknowledge yet (`from` keeps each agent's position in its
    /// events); agents that are down are skipped.
    pub fn ack_all(&mut self, hs: &[GroupHandle], from: &mut BTreeMap<usize, usize>) {
        for h in hs {
            if !self.is_up(h.agent) {
                continue;
            }
            let start = from.get(&h.agent).copied().unwrap_or(0);
            let ids: Vec<(String, u64)> =
                self.events(h.agent)
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| match &e.event {
                        Event::Msg { group, msg_id, .. }
                        | Event::DirectMsg { group, msg_id, .. } => Some((group.clone(), *msg_id)),
                        _ => None,
                    })
                    .collect();
            from.insert(h.agent, self.events(h.agent).len());
            for (group, msg_id) in ids {
                self.command(h.agent, Command::Ack { group, msg_id });
            }
        }
    }

    /// Every agent of `hs` sends its `G_CHECK` now (`Command::Check`), then
    /// everything settles.
    pub fn check_all(&mut self, hs: &[GroupHandle]) {
        for h in hs {
            self.command(
                h.agent,
                Command::Check {
                    group: h.alias.clone(),
                },
            );
        }
        self.settle_all();
    }

    /// Runs until nothing is scheduled within the default horizon.
    pub fn settle_all(&mut self) -> u64 {
        self.settle(HORIZON_MS)
    }

    /// Connects agents `a` and `b` with a client-visible connection (or returns
    /// the existing one): their aliases for it.
    pub fn connect(&mut self, a: usize, b: usize) -> Option<(String, String)> {
        if let Some(c) = self.visible.get(&(a, b)) {
            return Some(c.clone());
        }
        let from = self.events(a).len();
        let corr = self.command(a, Command::NewConn { alias: None });
        let Some(Event::Ok { alias: alias_a }) = self.response(a, &corr).cloned() else {
            return None;
        };
        self.settle_all();
        let invitation = self
            .events(a)
            .get(from..)?
            .iter()
            .find_map(|e| match &e.event {
                Event::Invitation { alias, invitation } if *alias == alias_a => {
                    Some(invitation.clone())
                }
                _ => None,
            })?;
        let corr = self.command(
            b,
            Command::JoinConn {
                alias: None,
                invitation,
                info: Vec::new(),
            },
        );
        let Some(Event::Ok { alias: alias_b }) = self.response(b, &corr).cloned() else {
            return None;
        };
        self.settle_all();
        let pair = (alias_a, alias_b);
        self.visible.insert((a, b), pair.clone());
        self.visible
            .insert((b, a), (pair.1.clone(), pair.0.clone()));
        Some(pair)
    }

    /// Agent `a` creates a group.
    pub fn create_group(&mut self, a: usize) -> Option<GroupHandle> {
        let corr = self.command(
            a,
            Command::NewGroup {
                alias: None,
                info: b"group".to_vec(),
            },
        );
        match self.response(a, &corr) {
            Some(Event::Ok { alias }) => Some(GroupHandle {
                agent: a,
                alias: alias.clone(),
            }),
            _ => None,
        }
    }

    /// Member `by` invites agent `b` (over their visible connection, made
    /// first if needed, and settled) and `b` accepts. Returns `b`'s handle once
    /// the invitation was accepted; call [`Sim::settle_all`] to complete the add.
    pub fn invite(&mut self, by: &GroupHandle, b: usize) -> Option<GroupHandle> {
        let (conn_a, conn_b) = self.connect(by.agent, b)?;
        let from = self.events(b).len();
        let corr = self.command(
            by.agent,
            Command::Intro {
                conn: conn_a,
                group: by.alias.clone(),
                info: b"group".to_vec(),
            },
        );
        if !matches!(self.response(by.agent, &corr), Some(Event::Ok { .. })) {
            return None;
        }
        // Run until the invitation reaches b.
        let mut guard = 0u32;
        let inv = loop {
            let found = self
                .events(b)
                .get(from..)?
                .iter()
                .find_map(|e| match &e.event {
                    Event::GroupRequest {
                        conn, invitation, ..
                    } if *conn == conn_b => Some(invitation.clone()),
                    _ => None,
                });
            if let Some(i) = found {
                break i;
            }
            guard += 1;
            if guard > 1_000_000 || !self.step(self.now + HORIZON_MS) {
                return None;
            }
        };
        let corr = self.command(
            b,
            Command::JoinGroup {
                alias: None,
                invitation: inv,
            },
        );
        match self.response(b, &corr) {
            Some(Event::Ok { alias }) => Some(GroupHandle {
                agent: b,
                alias: alias.clone(),
            }),
            _ => None,
        }
    }

    /// Builds a group of agents `0..n` (agent 0 creates it and adds the others
    /// one by one, each add settled). Returns every member's handle.
    pub fn build_group(&mut self, n: usize) -> Option<Vec<GroupHandle>> {
        let first = self.create_group(0)?;
        let mut handles = vec![first.clone()];
        for b in 1..n {
            self.connect(0, b)?;
            let h = self.invite(&first, b)?;
            self.settle_all();
            handles.push(h);
        }
        Some(handles)
    }
}
