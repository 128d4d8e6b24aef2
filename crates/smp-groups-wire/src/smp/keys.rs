//! Public keys as SMP carries them: DER `SubjectPublicKeyInfo` in a short string.
//!
//! Only the two key kinds SMP agents use are accepted: Ed25519 and X25519, each a
//! fixed 12-byte DER prefix followed by the 32 raw key bytes. Any other DER (other
//! algorithms, other lengths, non-minimal encodings) is rejected.

use crate::{Decode, Encode, Error, Reader};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (OID 1.3.101.112).
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an X25519 SubjectPublicKeyInfo (OID 1.3.101.110).
pub const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
/// Length of both DER encodings.
pub const SPKI_LEN: usize = 44;

fn from_der(der: &[u8], prefix: &[u8; 12], what: &'static str) -> Result<[u8; 32], Error> {
    if der.len() != SPKI_LEN {
        return Err(Error::invalid(
            what,
            format!("DER key of {} bytes, expected {SPKI_LEN}", der.len()),
        ));
    }
    if der[..12] != prefix[..] {
        return Err(Error::invalid(
            what,
            "not a DER SubjectPublicKeyInfo of this key kind",
        ));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&der[12..]);
    Ok(out)
}

fn to_der(prefix: &[u8; 12], raw: &[u8; 32]) -> [u8; SPKI_LEN] {
    let mut out = [0u8; SPKI_LEN];
    out[..12].copy_from_slice(prefix);
    out[12..].copy_from_slice(raw);
    out
}

macro_rules! spki_key {
    ($(#[$doc:meta])* $name:ident, $prefix:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The DER SubjectPublicKeyInfo (44 bytes).
            pub fn to_der(&self) -> [u8; SPKI_LEN] {
                to_der(&$prefix, &self.0)
            }

            /// Parses a DER SubjectPublicKeyInfo of this key kind.
            pub fn from_der(der: &[u8]) -> Result<Self, Error> {
                from_der(der, &$prefix, $what).map(Self)
            }

            /// The raw 32 key bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
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

        impl Encode for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                #[allow(clippy::cast_possible_truncation)] // SPKI_LEN is 44
                out.push(SPKI_LEN as u8);
                out.extend_from_slice(&self.to_der());
            }
        }

        impl<'a> Decode<'a> for $name {
            fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
                Self::from_der(r.short_bytes($what)?)
            }
        }
    };
}

spki_key!(
    /// An Ed25519 public key (raw bytes; DER on the wire).
    Ed25519PublicKey,
    ED25519_SPKI_PREFIX,
    "Ed25519 public key"
);
spki_key!(
    /// An X25519 public key (raw bytes; DER on the wire).
    X25519PublicKey,
    X25519_SPKI_PREFIX,
    "X25519 public key"
);

/// A key that authorizes commands (`APublicAuthKey`): an Ed25519 key whose owner
/// signs, or (from version 7) an X25519 key whose owner computes crypto_box
/// authenticators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthPublicKey {
    /// Commands are signed with Ed25519.
    Ed25519(Ed25519PublicKey),
    /// Commands carry crypto_box authenticators.
    X25519(X25519PublicKey),
}

impl AuthPublicKey {
    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> [u8; SPKI_LEN] {
        match self {
            Self::Ed25519(k) => k.to_der(),
            Self::X25519(k) => k.to_der(),
        }
    }

    /// Parses an Ed25519 or X25519 DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        if der.len() == SPKI_LEN && der[..12] == ED25519_SPKI_PREFIX {
            Ed25519PublicKey::from_der(der).map(Self::Ed25519)
        } else if der.len() == SPKI_LEN && der[..12] == X25519_SPKI_PREFIX {
            X25519PublicKey::from_der(der).map(Self::X25519)
        } else {
            Err(Error::invalid(
                "auth public key",
                "not a DER Ed25519 or X25519 SubjectPublicKeyInfo",
            ))
        }
    }
}

impl Encode for AuthPublicKey {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Ed25519(k) => k.encode(out),
            Self::X25519(k) => k.encode(out),
        }
    }
}

impl<'a> Decode<'a> for AuthPublicKey {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::from_der(r.short_bytes("auth public key")?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decode_all;

    #[test]
    fn der_round_trip_and_rejections() {
        let k = X25519PublicKey([7; 32]);
        let der = k.to_der();
        assert_eq!(hex(&der[..12]), "302a300506032b656e032100");
        assert_eq!(X25519PublicKey::from_der(&der), Ok(k));
        assert!(matches!(
            Ed25519PublicKey::from_der(&der),
            Err(Error::InvalidValue { .. })
        ));
        assert_eq!(AuthPublicKey::from_der(&der), Ok(AuthPublicKey::X25519(k)));
        let e = Ed25519PublicKey([9; 32]);
        assert_eq!(hex(&e.to_der()[..12]), "302a300506032b6570032100");
        assert_eq!(
            decode_all::<AuthPublicKey>(&AuthPublicKey::Ed25519(e).to_bytes()),
            Ok(AuthPublicKey::Ed25519(e))
        );
        // X448 prefix (OID 1.3.101.111) is refused.
        let mut x448 = der;
        x448[8] = 0x6f;
        assert!(matches!(
            AuthPublicKey::from_der(&x448),
            Err(Error::InvalidValue { .. })
        ));
        assert!(matches!(
            AuthPublicKey::from_der(&der[..43]),
            Err(Error::InvalidValue { .. })
        ));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().fold(String::new(), |s, x| s + &format!("{x:02x}"))
    }
}
