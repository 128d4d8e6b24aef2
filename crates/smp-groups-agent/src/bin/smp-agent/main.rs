//! `smp-agent`: the smp-groups agent.
//!
//! * `smp-agent serve --relay SMP_URL [--relay ...] --db FILE` serves the
//!   client text protocol on the Unix socket `FILE.sock` (mode 0600), or
//!   with `--listen ADDR` on TCP, each session authenticated with the token
//!   in `FILE.token`; its queues are on the first relay, reached over TLS.
//!   It exits non-zero if a store failure stops the agent.
//! * `smp-agent demo [--members N] [--messages M]` runs a scripted group on
//!   two relays embedded in the process (reached over TLS on loopback) and
//!   checks every step's envelope count.
#![forbid(unsafe_code)]

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use smp_groups_agent::{Agent, AgentConfig, NetworkRelay, server};
use smp_groups_core::{ReceiptPolicy, Settings};
use smp_groups_wire::smp::ProtocolServer;

/// The smp-groups agent.
#[derive(Parser, Debug)]
#[command(name = "smp-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Cmd {
    /// Serve the client text protocol: on a Unix domain socket (mode 0600,
    /// `DB.sock` unless --socket says where), or on TCP with --listen (each
    /// session first sends `AUTH <token>`, the token being in --token-file).
    Serve {
        /// The Unix domain socket to listen on (default: the database path
        /// with `.sock` appended, unless --listen is given).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// A TCP address to listen on (e.g. 127.0.0.1:5224); clients must
        /// authenticate with the token. Only loopback addresses unless
        /// --allow-remote.
        #[arg(long)]
        listen: Option<String>,
        /// Allow --listen on an address other than loopback (the token then
        /// travels in clear over the network: use a tunnel).
        #[arg(long)]
        allow_remote: bool,
        /// The file holding the TCP token, created (mode 0600) on first start
        /// (default: the database path with `.token` appended).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Client sessions at once.
        #[arg(long, default_value_t = server::DEFAULT_MAX_CLIENTS)]
        max_clients: usize,
        /// Seconds a write to a client may stall (it does not read) before
        /// its session is closed.
        #[arg(long, default_value_t = 60)]
        write_timeout: u64,
        /// SMP relay address (smp://keyHash@host:port); the agent creates its
        /// queues on the first. Peers' queues may be on any relay.
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
        /// The agent's database file.
        #[arg(long)]
        db: PathBuf,
        /// The agent's name at its relays.
        #[arg(long, default_value = "agent")]
        identity: String,
        #[command(flatten)]
        policy: Policy,
    },
    /// Run the scripted group demo.
    Demo {
        /// Number of members.
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Messages each member sends.
        #[arg(long, default_value_t = 1)]
        messages: usize,
    },
}

/// Group settings of `serve`. All but --open-invitations apply at every
/// start, to an agent restored from its database too.
#[derive(clap::Args, Debug)]
struct Policy {
    /// Membership changes made by other members are applied without asking
    /// while the group has at most this many members; above it the client is
    /// asked (`APPROVAL`, answered with `ALLOW`/`DENY`).
    #[arg(long, default_value_t = 64)]
    approval_threshold: usize,
    /// Use open invitations (members hand each other invitations up front;
    /// adding a member needs no INTRO/INV round). Applies when the database
    /// is created; a restored agent keeps what it was created with.
    #[arg(long)]
    open_invitations: bool,
    /// Seconds between G_CHECK rounds of a group with new messages (0: no
    /// time trigger).
    #[arg(long, default_value_t = 60)]
    check_interval: u64,
    /// A G_CHECK round after this many group messages (0: no count trigger).
    #[arg(long, default_value_t = 100)]
    check_every: u64,
    /// Receipts for group messages: `grouped` (signed, up to 64 in one
    /// envelope, sent within 2 s), `each-signed` (one signed receipt per
    /// message) or `unsigned` (grouped, without signatures).
    #[arg(long, value_enum, default_value_t = Receipts::Grouped)]
    receipts: Receipts,
    /// History for new members: sign our group messages, keep the last this
    /// many messages of each group and hand them to members we add (0: off).
    #[arg(long, default_value_t = 0)]
    history: u16,
    /// The most content bytes of history kept per group.
    #[arg(long, default_value_t = 1 << 20)]
    history_bytes: u32,
    /// Tests of integrity detection only (`cheat` feature): cheat in every
    /// group send from our group message id FROM on, `equivocate:FROM`
    /// (every other member gets other content under the same id) or
    /// `withhold:FROM` (the last member, in member id order, gets nothing).
    #[cfg(feature = "cheat")]
    #[arg(long, value_parser = parse_cheat)]
    cheat: Option<smp_groups_core::Cheat>,
}

/// `equivocate:FROM` or `withhold:FROM`.
#[cfg(feature = "cheat")]
fn parse_cheat(s: &str) -> Result<smp_groups_core::Cheat, String> {
    use smp_groups_core::{Cheat, CheatMode};
    let (mode, from) = s
        .split_once(':')
        .ok_or_else(|| "expected MODE:FROM".to_owned())?;
    let mode = match mode {
        "equivocate" => CheatMode::Equivocate,
        "withhold" => CheatMode::Withhold,
        other => return Err(format!("unknown cheat {other:?}: equivocate or withhold")),
    };
    let from_msg = from
        .parse()
        .map_err(|e| format!("FROM must be a message id: {e}"))?;
    Ok(Cheat {
        mode,
        from_msg,
        until_msg: None,
    })
}

/// The receipt policies `serve` offers.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Receipts {
    Grouped,
    EachSigned,
    Unsigned,
}

impl Policy {
    /// The agent's settings: `config` for a new agent, with the settings a
    /// restored one takes too.
    fn config(&self, identity: &str, relay: &str, db: PathBuf) -> AgentConfig {
        let mut c = AgentConfig::new(identity, relay, Some(db));
        c.core.approval_threshold = self.approval_threshold;
        c.core.open_invitations = self.open_invitations;
        c.core.check_interval_ms =
            (self.check_interval > 0).then(|| self.check_interval.saturating_mul(1000));
        c.core.check_every_messages = (self.check_every > 0).then_some(self.check_every);
        c.core.receipts = match self.receipts {
            Receipts::Grouped => ReceiptPolicy::default(),
            Receipts::EachSigned => ReceiptPolicy::EACH_SIGNED,
            Receipts::Unsigned => ReceiptPolicy {
                sign: false,
                ..ReceiptPolicy::default()
            },
        };
        c.core.history = smp_groups_core::HistoryShare {
            messages: self.history,
            bytes: self.history_bytes,
        };
        c.settings = Some(Settings::of(&c.core));
        #[cfg(feature = "cheat")]
        {
            c.cheat = self.cheat;
        }
        c
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Cmd::Demo { members, messages } => match demo::run(members, messages, true).await {
                Ok(report) if report.ok() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::FAILURE
                }
            },
            Cmd::Serve {
                socket,
                listen,
                allow_remote,
                token_file,
                max_clients,
                write_timeout,
                relays,
                db,
                identity,
                policy,
            } => {
                let listeners = Listeners {
                    socket,
                    listen,
                    allow_remote,
                    token_file,
                    max_clients,
                    write_timeout,
                };
                serve(listeners, &relays, db, &identity, &policy).await
            }
        }
    })
}

/// Where `serve` listens.
struct Listeners {
    socket: Option<PathBuf>,
    listen: Option<String>,
    allow_remote: bool,
    token_file: Option<PathBuf>,
    max_clients: usize,
    write_timeout: u64,
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn serve(
    l: Listeners,
    relays: &[String],
    db: PathBuf,
    identity: &str,
    policy: &Policy,
) -> ExitCode {
    for r in relays {
        if !matches!(ProtocolServer::parse_prefix(r), Ok((_, ""))) {
            eprintln!("--relay {r}: not an SMP relay address (smp://keyHash@host[:port])");
            return ExitCode::FAILURE;
        }
    }
    let Some(first) = relays.first() else {
        return ExitCode::FAILURE;
    };
    let config = server::ServerConfig {
        max_clients: l.max_clients.max(1),
        write_timeout: std::time::Duration::from_secs(l.write_timeout.max(1)),
        ..server::ServerConfig::default()
    };
    // Listeners first, so that a bad address fails before the agent starts.
    let tcp = match &l.listen {
        None => None,
        Some(addr) => {
            let resolved: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(addr).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    eprintln!("--listen {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if !l.allow_remote && resolved.iter().any(|a| !a.ip().is_loopback()) {
                eprintln!(
                    "--listen {addr}: not a loopback address; the text protocol gives full \
                     control of the agent, so other addresses need --allow-remote"
                );
                return ExitCode::FAILURE;
            }
            let token_path = l
                .token_file
                .clone()
                .unwrap_or_else(|| with_suffix(&db, ".token"));
            let token = match server::Token::load_or_create(&token_path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("token file {}: {e}", token_path.display());
                    return ExitCode::FAILURE;
                }
            };
            match tokio::net::TcpListener::bind(resolved.as_slice()).await {
                Ok(t) => Some((t, token)),
                Err(e) => {
                    eprintln!("cannot listen on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let socket_path = match (&l.socket, &tcp) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => Some(with_suffix(&db, ".sock")),
        (None, Some(_)) => None,
    };
    let unix = match &socket_path {
        None => None,
        Some(p) => match server::UnixServer::bind(p) {
            Ok(u) => Some(u),
            Err(e) => {
                eprintln!("cannot listen on {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    // Queues are created on the first relay; peers' queues may be on any.
    let relays = Arc::new(NetworkRelay::new());
    let agent = match Agent::open(policy.config(identity, first, db), relays) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot open the agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = match smp_groups_relay::shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut servers = tokio::task::JoinSet::new();
    if let Some((t, token)) = tcp {
        if let Ok(addr) = t.local_addr() {
            println!("listening on {addr}");
        }
        servers.spawn(server::serve_tcp(t, agent.clone(), token, config.clone()));
    }
    if let Some(u) = unix {
        println!("listening on unix:{}", u.path().display());
        servers.spawn(server::serve_unix(u, agent.clone(), config));
    }
    tokio::select! {
        Some(why) = servers.join_next() => {
            // The servers end only when the agent has stopped on its own: a
            // store failure. Exit non-zero so that a supervisor restarts it
            // (everything it accepted is committed).
            let why = why.map_or_else(|e| e.to_string(), |e| e.to_string());
            eprintln!("smp-agent: {why}");
            ExitCode::FAILURE
        }
        () = stop => {
            // Stop between two inputs: everything accepted is committed.
            agent.shutdown().await;
            eprintln!("smp-agent: stopped");
            ExitCode::SUCCESS
        }
    }
}
