//! The metadata of a received message in `MSG`, after the reference agent's
//! `MsgMeta`: its integrity in the sender's chain, and the id and time each of
//! the recipient, the relay and the sender gave it.
//!
//! ```text
//! msgMeta    = integrity SP rcvMeta SP relayMeta SP sndMeta
//! integrity  = "ok" / "history" / "err" SP msgError
//! msgError   = "skipped" SP id SP id / "bad_hash"
//! rcvMeta    = "R=" id "," time                ; our id (for ACK), when we received it
//! relayMeta  = "B=" relayMsgId "," time         ; the relay's id and timestamp
//! sndMeta    = "S=" id "," time                 ; the sender's id and timestamp
//! relayMsgId = *340b64url                       ; base64url, no padding, <= 255 bytes
//! time       = id                               ; milliseconds since the Unix epoch
//! ```

use super::error::LineError;
use super::token::Cursor;
use super::writer::LineWriter;

/// The longest relay message id `MSG` carries, in bytes (an SMP relay's ids
/// are 24 bytes; its encoding allows 255).
pub const MAX_RELAY_MSG_ID_LEN: usize = 255;

/// The integrity of a received message in its sender's chain (the reference's
/// `MsgIntegrity`). Messages the agent drops (a duplicate, an id lower than
/// one already received, different content under an id already received)
/// never reach the client, so only the kinds of a delivered message are here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MsgIntegrity {
    /// `ok`: the next message of the chain, and (pairwise) the previous
    /// message's hash matches.
    Ok,
    /// `err skipped from to`: the sender's messages `from..=to` had not
    /// arrived when this one did (reference `NO_ID`).
    Skipped {
        /// The first missing id.
        from: u64,
        /// The last missing id.
        to: u64,
    },
    /// `err bad_hash`: the hash of the previous message this one names is not
    /// the hash of the previous message we received: the sender's history on
    /// the connection differs from ours (reference `HASH`).
    BadHash,
    /// `history`: a group message sent before we joined, handed to us by the
    /// member that added us with its original sender's signature (checked);
    /// outside every chain, and needing no `ACK` (its `R=` id is 0).
    History,
}

impl MsgIntegrity {
    /// The number of tokens of the text form whose first token is `first`
    /// and second `second` (for a malformed form, what the parser reads
    /// before it fails).
    pub(crate) fn token_count(first: &[u8], second: &[u8]) -> usize {
        match (first, second) {
            (b"err", b"skipped") => 4,
            (b"err", _) => 2,
            _ => 1,
        }
    }

    fn write<'o, 'p>(self, w: LineWriter<'o, 'p>) -> LineWriter<'o, 'p> {
        match self {
            Self::Ok => w.word("ok"),
            Self::Skipped { from, to } => w.word("err").word("skipped").number(from).number(to),
            Self::BadHash => w.word("err").word("bad_hash"),
            Self::History => w.word("history"),
        }
    }

    fn parse(c: &mut Cursor<'_>) -> Result<Self, LineError> {
        match c.required("integrity")? {
            b"ok" => Ok(Self::Ok),
            b"history" => Ok(Self::History),
            b"err" => match c.required("integrity error")? {
                b"skipped" => {
                    let from = c.number("first skipped id")?;
                    let to = c.number("last skipped id")?;
                    if from == 0 || from > to {
                        return Err(LineError::syntax("skipped ids must be a range from 1 up"));
                    }
                    Ok(Self::Skipped { from, to })
                }
                b"bad_hash" => Ok(Self::BadHash),
                _ => Err(LineError::syntax(
                    "integrity error must be skipped or bad_hash",
                )),
            },
            _ => Err(LineError::syntax("integrity must be ok, history or err")),
        }
    }
}

/// The metadata of a received message (the reference's `MsgMeta`), but for
/// our id of it, which the event carries for `ACK` and which is written in
/// `R=` with the time we received it. Times are milliseconds since the Unix
/// epoch, each by the clock of whoever gave it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MsgMeta {
    /// The message's integrity in the sender's chain.
    pub integrity: MsgIntegrity,
    /// When this agent received it (`R=id,time`).
    pub rcv_ts: u64,
    /// The relay's id of the message (`B=id,time`; of its last fragment for
    /// a message sent in fragments); at most [`MAX_RELAY_MSG_ID_LEN`] bytes.
    pub relay_msg_id: Vec<u8>,
    /// The relay's timestamp of the message (SMP relays stamp whole seconds).
    pub relay_ts: u64,
    /// The sender's id of the message (`S=id,time`): on a connection, the
    /// sequential id of the agent message that carried it (every agent
    /// message counts, so ids increase with gaps); in a group, its group-wide
    /// id (`extMsgId`), the id `VIOLATION` names.
    pub snd_msg_id: u64,
    /// The sender's clock when its client sent the message.
    pub snd_ts: u64,
}

impl MsgMeta {
    /// The number of tokens of the text form at the start of `args`.
    pub(crate) fn token_count(args: &[u8]) -> usize {
        let mut c = Cursor::new(args, None);
        let first = c.token();
        let second = c.token();
        MsgIntegrity::token_count(first, second) + 3
    }

    /// Appends `SP msgMeta`, with `msg_id` as our id.
    pub(crate) fn write<'o, 'p>(&self, msg_id: u64, w: LineWriter<'o, 'p>) -> LineWriter<'o, 'p> {
        let relay_id = crate::base64url::encode_unpadded(&self.relay_msg_id);
        self.integrity
            .write(w)
            .word(&format!("R={msg_id},{}", self.rcv_ts))
            .word(&format!("B={relay_id},{}", self.relay_ts))
            .word(&format!("S={},{}", self.snd_msg_id, self.snd_ts))
    }

    /// Reads `msgMeta`: our id of the message and the rest.
    pub(crate) fn parse(c: &mut Cursor<'_>) -> Result<(u64, Self), LineError> {
        let integrity = MsgIntegrity::parse(c)?;
        let (msg_id, rcv_ts) = pair(c.required("recipient metadata")?, b"R=", "recipient")?;
        let (relay_id, relay_ts) = split(c.required("relay metadata")?, b"B=", "relay")?;
        let relay_ts = decimal(relay_ts, "relay timestamp")?;
        let relay_msg_id = std::str::from_utf8(relay_id)
            .map_err(|_| LineError::syntax("relay message id must be base64url"))
            .and_then(|t| {
                crate::base64url::decode_unpadded(t, "relay message id").map_err(LineError::from)
            })?;
        if relay_msg_id.len() > MAX_RELAY_MSG_ID_LEN {
            return Err(LineError::syntax("relay message id too long"));
        }
        let (snd_msg_id, snd_ts) = pair(c.required("sender metadata")?, b"S=", "sender")?;
        Ok((
            msg_id,
            Self {
                integrity,
                rcv_ts,
                relay_msg_id,
                relay_ts,
                snd_msg_id,
                snd_ts,
            },
        ))
    }
}

/// `prefix a "," b` as its two parts.
fn split<'a>(
    token: &'a [u8],
    prefix: &[u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), LineError> {
    let bad = || LineError::syntax(format!("{what} metadata must be {}id,time", show(prefix)));
    let body = token.strip_prefix(prefix).ok_or_else(bad)?;
    let comma = body.iter().position(|&b| b == b',').ok_or_else(bad)?;
    let (a, b) = body.split_at(comma);
    Ok((a, b.get(1..).unwrap_or(&[])))
}

/// `prefix id "," time` as two numbers.
fn pair(token: &[u8], prefix: &[u8], what: &'static str) -> Result<(u64, u64), LineError> {
    let (a, b) = split(token, prefix, what)?;
    Ok((decimal(a, "message id")?, decimal(b, "timestamp")?))
}

fn decimal(t: &[u8], what: &'static str) -> Result<u64, LineError> {
    if t.is_empty() {
        return Err(LineError::syntax(format!("empty {what}")));
    }
    crate::agent::parse_decimal(t, what).map_err(LineError::from)
}

fn show(prefix: &[u8]) -> String {
    String::from_utf8_lossy(prefix).into_owned()
}
