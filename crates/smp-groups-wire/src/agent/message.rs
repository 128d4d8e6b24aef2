//! Agent messages: what an agent encrypts for its peer on one connection.
//!
//! ```text
//! agentMessage = %s"I" connInfo                 ; sent once, by each side, on joining
//!              / %s"M" header aMessage
//! connInfo     = replyQueue info
//! replyQueue   = "0" / "1" Large                ; the joining side's reply queue, opaque
//! info         = Large                          ; opaque to this layer
//! header       = sndMsgId prevMsgHash
//! sndMsgId     = 8OCTET                         ; 1, 2, 3, ... per connection and direction
//! prevMsgHash  = 32OCTET                        ; digest of the previous message, zeros for the first
//! aMessage     = tag [SP fields]                ; tag: 1 to 8 of A-Z, "_"
//! ```

use super::bounded::Bounded;
use super::fragment::{DEFAULT_MAX_FRAGMENTS, Fragment};
use super::group::{Content, GroupEnvelope};
use super::ids::{Digest, read_u64};
use super::kind::EnvelopeKind;
use crate::{Decode, DecodeWith, Encode, Error, Reader};

/// The longest opaque reply-queue description in a confirmation.
pub const MAX_REPLY_QUEUE_LEN: usize = 1024;
/// The longest opaque connection information in a confirmation.
pub const MAX_CONN_INFO_LEN: usize = 8192;
/// The most receipts one `A_RCVD` carries.
pub const MAX_RECEIPTS: usize = 16;
/// The longest envelope tag.
pub const MAX_TAG_LEN: usize = 8;

/// Limits a receiver applies while decoding; [`Limits::default`] uses the
/// declared default constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most fragments one message may have.
    pub max_fragments: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_fragments: DEFAULT_MAX_FRAGMENTS,
        }
    }
}

/// The header of every message on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsgHeader {
    /// The sender's sequential id of this message on this connection.
    pub snd_msg_id: u64,
    /// The digest of the previous message the sender sent on this connection
    /// ([`Digest::ZERO`] before the first).
    pub prev_msg_hash: Digest,
}

impl MsgHeader {
    /// Encoded length: `sndMsgId` (8) and the previous message's digest (32).
    pub const LEN: usize = 8 + 32;
}

impl Encode for MsgHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.snd_msg_id.to_be_bytes());
        self.prev_msg_hash.encode(out);
    }
}

impl<'a> Decode<'a> for MsgHeader {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Self {
            snd_msg_id: read_u64(r, "sndMsgId")?,
            prev_msg_hash: Digest::decode(r)?,
        })
    }
}

/// The joining side's confirmation content (and the initiating side's reply):
/// where to reach it and what it tells about itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnInfo {
    /// The sender's reply queue, opaque here (present in the joining side's
    /// confirmation, absent in the reply).
    pub reply_queue: Option<Bounded<MAX_REPLY_QUEUE_LEN>>,
    /// Information for the peer (for group connections, an encoded
    /// [`super::MemberInfo`]).
    pub info: Bounded<MAX_CONN_INFO_LEN>,
}

/// A receipt for one message on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The sender's `sndMsgId` of the received message.
    pub msg_id: u64,
    /// The digest the receiver computed over it.
    pub digest: Digest,
}

/// The body of a message on a connection, after its header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AMessage {
    /// `HELLO`: the connection is secured, sent once by each side.
    Hello,
    /// `A_MSG`: a user message on a pairwise connection.
    UserMsg {
        /// The sender's clock when its client sent the message, in
        /// milliseconds (the agent counts from the Unix epoch).
        snd_ts: u64,
        /// The message.
        content: Content,
    },
    /// `A_RCVD`: receipts for messages received on this connection (1 to
    /// [`MAX_RECEIPTS`]).
    Receipts(Vec<Receipt>),
    /// `FRAG`: a piece of a larger message; the joined pieces are the encoding of
    /// an [`AMessage`].
    Fragment(Fragment),
    /// A group envelope.
    Group(GroupEnvelope),
}

impl AMessage {
    /// The kind of this message.
    pub fn kind(&self) -> EnvelopeKind {
        match self {
            Self::Hello => EnvelopeKind::Hello,
            Self::UserMsg { .. } => EnvelopeKind::UserMsg,
            Self::Receipts(_) => EnvelopeKind::UserReceipts,
            Self::Fragment(_) => EnvelopeKind::Fragment,
            Self::Group(g) => g.kind(),
        }
    }

    /// The ASCII tag.
    pub fn tag(&self) -> &'static [u8] {
        self.kind().tag().as_bytes()
    }

    /// A guess at the encoded size, to allocate once.
    fn size_hint(&self) -> usize {
        let payload = match self {
            Self::Hello => 0,
            Self::UserMsg { content: c, .. }
            | Self::Group(GroupEnvelope::Msg { content: c, .. }) => c.len(),
            Self::Receipts(rs) => rs.len() * 40,
            Self::Fragment(f) => f.bytes.len(),
            Self::Group(_) => 256,
        };
        32 + payload
    }
}

/// One message body, read with the receiver's limits.
impl<'a> DecodeWith<'a, Limits> for AMessage {
    fn decode_with(r: &mut Reader<'a>, limits: Limits) -> Result<Self, Error> {
        let (tag, has_fields) = read_tag(r)?;
        let Some(kind) = EnvelopeKind::from_tag(tag) else {
            return Err(Error::unknown_tag("envelope tag", tag));
        };
        let bare = kind.is_bare();
        let msg = match kind {
            EnvelopeKind::Hello => Self::Hello,
            EnvelopeKind::UserMsg => Self::UserMsg {
                snd_ts: read_u64(r, "sndTs")?,
                content: Content::read(r, "message content")?,
            },
            EnvelopeKind::UserReceipts => {
                let receipts = r.list("receipts", MAX_RECEIPTS, |r| {
                    Ok(Receipt {
                        msg_id: read_u64(r, "receipt msgId")?,
                        digest: Digest::decode(r)?,
                    })
                })?;
                if receipts.is_empty() {
                    return Err(Error::invalid(
                        "receipts",
                        "at least one receipt is required",
                    ));
                }
                Self::Receipts(receipts)
            }
            EnvelopeKind::Fragment => Self::Fragment(Fragment::decode_with(r, limits)?),
            _ => match GroupEnvelope::read_fields(kind, r) {
                Some(g) => Self::Group(g?),
                None => return Err(Error::unknown_tag("envelope tag", tag)),
            },
        };
        if bare && has_fields {
            // A bare tag followed by SP: the SP and everything after it are extra.
            return Err(Error::TrailingBytes {
                what: "envelope",
                count: r.left() + 1,
            });
        }
        if !bare && !has_fields {
            return Err(Error::Truncated {
                what: "envelope fields",
                needed: 1,
                available: 0,
            });
        }
        Ok(msg)
    }
}

/// Reads `tag [SP]`: the tag, and whether a space (and so fields) follows.
fn read_tag<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], bool), Error> {
    let rest = r.peek_rest();
    let window = rest.get(..=MAX_TAG_LEN).unwrap_or(rest);
    let (len, has_fields) = match window.iter().position(|&b| b == b' ') {
        Some(i) => (i, true),
        None if rest.len() <= MAX_TAG_LEN => (rest.len(), false),
        None => return Err(Error::unknown_tag("envelope tag", window)),
    };
    let tag = r.take(len, "envelope tag")?;
    if tag.is_empty() {
        return Err(Error::Truncated {
            what: "envelope tag",
            needed: 1,
            available: 0,
        });
    }
    if has_fields {
        r.take(1, "envelope tag separator")?;
    }
    Ok((tag, has_fields))
}

impl Encode for AMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.tag());
        match self {
            Self::Hello => {}
            Self::UserMsg { snd_ts, content } => {
                out.push(b' ');
                out.extend_from_slice(&snd_ts.to_be_bytes());
                content.encode(out);
            }
            Self::Receipts(rs) => {
                out.push(b' ');
                // At most MAX_RECEIPTS are decoded; a longer list encodes a count the
                // receiver rejects.
                out.push(u8::try_from(rs.len()).unwrap_or(u8::MAX));
                for rc in rs {
                    out.extend_from_slice(&rc.msg_id.to_be_bytes());
                    rc.digest.encode(out);
                }
            }
            Self::Fragment(f) => {
                out.push(b' ');
                f.encode(out);
            }
            Self::Group(g) => {
                if !g.kind().is_bare() {
                    out.push(b' ');
                    g.encode_fields(out);
                }
            }
        }
    }
}

/// With the default limits.
impl<'a> Decode<'a> for AMessage {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::decode_with(r, Limits::default())
    }
}

/// What an agent encrypts for its peer: connection information once, then
/// messages with a header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentMessage {
    /// `I`: connection information (inside a confirmation).
    ConnInfo(ConnInfo),
    /// `M`: a message with its header.
    Message {
        /// Sequential id and previous-message digest.
        header: MsgHeader,
        /// The message.
        body: AMessage,
    },
}

/// One agent message, read with the receiver's limits.
impl<'a> DecodeWith<'a, Limits> for AgentMessage {
    fn decode_with(r: &mut Reader<'a>, limits: Limits) -> Result<Self, Error> {
        match r.u8("agent message tag")? {
            b'I' => Ok(Self::ConnInfo(ConnInfo {
                reply_queue: r.maybe("reply queue", |r| Bounded::read(r, "reply queue"))?,
                info: Bounded::read(r, "connection info")?,
            })),
            b'M' => Ok(Self::Message {
                header: MsgHeader::decode(r)?,
                body: AMessage::decode_with(r, limits)?,
            }),
            other => Err(Error::unknown_tag("agent message tag", &[other])),
        }
    }
}

impl AgentMessage {
    /// What an `'M'` message adds to its body: the tag and the header.
    pub const MESSAGE_OVERHEAD: usize = 1 + MsgHeader::LEN;

    /// Writes an `'M'` message whose body (`AMessage`) is already encoded:
    /// the same bytes as encoding [`AgentMessage::Message`], without decoding
    /// the body again.
    pub fn encode_message(header: &MsgHeader, body: &[u8], out: &mut Vec<u8>) {
        out.reserve(Self::MESSAGE_OVERHEAD + body.len());
        out.push(b'M');
        header.encode(out);
        out.extend_from_slice(body);
    }

    /// A guess at the encoded size, to allocate once.
    fn size_hint(&self) -> usize {
        match self {
            Self::ConnInfo(ci) => {
                8 + ci.info.len() + ci.reply_queue.as_ref().map_or(0, Bounded::len)
            }
            Self::Message { body, .. } => Self::MESSAGE_OVERHEAD + body.size_hint(),
        }
    }
}

impl Encode for AgentMessage {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode(&mut out);
        out
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::ConnInfo(ci) => {
                out.push(b'I');
                ci.reply_queue.encode(out);
                ci.info.encode(out);
            }
            Self::Message { header, body } => {
                out.push(b'M');
                header.encode(out);
                body.encode(out);
            }
        }
    }
}

/// With the default limits.
impl<'a> Decode<'a> for AgentMessage {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::decode_with(r, Limits::default())
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::agent::fragment::FragmentBytes;

    #[test]
    fn message_overhead_is_what_the_encoding_adds() {
        let header = MsgHeader {
            snd_msg_id: 7,
            prev_msg_hash: Digest([3; 32]),
        };
        let body = AMessage::Hello;
        let whole = AgentMessage::Message {
            header,
            body: body.clone(),
        }
        .to_bytes();
        let body_bytes = body.to_bytes();
        let mut direct = Vec::new();
        AgentMessage::encode_message(&header, &body_bytes, &mut direct);
        assert_eq!(direct, whole);
        assert_eq!(
            whole.len(),
            AgentMessage::MESSAGE_OVERHEAD + body_bytes.len()
        );
    }

    #[test]
    fn fragment_overhead_is_what_the_encoding_adds() -> Result<(), Error> {
        for n in [0usize, 1, 300] {
            let f = Fragment {
                msg_id: 1,
                index: 0,
                count: 1,
                bytes: FragmentBytes::new(vec![9; n])?,
            };
            assert_eq!(
                AMessage::Fragment(f).to_bytes().len(),
                Fragment::OVERHEAD + n
            );
        }
        Ok(())
    }
}
