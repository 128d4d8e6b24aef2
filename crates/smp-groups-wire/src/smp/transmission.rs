//! Transmissions: the unit a batch carries.
//!
//! ```text
//! transmission = short(authorization)
//!                [v>=16 and authorization not empty: maybe(short(serviceSignature))]
//!                [v<7: short(sessionId)]
//!                short(corrId) short(entityId) command        ; command is the rest
//! for_auth     = short(sessionId) short(corrId) short(entityId) command
//! ```
//!
//! From v7 the session id is implied: it is part of what is authorized but is
//! not sent.

use super::version::{SmpEncode, Version, limits};
use crate::{Decode, DecodeWith, Encode, Error, Reader, ShortBytes};

/// The authorization of a transmission.
#[derive(Clone, PartialEq, Eq)]
pub enum TransmissionAuth {
    /// None (an empty short string).
    None,
    /// An Ed25519 signature of the authorized bytes.
    Signature([u8; limits::ED25519_SIGNATURE_SIZE]),
    /// A crypto_box authenticator (v>=7): 16-byte tag and the boxed SHA-512 of
    /// the authorized bytes.
    Authenticator([u8; limits::CB_AUTHENTICATOR_SIZE]),
}

impl std::fmt::Debug for TransmissionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "None"),
            Self::Signature(s) => write!(f, "Signature({:02x?}..)", &s[..4]),
            Self::Authenticator(a) => write!(f, "Authenticator({:02x?}..)", &a[..4]),
        }
    }
}

impl TransmissionAuth {
    /// The raw bytes (empty for `None`).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::None => &[],
            Self::Signature(s) => s,
            Self::Authenticator(a) => a,
        }
    }

    /// Classifies raw authorization bytes by length: 0, 64 or 80.
    pub fn from_bytes(b: &[u8]) -> Result<Self, Error> {
        match b.len() {
            0 => Ok(Self::None),
            limits::ED25519_SIGNATURE_SIZE => {
                b.try_into().map(Self::Signature).map_err(|_| bad_auth(b))
            }
            limits::CB_AUTHENTICATOR_SIZE => b
                .try_into()
                .map(Self::Authenticator)
                .map_err(|_| bad_auth(b)),
            _ => Err(bad_auth(b)),
        }
    }

    /// True for `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

fn bad_auth(b: &[u8]) -> Error {
    Error::invalid(
        "transmission authorization",
        format!(
            "{} bytes; expected 0, 64 (Ed25519) or 80 (authenticator)",
            b.len()
        ),
    )
}

/// Writes the authorization part: `short(auth)`, then at v>=16 when `auth` is
/// not empty `maybe(short(serviceSig))`.
pub fn encode_auth(
    v: Version,
    auth: &TransmissionAuth,
    service_sig: Option<&[u8; 64]>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    v.check_supported("transmission")?;
    if service_sig.is_some() && (v < Version::SERVICE_CERTS || auth.is_none()) {
        return Err(v.error("service signature"));
    }
    let a = auth.as_bytes();
    #[allow(clippy::cast_possible_truncation)] // 0, 64 or 80
    out.push(a.len() as u8);
    out.extend_from_slice(a);
    if v >= Version::SERVICE_CERTS && !auth.is_none() {
        match service_sig {
            None => out.push(b'0'),
            Some(s) => {
                out.extend_from_slice(b"1\x40");
                out.extend_from_slice(s);
            }
        }
    }
    Ok(())
}

/// The authorization, the service signature, and the bytes after them.
pub type AuthParts<'a> = (TransmissionAuth, Option<[u8; 64]>, &'a [u8]);

/// Reads the authorization part written by [`encode_auth`], returning it and
/// the rest of the transmission (the bytes sent after it).
pub fn decode_auth(v: Version, bytes: &[u8]) -> Result<AuthParts<'_>, Error> {
    v.check_supported("transmission")?;
    let mut r = Reader::new(bytes);
    let auth = TransmissionAuth::from_bytes(r.short_bytes("transmission authorization")?)?;
    let service_sig = if v >= Version::SERVICE_CERTS && !auth.is_none() {
        r.maybe("service signature", |r| {
            let s = r.short_bytes("service signature")?;
            s.try_into().map_err(|_| {
                Error::invalid(
                    "service signature",
                    format!("{} bytes, expected 64", s.len()),
                )
            })
        })?
    } else {
        None
    };
    Ok((auth, service_sig, r.rest()))
}

/// `short(corrId) || short(entityId) || command`: what is sent after the
/// authorization from v7 (vector kind `smp.transmission`).
pub fn encode_to_send(corr_id: &[u8], entity_id: &[u8], command: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(2 + corr_id.len() + entity_id.len() + command.len());
    crate::put_short(&mut out, corr_id, "corrId")?;
    crate::put_short(&mut out, entity_id, "entityId")?;
    out.extend_from_slice(command);
    Ok(out)
}

/// `short(sessionId) || short(corrId) || short(entityId) || command`: the bytes
/// that are signed or authenticated (vector kind `smp.transmission_for_auth`).
pub fn encode_for_auth(
    session_id: &[u8],
    corr_id: &[u8],
    entity_id: &[u8],
    command: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out =
        Vec::with_capacity(3 + session_id.len() + corr_id.len() + entity_id.len() + command.len());
    crate::put_short(&mut out, session_id, "sessionId")?;
    out.extend_from_slice(&encode_to_send(corr_id, entity_id, command)?);
    Ok(out)
}

/// A transmission with its authorization, as carried in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmission {
    /// The authorization.
    pub auth: TransmissionAuth,
    /// The service signature (v>=16, only with an authorization).
    pub service_sig: Option<[u8; 64]>,
    /// The session id; sent only before v7 (must be `Some` then, `None` after).
    pub session_id: Option<ShortBytes>,
    /// The correlation id (24 random bytes in commands, empty in events).
    pub corr_id: ShortBytes,
    /// The entity (queue) id, or empty.
    pub entity_id: ShortBytes,
    /// The encoded command or response (see `Command`, `ServerMsg`).
    pub command: Vec<u8>,
}

impl Transmission {
    /// The bytes to authorize with `session_id` (the session's id, which from v7
    /// is not sent).
    pub fn for_auth(&self, session_id: &[u8]) -> Result<Vec<u8>, Error> {
        encode_for_auth(
            session_id,
            self.corr_id.as_slice(),
            self.entity_id.as_slice(),
            &self.command,
        )
    }
}

/// A whole transmission, the rest of the input, at version `v`.
impl<'a> DecodeWith<'a, Version> for Transmission {
    fn decode_with(input: &mut Reader<'a>, v: Version) -> Result<Self, Error> {
        let (auth, service_sig, rest) = decode_auth(v, input.rest())?;
        let mut r = Reader::new(rest);
        let session_id = if v < Version::AUTH_CMDS {
            Some(ShortBytes::decode(&mut r)?)
        } else {
            None
        };
        let corr_id = ShortBytes::decode(&mut r)?;
        let entity_id = ShortBytes::decode(&mut r)?;
        let command = r.rest().to_vec();
        Ok(Self {
            auth,
            service_sig,
            session_id,
            corr_id,
            entity_id,
            command,
        })
    }
}

impl SmpEncode for Transmission {
    fn smp_encode(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        encode_auth(v, &self.auth, self.service_sig.as_ref(), out)?;
        match (&self.session_id, v < Version::AUTH_CMDS) {
            (Some(s), true) => s.encode(out),
            (None, false) => {}
            (None, true) => {
                return Err(Error::invalid(
                    "transmission",
                    "a session id is sent before v7",
                ));
            }
            (Some(_), false) => return Err(v.error("sent session id")),
        }
        self.corr_id.encode(out);
        self.entity_id.encode(out);
        out.extend_from_slice(&self.command);
        Ok(())
    }
}
