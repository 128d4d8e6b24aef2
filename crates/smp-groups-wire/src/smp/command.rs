//! Commands an SMP client sends to a relay: an ASCII tag, then (for commands
//! with fields) one space and the fields with no separators.
//!
//! ```text
//! NEW  SP rcvAuthKey rcvDhKey auth subMode [sndSecure | queueReq] [ntfCreds]
//! SUB | GET | OFF | DEL | PING
//! KEY  SP sndAuthKey        SKEY SP sndAuthKey (v>=9)
//! ACK  SP short(msgId)      SEND SP flags SP body
//! ```

use super::keys::AuthPublicKey;
use super::version::{SmpEncode, Version, limits};
use crate::{Decode, DecodeWith, Encode, Error, Reader, ShortBytes};

use super::new_queue::NewQueue;

/// Splits `bytes` into the tag (up to the first space) and the parameters (from
/// that space on, or empty).
pub(crate) fn split_tag(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b' ') {
        Some(i) => bytes.split_at(i),
        None => (bytes, &[]),
    }
}

/// Reads one space.
pub(crate) fn space(r: &mut Reader<'_>, what: &'static str) -> Result<(), Error> {
    r.literal(b" ", what)
}

/// Reads a word: the bytes up to the next space or the end (not consuming the space).
pub(crate) fn word<'a>(r: &mut Reader<'a>) -> &'a [u8] {
    let rest = r.peek_rest();
    let n = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    // n <= left, so this cannot fail
    r.take(n, "word").unwrap_or_default()
}

/// Message flags (`MsgFlags`): one Bool, `notification`. Decoding skips any
/// further flag bytes up to the next space (room for extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgFlags {
    /// Whether the recipient's notification server should be told.
    pub notification: bool,
}

impl Encode for MsgFlags {
    fn encode(&self, out: &mut Vec<u8>) {
        self.notification.encode(out);
    }
}

impl<'a> Decode<'a> for MsgFlags {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let notification = r.bool("message flags")?;
        let _extension = word(r);
        Ok(Self { notification })
    }
}

/// Commands of the queue recipient (and `NEW`, sent by the queue's creator).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientCommand {
    /// Create a queue.
    New(Box<NewQueue>),
    /// Subscribe to the queue.
    Sub,
    /// Secure the queue with the sender's key.
    Key(AuthPublicKey),
    /// Get one message without subscribing.
    Get,
    /// Acknowledge the delivered message with this id.
    Ack(ShortBytes),
    /// Suspend the queue.
    Off,
    /// Delete the queue.
    Del,
}

/// Commands of the queue sender.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderCommand {
    /// The sender secures the queue with its own key (v>=9).
    SKey(AuthPublicKey),
    /// Send a message.
    Send {
        /// Flags.
        flags: MsgFlags,
        /// The body (a `ClientMsgEnvelope`), at most
        /// [`limits::max_message_length`] bytes.
        body: Vec<u8>,
    },
}

/// Any command a client sends to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// A recipient command (or `NEW`).
    Recipient(RecipientCommand),
    /// A sender command.
    Sender(SenderCommand),
    /// `PING`, answered with `PONG`.
    Ping,
}

impl Command {
    /// The ASCII tag.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Recipient(c) => match c {
                RecipientCommand::New(_) => "NEW",
                RecipientCommand::Sub => "SUB",
                RecipientCommand::Key(_) => "KEY",
                RecipientCommand::Get => "GET",
                RecipientCommand::Ack(_) => "ACK",
                RecipientCommand::Off => "OFF",
                RecipientCommand::Del => "DEL",
            },
            Self::Sender(SenderCommand::SKey(_)) => "SKEY",
            Self::Sender(SenderCommand::Send { .. }) => "SEND",
            Self::Ping => "PING",
        }
    }
}

impl SmpEncode for Command {
    fn smp_encode(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        v.check_supported("SMP command")?;
        out.extend_from_slice(self.tag().as_bytes());
        match self {
            Self::Recipient(RecipientCommand::New(n)) => {
                out.push(b' ');
                n.smp_encode(v, out)?;
            }
            Self::Recipient(RecipientCommand::Key(k)) => {
                out.push(b' ');
                k.encode(out);
            }
            Self::Sender(SenderCommand::SKey(k)) => {
                if v < Version::SND_AUTH_KEY {
                    return Err(v.error("SKEY"));
                }
                out.push(b' ');
                k.encode(out);
            }
            Self::Recipient(RecipientCommand::Ack(id)) => {
                out.push(b' ');
                id.encode(out);
            }
            Self::Sender(SenderCommand::Send { flags, body }) => {
                let max = limits::max_message_length(v);
                if body.len() > max {
                    return Err(Error::TooLong {
                        what: "SEND body",
                        len: body.len(),
                        max,
                    });
                }
                out.push(b' ');
                flags.encode(out);
                out.push(b' ');
                out.extend_from_slice(body);
            }
            Self::Recipient(
                RecipientCommand::Sub
                | RecipientCommand::Get
                | RecipientCommand::Off
                | RecipientCommand::Del,
            )
            | Self::Ping => {}
        }
        Ok(())
    }
}

/// A command, the rest of the input, at version `v`.
impl<'a> DecodeWith<'a, Version> for Command {
    fn decode_with(input: &mut Reader<'a>, v: Version) -> Result<Self, Error> {
        v.check_supported("SMP command")?;
        let (tag, params) = split_tag(input.rest());
        let mut r = Reader::new(params);
        let cmd = match tag {
            b"NEW" => {
                space(&mut r, "NEW")?;
                Self::Recipient(RecipientCommand::New(Box::new(NewQueue::decode_with(
                    &mut r, v,
                )?)))
            }
            b"SUB" => Self::Recipient(RecipientCommand::Sub),
            b"KEY" => {
                space(&mut r, "KEY")?;
                Self::Recipient(RecipientCommand::Key(AuthPublicKey::decode(&mut r)?))
            }
            b"GET" => Self::Recipient(RecipientCommand::Get),
            b"ACK" => {
                space(&mut r, "ACK")?;
                Self::Recipient(RecipientCommand::Ack(ShortBytes::decode(&mut r)?))
            }
            b"OFF" => Self::Recipient(RecipientCommand::Off),
            b"DEL" => Self::Recipient(RecipientCommand::Del),
            b"SKEY" => {
                if v < Version::SND_AUTH_KEY {
                    return Err(v.error("SKEY"));
                }
                space(&mut r, "SKEY")?;
                Self::Sender(SenderCommand::SKey(AuthPublicKey::decode(&mut r)?))
            }
            b"SEND" => {
                space(&mut r, "SEND")?;
                let flags = MsgFlags::decode(&mut r)?;
                space(&mut r, "SEND body")?;
                let body = r.rest();
                let max = limits::max_message_length(v);
                if body.len() > max {
                    return Err(Error::TooLong {
                        what: "SEND body",
                        len: body.len(),
                        max,
                    });
                }
                Self::Sender(SenderCommand::Send {
                    flags,
                    body: body.to_vec(),
                })
            }
            b"PING" => Self::Ping,
            other => return Err(Error::unknown_tag("SMP command", other)),
        };
        r.expect_end("SMP command")?;
        Ok(cmd)
    }
}
