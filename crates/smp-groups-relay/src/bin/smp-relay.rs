//! `smp-relay`: the SMP relay (queue server).
//!
//! ```text
//! smp-relay --listen 0.0.0.0:5223 --data /var/lib/smp-relay
//! ```
//!
//! Creates its identity and certificates in the data directory on first start,
//! prints its `smp://keyHash@host:port` address as the first line of standard
//! output, logs to standard error (`RUST_LOG` filters), and stops cleanly on
//! SIGINT or SIGTERM.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use smp_groups_relay::{Durability, RelayConfig};
use smp_groups_relay::{Relay, ServerConfig, relay_address};

/// The SMP relay of smp-groups.
#[derive(Debug, Parser)]
#[command(name = "smp-relay", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5223")]
    listen: SocketAddr,
    /// Directory for the identity, certificates and the store.
    #[arg(long)]
    data: PathBuf,
    /// Host name to print in the address (default: the listening IP).
    #[arg(long)]
    host: Option<String>,
    /// Messages a queue holds before `ERR QUOTA`.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_QUOTA)]
    quota: usize,
    /// Days after which undelivered messages are deleted (0: never).
    #[arg(long, default_value_t = 21)]
    expire_days: i64,
    /// Password clients must send to create queues.
    #[arg(long)]
    password: Option<String>,
    /// Sync every commit to disk (survives a machine crash, slower).
    #[arg(long)]
    fsync: bool,
    /// Connections at once, handshaking or not (fitted under the open file
    /// limit); beyond, new ones are closed at once.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Handshakes in progress at once; a new connection beyond drops the
    /// oldest handshake.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_MAX_HANDSHAKES)]
    max_handshakes: usize,
    /// Seconds a client has for the TLS and SMP handshakes together.
    #[arg(long, default_value_t = 30)]
    handshake_timeout: u64,
    /// Seconds after which a session that sends nothing is closed (and a write
    /// to a client that does not read is given up).
    #[arg(long, default_value_t = 900)]
    idle_timeout: u64,
    /// Queues in total; NEW beyond gets ERR QUOTA.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_MAX_QUEUES)]
    max_queues: u64,
    /// Queues one connection may create; NEW beyond gets ERR QUOTA.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_MAX_QUEUES_PER_CONNECTION)]
    max_queues_per_connection: u64,
    /// Bytes of message bodies stored in total; SEND beyond gets ERR QUOTA.
    #[arg(long, default_value_t = smp_groups_relay::DEFAULT_MAX_STORED_BYTES)]
    max_stored_bytes: u64,
    /// Transmissions of one connection being handled and not yet answered on
    /// its socket; beyond, its blocks are not read.
    #[arg(long, default_value_t = ServerConfig::default().max_inflight)]
    max_inflight: usize,
    /// Events waiting for one connection; beyond, it is closed.
    #[arg(long, default_value_t = ServerConfig::default().max_events)]
    max_events: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = ServerConfig {
        relay: RelayConfig {
            quota: args.quota,
            message_ttl: (args.expire_days > 0).then(|| args.expire_days.saturating_mul(86_400)),
            new_queue_password: args.password.map(String::into_bytes),
            max_queues: args.max_queues,
            max_queues_per_connection: args.max_queues_per_connection,
            max_stored_bytes: args.max_stored_bytes,
            ..RelayConfig::default()
        },
        max_connections: args.max_connections,
        max_handshakes: args.max_handshakes,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_inflight: args.max_inflight,
        max_events: args.max_events,
        durability: if args.fsync {
            Durability::Machine
        } else {
            Durability::Process
        },
        ..ServerConfig::default()
    };
    let relay = match Relay::bind(args.listen, &args.data, config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("smp-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match relay.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("smp-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = match smp_groups_relay::shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smp-relay: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = args.host.unwrap_or_else(|| addr.ip().to_string());
    println!("{}", relay_address(relay.key_hash(), &host, addr.port()));
    let limits = relay.config();
    tracing::info!(
        %addr,
        data = %args.data.display(),
        max_connections = limits.max_connections,
        max_handshakes = limits.max_handshakes,
        "relay listening"
    );
    let handle = match relay.spawn() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("smp-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    stop.await;
    tracing::info!("stopping");
    handle.shutdown().await;
    ExitCode::SUCCESS
}
