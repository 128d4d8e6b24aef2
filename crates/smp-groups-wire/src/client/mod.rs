//! The client text protocol (client <-> agent): `corrId SP entity SP command` lines.
//!
//! ```text
//! transmission = corrId SP entity SP command [SP args] CRLF [block CRLF]
//! entity       = "C:" [alias] / "G:" [alias] / "g:" alias / ""
//! payload      = ":" text-to-end-of-line / length   ; length: the block follows the line
//! ```
//!
//! [`ClientCommand`] and [`AgentEvent`] are the two directions; [`Transmission`]
//! adds the corrId; [`LineDecoder`] frames a byte stream incrementally. The full
//! grammar, with an example of every command and event, is in
//! `docs/protocol-client.md`.

mod command;
mod error;
mod event;
mod framer;
mod meta;
mod rows;
mod token;
mod transmission;
mod writer;

pub use command::ClientCommand;
pub use error::{ErrorCode, LineError};
pub use event::{
    AgentEvent, Approval, DirectFailure, FaultKind, FaultSource, RcvdStatus, RowsKind,
    ViolationKind,
};
pub use framer::{DEFAULT_MAX_LINE, FrameLimits, LineDecoder, MAX_SKIP};
pub use meta::{MAX_RELAY_MSG_ID_LEN, MsgIntegrity, MsgMeta};
pub use rows::{MAX_FIELDS, MAX_KEY_LEN, MAX_ROWS, MAX_VALUE_LEN, Row};
pub use token::{
    Alias, CorrId, Cursor, DEFAULT_MAX_PAYLOAD, Entity, EntityKind, InvitationText, MAX_ALIAS_LEN,
    MAX_CORR_ID_LEN, MAX_DETAIL_LEN, MAX_INLINE_PAYLOAD, MAX_INVITATION_TEXT_LEN,
};
pub use transmission::{LineMessage, Transmission};
