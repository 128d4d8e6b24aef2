//! The one error type of the wire crate.

/// What went wrong while decoding (or, rarely, encoding) a wire value.
///
/// Every variant names the field (`what`) it concerns, so that a message such as
/// `truncated SMP transmission corrId: needed 24 bytes, 3 left` tells the reader
/// exactly where the input went wrong. All of these are faults of the input
/// (malformed bytes or lines) unless the variant says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the field was complete.
    #[error("truncated {what}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// How many bytes the field needed.
        needed: usize,
        /// How many bytes were left.
        available: usize,
    },
    /// A length or count is larger than the field allows.
    #[error("{what} too long: {len} exceeds the maximum of {max}")]
    TooLong {
        /// The field being read or written.
        what: &'static str,
        /// The length or count found.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A tag (command name, envelope type, flag byte) is not one we know.
    #[error("unknown {what}: {tag:?}")]
    UnknownTag {
        /// The kind of tag.
        what: &'static str,
        /// The tag found, printed lossily when it is not UTF-8.
        tag: String,
    },
    /// Bytes remained after a value that must end its input.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The value that should have ended the input.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// The field is well-framed but its value is not acceptable.
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// Why it is not acceptable.
        reason: String,
    },
    /// A base64 or base64url field could not be decoded.
    #[error("bad base64 in {what}")]
    BadBase64 {
        /// The field.
        what: &'static str,
    },
    /// A field or command is not defined at the negotiated protocol version.
    #[error("{what} is not defined at protocol version {version}")]
    Version {
        /// The field or command.
        what: &'static str,
        /// The version in use.
        version: u16,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidValue`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            what,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::UnknownTag`], printing the tag lossily.
    pub fn unknown_tag(what: &'static str, tag: &[u8]) -> Self {
        Self::UnknownTag {
            what,
            tag: String::from_utf8_lossy(tag).into_owned(),
        }
    }
}
