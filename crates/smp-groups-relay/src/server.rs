//! The relay server: TLS accept, SMP handshake, one tokio task per connection
//! reading blocks of transmissions and one writing responses and events.
//!
//! All queue state sits behind one mutex ([`RelayState`]); each received block
//! is handled under it, its store writes committed, and its events (`MSG` to a
//! subscriber, `END`, `DELD`) handed to the target connections' writers before
//! the lock is released, so every connection sees events in the order the
//! state produced them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smp_groups_crypto::rng;
use smp_groups_crypto::sbc::BLOCK_SIZE;
use smp_groups_net::{
    BlockReader, BlockWriter, NetError, ServerIdentity, SmpTlsStream, server_config,
};
use smp_groups_wire::smp::server::{Host, KeyHash, Port, ProtocolServer};
use smp_groups_wire::smp::{VersionRange, pack_batches};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::RelayConfig;
use crate::auth::SessionAuth;
use crate::protocol::{encode_response, handle_batch};
use crate::state::{RelayState, Session};
use crate::store::{Durability, Store, StoreError};
use crate::transport::{TransportError, handshake, relay_versions};
use crate::types::{ConnId, Response};

/// Settings of a running relay.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The queue logic's settings.
    pub relay: RelayConfig,
    /// How durable store commits are.
    pub durability: Durability,
    /// The protocol versions offered.
    pub versions: VersionRange,
    /// How long a client has for the TLS and SMP handshakes.
    pub handshake_timeout: Duration,
    /// How often expired messages are swept.
    pub expiry_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            relay: RelayConfig::default(),
            durability: Durability::Process,
            versions: relay_versions(),
            handshake_timeout: Duration::from_secs(30),
            expiry_interval: Duration::from_secs(3600),
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
    Store(#[from] StoreError),
    /// The listening socket could not be opened.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

type Outbox = mpsc::UnboundedSender<Vec<Response>>;

struct Shared {
    state: Mutex<RelayState>,
    outboxes: Mutex<HashMap<ConnId, Outbox>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A relay bound to its socket, not yet serving.
pub struct Relay {
    listener: TcpListener,
    identity: Arc<ServerIdentity>,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
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
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let identity = ServerIdentity::load_or_create(data_dir)?;
        let tls = Arc::new(server_config(&identity)?);
        let store = Store::open_dir(data_dir, config.durability)?;
        let state = RelayState::open(store, config.relay.clone(), Box::new(rng::system()))?;
        let listener = TcpListener::bind(listen).await?;
        Ok(Self {
            listener,
            identity: Arc::new(identity),
            tls,
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                outboxes: Mutex::new(HashMap::new()),
            }),
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

    /// Starts serving on the current tokio runtime.
    pub fn spawn(self) -> Result<RelayHandle, ServerError> {
        let addr = self.local_addr()?;
        let key_hash = self.key_hash();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(self.run(rx));
        Ok(RelayHandle {
            addr,
            key_hash,
            shutdown: tx,
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

    /// Serves until `shutdown` becomes true (or its sender is dropped).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut conns = JoinSet::new();
        let mut sweep = tokio::time::interval(self.config.expiry_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = sweep.tick() => {
                    match lock(&self.shared.state).expire_messages(unix_now()) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(expired = n, "deleted expired messages"),
                        Err(e) => tracing::error!(error = %e, "expiring messages failed"),
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        let ctx = ConnCtx {
                            shared: self.shared.clone(),
                            identity: self.identity.clone(),
                            tls: self.tls.clone(),
                            config: self.config.clone(),
                            stop: shutdown.clone(),
                        };
                        conns.spawn(async move {
                            match ctx.serve(tcp).await {
                                Ok(()) => tracing::debug!(%peer, "connection closed"),
                                Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
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
        tracing::info!("relay stopped");
    }
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    key_hash: [u8; 32],
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
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

    /// Stops accepting, closes every connection and waits for the relay to stop.
    /// Everything accepted is already committed to the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
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

impl ConnCtx {
    async fn serve(mut self, tcp: TcpStream) -> Result<(), TransportError> {
        let limit = self.config.handshake_timeout;
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out");
        let tls = tokio::time::timeout(limit, SmpTlsStream::accept(tcp, &self.tls))
            .await
            .map_err(|_| timed_out())??;
        let mut rng = rng::system();
        let acc = tokio::time::timeout(
            limit,
            handshake(tls, &self.identity, self.config.versions, &mut rng),
        )
        .await
        .map_err(|_| timed_out())??;
        let conn = lock(&self.shared.state).connect();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.outboxes).insert(conn, tx.clone());
        let session = Session {
            conn,
            version: acc.version.0,
            session_id: acc.session_id,
            auth: SessionAuth {
                server_key: acc.session_key,
            },
        };
        tracing::debug!(conn, version = session.version, "client connected");
        let mut writer = tokio::spawn(write_loop(acc.writer, rx, session.clone()));
        let result = tokio::select! {
            r = read_loop(acc.reader, &self.shared, &session, &tx) => r,
            _ = self.stop.wait_for(|stop| *stop) => Ok(()),
        };
        lock(&self.shared.outboxes).remove(&conn);
        lock(&self.shared.state).disconnect(conn);
        // The writer sends what is queued, then close_notify, and ends.
        drop(tx);
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            tracing::debug!(conn, "connection did not close in time");
            writer.abort();
        }
        match result {
            Err(TransportError::Net(NetError::Closed)) => Ok(()),
            Err(TransportError::Net(NetError::Io(e)))
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
    own: &Outbox,
) -> Result<(), TransportError> {
    loop {
        let block = reader.recv().await?;
        let mut state = lock(&shared.state);
        let out = handle_batch(&mut state, session, &block, unix_now());
        if !out.responses.is_empty() {
            let _ = own.send(out.responses);
        }
        if !out.events.is_empty() {
            let boxes = lock(&shared.outboxes);
            for (target, resp) in out.events {
                if let Some(b) = boxes.get(&target) {
                    let _ = b.send(vec![resp]);
                }
            }
        }
        drop(state);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BlockWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Vec<Response>>,
    session: Session,
) -> Result<(), TransportError> {
    let v = smp_groups_wire::smp::Version(session.version);
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        let mut encoded = Vec::with_capacity(batch.len());
        for r in &batch {
            match encode_response(v, &session.session_id, r) {
                Ok(t) => encoded.push(t),
                Err(e) => tracing::error!(error = %e, "cannot encode a response"),
            }
        }
        if encoded.is_empty() {
            continue;
        }
        for block in pack_batches(&encoded, BLOCK_SIZE)? {
            writer.send(&block).await?;
        }
    }
    writer.close().await?;
    Ok(())
}
