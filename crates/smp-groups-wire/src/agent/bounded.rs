//! Byte strings with a per-field maximum: [`Bounded`] (Word16 length prefix) and
//! [`Tail`] (the rest of the input, no prefix).

use std::fmt;

use crate::{Decode, Encode, Error, Reader};

/// A byte string of at most `MAX` bytes (`MAX` <= 65535), encoded as an SMP `Large`:
/// a Word16 big-endian length, then the bytes. Decoding rejects a length above `MAX`
/// with [`Error::TooLong`] before reading the bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bounded<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> Bounded<MAX> {
    /// The largest length this field can carry.
    pub const MAX: usize = {
        assert!(MAX <= 65535, "a Word16 length cannot exceed 65535");
        MAX
    };

    /// Wraps `bytes`, failing with [`Error::TooLong`] if they exceed `MAX`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        if bytes.len() > Self::MAX {
            return Err(Error::TooLong {
                what: "bounded field",
                len: bytes.len(),
                max: Self::MAX,
            });
        }
        Ok(Self(bytes))
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

    /// Reads one field, naming it `what` in errors.
    pub fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Self, Error> {
        let len = usize::from(r.u16(what)?);
        if len > Self::MAX {
            return Err(Error::TooLong {
                what,
                len,
                max: Self::MAX,
            });
        }
        Ok(Self(r.take(len, what)?.to_vec()))
    }
}

impl<const MAX: usize> fmt::Debug for Bounded<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bounded<{MAX}>({} bytes)", self.0.len())
    }
}

impl<const MAX: usize> AsRef<[u8]> for Bounded<MAX> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<Vec<u8>> for Bounded<MAX> {
    type Error = Error;
    fn try_from(v: Vec<u8>) -> Result<Self, Error> {
        Self::new(v)
    }
}

impl<const MAX: usize> TryFrom<&[u8]> for Bounded<MAX> {
    type Error = Error;
    fn try_from(v: &[u8]) -> Result<Self, Error> {
        Self::new(v.to_vec())
    }
}

impl<const MAX: usize> Encode for Bounded<MAX> {
    fn encode(&self, out: &mut Vec<u8>) {
        // The constructor keeps the length at or below MAX <= 65535.
        let len = u16::try_from(self.0.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.0);
    }
}

impl<'a, const MAX: usize> Decode<'a> for Bounded<MAX> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::read(r, "bounded field")
    }
}

/// A byte string that ends its input (an SMP `Tail`), of at most `MAX` bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tail<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> Tail<MAX> {
    /// The largest length this field can carry.
    pub const MAX: usize = MAX;

    /// Wraps `bytes`, failing with [`Error::TooLong`] if they exceed `MAX`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        if bytes.len() > MAX {
            return Err(Error::TooLong {
                what: "tail field",
                len: bytes.len(),
                max: MAX,
            });
        }
        Ok(Self(bytes))
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

    /// Reads the rest of the input, naming it `what` in errors.
    pub fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Self, Error> {
        let len = r.left();
        if len > MAX {
            return Err(Error::TooLong {
                what,
                len,
                max: MAX,
            });
        }
        Ok(Self(r.rest().to_vec()))
    }
}

impl<const MAX: usize> fmt::Debug for Tail<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tail<{MAX}>({} bytes)", self.0.len())
    }
}

impl<const MAX: usize> AsRef<[u8]> for Tail<MAX> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<Vec<u8>> for Tail<MAX> {
    type Error = Error;
    fn try_from(v: Vec<u8>) -> Result<Self, Error> {
        Self::new(v)
    }
}

impl<const MAX: usize> TryFrom<&[u8]> for Tail<MAX> {
    type Error = Error;
    fn try_from(v: &[u8]) -> Result<Self, Error> {
        Self::new(v.to_vec())
    }
}

impl<const MAX: usize> Encode for Tail<MAX> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl<'a, const MAX: usize> Decode<'a> for Tail<MAX> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::read(r, "tail field")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_all;

    #[test]
    fn bounded_rejects_declared_length_above_max_before_reading() -> Result<(), Error> {
        // Declares 5 bytes against a maximum of 4; only 1 byte follows, and the
        // length check must fire first.
        let mut r = Reader::new(&[0, 5, 1]);
        assert_eq!(
            Bounded::<4>::read(&mut r, "gInfo"),
            Err(Error::TooLong {
                what: "gInfo",
                len: 5,
                max: 4
            })
        );
        assert_eq!(
            Bounded::<4>::new(vec![0; 5]).map(|b| b.len()),
            Err(Error::TooLong {
                what: "bounded field",
                len: 5,
                max: 4
            })
        );
        let b = Bounded::<4>::new(vec![9; 4])?;
        assert_eq!(b.to_bytes(), vec![0, 4, 9, 9, 9, 9]);
        assert_eq!(decode_all::<Bounded<4>>(&b.to_bytes()), Ok(b));
        Ok(())
    }

    #[test]
    fn tail_is_bounded() {
        assert_eq!(
            Tail::<2>::read(&mut Reader::new(b"abc"), "body"),
            Err(Error::TooLong {
                what: "body",
                len: 3,
                max: 2
            })
        );
        assert_eq!(
            decode_all::<Tail<3>>(b"abc").map(Tail::into_vec),
            Ok(b"abc".to_vec())
        );
    }
}
