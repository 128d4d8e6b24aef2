//! X25519 key pairs (RFC 7748) that can be stored and restored.
//!
//! Secrets are `x25519_dalek::StaticSecret`s, zeroized on drop.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::{CryptoError, CryptoRng, RngCore};

/// DER SPKI prefix of an X25519 public key (followed by the 32 raw bytes).
pub const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// An X25519 private key, zeroized on drop.
#[derive(Clone)]
pub struct SecretKey(x25519_dalek::StaticSecret);

impl SecretKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        Self::from_bytes(*b)
    }

    /// The key with raw scalar bytes `b` (clamped when used, as RFC 7748 says).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(b))
    }

    /// The raw 32 bytes (for storage).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The raw X25519 shared secret with `peer`.
    pub fn diffie_hellman(&self, peer: &PublicKey) -> SharedSecret {
        let pk = x25519_dalek::PublicKey::from(peer.0);
        SharedSecret(Zeroizing::new(self.0.diffie_hellman(&pk).to_bytes()))
    }

    /// Like [`diffie_hellman`](Self::diffie_hellman), but rejects a peer key of small
    /// order (whose shared secret would be all zeros regardless of our key).
    pub fn diffie_hellman_checked(&self, peer: &PublicKey) -> Result<SharedSecret, CryptoError> {
        let pk = x25519_dalek::PublicKey::from(peer.0);
        let s = self.0.diffie_hellman(&pk);
        if s.was_contributory() {
            Ok(SharedSecret(Zeroizing::new(s.to_bytes())))
        } else {
            Err(CryptoError::InvalidKey {
                what: "X25519",
                reason: "public key of small order",
            })
        }
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("x25519::SecretKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SecretKey {}

impl Serialize for SecretKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::serde_bytes::serialize(self.0.as_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = Zeroizing::new(crate::serde_bytes::deserialize::<D, 32>(d)?);
        Ok(Self::from_bytes(*b))
    }
}

/// An X25519 public key (32 raw bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The DER SubjectPublicKeyInfo encoding (44 bytes), as SMP sends keys.
    pub fn to_spki_der(&self) -> Vec<u8> {
        crate::spki::encode(&SPKI_PREFIX, &self.0)
    }

    /// Parses a DER SubjectPublicKeyInfo X25519 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        crate::spki::decode(
            &SPKI_PREFIX,
            der,
            "X25519",
            "not a DER SPKI X25519 public key",
        )
        .map(Self)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x25519::PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A raw X25519 output, zeroized on drop.
pub struct SharedSecret(Zeroizing<[u8; 32]>);

impl SharedSecret {
    /// Wraps raw bytes (for example a stored DH secret).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Zeroizing::new(b))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// X25519(`secret`, `public`) on raw bytes (vector kind `crypto.x25519`).
pub fn x25519(secret: [u8; 32], public: [u8; 32]) -> [u8; 32] {
    *SecretKey::from_bytes(secret)
        .diffie_hellman(&PublicKey(public))
        .as_bytes()
}

/// X25519(`secret`, 9): the public key of a raw secret (vector kind `crypto.x25519_pub`).
pub fn x25519_base(secret: [u8; 32]) -> [u8; 32] {
    *SecretKey::from_bytes(secret).public_key().as_bytes()
}
