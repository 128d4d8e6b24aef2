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
#![forbid(unsafe_code)]

pub mod agent;
pub mod base64url;
pub mod client;
mod codec;
mod error;
pub mod pad;
pub mod smp;

pub use codec::{Decode, Encode, LargeBytes, Reader, ShortBytes, decode_all, put_large, put_short};
pub use error::Error;
