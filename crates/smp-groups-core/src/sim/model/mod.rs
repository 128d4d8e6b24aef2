//! A scenario model of the group simulation, shared by the core property test
//! (`tests/properties.rs`) and the `group_sim` fuzz target: a [`Case`] (agents,
//! operations, faults, seed, group settings) is run through a [`Sim`](super::Sim)
//! and [`check`] asserts, after the run settles:
//!
//! - every agent that still holds the group finished its join (no stall), and its
//!   view of the membership (connected and pending alike) is exactly the set of
//!   agents that hold the group: computed from who is in, not only agreement;
//! - every agent that held the group and no longer does was told why (`LEFT`,
//!   `OUT` or `DELD`), and a deleted group is held by nobody (but members
//!   that never knew a deleter whose removal raced its deletion);
//! - every message reaches, exactly once, every member that was in the group
//!   (join complete on both sides) when it was sent and is still in it, unless
//!   its sender was removed; no agent receives a message twice; every send of a
//!   member still in the group completes (`RCVD` for all);
//! - no `VIOLATION` in these honest runs; no event names an unknown member or group;
//! - no input refused as the fault of a peer or of the agent itself
//!   ([`FaultSource::Peer`](crate::FaultSource::Peer),
//!   [`FaultSource::Local`](crate::FaultSource::Local)) and no `FAULT` event:
//!   the simulated relay's duplicates, reordering and losses are counted as the
//!   relay's (or as expected races), and without any injected fault nothing is
//!   counted as a duplicate.
//!
//! An operation names agents by index; it is resolved against the current
//! state (an add picks among the members whose join is complete and among the
//! agents outside, modulo their number), and one that cannot be applied is
//! counted by cause in [`Stats`] (a caller running many cases bounds those
//! counts: a run where most operations were skipped proves nothing).
//!
//! With the environment variable `CORE_PROP_DUMP` set, a failed check prints
//! the case, the member ids and every agent's events to stderr first.

use std::fmt;

use super::Faults;
use crate::RefusalCounts;

/// Returns a [`CheckFailure`] from the enclosing function unless `$cond` holds.
macro_rules! ensure {
    ($seed:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::sim::model::CheckFailure::new($seed, format!($($fmt)+)));
        }
    };
}

/// Returns a [`CheckFailure`] from the enclosing function unless both sides
/// are equal; the message shows both.
macro_rules! ensure_eq {
    ($seed:expr, $left:expr, $right:expr, $($fmt:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err($crate::sim::model::CheckFailure::new(
                $seed,
                format!("{}\n  left: {left:?}\n right: {right:?}", format_args!($($fmt)+)),
            ));
        }
    }};
}

mod check;
mod run;

pub use check::check;

/// One operation of a [`Case`]. Agent numbers are resolved against the state
/// when it is applied (modulo the number of candidates), so any number is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A member whose join is complete invites an agent outside the group.
    Add {
        /// Picks the introducer among the members whose join is complete.
        by: usize,
        /// Picks the invited agent among those outside the group.
        who: usize,
    },
    /// A member sends a message to the group.
    Send {
        /// Picks the sender among the members.
        by: usize,
    },
    /// A member sends a direct message to another member (`DSEND`).
    DirectSend {
        /// Picks the sender among the members whose join is complete.
        by: usize,
        /// Picks the recipient among them (not the sender).
        to: usize,
    },
    /// A member leaves the group (picked among the members).
    Leave(usize),
    /// A member removes another one.
    Remove {
        /// Picks the remover among the members.
        by: usize,
        /// Picks the removed member among the members (not the remover).
        who: usize,
    },
    /// Agent `.0` crashes (it is restarted from its store later); must be
    /// below [`Case::n`].
    Crash(usize),
    /// The simulation runs this many ms; crashed agents restart and pending
    /// approvals are answered.
    Run(u16),
    /// A member deletes the group; the run goes on in a new group created by
    /// the same agent.
    Delete {
        /// Picks the deleting member among the members.
        by: usize,
    },
    /// Run until nothing is scheduled (every join and send completes).
    Settle,
}

/// One scenario: `n` agents, all pairwise connected, agent 0 creates a group,
/// then the operations are applied under the faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Number of agents (at least 2; the property test uses 3 to 8).
    pub n: usize,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The relay's faults.
    pub faults: Faults,
    /// The simulation's seed.
    pub seed: u64,
    /// [`Config::open_invitations`](crate::Config::open_invitations).
    pub open_invitations: bool,
    /// [`Config::approval_threshold`](crate::Config::approval_threshold).
    pub approval_threshold: usize,
}

/// Why operations were not applied, and what happened, in one case or summed
/// over cases ([`Stats::add`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Cases checked.
    pub cases: u64,
    /// Operations in them.
    pub ops: u64,
    /// Operations applied (resolved against the state).
    pub applied: u64,
    /// No agent to pick (e.g. an add when every agent is in the group).
    pub no_choice: u64,
    /// The introducer's own join was not complete (the agent refuses `INTRO`).
    pub add_refused: u64,
    /// A remove or delete refused because the agent's own join was not complete.
    pub refused_joining: u64,
    /// A remove of a member that was already gone for the remover.
    pub remove_gone: u64,
    /// The introducer left the group while the invitation was on its way.
    pub add_lost_introducer: u64,
    /// Members (other than a group's creator) whose join completed.
    pub adds_completed: u64,
    /// Agents that left a group before their join completed.
    pub joins_abandoned: u64,
    /// Messages sent.
    pub sends: u64,
    /// Deliveries checked to have happened exactly once.
    pub deliveries_checked: u64,
    /// Direct messages the agent accepted (`DSENT` answer).
    pub direct_sends: u64,
    /// Of those, checked delivered exactly once and confirmed (`DRCVD`).
    pub direct_checked: u64,
    /// Messages whose sender was removed (they may be dropped by design).
    pub sender_removed: u64,
    /// Groups deleted.
    pub deletes: u64,
    /// Deleted groups still held by members that never knew the deleter, a
    /// member being removed when it deleted (nobody left could tell them).
    pub deletes_unreachable: u64,
    /// Approval requests answered.
    pub approvals: u64,
    /// Agent crashes.
    pub crashes: u64,
    /// Inputs the agents refused, by source and kind.
    pub refusals: RefusalCounts,
}

impl Stats {
    /// Adds another case's (or run's) counts to these.
    pub fn add(&mut self, other: &Self) {
        self.cases += other.cases;
        self.ops += other.ops;
        self.applied += other.applied;
        self.no_choice += other.no_choice;
        self.add_refused += other.add_refused;
        self.refused_joining += other.refused_joining;
        self.remove_gone += other.remove_gone;
        self.add_lost_introducer += other.add_lost_introducer;
        self.adds_completed += other.adds_completed;
        self.joins_abandoned += other.joins_abandoned;
        self.sends += other.sends;
        self.deliveries_checked += other.deliveries_checked;
        self.direct_sends += other.direct_sends;
        self.direct_checked += other.direct_checked;
        self.sender_removed += other.sender_removed;
        self.deletes += other.deletes;
        self.deletes_unreachable += other.deletes_unreachable;
        self.approvals += other.approvals;
        self.crashes += other.crashes;
        self.refusals.add(&other.refusals);
    }
}

/// A property [`check`] found broken (or a step of the scenario that could not
/// be carried out): which, as a message that names the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    seed: u64,
    message: String,
}

impl CheckFailure {
    fn new(seed: u64, message: String) -> Self {
        Self { seed, message }
    }

    /// The seed of the failing case.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What failed (it starts with `seed N:`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckFailure {}
