//! AES-256-GCM (ring), used by the double ratchet.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as RingNonce, UnboundKey};

use crate::CryptoError;

/// AES-256-GCM tag length.
pub const TAG_LEN: usize = 16;
/// AES-256-GCM nonce length.
pub const NONCE_LEN: usize = 12;

fn key(k: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, k) {
        Ok(u) => LessSafeKey::new(u),
        Err(_) => unreachable!("a 32-byte key is always a valid AES-256 key"),
    }
}

/// Encrypts `plaintext` with associated data `ad`; returns `ciphertext || tag(16)`.
pub fn encrypt(k: &[u8; 32], nonce: &[u8; NONCE_LEN], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buf.extend_from_slice(plaintext);
    match key(k).seal_in_place_append_tag(
        RingNonce::assume_unique_for_key(*nonce),
        Aad::from(ad),
        &mut buf,
    ) {
        Ok(()) => buf,
        Err(_) => unreachable!("AES-GCM refuses only messages over 64 GiB"),
    }
}

/// Decrypts `ciphertext || tag(16)` with associated data `ad`.
pub fn decrypt(
    k: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut buf = ciphertext.to_vec();
    let n = open_in_place(k, nonce, ad, &mut buf)?.len();
    buf.truncate(n);
    Ok(buf)
}

/// Encrypts `in_out` in place with associated data `ad` and returns the tag (the
/// ciphertext is `in_out || tag`, as from [`encrypt`]), without copying the data.
pub fn seal_in_place(
    k: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    in_out: &mut [u8],
) -> [u8; TAG_LEN] {
    match key(k).seal_in_place_separate_tag(
        RingNonce::assume_unique_for_key(*nonce),
        Aad::from(ad),
        in_out,
    ) {
        Ok(tag) => {
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }
        Err(_) => unreachable!("AES-GCM refuses only messages over 64 GiB"),
    }
}

/// Decrypts `ciphertext || tag(16)` in place; returns the plaintext, the start of
/// `in_out`. On failure `in_out` holds no plaintext (ring zeroes what it
/// decrypted).
pub fn open_in_place<'a>(
    k: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    in_out: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    if in_out.len() < TAG_LEN {
        return Err(CryptoError::InvalidLength {
            what: "AES-GCM ciphertext",
            len: in_out.len(),
            expected: "at least 16",
        });
    }
    key(k)
        .open_in_place(
            RingNonce::assume_unique_for_key(*nonce),
            Aad::from(ad),
            in_out,
        )
        .map_err(|_| CryptoError::DecryptFailed {
            what: "AES-256-GCM",
        })
}
