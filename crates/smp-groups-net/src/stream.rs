//! A TLS stream with the SMP session id.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, CommonState, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::error::{NetError, SessionIdError};
use crate::keylog::HandshakeSecretLog;
use crate::recording::{Direction, Recording};
use crate::session_id::client_finished_from_records;

/// A TLS 1.3 connection, client or relay side, whose SMP session id is known.
#[derive(Debug)]
pub struct SmpTlsStream<S> {
    inner: TlsStream<Recording<S>>,
    session_id: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmpTlsStream<S> {
    /// Runs the client handshake over `io` with `config` (see [`crate::client_config`]).
    ///
    /// SNI is off in SMP configurations, so the server name is only a placeholder for
    /// rustls; the relay is identified by the certificate verifier.
    pub async fn connect(io: S, config: &ClientConfig) -> Result<Self, NetError> {
        let log = Arc::new(HandshakeSecretLog::default());
        let mut config = config.clone();
        config.key_log = log.clone();
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, Recording::new(io, Direction::Writes))
            .await
            .map_err(tls_error)?;
        let (rec, conn) = tls.get_mut();
        let session_id = derive(&rec.finish(), conn, &log)?;
        Ok(Self {
            inner: TlsStream::Client(tls),
            session_id,
        })
    }

    /// Runs the relay handshake over `io` with `config` (see [`crate::server_config`]).
    pub async fn accept(io: S, config: &ServerConfig) -> Result<Self, NetError> {
        let log = Arc::new(HandshakeSecretLog::default());
        let mut config = config.clone();
        config.key_log = log.clone();
        let mut tls = TlsAcceptor::from(Arc::new(config))
            .accept(Recording::new(io, Direction::Reads))
            .await
            .map_err(tls_error)?;
        let (rec, conn) = tls.get_mut();
        let session_id = derive(&rec.finish(), conn, &log)?;
        Ok(Self {
            inner: TlsStream::Server(tls),
            session_id,
        })
    }
}

impl<S> SmpTlsStream<S> {
    /// The SMP session id: the `verify_data` of the client's Finished message (32 bytes
    /// with the SMP cipher suite).
    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }

    /// The negotiated ALPN protocol (`Some(b"smp/1")` when both sides offered it).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.common().alpn_protocol()
    }

    /// The peer's certificate chain (the relay's, on the client side), DER.
    pub fn peer_certificates(&self) -> Vec<&[u8]> {
        self.common()
            .peer_certificates()
            .map(|c| c.iter().map(AsRef::as_ref).collect())
            .unwrap_or_default()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        match &self.inner {
            TlsStream::Client(s) => s.get_ref().0.get_ref(),
            TlsStream::Server(s) => s.get_ref().0.get_ref(),
        }
    }

    /// The underlying stream, mutably (writing to it directly corrupts the TLS stream).
    pub fn get_mut(&mut self) -> &mut S {
        match &mut self.inner {
            TlsStream::Client(s) => s.get_mut().0.get_mut(),
            TlsStream::Server(s) => s.get_mut().0.get_mut(),
        }
    }

    fn common(&self) -> &CommonState {
        match &self.inner {
            TlsStream::Client(s) => s.get_ref().1,
            TlsStream::Server(s) => s.get_ref().1,
        }
    }
}

/// Unwraps the TLS errors that tokio-rustls reports as I/O errors.
fn tls_error(e: io::Error) -> NetError {
    if e.get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
    {
        if let Some(inner) = e.into_inner() {
            return match inner.downcast::<rustls::Error>() {
                Ok(tls) => NetError::Tls(*tls),
                Err(other) => NetError::Io(io::Error::other(other)),
            };
        }
        return NetError::Io(io::Error::other("TLS error"));
    }
    NetError::Io(e)
}

/// The session id of a finished handshake from the recorded client-to-server bytes.
fn derive(
    recorded: &[u8],
    conn: &CommonState,
    log: &HandshakeSecretLog,
) -> Result<Vec<u8>, NetError> {
    let suite = conn
        .negotiated_cipher_suite()
        .ok_or(SessionIdError::UnsupportedSuite)?
        .suite();
    let logged = log.take().ok_or(SessionIdError::NoSecret)?;
    Ok(client_finished_from_records(
        recorded,
        suite,
        &logged.client_random,
        &logged.secret,
    )?)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SmpTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SmpTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
