//! [`NetworkRelay`]: SMP relays over the network, through
//! [`smp_groups_net::ReconnectingClient`] (TLS 1.3, the SMP handshake, block
//! encryption, reconnection with resubscription).
//!
//! One connection per relay address, opened on first use. Each operation runs
//! on its own task and reports one result; the core keeps at most one send in
//! flight per connection and one unacknowledged message per queue, so running
//! operations side by side does not reorder messages. One order is kept here:
//! a `SEND` starts only once every `KEY` (`RelayOp::Secure`) issued before it
//! has been answered. The core issues the `KEY` of a queue together with the
//! first message that lets the peer send to it signed (the joiner's
//! confirmation, the inviter's `HELLO`); a signed message reaching a queue
//! before its `KEY` is refused with `AUTH`, which the core takes as the peer
//! having deleted its queue (tasks started together run in any order, and the
//! two may go to different relays).
//!
//! Every operation that fails is logged at `warn` with its cause, and so is
//! every later attempt of it (the core retries temporary failures).
//!
//! Queues are created with a fresh Ed25519 recipient key and X25519 DH key.
//! Their secrets (the key's seed and the DH secret shared with the relay) are
//! written to the agent's `queue_keys` table before the queue is reported to
//! the core, so a crash never leaves the agent with a queue it cannot read.
//! Messages delivered by the relay are opened with that DH secret (the relay's
//! `crypto_box`, nonce = message id) and handed to the core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smp_groups_core::{OpId, RelayError, RelayEvent, RelayOp, Timestamp};
use smp_groups_crypto::ed25519::{PublicKey, SigningKey};
use smp_groups_crypto::rng::{RandomSource, SharedRng};
use smp_groups_crypto::{nacl, x25519};
use smp_groups_net::{
    ClientError, ConnectionEvent, Dialer, EventReceiver, ReconnectConfig, ReconnectingClient,
    TcpDialer,
};
use smp_groups_store::QueueKeys;
use smp_groups_wire::smp::RcvMsgBody;
use smp_groups_wire::smp::{ErrorType, MsgFlags, ProtocolServer, ServerMsg};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

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
/// use smp_groups_relay::Relay;
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
#[derive(Clone, Debug)]
pub struct NetworkRelay {
    config: ReconnectConfig,
    names: Arc<dyn Names>,
    dialer: Arc<dyn Dialer>,
}

impl Default for NetworkRelay {
    fn default() -> Self {
        Self::with_config(ReconnectConfig::default())
    }
}

impl NetworkRelay {
    /// With the default connection settings (timeouts, keep-alive, backoff).
    pub fn new() -> Self {
        Self::default()
    }

    /// With the given connection settings.
    pub fn with_config(config: ReconnectConfig) -> Self {
        Self {
            config,
            names: Arc::new(SmpAddresses),
            dialer: Arc::new(TcpDialer),
        }
    }

    /// With relay names read by `names` and byte streams opened by `dialer`
    /// (the in-memory network of tests); everything above the byte stream is
    /// unchanged.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn with_transport(
        config: ReconnectConfig,
        names: Arc<dyn Names>,
        dialer: Arc<dyn Dialer>,
    ) -> Self {
        Self {
            config,
            names,
            dialer,
        }
    }
}

/// What relay address the server named in an agent's configuration (and in
/// the core's operations) stands for.
pub(crate) trait Names: Send + Sync + std::fmt::Debug {
    /// The address of `server`; `None` when it names no relay (its operations
    /// then fail for good).
    fn resolve(&self, server: &str) -> Option<ProtocolServer>;
}

/// Servers are named by their `smp://keyHash@host[:port]` address.
#[derive(Debug)]
pub(crate) struct SmpAddresses;

impl Names for SmpAddresses {
    fn resolve(&self, server: &str) -> Option<ProtocolServer> {
        match ProtocolServer::parse_prefix(server) {
            Ok((address, rest)) if rest.trim().is_empty() => Some(address),
            Ok(_) | Err(_) => None,
        }
    }
}

impl RelayConnector for NetworkRelay {
    fn connect(&self, context: RelayContext) -> Result<Box<dyn RelayClient>, Error> {
        let keys = KeyTable::load(context.keys)?;
        Ok(Box::new(NetworkClient {
            shared: Arc::new(Shared {
                identity: context.identity,
                random: context.random,
                config: self.config.clone(),
                names: Arc::clone(&self.names),
                dialer: Arc::clone(&self.dialer),
                events: context.events,
                keys: Arc::new(Mutex::new(keys)),
                servers: Mutex::new(HashMap::new()),
                securing: Mutex::new(Securing::default()),
                failures: Mutex::new(HashMap::new()),
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
    random: Arc<dyn RandomSource>,
    config: ReconnectConfig,
    names: Arc<dyn Names>,
    dialer: Arc<dyn Dialer>,
    events: UnboundedSender<RelayEvent>,
    keys: Arc<Mutex<KeyTable>>,
    servers: Mutex<HashMap<String, ServerSlot>>,
    securing: Mutex<Securing>,
    /// Operations whose last attempt failed temporarily: attempts so far and
    /// the last cause (for the log of the next attempt).
    failures: Mutex<HashMap<OpId, (u32, String)>>,
}

/// At most this many failed operations are remembered for the retry log.
const MAX_FAILURES: usize = 4096;

/// The `KEY`s started and not yet answered, each with the signal its task
/// sets when it is (or drops, if it ends otherwise).
#[derive(Default)]
struct Securing {
    next: u64,
    open: HashMap<u64, watch::Receiver<bool>>,
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
            kind = op.command_name(),
            server = op.server()
        );
        // A SEND waits for the KEYs issued before it (see the module docs).
        let mut gate = None;
        let mut before = Vec::new();
        match &op {
            RelayOp::Secure { .. } => {
                let (tx, rx) = watch::channel(false);
                let mut s = lock(&shared.securing);
                s.next += 1;
                let key = s.next;
                s.open.insert(key, rx);
                gate = Some((key, tx));
            }
            RelayOp::Send { .. } => {
                before = lock(&shared.securing).open.values().cloned().collect();
            }
            _ => {}
        }
        let retry = lock(&shared.failures).get(&op.op()).cloned();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Some((attempts, cause)) = retry {
                    tracing::warn!(attempt = attempts + 1, last_failure = %cause, "relay operation retried");
                }
                if !before.is_empty() {
                    tracing::debug!(
                        keys = before.len(),
                        "send waits for the KEYs issued before it"
                    );
                    for mut rx in before {
                        // Dropped without an answer: nothing to wait for.
                        let _ = rx.wait_for(|answered| *answered).await;
                    }
                }
                tracing::debug!("relay operation started");
                let id = op.op();
                let event = run(&shared, op).await;
                if let Some((key, tx)) = gate {
                    lock(&shared.securing).open.remove(&key);
                    let _ = tx.send(true);
                }
                report(&shared, id, &event);
                // The runtime is gone when the channel is closed.
                let _ = shared.events.send(event.into_event(id));
            },
            span,
        ));
    }
}

/// Logs an operation's result: failures at `warn` with their cause, and
/// remembers temporary ones so that the next attempt is logged too.
fn report(shared: &Shared, id: OpId, result: &Outcome) {
    let mut failures = lock(&shared.failures);
    match result {
        Outcome::Ok(_) => {
            if let Some((attempts, _)) = failures.remove(&id) {
                tracing::info!(
                    attempts = attempts + 1,
                    "relay operation done after retries"
                );
            } else {
                tracing::debug!("relay operation done");
            }
        }
        Outcome::Done(why) => {
            failures.remove(&id);
            tracing::info!(reason = %why, "relay operation counted as done");
        }
        Outcome::Failed(RelayError::Temporary, cause) => {
            tracing::warn!(cause = %cause, "relay operation failed; the agent retries it");
            if failures.len() >= MAX_FAILURES && !failures.contains_key(&id) {
                failures.clear();
            }
            let entry = failures.entry(id).or_insert((0, String::new()));
            entry.0 += 1;
            entry.1.clone_from(cause);
        }
        Outcome::Failed(error, cause) => {
            failures.remove(&id);
            tracing::warn!(?error, cause = %cause, "relay operation failed for good");
        }
    }
}

/// What an operation came to.
enum Outcome {
    /// Its result.
    Ok(RelayEvent),
    /// Nothing was left to do (reported as success), and why.
    Done(&'static str),
    /// Failed: how the core sees it, and the cause.
    Failed(RelayError, String),
}

impl Outcome {
    fn into_event(self, op: OpId) -> RelayEvent {
        match self {
            Self::Ok(event) => event,
            Self::Done(_) => RelayEvent::Done { op },
            Self::Failed(error, _) => RelayEvent::Failed { op, error },
        }
    }
}

/// Why an operation failed, before it is reported.
enum Failure {
    /// Report this error; the cause is logged.
    Error(RelayError, String),
    /// Nothing to do: report success (an `ACK` of a message already gone),
    /// for this reason.
    Done(&'static str),
}

/// The core's view of a client error: retried, or final.
fn classify(e: &ClientError) -> RelayError {
    match e {
        ClientError::Server(ErrorType::Auth) => RelayError::Auth,
        ClientError::Server(ErrorType::LargeMsg | ErrorType::Cmd(_) | ErrorType::Blocked(_)) => {
            RelayError::Refused
        }
        _ => RelayError::Temporary,
    }
}

async fn run(shared: &Arc<Shared>, op: RelayOp) -> Outcome {
    match perform(shared, op).await {
        Ok(event) => Outcome::Ok(event),
        Err(Failure::Done(why)) => Outcome::Done(why),
        Err(Failure::Error(e, cause)) => Outcome::Failed(e, cause),
    }
}

/// A failure that is not the relay's answer.
fn local(error: RelayError, cause: &str) -> Failure {
    Failure::Error(error, cause.to_owned())
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
            let mut rng = SharedRng(Arc::clone(&shared.random));
            let key = SigningKey::generate(&mut rng);
            let dh = x25519::SecretKey::generate(&mut rng);
            let ids = client
                .new_queue(&key, &dh.public_key(), true)
                .await
                .map_err(|e| failure(&e, "NEW"))?;
            let relay_key = x25519::PublicKey::from_bytes(ids.srv_dh_key.0);
            let Ok(shared_dh) = dh.diffie_hellman_checked(&relay_key) else {
                return Err(local(
                    RelayError::Temporary,
                    "the relay's DH key is of small order",
                ));
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
                    return Err(Failure::Error(
                        RelayError::Temporary,
                        format!("cannot store the queue key: {e}"),
                    ));
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
            let secret = secret_of(&rcv_id)
                .ok_or_else(|| local(RelayError::NoQueue, "no key for this queue"))?;
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
            let secret = secret_of(&rcv_id)
                .ok_or_else(|| local(RelayError::NoQueue, "no key for this queue"))?;
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
            let secret =
                secret_of(&rcv_id).ok_or(Failure::Done("ACK on a queue we hold no key for"))?;
            match client.ack(&rcv_id, &secret.signing_key(), &msg_id).await {
                Ok(()) => Ok(done),
                Err(ClientError::Server(ErrorType::NoMsg)) => Err(Failure::Done(
                    "ACK: the relay has no such message delivered (NO_MSG)",
                )),
                Err(ClientError::Server(ErrorType::Auth)) => {
                    Err(Failure::Done("ACK: the relay has no such queue (AUTH)"))
                }
                Err(e) => Err(failure(&e, "ACK")),
            }
        }
        RelayOp::Delete { rcv_id, .. } => {
            let Some(secret) = secret_of(&rcv_id) else {
                return Err(Failure::Done("DEL of a queue we hold no key for"));
            };
            match client.del(&rcv_id, &secret.signing_key()).await {
                // AUTH: already deleted (an earlier attempt's answer was lost).
                Ok(()) | Err(ClientError::Server(ErrorType::Auth)) => {}
                Err(e) => return Err(failure(&e, "DEL")),
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

/// [`classify`], with the cause.
fn failure(e: &ClientError, command: &str) -> Failure {
    Failure::Error(classify(e), format!("{command}: {e}"))
}

/// The connection to `server`, opened (and its deliveries started) on first
/// use. An address that does not parse never will: its operations fail for good.
async fn connection(shared: &Arc<Shared>, server: &str) -> Result<ReconnectingClient, Failure> {
    let slot = Arc::clone(lock(&shared.servers).entry(server.to_owned()).or_default());
    let mut guard = slot.lock().await;
    if let Some(c) = guard.client.as_ref() {
        return Ok(c.clone());
    }
    if let Some(at) = guard.failed_at
        && at.elapsed() < CONNECT_RETRY
    {
        return Err(Failure::Error(
            RelayError::Temporary,
            format!(
                "the last connection attempt failed {} ms ago; not tried again before {} ms",
                at.elapsed().as_millis(),
                CONNECT_RETRY.as_millis()
            ),
        ));
    }
    let Some(address) = shared.names.resolve(server) else {
        tracing::error!(server, "not an SMP relay address");
        return Err(local(RelayError::Auth, "not an SMP relay address"));
    };
    let connecting =
        ReconnectingClient::connect_via(Arc::clone(&shared.dialer), address, shared.config.clone());
    let client = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(server, error = %e, "cannot connect to the relay");
            guard.failed_at = Some(tokio::time::Instant::now());
            return Err(Failure::Error(
                RelayError::Temporary,
                format!("cannot connect to the relay: {e}"),
            ));
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
            ConnectionEvent::Queue {
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
                let (ts, body) = open(&secret, &msg_id, &body).unwrap_or_else(|| {
                    tracing::warn!(server, "a delivered message does not open; acknowledged");
                    (0, Vec::new())
                });
                let delivered = RelayEvent::Message {
                    server: server.clone(),
                    rcv_id: entity_id,
                    msg_id,
                    ts: relay_time(ts),
                    body,
                };
                if events.send(delivered).is_err() {
                    return;
                }
            }
            // Another connection took the subscription (END), or the queue
            // was deleted (DELD): nothing more comes on it here.
            ConnectionEvent::Queue {
                entity_id,
                msg: msg @ (ServerMsg::End | ServerMsg::Deld),
            } => {
                tracing::warn!(
                    server,
                    event = msg.tag(),
                    queue = %hex_id(&entity_id),
                    "the relay ended a subscription"
                );
            }
            ConnectionEvent::Queue { msg, .. } => {
                tracing::info!(server, event = msg.tag(), "queue event");
            }
            // After the agent stopped, its connections closing is no news.
            ConnectionEvent::Disconnected(_) if events.is_closed() => return,
            ConnectionEvent::Disconnected(ClientError::Transport(e))
                if matches!(*e, smp_groups_net::NetError::Closed) =>
            {
                tracing::info!(server, "the relay closed the connection");
            }
            ConnectionEvent::Disconnected(e) => {
                tracing::warn!(server, error = %e, "relay connection lost");
            }
            ConnectionEvent::Reconnected {
                resubscribed,
                failed: 0,
            } => {
                tracing::info!(server, resubscribed, "reconnected to the relay");
            }
            ConnectionEvent::Reconnected {
                resubscribed,
                failed,
            } => {
                tracing::warn!(
                    server,
                    resubscribed,
                    failed,
                    "reconnected to the relay; some queues are not subscribed (those the relay refused are dropped, the others are tried again on the next connection)"
                );
            }
            _ => {}
        }
    }
}

/// The relay's timestamp and the sender's body of a delivered message
/// (`None`: it does not open, or is the relay's quota marker).
fn open(secret: &QueueSecret, msg_id: &[u8], body: &[u8]) -> Option<(i64, Vec<u8>)> {
    let nonce: &[u8; 24] = msg_id.try_into().ok()?;
    let plain = nacl::cb_decrypt(&secret.dh, nonce, body).ok()?;
    match smp_groups_wire::decode_all::<RcvMsgBody>(&plain).ok()? {
        RcvMsgBody::Message {
            timestamp, body, ..
        } => Some((timestamp, body)),
        RcvMsgBody::Quota { .. } => None,
    }
}

/// An SMP relay's message timestamp (seconds since the Unix epoch) on the
/// core's time scale (milliseconds since the Unix epoch); one before the
/// epoch reads as the epoch.
fn relay_time(secs: i64) -> Timestamp {
    Timestamp::from_millis(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

/// The first bytes of a queue id in hex, for logs.
fn hex_id(id: &[u8]) -> String {
    id.iter().take(8).fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}
