//! Responses and events a relay sends to a client (reference `BrokerMsg`).
//!
//! ```text
//! IDS SP rcvId sndId srvDhKey [v9-14: sndSecure] [v>=15: maybe(queueMode) maybe(linkId)]
//!     [v>=16: maybe(serviceId)] [v>=17: maybe(notifierId srvNtfDhKey)]
//! MSG SP short(msgId) encBody         ; encBody is the rest
//! END | DELD (v>=10) | OK | SOK (v>=16) | PONG | ERR SP errorType
//! ```

use super::command::{space, split_tag};
use super::error_type::ErrorType;
use super::keys::X25519PublicKey;
use super::new_queue::QueueMode;
use super::version::{SmpEncode, Version};
use crate::{Decode, DecodeWith, Encode, Error, Reader, ShortBytes};

/// Notifier credentials the relay created with the queue (v>=17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNtfCreds {
    /// The notifier id.
    pub notifier_id: ShortBytes,
    /// The relay's DH key for notification metadata.
    pub dh_key: X25519PublicKey,
}

/// The fields of `IDS`, the answer to `NEW`.
///
/// Version notes: before v9 only the ids and key travel. At v9 to v14 the mode
/// travels as `sndSecure` (`None` is sent as `F`, read back as
/// `Some(Contact)`); `link_id` needs v15, `service_id` v16, `ntf_creds` v17.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIds {
    /// The recipient's queue id.
    pub rcv_id: ShortBytes,
    /// The sender's queue id.
    pub snd_id: ShortBytes,
    /// The relay's DH key for the relay-to-recipient encryption.
    pub srv_dh_key: X25519PublicKey,
    /// The queue mode (v>=9).
    pub queue_mode: Option<QueueMode>,
    /// The short-link id (v>=15).
    pub link_id: Option<ShortBytes>,
    /// The service the queue is associated with (v>=16).
    pub service_id: Option<ShortBytes>,
    /// Notifier credentials (v>=17).
    pub ntf_creds: Option<ServerNtfCreds>,
}

/// A relay response or event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMsg {
    /// Queue created.
    Ids(QueueIds),
    /// A delivered message: its id and the body encrypted for the recipient.
    Msg {
        /// The message id (also the nonce of the body encryption).
        msg_id: ShortBytes,
        /// The encrypted body.
        body: Vec<u8>,
    },
    /// Subscription ended (another client subscribed).
    End,
    /// The queue was deleted (v>=10).
    Deld,
    /// Success.
    Ok,
    /// The answer to `SUB` from v16: subscribed, with the service id when the
    /// client is a service (`SOK SP maybe(shortString)`).
    Sok(Option<ShortBytes>),
    /// Error.
    Err(ErrorType),
    /// The answer to `PING`.
    Pong,
}

impl ServerMsg {
    /// The ASCII tag.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Ids(_) => "IDS",
            Self::Msg { .. } => "MSG",
            Self::End => "END",
            Self::Deld => "DELD",
            Self::Ok => "OK",
            Self::Sok(_) => "SOK",
            Self::Err(_) => "ERR",
            Self::Pong => "PONG",
        }
    }
}

fn encode_ids(q: &QueueIds, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
    if q.ntf_creds.is_some() && v < Version::NEW_NTF_CREDS {
        return Err(v.error("IDS notifier credentials"));
    }
    if q.service_id.is_some() && v < Version::SERVICE_CERTS {
        return Err(v.error("IDS service id"));
    }
    if q.link_id.is_some() && v < Version::SHORT_LINKS {
        return Err(v.error("IDS link id"));
    }
    if q.queue_mode.is_some() && v < Version::SND_AUTH_KEY {
        return Err(v.error("IDS queue mode"));
    }
    q.rcv_id.encode(out);
    q.snd_id.encode(out);
    q.srv_dh_key.encode(out);
    if v >= Version::SHORT_LINKS {
        q.queue_mode.encode(out);
        q.link_id.encode(out);
        if v >= Version::SERVICE_CERTS {
            q.service_id.encode(out);
        }
        if v >= Version::NEW_NTF_CREDS {
            match &q.ntf_creds {
                None => out.push(b'0'),
                Some(c) => {
                    out.push(b'1');
                    c.notifier_id.encode(out);
                    c.dh_key.encode(out);
                }
            }
        }
    } else if v >= Version::SND_AUTH_KEY {
        (q.queue_mode == Some(QueueMode::Messaging)).encode(out);
    }
    Ok(())
}

fn decode_ids(v: Version, r: &mut Reader<'_>) -> Result<QueueIds, Error> {
    let rcv_id = ShortBytes::decode(r)?;
    let snd_id = ShortBytes::decode(r)?;
    let srv_dh_key = X25519PublicKey::decode(r)?;
    let mut q = QueueIds {
        rcv_id,
        snd_id,
        srv_dh_key,
        queue_mode: None,
        link_id: None,
        service_id: None,
        ntf_creds: None,
    };
    if v >= Version::SHORT_LINKS {
        q.queue_mode = Option::<QueueMode>::decode(r)?;
        q.link_id = Option::<ShortBytes>::decode(r)?;
        if v >= Version::SERVICE_CERTS {
            q.service_id = Option::<ShortBytes>::decode(r)?;
        }
        if v >= Version::NEW_NTF_CREDS {
            q.ntf_creds = r.maybe("IDS notifier credentials", |r| {
                Ok(ServerNtfCreds {
                    notifier_id: ShortBytes::decode(r)?,
                    dh_key: X25519PublicKey::decode(r)?,
                })
            })?;
        }
    } else if v >= Version::SND_AUTH_KEY {
        q.queue_mode = Some(if r.bool("sndSecure")? {
            QueueMode::Messaging
        } else {
            QueueMode::Contact
        });
    }
    Ok(q)
}

impl SmpEncode for ServerMsg {
    fn smp_encode(&self, v: Version, out: &mut Vec<u8>) -> Result<(), Error> {
        v.check_supported("SMP response")?;
        if matches!(self, Self::Deld) && v < Version::DELETED_EVENT {
            return Err(v.error("DELD"));
        }
        out.extend_from_slice(self.tag().as_bytes());
        match self {
            Self::Ids(q) => {
                out.push(b' ');
                encode_ids(q, v, out)?;
            }
            Self::Msg { msg_id, body } => {
                out.push(b' ');
                msg_id.encode(out);
                out.extend_from_slice(body);
            }
            Self::Err(e) => {
                out.push(b' ');
                e.encode_at(v, out)?;
            }
            Self::Sok(service) => {
                if v < Version::SERVICE_CERTS {
                    return Err(v.error("SOK"));
                }
                out.push(b' ');
                service.encode(out);
            }
            Self::End | Self::Deld | Self::Ok | Self::Pong => {}
        }
        Ok(())
    }
}

/// A response, the rest of the input, at version `v`.
impl<'a> DecodeWith<'a, Version> for ServerMsg {
    fn decode_with(input: &mut Reader<'a>, v: Version) -> Result<Self, Error> {
        v.check_supported("SMP response")?;
        let (tag, params) = split_tag(input.rest());
        let mut r = Reader::new(params);
        let msg = match tag {
            b"IDS" => {
                space(&mut r, "IDS")?;
                Self::Ids(decode_ids(v, &mut r)?)
            }
            b"MSG" => {
                space(&mut r, "MSG")?;
                let msg_id = ShortBytes::decode(&mut r)?;
                Self::Msg {
                    msg_id,
                    body: r.rest().to_vec(),
                }
            }
            b"END" => Self::End,
            b"DELD" => {
                if v < Version::DELETED_EVENT {
                    return Err(v.error("DELD"));
                }
                Self::Deld
            }
            b"OK" => Self::Ok,
            b"SOK" => {
                if v < Version::SERVICE_CERTS {
                    return Err(v.error("SOK"));
                }
                space(&mut r, "SOK")?;
                Self::Sok(Option::<ShortBytes>::decode(&mut r)?)
            }
            b"ERR" => {
                space(&mut r, "ERR")?;
                Self::Err(ErrorType::decode_with(&mut r, v)?)
            }
            b"PONG" => Self::Pong,
            other => return Err(Error::unknown_tag("SMP response", other)),
        };
        r.expect_end("SMP response")?;
        Ok(msg)
    }
}

#[cfg(test)]
mod sok_tests {
    use super::*;

    #[test]
    fn sok_is_the_v16_answer_to_sub() {
        let v16 = Version::SERVICE_CERTS;
        assert_eq!(
            crate::decode_all_with::<ServerMsg, _>(b"SOK 0", v16),
            Ok(ServerMsg::Sok(None))
        );
        assert_eq!(ServerMsg::Sok(None).smp_bytes(v16).unwrap(), b"SOK 0");
        let with_service = ServerMsg::Sok(Some(ShortBytes::new(vec![7; 24]).unwrap()));
        let bytes = with_service.smp_bytes(v16).unwrap();
        assert_eq!(
            crate::decode_all_with::<ServerMsg, _>(&bytes, v16),
            Ok(with_service)
        );
        let v15 = Version(15);
        assert!(matches!(
            crate::decode_all_with::<ServerMsg, _>(b"SOK 0", v15),
            Err(Error::Version { .. })
        ));
        assert!(ServerMsg::Sok(None).smp_bytes(v15).is_err());
        assert!(matches!(
            crate::decode_all_with::<ServerMsg, _>(b"SOK 2", v16),
            Err(Error::UnknownTag { .. })
        ));
    }
}
