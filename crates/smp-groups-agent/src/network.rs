//! [`NetworkRelay`]: SMP relays over the network, through
//! [`smp_groups_net::ReconnectingClient`] (TLS 1.3, the SMP handshake, block
//! encryption, reconnection with resubscription).
//!
//! One connection per relay address, opened on first use. Each operation runs
//! on its own task and reports one result; the core keeps at most one send in
//! flight per connection and one unacknowledged message per queue, so running
//! operations side by side does not reorder what must stay in order.
//!
//! Queues are created with a fresh Ed25519 recipient key and X25519 DH key.
//! Their secrets (the key's seed and the DH secret shared with the relay) are
//! written to the agent's `queue_keys` table before the queue is reported to
//! the core, so a crash never leaves the agent with a queue it cannot read.
//! Messages delivered by the relay are opened with that DH secret (the relay's
//! `crypto_box`, nonce = message id) and handed to the core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smp_groups_core::{OpId, RelayError, RelayEvent, RelayOp};
use smp_groups_crypto::ed25519::{PublicKey, SigningKey};
use smp_groups_crypto::{nacl, rng, x25519};
use smp_groups_net::{
    ClientError, ClientEvent, EventReceiver, ReconnectConfig, ReconnectingClient,
};
use smp_groups_store::QueueKeys;
use smp_groups_wire::smp::message::RcvMsgBody;
use smp_groups_wire::smp::{ErrorType, MsgFlags, ProtocolServer, ServerMsg};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::Error;
use crate::relay_client::{RelayClient, RelayConnector, RelayContext};

/// Connects agents to SMP relays over TLS.
///
/// Two agents meeting through a relay (here one embedded in the test; any
/// `smp://keyHash@host:port` works):
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use smp_groups_agent::{Agent, AgentConfig, NetworkRelay};
/// use smp_groups_relay::server::Relay;
/// use smp_groups_wire::client::AgentEvent;
///
/// let dir = std::env::temp_dir().join(format!("smp-doc-network-{}", std::process::id()));
/// let relay = Relay::spawn_local(&dir).await?;
/// let net = Arc::new(NetworkRelay::new());
/// let alice = Agent::open(AgentConfig::new("alice", &relay.address(), None), net.clone())?;
/// let bob = Agent::open(AgentConfig::new("bob", &relay.address(), None), net)?;
/// let (mut alice_events, mut bob_events) = (alice.events().await?, bob.events().await?);
///
/// alice.new_connection(Some("bob")).await?;
/// let invitation = loop {
///     let d = alice_events.next().await.ok_or("alice stopped")?;
///     if let AgentEvent::Inv { invitation, .. } = d.event {
///         break invitation;
///     }
/// };
/// let bytes = smp_groups_wire::base64url::decode_unpadded(invitation.as_str(), "invitation")?;
/// bob.join_connection(Some("alice"), bytes).await?;
/// loop {
///     let d = bob_events.next().await.ok_or("bob stopped")?;
///     if matches!(d.event, AgentEvent::Con { .. }) {
///         break; // connected through the relay
///     }
/// }
/// relay.shutdown().await;
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct NetworkRelay {
    config: ReconnectConfig,
}

impl NetworkRelay {
    /// With the default connection settings (timeouts, keep-alive, backoff).
    pub fn new() -> Self {
        Self::default()
    }

    /// With the given connection settings.
    pub fn with_config(config: ReconnectConfig) -> Self {
        Self { config }
    }
}

impl RelayConnector for NetworkRelay {
    fn connect(&self, context: RelayContext) -> Result<Box<dyn RelayClient>, Error> {
        let keys = KeyTable::load(context.keys)?;
        Ok(Box::new(NetworkClient {
            shared: Arc::new(Shared {
                identity: context.identity,
                config: self.config.clone(),
                events: context.events,
                keys: Arc::new(Mutex::new(keys)),
                servers: Mutex::new(HashMap::new()),
            }),
        }))
    }
}

/// The secrets of one queue: the recipient key's seed and the DH secret
/// shared with the relay.
#[derive(Clone)]
struct QueueSecret {
    key_seed: [u8; 32],
    dh: [u8; 32],
}

impl QueueSecret {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&self.key_seed);
        v.extend_from_slice(&self.dh);
        v
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (seed, dh) = bytes.split_at_checked(32)?;
        Some(Self {
            key_seed: seed.try_into().ok()?,
            dh: dh.try_into().ok()?,
        })
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(self.key_seed)
    }
}

/// The durable table and its copy in memory.
struct KeyTable {
    db: QueueKeys,
    cache: HashMap<(String, Vec<u8>), QueueSecret>,
}

impl KeyTable {
    fn load(db: QueueKeys) -> Result<Self, Error> {
        let mut cache = HashMap::new();
        for row in db.load()? {
            let Some(secret) = QueueSecret::decode(&row.secret) else {
                return Err(Error::Store(smp_groups_store::StoreError::CorruptRow {
                    table: "queue_keys",
                    id: row.server,
                    reason: format!("a secret of {} bytes, not 64", row.secret.len()),
                }));
            };
            cache.insert((row.server, row.rcv_id), secret);
        }
        Ok(Self { db, cache })
    }
}

/// One relay's connection, or when connecting to it last failed.
#[derive(Default)]
struct Slot {
    client: Option<ReconnectingClient>,
    failed_at: Option<tokio::time::Instant>,
}

type ServerSlot = Arc<tokio::sync::Mutex<Slot>>;

/// After a failed connection attempt, operations for that relay fail at once
/// for this long (the core retries them) instead of each waiting for its own
/// connect timeout.
const CONNECT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

struct Shared {
    identity: String,
    config: ReconnectConfig,
    events: UnboundedSender<RelayEvent>,
    keys: Arc<Mutex<KeyTable>>,
    servers: Mutex<HashMap<String, ServerSlot>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One agent's connections.
struct NetworkClient {
    shared: Arc<Shared>,
}

impl Drop for NetworkClient {
    fn drop(&mut self) {
        // Dropping the clients closes the connections once the operations
        // still running on them finish.
        lock(&self.shared.servers).clear();
    }
}

impl RelayClient for NetworkClient {
    fn perform(&mut self, op: RelayOp) {
        let shared = Arc::clone(&self.shared);
        let span = tracing::debug_span!(
            "relay_op",
            agent = %shared.identity,
            op = op.op().0,
            server = op.server()
        );
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let event = run(&shared, op).await;
                if let RelayEvent::Failed { op, error } = &event {
                    tracing::debug!(op = op.0, ?error, "relay operation failed");
                }
                // The runtime is gone when the channel is closed.
                let _ = shared.events.send(event);
            },
            span,
        ));
    }
}

/// Why an operation failed, before it is reported.
enum Failure {
    /// Report this.
    Error(RelayError),
    /// Nothing to do: report success (an `ACK` of a message already gone).
    Done,
}

impl From<RelayError> for Failure {
    fn from(e: RelayError) -> Self {
        Self::Error(e)
    }
}

/// The core's view of a client error: retried, or final.
fn classify(e: &ClientError) -> RelayError {
    match e {
        ClientError::Server(
            ErrorType::Auth | ErrorType::LargeMsg | ErrorType::Cmd(_) | ErrorType::Blocked(_),
        ) => RelayError::Auth,
        _ => RelayError::Temporary,
    }
}

fn failed(op: OpId, error: RelayError) -> RelayEvent {
    RelayEvent::Failed { op, error }
}

async fn run(shared: &Arc<Shared>, op: RelayOp) -> RelayEvent {
    let id = op.op();
    match perform(shared, op).await {
        Ok(event) => event,
        Err(Failure::Done) => RelayEvent::Done { op: id },
        Err(Failure::Error(e)) => failed(id, e),
    }
}

async fn perform(shared: &Arc<Shared>, op: RelayOp) -> Result<RelayEvent, Failure> {
    let id = op.op();
    let server = op.server().to_owned();
    let client = connection(shared, &server).await?;
    let secret_of = |rcv: &[u8]| {
        lock(&shared.keys)
            .cache
            .get(&(server.clone(), rcv.to_vec()))
            .cloned()
    };
    let done = RelayEvent::Done { op: id };
    match op {
        RelayOp::CreateQueue { .. } => {
            let mut rng = rng::system();
            let key = SigningKey::generate(&mut rng);
            let dh = x25519::SecretKey::generate(&mut rng);
            let ids = client
                .new_queue(&key, &dh.public_key(), true)
                .await
                .map_err(|e| failure(&e, "NEW"))?;
            let relay_key = x25519::PublicKey::from_bytes(ids.srv_dh_key.0);
            let Ok(shared_dh) = dh.diffie_hellman_checked(&relay_key) else {
                tracing::warn!("the relay's DH key is of small order");
                return Err(RelayError::Temporary.into());
            };
            let secret = QueueSecret {
                key_seed: key.seed(),
                dh: *shared_dh.as_bytes(),
            };
            let rcv_id = ids.rcv_id.as_slice().to_vec();
            {
                let mut keys = lock(&shared.keys);
                if let Err(e) = keys.db.put(&server, &rcv_id, &secret.encode()) {
                    // Not reported: the queue is abandoned and made again.
                    tracing::error!(error = %e, "cannot store a queue key");
                    return Err(RelayError::Temporary.into());
                }
                keys.cache.insert((server.clone(), rcv_id.clone()), secret);
            }
            Ok(RelayEvent::QueueCreated {
                op: id,
                rcv_id,
                snd_id: ids.snd_id.as_slice().to_vec(),
            })
        }
        RelayOp::Secure {
            rcv_id, sender_key, ..
        } => {
            let secret = secret_of(&rcv_id).ok_or(RelayError::NoQueue)?;
            let c = client.client().map_err(|e| failure(&e, "KEY"))?;
            c.secure(
                &rcv_id,
                &secret.signing_key(),
                &PublicKey::from_bytes(sender_key),
            )
            .await
            .map_err(|e| failure(&e, "KEY"))?;
            Ok(done)
        }
        RelayOp::Subscribe { rcv_id, .. } => {
            let secret = secret_of(&rcv_id).ok_or(RelayError::NoQueue)?;
            client
                .sub(&rcv_id, &secret.signing_key())
                .await
                .map_err(|e| failure(&e, "SUB"))?;
            Ok(done)
        }
        RelayOp::Send {
            snd_id, auth, body, ..
        } => {
            let key = auth.map(SigningKey::from_seed);
            client
                .send(
                    &snd_id,
                    key.as_ref(),
                    MsgFlags {
                        notification: false,
                    },
                    &body,
                )
                .await
                .map_err(|e| failure(&e, "SEND"))?;
            Ok(done)
        }
        RelayOp::Ack { rcv_id, msg_id, .. } => {
            // A queue we hold no key for, or a message the relay no longer
            // has, has nothing left to acknowledge.
            let secret = secret_of(&rcv_id).ok_or(Failure::Done)?;
            match client.ack(&rcv_id, &secret.signing_key(), &msg_id).await {
                Ok(()) => Ok(done),
                Err(ClientError::Server(ErrorType::NoMsg | ErrorType::Auth)) => Err(Failure::Done),
                Err(e) => Err(failure(&e, "ACK").into()),
            }
        }
        RelayOp::Delete { rcv_id, .. } => {
            let Some(secret) = secret_of(&rcv_id) else {
                return Err(Failure::Done);
            };
            match client.del(&rcv_id, &secret.signing_key()).await {
                // AUTH: already deleted (an earlier attempt's answer was lost).
                Ok(()) | Err(ClientError::Server(ErrorType::Auth)) => {}
                Err(e) => return Err(failure(&e, "DEL").into()),
            }
            let mut keys = lock(&shared.keys);
            if let Err(e) = keys.db.remove(&server, &rcv_id) {
                tracing::warn!(error = %e, "cannot remove a deleted queue's key");
            }
            keys.cache.remove(&(server, rcv_id));
            Ok(done)
        }
    }
}

/// [`classify`], logged.
fn failure(e: &ClientError, command: &str) -> RelayError {
    let class = classify(e);
    tracing::debug!(error = %e, command, ?class, "relay command failed");
    class
}

/// The connection to `server`, opened (and its deliveries started) on first
/// use. An address that does not parse never will: its operations fail for good.
async fn connection(shared: &Arc<Shared>, server: &str) -> Result<ReconnectingClient, Failure> {
    let slot = Arc::clone(lock(&shared.servers).entry(server.to_owned()).or_default());
    let mut guard = slot.lock().await;
    if let Some(c) = guard.client.as_ref() {
        return Ok(c.clone());
    }
    if guard
        .failed_at
        .is_some_and(|at| at.elapsed() < CONNECT_RETRY)
    {
        return Err(RelayError::Temporary.into());
    }
    let address = match ProtocolServer::parse_prefix(server) {
        Ok((address, rest)) if rest.trim().is_empty() => address,
        Ok(_) | Err(_) => {
            tracing::error!(server, "not an SMP relay address");
            return Err(RelayError::Auth.into());
        }
    };
    let client = match ReconnectingClient::connect(address, shared.config.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(server, error = %e, "cannot connect to the relay");
            guard.failed_at = Some(tokio::time::Instant::now());
            return Err(RelayError::Temporary.into());
        }
    };
    tracing::info!(server, "connected to the relay");
    if let Some(events) = client.take_events() {
        tokio::spawn(deliver(
            server.to_owned(),
            events,
            Arc::clone(&shared.keys),
            shared.events.clone(),
        ));
    }
    guard.client = Some(client.clone());
    guard.failed_at = None;
    Ok(client)
}

/// Hands the relay's deliveries on `server` to the core, opened.
async fn deliver(
    server: String,
    mut rx: EventReceiver,
    keys: Arc<Mutex<KeyTable>>,
    events: UnboundedSender<RelayEvent>,
) {
    while let Some(event) = rx.recv().await {
        match event {
            ClientEvent::Queue {
                entity_id,
                msg: ServerMsg::Msg { msg_id, body },
            } => {
                let msg_id = msg_id.as_slice().to_vec();
                let secret = lock(&keys)
                    .cache
                    .get(&(server.clone(), entity_id.clone()))
                    .cloned();
                let Some(secret) = secret else {
                    tracing::warn!(server, "a message on a queue we hold no key for");
                    continue;
                };
                // A message that does not open is still handed on, empty, so
                // that the core acknowledges it and the queue moves on.
                let body = open(&secret, &msg_id, &body).unwrap_or_else(|| {
                    tracing::warn!(server, "a delivered message does not open; acknowledged");
                    Vec::new()
                });
                let delivered = RelayEvent::Message {
                    server: server.clone(),
                    rcv_id: entity_id,
                    msg_id,
                    body,
                };
                if events.send(delivered).is_err() {
                    return;
                }
            }
            ClientEvent::Queue { msg, .. } => {
                tracing::info!(server, event = msg.tag(), "queue event");
            }
            // After the agent stopped, its connections closing is no news.
            ClientEvent::Disconnected(_) if events.is_closed() => return,
            ClientEvent::Disconnected(ClientError::Transport(e))
                if matches!(*e, smp_groups_net::NetError::Closed) =>
            {
                tracing::info!(server, "the relay closed the connection");
            }
            ClientEvent::Disconnected(e) => {
                tracing::warn!(server, error = %e, "relay connection lost");
            }
            ClientEvent::Reconnected {
                resubscribed,
                failed,
            } => {
                tracing::info!(server, resubscribed, failed, "reconnected to the relay");
            }
            _ => {}
        }
    }
}

/// The sender's body of a delivered message (`None`: it does not open, or is
/// the relay's quota marker).
fn open(secret: &QueueSecret, msg_id: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let nonce: &[u8; 24] = msg_id.try_into().ok()?;
    let plain = nacl::cb_decrypt(&secret.dh, nonce, body).ok()?;
    match RcvMsgBody::decode(&plain).ok()? {
        RcvMsgBody::Message { body, .. } => Some(body),
        RcvMsgBody::Quota { .. } => None,
    }
}
