//! The errors of the SMP client.

use std::sync::Arc;

use smp_groups_wire::smp::ErrorType;

use crate::error::NetError;

/// Why a client command or connection failed.
///
/// Cloneable, so that one connection failure can be reported to every command that
/// was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay address cannot be used (no 32-byte key hash, no host).
    #[error("relay address: {0}")]
    Address(&'static str),
    /// TCP, TLS or a block read/write failed.
    #[error("transport: {0}")]
    Transport(Arc<NetError>),
    /// The TLS or SMP handshake failed.
    #[error("handshake: {0}")]
    Handshake(Arc<NetError>),
    /// Connecting took longer than the configured connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// No response arrived within the configured command timeout.
    #[error("command timed out")]
    Timeout,
    /// The relay stopped answering keep-alive pings.
    #[error("no answer to {0} keep-alive pings")]
    KeepAlive(u32),
    /// The relay answered `ERR` with this code.
    #[error("relay error: {0:?}")]
    Server(ErrorType),
    /// The relay answered with a response that does not fit the command.
    #[error("unexpected response {0} to {1}")]
    UnexpectedResponse(&'static str, &'static str),
    /// The relay sent bytes that do not decode (a bad batch, transmission or response).
    #[error("malformed data from the relay: {0}")]
    Protocol(smp_groups_wire::Error),
    /// A transmission from the relay carried another session id (before version 7).
    #[error("transmission with another session id")]
    SessionMismatch,
    /// A command could not be encoded at the agreed version.
    #[error("command encoding: {0}")]
    Encode(smp_groups_wire::Error),
    /// The encoded transmission does not fit in one block.
    #[error("transmission of {len} bytes does not fit in a block (at most {max})")]
    TooLarge {
        /// The transmission's length with its 2-byte length prefix.
        len: usize,
        /// The room in a block.
        max: usize,
    },
    /// The connection is closed (all handles dropped, or closed after an earlier error).
    #[error("connection closed")]
    Closed,
    /// The reconnecting client is between connections.
    #[error("not connected (reconnecting)")]
    NotConnected,
}

impl ClientError {
    /// Whether this error ends the connection it happened on (as opposed to failing one
    /// command).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Self::Transport(_)
                | Self::Handshake(_)
                | Self::ConnectTimeout
                | Self::KeepAlive(_)
                | Self::SessionMismatch
                | Self::Closed
                | Self::NotConnected
        )
    }
}

impl From<NetError> for ClientError {
    fn from(e: NetError) -> Self {
        Self::Transport(Arc::new(e))
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        Self::Transport(Arc::new(NetError::Io(e)))
    }
}
