//! Tokens of a client protocol line: [`CorrId`], [`Alias`], [`InvitationText`],
//! [`Entity`], numbers and payloads, and the [`Cursor`] that reads them.

use std::fmt;

use super::error::{ErrorCode, LineError};
use crate::agent::MAX_CONTENT_LEN;

/// The longest corrId.
pub const MAX_CORR_ID_LEN: usize = 32;
/// The longest alias of a connection, group or invitation.
pub const MAX_ALIAS_LEN: usize = 64;
/// The longest connection invitation text.
pub const MAX_INVITATION_TEXT_LEN: usize = 4096;
/// The longest payload sent inline (`:text`) by the encoder; longer payloads, and
/// payloads with CR or LF, are sent in the length-prefixed form.
pub const MAX_INLINE_PAYLOAD: usize = 1024;
/// The longest payload (message body, group information) by default.
pub const DEFAULT_MAX_PAYLOAD: usize = MAX_CONTENT_LEN;
/// The longest `ERR` detail.
pub const MAX_DETAIL_LEN: usize = 1024;

fn graphic(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_graphic)
}

macro_rules! text_token {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The shortest allowed.
            pub const MIN: usize = $min;
            /// The longest allowed.
            pub const MAX: usize = $max;

            /// Checks and wraps `text`: printable ASCII without spaces, of
            /// [`Self::MIN`] to [`Self::MAX`] bytes.
            pub fn new(text: impl AsRef<[u8]>) -> Result<Self, LineError> {
                let text = text.as_ref();
                if text.len() > $max {
                    return Err(LineError::new(
                        ErrorCode::Large,
                        format!("{} longer than {} bytes", $what, $max),
                    ));
                }
                if text.len().checked_sub($min).is_none() || !graphic(text) {
                    return Err(LineError::syntax(format!(
                        "{} must be {} to {} printable ASCII characters without spaces",
                        $what, $min, $max
                    )));
                }
                Ok(Self(String::from_utf8_lossy(text).into_owned()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = LineError;
            fn from_str(s: &str) -> Result<Self, LineError> {
                Self::new(s)
            }
        }
    };
}

text_token!(
    /// The correlation id a client puts on a command and the agent echoes on the
    /// response; empty on events the agent sends on its own.
    CorrId,
    0,
    MAX_CORR_ID_LEN,
    "corrId"
);

text_token!(
    /// A client-side alias of a connection (`C:alias`), group (`G:alias`) or received
    /// group invitation (`g:alias`). Local to one agent; never travels.
    Alias,
    1,
    MAX_ALIAS_LEN,
    "alias"
);

text_token!(
    /// A connection invitation in text form (as `INV` returns it and `JOIN` takes it).
    InvitationText,
    1,
    MAX_INVITATION_TEXT_LEN,
    "invitation"
);

impl CorrId {
    /// The empty corrId of events.
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// True for the empty corrId.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a transmission is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    /// No entity (an empty token), as in errors about lines whose entity could not be read.
    None,
    /// `C:alias`, or `C:` for "the agent picks the alias".
    Conn(Option<Alias>),
    /// `G:alias`, or `G:` for "the agent picks the alias".
    Group(Option<Alias>),
    /// `g:alias`: a received group invitation.
    Invitation(Alias),
}

/// The kind of an [`Entity`], which selects the meaning of a command word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// No entity.
    None,
    /// A connection.
    Conn,
    /// A group.
    Group,
    /// A received group invitation.
    Invitation,
}

impl Entity {
    /// The kind.
    pub fn kind(&self) -> EntityKind {
        match self {
            Self::None => EntityKind::None,
            Self::Conn(_) => EntityKind::Conn,
            Self::Group(_) => EntityKind::Group,
            Self::Invitation(_) => EntityKind::Invitation,
        }
    }

    /// Parses an entity token.
    pub fn parse(token: &[u8]) -> Result<Self, LineError> {
        let opt = |rest: &[u8]| -> Result<Option<Alias>, LineError> {
            if rest.is_empty() {
                Ok(None)
            } else {
                Alias::new(rest).map(Some)
            }
        };
        match token {
            [] => Ok(Self::None),
            [b'C', b':', rest @ ..] => opt(rest).map(Self::Conn),
            [b'G', b':', rest @ ..] => opt(rest).map(Self::Group),
            [b'g', b':', rest @ ..] => Alias::new(rest).map(Self::Invitation),
            _ => Err(LineError::syntax(
                "entity must be C:alias, G:alias or g:alias",
            )),
        }
    }

    /// Appends the token.
    pub fn write(&self, out: &mut Vec<u8>) {
        let (prefix, alias) = match self {
            Self::None => return,
            Self::Conn(a) => ("C:", a.as_ref()),
            Self::Group(a) => ("G:", a.as_ref()),
            Self::Invitation(a) => ("g:", Some(a)),
        };
        out.extend_from_slice(prefix.as_bytes());
        if let Some(a) = alias {
            out.extend_from_slice(a.as_str().as_bytes());
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Reads the tokens of one line (without its CRLF), left to right.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rest: &'a [u8],
    block: Option<&'a [u8]>,
}

impl<'a> Cursor<'a> {
    /// A cursor over `line`, with the length-prefixed `block` that followed it, if any.
    pub fn new(line: &'a [u8], block: Option<&'a [u8]>) -> Self {
        Self { rest: line, block }
    }

    /// True when the line is used up.
    pub fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next token, up to a space (consumed) or the end of the line. May be empty.
    pub fn token(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|&b| b == b' ') {
            Some(i) => {
                let (t, r) = self.rest.split_at(i);
                self.rest = r.get(1..).unwrap_or(&[]);
                t
            }
            None => std::mem::take(&mut self.rest),
        }
    }

    /// The next token, which must be present and non-empty.
    pub fn required(&mut self, what: &str) -> Result<&'a [u8], LineError> {
        if self.rest.is_empty() {
            return Err(LineError::syntax(format!("missing {what}")));
        }
        let t = self.token();
        if t.is_empty() {
            return Err(LineError::syntax(format!("empty {what}")));
        }
        Ok(t)
    }

    /// The next token as a canonical decimal u64.
    pub fn number(&mut self, what: &'static str) -> Result<u64, LineError> {
        let t = self.required(what)?;
        crate::agent::parse_decimal(t, what).map_err(LineError::from)
    }

    /// The next token as `C:alias`.
    pub fn conn(&mut self) -> Result<Alias, LineError> {
        match Entity::parse(self.required("connection")?)? {
            Entity::Conn(Some(a)) => Ok(a),
            _ => Err(LineError::syntax("expected C:alias")),
        }
    }

    /// The next token as `C:alias` if any is left, else `None`.
    pub fn opt_conn(&mut self) -> Result<Option<Alias>, LineError> {
        if self.at_end() {
            Ok(None)
        } else {
            self.conn().map(Some)
        }
    }

    /// The next token as `G:alias`.
    pub fn group(&mut self) -> Result<Alias, LineError> {
        match Entity::parse(self.required("group")?)? {
            Entity::Group(Some(a)) => Ok(a),
            _ => Err(LineError::syntax("expected G:alias")),
        }
    }

    /// The next token as `g:alias`.
    pub fn invitation(&mut self) -> Result<Alias, LineError> {
        match Entity::parse(self.required("invitation")?)? {
            Entity::Invitation(a) => Ok(a),
            _ => Err(LineError::syntax("expected g:alias")),
        }
    }

    /// The payload: `:text` to the end of the line, or a decimal length that must
    /// equal the length of the block that followed the line.
    pub fn payload(&mut self) -> Result<Vec<u8>, LineError> {
        let rest = std::mem::take(&mut self.rest);
        match rest {
            [b':', text @ ..] => {
                if self.block.is_some() {
                    return Err(LineError::syntax(
                        "inline payload with a length-prefixed block",
                    ));
                }
                Ok(text.to_vec())
            }
            [] => Err(LineError::syntax("missing payload")),
            digits => {
                let len = crate::agent::parse_decimal(digits, "payload length")
                    .map_err(|_| LineError::syntax("payload must be :text or a decimal length"))?;
                match self.block.take() {
                    Some(b) if u64::try_from(b.len()) == Ok(len) => Ok(b.to_vec()),
                    _ => Err(LineError::syntax("payload length does not match the block")),
                }
            }
        }
    }

    /// Everything left on the line (possibly empty).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Fails unless the line is used up.
    pub fn end(&self) -> Result<(), LineError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(LineError::syntax(format!(
                "unexpected {} trailing bytes",
                self.rest.len()
            )))
        }
    }
}

/// Appends a payload: `:text` when it is short and has no CR or LF, else
/// `<length> CRLF`; the bytes of the length form are returned to be written after
/// the line's CRLF.
pub(crate) fn write_payload<'p>(payload: &'p [u8], out: &mut Vec<u8>) -> Option<&'p [u8]> {
    if payload.len() <= MAX_INLINE_PAYLOAD && !payload.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.push(b':');
        out.extend_from_slice(payload);
        None
    } else {
        out.extend_from_slice(payload.len().to_string().as_bytes());
        Some(payload)
    }
}
