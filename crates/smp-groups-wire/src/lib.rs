//! Codecs for the three wire surfaces of smp-groups.
//!
//! * [`smp`]: the SimpleX Messaging Protocol as agents and relays speak it
//!   (primitive encodings, handshake blocks, batches, transmissions, commands),
//!   byte-exact with the reference implementation.
//! * [`agent`]: envelopes exchanged end to end between agents inside SMP
//!   message bodies, including the group envelopes and `G_CHECK`.
//! * [`client`]: the line-based text protocol between a client and its agent.
//!
//! Everything here is pure: no crypto, no IO, no clocks. Every decoder works on a
//! [`Reader`] over a byte slice, never panics, bounds every length it reads, and
//! reports a typed [`Error`] that names the field that was wrong.
//!
//! # Example
//!
//! A client's line to its agent, parsed and written back byte for byte; a
//! damaged line is a typed error that names what was wrong.
//!
//! ```
//!
//! use smp_groups_wire::client::{ClientCommand, Transmission};
//!
//! let t = Transmission::<ClientCommand>::parse(b"7 G:club SEND :hello", None)?;
//! let ClientCommand::GroupSend { group, body } = &t.msg else { unreachable!() };
//! assert_eq!((group.as_str(), body.as_slice()), ("club", &b"hello"[..]));
//! assert_eq!(t.to_bytes(), b"7 G:club SEND :hello\r\n");
//!
//! assert!(Transmission::<ClientCommand>::parse(b"7 G:club SNED :hello", None).is_err());
//! # Ok::<(), smp_groups_wire::client::LineError>(())
//! ```
#![forbid(unsafe_code)]

pub mod agent;
pub mod base64url;
pub mod client;
mod codec;
mod error;
pub mod pad;
pub mod smp;

pub use codec::{
    Decode, DecodeWith, Encode, LargeBytes, Reader, ShortBytes, decode_all, decode_all_with,
    put_large, put_short,
};
pub use error::Error;
