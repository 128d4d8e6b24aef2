//! Base64url without padding (RFC 4648 §5), as the text forms of member ids and
//! digests use it. Decoding is strict: no padding, no whitespace, and the unused
//! low bits of the last character must be zero, so every value has exactly one
//! text form.

use crate::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The length of the unpadded base64url text of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Appends the unpadded base64url text of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(ALPHABET[idx as usize]);
        }
    }
}

/// The unpadded base64url text of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(encoded_len(bytes.len()));
    encode_into(bytes, &mut out);
    // Only ASCII from the alphabet was pushed.
    String::from_utf8_lossy(&out).into_owned()
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes exactly `N` bytes from their unpadded base64url text.
pub(crate) fn decode_array<const N: usize>(
    text: &[u8],
    what: &'static str,
) -> Result<[u8; N], Error> {
    if text.len() != encoded_len(N) {
        return Err(Error::BadBase64 { what });
    }
    let mut out = [0u8; N];
    let mut written = 0;
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = value(c).ok_or(Error::BadBase64 { what })?;
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        let produce = chunk.len() - 1;
        // Bits below the produced bytes must be zero (canonical form).
        let unused_mask = match produce {
            1 => 0x0000_ffff,
            2 => 0x0000_00ff,
            _ => 0,
        };
        if n & unused_mask != 0 || produce == 0 {
            return Err(Error::BadBase64 { what });
        }
        for &b in bytes.get(1..=produce).unwrap_or(&[]) {
            let slot = out.get_mut(written).ok_or(Error::BadBase64 { what })?;
            *slot = b;
            written += 1;
        }
    }
    if written == N {
        Ok(out)
    } else {
        Err(Error::BadBase64 { what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_without_padding() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foob"), "Zm9vYg");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_array::<2>(b"-_8", "x"), Ok([0xfb, 0xff]));
        assert_eq!(decode_array::<4>(b"Zm9vYg", "x"), Ok(*b"foob"));
    }

    #[test]
    fn rejects_padding_wrong_length_and_non_canonical_bits() {
        assert_eq!(
            decode_array::<1>(b"Zg==", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
        assert_eq!(
            decode_array::<1>(b"Zh", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
        assert_eq!(
            decode_array::<2>(b"Zg", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
        assert_eq!(
            decode_array::<3>(b"Zm9+", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip_16_and_32(a: [u8; 16], b: [u8; 32]) {
            proptest::prop_assert_eq!(decode_array::<16>(encode(&a).as_bytes(), "a"), Ok(a));
            proptest::prop_assert_eq!(decode_array::<32>(encode(&b).as_bytes(), "b"), Ok(b));
        }
    }
}
