//! SMP protocol versions, the version-gated feature thresholds, and the
//! declared maximum sizes of the SMP surface.

use crate::{Decode, Encode, Error, Reader};

/// An SMP relay protocol version (a Word16 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16);

impl Version {
    /// Creating queues without subscribing (`NEW` subscription mode).
    pub const SUB_MODE: Self = Self(6);
    /// Command authenticators (crypto_box) and the implied session id.
    pub const AUTH_CMDS: Self = Self(7);
    /// Sending proxy.
    pub const SENDING_PROXY: Self = Self(8);
    /// `SKEY`: the sender secures the queue; `sndSecure` in `NEW`/`IDS`.
    pub const SND_AUTH_KEY: Self = Self(9);
    /// The `DELD` event.
    pub const DELETED_EVENT: Self = Self(10);
    /// Block encryption inside TLS.
    pub const ENCRYPTED_BLOCK: Self = Self(11);
    /// The `BLOCKED` error.
    pub const BLOCKED_ENTITY: Self = Self(12);
    /// The `proxyServer` flag in the client hello.
    pub const PROXY_SERVER_HANDSHAKE: Self = Self(14);
    /// Short links: `QueueReqData` in `NEW`, queue mode and link id in `IDS`.
    pub const SHORT_LINKS: Self = Self(15);
    /// Service certificates: service signatures, service id in `IDS`.
    pub const SERVICE_CERTS: Self = Self(16);
    /// Notifier credentials in `NEW` and `IDS`.
    pub const NEW_NTF_CREDS: Self = Self(17);
    /// Client notices in `BLOCKED` errors.
    pub const CLIENT_NOTICES: Self = Self(18);

    /// The lowest version whose encodings this crate implements.
    pub const MIN: Self = Self(6);
    /// The highest version whose encodings this crate implements.
    pub const MAX: Self = Self(19);
    /// The newest version the reference relay and client speak.
    pub const REFERENCE_CURRENT: Self = Self(18);

    /// Fails with [`Error::Version`] naming `what` unless this version is in
    /// [`Version::MIN`]`..=`[`Version::MAX`].
    pub fn check_supported(self, what: &'static str) -> Result<(), Error> {
        if (Self::MIN..=Self::MAX).contains(&self) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// The [`Error::Version`] for `what` at this version.
    pub fn error(self, what: &'static str) -> Error {
        Error::Version {
            what,
            version: self.0,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Encode for Version {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl<'a> Decode<'a> for Version {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        r.u16("version").map(Self)
    }
}

/// An inclusive version range, `min <= max` (two Word16 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    min: Version,
    max: Version,
}

impl VersionRange {
    /// The range this crate can encode and decode: 6..=19.
    pub const SUPPORTED: Self = Self {
        min: Version::MIN,
        max: Version::MAX,
    };

    /// A range; fails unless `min <= max`.
    pub fn new(min: Version, max: Version) -> Result<Self, Error> {
        if min <= max {
            Ok(Self { min, max })
        } else {
            Err(Error::invalid(
                "version range",
                format!("minimum {min} is above maximum {max}"),
            ))
        }
    }

    /// The lowest version.
    pub fn min(self) -> Version {
        self.min
    }

    /// The highest version.
    pub fn max(self) -> Version {
        self.max
    }

    /// True when `v` is in the range.
    pub fn contains(self, v: Version) -> bool {
        (self.min..=self.max).contains(&v)
    }

    /// The highest version in both ranges, if they overlap.
    pub fn negotiate(self, other: Self) -> Option<Version> {
        let hi = self.max.min(other.max);
        (hi >= self.min.max(other.min)).then_some(hi)
    }
}

impl std::fmt::Display for VersionRange {
    /// The reference text form: `min-max`, or just `min` when equal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl std::str::FromStr for VersionRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let num = |t: &str| -> Result<Version, Error> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid("version range", "not a decimal version"));
            }
            t.parse::<u16>()
                .map(Version)
                .map_err(|_| Error::invalid("version range", "version out of range"))
        };
        if let Some((a, b)) = s.split_once('-') {
            Self::new(num(a)?, num(b)?)
        } else {
            let v = num(s)?;
            Self::new(v, v)
        }
    }
}

impl Encode for VersionRange {
    fn encode(&self, out: &mut Vec<u8>) {
        self.min.encode(out);
        self.max.encode(out);
    }
}

impl<'a> Decode<'a> for VersionRange {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let min = Version::decode(r)?;
        let max = Version::decode(r)?;
        Self::new(min, max)
    }
}

/// Declared maximum sizes of the SMP surface.
pub mod limits {
    use super::Version;

    /// Every SMP transport block, and every padded handshake block.
    pub const BLOCK_SIZE: usize = 16384;
    /// Room a batch keeps free in a block: 2 bytes of padding length, 1 byte
    /// of transmission count and the 16-byte tag of block encryption.
    pub const BATCH_OVERHEAD: usize = 19;
    /// The most transmissions in one batch (the count is one byte).
    pub const MAX_BATCH_TRANSMISSIONS: usize = 255;
    /// The largest `SEND` body from version 11 on.
    pub const MAX_MESSAGE_LENGTH: usize = 16048;
    /// The largest `SEND` body at versions 8 to 10.
    pub const MAX_MESSAGE_LENGTH_V8: usize = 16064;
    /// The largest `SEND` body before version 8.
    pub const MAX_MESSAGE_LENGTH_V6: usize = 16088;
    /// The largest recipient message body (timestamp, flags, space and body).
    pub const MAX_RCV_MESSAGE_LENGTH: usize = 16104;
    /// The padded size of the recipient message body the relay encrypts.
    pub const RCV_MESSAGE_PADDED_LENGTH: usize = 16106;
    /// The size an end-to-end encrypted message is padded to.
    pub const E2E_ENC_MESSAGE_LENGTH: usize = 16000;
    /// The size an end-to-end encrypted confirmation (with a DH key in the
    /// public header) is padded to.
    pub const E2E_ENC_CONFIRMATION_LENGTH: usize = 15904;
    /// A crypto_box authenticator: 16-byte tag + SHA-512.
    pub const CB_AUTHENTICATOR_SIZE: usize = 80;
    /// An Ed25519 signature.
    pub const ED25519_SIGNATURE_SIZE: usize = 64;
    /// A crypto_box nonce.
    pub const NONCE_SIZE: usize = 24;
    /// Queue, sender and notifier ids the reference relay generates.
    pub const QUEUE_ID_SIZE: usize = 24;
    /// Correlation ids of commands.
    pub const CORR_ID_SIZE: usize = 24;
    /// Certificates in a handshake chain (the reference accepts 2 to 4).
    pub const MAX_CERT_CHAIN: usize = 4;
    /// Nesting of `PROXY PROTOCOL` errors accepted when decoding.
    pub const MAX_ERROR_NESTING: usize = 4;
    /// Hosts in a server address.
    pub const MAX_HOSTS: usize = 16;

    /// The largest `SEND` body at version `v` (reference `maxMessageLength`).
    pub fn max_message_length(v: Version) -> usize {
        if v >= Version::ENCRYPTED_BLOCK {
            MAX_MESSAGE_LENGTH
        } else if v >= Version::SENDING_PROXY {
            MAX_MESSAGE_LENGTH_V8
        } else {
            MAX_MESSAGE_LENGTH_V6
        }
    }
}

/// A value whose SMP encoding depends on the protocol version.
pub trait SmpEncode {
    /// Appends the encoding at version `v`; fails with [`Error::Version`] when a
    /// field that is present does not exist at `v`, or [`Error::TooLong`] when a
    /// field exceeds its maximum.
    fn smp_encode(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error>;

    /// The encoding at version `v` as a new vector.
    fn smp_bytes(&self, v: Version) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.smp_encode(v, &mut out)?;
        Ok(out)
    }
}
