//! The one error type of the crypto crate.

/// A cryptographic operation failed.
///
/// Decryption and verification failures deliberately carry no detail about
/// *why* authentication failed, only which operation it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// An Ed25519 signature did not verify.
    #[error("Ed25519 signature verification failed")]
    BadSignature,
    /// A key (raw bytes or DER) is malformed or of the wrong algorithm.
    #[error("invalid {what} key: {reason}")]
    InvalidKey {
        /// The kind of key.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Authenticated decryption failed (wrong key, nonce, or tampered data).
    #[error("{what}: authenticated decryption failed")]
    DecryptFailed {
        /// The construction being decrypted.
        what: &'static str,
    },
    /// The input has the wrong length for the construction.
    #[error("{what}: invalid length {len}, expected {expected}")]
    InvalidLength {
        /// The value being checked.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The length (or range) expected, in words.
        expected: &'static str,
    },
    /// The message does not fit the fixed padded size.
    #[error("message too long to pad: {len} bytes exceed the maximum of {max}")]
    TooLong {
        /// The message length.
        len: usize,
        /// The largest message that fits.
        max: usize,
    },
    /// Padding inside a decrypted payload is malformed.
    #[error("malformed padding in {what}")]
    BadPadding {
        /// The construction whose plaintext was malformed.
        what: &'static str,
    },
    /// A requested key-derivation output length is not supported.
    #[error("HKDF output length {0} is too large")]
    HkdfLength(usize),
    /// A ratchet message arrived whose key was already used or discarded.
    #[error("ratchet: duplicate or expired message (chain message number {n})")]
    Replay {
        /// The message number within its sending chain.
        n: u32,
    },
    /// A ratchet message would require skipping more message keys than allowed.
    #[error("ratchet: {skip} skipped messages exceed the limit of {max}")]
    TooManySkipped {
        /// How many message keys would have to be skipped.
        skip: u64,
        /// The configured bound.
        max: u32,
    },
    /// The ratchet cannot send yet: the responder must first receive a message.
    #[error("ratchet: cannot send before the first message from the peer arrives")]
    NotReady,
    /// A ratchet message or state has a version this crate does not speak.
    #[error("ratchet: unsupported version {0}")]
    UnsupportedVersion(u16),
    /// A ratchet configuration value is out of range.
    #[error("ratchet configuration: {0}")]
    BadConfig(&'static str),
    /// A message counter would overflow (2^32 messages in one chain).
    #[error("ratchet: message counter exhausted")]
    CounterExhausted,
    /// Saved ratchet state could not be decoded.
    #[error("ratchet state: {0}")]
    State(String),
}
