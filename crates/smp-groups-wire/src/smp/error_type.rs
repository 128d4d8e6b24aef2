//! The `ERR` codes of SMP (reference `ErrorType` and its nested types).
//!
//! ```text
//! errorType = "BLOCK" / "SESSION" / "CMD" SP cmdError / "PROXY" SP proxyError
//!           / "AUTH" / "BLOCKED" SP blockingInfo / "SERVICE" / "CRYPTO" / "QUOTA"
//!           / "STORE" SP text / "NO_MSG" / "LARGE_MSG" / "EXPIRED" / "INTERNAL"
//!           / "DUPLICATE_"
//! cmdError  = "UNKNOWN" / "SYNTAX" / "PROHIBITED" / "NO_AUTH" / "HAS_AUTH" / "NO_ENTITY"
//!             ; "NO_QUEUE" is read as NO_ENTITY
//! proxyError = "PROTOCOL" SP errorType / "BROKER" SP brokerError / "BASIC_AUTH" / "NO_SESSION"
//! brokerError = "RESPONSE" SP short(text) / "UNEXPECTED" SP short(text)
//!             / "TRANSPORT" SP transportError / "NETWORK" [SP networkError] / "TIMEOUT"
//!             / "HOST" / "NO_SERVICE"
//! transportError = "BLOCK" / "VERSION" / "LARGE_MSG" / "SESSION" / "NO_AUTH"
//!                / "HANDSHAKE" SP ("PARSE" / "IDENTITY" / "BAD_AUTH" / "BAD_SERVICE")
//! blockingInfo = "reason=" ("spam" / "content") ["," "notice=" json]   ; notice: v>=18
//! ```
//!
//! Every code is at the end of its transmission, so text fields run to the end.

use super::command::{space, word};
use super::version::{Version, limits::MAX_ERROR_NESTING};
use crate::{Decode, DecodeWith, Encode, Error, Reader, ShortBytes};

/// An SMP error code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorType {
    /// Bad block format, encoding or signature size.
    Block,
    /// Wrong session id.
    Session,
    /// Unknown command or bad syntax or credentials.
    Cmd(CommandError),
    /// An error from (or about) a proxied relay.
    Proxy(Box<ProxyError>),
    /// Authorization failed, or no such queue.
    Auth,
    /// The entity is blocked (v>=12).
    Blocked(BlockingInfo),
    /// Service signature not allowed.
    Service,
    /// Encryption error in the proxy protocol.
    Crypto,
    /// Queue capacity exceeded.
    Quota,
    /// Relay storage error, with text.
    Store(String),
    /// `ACK` with no message to acknowledge.
    NoMsg,
    /// Message too large.
    LargeMsg,
    /// Relay key expired.
    Expired,
    /// Internal relay error.
    Internal,
    /// Used inside the reference; never sent by relays.
    Duplicate,
}

/// `CMD` subcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// Unknown command.
    Unknown,
    /// Syntax error.
    Syntax,
    /// Not allowed.
    Prohibited,
    /// Missing credentials (authorization or entity).
    NoAuth,
    /// Credentials present that are not allowed.
    HasAuth,
    /// Missing entity id.
    NoEntity,
}

/// `PROXY` subcodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The destination relay answered `ERR`.
    Protocol(ErrorType),
    /// Error reaching the destination relay.
    Broker(BrokerError),
    /// Bad basic auth for the proxy.
    BasicAuth,
    /// No session with the destination.
    NoSession,
}

/// `PROXY BROKER` subcodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerError {
    /// Unparsable response (text).
    Response(ShortBytes),
    /// Unexpected response (text).
    Unexpected(ShortBytes),
    /// Transport error.
    Transport(TransportError),
    /// Network error (its detail is read and dropped, as the reference does).
    Network,
    /// Timeout.
    Timeout,
    /// No compatible host.
    Host,
    /// Service unavailable.
    NoService,
}

/// Transport errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// `BLOCK`.
    Block,
    /// `VERSION`.
    Version,
    /// `LARGE_MSG`.
    LargeMsg,
    /// `SESSION`.
    Session,
    /// `NO_AUTH`.
    NoAuth,
    /// `HANDSHAKE`.
    Handshake(HandshakeError),
}

/// Handshake errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// `PARSE`.
    Parse,
    /// `IDENTITY`.
    Identity,
    /// `BAD_AUTH`.
    BadAuth,
    /// `BAD_SERVICE`.
    BadService,
}

/// Why an entity is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingReason {
    /// `spam`.
    Spam,
    /// `content`.
    Content,
}

/// `BLOCKED` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingInfo {
    /// The reason.
    pub reason: BlockingReason,
    /// The client notice as JSON text (v>=18), kept as sent.
    pub notice: Option<String>,
}

/// A code that runs to the end of the input, at version `v`.
impl<'a> DecodeWith<'a, Version> for ErrorType {
    fn decode_with(r: &mut Reader<'a>, v: Version) -> Result<Self, Error> {
        Self::decode_nested(v, r, 0)
    }
}

impl ErrorType {
    /// Appends the code; fails with [`Error::Version`] for `BLOCKED` before v12
    /// and for a notice before v18 (the reference substitutes `AUTH`, or drops the
    /// notice, in those cases).
    pub fn encode_at(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        let s: &[u8] = match self {
            Self::Block => b"BLOCK",
            Self::Session => b"SESSION",
            Self::Cmd(e) => {
                out.extend_from_slice(b"CMD ");
                e.encode(out);
                return Ok(());
            }
            Self::Proxy(e) => {
                out.extend_from_slice(b"PROXY ");
                return e.encode_at(v, out);
            }
            Self::Auth => b"AUTH",
            Self::Blocked(info) => {
                if v < Version::BLOCKED_ENTITY {
                    return Err(v.error("BLOCKED error"));
                }
                if info.notice.is_some() && v < Version::CLIENT_NOTICES {
                    return Err(v.error("BLOCKED notice"));
                }
                out.extend_from_slice(b"BLOCKED reason=");
                out.extend_from_slice(match info.reason {
                    BlockingReason::Spam => b"spam",
                    BlockingReason::Content => b"content",
                });
                if let Some(n) = &info.notice {
                    out.extend_from_slice(b",notice=");
                    out.extend_from_slice(n.as_bytes());
                }
                return Ok(());
            }
            Self::Service => b"SERVICE",
            Self::Crypto => b"CRYPTO",
            Self::Quota => b"QUOTA",
            Self::Store(t) => {
                out.extend_from_slice(b"STORE ");
                out.extend_from_slice(t.as_bytes());
                return Ok(());
            }
            Self::NoMsg => b"NO_MSG",
            Self::LargeMsg => b"LARGE_MSG",
            Self::Expired => b"EXPIRED",
            Self::Internal => b"INTERNAL",
            Self::Duplicate => b"DUPLICATE_",
        };
        out.extend_from_slice(s);
        Ok(())
    }

    fn decode_nested(v: Version, r: &mut Reader<'_>, depth: usize) -> Result<Self, Error> {
        let e = match word(r) {
            b"BLOCK" => Self::Block,
            b"SESSION" => Self::Session,
            b"CMD" => {
                space(r, "CMD error")?;
                Self::Cmd(CommandError::decode(r)?)
            }
            b"PROXY" => {
                if depth >= MAX_ERROR_NESTING {
                    return Err(Error::TooLong {
                        what: "PROXY error nesting",
                        len: depth + 1,
                        max: MAX_ERROR_NESTING,
                    });
                }
                space(r, "PROXY error")?;
                Self::Proxy(Box::new(ProxyError::decode_nested(v, r, depth + 1)?))
            }
            b"AUTH" => Self::Auth,
            b"BLOCKED" => {
                if v < Version::BLOCKED_ENTITY {
                    return Err(v.error("BLOCKED error"));
                }
                space(r, "BLOCKED info")?;
                r.literal(b"reason=", "BLOCKED info")?;
                let reason = match word_until(r, b',') {
                    b"spam" => BlockingReason::Spam,
                    b"content" => BlockingReason::Content,
                    t => return Err(Error::unknown_tag("blocking reason", t)),
                };
                let notice = if r.is_empty() {
                    None
                } else {
                    if v < Version::CLIENT_NOTICES {
                        return Err(v.error("BLOCKED notice"));
                    }
                    r.literal(b",notice=", "BLOCKED notice")?;
                    let t = r.rest();
                    if t.is_empty() {
                        return Err(Error::invalid("BLOCKED notice", "empty"));
                    }
                    Some(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| Error::invalid("BLOCKED notice", "not UTF-8"))?,
                    )
                };
                Self::Blocked(BlockingInfo { reason, notice })
            }
            b"SERVICE" => Self::Service,
            b"CRYPTO" => Self::Crypto,
            b"QUOTA" => Self::Quota,
            b"STORE" => {
                space(r, "STORE error")?;
                Self::Store(String::from_utf8_lossy(r.rest()).into_owned())
            }
            b"NO_MSG" => Self::NoMsg,
            b"LARGE_MSG" => Self::LargeMsg,
            b"EXPIRED" => Self::Expired,
            b"INTERNAL" => Self::Internal,
            b"DUPLICATE_" => Self::Duplicate,
            t => return Err(Error::unknown_tag("SMP error", t)),
        };
        r.expect_end("SMP error")?;
        Ok(e)
    }
}

fn word_until<'a>(r: &mut Reader<'a>, delim: u8) -> &'a [u8] {
    let rest = r.peek_rest();
    let n = rest.iter().position(|&b| b == delim).unwrap_or(rest.len());
    r.take(n, "word").unwrap_or_default()
}

impl Encode for CommandError {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            Self::Unknown => b"UNKNOWN",
            Self::Syntax => b"SYNTAX",
            Self::Prohibited => b"PROHIBITED",
            Self::NoAuth => b"NO_AUTH",
            Self::HasAuth => b"HAS_AUTH",
            Self::NoEntity => b"NO_ENTITY",
        });
    }
}

impl<'a> Decode<'a> for CommandError {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(match word(r) {
            b"UNKNOWN" => Self::Unknown,
            b"SYNTAX" => Self::Syntax,
            b"PROHIBITED" => Self::Prohibited,
            b"NO_AUTH" => Self::NoAuth,
            b"HAS_AUTH" => Self::HasAuth,
            b"NO_ENTITY" | b"NO_QUEUE" => Self::NoEntity,
            t => return Err(Error::unknown_tag("CMD error", t)),
        })
    }
}

impl ProxyError {
    fn encode_at(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Protocol(e) => {
                out.extend_from_slice(b"PROTOCOL ");
                return e.encode_at(v, out);
            }
            Self::Broker(e) => {
                out.extend_from_slice(b"BROKER ");
                e.encode(out);
            }
            Self::BasicAuth => out.extend_from_slice(b"BASIC_AUTH"),
            Self::NoSession => out.extend_from_slice(b"NO_SESSION"),
        }
        Ok(())
    }

    fn decode_nested(v: Version, r: &mut Reader<'_>, depth: usize) -> Result<Self, Error> {
        Ok(match word(r) {
            b"PROTOCOL" => {
                space(r, "PROXY PROTOCOL")?;
                Self::Protocol(ErrorType::decode_nested(v, r, depth)?)
            }
            b"BROKER" => {
                space(r, "PROXY BROKER")?;
                Self::Broker(BrokerError::decode(r)?)
            }
            b"BASIC_AUTH" => Self::BasicAuth,
            b"NO_SESSION" => Self::NoSession,
            t => return Err(Error::unknown_tag("PROXY error", t)),
        })
    }
}

impl Encode for BrokerError {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Response(t) => {
                out.extend_from_slice(b"RESPONSE ");
                t.encode(out);
            }
            Self::Unexpected(t) => {
                out.extend_from_slice(b"UNEXPECTED ");
                t.encode(out);
            }
            Self::Transport(e) => {
                out.extend_from_slice(b"TRANSPORT ");
                e.encode(out);
            }
            Self::Network => out.extend_from_slice(b"NETWORK"),
            Self::Timeout => out.extend_from_slice(b"TIMEOUT"),
            Self::Host => out.extend_from_slice(b"HOST"),
            Self::NoService => out.extend_from_slice(b"NO_SERVICE"),
        }
    }
}

impl<'a> Decode<'a> for BrokerError {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(match word(r) {
            b"RESPONSE" => {
                space(r, "BROKER RESPONSE")?;
                Self::Response(ShortBytes::decode(r)?)
            }
            b"UNEXPECTED" => {
                space(r, "BROKER UNEXPECTED")?;
                Self::Unexpected(ShortBytes::decode(r)?)
            }
            b"TRANSPORT" => {
                space(r, "BROKER TRANSPORT")?;
                Self::Transport(TransportError::decode(r)?)
            }
            b"NETWORK" => {
                if !r.is_empty() {
                    space(r, "BROKER NETWORK")?;
                    skip_network_error(r)?;
                }
                Self::Network
            }
            b"TIMEOUT" => Self::Timeout,
            b"HOST" => Self::Host,
            b"NO_SERVICE" => Self::NoService,
            t => return Err(Error::unknown_tag("BROKER error", t)),
        })
    }
}

/// Validates (and drops) a network error detail: `CONNECT`/`TLS`/`SUBSCRIBE`
/// with a short string, or `UNKNOWNCA`/`FAILED`/`TIMEOUT`.
fn skip_network_error(r: &mut Reader<'_>) -> Result<(), Error> {
    match word(r) {
        b"CONNECT" | b"TLS" | b"SUBSCRIBE" => {
            space(r, "network error")?;
            r.short_bytes("network error")?;
        }
        b"UNKNOWNCA" | b"FAILED" | b"TIMEOUT" => {}
        t => return Err(Error::unknown_tag("network error", t)),
    }
    Ok(())
}

impl Encode for TransportError {
    fn encode(&self, out: &mut Vec<u8>) {
        let s: &[u8] = match self {
            Self::Block => b"BLOCK",
            Self::Version => b"VERSION",
            Self::LargeMsg => b"LARGE_MSG",
            Self::Session => b"SESSION",
            Self::NoAuth => b"NO_AUTH",
            Self::Handshake(h) => {
                out.extend_from_slice(b"HANDSHAKE ");
                match h {
                    HandshakeError::Parse => b"PARSE",
                    HandshakeError::Identity => b"IDENTITY",
                    HandshakeError::BadAuth => b"BAD_AUTH",
                    HandshakeError::BadService => b"BAD_SERVICE",
                }
            }
        };
        out.extend_from_slice(s);
    }
}

impl<'a> Decode<'a> for TransportError {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(match word(r) {
            b"BLOCK" => Self::Block,
            b"VERSION" => Self::Version,
            b"LARGE_MSG" => Self::LargeMsg,
            b"SESSION" => Self::Session,
            b"NO_AUTH" => Self::NoAuth,
            b"HANDSHAKE" => {
                space(r, "HANDSHAKE error")?;
                Self::Handshake(match word(r) {
                    b"PARSE" => HandshakeError::Parse,
                    b"IDENTITY" => HandshakeError::Identity,
                    b"BAD_AUTH" => HandshakeError::BadAuth,
                    b"BAD_SERVICE" => HandshakeError::BadService,
                    t => return Err(Error::unknown_tag("handshake error", t)),
                })
            }
            t => return Err(Error::unknown_tag("transport error", t)),
        })
    }
}
