//! Message keys kept for messages that have not arrived yet (out-of-order
//! delivery), bounded in number.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::kdf::{Key32, MessageKey};

/// One kept key: the header key of its chain, its number, the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    hk: Key32,
    n: u32,
    mk: MessageKey,
}

/// Skipped message keys, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Skipped {
    entries: VecDeque<Entry>,
}

impl Skipped {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps `mk` for message `n` of the chain with header key `hk`, dropping the
    /// oldest kept keys so that at most `max` remain.
    pub(crate) fn push(&mut self, hk: &Key32, n: u32, mk: MessageKey, max: usize) {
        self.entries.push_back(Entry {
            hk: hk.clone(),
            n,
            mk,
        });
        while self.entries.len() > max {
            self.entries.pop_front();
        }
    }

    /// Removes and returns the key for message `n` of chain `hk`.
    pub(crate) fn take(&mut self, hk: &Key32, n: u32) -> Option<MessageKey> {
        let i = self.entries.iter().position(|e| e.n == n && e.hk == *hk)?;
        self.entries.remove(i).map(|e| e.mk.clone())
    }

    /// The distinct header keys of the kept keys, oldest first.
    pub(crate) fn header_keys(&self) -> Vec<Key32> {
        let mut out: Vec<Key32> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.hk) {
                out.push(e.hk.clone());
            }
        }
        out
    }
}
