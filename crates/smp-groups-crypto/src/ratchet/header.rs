//! The ratchet message layout and its plaintext header.
//!
//! ```text
//! message      = version(2) header_nonce(12) enc_header(80) enc_body(body_padded + 16)
//! enc_header   = AES-256-GCM(HKs, header_nonce, ad = AD || version || caller_ad,
//!                            pad(header, 64)) ; 64 + 16-byte tag
//! header       = dh_pub(32) pn(4, BE) n(4, BE)
//! enc_body     = AES-256-GCM(mk, body_nonce, ad = AD || message[0..94] || caller_ad,
//!                            pad(plaintext, body_padded))
//! ```

use crate::CryptoError;
use crate::x25519::PublicKey;

/// Version of the ratchet message format.
pub const MESSAGE_VERSION: u16 = 1;
/// Padded length of the plaintext header.
pub const HEADER_PADDED: usize = 64;
/// Length of the unpadded header.
pub const HEADER_LEN: usize = 32 + 4 + 4;
/// Length of the encrypted header (padded header and tag).
pub const ENC_HEADER_LEN: usize = HEADER_PADDED + crate::aead::TAG_LEN;
/// Length of everything before the encrypted body: version, header nonce,
/// encrypted header.
pub const PREFIX_LEN: usize = 2 + crate::aead::NONCE_LEN + ENC_HEADER_LEN;

/// The plaintext ratchet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The sender's current ratchet public key.
    pub(crate) dh: PublicKey,
    /// The number of messages in the sender's previous sending chain.
    pub(crate) pn: u32,
    /// This message's number in its sending chain.
    pub(crate) n: u32,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(self.dh.as_bytes());
        out[32..36].copy_from_slice(&self.pn.to_be_bytes());
        out[36..].copy_from_slice(&self.n.to_be_bytes());
        out
    }

    /// Parses a decrypted, unpadded header. Only called on authenticated data, but
    /// still checked.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, CryptoError> {
        let b = <&[u8; HEADER_LEN]>::try_from(b).map_err(|_| CryptoError::InvalidLength {
            what: "ratchet header",
            len: b.len(),
            expected: "40",
        })?;
        let mut dh = [0u8; 32];
        dh.copy_from_slice(&b[..32]);
        let mut pn = [0u8; 4];
        pn.copy_from_slice(&b[32..36]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&b[36..]);
        Ok(Self {
            dh: PublicKey::from_bytes(dh),
            pn: u32::from_be_bytes(pn),
            n: u32::from_be_bytes(n),
        })
    }
}
