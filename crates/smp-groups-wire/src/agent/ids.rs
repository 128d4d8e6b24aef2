//! Fixed-size identifiers and digests that travel in agent envelopes:
//! [`MemberId`], [`GroupId`] and [`Digest`].
//!
//! On the wire (binary envelopes) they are their raw bytes; in text forms
//! (`G_CHECK`, logs) they are unpadded base64url.

use std::fmt;
use std::str::FromStr;

use crate::base64url;
use crate::{Decode, Encode, Error, Reader};

macro_rules! fixed_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The unpadded base64url text of the bytes.
            pub fn to_base64url(&self) -> String {
                base64url::encode_unpadded(&self.0)
            }

            /// Parses the unpadded base64url text of exactly [`Self::LEN`] bytes.
            pub fn from_base64url(text: &[u8]) -> Result<Self, Error> {
                base64url::decode_array_unpadded(text, $what).map(Self)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_base64url())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_base64url())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::from_base64url(s.as_bytes())
            }
        }

        impl Encode for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }

        impl<'a> Decode<'a> for $name {
            fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
                r.array($what).map(Self)
            }
        }
    };
}

fixed_id!(
    /// A group-scoped member id: 16 random bytes chosen by the member who introduces
    /// the new member (`midB` in the group RFC). The same id names the member to every
    /// other member of the group.
    MemberId,
    16,
    "member id"
);

fixed_id!(
    /// A group id: 16 random bytes chosen by the member who created the group, the
    /// same for all members. Client-side group aliases are local and never travel.
    GroupId,
    16,
    "group id"
);

fixed_id!(
    /// A 32-byte digest: the SHA-256 of a message, or a hash-chain value over the
    /// messages received from one sender.
    Digest,
    32,
    "digest"
);

impl Digest {
    /// The all-zero digest, used as the previous-message hash of the first message
    /// on a connection.
    pub const ZERO: Self = Self([0; 32]);
}

/// Reads a big-endian unsigned 64-bit integer.
pub(crate) fn read_u64(r: &mut Reader<'_>, what: &'static str) -> Result<u64, Error> {
    r.array(what).map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_all;

    #[test]
    fn text_and_binary_forms() {
        let id = MemberId([0xff; 16]);
        assert_eq!(id.to_string(), "_____________________w");
        assert_eq!("_____________________w".parse::<MemberId>(), Ok(id));
        assert_eq!(decode_all::<MemberId>(&[0xff; 16]), Ok(id));
        assert_eq!(id.to_bytes(), vec![0xff; 16]);
        assert!(matches!(
            decode_all::<Digest>(&[0; 31]),
            Err(Error::Truncated {
                what: "digest",
                needed: 32,
                available: 31
            })
        ));
        assert_eq!(Digest::ZERO.to_string().len(), 43);
    }
}
