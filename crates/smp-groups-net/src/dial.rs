//! How a client obtains its byte stream to a relay: [`Dialer`]. The client
//! runs TLS and the SMP handshake over whatever stream the dialer returns, so
//! everything above the byte pipe is the same whichever dialer is used.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use smp_groups_wire::smp::ProtocolServer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::client::ClientError;

/// A byte stream to a relay: TCP, or any other pipe.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxedStream = Box<dyn ByteStream>;

/// The future of [`Dialer::dial`].
pub type DialFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BoxedStream, ClientError>> + Send + 'a>>;

/// Opens byte streams to relays. The client applies its connect timeout
/// around [`dial`](Self::dial) and the handshakes together.
pub trait Dialer: Send + Sync + fmt::Debug {
    /// A new stream to `server` (its TLS and SMP handshakes not yet run).
    fn dial<'a>(&'a self, server: &'a ProtocolServer) -> DialFuture<'a>;
}

/// TCP to the first host of the address that accepts, with `TCP_NODELAY`
/// (the default dialer).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial<'a>(&'a self, server: &'a ProtocolServer) -> DialFuture<'a> {
        Box::pin(async move {
            let port = server.port.number();
            let mut last = ClientError::Address("no host");
            for host in server.hosts() {
                match TcpStream::connect((host.as_str(), port)).await {
                    Ok(tcp) => {
                        tcp.set_nodelay(true)?;
                        return Ok(Box::new(tcp) as BoxedStream);
                    }
                    Err(e) => last = e.into(),
                }
            }
            Err(last)
        })
    }
}
