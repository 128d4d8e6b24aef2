//! `smp-agent`: the smp-groups agent.
//!
//! * `smp-agent serve --listen ADDR --relay SMP_URL [--relay ...] --db FILE`
//!   serves the client text protocol on ADDR; its queues are on the first
//!   relay, reached over TLS.
//! * `smp-agent demo [--members N] [--messages M]` runs a scripted group on
//!   in-process relays and checks every step's envelope count.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use smp_groups_agent::{Agent, AgentConfig, NetworkRelay, demo, server};
use smp_groups_wire::smp::ProtocolServer;

/// The smp-groups agent.
#[derive(Parser, Debug)]
#[command(name = "smp-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the client text protocol on TCP.
    Serve {
        /// Address to listen on (e.g. 127.0.0.1:5224).
        #[arg(long)]
        listen: String,
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
                listen,
                relays,
                db,
                identity,
            } => serve(&listen, &relays, db, &identity).await,
        }
    })
}

async fn serve(listen: &str, relays: &[String], db: PathBuf, identity: &str) -> ExitCode {
    for r in relays {
        if !matches!(ProtocolServer::parse_prefix(r), Ok((_, ""))) {
            eprintln!("--relay {r}: not an SMP relay address (smp://keyHash@host[:port])");
            return ExitCode::FAILURE;
        }
    }
    let Some(first) = relays.first() else {
        return ExitCode::FAILURE;
    };
    // Queues are created on the first relay; peers' queues may be on any.
    let relays = Arc::new(NetworkRelay::new());
    let agent = match Agent::open(AgentConfig::new(identity, first, Some(db)), relays) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot open the agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = match smp_groups_relay::signal::shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("listening on {addr}");
    }
    tokio::select! {
        r = server::serve(listener, agent.clone()) => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("server: {e}");
                ExitCode::FAILURE
            }
        },
        () = stop => {
            // Stop between two inputs: everything accepted is committed.
            agent.shutdown().await;
            eprintln!("smp-agent: stopped");
            ExitCode::SUCCESS
        }
    }
}
