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
    pub(crate) fn push(&mut self, hk: Key32, n: u32, mk: MessageKey, max: usize) {
        self.entries.push_back(Entry { hk, n, mk });
        while self.entries.len() > max {
            self.entries.pop_front();
        }
    }

    /// Where the key for message `n` of chain `hk` is kept, if it is.
    pub(crate) fn find(&self, hk: &Key32, n: u32) -> Option<usize> {
        self.entries.iter().position(|e| e.n == n && e.hk == *hk)
    }

    /// The key kept at `i` (an index from [`find`](Self::find)).
    pub(crate) fn key_at(&self, i: usize) -> Option<&MessageKey> {
        self.entries.get(i).map(|e| &e.mk)
    }

    /// Drops the key kept at `i` (it was used).
    pub(crate) fn remove(&mut self, i: usize) {
        self.entries.remove(i);
    }

    /// The distinct header keys of the kept keys, oldest first.
    pub(crate) fn header_keys(&self) -> Vec<&Key32> {
        let mut out: Vec<&Key32> = Vec::new();
        for e in &self.entries {
            // Keys of one chain are kept next to each other, so the last one
            // seen is the likely duplicate.
            if out.last().is_none_or(|hk| **hk != e.hk) && !out.contains(&&e.hk) {
                out.push(&e.hk);
            }
        }
        out
    }
}
