//! Fragments: one agent message larger than a block, sent as several envelopes.
//!
//! ```text
//! fragment = msgId index count bytes
//! msgId    = 8OCTET     ; the id that ties the fragments of one message together
//! index    = 2OCTET     ; 0-based, < count
//! count    = 2OCTET     ; 1 to the receiver's maximum
//! bytes    = Large      ; Word16 length, at most MAX_FRAGMENT_LEN
//! ```

use super::Limits;
use super::bounded::Bounded;
use super::ids::read_u64;
use crate::{DecodeWith, Encode, Error, Reader};

/// The default maximum number of fragments of one message.
pub const DEFAULT_MAX_FRAGMENTS: u16 = 64;

/// The most bytes one fragment carries (one SMP block).
pub const MAX_FRAGMENT_LEN: usize = 16384;

/// The bytes of one fragment.
pub type FragmentBytes = Bounded<MAX_FRAGMENT_LEN>;

/// One piece of a message that was too large for one block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Ties the fragments of one message together (chosen by the sender, unique per
    /// connection for as long as the message is in flight).
    pub msg_id: u64,
    /// The 0-based position of this fragment.
    pub index: u16,
    /// How many fragments the message has.
    pub count: u16,
    /// This fragment's share of the message.
    pub bytes: FragmentBytes,
}

/// A fragment's fields (after `FRAG `), rejecting a count above the
/// receiver's `max_fragments` with [`Error::TooLong`], a zero count, and an
/// index not below the count.
impl<'a> DecodeWith<'a, Limits> for Fragment {
    fn decode_with(r: &mut Reader<'a>, limits: Limits) -> Result<Self, Error> {
        let msg_id = read_u64(r, "fragment msgId")?;
        let index = r.u16("fragment index")?;
        let count = r.u16("fragment count")?;
        check_shape(index, count, limits.max_fragments)?;
        let bytes = FragmentBytes::read(r, "fragment bytes")?;
        Ok(Self {
            msg_id,
            index,
            count,
            bytes,
        })
    }
}

impl Fragment {
    /// What a `FRAG` message adds to its bytes: the tag and its space (5),
    /// `msgId` (8), index (2), count (2) and the bytes' length (2).
    pub const OVERHEAD: usize = 5 + 8 + 2 + 2 + 2;

    /// Splits `message` into fragments of at most `chunk` bytes (1 to
    /// [`MAX_FRAGMENT_LEN`]), failing if that takes more than `max_count` fragments.
    pub fn split(
        msg_id: u64,
        message: &[u8],
        chunk: usize,
        max_count: u16,
    ) -> Result<Vec<Self>, Error> {
        if chunk == 0 || chunk > MAX_FRAGMENT_LEN {
            return Err(Error::invalid(
                "fragment size",
                format!("must be 1 to {MAX_FRAGMENT_LEN}"),
            ));
        }
        let n = message.len().div_ceil(chunk).max(1);
        let count = u16::try_from(n)
            .ok()
            .filter(|&c| c <= max_count)
            .ok_or(Error::TooLong {
                what: "fragment count",
                len: n,
                max: usize::from(max_count),
            })?;
        let mut out = Vec::with_capacity(n);
        let pieces: Vec<&[u8]> = if message.is_empty() {
            vec![&[]]
        } else {
            message.chunks(chunk).collect()
        };
        for (index, piece) in (0u16..).zip(pieces) {
            out.push(Self {
                msg_id,
                index,
                count,
                bytes: FragmentBytes::new(piece)?,
            });
        }
        Ok(out)
    }

    /// Joins a complete set of fragments of one message, given in any order. Fails
    /// if they disagree on `msg_id` or `count`, or an index is missing or repeated.
    pub fn join(fragments: &[Self]) -> Result<Vec<u8>, Error> {
        let first = fragments
            .first()
            .ok_or_else(|| Error::invalid("fragments", "no fragments"))?;
        let count = usize::from(first.count);
        if fragments.len() != count {
            return Err(Error::invalid(
                "fragments",
                format!("{} of {count} fragments", fragments.len()),
            ));
        }
        let mut slots: Vec<Option<&Self>> = vec![None; count];
        for f in fragments {
            if f.msg_id != first.msg_id || f.count != first.count {
                return Err(Error::invalid(
                    "fragments",
                    "fragments of different messages",
                ));
            }
            match slots.get_mut(usize::from(f.index)) {
                Some(slot @ None) => *slot = Some(f),
                Some(Some(_)) => return Err(Error::invalid("fragments", "repeated index")),
                None => return Err(Error::invalid("fragment index", "not below the count")),
            }
        }
        let mut out = Vec::new();
        for f in slots.into_iter().flatten() {
            out.extend_from_slice(f.bytes.as_slice());
        }
        Ok(out)
    }
}

fn check_shape(index: u16, count: u16, max_count: u16) -> Result<(), Error> {
    if count == 0 {
        return Err(Error::invalid("fragment count", "must be at least 1"));
    }
    if count > max_count {
        return Err(Error::TooLong {
            what: "fragment count",
            len: usize::from(count),
            max: usize::from(max_count),
        });
    }
    if index >= count {
        return Err(Error::invalid("fragment index", "not below the count"));
    }
    Ok(())
}

impl Encode for Fragment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.msg_id.to_be_bytes());
        self.index.encode(out);
        self.count.encode(out);
        self.bytes.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join() -> Result<(), Error> {
        let msg: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut parts = Fragment::split(9, &msg, 300, 4)?;
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[3].bytes.len(), 100);
        parts.reverse();
        assert_eq!(Fragment::join(&parts), Ok(msg.clone()));
        assert!(matches!(
            Fragment::split(9, &msg, 300, 3),
            Err(Error::TooLong {
                what: "fragment count",
                len: 4,
                max: 3
            })
        ));
        parts.pop();
        assert!(Fragment::join(&parts).is_err());
        Ok(())
    }

    #[test]
    fn read_checks_count_and_index() -> Result<(), Error> {
        let f = Fragment {
            msg_id: 1,
            index: 2,
            count: 3,
            bytes: FragmentBytes::new(b"x".to_vec())?,
        };
        let bytes = f.to_bytes();
        assert_eq!(
            Fragment::decode_with(&mut Reader::new(&bytes), Limits { max_fragments: 3 }),
            Ok(f)
        );
        assert_eq!(
            Fragment::decode_with(&mut Reader::new(&bytes), Limits { max_fragments: 2 }),
            Err(Error::TooLong {
                what: "fragment count",
                len: 3,
                max: 2
            })
        );
        let mut bad = bytes.clone();
        bad[9] = 3; // index 3 of 3
        assert!(matches!(
            Fragment::decode_with(&mut Reader::new(&bad), Limits { max_fragments: 3 }),
            Err(Error::InvalidValue {
                what: "fragment index",
                ..
            })
        ));
        Ok(())
    }
}
