//! The codec core: a bounds-checked [`Reader`], the [`Encode`] / [`Decode`]
//! traits, and the SMP primitive encodings every surface builds on.
//!
//! Every binary value of the crate decodes one way: from a [`Reader`], with
//! [`Decode`] when its grammar stands alone, or with [`DecodeWith`] when it
//! depends on a context: the negotiated SMP version
//! ([`crate::smp::Version`]: commands, responses, transmissions, error
//! codes) or the receiver's limits ([`crate::agent::Limits`]: agent messages
//! and fragments). A whole input is decoded with [`decode_all`] or
//! [`decode_all_with`], which refuse bytes left over. (Text grammars, the
//! client protocol's lines, server addresses and DER, are parsed by their
//! own `parse` functions.)
//!
//! Primitive encodings (as the reference `Encoding` module defines them):
//!
//! | type | bytes |
//! |---|---|
//! | `u8`, `u16`, `u32`, `i64` | big-endian |
//! | `bool` | `T` or `F` |
//! | `Option<T>` (Maybe) | `0`, or `1` then `T` |
//! | [`ShortBytes`] | 1-byte length, then the bytes |
//! | [`LargeBytes`] | Word16 big-endian length, then the bytes |
//! | tail | the rest of the input, no length |
//! | lists | 1-byte count, then the items |

use crate::Error;

/// A cursor over an input byte slice. Every read is bounds-checked and names the
/// field it reads, so errors say where the input went wrong.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, offset: 0 }
    }

    /// How many bytes are left unread.
    pub fn left(&self) -> usize {
        self.buf.len() - self.offset
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// How many bytes have been read so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The unread bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.offset..]
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.offset).copied()
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.left() {
            return Err(Error::Truncated {
                what,
                needed: n,
                available: self.left(),
            });
        }
        let out = &self.buf[self.offset..self.offset + n];
        self.offset += n;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Takes everything that is left (an SMP `Tail`).
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.offset..];
        self.offset = self.buf.len();
        out
    }

    /// A reader over the next `n` bytes, which are consumed from this one.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, Error> {
        self.take(n, what).map(Reader::new)
    }

    /// Fails with [`Error::TrailingBytes`] unless the input is used up.
    pub fn expect_end(&self, what: &'static str) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                what,
                count: self.left(),
            })
        }
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    /// A big-endian Word16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// A big-endian Word32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A big-endian Int64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, Error> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Consumes `expected` exactly, or fails naming `what`.
    pub fn literal(&mut self, expected: &[u8], what: &'static str) -> Result<(), Error> {
        let got = self.take(expected.len(), what)?;
        if got == expected {
            Ok(())
        } else {
            Err(Error::unknown_tag(what, got))
        }
    }

    /// A Bool: `T` or `F`.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, Error> {
        match self.u8(what)? {
            b'T' => Ok(true),
            b'F' => Ok(false),
            other => Err(Error::unknown_tag(what, &[other])),
        }
    }

    /// A 1-byte-length string.
    pub fn short_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    /// A Word16-length string.
    pub fn large_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    /// A Maybe: `0` for absent, `1` followed by the value.
    pub fn maybe<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.u8(what)? {
            b'0' => Ok(None),
            b'1' => f(self).map(Some),
            other => Err(Error::unknown_tag(what, &[other])),
        }
    }

    /// A list with a 1-byte count, at most `max` items.
    pub fn list<T>(
        &mut self,
        what: &'static str,
        max: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let n = usize::from(self.u8(what)?);
        if n > max {
            return Err(Error::TooLong { what, len: n, max });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// Bytes up to (not including) the first `delim`, which is consumed. Fails if
    /// there is no `delim` within the next `max` bytes.
    pub fn until(&mut self, delim: u8, max: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let rest = self.peek_rest();
        let window = &rest[..rest.len().min(max.saturating_add(1))];
        match window.iter().position(|&b| b == delim) {
            Some(i) => {
                let out = &rest[..i];
                self.offset += i + 1;
                Ok(out)
            }
            None if rest.len() > max => Err(Error::TooLong {
                what,
                len: rest.len(),
                max,
            }),
            None => Err(Error::Truncated {
                what,
                needed: rest.len() + 1,
                available: rest.len(),
            }),
        }
    }
}

/// A value with a wire encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding of `self` as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value that can be decoded from a [`Reader`].
pub trait Decode<'a>: Sized {
    /// Reads one value, leaving the reader just after it.
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error>;
}

/// A value decoded from a [`Reader`] in a context `C` its grammar depends on
/// (a protocol version, the receiver's limits). Every [`Decode`] value also
/// decodes in the empty context `()`.
pub trait DecodeWith<'a, C>: Sized {
    /// Reads one value, leaving the reader just after it.
    fn decode_with(r: &mut Reader<'a>, cx: C) -> Result<Self, Error>;
}

impl<'a, T: Decode<'a>> DecodeWith<'a, ()> for T {
    fn decode_with(r: &mut Reader<'a>, (): ()) -> Result<Self, Error> {
        T::decode(r)
    }
}

/// Decodes one `T` that must use up all of `bytes`.
pub fn decode_all<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    decode_all_with(bytes, ())
}

/// Decodes one `T` in the context `cx` that must use up all of `bytes`.
pub fn decode_all_with<'a, T: DecodeWith<'a, C>, C>(bytes: &'a [u8], cx: C) -> Result<T, Error> {
    let mut r = Reader::new(bytes);
    let v = T::decode_with(&mut r, cx)?;
    r.expect_end(
        std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("value"),
    )?;
    Ok(v)
}

macro_rules! int_codec {
    ($t:ty, $read:ident) => {
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl<'a> Decode<'a> for $t {
            fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
                r.$read(stringify!($t))
            }
        }
    };
}
int_codec!(u8, u8);
int_codec!(u16, u16);
int_codec!(u32, u32);
int_codec!(i64, i64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(if *self { b'T' } else { b'F' });
    }
}

impl<'a> Decode<'a> for bool {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        r.bool("Bool")
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(b'0'),
            Some(v) => {
                out.push(b'1');
                v.encode(out);
            }
        }
    }
}

impl<'a, T: Decode<'a>> Decode<'a> for Option<T> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        r.maybe("Maybe", T::decode)
    }
}

macro_rules! bounded_bytes {
    ($(#[$doc:meta])* $name:ident, $max:expr, $read:ident, $what:literal, $put_len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// The largest length this string can carry.
            pub const MAX: usize = $max;

            /// Wraps `bytes`, failing if they are longer than [`Self::MAX`].
            pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
                let bytes = bytes.into();
                if bytes.len() > Self::MAX {
                    return Err(Error::TooLong { what: $what, len: bytes.len(), max: Self::MAX });
                }
                Ok(Self(bytes))
            }

            /// Wraps an array that is known to fit.
            pub fn from_array<const N: usize>(bytes: [u8; N]) -> Self {
                const { assert!(N <= $max) };
                Self(bytes.to_vec())
            }

            /// The bytes.
            pub fn as_slice(&self) -> &[u8] {
                &self.0
            }

            /// The bytes, by value.
            pub fn into_vec(self) -> Vec<u8> {
                self.0
            }

            /// The length in bytes.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                write!(f, ")")
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl TryFrom<Vec<u8>> for $name {
            type Error = Error;
            fn try_from(v: Vec<u8>) -> Result<Self, Error> {
                Self::new(v)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = Error;
            fn try_from(v: &[u8]) -> Result<Self, Error> {
                Self::new(v.to_vec())
            }
        }

        impl Encode for $name {
            // The length fits: it is bounded by MAX at construction.
            #[allow(clippy::cast_possible_truncation)]
            fn encode(&self, out: &mut Vec<u8>) {
                let len = self.0.len();
                $put_len(out, len);
                out.extend_from_slice(&self.0);
            }
        }

        impl<'a> Decode<'a> for $name {
            fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
                Ok(Self(r.$read($what)?.to_vec()))
            }
        }
    };
}

bounded_bytes!(
    /// A byte string of at most 255 bytes, encoded with a 1-byte length (SMP `ByteString`).
    ShortBytes,
    255,
    short_bytes,
    "short string",
    |out: &mut Vec<u8>, len: usize| out.push(len as u8)
);

bounded_bytes!(
    /// A byte string of at most 65535 bytes, encoded with a Word16 length (SMP `Large`).
    LargeBytes,
    65535,
    large_bytes,
    "large string",
    |out: &mut Vec<u8>, len: usize| out.extend_from_slice(&(len as u16).to_be_bytes())
);

/// Appends a 1-byte-length string; fails if `bytes` is longer than 255.
pub fn put_short(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), Error> {
    let len = u8::try_from(bytes.len()).map_err(|_| Error::TooLong {
        what,
        len: bytes.len(),
        max: 255,
    })?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends a Word16-length string; fails if `bytes` is longer than 65535.
pub fn put_large(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), Error> {
    let len = u16::try_from(bytes.len()).map_err(|_| Error::TooLong {
        what,
        len: bytes.len(),
        max: 65535,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_known_answer() {
        assert_eq!(
            1_234_567_890_123_456_789_i64.to_bytes(),
            [0x11, 0x22, 0x10, 0xf4, 0x7d, 0xe9, 0x81, 0x15]
        );
    }

    #[test]
    fn truncated_names_field_and_sizes() {
        let mut r = Reader::new(&[3, b'a']);
        assert_eq!(
            r.short_bytes("corrId"),
            Err(Error::Truncated {
                what: "corrId",
                needed: 3,
                available: 1
            })
        );
    }

    #[test]
    fn maybe_and_bool_reject_unknown_tags() {
        assert!(matches!(
            decode_all::<Option<bool>>(b"2"),
            Err(Error::UnknownTag { .. })
        ));
        assert!(matches!(
            decode_all::<bool>(b"t"),
            Err(Error::UnknownTag { .. })
        ));
        assert_eq!(decode_all::<Option<bool>>(b"1T"), Ok(Some(true)));
        assert_eq!(decode_all::<Option<bool>>(b"0"), Ok(None));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        assert!(matches!(
            decode_all::<u16>(&[0, 1, 2]),
            Err(Error::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn bounded_strings_enforce_max() {
        assert!(ShortBytes::new(vec![0; 255]).is_ok());
        assert_eq!(
            ShortBytes::new(vec![0; 256]),
            Err(Error::TooLong {
                what: "short string",
                len: 256,
                max: 255
            })
        );
        let large = LargeBytes::new(vec![7; 300]).unwrap();
        let bytes = large.to_bytes();
        assert_eq!(&bytes[..2], &[1, 44]);
        assert_eq!(decode_all::<LargeBytes>(&bytes), Ok(large));
    }

    #[test]
    fn list_count_is_bounded() {
        let mut r = Reader::new(&[5, 1, 2, 3, 4, 5]);
        assert_eq!(
            r.list("hosts", 4, |r| r.u8("host")),
            Err(Error::TooLong {
                what: "hosts",
                len: 5,
                max: 4
            })
        );
    }

    #[test]
    fn until_is_bounded() {
        let mut r = Reader::new(b"abc:def");
        assert_eq!(r.until(b':', 3, "x"), Ok(&b"abc"[..]));
        let mut r = Reader::new(b"abcdef:");
        assert!(matches!(r.until(b':', 3, "x"), Err(Error::TooLong { .. })));
        let mut r = Reader::new(b"ab");
        assert!(matches!(
            r.until(b':', 3, "x"),
            Err(Error::Truncated { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn reader_never_panics(bytes: Vec<u8>, ops: Vec<u8>) {
            let mut r = Reader::new(&bytes);
            for op in ops {
                let _ = match op % 8 {
                    0 => r.u8("a").map(|_| ()),
                    1 => r.u16("a").map(|_| ()),
                    2 => r.i64("a").map(|_| ()),
                    3 => r.short_bytes("a").map(|_| ()),
                    4 => r.large_bytes("a").map(|_| ()),
                    5 => r.bool("a").map(|_| ()),
                    6 => r.until(b' ', 16, "a").map(|_| ()),
                    _ => r.maybe("a", |r| r.u32("b")).map(|_| ()),
                };
            }
        }

        #[test]
        fn short_and_large_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(s) = ShortBytes::new(bytes.clone()) {
                proptest::prop_assert_eq!(decode_all::<ShortBytes>(&s.to_bytes()), Ok(s));
            }
            let l = LargeBytes::new(bytes).unwrap();
            proptest::prop_assert_eq!(decode_all::<LargeBytes>(&l.to_bytes()), Ok(l));
        }
    }
}
