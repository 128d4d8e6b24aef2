//! SHA-2 hashes, HMAC-SHA512 and HKDF-SHA512 (RFC 5869).

use std::sync::LazyLock;

use ring::{digest, hkdf, hmac};

use crate::CryptoError;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-512 of `data` (vector kind `crypto.sha512`).
pub fn sha512(data: &[u8]) -> [u8; 64] {
    let d = digest::digest(&digest::SHA512, data);
    let mut out = [0u8; 64];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA512 of `data` under `key`.
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let k = hmac::Key::new(hmac::HMAC_SHA512, key);
    let tag = hmac::sign(&k, data);
    let mut out = [0u8; 64];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Output length wrapper for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Largest HKDF-SHA512 output (255 hash blocks).
pub const HKDF_SHA512_MAX: usize = 255 * 64;

/// HKDF-SHA512 (extract with `salt`, expand with `info`) into `out`.
///
/// Fails only when `out` is longer than [`HKDF_SHA512_MAX`].
pub fn hkdf_sha512_into(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, salt).extract(ikm);
    let info = [info];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError::HkdfLength(out.len()))
}

/// The HMAC key of an empty HKDF salt, made once (the ratchet's chain step uses
/// an empty salt for every message).
static EMPTY_SALT: LazyLock<hkdf::Salt> = LazyLock::new(|| hkdf::Salt::new(hkdf::HKDF_SHA512, b""));

/// [`hkdf_sha512_into`] with an empty salt (equal to a salt of 64 zero bytes).
pub(crate) fn hkdf_sha512_unsalted_into(
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let prk = EMPTY_SALT.extract(ikm);
    let info = [info];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError::HkdfLength(out.len()))
}

/// HKDF-SHA512 of fixed output size `N` (at most [`HKDF_SHA512_MAX`], checked at
/// compile time by the callers' sizes; larger sizes are rejected at run time).
pub fn hkdf_sha512<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    hkdf_sha512_into(salt, ikm, info, &mut out)?;
    Ok(out)
}

/// Compares two byte strings without an early exit on the first difference.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
