//! Error codes of the client protocol (`ERR <CODE> [detail]`) and the error a
//! line that cannot be accepted produces.

use std::fmt;

use super::token::{CorrId, Entity};

/// The code in an `ERR` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `SYNTAX`: the line is malformed (framing, token, number, entity syntax).
    Syntax,
    /// `UNKNOWN_COMMAND`: the command is not known, or not defined for that kind of
    /// entity.
    UnknownCommand,
    /// `UNKNOWN_ENTITY`: no connection, group or invitation has that alias.
    UnknownEntity,
    /// `DUPLICATE`: the alias is already in use.
    Duplicate,
    /// `LARGE`: a line, payload or field is larger than allowed.
    Large,
    /// `PROHIBITED`: the command is not allowed in the current state.
    Prohibited,
    /// `NETWORK`: the agent could not reach a relay.
    Network,
    /// `INTERNAL`: the agent failed on its side.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Syntax,
        Self::UnknownCommand,
        Self::UnknownEntity,
        Self::Duplicate,
        Self::Large,
        Self::Prohibited,
        Self::Network,
        Self::Internal,
    ];

    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "SYNTAX",
            Self::UnknownCommand => "UNKNOWN_COMMAND",
            Self::UnknownEntity => "UNKNOWN_ENTITY",
            Self::Duplicate => "DUPLICATE",
            Self::Large => "LARGE",
            Self::Prohibited => "PROHIBITED",
            Self::Network => "NETWORK",
            Self::Internal => "INTERNAL",
        }
    }

    /// Parses the text form.
    pub fn parse(text: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transmission could not be accepted, with what was recovered of it, so the
/// agent can answer `corrId entity ERR CODE detail` and carry on with the next line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct LineError {
    /// The corrId of the line, when it could be read (empty otherwise).
    pub corr_id: CorrId,
    /// The entity of the line, when it could be read ([`Entity::None`] otherwise).
    pub entity: Entity,
    /// The error code.
    pub code: ErrorCode,
    /// What was wrong.
    pub detail: String,
}

impl LineError {
    /// An error with no recovered corrId or entity.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            corr_id: CorrId::empty(),
            entity: Entity::None,
            code,
            detail: detail.into(),
        }
    }

    /// A `SYNTAX` error.
    pub fn syntax(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Syntax, detail)
    }

    /// Sets the recovered corrId and entity.
    pub fn at(mut self, corr_id: &CorrId, entity: &Entity) -> Self {
        self.corr_id = corr_id.clone();
        self.entity = entity.clone();
        self
    }
}

impl From<crate::Error> for LineError {
    fn from(e: crate::Error) -> Self {
        let code = if matches!(e, crate::Error::TooLong { .. }) {
            ErrorCode::Large
        } else {
            ErrorCode::Syntax
        };
        Self::new(code, e.to_string())
    }
}
