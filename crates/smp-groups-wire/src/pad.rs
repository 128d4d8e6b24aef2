//! The reference padding: `Word16 BE length || message || '#' fill`.
//!
//! Used for handshake blocks, encrypted bodies and every fixed-size frame, so
//! that lengths leak nothing to relays.

use crate::Error;

/// The largest message [`pad`] accepts (the length prefix is a Word16 and the
/// reference keeps three bytes of room).
pub const MAX_PADDED_MESSAGE: usize = 65533;

/// Pads `msg` to exactly `len` bytes: `len(msg)` as Word16 BE, `msg`, then `#`.
///
/// Fails when `msg` does not fit (`len(msg) > len - 2`) or is longer than
/// [`MAX_PADDED_MESSAGE`].
pub fn pad(msg: &[u8], len: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(len);
    pad_into(msg, len, &mut out)?;
    Ok(out)
}

/// Like [`pad`], appending to `out`.
pub fn pad_into(msg: &[u8], len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    pad_parts_into(&[msg], len, out)
}

/// [`pad_into`] of the concatenation of `parts` (without building it).
pub fn pad_parts_into(parts: &[&[u8]], len: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    let msg_len = parts
        .iter()
        .try_fold(0usize, |n, p| n.checked_add(p.len()))
        .unwrap_or(usize::MAX);
    let max = len.saturating_sub(2).min(MAX_PADDED_MESSAGE);
    if msg_len > max || len < 2 {
        return Err(Error::TooLong {
            what: "padded message",
            len: msg_len,
            max,
        });
    }
    let n = u16::try_from(msg_len).map_err(|_| Error::TooLong {
        what: "padded message",
        len: msg_len,
        max,
    })?;
    out.reserve(len);
    out.extend_from_slice(&n.to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out.resize(out.len() + (len - 2 - msg_len), b'#');
    Ok(())
}

/// Removes the padding added by [`pad`], returning the message. The fill bytes are
/// not checked (the reference ignores them), only that the length fits.
pub fn unpad(padded: &[u8]) -> Result<&[u8], Error> {
    let mut r = crate::Reader::new(padded);
    let n = usize::from(r.u16("padding length")?);
    r.take(n, "padded message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_known_answers() {
        assert_eq!(pad(b"abc", 5).unwrap(), [0, 3, b'a', b'b', b'c']);
        assert!(pad(b"abc", 4).is_err());
        assert_eq!(unpad(&[0, 0]).unwrap(), b"");
        assert!(unpad(&[0, 3, b'a', b'b']).is_err());
        assert_eq!(pad(b"ab", 6).unwrap(), b"\x00\x02ab##");
    }

    #[test]
    fn limits() {
        assert!(pad(b"", 1).is_err());
        assert_eq!(pad(b"", 2).unwrap(), [0, 0]);
        assert!(pad(&vec![0; MAX_PADDED_MESSAGE + 1], 70000).is_err());
        assert!(pad(&vec![0; MAX_PADDED_MESSAGE], 65535).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parts_pad_as_their_concatenation(
            a in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            len in 0usize..250,
        ) {
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            let mut out = vec![7];
            let parts = pad_parts_into(&[&a, &b], len, &mut out).map(|()| out);
            proptest::prop_assert_eq!(
                parts.ok(),
                pad(&whole, len).ok().map(|p| [vec![7], p].concat())
            );
        }

        #[test]
        fn round_trip(msg in proptest::collection::vec(proptest::num::u8::ANY, 0..300), extra in 0usize..100) {
            let padded = pad(&msg, msg.len() + 2 + extra).unwrap();
            proptest::prop_assert_eq!(padded.len(), msg.len() + 2 + extra);
            proptest::prop_assert_eq!(unpad(&padded).unwrap(), &msg[..]);
        }
    }
}
