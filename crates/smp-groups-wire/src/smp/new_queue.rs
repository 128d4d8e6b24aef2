//! The fields of `NEW` and their version-dependent layout.
//!
//! ```text
//! v6..=8    NEW SP rcvAuthKey rcvDhKey ["A" short(basicAuth)] subMode
//! v9..=14   NEW SP rcvAuthKey rcvDhKey maybe(basicAuth) subMode sndSecure:Bool
//! v15..=16  NEW SP rcvAuthKey rcvDhKey maybe(basicAuth) subMode maybe(queueReqData)
//! v17..     NEW SP rcvAuthKey rcvDhKey maybe(basicAuth) subMode maybe(queueReqData) maybe(ntfCreds)
//! ```

use super::keys::{AuthPublicKey, X25519PublicKey};
use super::version::{SmpEncode, Version};
use crate::{Decode, DecodeWith, Encode, Error, LargeBytes, Reader, ShortBytes};

/// Relay basic auth (a password for creating queues): printable ASCII without
/// space, `@`, `:` or `/`, at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BasicAuth(ShortBytes);

impl BasicAuth {
    /// Validates `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let b = ShortBytes::new(bytes)?;
        if b.as_slice()
            .iter()
            .all(|&c| c.is_ascii_graphic() && !b"@:/".contains(&c))
        {
            Ok(Self(b))
        } else {
            Err(Error::invalid(
                "basic auth",
                "only printable ASCII without space, @, : or /",
            ))
        }
    }

    /// The password bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Encode for BasicAuth {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl<'a> Decode<'a> for BasicAuth {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Self::new(r.short_bytes("basic auth")?)
    }
}

/// Whether `NEW` also subscribes (`S`) or only creates (`C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionMode {
    /// `S`: create and subscribe.
    Subscribe,
    /// `C`: only create.
    OnlyCreate,
}

impl Encode for SubscriptionMode {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Self::Subscribe => b'S',
            Self::OnlyCreate => b'C',
        });
    }
}

impl<'a> Decode<'a> for SubscriptionMode {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        match r.u8("subscription mode")? {
            b'S' => Ok(Self::Subscribe),
            b'C' => Ok(Self::OnlyCreate),
            t => Err(Error::unknown_tag("subscription mode", &[t])),
        }
    }
}

/// The queue mode: a messaging queue (the sender may secure it) or a contact
/// address queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueMode {
    /// `M`.
    Messaging,
    /// `C`.
    Contact,
}

impl Encode for QueueMode {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Self::Messaging => b'M',
            Self::Contact => b'C',
        });
    }
}

impl<'a> Decode<'a> for QueueMode {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        match r.u8("queue mode")? {
            b'M' => Ok(Self::Messaging),
            b'C' => Ok(Self::Contact),
            t => Err(Error::unknown_tag("queue mode", &[t])),
        }
    }
}

/// Encrypted short-link data: fixed part and user part, each `Large`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLinkData {
    /// Encrypted fixed data.
    pub fixed: LargeBytes,
    /// Encrypted user data.
    pub user: LargeBytes,
}

impl Encode for QueueLinkData {
    fn encode(&self, out: &mut Vec<u8>) {
        self.fixed.encode(out);
        self.user.encode(out);
    }
}

impl<'a> Decode<'a> for QueueLinkData {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Self {
            fixed: LargeBytes::decode(r)?,
            user: LargeBytes::decode(r)?,
        })
    }
}

/// Queue request data (v>=15): the mode, with optional short-link data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueReqData {
    /// `M maybe(senderId linkData)`.
    Messaging(Option<(ShortBytes, QueueLinkData)>),
    /// `C maybe(linkId senderId linkData)`.
    Contact(Option<(ShortBytes, ShortBytes, QueueLinkData)>),
}

impl QueueReqData {
    /// The mode.
    pub fn mode(&self) -> QueueMode {
        match self {
            Self::Messaging(_) => QueueMode::Messaging,
            Self::Contact(_) => QueueMode::Contact,
        }
    }

    fn has_link(&self) -> bool {
        matches!(self, Self::Messaging(Some(_)) | Self::Contact(Some(_)))
    }
}

impl Encode for QueueReqData {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Messaging(d) => {
                out.push(b'M');
                match d {
                    None => out.push(b'0'),
                    Some((sid, link)) => {
                        out.push(b'1');
                        sid.encode(out);
                        link.encode(out);
                    }
                }
            }
            Self::Contact(d) => {
                out.push(b'C');
                match d {
                    None => out.push(b'0'),
                    Some((lid, sid, link)) => {
                        out.push(b'1');
                        lid.encode(out);
                        sid.encode(out);
                        link.encode(out);
                    }
                }
            }
        }
    }
}

impl<'a> Decode<'a> for QueueReqData {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        match r.u8("queue request data")? {
            b'M' => Ok(Self::Messaging(r.maybe("queue link data", |r| {
                Ok((ShortBytes::decode(r)?, QueueLinkData::decode(r)?))
            })?)),
            b'C' => Ok(Self::Contact(r.maybe("queue link data", |r| {
                Ok((
                    ShortBytes::decode(r)?,
                    ShortBytes::decode(r)?,
                    QueueLinkData::decode(r)?,
                ))
            })?)),
            t => Err(Error::unknown_tag("queue request data", &[t])),
        }
    }
}

/// Notifier credentials created with the queue (v>=17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNtfCreds {
    /// The notifier's authorization key.
    pub auth_key: AuthPublicKey,
    /// The recipient's DH key for notification metadata.
    pub dh_key: X25519PublicKey,
}

impl Encode for NewNtfCreds {
    fn encode(&self, out: &mut Vec<u8>) {
        self.auth_key.encode(out);
        self.dh_key.encode(out);
    }
}

impl<'a> Decode<'a> for NewNtfCreds {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Self {
            auth_key: AuthPublicKey::decode(r)?,
            dh_key: X25519PublicKey::decode(r)?,
        })
    }
}

/// The fields of `NEW`.
///
/// Version notes: before v9 `queue_req` and `ntf_creds` must be `None`. At v9 to
/// v14 only the mode travels (as `sndSecure`), so `queue_req` must carry no link
/// data, and `None` is sent as `F` (which decodes as `Some(Contact(None))`, as in
/// the reference). `ntf_creds` needs v17.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueue {
    /// The recipient's command authorization key.
    pub rcv_auth_key: AuthPublicKey,
    /// The recipient's DH key for the relay-to-recipient encryption.
    pub rcv_dh_key: X25519PublicKey,
    /// Relay basic auth.
    pub basic_auth: Option<BasicAuth>,
    /// Subscribe as well, or only create.
    pub subscribe_mode: SubscriptionMode,
    /// Queue mode and short-link data.
    pub queue_req: Option<QueueReqData>,
    /// Notifier credentials.
    pub ntf_creds: Option<NewNtfCreds>,
}

impl SmpEncode for NewQueue {
    fn smp_encode(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.ntf_creds.is_some() && v < Version::NEW_NTF_CREDS {
            return Err(v.error("NEW notifier credentials"));
        }
        if self.queue_req.is_some() && v < Version::SND_AUTH_KEY {
            return Err(v.error("NEW queue request data"));
        }
        if self.queue_req.as_ref().is_some_and(QueueReqData::has_link) && v < Version::SHORT_LINKS {
            return Err(v.error("NEW queue link data"));
        }
        self.rcv_auth_key.encode(out);
        self.rcv_dh_key.encode(out);
        if v < Version::SND_AUTH_KEY {
            if let Some(a) = &self.basic_auth {
                out.push(b'A');
                a.encode(out);
            }
            self.subscribe_mode.encode(out);
            return Ok(());
        }
        self.basic_auth.encode(out);
        self.subscribe_mode.encode(out);
        if v < Version::SHORT_LINKS {
            let snd_secure = matches!(self.queue_req, Some(QueueReqData::Messaging(_)));
            snd_secure.encode(out);
            return Ok(());
        }
        self.queue_req.encode(out);
        if v >= Version::NEW_NTF_CREDS {
            self.ntf_creds.encode(out);
        }
        Ok(())
    }
}

/// The fields (after `NEW `) at version `v`.
impl<'a> DecodeWith<'a, Version> for NewQueue {
    fn decode_with(r: &mut Reader<'a>, v: Version) -> Result<Self, Error> {
        let rcv_auth_key = AuthPublicKey::decode(r)?;
        let rcv_dh_key = X25519PublicKey::decode(r)?;
        if v < Version::SND_AUTH_KEY {
            let basic_auth = if r.peek_u8() == Some(b'A') {
                r.u8("basic auth")?;
                Some(BasicAuth::decode(r)?)
            } else {
                None
            };
            let subscribe_mode = SubscriptionMode::decode(r)?;
            return Ok(Self {
                rcv_auth_key,
                rcv_dh_key,
                basic_auth,
                subscribe_mode,
                queue_req: None,
                ntf_creds: None,
            });
        }
        let basic_auth = Option::<BasicAuth>::decode(r)?;
        let subscribe_mode = SubscriptionMode::decode(r)?;
        let queue_req = if v < Version::SHORT_LINKS {
            Some(if r.bool("sndSecure")? {
                QueueReqData::Messaging(None)
            } else {
                QueueReqData::Contact(None)
            })
        } else {
            Option::<QueueReqData>::decode(r)?
        };
        let ntf_creds = if v >= Version::NEW_NTF_CREDS {
            Option::<NewNtfCreds>::decode(r)?
        } else {
            None
        };
        Ok(Self {
            rcv_auth_key,
            rcv_dh_key,
            basic_auth,
            subscribe_mode,
            queue_req,
            ntf_creds,
        })
    }
}
