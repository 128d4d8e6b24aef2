//! [`InProcessRelay`]: SMP relays running in this process (the relay crate's
//! queue logic, [`RelayState`], with its SQLite store in memory), without TLS
//! or the SMP block transport.
//!
//! This is not the network path: commands are given to the relay state as typed
//! requests, signed with real Ed25519 keys and checked by the relay as it checks
//! them on the wire, and delivered messages are decrypted from the relay's
//! `crypto_box` as a network client would. Several relays can be registered;
//! each agent creates its queues on the relay named in its configuration and
//! sends to whichever relay a peer's queue is on.
//!
//! The recipient credentials of each queue (its Ed25519 key and DH secret) are
//! kept by the hub, per agent identity, so an agent restarted in the same
//! process keeps access to its queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smp_groups_core::{OpId, RelayError, RelayEvent, RelayOp};
use smp_groups_crypto::rng::{RandomSource, SharedRng};
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::SessionAuth;
use smp_groups_relay::{
    AuthKey, Authorization, CmdError, Command, ConnId, ErrorCode, NewQueue, QueueId, Reply,
    Request, Response,
};
use smp_groups_relay::{RelayConfig, RelayState, Session, Store};
use smp_groups_wire::smp::RcvMsgBody;
use tokio::sync::mpsc::UnboundedSender;

use crate::relay_client::{RelayClient, RelayConnector, RelayContext};

/// The SMP version the in-process sessions claim (block encryption era).
const SESSION_VERSION: u16 = 11;

/// Why a relay could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InProcessError {
    /// The relay's store could not be opened.
    #[error("relay store: {0}")]
    Store(#[from] smp_groups_relay::StoreError),
    /// A relay with this name exists.
    #[error("relay {0} exists")]
    Duplicate(String),
}

struct Creds {
    key: ed25519::SigningKey,
    dh: [u8; 32],
}

#[derive(Default)]
struct Hub {
    relays: HashMap<String, RelayState>,
    /// (server, connection) -> where its deliveries go.
    sinks: HashMap<(String, ConnId), UnboundedSender<RelayEvent>>,
    /// (identity, server, recipient id) -> credentials.
    creds: HashMap<(String, String, QueueId), Creds>,
    next_corr: u64,
}

/// In-process SMP relays shared by the agents of this process.
#[derive(Clone, Default)]
pub struct InProcessRelay {
    hub: Arc<Mutex<Hub>>,
}

impl std::fmt::Debug for InProcessRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessRelay").finish_non_exhaustive()
    }
}

fn lock(hub: &Mutex<Hub>) -> MutexGuard<'_, Hub> {
    hub.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl InProcessRelay {
    /// No relays yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a relay named `server` (the name agents put in their configuration),
    /// with the relay's default settings and an in-memory store.
    pub fn add_relay(&self, server: &str) -> Result<(), InProcessError> {
        let state = RelayState::open(
            Store::in_memory()?,
            RelayConfig::default(),
            Box::new(rng::system()),
        )?;
        let mut hub = lock(&self.hub);
        if hub.relays.contains_key(server) {
            return Err(InProcessError::Duplicate(server.to_owned()));
        }
        hub.relays.insert(server.to_owned(), state);
        Ok(())
    }

    /// Messages waiting in the queues of relay `server`.
    pub fn message_count(&self, server: &str) -> usize {
        lock(&self.hub)
            .relays
            .get(server)
            .map_or(0, RelayState::message_count)
    }

    /// Queues on relay `server`.
    pub fn queue_count(&self, server: &str) -> usize {
        lock(&self.hub)
            .relays
            .get(server)
            .map_or(0, RelayState::queue_count)
    }
}

impl RelayConnector for InProcessRelay {
    /// The in-process relays keep queue credentials in their hub (per agent
    /// identity, for the life of the process), not in `context.keys`.
    fn connect(&self, context: RelayContext) -> Result<Box<dyn RelayClient>, crate::Error> {
        Ok(Box::new(InProcessClient {
            hub: Arc::clone(&self.hub),
            identity: context.identity,
            events: context.events,
            random: context.random,
            conns: HashMap::new(),
        }))
    }
}

/// One agent's client of the in-process relays: one relay connection per server.
struct InProcessClient {
    hub: Arc<Mutex<Hub>>,
    identity: String,
    events: UnboundedSender<RelayEvent>,
    random: Arc<dyn RandomSource>,
    conns: HashMap<String, ConnId>,
}

impl Drop for InProcessClient {
    fn drop(&mut self) {
        let mut hub = lock(&self.hub);
        for (server, conn) in self.conns.drain() {
            if let Some(r) = hub.relays.get_mut(&server) {
                r.disconnect(conn);
            }
            hub.sinks.remove(&(server, conn));
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn failed(op: OpId, error: RelayError) -> RelayEvent {
    RelayEvent::Failed { op, error }
}

fn map_error(op: OpId, code: ErrorCode) -> RelayEvent {
    match code {
        // A quota or an internal failure may pass: retried.
        ErrorCode::Quota | ErrorCode::Internal | ErrorCode::Block | ErrorCode::Session => {
            failed(op, RelayError::Temporary)
        }
        ErrorCode::NoMsg => RelayEvent::Done { op },
        // Refused authorization, and commands the relay refuses as malformed,
        // will be refused again.
        ErrorCode::Auth => failed(op, RelayError::Auth),
        ErrorCode::LargeMsg | ErrorCode::Cmd(_) => failed(op, RelayError::Refused),
    }
}

impl InProcessClient {
    fn emit(&self, ev: RelayEvent) {
        // The runtime is gone when the channel is closed: nothing to report to.
        let _ = self.events.send(ev);
    }

    fn run(&mut self, op: &RelayOp) -> Vec<RelayEvent> {
        let id = op.op();
        let server = op.server().to_owned();
        let mut hub = lock(&self.hub);
        let hub = &mut *hub;
        let Some(relay) = hub.relays.get_mut(&server) else {
            return vec![failed(id, RelayError::Temporary)];
        };
        let conn = *self.conns.entry(server.clone()).or_insert_with(|| {
            let c = relay.connect();
            hub.sinks.insert((server.clone(), c), self.events.clone());
            c
        });
        let session = Session {
            conn,
            version: SESSION_VERSION,
            session_id: conn.to_be_bytes().to_vec(),
            auth: SessionAuth { server_key: None },
        };
        hub.next_corr += 1;
        let corr_id = hub.next_corr.to_be_bytes().to_vec();
        let creds_of = |rcv: &[u8]| -> Option<&Creds> {
            let q = QueueId::try_from(rcv).ok()?;
            hub.creds.get(&(self.identity.clone(), server.clone(), q))
        };
        let mut rng = SharedRng(Arc::clone(&self.random));
        let mut new_creds = None;
        let (entity, signer, command): (Vec<u8>, Option<ed25519::SigningKey>, Command) = match op {
            RelayOp::CreateQueue { .. } => {
                let key = ed25519::SigningKey::generate(&mut rng);
                let dh = x25519::SecretKey::generate(&mut rng);
                let nq = NewQueue {
                    recipient_key: AuthKey::Ed25519(key.public_key()),
                    recipient_dh_key: dh.public_key(),
                    basic_auth: None,
                    subscribe: true,
                    mode: None,
                };
                let signer = ed25519::SigningKey::from_seed(key.seed());
                new_creds = Some((key, dh));
                (Vec::new(), Some(signer), Command::New(nq))
            }
            RelayOp::Secure {
                rcv_id, sender_key, ..
            } => {
                let Some(c) = creds_of(rcv_id) else {
                    return vec![failed(id, RelayError::NoQueue)];
                };
                let key = AuthKey::Ed25519(ed25519::PublicKey::from_bytes(*sender_key));
                (
                    rcv_id.clone(),
                    Some(ed25519::SigningKey::from_seed(c.key.seed())),
                    Command::Key(key),
                )
            }
            RelayOp::Subscribe { rcv_id, .. } => {
                let Some(c) = creds_of(rcv_id) else {
                    return vec![failed(id, RelayError::NoQueue)];
                };
                (
                    rcv_id.clone(),
                    Some(ed25519::SigningKey::from_seed(c.key.seed())),
                    Command::Sub,
                )
            }
            RelayOp::Ack { rcv_id, msg_id, .. } => {
                let Some(c) = creds_of(rcv_id) else {
                    return vec![RelayEvent::Done { op: id }];
                };
                (
                    rcv_id.clone(),
                    Some(ed25519::SigningKey::from_seed(c.key.seed())),
                    Command::Ack(msg_id.clone()),
                )
            }
            RelayOp::Delete { rcv_id, .. } => {
                let Some(c) = creds_of(rcv_id) else {
                    return vec![RelayEvent::Done { op: id }];
                };
                (
                    rcv_id.clone(),
                    Some(ed25519::SigningKey::from_seed(c.key.seed())),
                    Command::Del,
                )
            }
            RelayOp::Send {
                snd_id, auth, body, ..
            } => (
                snd_id.clone(),
                auth.map(ed25519::SigningKey::from_seed),
                Command::Send {
                    notification: false,
                    body: body.clone(),
                },
            ),
        };
        let mut authorized = session.session_id.clone();
        authorized.extend_from_slice(&corr_id);
        authorized.extend_from_slice(&entity);
        let auth = signer.map_or(Authorization::None, |k| {
            Authorization::Ed25519(k.sign(&authorized))
        });
        let request = Request {
            corr_id,
            entity_id: entity,
            auth,
            authorized,
            command,
        };
        let outcome = relay.handle(&session, request, now_secs());
        let mut out = Vec::new();
        for response in outcome.responses {
            let Response {
                entity_id, reply, ..
            } = response;
            match reply {
                Reply::Ids {
                    recipient_id,
                    sender_id,
                    server_dh_key,
                    ..
                } => {
                    if let Some((key, dh)) = new_creds.take() {
                        let shared = *dh.diffie_hellman(&server_dh_key).as_bytes();
                        hub.creds.insert(
                            (self.identity.clone(), server.clone(), recipient_id),
                            Creds { key, dh: shared },
                        );
                    }
                    out.push(RelayEvent::QueueCreated {
                        op: id,
                        rcv_id: recipient_id.to_vec(),
                        snd_id: sender_id.to_vec(),
                    });
                }
                Reply::Ok | Reply::Subscribed | Reply::Pong | Reply::End | Reply::Deld => {
                    out.push(RelayEvent::Done { op: id });
                }
                Reply::Msg { msg_id, enc_body } => {
                    // SUB or ACK answered with the next message: the command
                    // succeeded, and the message is delivered.
                    out.push(RelayEvent::Done { op: id });
                    out.extend(open_message(
                        hub,
                        &self.identity,
                        &server,
                        &entity_id,
                        msg_id,
                        &enc_body,
                    ));
                }
                Reply::Err(ErrorCode::Cmd(CmdError::NoAuth))
                    if matches!(op, RelayOp::Ack { .. }) =>
                {
                    out.push(RelayEvent::Done { op: id });
                }
                Reply::Err(code) => out.push(map_error(id, code)),
            }
        }
        // Deliveries to other connections (the recipients of a SEND).
        for (to, response) in outcome.events {
            if let Reply::Msg { msg_id, enc_body } = response.reply {
                let Some(sink) = hub.sinks.get(&(server.clone(), to)).cloned() else {
                    continue;
                };
                let owner = hub
                    .creds
                    .keys()
                    .find(|(_, s, q)| *s == server && q.as_slice() == response.entity_id.as_slice())
                    .map(|(i, _, _)| i.clone());
                if let Some(owner) = owner {
                    if let Some(ev) =
                        open_message(hub, &owner, &server, &response.entity_id, msg_id, &enc_body)
                    {
                        let _ = sink.send(ev);
                    }
                }
            }
        }
        out
    }
}

/// Decrypts a delivered `MSG` with the queue's DH secret: `ts (8) flag (1) ' '
/// body`. A message that does not open is dropped (and logged): the relay
/// redelivers it until it is acknowledged, so it is not lost silently.
fn open_message(
    hub: &Hub,
    identity: &str,
    server: &str,
    rcv_id: &[u8],
    msg_id: [u8; 24],
    enc_body: &[u8],
) -> Option<RelayEvent> {
    let q = QueueId::try_from(rcv_id).ok()?;
    let creds = hub
        .creds
        .get(&(identity.to_owned(), server.to_owned(), q))?;
    match nacl::cb_decrypt(&creds.dh, &msg_id, enc_body) {
        Ok(plain) => match smp_groups_wire::decode_all::<RcvMsgBody>(&plain) {
            Ok(RcvMsgBody::Message {
                timestamp, body, ..
            }) => Some(RelayEvent::Message {
                server: server.to_owned(),
                rcv_id: rcv_id.to_vec(),
                msg_id: msg_id.to_vec(),
                ts: crate::network::relay_time(timestamp),
                body,
            }),
            Ok(RcvMsgBody::Quota { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a delivered message does not parse");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a delivered message");
            None
        }
    }
}

impl RelayClient for InProcessClient {
    fn perform(&mut self, op: RelayOp) {
        let span = tracing::debug_span!("relay_op", op = op.op().0, server = op.server());
        let _guard = span.enter();
        for ev in self.run(&op) {
            self.emit(ev);
        }
    }
}
