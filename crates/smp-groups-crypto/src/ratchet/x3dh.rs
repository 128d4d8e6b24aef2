//! The initial key agreement: two X25519 key pairs on each side.
//!
//! The responder (who created the invitation) publishes the public halves of its
//! pairs `(B1, B2)`; the initiator (who joins and sends first) answers with
//! `(A1, A2)`. Both compute
//!
//! ```text
//! dh1 = DH(A1, B2)   dh2 = DH(A2, B1)   dh3 = DH(A2, B2)
//! (hk, nhk, root) = HKDF-SHA512(salt = "", dh1 || dh2 || dh3, "SmpGroupsX3DH", 96)
//! ad = A1 || B1
//! ```

use serde::{Deserialize, Serialize};

use super::kdf::{X3dhOut, kdf_x3dh};
use crate::x25519::{PublicKey, SecretKey};
use crate::{CryptoError, CryptoRng, RngCore};

/// Version of the encoded [`X3dhParams`].
pub const PARAMS_VERSION: u16 = 1;
/// Length of encoded [`X3dhParams`]: version (2) and two raw keys.
pub const PARAMS_LEN: usize = 2 + 32 + 32;

/// One side's two key pairs for the initial agreement (kept until the ratchet is
/// initialised, then dropped; secrets are zeroized on drop).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X3dhKeyPairs {
    /// The first pair.
    pub k1: SecretKey,
    /// The second pair (the responder's also starts its DH ratchet).
    pub k2: SecretKey,
}

impl X3dhKeyPairs {
    /// Two fresh key pairs.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self {
            k1: SecretKey::generate(rng),
            k2: SecretKey::generate(rng),
        }
    }

    /// The public halves, to send to the peer.
    pub fn params(&self) -> X3dhParams {
        X3dhParams {
            k1: self.k1.public_key(),
            k2: self.k2.public_key(),
        }
    }
}

/// One side's two public keys, as exchanged in the invitation and the
/// confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct X3dhParams {
    /// The first public key.
    pub k1: PublicKey,
    /// The second public key.
    pub k2: PublicKey,
}

impl X3dhParams {
    /// `version(2, big-endian) || k1(32) || k2(32)`.
    pub fn to_bytes(&self) -> [u8; PARAMS_LEN] {
        let mut out = [0u8; PARAMS_LEN];
        out[..2].copy_from_slice(&PARAMS_VERSION.to_be_bytes());
        out[2..34].copy_from_slice(self.k1.as_bytes());
        out[34..].copy_from_slice(self.k2.as_bytes());
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let b = <&[u8; PARAMS_LEN]>::try_from(b).map_err(|_| CryptoError::InvalidLength {
            what: "X3DH parameters",
            len: b.len(),
            expected: "66",
        })?;
        let (v, keys) = b.split_at(2);
        let version = u16::from_be_bytes([v[0], v[1]]);
        if version != PARAMS_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        let (k1, k2) = keys.split_at(32);
        let key = |k: &[u8]| {
            <[u8; 32]>::try_from(k)
                .map(PublicKey::from_bytes)
                .map_err(|_| CryptoError::InvalidKey {
                    what: "X25519",
                    reason: "not 32 bytes",
                })
        };
        Ok(Self {
            k1: key(k1)?,
            k2: key(k2)?,
        })
    }
}

/// The agreement's result as one side sees it.
pub(crate) struct Agreement {
    pub(crate) out: X3dhOut,
    pub(crate) ad: [u8; 64],
}

fn ad(initiator_k1: &PublicKey, responder_k1: &PublicKey) -> [u8; 64] {
    let mut ad = [0u8; 64];
    ad[..32].copy_from_slice(initiator_k1.as_bytes());
    ad[32..].copy_from_slice(responder_k1.as_bytes());
    ad
}

/// The initiator's side: own `(a1, a2)`, the responder's `(B1, B2)`.
pub(crate) fn initiator(own: &X3dhKeyPairs, peer: &X3dhParams) -> Result<Agreement, CryptoError> {
    let dh1 = own.k1.diffie_hellman_checked(&peer.k2)?;
    let dh2 = own.k2.diffie_hellman_checked(&peer.k1)?;
    let dh3 = own.k2.diffie_hellman_checked(&peer.k2)?;
    Ok(Agreement {
        out: kdf_x3dh(dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()),
        ad: ad(&own.k1.public_key(), &peer.k1),
    })
}

/// The responder's side: own `(b1, b2)`, the initiator's `(A1, A2)`.
pub(crate) fn responder(own: &X3dhKeyPairs, peer: &X3dhParams) -> Result<Agreement, CryptoError> {
    let dh1 = own.k2.diffie_hellman_checked(&peer.k1)?;
    let dh2 = own.k1.diffie_hellman_checked(&peer.k2)?;
    let dh3 = own.k2.diffie_hellman_checked(&peer.k2)?;
    Ok(Agreement {
        out: kdf_x3dh(dh1.as_bytes(), dh2.as_bytes(), dh3.as_bytes()),
        ad: ad(&peer.k1, &own.k1.public_key()),
    })
}
