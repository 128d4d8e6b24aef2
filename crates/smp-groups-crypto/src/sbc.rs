//! The SMP transport block-encryption chain.
//!
//! After the handshake both sides derive two chain keys from the TLS session id
//! and a DH secret ([`sbc_init`]). Each block advances one chain by
//! [`sbc_hkdf`], which yields a secretbox key and nonce for that block; the
//! 16384-byte block on the wire is the secretbox of `pad(data, 16368)`.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{CryptoError, hkdf_sha512, nacl};

/// Size of an encrypted transport block on the wire.
pub const BLOCK_SIZE: usize = 16384;
/// Size of the padded plaintext inside an encrypted block.
pub const BLOCK_PADDED: usize = BLOCK_SIZE - nacl::TAG_LEN;

/// HKDF info of the chain initialisation.
pub const INIT_INFO: &[u8] = b"SimpleXSbChainInit";
/// HKDF info of each chain step.
pub const STEP_INFO: &[u8] = b"SimpleXSbChain";

/// A 32-byte chain key, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey(pub [u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// The two chain keys produced by [`sbc_init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainKeys {
    /// The key the server sends with (and the client receives with).
    pub snd: ChainKey,
    /// The key the server receives with (and the client sends with).
    pub rcv: ChainKey,
}

/// `HKDF-SHA512(salt = session_id, ikm = secret, info = "SimpleXSbChainInit", 64)`
/// split 32/32 (vector kind `smp.sbc_init`).
pub fn sbc_init(session_id: &[u8], secret: &[u8]) -> ChainKeys {
    let mut okm = hkdf_64(session_id, secret);
    let mut snd = [0u8; 32];
    let mut rcv = [0u8; 32];
    snd.copy_from_slice(&okm[..32]);
    rcv.copy_from_slice(&okm[32..]);
    okm.zeroize();
    ChainKeys {
        snd: ChainKey(snd),
        rcv: ChainKey(rcv),
    }
}

fn hkdf_64(salt: &[u8], ikm: &[u8]) -> [u8; 64] {
    let Ok(okm) = hkdf_sha512::<64>(salt, ikm, INIT_INFO) else {
        unreachable!("64 bytes is within HKDF-SHA512's output limit")
    };
    okm
}

/// The per-block material produced by [`sbc_hkdf`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BlockKeys {
    /// The secretbox key of this block.
    pub key: [u8; 32],
    /// The secretbox nonce of this block.
    pub nonce: [u8; 24],
    /// The chain key for the next block.
    pub next_chain_key: ChainKey,
}

/// `HKDF-SHA512(salt = "", ikm = chain_key, info = "SimpleXSbChain", 88)` split
/// next chain key 0..32, key 32..64, nonce 64..88 (vector kind `smp.sbc_hkdf`).
pub fn sbc_hkdf(chain_key: &ChainKey) -> BlockKeys {
    let Ok(mut okm) = hkdf_sha512::<88>(b"", &chain_key.0, STEP_INFO) else {
        unreachable!("88 bytes is within HKDF-SHA512's output limit")
    };
    let mut keys = BlockKeys {
        key: [0; 32],
        nonce: [0; 24],
        next_chain_key: ChainKey([0; 32]),
    };
    keys.next_chain_key.0.copy_from_slice(&okm[..32]);
    keys.key.copy_from_slice(&okm[32..64]);
    keys.nonce.copy_from_slice(&okm[64..]);
    okm.zeroize();
    keys
}

/// Encrypts one block with chain key `chain_key` and an explicit padded size:
/// returns `(secretbox(pad(block, padded_len)), next chain key)` (vector kind
/// `smp.block_encrypt`; a real SMP block uses [`BLOCK_PADDED`]).
pub fn block_encrypt_with(
    chain_key: &ChainKey,
    block: &[u8],
    padded_len: usize,
) -> Result<(Vec<u8>, ChainKey), CryptoError> {
    let keys = sbc_hkdf(chain_key);
    let out = nacl::sb_encrypt(&keys.key, &keys.nonce, block, padded_len)?;
    Ok((out, keys.next_chain_key.clone()))
}

/// Decrypts one block made by [`block_encrypt_with`]; returns the data and the
/// next chain key.
pub fn block_decrypt_with(
    chain_key: &ChainKey,
    block: &[u8],
) -> Result<(Vec<u8>, ChainKey), CryptoError> {
    let keys = sbc_hkdf(chain_key);
    let out = nacl::sb_decrypt(&keys.key, &keys.nonce, block)?;
    Ok((out, keys.next_chain_key.clone()))
}

/// One direction of a block-encryption chain: holds the current chain key and
/// advances it with every block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChain {
    key: ChainKey,
}

impl BlockChain {
    /// A chain starting at `key`.
    pub fn new(key: ChainKey) -> Self {
        Self { key }
    }

    /// Encrypts `data` into a [`BLOCK_SIZE`]-byte block and advances the chain.
    pub fn encrypt(&mut self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (out, next) = block_encrypt_with(&self.key, data, BLOCK_PADDED)?;
        self.key = next;
        Ok(out)
    }

    /// Decrypts a [`BLOCK_SIZE`]-byte block. The chain advances only on success, so
    /// a corrupted block leaves it where it was.
    pub fn decrypt(&mut self, block: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if block.len() != BLOCK_SIZE {
            return Err(CryptoError::InvalidLength {
                what: "encrypted block",
                len: block.len(),
                expected: "16384",
            });
        }
        let (out, next) = block_decrypt_with(&self.key, block)?;
        self.key = next;
        Ok(out)
    }

    /// [`BlockChain::decrypt`] of a block it may decrypt in place: returns
    /// the same data in the block's own buffer (no copy of the block).
    pub fn decrypt_owned(&mut self, mut block: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if block.len() != BLOCK_SIZE {
            return Err(CryptoError::InvalidLength {
                what: "encrypted block",
                len: block.len(),
                expected: "16384",
            });
        }
        let keys = sbc_hkdf(&self.key);
        nacl::sb_decrypt_in_place(&keys.key, &keys.nonce, &mut block)?;
        self.key = keys.next_chain_key.clone();
        Ok(block)
    }
}
