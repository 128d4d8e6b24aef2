//! Fragmented messages of one connection, put back together.
//!
//! A message longer than one envelope arrives as `FRAG`s (`Fragment`). The
//! parts received so far are kept, per message, with the connection (they are
//! stored with it, so a restart loses none). A message is whole once as many
//! parts as its count are in. At most [`Reassembly::MAX_PARTIAL`] messages are
//! partly received at a time: our sender never interleaves fragmented
//! messages, so a fifth means a misbehaving peer, and the oldest is dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smp_groups_wire::agent::{Fragment, FragmentBytes};

use crate::fault::FaultKind;

/// One part as kept: its index, the count it announced, its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    index: u16,
    count: u16,
    bytes: Vec<u8>,
}

/// The partly received fragmented messages of a connection, by message id.
///
/// Stored as the map of its parts (the same bytes as the connection record
/// has always held).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Reassembly {
    partial: BTreeMap<u64, Vec<Part>>,
}

/// What one fragment did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Added {
    /// A partly received message dropped to make room (a misbehaving peer).
    pub(crate) evicted: Option<u64>,
    /// The whole message, once this fragment completed it; or why it could
    /// not be put together (its parts are dropped).
    pub(crate) whole: Result<Option<Vec<u8>>, (FaultKind, String)>,
}

impl Reassembly {
    /// At most this many partly received messages.
    pub(crate) const MAX_PARTIAL: usize = 4;

    /// Adds fragment `f`. A part received twice is refused and changes
    /// nothing (`Err`); otherwise the part is kept, and the message comes
    /// back whole once its last part is in, if it is at most `max_len`
    /// bytes.
    pub(crate) fn add(
        &mut self,
        f: Fragment,
        max_len: usize,
    ) -> Result<Added, (FaultKind, String)> {
        if self
            .partial
            .get(&f.msg_id)
            .is_some_and(|parts| parts.iter().any(|p| p.index == f.index))
        {
            return Err((
                FaultKind::Malformed,
                format!("fragment {} of message {} again", f.index, f.msg_id),
            ));
        }
        let evicted =
            if !self.partial.contains_key(&f.msg_id) && self.partial.len() >= Self::MAX_PARTIAL {
                self.partial.pop_first().map(|(m, _)| m)
            } else {
                None
            };
        let count = usize::from(f.count);
        let parts = self.partial.entry(f.msg_id).or_default();
        parts.push(Part {
            index: f.index,
            count: f.count,
            bytes: f.bytes.into_vec(),
        });
        if parts.len() < count {
            return Ok(Added {
                evicted,
                whole: Ok(None),
            });
        }
        let parts = self.partial.remove(&f.msg_id).unwrap_or_default();
        Ok(Added {
            evicted,
            whole: join(f.msg_id, parts, max_len).map(Some),
        })
    }

    /// How many messages are partly received.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.partial.len()
    }
}

fn join(msg_id: u64, parts: Vec<Part>, max_len: usize) -> Result<Vec<u8>, (FaultKind, String)> {
    let bad = |e: &dyn std::fmt::Display| (FaultKind::Malformed, format!("fragments: {e}"));
    let mut frags = Vec::with_capacity(parts.len());
    for p in parts {
        frags.push(Fragment {
            msg_id,
            index: p.index,
            count: p.count,
            bytes: FragmentBytes::new(p.bytes).map_err(|e| bad(&e))?,
        });
    }
    let whole = Fragment::join(&frags).map_err(|e| bad(&e))?;
    if whole.len() > max_len {
        return Err((
            FaultKind::OverLimit,
            format!("a message of {} bytes", whole.len()),
        ));
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(msg_id: u64, index: u16, count: u16, bytes: &[u8]) -> Fragment {
        Fragment {
            msg_id,
            index,
            count,
            bytes: FragmentBytes::new(bytes.to_vec()).expect("fits"),
        }
    }

    fn whole(a: Added) -> Option<Vec<u8>> {
        assert_eq!(a.evicted, None);
        a.whole.expect("no error")
    }

    #[test]
    fn parts_in_any_order_give_the_message_once_all_are_in() {
        let mut r = Reassembly::default();
        assert_eq!(whole(r.add(frag(7, 2, 3, b"!"), 100).expect("kept")), None);
        assert_eq!(whole(r.add(frag(7, 0, 3, b"he"), 100).expect("kept")), None);
        assert_eq!(r.len(), 1);
        let m = whole(r.add(frag(7, 1, 3, b"y"), 100).expect("kept"));
        assert_eq!(m.as_deref(), Some(&b"hey!"[..]));
        assert_eq!(r.len(), 0, "a whole message is not kept");
    }

    #[test]
    fn a_part_received_twice_is_refused_and_changes_nothing() {
        let mut r = Reassembly::default();
        r.add(frag(1, 0, 2, b"a"), 100).expect("kept");
        let before = r.clone();
        let e = r.add(frag(1, 0, 2, b"b"), 100).expect_err("twice");
        assert_eq!(e.0, FaultKind::Malformed);
        assert_eq!(r, before);
    }

    #[test]
    fn a_fifth_partial_message_drops_the_oldest() {
        let mut r = Reassembly::default();
        for m in 1..=4 {
            assert_eq!(r.add(frag(m, 0, 2, b"x"), 100).expect("kept").evicted, None);
        }
        let a = r.add(frag(9, 0, 2, b"x"), 100).expect("kept");
        assert_eq!(a.evicted, Some(1));
        assert_eq!(r.len(), Reassembly::MAX_PARTIAL);
        // Another part of a message still held drops nothing.
        let a = r.add(frag(2, 1, 2, b"y"), 100).expect("kept");
        assert_eq!((a.evicted, a.whole), (None, Ok(Some(b"xy".to_vec()))));
    }

    #[test]
    fn a_message_longer_than_allowed_is_refused_and_forgotten() {
        let mut r = Reassembly::default();
        r.add(frag(3, 0, 2, b"abc"), 5).expect("kept");
        let a = r.add(frag(3, 1, 2, b"def"), 5).expect("kept");
        assert_eq!(a.whole.expect_err("too long").0, FaultKind::OverLimit);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn parts_that_disagree_on_their_count_are_refused() {
        let mut r = Reassembly::default();
        r.add(frag(4, 0, 3, b"a"), 100).expect("kept");
        r.add(frag(4, 1, 3, b"b"), 100).expect("kept");
        // The last part says 2: the parts do not make one message.
        let a = r.add(frag(4, 2, 2, b"c"), 100).expect("kept");
        assert_eq!(a.whole.expect_err("count").0, FaultKind::Malformed);
    }

    #[test]
    fn the_stored_form_is_the_map_of_parts() {
        let mut r = Reassembly::default();
        r.add(frag(5, 1, 2, b"zz"), 100).expect("kept");
        let mut old: BTreeMap<u64, Vec<(u16, u16, Vec<u8>)>> = BTreeMap::new();
        old.insert(5, vec![(1, 2, b"zz".to_vec())]);
        let bytes = postcard::to_allocvec(&r).expect("encodes");
        assert_eq!(bytes, postcard::to_allocvec(&old).expect("encodes"));
        assert_eq!(postcard::from_bytes::<Reassembly>(&bytes), Ok(r));
    }
}
