//! Ed25519 signatures (RFC 8032) with DER SubjectPublicKeyInfo public keys.

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::{CryptoError, CryptoRng, RngCore};

/// DER SPKI prefix of an Ed25519 public key (followed by the 32 raw bytes).
pub const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 private key. The seed is zeroized on drop.
pub struct SigningKey {
    seed: Zeroizing<[u8; 32]>,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(*seed)
    }

    /// The key whose RFC 8032 private key (seed) is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        // Every 32-byte string is a valid Ed25519 seed; ring only rejects wrong lengths.
        let Ok(pair) = Ed25519KeyPair::from_seed_unchecked(seed.as_ref()) else {
            unreachable!("a 32-byte seed is always accepted")
        };
        Self { seed, pair }
    }

    /// The 32-byte seed (for storage).
    pub fn seed(&self) -> [u8; 32] {
        *self.seed
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(b)
    }

    /// Signs `msg` (deterministic, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let sig = self.pair.sign(msg);
        let mut b = [0u8; 64];
        b.copy_from_slice(sig.as_ref());
        Signature(b)
    }
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        Self::from_seed(*self.seed)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(self.seed.as_ref(), other.seed.as_ref())
    }
}

impl Eq for SigningKey {}

impl Serialize for SigningKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::serde_bytes::serialize(&self.seed, s)
    }
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seed = Zeroizing::new(crate::serde_bytes::deserialize::<D, 32>(d)?);
        Ok(Self::from_seed(*seed))
    }
}

/// Signs `msg` with the key whose seed is `seed`, returning the signature and the
/// public key (vector kind `crypto.ed25519_sign`).
pub fn sign_with_seed(seed: [u8; 32], msg: &[u8]) -> (Signature, PublicKey) {
    let k = SigningKey::from_seed(seed);
    (k.sign(msg), k.public_key())
}

/// An Ed25519 public key (32 raw bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps raw bytes. Whether they are a valid curve point is checked by [`verify`](Self::verify).
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

    /// Parses a DER SubjectPublicKeyInfo Ed25519 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        crate::spki::decode(
            &SPKI_PREFIX,
            der,
            "Ed25519",
            "not a DER SPKI Ed25519 public key",
        )
        .map(Self)
    }

    /// Verifies `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, &sig.0)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519::PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps raw bytes.
    pub fn from_bytes(b: [u8; 64]) -> Self {
        Self(b)
    }

    /// The raw 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// Parses a signature from a slice that must be exactly 64 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        <[u8; 64]>::try_from(b)
            .map(Self)
            .map_err(|_| CryptoError::InvalidLength {
                what: "Ed25519 signature",
                len: b.len(),
                expected: "64",
            })
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519::Signature(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::serde_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::serde_bytes::deserialize::<D, 64>(d).map(Self)
    }
}
