//! Shared helpers: agents served on loopback and a text protocol client.
#![allow(dead_code, unreachable_pub)]

pub mod flows;
pub mod procs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use smp_groups_agent::testing::MemoryRelays;
use smp_groups_agent::{Agent, AgentConfig, NetworkRelay, RelayConnector, server};
use smp_groups_relay::{Relay, RelayHandle};
use smp_groups_wire::client::{AgentEvent, FrameLimits, LineDecoder, Transmission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const RELAY_A: &str = "smp://relay-a.test";
pub const RELAY_B: &str = "smp://relay-b.test";

/// Two relays in this process, `RELAY_A` and `RELAY_B`, reached by the
/// agents' real client over in-memory pipes.
pub async fn relays() -> Arc<MemoryRelays> {
    let r = MemoryRelays::new();
    r.add_relay(RELAY_A).await.unwrap();
    r.add_relay(RELAY_B).await.unwrap();
    Arc::new(r)
}

pub fn temp_db(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("smp-agent-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.db"))
}

/// Opens an agent and serves it on a loopback port; returns the agent and the address.
pub async fn serve_agent(
    relays: &Arc<MemoryRelays>,
    name: &str,
    server_name: &str,
) -> (Agent, Endpoint) {
    serve_agent_with(relays.clone(), name, server_name, None).await
}

/// An embedded relay over TLS on loopback, storing in a fresh directory.
pub async fn tls_relay(name: &str) -> (RelayHandle, PathBuf) {
    let dir = temp_db(name).with_extension("relay");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    (relay, dir)
}

/// [`serve_agent`] with agents reaching relays over TLS.
pub async fn serve_network_agent(
    name: &str,
    relay: &str,
    db: Option<PathBuf>,
) -> (Agent, Endpoint) {
    serve_agent_with(Arc::new(NetworkRelay::new()), name, relay, db).await
}

/// Opens an agent with `relays` and serves it on a loopback port.
pub async fn serve_agent_with(
    relays: Arc<dyn RelayConnector>,
    name: &str,
    server_name: &str,
    db: Option<PathBuf>,
) -> (Agent, Endpoint) {
    serve_config(relays, AgentConfig::new(name, server_name, db)).await
}

/// Opens an agent configured by `cfg` with `relays` and serves it on a
/// loopback port.
pub async fn serve_config(relays: Arc<dyn RelayConnector>, cfg: AgentConfig) -> (Agent, Endpoint) {
    let agent = Agent::open(cfg, relays).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = server::Token::generate();
    let ep = Endpoint {
        addr,
        token: token.as_str().to_owned(),
    };
    tokio::spawn(server::serve_tcp(
        listener,
        agent.clone(),
        token,
        server::ServerConfig::default(),
    ));
    (agent, ep)
}

/// Where an agent serves the text protocol on TCP, and its token.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    pub token: String,
}

/// Connects to `ep` and authenticates (`AUTH token`, `AUTH OK`); returns the
/// stream and what arrived after the `AUTH OK` line.
pub async fn connect_authenticated(ep: &Endpoint) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(ep.addr).await.unwrap();
    stream
        .write_all(format!("AUTH {}\r\n", ep.token).as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.iter().position(|&b| b == b'\n') {
            break i;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("AUTH answered")
            .unwrap();
        assert!(n > 0, "closed before AUTH OK: {got:?}");
        got.extend_from_slice(&buf[..n]);
    };
    assert_eq!(
        &got[..end],
        b"AUTH OK\r",
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    (stream, got[end + 1..].to_vec())
}

/// A client of the text protocol.
pub struct Client {
    stream: TcpStream,
    decoder: LineDecoder<AgentEvent>,
    /// Everything received so far.
    pub seen: Vec<Transmission<AgentEvent>>,
    pub name: &'static str,
}

pub const WAIT: Duration = Duration::from_secs(20);

impl Client {
    pub async fn connect(ep: &Endpoint, name: &'static str) -> Self {
        let (stream, rest) = connect_authenticated(ep).await;
        let mut decoder = LineDecoder::new(FrameLimits::default());
        decoder.push(&rest);
        let mut seen = Vec::new();
        while let Some(t) = decoder.next() {
            seen.push(t.expect("the agent sends valid lines"));
        }
        Self {
            stream,
            decoder,
            seen,
            name,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads until a transmission matching `f` arrives (searching from index
    /// `from` of everything seen); panics after [`WAIT`].
    pub async fn wait_from<T>(
        &mut self,
        from: usize,
        f: impl Fn(&Transmission<AgentEvent>) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 8192];
        loop {
            if let Some(x) = self.seen.get(from..).unwrap().iter().find_map(&f) {
                return x;
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{}: timed out; seen {:#?}", self.name, self.seen))
                .unwrap();
            assert!(n > 0, "{}: connection closed", self.name);
            self.decoder.push(&buf[..n]);
            while let Some(t) = self.decoder.next() {
                self.seen.push(t.expect("the agent sends valid lines"));
            }
        }
    }

    /// Reads whatever arrives until `deadline`; `false` once the agent has
    /// closed the connection (or it failed), which is not an error here.
    pub async fn pump_until(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut buf = vec![0u8; 8192];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return true,
                Ok(Ok(0) | Err(_)) => return false,
                Ok(Ok(n)) => {
                    self.decoder.push(&buf[..n]);
                    while let Some(t) = self.decoder.next() {
                        self.seen.push(t.expect("the agent sends valid lines"));
                    }
                }
            }
        }
    }

    /// Writes a line without waiting for its answer; `false` if the
    /// connection is gone.
    pub async fn try_line(&mut self, line: &str) -> bool {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_ok()
    }

    pub async fn wait<T>(&mut self, f: impl Fn(&Transmission<AgentEvent>) -> Option<T>) -> T {
        self.wait_from(0, f).await
    }

    /// Sends a command line and returns its response (the first transmission
    /// with this corrId).
    pub async fn call(&mut self, corr: &str, rest: &str) -> AgentEvent {
        let from = self.seen.len();
        self.line(&format!("{corr} {rest}")).await;
        self.wait_from(from, |t| {
            (t.corr_id.as_str() == corr).then(|| t.msg.clone())
        })
        .await
    }

    pub fn count(&self, f: impl Fn(&AgentEvent) -> bool) -> usize {
        self.seen.iter().filter(|t| f(&t.msg)).count()
    }
}
