//! One transmission (`corrId SP entity SP command`), typed by direction.

use super::command::ClientCommand;
use super::error::LineError;
use super::event::AgentEvent;
use super::token::{CorrId, Cursor, Entity, EntityKind};

/// A command or event with its corrId.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transmission<T> {
    /// The corrId (empty on events the agent sends on its own).
    pub corr_id: CorrId,
    /// The command or event.
    pub msg: T,
}

/// What a line carries in one direction: [`ClientCommand`] (client to agent) or
/// [`AgentEvent`] (agent to client).
pub trait LineMessage: Sized {
    /// How many tokens after the command word precede its payload, if the command
    /// word (for that kind of entity) has one; `args` is the line after the word.
    fn payload_index(kind: EntityKind, word: &[u8], args: &[u8]) -> Option<usize>;

    /// Parses the part of the line after `corrId SP entity SP`.
    fn parse_body(entity: &Entity, c: &mut Cursor<'_>) -> Result<Self, LineError>;

    /// Appends the transmission, CRLF and block included.
    fn write(&self, corr_id: &CorrId, out: &mut Vec<u8>);
}

impl LineMessage for ClientCommand {
    fn payload_index(kind: EntityKind, word: &[u8], _args: &[u8]) -> Option<usize> {
        Self::payload_index(kind, word)
    }
    fn parse_body(entity: &Entity, c: &mut Cursor<'_>) -> Result<Self, LineError> {
        Self::parse_body(entity, c)
    }
    fn write(&self, corr_id: &CorrId, out: &mut Vec<u8>) {
        Self::write(self, corr_id, out);
    }
}

impl LineMessage for AgentEvent {
    fn payload_index(kind: EntityKind, word: &[u8], args: &[u8]) -> Option<usize> {
        Self::payload_index(kind, word, args)
    }
    fn parse_body(entity: &Entity, c: &mut Cursor<'_>) -> Result<Self, LineError> {
        Self::parse_body(entity, c)
    }
    fn write(&self, corr_id: &CorrId, out: &mut Vec<u8>) {
        Self::write(self, corr_id, out);
    }
}

impl<T: LineMessage> Transmission<T> {
    /// A transmission.
    pub fn new(corr_id: CorrId, msg: T) -> Self {
        Self { corr_id, msg }
    }

    /// Parses one line (without its CRLF) and the length-prefixed block that
    /// followed it, if any. Errors carry the corrId and entity when they could be read.
    pub fn parse(line: &[u8], block: Option<&[u8]>) -> Result<Self, LineError> {
        let mut c = Cursor::new(line, block);
        let corr_id = CorrId::new(c.token())?;
        if c.at_end() {
            return Err(LineError::syntax("expected corrId SP entity SP command")
                .at(&corr_id, &Entity::None));
        }
        let entity = Entity::parse(c.token()).map_err(|e| e.at(&corr_id, &Entity::None))?;
        let msg = T::parse_body(&entity, &mut c).map_err(|e| e.at(&corr_id, &entity))?;
        Ok(Self { corr_id, msg })
    }

    /// Appends the transmission, CRLF and block included.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.msg.write(&self.corr_id, out);
    }

    /// The transmission as bytes, CRLF and block included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write(&mut out);
        out
    }
}

impl From<LineError> for Transmission<AgentEvent> {
    /// The `ERR` response to a rejected line.
    fn from(e: LineError) -> Self {
        Self {
            corr_id: e.corr_id,
            msg: AgentEvent::Error {
                entity: e.entity,
                code: e.code,
                detail: (!e.detail.is_empty()).then_some(e.detail),
            },
        }
    }
}
