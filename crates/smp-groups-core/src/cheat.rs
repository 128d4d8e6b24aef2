//! A cheating sender, for tests of integrity detection only (`cheat` feature,
//! off by default; `docs/integrity.md`, "Testing detection with a cheater").
//!
//! An agent given a [`Cheat`] ([`crate::Agent::set_cheat`]) breaks the group
//! protocol in its own group sends, from one of its group-wide message ids
//! on: it equivocates (some members get other content under the same id) or
//! withholds (some members get nothing). Everything else it does stays
//! honest, its own chain included: it records what it would have sent to
//! everyone, so its own `G_CHECK` vouches for the honest version. The cheat
//! is not stored: a restored agent is honest until it is given one again.

use crate::state::Mid;

/// How a cheating agent breaks its group sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheatMode {
    /// Members at odd positions, in member id order, of those a message is
    /// sent to get a different content (the original with ` [equivocated]`
    /// appended) under the same group-wide id.
    Equivocate,
    /// The last member, in member id order, of those a message is sent to
    /// gets nothing (when there are at least two).
    Withhold,
}

/// A cheat: what to do, and from which of the agent's own group-wide
/// message ids (`extMsgId`) on, in every group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cheat {
    /// What to do.
    pub mode: CheatMode,
    /// The first of our group-wide message ids the cheat applies to (ids
    /// before it are sent honestly).
    pub from_msg: u64,
    /// The last one it applies to (`None`: every later id too).
    pub until_msg: Option<u64>,
}

/// The text appended to an equivocated message.
pub(crate) const EQUIVOCATION_MARK: &[u8] = b" [equivocated]";

/// What a cheat does to one send: the targets (member id order) that get
/// altered content, and those that get nothing.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) altered: Vec<Mid>,
    pub(crate) withheld: Vec<Mid>,
}

impl Cheat {
    /// The plan for our message `ext_msg_id` to `targets` (in member id order).
    pub(crate) fn plan(&self, ext_msg_id: u64, targets: &[Mid]) -> Plan {
        let mut plan = Plan::default();
        if ext_msg_id < self.from_msg || self.until_msg.is_some_and(|u| ext_msg_id > u) {
            return plan;
        }
        match self.mode {
            CheatMode::Equivocate => {
                plan.altered = targets.iter().skip(1).step_by(2).copied().collect();
            }
            CheatMode::Withhold => {
                if targets.len() >= 2 {
                    plan.withheld = targets.last().copied().into_iter().collect();
                }
            }
        }
        plan
    }
}

impl crate::Agent {
    /// Makes this agent cheat in its group sends from now on (`None`: honest
    /// again). For tests of detection only; not stored.
    pub fn set_cheat(&mut self, cheat: Option<Cheat>) {
        self.cheat = cheat;
    }

    /// Forks the hash chain of our pairwise connection `alias`: the next
    /// message sealed on it is recorded in our chain as other bytes than
    /// those sent, so the one after it names a previous message the peer
    /// never got (the peer reports it as `bad_hash`). False if there is no
    /// such connection. For tests of detection only; not stored.
    pub fn fork_pairwise_chain(&mut self, alias: &str) -> bool {
        let found = self
            .conns
            .iter()
            .find(|(_, c)| matches!(&c.owner, crate::state::Owner::Visible(a) if a == alias))
            .map(|(id, _)| *id);
        found.is_some_and(|id| self.fork_next.insert(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let t: Vec<Mid> = (1..=4u8).map(|i| [i; 16]).collect();
        let c = Cheat {
            mode: CheatMode::Equivocate,
            from_msg: 2,
            until_msg: Some(3),
        };
        assert!(c.plan(1, &t).altered.is_empty());
        assert_eq!(c.plan(2, &t).altered, vec![[2; 16], [4; 16]]);
        assert!(c.plan(4, &t).altered.is_empty());
        let w = Cheat {
            mode: CheatMode::Withhold,
            from_msg: 1,
            until_msg: None,
        };
        assert_eq!(w.plan(9, &t).withheld, vec![[4; 16]]);
        assert!(w.plan(9, &t[..1]).withheld.is_empty());
    }
}
