//! The ratchet's key derivations (all HKDF-SHA512) and key types.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::hash::hkdf_sha512_unsalted_into;
use crate::{aead, hkdf_sha512};

/// HKDF info of the initial key agreement.
pub const X3DH_INFO: &[u8] = b"SmpGroupsX3DH";
/// HKDF info of the root (DH) ratchet step.
pub const ROOT_INFO: &[u8] = b"SmpGroupsRootRatchet";
/// HKDF info of the symmetric chain step.
pub const CHAIN_INFO: &[u8] = b"SmpGroupsChainRatchet";

/// A 32-byte secret key (root, chain, header or message key), zeroized on drop.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Key32(pub(crate) [u8; 32]);

impl PartialEq for Key32 {
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(&self.0, &other.0)
    }
}

impl Eq for Key32 {}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(..)")
    }
}

/// The key and nonce that encrypt one message body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey {
    pub(crate) key: Key32,
    pub(crate) nonce: [u8; aead::NONCE_LEN],
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(..)")
    }
}

fn split32(b: &[u8]) -> Key32 {
    let mut k = [0u8; 32];
    k.copy_from_slice(b);
    Key32(k)
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    const { assert!(N <= crate::HKDF_SHA512_MAX) };
    let Ok(okm) = hkdf_sha512::<N>(salt, ikm, info) else {
        unreachable!("the output length is checked at compile time")
    };
    okm
}

/// [`hkdf`] with an empty salt, whose HMAC key is computed once.
fn hkdf_unsalted<const N: usize>(ikm: &[u8], info: &[u8]) -> [u8; N] {
    const { assert!(N <= crate::HKDF_SHA512_MAX) };
    let mut okm = [0u8; N];
    if hkdf_sha512_unsalted_into(ikm, info, &mut okm).is_err() {
        unreachable!("the output length is checked at compile time")
    }
    okm
}

/// The initial key agreement's outputs.
pub(crate) struct X3dhOut {
    /// The initiator's first sending header key.
    pub(crate) hk: Key32,
    /// The responder's first sending header key.
    pub(crate) nhk: Key32,
    /// The initial root key.
    pub(crate) root: Key32,
}

/// `HKDF-SHA512(salt = "", ikm = dh1 || dh2 || dh3, info = X3DH_INFO, 96)` split
/// header key / next header key / root key.
pub(crate) fn kdf_x3dh(dh1: &[u8; 32], dh2: &[u8; 32], dh3: &[u8; 32]) -> X3dhOut {
    let mut ikm = [0u8; 96];
    ikm[..32].copy_from_slice(dh1);
    ikm[32..64].copy_from_slice(dh2);
    ikm[64..].copy_from_slice(dh3);
    let mut okm = hkdf_unsalted::<96>(&ikm, X3DH_INFO);
    let out = X3dhOut {
        hk: split32(&okm[..32]),
        nhk: split32(&okm[32..64]),
        root: split32(&okm[64..]),
    };
    ikm.zeroize();
    okm.zeroize();
    out
}

/// `HKDF-SHA512(salt = root key, ikm = DH output, info = ROOT_INFO, 96)` split
/// new root key / chain key / next header key.
pub(crate) fn kdf_root(root: &Key32, dh_out: &[u8; 32]) -> (Key32, Key32, Key32) {
    let mut okm = hkdf::<96>(&root.0, dh_out, ROOT_INFO);
    let out = (
        split32(&okm[..32]),
        split32(&okm[32..64]),
        split32(&okm[64..]),
    );
    okm.zeroize();
    out
}

/// `HKDF-SHA512(salt = "", ikm = chain key, info = CHAIN_INFO, 88)` split next
/// chain key (32) / message key (32) / body nonce (12) / header nonce (12).
pub(crate) fn kdf_chain(ck: &Key32) -> (Key32, MessageKey, [u8; aead::NONCE_LEN]) {
    let mut okm = hkdf_unsalted::<88>(&ck.0, CHAIN_INFO);
    let mut nonce = [0u8; aead::NONCE_LEN];
    nonce.copy_from_slice(&okm[64..76]);
    let mut header_nonce = [0u8; aead::NONCE_LEN];
    header_nonce.copy_from_slice(&okm[76..88]);
    let out = (
        split32(&okm[..32]),
        MessageKey {
            key: split32(&okm[32..64]),
            nonce,
        },
        header_nonce,
    );
    okm.zeroize();
    out
}
