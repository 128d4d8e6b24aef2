//! Cryptography for smp-groups.
//!
//! * [`sha256`], [`sha512`], [`hkdf_sha512`] — hashes and the key derivation used
//!   everywhere in SMP.
//! * [`rng`] — injected randomness (system RNG in production, seeded in tests).
//! * [`ed25519`] — signatures with DER SPKI public keys.
//! * [`x25519`] — storable Diffie-Hellman key pairs.
//! * [`nacl`] — the reference's exact `crypto_box` / "secretbox" constructions and
//!   the 80-byte command authenticator.
//! * [`sbc`] — the SMP block-encryption chain (16384-byte transport blocks).
//! * [`aead`] — AES-256-GCM.
//! * [`ratchet`] — the per-connection double ratchet with fixed-size ciphertexts.
//!
//! No function here panics on its input; failures are [`CryptoError`]s.
//!
//! # Example
//!
//! Randomness is always passed in: a seeded generator makes the same keys
//! twice.
//!
//! ```
//!
//! use smp_groups_crypto::{ed25519, rng, sha256};
//!
//! let key = ed25519::SigningKey::generate(&mut rng::seeded(1));
//! let again = ed25519::SigningKey::generate(&mut rng::seeded(1));
//! assert_eq!(key.public_key(), again.public_key());
//!
//! let digest = sha256(b"G_CHECK");
//! let sig = key.sign(&digest);
//! assert!(key.public_key().verify(&digest, &sig).is_ok());
//! assert!(key.public_key().verify(&sha256(b"other"), &sig).is_err());
//! ```
#![forbid(unsafe_code)]

pub mod aead;
pub mod clock;
pub mod ed25519;
mod error;
mod hash;
pub mod nacl;
pub mod ratchet;
pub mod rng;
pub mod sbc;
mod serde_bytes;
mod spki;
pub mod x25519;

pub use error::CryptoError;
pub use hash::{
    HKDF_SHA512_MAX, ct_eq, hkdf_sha512, hkdf_sha512_into, hmac_sha512, sha256, sha512,
};
pub use rand_core::{CryptoRng, RngCore};
