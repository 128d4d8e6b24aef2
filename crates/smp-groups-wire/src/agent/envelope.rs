//! The outer agent envelope: what goes, unencrypted by the agent (the SMP layer
//! still encrypts it for the relay hop), into an SMP message body.
//!
//! ```text
//! agentEnvelope = agentVersion ( %s"C" e2eParams encConnInfo   ; confirmation
//!                              / %s"M" encAgentMessage )       ; message
//! agentVersion  = 2OCTET
//! e2eParams     = Large     ; the joining side's ratchet keys, opaque here
//! encConnInfo   = Tail      ; an encrypted AgentMessage::ConnInfo
//! encAgentMessage = Tail    ; an encrypted AgentMessage::Message
//! ```

use super::bounded::{Bounded, Tail};
use crate::{Decode, Encode, Error, Reader};

/// The agent protocol version this crate speaks.
pub const AGENT_VERSION: u16 = 1;
/// The longest ratchet parameters in a confirmation.
pub const MAX_E2E_PARAMS_LEN: usize = 1024;
/// The longest encrypted part of an envelope (one SMP block).
pub const MAX_ENCRYPTED_LEN: usize = 16384;

/// Encrypted bytes at the end of an envelope.
pub type Encrypted = Tail<MAX_ENCRYPTED_LEN>;

/// The outer agent envelope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentEnvelope {
    /// `C`: the joining side's confirmation, with its ratchet keys in the clear so
    /// the receiver can set up decryption.
    Confirmation {
        /// The sender's agent version.
        agent_version: u16,
        /// The ratchet keys (opaque to this layer).
        e2e_params: Bounded<MAX_E2E_PARAMS_LEN>,
        /// The encrypted [`super::AgentMessage::ConnInfo`].
        enc_conn_info: Encrypted,
    },
    /// `M`: an encrypted message.
    Message {
        /// The sender's agent version.
        agent_version: u16,
        /// The encrypted [`super::AgentMessage::Message`].
        enc_agent_message: Encrypted,
    },
}

impl Encode for AgentEnvelope {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Confirmation {
                agent_version,
                e2e_params,
                enc_conn_info,
            } => {
                agent_version.encode(out);
                out.push(b'C');
                e2e_params.encode(out);
                enc_conn_info.encode(out);
            }
            Self::Message {
                agent_version,
                enc_agent_message,
            } => {
                agent_version.encode(out);
                out.push(b'M');
                enc_agent_message.encode(out);
            }
        }
    }
}

impl<'a> Decode<'a> for AgentEnvelope {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let agent_version = r.u16("agent version")?;
        match r.u8("agent envelope tag")? {
            b'C' => Ok(Self::Confirmation {
                agent_version,
                e2e_params: Bounded::read(r, "e2e params")?,
                enc_conn_info: Tail::read(r, "encrypted conn info")?,
            }),
            b'M' => Ok(Self::Message {
                agent_version,
                enc_agent_message: Tail::read(r, "encrypted agent message")?,
            }),
            other => Err(Error::unknown_tag("agent envelope tag", &[other])),
        }
    }
}
