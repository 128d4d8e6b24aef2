//! The relay server: TLS accept, SMP handshake, a task per connection reading
//! blocks of transmissions and one writing responses and events, and the
//! store thread that owns the queue state.
//!
//! * **Connections** read a block, decode its transmissions and check their
//!   signatures against the shared key index (on the async workers, in
//!   parallel), and hand them to the store thread. Each connection has at
//!   most `max_inflight` transmissions handed over and not yet answered on its
//!   socket: a client that does not read its responses stops being read.
//! * **The store thread** owns [`RelayState`] and the SQLite store: it takes
//!   every job waiting (up to [`MAX_BATCH`]), applies them in one
//!   transaction, commits once (group commit), then routes the responses and
//!   events to the connections, in the order the state produced them. No
//!   SQLite call and no lock around one runs on an async worker.
//! * **Events** for other connections (`END`, `DELD`, and deliveries to
//!   subscribers) wait in the target's queue; a delivery is only a queue id
//!   until the target's writer is ready for it, then the store thread reads
//!   the message and seals it. A connection whose events pass
//!   `max_events` is closed.
//!
//! Limits (see [`ServerConfig`]): connections in total, handshakes in
//! progress (the oldest is dropped for a new one), one deadline for the TLS
//! and SMP handshakes, an idle timeout for a session that sends nothing, and
//! a stall timeout for one that does not read. Everything refused is counted
//! ([`RelayStats`]) and logged at most once per interval per kind.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use smp_groups_crypto::clock::{Clock, SystemClock};
use smp_groups_crypto::rng::{RandomSource, SharedRng, SystemRandom};
use smp_groups_crypto::sbc::BLOCK_SIZE;
use smp_groups_net::{
    BlockReader, BlockWriter, BoxedStream, ByteStream, NetError, ServerIdentity, SmpTlsStream,
    server_config,
};
use smp_groups_wire::smp::{Host, KeyHash, Port, ProtocolServer};
use smp_groups_wire::smp::{VersionRange, pack_batches};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::RelayConfig;
use crate::auth::{AuthIndex, SessionAuth};
use crate::protocol::{Prepared, encode_response, prepare_batch};
use crate::ratelog::RateLog;
use crate::state::{Refusals, RelayState, Session};
use crate::store::{Durability, QueueStore, QueueStoreError};
use crate::transport::{TransportError, handshake, relay_versions};
use crate::types::{ConnId, ErrorCode, QueueId, Reply, Response};

/// Most jobs the store thread applies in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

/// Default limit on connections (handshaking or not).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;

/// Default limit on handshakes in progress.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;

/// Streams handed to a running relay ([`RelayHandle::serve_stream`]) and not
/// yet taken by its accept loop; beyond, the caller waits.
const STREAM_QUEUE: usize = 64;

/// File descriptors kept free for the store, the listener and logs when the
/// connection limit is fitted under the process's descriptor limit.
const FD_RESERVE: usize = 64;

/// Settings of a running relay.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The queue logic's settings.
    pub relay: RelayConfig,
    /// How durable store commits are.
    pub durability: Durability,
    /// The protocol versions offered.
    pub versions: VersionRange,
    /// How long a client has for the TLS and SMP handshakes together.
    pub handshake_timeout: Duration,
    /// A session that sends nothing for this long is closed (clients ping;
    /// the reference client every 10 minutes). Also how long a write to a
    /// client may stall before the connection is closed.
    pub idle_timeout: Duration,
    /// How often expired messages are swept.
    pub expiry_interval: Duration,
    /// Connections at once, handshaking or not; beyond, new ones are closed
    /// at once. Fitted under the process's file descriptor limit.
    pub max_connections: usize,
    /// Handshakes in progress at once; a new connection beyond drops the
    /// oldest handshake.
    pub max_handshakes: usize,
    /// Transmissions of one connection handed to the queue logic and not yet
    /// answered on its socket; beyond, its blocks are not read.
    pub max_inflight: usize,
    /// Events (`END`, `DELD`, deliveries) waiting for one connection; beyond,
    /// it is closed.
    pub max_events: usize,
    /// Jobs waiting for the store thread; beyond, connections wait.
    pub store_queue: usize,
    /// The wall clock: message timestamps and expiry.
    pub clock: Arc<dyn Clock>,
    /// Randomness: queue and message ids, queue DH keys, handshakes.
    pub random: Arc<dyn RandomSource>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            relay: RelayConfig::default(),
            durability: Durability::Process,
            versions: relay_versions(),
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(900),
            expiry_interval: Duration::from_secs(3600),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_inflight: 32,
            max_events: 65_536,
            store_queue: 1_024,
            clock: Arc::new(SystemClock),
            random: Arc::new(SystemRandom),
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The identity or its certificates could not be loaded or created.
    #[error("relay identity: {0}")]
    Identity(#[from] smp_groups_net::NetError),
    /// The store could not be opened.
    #[error(transparent)]
    QueueStore(#[from] QueueStoreError),
    /// The listening socket could not be opened.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The relay is stopping: it takes no more connections.
    #[error("the relay is stopping")]
    Stopped,
}

/// What a running relay has refused and holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Connections open (handshaking or not).
    pub connections: usize,
    /// Connections closed at once: `max_connections` were open.
    pub refused_connections: u64,
    /// Handshakes dropped for a newer connection (`max_handshakes`).
    pub evicted_handshakes: u64,
    /// Handshakes not finished within `handshake_timeout`.
    pub handshake_timeouts: u64,
    /// Sessions closed for sending nothing within `idle_timeout`.
    pub idle_closed: u64,
    /// Sessions closed for not reading: a write stalled for `idle_timeout`,
    /// or more than `max_events` events waited.
    pub slow_closed: u64,
    /// Failed `accept` calls (for example out of file descriptors).
    pub accept_errors: u64,
    /// Queues.
    pub queues: usize,
    /// Messages stored.
    pub messages: usize,
    /// Bytes of message bodies stored.
    pub stored_bytes: u64,
    /// Batches whose commit failed (their commands were answered `INTERNAL`).
    pub failed_batches: u64,
    /// Commands refused by the queue limits.
    pub refusals: Refusals,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    refused: Mutex<RateLog>,
    evicted: Mutex<RateLog>,
    handshake_timeouts: Mutex<RateLog>,
    idle: Mutex<RateLog>,
    slow: Mutex<RateLog>,
    accept_errors: Mutex<RateLog>,
    failed_batches: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts one refusal of a kind and logs it, at most once per interval.
fn refuse(log: &Mutex<RateLog>, what: &str, cause: &str) {
    if let Some(n) = lock(log).hit() {
        tracing::warn!(count = n, cause, "{what}");
    }
}

fn total(log: &Mutex<RateLog>) -> u64 {
    lock(log).total()
}

fn unix_now(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.unix_secs()).unwrap_or(i64::MAX)
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`).
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What the store thread is asked to do.
enum Job {
    /// A connection's outbox, before its first request.
    Register(ConnId, Arc<ConnOut>),
    /// Transmissions of one connection (the permit is released once their
    /// responses are written).
    Requests {
        conn: ConnId,
        version: u16,
        items: Vec<Prepared>,
        permit: OwnedSemaphorePermit,
        now: i64,
    },
    /// Make the `MSG` of a delivery for `conn`, which can take it now.
    Deliver {
        conn: ConnId,
        rid: QueueId,
        reply: oneshot::Sender<Option<Response>>,
    },
    /// The connection closed.
    Disconnect(ConnId),
    /// Sweep expired messages.
    Expire(i64),
    /// Counts for [`RelayHandle::stats`].
    Stats(oneshot::Sender<(usize, usize, u64, Refusals)>),
}

/// What a connection's writer sends.
enum Out {
    /// Responses to its transmissions.
    Replies(Vec<Response>, OwnedSemaphorePermit),
    /// An event (`END`, `DELD`).
    Event(Response),
    /// A message waits for it in this queue.
    Deliver(QueueId),
    /// A message made for it (at most [`EAGER_BODIES`] wait at once).
    Msg(Response),
    /// Everything one store batch made for it, in order: taken at once, so
    /// the writer packs a `SEND`'s `OK` and the `MSG` made with it into one
    /// block (sent one by one, the writer often woke between them and wrote
    /// two padded blocks).
    Batch(Vec<Out>),
}

/// Messages made for a connection and not yet taken by its writer, beyond
/// which deliveries wait as queue ids.
const EAGER_BODIES: usize = 4;

/// A connection's outbox as the store thread sees it.
struct ConnOut {
    tx: mpsc::UnboundedSender<Out>,
    /// Events queued and not taken by the writer.
    events: Arc<AtomicUsize>,
    /// `Out::Msg` queued and not taken by the writer.
    bodies: Arc<AtomicUsize>,
    /// More than `max_events` events: the connection is to be closed.
    overloaded: AtomicBool,
    wake: Notify,
}

impl ConnOut {
    /// Counts one more event for this connection; false (and the connection
    /// is to be closed) beyond `max`.
    fn admit(&self, max: usize) -> bool {
        if self.overloaded.load(Ordering::Relaxed) {
            return false;
        }
        if self.events.fetch_add(1, Ordering::Relaxed) >= max {
            self.overloaded.store(true, Ordering::Relaxed);
            self.wake.notify_one();
            return false;
        }
        true
    }
}

/// What one store batch made for each connection, sent to each as one
/// [`Out`] once the batch is routed.
#[derive(Default)]
struct Outbox(HashMap<ConnId, Vec<Out>>);

impl Outbox {
    fn reply(&mut self, conn: ConnId, out: Out) {
        self.0.entry(conn).or_default().push(out);
    }

    fn event(&mut self, conn: ConnId, c: &ConnOut, out: Out, max: usize) {
        if c.admit(max) {
            self.reply(conn, out);
        }
    }

    fn send(&mut self, conns: &HashMap<ConnId, Arc<ConnOut>>) {
        for (conn, mut outs) in self.0.drain() {
            let Some(c) = conns.get(&conn) else { continue };
            let out = if outs.len() == 1 {
                outs.pop()
            } else {
                Some(Out::Batch(outs))
            };
            if let Some(out) = out {
                let _ = c.tx.send(out);
            }
        }
    }
}

struct Shared {
    jobs: mpsc::Sender<Job>,
    index: Arc<AuthIndex>,
    counters: Arc<Counters>,
    next_conn: AtomicU64,
    clock: Arc<dyn Clock>,
}

/// A relay bound to its socket, not yet serving.
pub struct Relay {
    listener: TcpListener,
    identity: Arc<ServerIdentity>,
    tls: Arc<rustls::ServerConfig>,
    state: RelayState,
    config: ServerConfig,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// The address of a relay, `smp://keyHash@host:port`.
pub fn relay_address(key_hash: [u8; 32], host: &str, port: u16) -> String {
    Host::new(host)
        .and_then(|h| ProtocolServer::new(vec![h], Port::new(port), KeyHash::from(key_hash)))
        .map_or_else(
            |_| format!("smp://{}@{host}:{port}", KeyHash::from(key_hash)),
            |s| s.to_string(),
        )
}

impl Relay {
    /// Loads (or creates, on first start) the identity and the store in
    /// `data_dir` and binds `listen`.
    pub async fn bind(
        listen: SocketAddr,
        data_dir: &Path,
        mut config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let identity = ServerIdentity::load_or_create(data_dir)?;
        let tls = Arc::new(server_config(&identity)?);
        let store = QueueStore::open_dir(data_dir, config.durability)?;
        let state = RelayState::open(
            store,
            config.relay.clone(),
            Box::new(SharedRng(Arc::clone(&config.random))),
        )?;
        let listener = TcpListener::bind(listen).await?;
        if let Some(fds) = fd_limit() {
            let fit = fds.saturating_sub(FD_RESERVE).max(1);
            if config.max_connections > fit {
                tracing::info!(
                    configured = config.max_connections,
                    open_files = fds,
                    max_connections = fit,
                    "connection limit fitted under the open file limit"
                );
                config.max_connections = fit;
            }
        }
        config.max_handshakes = config
            .max_handshakes
            .clamp(1, config.max_connections.max(1));
        config.max_inflight = config.max_inflight.max(1);
        config.store_queue = config.store_queue.max(1);
        Ok(Self {
            listener,
            identity: Arc::new(identity),
            tls,
            state,
            config,
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// The SHA-256 of the identity certificate (the address's key hash).
    pub fn key_hash(&self) -> [u8; 32] {
        self.identity.key_hash()
    }

    /// The settings in force (limits fitted to the process).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Starts serving on the current tokio runtime.
    pub fn spawn(self) -> Result<RelayHandle, ServerError> {
        let addr = self.local_addr()?;
        let key_hash = self.key_hash();
        let (tx, rx) = watch::channel(false);
        let (jobs_tx, jobs_rx) = mpsc::channel(self.config.store_queue);
        let shared = Arc::new(Shared {
            jobs: jobs_tx,
            index: self.state.index(),
            counters: Arc::default(),
            next_conn: AtomicU64::new(1),
            clock: Arc::clone(&self.config.clock),
        });
        let (done_tx, done_rx) = oneshot::channel();
        let (streams_tx, streams_rx) = mpsc::channel(STREAM_QUEUE);
        let state = self.state;
        let max_events = self.config.max_events;
        let counters = Arc::clone(&shared.counters);
        std::thread::Builder::new()
            .name("smp-relay-store".into())
            .spawn(move || {
                store_thread(state, jobs_rx, max_events, &counters);
                let _ = done_tx.send(());
            })?;
        let server = Server {
            listener: self.listener,
            streams: streams_rx,
            identity: self.identity,
            tls: self.tls,
            config: self.config,
            shared: Arc::clone(&shared),
        };
        let task = tokio::spawn(server.run(rx, done_rx));
        Ok(RelayHandle {
            addr,
            key_hash,
            shutdown: tx,
            streams: streams_tx,
            shared,
            task,
        })
    }

    /// An embedded relay on `127.0.0.1` with an ephemeral port, storing in
    /// `data_dir` (for tests and the demo).
    pub async fn spawn_local(data_dir: &Path) -> Result<RelayHandle, ServerError> {
        Self::spawn_local_with(data_dir, ServerConfig::default()).await
    }

    /// [`Relay::spawn_local`] with settings.
    pub async fn spawn_local_with(
        data_dir: &Path,
        config: ServerConfig,
    ) -> Result<RelayHandle, ServerError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(addr, data_dir, config).await?.spawn()
    }
}

/// The store thread: applies jobs in batches, one commit each, and routes
/// what they produce.
fn store_thread(
    mut state: RelayState,
    mut jobs: mpsc::Receiver<Job>,
    max_events: usize,
    counters: &Counters,
) {
    let mut conns: HashMap<ConnId, Arc<ConnOut>> = HashMap::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut expire = None;
        let mut routed: Vec<Routed> = Vec::new();
        let mut outbox = Outbox::default();
        state.begin_batch();
        for job in batch.drain(..) {
            match job {
                Job::Register(conn, out) => {
                    conns.insert(conn, out);
                }
                Job::Disconnect(conn) => {
                    state.disconnect(conn);
                    conns.remove(&conn);
                }
                Job::Requests {
                    conn,
                    version,
                    items,
                    permit,
                    now,
                } => {
                    let mut responses = Vec::with_capacity(items.len());
                    // The answers if the batch fails: one per transmission.
                    let mut fallback = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Prepared::Answer(r) => {
                                fallback.push(r.clone());
                                responses.push(r);
                            }
                            Prepared::Ready(v) => {
                                fallback.push(Response {
                                    corr_id: v.request.corr_id.clone(),
                                    entity_id: v.request.entity_id.clone(),
                                    reply: Reply::Err(ErrorCode::Internal),
                                });
                                let out = state.apply(conn, version, *v, now);
                                responses.extend(out.responses);
                                routed.extend(
                                    out.events.into_iter().map(|(c, r)| Routed::Event(c, r)),
                                );
                                routed.extend(
                                    out.deliveries
                                        .into_iter()
                                        .map(|(c, q)| Routed::Deliver(c, q)),
                                );
                            }
                        }
                    }
                    routed.push(Routed::Replies(conn, responses, fallback, permit));
                }
                Job::Deliver { conn, rid, reply } => {
                    let msg = state.deliver(conn, rid);
                    routed.push(Routed::Delivered(reply, msg));
                }
                Job::Expire(now) => expire = Some(now),
                Job::Stats(reply) => {
                    let _ = reply.send((
                        state.queue_count(),
                        state.message_count(),
                        state.stored_bytes(),
                        state.refusals(),
                    ));
                }
            }
        }
        let failed = state.end_batch().err();
        if let Some(f) = &failed {
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::error!(cause = %f.cause, "a batch of commands was answered ERR INTERNAL");
        }
        for r in routed {
            match r {
                Routed::Replies(conn, responses, fallback, permit) => {
                    let responses = if failed.is_some() {
                        fallback
                    } else {
                        responses
                    };
                    if conns.contains_key(&conn) {
                        outbox.reply(conn, Out::Replies(responses, permit));
                    }
                }
                // What a failed batch did is undone: no event about it.
                Routed::Event(..) | Routed::Deliver(..) if failed.is_some() => {}
                Routed::Event(conn, resp) => {
                    if let Some(c) = conns.get(&conn) {
                        outbox.event(conn, c, Out::Event(resp), max_events);
                    }
                }
                Routed::Deliver(conn, rid) => {
                    if let Some(c) = conns.get(&conn) {
                        // A connection with few messages waiting gets this one
                        // made now (no round trip); otherwise only its id
                        // waits, and the message is made when it is written.
                        if c.bodies.load(Ordering::Relaxed) < EAGER_BODIES {
                            if let Some(msg) = state.deliver(conn, rid) {
                                c.bodies.fetch_add(1, Ordering::Relaxed);
                                outbox.event(conn, c, Out::Msg(msg), max_events);
                            }
                        } else {
                            outbox.event(conn, c, Out::Deliver(rid), max_events);
                        }
                    }
                }
                Routed::Delivered(reply, msg) => {
                    let _ = reply.send(if failed.is_some() { None } else { msg });
                }
            }
        }
        // Deliveries not made now read their bodies from the store later.
        state.forget_fresh();
        if let Some(f) = failed {
            for (conn, rid) in f.redeliver {
                if let Some(c) = conns.get(&conn) {
                    outbox.event(conn, c, Out::Deliver(rid), max_events);
                }
            }
        }
        outbox.send(&conns);
        if let Some(now) = expire {
            match state.expire_messages(now) {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "deleted expired messages"),
                Err(e) => tracing::error!(error = %e, "expiring messages failed"),
            }
        }
    }
    tracing::debug!("store thread stopped");
}

enum Routed {
    Replies(ConnId, Vec<Response>, Vec<Response>, OwnedSemaphorePermit),
    Event(ConnId, Response),
    Deliver(ConnId, QueueId),
    Delivered(oneshot::Sender<Option<Response>>, Option<Response>),
}

struct Server {
    listener: TcpListener,
    /// Connected streams handed over with [`RelayHandle::serve_stream`].
    streams: mpsc::Receiver<BoxedStream>,
    identity: Arc<ServerIdentity>,
    tls: Arc<rustls::ServerConfig>,
    config: ServerConfig,
    shared: Arc<Shared>,
}

/// Handshakes in progress, oldest first, each with the sender that drops it.
type Handshakes = Arc<Mutex<VecDeque<(u64, oneshot::Sender<()>)>>>;

impl Server {
    /// Serves until `shutdown` becomes true (or its sender is dropped).
    async fn run(mut self, mut shutdown: watch::Receiver<bool>, store_done: oneshot::Receiver<()>) {
        let mut conns = JoinSet::new();
        let mut sweep = tokio::time::interval(self.config.expiry_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let handshakes: Handshakes = Arc::default();
        let mut backoff = Duration::ZERO;
        let mut serial = 0u64;
        let counters = &self.shared.counters;
        loop {
            tokio::select! {
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = sweep.tick() => {
                    let _ = self.shared.jobs.send(Job::Expire(unix_now(&*self.config.clock))).await;
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        backoff = Duration::ZERO;
                        let _ = tcp.set_nodelay(true);
                        let peer = peer.to_string();
                        self.admit(tcp, peer, &mut conns, &handshakes, &mut serial, &shutdown);
                    }
                    Err(e) => {
                        refuse(&counters.accept_errors, "accept failed; backing off", &e.to_string());
                        backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        tokio::time::sleep(backoff).await;
                    }
                },
                Some(stream) = self.streams.recv() => {
                    let peer = "in-process stream".to_owned();
                    self.admit(stream, peer, &mut conns, &handshakes, &mut serial, &shutdown);
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        // Each connection closes its TLS session itself (close_notify); one
        // that does not finish in time is dropped.
        let closing = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        }
        // The store thread ends once every sender of jobs is gone.
        drop(self.shared);
        let _ = store_done.await;
        tracing::info!("relay stopped");
    }

    /// Takes a new connection, TCP or handed over, within the connection
    /// and handshake limits, and serves it on its own task.
    fn admit<S: ByteStream>(
        &self,
        stream: S,
        peer: String,
        conns: &mut JoinSet<()>,
        handshakes: &Handshakes,
        serial: &mut u64,
        shutdown: &watch::Receiver<bool>,
    ) {
        let counters = &self.shared.counters;
        let at_cap = counters.connections.load(Ordering::Relaxed) >= self.config.max_connections;
        let (evict_tx, evict_rx) = oneshot::channel();
        {
            let mut hs = lock(handshakes);
            if at_cap && hs.is_empty() {
                drop(hs);
                refuse(
                    &counters.refused,
                    "connection refused",
                    "max_connections sessions are open",
                );
                drop(stream);
                return;
            }
            // Room for this handshake: the oldest ones are dropped (silent
            // connections cannot hold the relay's slots against a client
            // that talks).
            let over = (hs.len() + 1).saturating_sub(self.config.max_handshakes);
            for _ in 0..over.max(usize::from(at_cap)) {
                if hs.pop_front().is_some() {
                    refuse(
                        &counters.evicted,
                        "handshake dropped for a newer connection",
                        "max_handshakes or max_connections reached",
                    );
                }
            }
            *serial += 1;
            hs.push_back((*serial, evict_tx));
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let ctx = ConnCtx {
            shared: Arc::clone(&self.shared),
            identity: Arc::clone(&self.identity),
            tls: Arc::clone(&self.tls),
            config: self.config.clone(),
            stop: shutdown.clone(),
        };
        let hs = Arc::clone(handshakes);
        let id = *serial;
        conns.spawn(async move {
            let shared = Arc::clone(&ctx.shared);
            match ctx.serve(stream, evict_rx, hs, id).await {
                Ok(()) => tracing::debug!(%peer, "connection closed"),
                Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
            }
            shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    key_hash: [u8; 32],
    shutdown: watch::Sender<bool>,
    streams: mpsc::Sender<BoxedStream>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SHA-256 of its identity certificate.
    pub fn key_hash(&self) -> [u8; 32] {
        self.key_hash
    }

    /// Its `smp://keyHash@host:port` address.
    pub fn address(&self) -> String {
        relay_address(self.key_hash, &self.addr.ip().to_string(), self.addr.port())
    }

    /// Serves `stream`, a byte stream already connected to a client (an
    /// in-memory pipe, say), as it serves a connection accepted on its
    /// socket: the same limits, TLS, SMP handshake and session. Waits while
    /// many streams are waiting to be taken; fails once the relay is
    /// stopping.
    pub async fn serve_stream(&self, stream: impl ByteStream) -> Result<(), ServerError> {
        self.streams
            .send(Box::new(stream))
            .await
            .map_err(|_| ServerError::Stopped)
    }

    /// What it holds and has refused so far.
    pub async fn stats(&self) -> RelayStats {
        let c = &self.shared.counters;
        let (tx, rx) = oneshot::channel();
        let (queues, messages, stored_bytes, refusals) =
            if self.shared.jobs.send(Job::Stats(tx)).await.is_ok() {
                rx.await.unwrap_or_default()
            } else {
                Default::default()
            };
        RelayStats {
            connections: c.connections.load(Ordering::Relaxed),
            refused_connections: total(&c.refused),
            evicted_handshakes: total(&c.evicted),
            handshake_timeouts: total(&c.handshake_timeouts),
            idle_closed: total(&c.idle),
            slow_closed: total(&c.slow),
            accept_errors: total(&c.accept_errors),
            queues,
            messages,
            stored_bytes,
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            refusals,
        }
    }

    /// Stops accepting, closes every connection and waits for the relay to
    /// stop (the store is closed when this returns). Everything accepted is
    /// already committed to the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        drop(self.shared);
        let _ = self.task.await;
    }
}

/// How long connections get to close cleanly when the relay stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

struct ConnCtx {
    shared: Arc<Shared>,
    identity: Arc<ServerIdentity>,
    tls: Arc<rustls::ServerConfig>,
    config: ServerConfig,
    /// Becomes true when the relay stops.
    stop: watch::Receiver<bool>,
}

/// Why a session ended on the relay's side.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("handshake dropped for a newer connection")]
    Evicted,
    #[error("idle: nothing received for {0:?}")]
    Idle(Duration),
    #[error("not reading: a write stalled for {0:?}")]
    Stalled(Duration),
    #[error("not reading: more than {0} events waiting")]
    Overloaded(usize),
    #[error("the relay is stopping")]
    Stopping,
}

impl ConnCtx {
    async fn serve<S: ByteStream>(
        mut self,
        stream: S,
        mut evict: oneshot::Receiver<()>,
        handshakes: Handshakes,
        id: u64,
    ) -> Result<(), Ended> {
        let counters = &self.shared.counters;
        let limit = self.config.handshake_timeout;
        let identity = Arc::clone(&self.identity);
        let tls_config = Arc::clone(&self.tls);
        let versions = self.config.versions;
        let mut rng = SharedRng(Arc::clone(&self.config.random));
        let both = async move {
            let tls = SmpTlsStream::accept(stream, &tls_config)
                .await
                .map_err(TransportError::from)?;
            handshake(tls, &identity, versions, &mut rng).await
        };
        // One deadline for the TLS and SMP handshakes together.
        let accepted = tokio::select! {
            r = tokio::time::timeout(limit, both) => if let Ok(r) = r {
                r.map_err(Ended::from)
            } else {
                refuse(&counters.handshake_timeouts, "handshake timed out", "handshake_timeout passed");
                Err(Ended::HandshakeTimeout)
            },
            _ = &mut evict => Err(Ended::Evicted),
            _ = self.stop.wait_for(|s| *s) => Err(Ended::Stopping),
        };
        lock(&handshakes).retain(|(s, _)| *s != id);
        let acc = accepted?;
        let conn = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let events = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(ConnOut {
            tx,
            events: Arc::clone(&events),
            bodies: Arc::clone(&bodies),
            overloaded: AtomicBool::new(false),
            wake: Notify::new(),
        });
        if self
            .shared
            .jobs
            .send(Job::Register(conn, Arc::clone(&out)))
            .await
            .is_err()
        {
            return Err(Ended::Stopping);
        }
        let session = Session {
            conn,
            version: acc.version.0,
            session_id: acc.session_id,
            auth: SessionAuth {
                server_key: acc.session_key,
            },
        };
        tracing::debug!(conn, version = session.version, "client connected");
        let mut writer = tokio::spawn(write_loop(
            acc.writer,
            rx,
            session.clone(),
            (events, bodies),
            Arc::clone(&self.shared),
            self.config.idle_timeout,
        ));
        let sem = Arc::new(Semaphore::new(self.config.max_inflight));
        let result = tokio::select! {
            r = read_loop(acc.reader, &self.shared, &session, &sem, self.config.idle_timeout) => r,
            w = &mut writer => match w {
                Ok(Err(e)) => Err(e),
                _ => Ok(()),
            },
            () = out.wake.notified() => Err(Ended::Overloaded(self.config.max_events)),
            _ = self.stop.wait_for(|stop| *stop) => Ok(()),
        };
        match &result {
            Err(Ended::Idle(_)) => refuse(
                &counters.idle,
                "idle session closed",
                "nothing received within idle_timeout",
            ),
            Err(Ended::Stalled(_)) => refuse(
                &counters.slow,
                "session closed: it does not read",
                "a write stalled for idle_timeout",
            ),
            Err(Ended::Overloaded(_)) => refuse(
                &counters.slow,
                "session closed: it does not read",
                "more than max_events events waiting",
            ),
            _ => {}
        }
        // The store thread drops the outbox; the writer then sends what is
        // queued, then close_notify, and ends.
        let _ = self.shared.jobs.send(Job::Disconnect(conn)).await;
        drop(out);
        if !writer.is_finished()
            && tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
                .await
                .is_err()
        {
            tracing::debug!(conn, "connection did not close in time");
            writer.abort();
        }
        match result {
            Err(Ended::Transport(TransportError::Net(NetError::Closed))) => Ok(()),
            Err(Ended::Transport(TransportError::Net(NetError::Io(e))))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: BlockReader<R>,
    shared: &Shared,
    session: &Session,
    sem: &Arc<Semaphore>,
    idle: Duration,
) -> Result<(), Ended> {
    loop {
        let block = tokio::time::timeout(idle, reader.recv())
            .await
            .map_err(|_| Ended::Idle(idle))?
            .map_err(TransportError::from)?;
        // Signatures are checked here, on this connection's task.
        let prepared = prepare_batch(&shared.index, session, &block);
        let mut items = Vec::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        for p in prepared {
            let permit = if let Ok(p) = Arc::clone(sem).try_acquire_owned() {
                p
            } else {
                // Hand over what holds permits, then wait for answers to be
                // written: a client that does not read stops being read.
                if let Some(h) = held.take() {
                    submit(shared, session, std::mem::take(&mut items), h).await?;
                }
                Arc::clone(sem)
                    .acquire_owned()
                    .await
                    .map_err(|_| Ended::Stopping)?
            };
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            items.push(p);
        }
        if let Some(h) = held {
            submit(shared, session, items, h).await?;
        }
    }
}

async fn submit(
    shared: &Shared,
    session: &Session,
    items: Vec<Prepared>,
    permit: OwnedSemaphorePermit,
) -> Result<(), Ended> {
    shared
        .jobs
        .send(Job::Requests {
            conn: session.conn,
            version: session.version,
            items,
            permit,
            now: unix_now(&*shared.clock),
        })
        .await
        .map_err(|_| Ended::Stopping)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BlockWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    session: Session,
    (events, bodies): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    shared: Arc<Shared>,
    stall: Duration,
) -> Result<(), Ended> {
    let v = smp_groups_wire::smp::Version(session.version);
    let mut batch: Vec<Response> = Vec::new();
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
    // Items taken and not yet handled (a batch's items, in order).
    let mut pending: VecDeque<Out> = VecDeque::new();
    while let Some(first) = rx.recv().await {
        pending.push_back(first);
        while let Some(item) = pending.pop_front() {
            match item {
                Out::Batch(items) => {
                    for o in items.into_iter().rev() {
                        pending.push_front(o);
                    }
                }
                Out::Replies(rs, p) => {
                    batch.extend(rs);
                    permits.push(p);
                }
                Out::Event(r) => {
                    events.fetch_sub(1, Ordering::Relaxed);
                    batch.push(r);
                }
                Out::Msg(r) => {
                    events.fetch_sub(1, Ordering::Relaxed);
                    bodies.fetch_sub(1, Ordering::Relaxed);
                    batch.push(r);
                }
                Out::Deliver(rid) => {
                    events.fetch_sub(1, Ordering::Relaxed);
                    let (tx, reply) = oneshot::channel();
                    let job = Job::Deliver {
                        conn: session.conn,
                        rid,
                        reply: tx,
                    };
                    if shared.jobs.send(job).await.is_ok()
                        && let Ok(Some(msg)) = reply.await
                    {
                        batch.push(msg);
                    }
                }
            }
            if pending.is_empty()
                && batch.len() < 64
                && let Ok(o) = rx.try_recv()
            {
                pending.push_back(o);
            }
        }
        let mut encoded = Vec::with_capacity(batch.len());
        for r in batch.drain(..) {
            match encode_response(v, &session.session_id, &r) {
                Ok(t) => encoded.push(t),
                Err(e) => tracing::error!(error = %e, "cannot encode a response"),
            }
        }
        if !encoded.is_empty() {
            for block in pack_batches(&encoded, BLOCK_SIZE).map_err(TransportError::from)? {
                tokio::time::timeout(stall, writer.send(&block))
                    .await
                    .map_err(|_| Ended::Stalled(stall))?
                    .map_err(TransportError::from)?;
            }
        }
        // Written: the connection may hand over more.
        permits.clear();
    }
    tokio::time::timeout(CLOSE_TIMEOUT, writer.close())
        .await
        .map_err(|_| Ended::Stalled(CLOSE_TIMEOUT))?
        .map_err(TransportError::from)?;
    Ok(())
}
