//! Message layers inside `SEND` and `MSG`.
//!
//! ```text
//! clientMsgEnvelope = clientVersion:Word16 maybe(x25519 DER key) nonce:24 encBody   ; encBody is the rest
//! clientMessage     = ("_" / "K" short(authKey DER)) body                            ; body is the rest
//! rcvMsgBody        = timestamp:Int64 flags SP body / "QUOTA" SP timestamp:Int64
//! ```
//!
//! `encBody` is crypto_box(pad(clientMessage, 16000 or 15904)); the relay
//! encrypts `rcvMsgBody` padded to 16106 for the recipient.

use super::command::{MsgFlags, space};
use super::keys::{AuthPublicKey, X25519PublicKey};
use super::version::{Version, limits};
use crate::{Decode, Encode, Error, Reader};

/// The sender's message envelope (the `SEND` body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsgEnvelope {
    /// SMP client version of the sender (1..=4 in the reference).
    pub client_version: Version,
    /// The sender's per-queue DH key, sent in the clear with the confirmation.
    pub e2e_key: Option<X25519PublicKey>,
    /// The crypto_box nonce.
    pub nonce: [u8; limits::NONCE_SIZE],
    /// The encrypted, padded [`ClientMessage`].
    pub enc_body: Vec<u8>,
}

impl Encode for ClientMsgEnvelope {
    fn encode(&self, out: &mut Vec<u8>) {
        self.client_version.encode(out);
        self.e2e_key.encode(out);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.enc_body);
    }
}

impl<'a> Decode<'a> for ClientMsgEnvelope {
    /// Reads the envelope; the encrypted body takes the rest of the input.
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let client_version = Version::decode(r)?;
        let e2e_key = Option::<X25519PublicKey>::decode(r)?;
        let nonce = r.array("nonce")?;
        let enc_body = r.rest().to_vec();
        Ok(Self {
            client_version,
            e2e_key,
            nonce,
            enc_body,
        })
    }
}

/// The private header of a [`ClientMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivHeader {
    /// `K`: the confirmation, carrying the sender's authorization key.
    Confirmation(AuthPublicKey),
    /// `_`: no header.
    Empty,
}

/// The decrypted sender message: private header and body (an agent envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// The header.
    pub header: PrivHeader,
    /// The body (the rest).
    pub body: Vec<u8>,
}

impl Encode for ClientMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        match &self.header {
            PrivHeader::Confirmation(k) => {
                out.push(b'K');
                k.encode(out);
            }
            PrivHeader::Empty => out.push(b'_'),
        }
        out.extend_from_slice(&self.body);
    }
}

impl<'a> Decode<'a> for ClientMessage {
    /// Reads the message; the body takes the rest of the input.
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let header = match r.u8("private header")? {
            b'K' => PrivHeader::Confirmation(AuthPublicKey::decode(r)?),
            b'_' => PrivHeader::Empty,
            t => return Err(Error::unknown_tag("private header", &[t])),
        };
        Ok(Self {
            header,
            body: r.rest().to_vec(),
        })
    }
}

/// What the recipient finds inside a decrypted `MSG` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcvMsgBody {
    /// A message.
    Message {
        /// Relay timestamp, seconds since the epoch.
        timestamp: i64,
        /// Flags the sender set.
        flags: MsgFlags,
        /// The sender's body (a [`ClientMsgEnvelope`]).
        body: Vec<u8>,
    },
    /// The queue quota was reached at `timestamp`.
    Quota {
        /// Relay timestamp, seconds since the epoch.
        timestamp: i64,
    },
}

const QUOTA_TAG: &[u8] = b"QUOTA";

impl RcvMsgBody {
    /// Encodes; fails when the body is longer than
    /// [`limits::MAX_MESSAGE_LENGTH_V6`] (the reference `MaxMessageLen`).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        match self {
            Self::Message {
                timestamp,
                flags,
                body,
            } => {
                if body.len() > limits::MAX_MESSAGE_LENGTH_V6 {
                    return Err(Error::TooLong {
                        what: "message body",
                        len: body.len(),
                        max: limits::MAX_MESSAGE_LENGTH_V6,
                    });
                }
                timestamp.encode(&mut out);
                flags.encode(&mut out);
                out.push(b' ');
                out.extend_from_slice(body);
            }
            Self::Quota { timestamp } => {
                out.extend_from_slice(QUOTA_TAG);
                out.push(b' ');
                timestamp.encode(&mut out);
            }
        }
        Ok(out)
    }
}

/// A whole (unpadded) body: the rest of the input.
impl<'a> Decode<'a> for RcvMsgBody {
    fn decode(input: &mut Reader<'a>) -> Result<Self, Error> {
        let bytes = input.rest();
        if let Some(rest) = bytes.strip_prefix(QUOTA_TAG) {
            let mut r = Reader::new(rest);
            if let Ok(timestamp) = space(&mut r, "QUOTA").and_then(|()| r.i64("timestamp")) {
                r.expect_end("QUOTA")?;
                return Ok(Self::Quota { timestamp });
            }
        }
        let mut r = Reader::new(bytes);
        let timestamp = r.i64("timestamp")?;
        let flags = MsgFlags::decode(&mut r)?;
        space(&mut r, "message body")?;
        let body = r.rest();
        if body.len() > limits::MAX_MESSAGE_LENGTH_V6 {
            return Err(Error::TooLong {
                what: "message body",
                len: body.len(),
                max: limits::MAX_MESSAGE_LENGTH_V6,
            });
        }
        Ok(Self::Message {
            timestamp,
            flags,
            body: body.to_vec(),
        })
    }
}
