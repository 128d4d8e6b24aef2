//! Agent envelopes (agent <-> agent), carried end to end inside SMP message bodies.
//!
//! Three layers, outermost first:
//!
//! * [`AgentEnvelope`]: what goes into an SMP message body: the agent version and
//!   either a confirmation (ratchet keys in the clear, encrypted [`ConnInfo`]) or an
//!   encrypted [`AgentMessage`].
//! * [`AgentMessage`]: the plaintext: connection information, or a message with a
//!   [`MsgHeader`] (sequential id and digest of the previous message on that
//!   connection) and a body.
//! * [`AMessage`]: the body, an ASCII tag and binary fields: `HELLO`, `A_MSG`,
//!   `A_RCVD`, `FRAG`, and the group envelopes ([`GroupEnvelope`]) `GROUP`,
//!   `INTRO`, `INV`, `FWD`, `OINV`, `MEM`, `LEFT`, `OUT`, `REM`, `REMD`, `DEL`,
//!   `DELD`, `MSG`, `RCVD`, `PROOF` and `G_CHECK` (whose fields are the RFC's text).
//!
//! Binary fields use the SMP primitive encodings; every variable-length field has a
//! declared maximum, checked before its bytes are read. The full grammar with
//! examples is in `docs/protocol-agent.md`.

mod bounded;
mod envelope;
mod fragment;
mod gcheck;
mod group;
mod ids;
mod invite;
mod kind;
mod message;
mod proof;

pub use bounded::{Bounded, Tail};
pub use envelope::{
    AGENT_VERSION, AgentEnvelope, Encrypted, MAX_E2E_PARAMS_LEN, MAX_ENCRYPTED_LEN,
};
pub use fragment::{DEFAULT_MAX_FRAGMENTS, Fragment, FragmentBytes, MAX_FRAGMENT_LEN};
pub(crate) use gcheck::parse_u64 as parse_decimal;
pub use gcheck::{GCheck, GCheckEntry, GCheckMembers, GCheckStatus, MAX_GCHECK_ENTRIES};
pub use group::{
    Content, GroupEnvelope, GroupInfo, GroupInvitation, Invitation, MAX_CONTENT_LEN,
    MAX_GROUP_INFO_LEN, MAX_GROUP_RECEIPTS, MAX_INVITATION_LEN, MAX_PROFILE_LEN, MemberInfo,
    Profile,
};
pub use ids::{Digest, GroupId, MemberId};
pub use invite::{
    ChainAnchor, ConnInvitation, INVITATION_VERSION, JoinInfo, MAX_CLIENT_INFO_LEN,
    MAX_QUEUE_ID_LEN, MAX_RELAY_ADDRESS_LEN, QueueAddress,
};
pub use kind::EnvelopeKind;
pub use message::{
    AMessage, AgentMessage, ConnInfo, Limits, MAX_CONN_INFO_LEN, MAX_RECEIPTS, MAX_REPLY_QUEUE_LEN,
    MAX_TAG_LEN, MsgHeader, Receipt,
};
pub use proof::{MAX_PROOF_UNITS, SignedReceipts};
