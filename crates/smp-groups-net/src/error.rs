//! Error types of the transport.

use std::path::PathBuf;

/// Why a certificate or a certificate chain was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The DER encoding could not be parsed.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// A key or signature algorithm other than Ed25519 and Ed448.
    #[error("unsupported certificate algorithm")]
    UnsupportedAlgorithm,
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
    /// The chain has fewer than 2 or more than 4 certificates.
    #[error("certificate chain of {0} certificates (2 to 4 accepted)")]
    ChainLength(usize),
    /// The identity certificate does not hash to the expected key hash.
    #[error("identity certificate does not match the server key hash")]
    KeyHashMismatch,
    /// A certificate's issuer is not the subject of the next certificate.
    #[error("certificate issuer does not match the next certificate's subject")]
    IssuerMismatch,
    /// A certificate is outside its validity period.
    #[error("certificate expired or not yet valid")]
    NotValidNow,
}

/// Why the session id could not be taken from the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionIdError {
    /// The recorded bytes do not start with a ClientHello record.
    #[error("no ClientHello in the recorded handshake")]
    NoClientHello,
    /// The client handshake traffic secret was not logged for this connection.
    #[error("client handshake traffic secret not available")]
    NoSecret,
    /// The logged secret belongs to another client random.
    #[error("client handshake traffic secret is for another connection")]
    RandomMismatch,
    /// A cipher suite this code cannot derive keys for.
    #[error("cipher suite not supported for the session id")]
    UnsupportedSuite,
    /// An encrypted handshake record did not decrypt.
    #[error("handshake record failed to decrypt")]
    Decrypt,
    /// A record or handshake message is malformed.
    #[error("malformed handshake record: {0}")]
    Malformed(&'static str),
    /// The recorded bytes end before the client's Finished message.
    #[error("client Finished message not found")]
    NoFinished,
}

/// Why the SMP handshake (the hello blocks after TLS) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The relay's hello carries another session id than this TLS connection's.
    #[error("session id in the relay's hello differs from the TLS session id")]
    BadSession,
    /// The two sides have no protocol version in common.
    #[error("no common SMP version")]
    Version,
    /// The client asked for another relay identity (key hash).
    #[error("client hello names another relay identity")]
    Identity,
    /// The relay's certificate chain or signed session key is invalid.
    #[error("relay session key authentication failed: {0}")]
    BadAuth(&'static str),
}

/// Errors of the TLS transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// I/O error of the underlying stream or of the data directory.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection cleanly between two blocks.
    #[error("the peer closed the connection")]
    Closed,
    /// TLS configuration or protocol error.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    CertGen(#[from] rcgen::Error),
    /// A certificate is invalid.
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
    /// A file of the server identity is missing or invalid.
    #[error("server identity file {path}: {reason}")]
    IdentityFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The session id could not be derived.
    #[error("session id: {0}")]
    SessionId(#[from] SessionIdError),
    /// The SMP handshake failed.
    #[error("SMP handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// A block or hello did not encode or decode.
    #[error("SMP encoding: {0}")]
    Wire(#[from] smp_groups_wire::Error),
    /// Block encryption or key agreement failed.
    #[error("crypto: {0}")]
    Crypto(#[from] smp_groups_crypto::CryptoError),
}
