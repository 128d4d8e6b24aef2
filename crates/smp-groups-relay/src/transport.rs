//! The relay side of the SMP block transport: the relay handshake of
//! [`SmpTransport::server`], then the connection split into a reading and a
//! writing half so that it can deliver `MSG`, `END` and `DELD` while it waits
//! for the client's next block.

use smp_groups_crypto::{CryptoRng, RngCore, x25519};
use smp_groups_net::{
    ServerIdentity, SmpTlsStream, SmpTransport, TransportReader, TransportWriter,
};
use smp_groups_wire::smp::{Version, VersionRange};
use tokio::io::{AsyncRead, AsyncWrite};

/// The versions the relay offers: 6 to 18, as the reference relay does.
pub(crate) fn relay_versions() -> VersionRange {
    VersionRange::new(Version::MIN, Version::REFERENCE_CURRENT).unwrap_or(VersionRange::SUPPORTED)
}

/// A transport failure on one connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TransportError {
    /// TLS, the SMP handshake or a block failed.
    #[error("transport: {0}")]
    Net(#[from] smp_groups_net::NetError),
    /// A handshake timed out.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Responses did not encode into blocks.
    #[error("malformed block: {0}")]
    Wire(#[from] smp_groups_wire::Error),
}

/// A connection after the SMP handshake.
#[derive(Debug)]
pub(crate) struct Accepted<S> {
    /// The reading half.
    pub reader: TransportReader<S>,
    /// The writing half.
    pub writer: TransportWriter<S>,
    /// The agreed version.
    pub version: Version,
    /// The session id.
    pub session_id: Vec<u8>,
    /// The relay's X25519 session key (v>=7), for command authenticators.
    pub session_key: Option<x25519::SecretKey>,
}

/// Runs the relay side of the SMP handshake on an accepted TLS connection
/// ([`SmpTransport::server`]: without ALPN `smp/1` only version 6 is offered)
/// and splits the connection.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    tls: SmpTlsStream<S>,
    identity: &ServerIdentity,
    versions: VersionRange,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Accepted<S>, TransportError> {
    let transport = SmpTransport::server(tls, identity, versions, rng).await?;
    let version = transport.version();
    let session_id = transport.session_id().to_vec();
    let session_key = if version >= Version::AUTH_CMDS {
        transport.session_secret().cloned()
    } else {
        None
    };
    let (reader, writer) = transport.into_split();
    Ok(Accepted {
        reader,
        writer,
        version,
        session_id,
        session_key,
    })
}
