//! Local ids: every id the agent hands out comes from a counter through
//! [`next`], so that no id is ever handed out twice.
//!
//! Two counters exist. The agent's ([`Agent::alloc_id`]) numbers
//! connections, relay operations, received invitations (in their aliases),
//! approvals and fresh aliases; it is part of the agent's record, which
//! taking an id marks to be stored, so that a restart never hands out an
//! id again. A group's ([`Group::alloc_msg_id`]) numbers the messages the
//! client sees in that group (sent, received, direct), stored with the
//! group.

use crate::Agent;
use crate::relay::OpId;
use crate::state::Group;
use crate::store::Key;

/// Takes the next id of `counter`: the value it holds, which it then moves
/// past.
pub(crate) fn next(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter += 1;
    id
}

impl Agent {
    /// A fresh agent-wide id; the agent's record (which holds the counter)
    /// is marked to be stored.
    pub(crate) fn alloc_id(&mut self) -> u64 {
        self.dirty.insert(Key::Meta);
        next(&mut self.next_id)
    }

    /// A fresh relay operation id (an agent-wide id).
    pub(crate) fn alloc_op(&mut self) -> OpId {
        OpId(self.alloc_id())
    }
}

impl Group {
    /// A fresh local message id in this group (stored with the group, which
    /// the caller changes).
    pub(crate) fn alloc_msg_id(&mut self) -> u64 {
        next(&mut self.next_msg_id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::store::Key;
    use crate::{Agent, Config, Output};

    #[test]
    fn next_hands_out_each_value_once_in_order() {
        let mut c = 7;
        let ids: Vec<u64> = (0..3).map(|_| super::next(&mut c)).collect();
        assert_eq!(ids, vec![7, 8, 9]);
        assert_eq!(c, 10);
    }

    /// Ids of every kind come from one counter, and an id taken is stored:
    /// an agent restored from its records does not hand it out again.
    #[test]
    fn agent_ids_are_distinct_across_kinds_and_survive_a_restart() {
        let mut a = Agent::new(Config::default());
        let mut records = std::collections::BTreeMap::new();
        let mut drain = |a: &mut Agent| {
            while let Some(o) = a.poll() {
                if let Output::Store(b) = o {
                    for k in b.deletes {
                        records.remove(&k);
                    }
                    records.extend(b.puts);
                }
            }
        };
        drain(&mut a);
        a.dirty.clear();
        let mut seen = BTreeSet::new();
        assert!(seen.insert(a.alloc_id()));
        assert!(a.dirty.contains(&Key::Meta));
        assert!(seen.insert(a.alloc_op().0));
        let alias = a.fresh_alias("x");
        assert!(seen.insert(alias[1..].parse().unwrap_or(0)));
        // Stored with the next input's batch.
        a.handle(
            crate::Input::Timeout,
            crate::Timestamp::from_millis(1),
            &mut smp_groups_crypto::rng::seeded(1),
        );
        drain(&mut a);
        let restored = Agent::restore(records, crate::SCHEMA_VERSION);
        let Ok(mut b) = restored else {
            panic!("restore failed");
        };
        for _ in 0..3 {
            assert!(seen.insert(b.alloc_id()), "an id was handed out again");
        }
    }
}
