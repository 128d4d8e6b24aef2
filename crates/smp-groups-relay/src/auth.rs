//! Authorization of commands: Ed25519 signatures and crypto_box authenticators
//! over the authorized bytes, as the reference relay checks them.
//!
//! When there is no queue (or no key) to check against, a dummy key is checked
//! instead and the result thrown away, so that the time taken does not tell an
//! existing queue from a missing one.

use smp_groups_crypto::{ed25519, nacl, x25519};

use crate::types::{AuthKey, Authorization};

/// What a connection knows for checking authenticators:
/// the relay's X25519 session key (sent in the server hello from v7).
#[derive(Clone, Debug)]
pub struct SessionAuth {
    /// The relay's private X25519 session key, when the session has one.
    pub server_key: Option<x25519::SecretKey>,
}

/// The authenticator nonce from a correlation id: its first 24 bytes, zero-filled
/// when shorter (the reference's `cbNonce`).
pub fn corr_nonce(corr_id: &[u8]) -> [u8; 24] {
    let mut n = [0u8; 24];
    let len = corr_id.len().min(24);
    n[..len].copy_from_slice(&corr_id[..len]);
    n
}

// Fixed, valid public keys for dummy checks (any valid key will do).
const DUMMY_ED25519: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];
const DUMMY_X25519: [u8; 32] = [9; 32];

/// True when `auth` is a valid authorization of `authorized` by `key`.
pub fn verify(
    session: &SessionAuth,
    key: &AuthKey,
    auth: &Authorization,
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    match (auth, key) {
        (Authorization::Ed25519(sig), AuthKey::Ed25519(k)) => k.verify(authorized, sig).is_ok(),
        (Authorization::Authenticator(a), AuthKey::X25519(k)) => {
            verify_authenticator(session, k, a, authorized, corr_id)
        }
        _ => {
            let _ = dummy_verify(session, auth, authorized, corr_id);
            false
        }
    }
}

fn verify_authenticator(
    session: &SessionAuth,
    k: &x25519::PublicKey,
    a: &[u8; 80],
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    session.server_key.as_ref().is_some_and(|sk| {
        nacl::verify_cb_authenticator(k, sk, &corr_nonce(corr_id), authorized, a).is_ok()
    })
}

/// Checks `auth` against a dummy key, for constant time when there is nothing
/// to check against; the result means nothing.
pub fn dummy_verify(
    session: &SessionAuth,
    auth: &Authorization,
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    match auth {
        Authorization::Ed25519(sig) => ed25519::PublicKey::from_bytes(DUMMY_ED25519)
            .verify(authorized, sig)
            .is_ok(),
        Authorization::Authenticator(a) => verify_authenticator(
            session,
            &x25519::PublicKey::from_bytes(DUMMY_X25519),
            a,
            authorized,
            corr_id,
        ),
        Authorization::None | Authorization::Unsupported => false,
    }
}
