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
use zeroize::{Zeroize, Zeroizing};

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

/// XSalsa20-Poly1305 (keyed after the HSalsa20 step) of `buf[TAG_LEN..]` in
/// place, the tag written to `buf[..TAG_LEN]`: `buf` becomes
/// `tag || ciphertext` (one buffer, no copy).
fn seal_in_place(secret: &[u8; 32], nonce: &Nonce, buf: &mut [u8]) {
    let Some((tag_out, msg)) = buf.split_at_mut_checked(TAG_LEN) else {
        unreachable!("callers leave room for the tag")
    };
    let cipher = XSalsa20Poly1305::new((&*box_key(secret)).into());
    // Only messages longer than 2^38 bytes are refused; ours are far smaller.
    let Ok(tag) = cipher.encrypt_in_place_detached(nonce.into(), b"", msg) else {
        unreachable!("XSalsa20-Poly1305 refuses only messages over 256 GiB")
    };
    tag_out.copy_from_slice(&tag);
}

/// XSalsa20-Poly1305 of `msg`; returns `tag || ciphertext`.
fn seal(secret: &[u8; 32], nonce: &Nonce, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG_LEN + msg.len());
    out.extend_from_slice(&[0; TAG_LEN]);
    out.extend_from_slice(msg);
    seal_in_place(secret, nonce, &mut out);
    out
}

/// XSalsa20-Poly1305 of `pad(parts concatenated, pad_len)`, built in the
/// output buffer: each part is copied once, nothing else is allocated.
fn seal_padded(
    secret: &[u8; 32],
    nonce: &Nonce,
    parts: &[&[u8]],
    pad_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(TAG_LEN + pad_len);
    out.extend_from_slice(&[0; TAG_LEN]);
    smp_groups_wire::pad::pad_parts_into(parts, pad_len, &mut out).map_err(|_| {
        CryptoError::TooLong {
            len: parts.iter().map(|p| p.len()).sum(),
            max: pad_len
                .saturating_sub(2)
                .min(smp_groups_wire::pad::MAX_PADDED_MESSAGE),
        }
    })?;
    seal_in_place(secret, nonce, &mut out);
    Ok(out)
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
    seal_padded(dh_secret, nonce, &[msg], pad_len)
}

/// [`cb_encrypt`] of the concatenation of `parts`, without building it: the
/// same bytes, with each part copied once (the relay's delivery box of
/// `timestamp || flags || body`).
pub fn cb_encrypt_parts(
    dh_secret: &[u8; 32],
    nonce: &Nonce,
    parts: &[&[u8]],
    pad_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    seal_padded(dh_secret, nonce, parts, pad_len)
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
    seal(dh_secret, nonce, msg)
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
    seal_padded(key, nonce, &[msg], pad_len)
}

/// Opens a box made by [`sb_encrypt`] and removes the padding.
pub fn sb_decrypt(key: &[u8; 32], nonce: &Nonce, boxed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let plain = Zeroizing::new(open(key, nonce, boxed, "secretbox")?);
    unpadded(&plain, "secretbox")
}

/// [`sb_decrypt`] of a box it may decrypt in place: `boxed` becomes the
/// message (the same bytes [`sb_decrypt`] returns), with no other buffer.
/// A box that fails its tag check is left as it was; one whose padding does
/// not read is wiped.
pub fn sb_decrypt_in_place(
    key: &[u8; 32],
    nonce: &Nonce,
    boxed: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let len = boxed.len();
    let Some((tag, ct)) = boxed.split_at_mut_checked(TAG_LEN) else {
        return Err(CryptoError::InvalidLength {
            what: "secretbox",
            len,
            expected: "at least 16 (the tag)",
        });
    };
    let cipher = XSalsa20Poly1305::new((&*box_key(key)).into());
    // The tag is checked before anything is decrypted.
    cipher
        .decrypt_in_place_detached(nonce.into(), b"", ct, Tag::from_slice(tag))
        .map_err(|_| CryptoError::DecryptFailed { what: "secretbox" })?;
    let Ok(n) = smp_groups_wire::pad::unpad(ct).map(<[u8]>::len) else {
        ct.zeroize();
        return Err(CryptoError::BadPadding { what: "secretbox" });
    };
    // The message starts after the tag and the 2-byte length.
    boxed.copy_within(TAG_LEN + 2..TAG_LEN + 2 + n, 0);
    boxed.truncate(n);
    Ok(())
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
    let boxed = seal(dh.as_bytes(), nonce, &sha512(msg));
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
