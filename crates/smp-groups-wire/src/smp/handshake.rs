//! The SMP handshake: one padded block from the relay (server hello), one from
//! the client (client hello).
//!
//! ```text
//! serverHello = versionRange short(sessionId) [maxVersion>=7: certChainPubKey]
//! certChainPubKey = count:1 (large(certDER))+ large(signedKeyDER)
//! clientHello = version short(keyHash) [v>=7: short(x25519 DER key), optional]
//!               [v>=14: proxyServer:Bool] [v>=16: maybe(role certChainPubKey)]
//! role = "M" / "N" / "P"
//! ```
//!
//! Both decoders ignore trailing bytes (room for extensions), as the reference
//! does; the optional parts (`certChainPubKey`, the client key) are absent when
//! they do not parse.

use super::keys::X25519PublicKey;
use super::server::KeyHash;
use super::version::{Version, VersionRange, limits::BLOCK_SIZE};
use super::x509::{self, SignedObject};
use crate::{Decode, Encode, Error, LargeBytes, Reader, ShortBytes, pad};

/// A certificate chain and a key signed by its leaf (the relay's session key,
/// or a service's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChainPubKey {
    certs: Vec<LargeBytes>,
    signed_key: LargeBytes,
}

impl CertChainPubKey {
    /// Validates: 1 to 255 certificates, each a DER SEQUENCE; the signed key an
    /// X.509 signed object.
    pub fn new(certs: Vec<LargeBytes>, signed_key: LargeBytes) -> Result<Self, Error> {
        if certs.is_empty() {
            return Err(Error::invalid("certificate chain", "empty"));
        }
        if certs.len() > 255 {
            return Err(Error::TooLong {
                what: "certificate chain",
                len: certs.len(),
                max: 255,
            });
        }
        for c in &certs {
            x509::parse_single(c.as_slice(), 0x30)?;
        }
        SignedObject::parse(signed_key.as_slice())?;
        Ok(Self { certs, signed_key })
    }

    /// The DER certificates, leaf first.
    pub fn certs(&self) -> &[LargeBytes] {
        &self.certs
    }

    /// The DER signed object holding the key.
    pub fn signed_key_der(&self) -> &[u8] {
        self.signed_key.as_slice()
    }

    /// The parts of the signed key.
    pub fn signed_key(&self) -> SignedObject<'_> {
        // validated in `new`
        SignedObject::parse(self.signed_key.as_slice()).unwrap_or(SignedObject {
            tbs: &[],
            algorithm: x509::SignatureAlgorithm::Other,
            signature: &[],
        })
    }
}

impl Encode for CertChainPubKey {
    fn encode(&self, out: &mut Vec<u8>) {
        #[allow(clippy::cast_possible_truncation)] // at most 255, checked in `new`
        out.push(self.certs.len() as u8);
        for c in &self.certs {
            c.encode(out);
        }
        self.signed_key.encode(out);
    }
}

impl<'a> Decode<'a> for CertChainPubKey {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let certs = r.list("certificate chain", 255, LargeBytes::decode)?;
        let signed_key = LargeBytes::decode(r)?;
        Self::new(certs, signed_key)
    }
}

/// The relay's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The versions the relay supports.
    pub versions: VersionRange,
    /// The session id (tls-unique).
    pub session_id: ShortBytes,
    /// The certificate chain and signed session key (sent when the maximum
    /// version is 7 or more).
    pub auth: Option<CertChainPubKey>,
}

impl ServerHello {
    /// The hello body (before padding).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.versions.encode(&mut out);
        self.session_id.encode(&mut out);
        if let Some(a) = &self.auth {
            if self.versions.max() < Version::AUTH_CMDS {
                return Err(self.versions.max().error("server hello session key"));
            }
            a.encode(&mut out);
        }
        Ok(out)
    }
}

/// A hello body: trailing bytes (the fields of later versions) are read and
/// ignored.
impl<'a> Decode<'a> for ServerHello {
    fn decode(input: &mut Reader<'a>) -> Result<Self, Error> {
        let mut r = Reader::new(input.rest());
        let versions = VersionRange::decode(&mut r)?;
        let session_id = ShortBytes::decode(&mut r)?;
        let auth = if versions.max() >= Version::AUTH_CMDS {
            optional(&mut r, CertChainPubKey::decode)
        } else {
            None
        };
        Ok(Self {
            versions,
            session_id,
            auth,
        })
    }
}

/// Runs `f` on a copy of `r`; on success advances `r`, on failure leaves it.
fn optional<'a, T>(
    r: &mut Reader<'a>,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, Error>,
) -> Option<T> {
    let mut probe = r.clone();
    let v = f(&mut probe).ok()?;
    *r = probe;
    Some(v)
}

/// The role of a service client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRole {
    /// `M`: messaging.
    Messaging,
    /// `N`: notifier.
    Notifier,
    /// `P`: proxy.
    Proxy,
}

/// A service client's credentials in the client hello (v>=16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientService {
    /// The role.
    pub role: ServiceRole,
    /// The service certificate chain and signed key.
    pub cert_key: CertChainPubKey,
}

impl Encode for ClientService {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self.role {
            ServiceRole::Messaging => b'M',
            ServiceRole::Notifier => b'N',
            ServiceRole::Proxy => b'P',
        });
        self.cert_key.encode(out);
    }
}

impl<'a> Decode<'a> for ClientService {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let role = match r.u8("service role")? {
            b'M' => ServiceRole::Messaging,
            b'N' => ServiceRole::Notifier,
            b'P' => ServiceRole::Proxy,
            t => return Err(Error::unknown_tag("service role", &[t])),
        };
        Ok(Self {
            role,
            cert_key: CertChainPubKey::decode(r)?,
        })
    }
}

/// The client's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The version the client chose.
    pub version: Version,
    /// The relay identity the client expects.
    pub key_hash: KeyHash,
    /// The client's X25519 session key (v>=7).
    pub auth_key: Option<X25519PublicKey>,
    /// Whether the client is a proxy (v>=14).
    pub proxy_server: bool,
    /// Service credentials (v>=16).
    pub service: Option<ClientService>,
}

impl ClientHello {
    /// The hello body (before padding); fails with [`Error::Version`] when a
    /// field is set that `version` does not have.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let v = self.version;
        if self.auth_key.is_some() && v < Version::AUTH_CMDS {
            return Err(v.error("client hello session key"));
        }
        if self.proxy_server && v < Version::PROXY_SERVER_HANDSHAKE {
            return Err(v.error("client hello proxyServer"));
        }
        if self.service.is_some() && v < Version::SERVICE_CERTS {
            return Err(v.error("client hello service"));
        }
        let mut out = Vec::new();
        v.encode(&mut out);
        self.key_hash.encode(&mut out);
        if let Some(k) = &self.auth_key {
            k.encode(&mut out);
        }
        if v >= Version::PROXY_SERVER_HANDSHAKE {
            self.proxy_server.encode(&mut out);
        }
        if v >= Version::SERVICE_CERTS {
            self.service.encode(&mut out);
        }
        Ok(out)
    }
}

/// A hello body: trailing bytes (the fields of later versions) are read and
/// ignored.
impl<'a> Decode<'a> for ClientHello {
    fn decode(input: &mut Reader<'a>) -> Result<Self, Error> {
        let mut r = Reader::new(input.rest());
        let version = Version::decode(&mut r)?;
        let key_hash = KeyHash::decode(&mut r)?;
        let auth_key = if version >= Version::AUTH_CMDS {
            optional(&mut r, X25519PublicKey::decode)
        } else {
            None
        };
        let proxy_server = if version >= Version::PROXY_SERVER_HANDSHAKE {
            r.bool("proxyServer")?
        } else {
            false
        };
        let service = if version >= Version::SERVICE_CERTS {
            Option::<ClientService>::decode(&mut r)?
        } else {
            None
        };
        Ok(Self {
            version,
            key_hash,
            auth_key,
            proxy_server,
            service,
        })
    }
}

/// Pads a hello body to a handshake block ([`BLOCK_SIZE`] bytes).
pub fn encode_handshake_block(body: &[u8]) -> Result<Vec<u8>, Error> {
    pad::pad(body, BLOCK_SIZE)
}

/// The hello body inside a handshake block, which must be [`BLOCK_SIZE`] bytes.
pub fn decode_handshake_block(block: &[u8]) -> Result<&[u8], Error> {
    if block.len() != BLOCK_SIZE {
        return Err(Error::invalid(
            "handshake block",
            format!("{} bytes, expected {BLOCK_SIZE}", block.len()),
        ));
    }
    pad::unpad(block)
}
