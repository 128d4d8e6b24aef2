//! The SMP encoding of the relay's requests and responses, at the session's
//! negotiated version: transmissions in, [`Request`]s to the state; [`Response`]s
//! out, transmissions to the client.
//!
//! Malformed input is answered as the reference relay answers it: a batch or
//! transmission that does not parse gets `ERR BLOCK`; a wrong session id (before
//! v7) `ERR SESSION`; an unknown command tag `ERR CMD UNKNOWN`; a known command
//! whose fields do not parse `ERR CMD SYNTAX`.

use smp_groups_crypto::{ed25519, x25519};
use smp_groups_wire::smp::{
    self as wsmp, CommandError, ErrorType, QueueIds, ServerMsg, SmpEncode, Transmission,
    TransmissionAuth, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{MsgFlags, QueueReqData, SubscriptionMode};
use smp_groups_wire::{Decode, Error as WireError, Reader, ShortBytes};

use crate::auth::{AuthIndex, Verified, verify_request};
use crate::state::{RelayState, Session};
use crate::types::{
    AuthKey, Authorization, CmdError, ErrorCode, NewQueue, Outcome, QueueCommand, QueueMode, Reply,
    Request, Response,
};

/// Commands of the reference protocol this relay knows but does not serve
/// (notifiers, short links, queue info, services, proxying).
pub(crate) const NOT_SERVED: [&str; 14] = [
    "NKEY", "NDEL", "NSUB", "NSUBS", "SUBS", "RKEY", "LSET", "LDEL", "LKEY", "LGET", "QUE", "PRXY",
    "PFWD", "RFWD",
];

fn error_response(corr_id: Vec<u8>, entity_id: Vec<u8>, e: ErrorCode) -> Response {
    Response {
        corr_id,
        entity_id,
        reply: Reply::Err(e),
    }
}

/// The correlation id of a transmission whose authorization does not decode,
/// read the way the reference reads it (any authorization length).
fn salvage_corr_id(v: Version, bytes: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(bytes);
    let read = |r: &mut Reader<'_>| -> Result<Vec<u8>, WireError> {
        let auth = r.short_bytes("authorization")?;
        if v >= Version::SERVICE_CERTS && !auth.is_empty() {
            r.maybe("service signature", |r| {
                r.short_bytes("service signature").map(|_| ())
            })?;
        }
        if v < Version::AUTH_CMDS {
            r.short_bytes("session id")?;
        }
        Ok(r.short_bytes("corrId")?.to_vec())
    };
    read(&mut r).unwrap_or_default()
}

/// Decodes one transmission received on a session with id `session_id` at
/// version `v`, or the error response the reference gives for it.
#[allow(clippy::result_large_err)] // the error is the response to send, built once per request
pub(crate) fn decode_request(
    v: Version,
    session_id: &[u8],
    bytes: &[u8],
) -> Result<Request, Response> {
    let t = smp_groups_wire::decode_all_with::<Transmission, _>(bytes, v)
        .map_err(|_| error_response(salvage_corr_id(v, bytes), Vec::new(), ErrorCode::Block))?;
    let corr_id = t.corr_id.into_vec();
    let entity_id = t.entity_id.into_vec();
    if t.session_id
        .as_ref()
        .is_some_and(|s| s.as_slice() != session_id)
    {
        return Err(error_response(corr_id, Vec::new(), ErrorCode::Session));
    }
    // Only an authorization is checked against the authorized bytes (a copy
    // of the whole command, the body of a SEND included).
    let authorized = if matches!(t.auth, TransmissionAuth::None) {
        Vec::new()
    } else {
        wsmp::encode_for_auth(session_id, &corr_id, &entity_id, &t.command)
            .map_err(|_| error_response(corr_id.clone(), Vec::new(), ErrorCode::Block))?
    };
    let auth = match t.auth {
        TransmissionAuth::None => Authorization::None,
        TransmissionAuth::Signature(s) => Authorization::Ed25519(ed25519::Signature::from_bytes(s)),
        TransmissionAuth::Authenticator(a) => Authorization::Authenticator(a),
    };
    match decode_command(v, &t.command) {
        Ok(command) => Ok(Request {
            corr_id,
            entity_id,
            auth,
            authorized,
            command,
        }),
        Err(e) => Err(error_response(corr_id, entity_id, ErrorCode::Cmd(e))),
    }
}

fn auth_key(k: wsmp::AuthPublicKey) -> AuthKey {
    match k {
        wsmp::AuthPublicKey::Ed25519(k) => AuthKey::Ed25519(ed25519::PublicKey::from_bytes(k.0)),
        wsmp::AuthPublicKey::X25519(k) => AuthKey::X25519(x25519::PublicKey::from_bytes(k.0)),
    }
}

/// Decodes a command at version `v`.
pub(crate) fn decode_command(v: Version, bytes: &[u8]) -> Result<QueueCommand, CmdError> {
    use wsmp::{RecipientCommand as R, SenderCommand as S};
    let tag_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    let tag = bytes.get(..tag_end).unwrap_or_default();
    let cmd = match smp_groups_wire::decode_all_with::<wsmp::Command, _>(bytes, v) {
        Ok(c) => c,
        Err(WireError::TooLong {
            what: "SEND body", ..
        }) if tag == b"SEND" => {
            // The reference parses any length and answers LARGE_MSG after
            // authorization, so the length is checked by the state.
            return decode_large_send(bytes).ok_or(CmdError::Syntax);
        }
        Err(WireError::UnknownTag {
            what: "SMP command",
            ..
        }) => {
            return match NOT_SERVED.iter().find(|t| t.as_bytes() == tag) {
                Some(t) => Ok(QueueCommand::NotServed(t)),
                None => Err(CmdError::Unknown),
            };
        }
        Err(_) => return Err(CmdError::Syntax),
    };
    Ok(match cmd {
        wsmp::Command::Recipient(R::New(nq)) => {
            let nq = *nq;
            if nq.ntf_creds.is_some()
                || matches!(
                    nq.queue_req,
                    Some(QueueReqData::Messaging(Some(_)) | QueueReqData::Contact(Some(_)))
                )
            {
                return Ok(QueueCommand::NotServed("NEW"));
            }
            QueueCommand::New(NewQueue {
                recipient_key: auth_key(nq.rcv_auth_key),
                recipient_dh_key: x25519::PublicKey::from_bytes(nq.rcv_dh_key.0),
                basic_auth: nq.basic_auth.map(|a| a.as_slice().to_vec()),
                subscribe: nq.subscribe_mode == SubscriptionMode::Subscribe,
                mode: nq.queue_req.map(|q| match q.mode() {
                    wsmp::QueueMode::Messaging => QueueMode::Messaging,
                    wsmp::QueueMode::Contact => QueueMode::Contact,
                }),
            })
        }
        wsmp::Command::Recipient(R::Sub) => QueueCommand::Sub,
        wsmp::Command::Recipient(R::Key(k)) => QueueCommand::Key(auth_key(k)),
        wsmp::Command::Recipient(R::Get) => QueueCommand::Get,
        wsmp::Command::Recipient(R::Ack(id)) => QueueCommand::Ack(id.into_vec()),
        wsmp::Command::Recipient(R::Off) => QueueCommand::Off,
        wsmp::Command::Recipient(R::Del) => QueueCommand::Del,
        wsmp::Command::Sender(S::SKey(k)) => QueueCommand::SKey(auth_key(k)),
        wsmp::Command::Sender(S::Send { flags, body }) => QueueCommand::Send {
            notification: flags.notification,
            body,
        },
        wsmp::Command::Ping => QueueCommand::Ping,
        _ => return Err(CmdError::Unknown),
    })
}

/// `SEND flags SP body` with a body longer than the version allows.
fn decode_large_send(bytes: &[u8]) -> Option<QueueCommand> {
    let mut r = Reader::new(bytes.strip_prefix(b"SEND ")?);
    let flags = MsgFlags::decode(&mut r).ok()?;
    r.literal(b" ", "SEND body").ok()?;
    Some(QueueCommand::Send {
        notification: flags.notification,
        body: r.rest().to_vec(),
    })
}

fn error_type(e: ErrorCode) -> ErrorType {
    match e {
        ErrorCode::Block => ErrorType::Block,
        ErrorCode::Session => ErrorType::Session,
        ErrorCode::Cmd(c) => ErrorType::Cmd(match c {
            CmdError::Unknown => CommandError::Unknown,
            CmdError::Syntax => CommandError::Syntax,
            CmdError::Prohibited => CommandError::Prohibited,
            CmdError::NoAuth => CommandError::NoAuth,
            CmdError::HasAuth => CommandError::HasAuth,
            CmdError::NoEntity => CommandError::NoEntity,
        }),
        ErrorCode::Auth => ErrorType::Auth,
        ErrorCode::Quota => ErrorType::Quota,
        ErrorCode::NoMsg => ErrorType::NoMsg,
        ErrorCode::LargeMsg => ErrorType::LargeMsg,
        ErrorCode::Internal => ErrorType::Internal,
    }
}

/// Encodes the command part of a response at version `v`.
pub(crate) fn encode_reply(v: Version, reply: &Reply) -> Result<Vec<u8>, WireError> {
    let msg = match reply {
        Reply::Ids {
            recipient_id,
            sender_id,
            server_dh_key,
            mode,
        } => ServerMsg::Ids(QueueIds {
            rcv_id: ShortBytes::new(recipient_id.to_vec())?,
            snd_id: ShortBytes::new(sender_id.to_vec())?,
            srv_dh_key: X25519PublicKey(*server_dh_key.as_bytes()),
            queue_mode: if v >= Version::SND_AUTH_KEY {
                mode.map(|m| match m {
                    QueueMode::Messaging => wsmp::QueueMode::Messaging,
                    QueueMode::Contact => wsmp::QueueMode::Contact,
                })
            } else {
                None
            },
            link_id: None,
            service_id: None,
            ntf_creds: None,
        }),
        // From v16 the reference answers SUB with `SOK` and the service id, absent
        // here: the relay has no service clients.
        Reply::Subscribed if v >= Version::SERVICE_CERTS => ServerMsg::Sok(None),
        Reply::Subscribed | Reply::Ok => ServerMsg::Ok,
        Reply::Pong => ServerMsg::Pong,
        Reply::Msg { msg_id, enc_body } => ServerMsg::Msg {
            msg_id: ShortBytes::new(msg_id.to_vec())?,
            body: enc_body.clone(),
        },
        Reply::End => ServerMsg::End,
        // Before v10 a deleted queue is reported as END.
        Reply::Deld if v < Version::DELETED_EVENT => ServerMsg::End,
        Reply::Deld => ServerMsg::Deld,
        Reply::Err(e) => ServerMsg::Err(error_type(*e)),
    };
    let mut out = Vec::new();
    msg.smp_encode(v, &mut out)?;
    Ok(out)
}

/// Encodes a response as a transmission (no authorization) at version `v`.
pub fn encode_response(v: Version, session_id: &[u8], r: &Response) -> Result<Vec<u8>, WireError> {
    let t = Transmission {
        auth: TransmissionAuth::None,
        service_sig: None,
        session_id: if v < Version::AUTH_CMDS {
            Some(ShortBytes::new(session_id.to_vec())?)
        } else {
            None
        },
        corr_id: ShortBytes::new(r.corr_id.clone())?,
        entity_id: ShortBytes::new(r.entity_id.clone())?,
        command: encode_reply(v, &r.reply)?,
    };
    let mut out = Vec::with_capacity(t.command.len() + 64);
    t.smp_encode(v, &mut out)?;
    Ok(out)
}

/// Handles one received batch (a block's content): every transmission in it,
/// in order. A batch that does not parse gets one `ERR BLOCK`.
pub fn handle_batch(state: &mut RelayState, session: &Session, batch: &[u8], now: i64) -> Outcome {
    let v = Version(session.version);
    let Ok(ts) = wsmp::decode_batch(batch) else {
        return Outcome {
            responses: vec![error_response(Vec::new(), Vec::new(), ErrorCode::Block)],
            ..Outcome::default()
        };
    };
    let mut out = Outcome::default();
    for t in ts {
        match decode_request(v, &session.session_id, t) {
            Ok(req) => {
                let o = state.handle(session, req, now);
                out.responses.extend(o.responses);
                out.events.extend(o.events);
            }
            Err(resp) => out.responses.push(resp),
        }
    }
    out
}

/// A transmission of a received batch, ready for the queue logic: checked
/// (credentials and authorization, on the connection's task) or already
/// answered (it did not decode, or the check refused it).
#[derive(Debug)]
pub(crate) enum Prepared {
    /// To apply ([`RelayState::apply`]).
    Ready(Box<Verified>),
    /// The answer (an error), to send in its turn.
    Answer(Response),
}

/// Decodes a received batch and checks each transmission against `index`
/// (the relay side of [`handle_batch`] that needs no lock). A batch that does
/// not parse gets one `ERR BLOCK`.
pub(crate) fn prepare_batch(index: &AuthIndex, session: &Session, batch: &[u8]) -> Vec<Prepared> {
    let v = Version(session.version);
    let Ok(ts) = wsmp::decode_batch(batch) else {
        return vec![Prepared::Answer(error_response(
            Vec::new(),
            Vec::new(),
            ErrorCode::Block,
        ))];
    };
    ts.into_iter()
        .map(|t| match decode_request(v, &session.session_id, t) {
            Ok(req) => {
                let (corr_id, entity_id) = (req.corr_id.clone(), req.entity_id.clone());
                match verify_request(index, &session.auth, req) {
                    Ok(v) => Prepared::Ready(Box::new(v)),
                    Err(e) => Prepared::Answer(error_response(corr_id, entity_id, e)),
                }
            }
            Err(resp) => Prepared::Answer(resp),
        })
        .collect()
}
