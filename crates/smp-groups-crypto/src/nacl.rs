//! The reference's NaCl constructions, byte-exact.
//!
//! All boxes are laid out `tag(16) || ciphertext` (XSalsa20-Poly1305 with the
//! tag first, as NaCl's `*_easy` functions do).
//!
//! * [`cb_encrypt`] / [`cb_decrypt`]: `crypto_box` keyed by a raw X25519 output,
//!   i.e. XSalsa20-Poly1305 keyed with `HSalsa20(dh_secret, 0^16)`, of a padded
//!   message.
//! * [`sb_encrypt`] / [`sb_decrypt`]: the reference's symmetric "secretbox":
//!   the same computation with a 32-byte symmetric key in place of the DH output
//!   (one more HSalsa20 step than plain `crypto_secretbox`).
//! * [`cb_authenticator`] / [`verify_cb_authenticator`]: the 80-byte SMP command
//!   authenticator, `crypto_box` of `sha512(msg)` without padding.

use salsa20::hsalsa;
use xsalsa20poly1305::aead::{AeadInPlace, KeyInit};
use xsalsa20poly1305::{Tag, XSalsa20Poly1305};
use zeroize::Zeroizing;

use crate::x25519::{PublicKey, SecretKey};
use crate::{CryptoError, sha512};

/// Length of the Poly1305 tag that starts every box.
pub const TAG_LEN: usize = 16;
/// Length of an XSalsa20 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a command authenticator.
pub const AUTHENTICATOR_LEN: usize = TAG_LEN + 64;

/// A 24-byte XSalsa20 nonce.
pub type Nonce = [u8; NONCE_LEN];

/// `HSalsa20(key, 0^16)`: NaCl's `crypto_box_beforenm` step.
fn box_key(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let k = hsalsa::<salsa20::cipher::consts::U10>(secret.into(), &[0u8; 16].into());
    Zeroizing::new(k.into())
}

/// XSalsa20-Poly1305 (keyed after the HSalsa20 step) of `buf` in place; returns
/// `tag || ciphertext`.
fn seal(secret: &[u8; 32], nonce: &Nonce, mut buf: Vec<u8>) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new((&*box_key(secret)).into());
    // Only messages longer than 2^38 bytes are refused; ours are far smaller.
    let Ok(tag) = cipher.encrypt_in_place_detached(nonce.into(), b"", &mut buf) else {
        unreachable!("XSalsa20-Poly1305 refuses only messages over 256 GiB")
    };
    let mut out = Vec::with_capacity(TAG_LEN + buf.len());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&buf);
    out
}

/// Opens `tag || ciphertext`.
fn open(
    secret: &[u8; 32],
    nonce: &Nonce,
    boxed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, CryptoError> {
    let (tag, ct) = boxed
        .split_at_checked(TAG_LEN)
        .ok_or(CryptoError::InvalidLength {
            what,
            len: boxed.len(),
            expected: "at least 16 (the tag)",
        })?;
    let cipher = XSalsa20Poly1305::new((&*box_key(secret)).into());
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place_detached(nonce.into(), b"", &mut buf, Tag::from_slice(tag))
        .map_err(|_| CryptoError::DecryptFailed { what })?;
    Ok(buf)
}

fn padded(msg: &[u8], pad_len: usize) -> Result<Vec<u8>, CryptoError> {
    smp_groups_wire::pad::pad(msg, pad_len).map_err(|_| CryptoError::TooLong {
        len: msg.len(),
        max: pad_len
            .saturating_sub(2)
            .min(smp_groups_wire::pad::MAX_PADDED_MESSAGE),
    })
}

fn unpadded(plain: &[u8], what: &'static str) -> Result<Vec<u8>, CryptoError> {
    smp_groups_wire::pad::unpad(plain)
        .map(<[u8]>::to_vec)
        .map_err(|_| CryptoError::BadPadding { what })
}

/// `crypto_box` of `pad(msg, pad_len)` with the raw X25519 output `dh_secret`
/// (vector kind `crypto.cb_encrypt`). The result is `pad_len + 16` bytes.
pub fn cb_encrypt(
    dh_secret: &[u8; 32],
    nonce: &Nonce,
    msg: &[u8],
    pad_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    Ok(seal(dh_secret, nonce, padded(msg, pad_len)?))
}

/// Opens a box made by [`cb_encrypt`] and removes the padding.
pub fn cb_decrypt(
    dh_secret: &[u8; 32],
    nonce: &Nonce,
    boxed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let plain = Zeroizing::new(open(dh_secret, nonce, boxed, "crypto_box")?);
    unpadded(&plain, "crypto_box")
}

/// `crypto_box` without padding (the raw NaCl box of `msg`).
pub fn cb_encrypt_no_pad(dh_secret: &[u8; 32], nonce: &Nonce, msg: &[u8]) -> Vec<u8> {
    seal(dh_secret, nonce, msg.to_vec())
}

/// Opens a box made by [`cb_encrypt_no_pad`].
pub fn cb_decrypt_no_pad(
    dh_secret: &[u8; 32],
    nonce: &Nonce,
    boxed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    open(dh_secret, nonce, boxed, "crypto_box")
}

/// The reference's symmetric "secretbox" of `pad(msg, pad_len)` under the 32-byte
/// `key` (vector kind `crypto.sb_encrypt`). The result is `pad_len + 16` bytes.
pub fn sb_encrypt(
    key: &[u8; 32],
    nonce: &Nonce,
    msg: &[u8],
    pad_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    Ok(seal(key, nonce, padded(msg, pad_len)?))
}

/// Opens a box made by [`sb_encrypt`] and removes the padding.
pub fn sb_decrypt(key: &[u8; 32], nonce: &Nonce, boxed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let plain = Zeroizing::new(open(key, nonce, boxed, "secretbox")?);
    unpadded(&plain, "secretbox")
}

/// The 80-byte command authenticator: `crypto_box(sha512(msg), nonce, peer_pub,
/// own_priv)` without padding (vector kind `crypto.cb_authenticator`).
pub fn cb_authenticator(
    peer_pub: &PublicKey,
    own_priv: &SecretKey,
    nonce: &Nonce,
    msg: &[u8],
) -> [u8; AUTHENTICATOR_LEN] {
    let dh = own_priv.diffie_hellman(peer_pub);
    let boxed = seal(dh.as_bytes(), nonce, sha512(msg).to_vec());
    let mut out = [0u8; AUTHENTICATOR_LEN];
    out.copy_from_slice(&boxed);
    out
}

/// Checks an authenticator made by [`cb_authenticator`]; the verifier holds the
/// other private key (`own_priv`) and the signer's public key (`peer_pub`).
/// A `peer_pub` of small order is refused ([`CryptoError::InvalidKey`]).
pub fn verify_cb_authenticator(
    peer_pub: &PublicKey,
    own_priv: &SecretKey,
    nonce: &Nonce,
    msg: &[u8],
    auth: &[u8],
) -> Result<(), CryptoError> {
    if auth.len() != AUTHENTICATOR_LEN {
        return Err(CryptoError::InvalidLength {
            what: "authenticator",
            len: auth.len(),
            expected: "80",
        });
    }
    // A key of small order makes the shared secret all zeros whatever our key
    // is, so anyone could make the authenticator: such keys authorize nothing.
    let dh = own_priv.diffie_hellman_checked(peer_pub)?;
    let digest = open(dh.as_bytes(), nonce, auth, "authenticator")?;
    if crate::ct_eq(&digest, &sha512(msg)) {
        Ok(())
    } else {
        Err(CryptoError::DecryptFailed {
            what: "authenticator",
        })
    }
}
