//! base64url (RFC 4648 §5): with padding, as the reference uses for key hashes,
//! ids and keys in SMP addresses, and without padding for the text forms of
//! member ids and digests in agent envelopes (`G_CHECK`).
//!
//! Decoders are strict: only the URL-safe alphabet, canonical padding (or none,
//! for the unpadded variant), and zero bits after the last full byte, so that
//! every byte string has exactly one text form.

use crate::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn sextet(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// The length of the unpadded base64url text of `n` bytes.
pub const fn encoded_len_unpadded(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Appends the unpadded base64url text of `bytes` to a byte buffer.
pub fn encode_unpadded_into(bytes: &[u8], out: &mut Vec<u8>) {
    let mut s = String::with_capacity(encoded_len_unpadded(bytes.len()));
    encode_into(bytes, false, &mut s);
    out.extend_from_slice(s.as_bytes());
}

fn encode_into(bytes: &[u8], pad: bool, out: &mut String) {
    let sym = |n: u32| char::from(ALPHABET[(n & 63) as usize]);
    for chunk in bytes.chunks(3) {
        let b0 = u32::from(chunk[0]);
        let b1 = chunk.get(1).map_or(0, |&b| u32::from(b));
        let b2 = chunk.get(2).map_or(0, |&b| u32::from(b));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        } else if pad {
            out.push('=');
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        } else if pad {
            out.push('=');
        }
    }
}

/// base64url with `=` padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    encode_into(bytes, true, &mut out);
    out
}

/// base64url without padding.
pub fn encode_unpadded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    encode_into(bytes, false, &mut out);
    out
}

/// Decodes padded base64url; the length must be a multiple of 4.
pub fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    let b = text.as_bytes();
    if b.len() % 4 != 0 {
        return Err(Error::BadBase64 { what });
    }
    let body_len = b.len() - b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    if body_len % 4 == 1 {
        return Err(Error::BadBase64 { what });
    }
    decode_body(&b[..body_len], what)
}

/// Decodes unpadded base64url (no `=` allowed).
pub fn decode_unpadded(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    let b = text.as_bytes();
    if b.len() % 4 == 1 {
        return Err(Error::BadBase64 { what });
    }
    decode_body(b, what)
}

/// Decodes base64url with or without padding (if padding is present it must be
/// canonical).
pub fn decode_any(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    if text.ends_with('=') || text.len() % 4 == 0 {
        decode(text, what)
    } else {
        decode_unpadded(text, what)
    }
}

fn decode_body(b: &[u8], what: &'static str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(b.len() / 4 * 3 + 2);
    for chunk in b.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c).ok_or(Error::BadBase64 { what })? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 if n.trailing_zeros() >= 8 => out.extend_from_slice(&bytes[1..3]),
            2 if n.trailing_zeros() >= 16 => out.push(bytes[1]),
            _ => return Err(Error::BadBase64 { what }),
        }
    }
    Ok(out)
}

/// Decodes exactly `N` bytes from their unpadded base64url text.
pub fn decode_array_unpadded<const N: usize>(
    text: &[u8],
    what: &'static str,
) -> Result<[u8; N], Error> {
    if text.len() != encoded_len_unpadded(N) {
        return Err(Error::BadBase64 { what });
    }
    let v = decode_body(text, what)?;
    v.try_into().map_err(|_| Error::BadBase64 { what })
}

/// Decodes exactly `N` bytes of padded base64url.
pub fn decode_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], Error> {
    let v = decode(text, what)?;
    v.try_into()
        .map_err(|v: Vec<u8>| Error::invalid(what, format!("expected {N} bytes, got {}", v.len())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(encode(&[0xd7, 0x6d, 0xf8, 0xfb]), "1234-w==");
        assert_eq!(decode("1234-w==", "k").unwrap(), [0xd7, 0x6d, 0xf8, 0xfb]);
        assert_eq!(encode_unpadded(&[0xd7, 0x6d, 0xf8, 0xfb]), "1234-w");
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8=");
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["Zg", "Zg=", "Z===", "Zh==", "Zm9v+A==", "Zm/v", "Zm9=v"] {
            assert_eq!(
                decode(bad, "x"),
                Err(Error::BadBase64 { what: "x" }),
                "{bad}"
            );
        }
        assert_eq!(
            decode_unpadded("Zg==", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
        assert_eq!(
            decode_unpadded("Z", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
        assert_eq!(decode_unpadded("Zg", "x").unwrap(), b"f");
        assert_eq!(decode_any("Zg", "x").unwrap(), b"f");
        assert_eq!(decode_any("Zg==", "x").unwrap(), b"f");
    }

    #[test]
    fn fixed_length_unpadded() {
        assert_eq!(encode_unpadded(b"foob"), "Zm9vYg");
        let mut out = Vec::new();
        encode_unpadded_into(&[0xfb, 0xff], &mut out);
        assert_eq!(out, b"-_8");
        assert_eq!(decode_array_unpadded::<2>(b"-_8", "x"), Ok([0xfb, 0xff]));
        assert_eq!(decode_array_unpadded::<4>(b"Zm9vYg", "x"), Ok(*b"foob"));
        for (bad, n) in [(&b"Zg=="[..], 1), (b"Zh", 1), (b"Zm9+", 3)] {
            let r = match n {
                1 => decode_array_unpadded::<1>(bad, "x").map(|_| ()),
                _ => decode_array_unpadded::<3>(bad, "x").map(|_| ()),
            };
            assert_eq!(r, Err(Error::BadBase64 { what: "x" }), "{bad:?}");
        }
        assert_eq!(
            decode_array_unpadded::<2>(b"Zg", "x"),
            Err(Error::BadBase64 { what: "x" })
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip(bytes: Vec<u8>) {
            proptest::prop_assert_eq!(decode(&encode(&bytes), "x").unwrap(), bytes.clone());
            proptest::prop_assert_eq!(decode_unpadded(&encode_unpadded(&bytes), "x").unwrap(), bytes);
        }

        #[test]
        fn fixed_round_trip(a: [u8; 16], b: [u8; 32]) {
            let (mut ta, mut tb) = (Vec::new(), Vec::new());
            encode_unpadded_into(&a, &mut ta);
            encode_unpadded_into(&b, &mut tb);
            proptest::prop_assert_eq!(decode_array_unpadded::<16>(&ta, "a"), Ok(a));
            proptest::prop_assert_eq!(decode_array_unpadded::<32>(&tb, "b"), Ok(b));
        }

        #[test]
        fn never_panics(text: String) {
            let _ = decode(&text, "x");
            let _ = decode_unpadded(&text, "x");
        }
    }
}
