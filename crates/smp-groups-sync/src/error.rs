//! The crate's errors.

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input: a message or stored state that does not decode.
    #[error("malformed {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        source: prost::DecodeError,
    },
    /// Malformed input: a message or stored state longer than its bound.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Malformed input: a message without a body, or stored state without a
    /// field it needs.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// Incompatible: stored state of a format version this build cannot read.
    #[error("stored state has version {0}, this build reads version 1")]
    StateVersion(u32),
    /// API misuse, or malformed input: a key, value or device id outside its
    /// bounds (see [`crate::limits`]).
    #[error("invalid entry: {0}")]
    Invalid(&'static str),
    /// API misuse: the edit would make the document larger than
    /// [`crate::limits::MAX_DOCUMENT_BYTES`] or
    /// [`crate::limits::MAX_ENTRIES`].
    #[error("the document would exceed its limit ({0})")]
    DocumentFull(&'static str),
    /// The agent failed or has stopped.
    #[error("agent: {0}")]
    Agent(#[from] smp_groups_agent::Error),
    /// The agent has no such group, or we are not a member of it.
    #[error("no such group: {0}")]
    NoGroup(String),
    /// Reading or writing the persisted replica state failed.
    #[error("replica state file: {0}")]
    Io(#[from] std::io::Error),
    /// The document's background task has stopped.
    #[error("the document has stopped")]
    Stopped,
}
