//! Test support (the `test-util` feature; not part of the agent's API).
//!
//! [`MemoryRelays`]: real SMP relays ([`smp_groups_relay::Relay`], with their
//! TLS, SMP handshake, session limits and SQLite store in a temporary
//! directory) running in this process, reached by agents through the real
//! client ([`NetworkRelay`], `smp_groups_net::ReconnectingClient`) over
//! in-memory byte pipes instead of TCP. Only the byte pipe differs from the
//! network path: commands are signed, deliveries parsed, queue keys kept in the
//! agent's `queue_keys` table and relay errors classified by the production
//! code.
//!
//! [`procs`]: `smp-relay` and `smp-agent serve` as child processes, for the
//! end-to-end tests of this crate and of `smp-groups-sync`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use smp_groups_net::{BoxedStream, DialFuture, Dialer, ReconnectConfig, TcpDialer};
use smp_groups_relay::{Relay, RelayHandle, RelayStats, ServerError};
use smp_groups_wire::smp::{Host, KeyHash, Port, ProtocolServer};

use crate::network::{Names, NetworkRelay, SmpAddresses};
use crate::relay_client::{RelayClient, RelayConnector, RelayContext};

pub mod procs;

/// Bytes buffered in each direction of an in-memory connection (room for a
/// few 16 KiB SMP blocks).
const PIPE_BUFFER: usize = 64 * 1024;

/// Why an in-memory relay could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The relay did not start (its identity, store or socket).
    #[error("relay: {0}")]
    Relay(#[from] ServerError),
    /// A relay with this name exists.
    #[error("relay {0} exists")]
    Duplicate(String),
    /// The temporary directory for the relays' data could not be made.
    #[error("relay data directory: {0}")]
    Dir(#[from] std::io::Error),
}

/// One relay of the network: its address and the running server.
struct Served {
    address: ProtocolServer,
    handle: Arc<RelayHandle>,
}

/// The relays by name, and the directory holding their data.
struct Net {
    relays: Mutex<HashMap<String, Served>>,
    dir: PathBuf,
    /// Numbers the relays' data directories (never reused).
    next_relay: AtomicU64,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNet")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Best effort: a relay still closing may hold a file open a little longer.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Names for Net {
    /// A relay of this network by its name; any other server by its
    /// `smp://` address.
    fn resolve(&self, server: &str) -> Option<ProtocolServer> {
        if let Some(s) = lock(&self.relays).get(server) {
            return Some(s.address.clone());
        }
        SmpAddresses.resolve(server)
    }
}

impl Dialer for Net {
    /// An in-memory pipe to a relay of this network (found by the key hash of
    /// the address); TCP to any other.
    fn dial<'a>(&'a self, server: &'a ProtocolServer) -> DialFuture<'a> {
        Box::pin(async move {
            let key_hash = server.key_hash.as_sha256();
            let relay = lock(&self.relays)
                .values()
                .find(|s| Some(s.handle.key_hash()) == key_hash)
                .map(|s| Arc::clone(&s.handle));
            let Some(relay) = relay else {
                return TcpDialer.dial(server).await;
            };
            let (client, relay_end) = tokio::io::duplex(PIPE_BUFFER);
            relay.serve_stream(relay_end).await.map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string())
            })?;
            Ok(Box::new(client) as BoxedStream)
        })
    }
}

/// SMP relays in this process, reached by agents over in-memory pipes with
/// the production client (see the module docs). Agents name a relay by the
/// name it was added with (`smp://relay-a.test`); any other `smp://` address
/// is reached over TCP as by [`NetworkRelay`].
///
/// Clones share the relays; they stop when the last clone and the last agent
/// using them are dropped, or at [`shutdown`](Self::shutdown).
#[derive(Clone, Debug)]
pub struct MemoryRelays {
    net: Arc<Net>,
    client: NetworkRelay,
}

/// Tells apart the data directories of the networks of one process.
static NEXT_NET: AtomicU64 = AtomicU64::new(0);

impl MemoryRelays {
    /// No relays yet; the agents' connections use the default settings.
    pub fn new() -> Self {
        Self::with_config(ReconnectConfig::default())
    }

    /// No relays yet; the agents' connections use `config`.
    pub fn with_config(config: ReconnectConfig) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "smp-memory-relays-{}-{}-{nanos}",
            std::process::id(),
            NEXT_NET.fetch_add(1, Ordering::Relaxed)
        ));
        let net = Arc::new(Net {
            relays: Mutex::new(HashMap::new()),
            dir,
            next_relay: AtomicU64::new(0),
        });
        let client = NetworkRelay::with_transport(
            config,
            Arc::clone(&net) as Arc<dyn Names>,
            Arc::clone(&net) as Arc<dyn Dialer>,
        );
        Self { net, client }
    }

    /// Starts a relay named `name` (what agents put in their configuration)
    /// on the current tokio runtime, with the relay's default settings.
    pub async fn add_relay(&self, name: &str) -> Result<(), MemoryError> {
        if lock(&self.net.relays).contains_key(name) {
            return Err(MemoryError::Duplicate(name.to_owned()));
        }
        let index = self.net.next_relay.fetch_add(1, Ordering::Relaxed);
        let dir = self.net.dir.join(format!("relay-{index}"));
        std::fs::create_dir_all(&dir)?;
        let handle = Relay::spawn_local(&dir).await?;
        // The address carries the relay's real key hash (the client checks
        // the relay's certificate against it); the host is for logs only.
        let host = name
            .strip_prefix("smp://")
            .and_then(|h| Host::new(h).ok())
            .or_else(|| Host::new("relay.memory").ok());
        let address = host
            .and_then(|h| {
                ProtocolServer::new(
                    vec![h],
                    Port::default_port(),
                    KeyHash::from(handle.key_hash()),
                )
                .ok()
            })
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("no relay address for {name}"),
                )
            })?;
        let mut relays = lock(&self.net.relays);
        if relays.contains_key(name) {
            return Err(MemoryError::Duplicate(name.to_owned()));
        }
        relays.insert(
            name.to_owned(),
            Served {
                address,
                handle: Arc::new(handle),
            },
        );
        Ok(())
    }

    /// What relay `name` holds and has refused so far (`None`: no such relay).
    pub async fn stats(&self, name: &str) -> Option<RelayStats> {
        let handle = lock(&self.net.relays)
            .get(name)
            .map(|s| Arc::clone(&s.handle))?;
        Some(handle.stats().await)
    }

    /// The client the agents of this network use (a [`NetworkRelay`] over
    /// in-memory pipes), for tests that wrap it.
    pub fn client(&self) -> NetworkRelay {
        self.client.clone()
    }

    /// Stops every relay and waits for them to stop.
    pub async fn shutdown(&self) {
        let relays: Vec<Served> = lock(&self.net.relays).drain().map(|(_, s)| s).collect();
        for s in relays {
            // A dial in progress holds the handle for a moment: the relay then
            // stops when it drops it.
            if let Ok(handle) = Arc::try_unwrap(s.handle) {
                handle.shutdown().await;
            }
        }
    }
}

impl Default for MemoryRelays {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayConnector for MemoryRelays {
    fn connect(&self, context: RelayContext) -> Result<Box<dyn RelayClient>, crate::Error> {
        self.client.connect(context)
    }
}
