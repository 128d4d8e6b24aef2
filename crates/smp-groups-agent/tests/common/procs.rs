//! `smp-relay` and `smp-agent serve` as child processes (the crate's
//! `testing::procs`, with this crate's own `smp-agent` binary).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use smp_groups_agent::testing::procs::Proc;
use smp_groups_agent::testing::procs::{build_binaries, spawn_agent, spawn_relay};

/// The `smp-relay` binary, built from this workspace's sources once per test
/// process ([`build_binaries`]).
pub fn relay_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let own = Path::new(env!("CARGO_BIN_EXE_smp-agent"));
            build_binaries(own, &[("smp-groups-relay", "smp-relay")]).remove(0)
        })
        .clone()
}

/// `smp-relay --listen LISTEN --data DIR`; returns it and its address.
pub fn relay(listen: &str, dir: &Path) -> (Proc, String) {
    spawn_relay(&relay_bin(), listen, dir)
}

/// `smp-agent serve --listen 127.0.0.1:0 --relay RELAY --db DB --identity NAME`;
/// returns it and where it listens (with the token it made in `DB.token`).
pub fn agent(name: &str, relay: &str, db: &Path) -> (Proc, super::Endpoint) {
    agent_with(name, relay, db, None, &[])
}

/// [`agent`] with more arguments, and run by `sh -c` after `shell` (for
/// example `ulimit -n 64;`) when given.
pub fn agent_with(
    name: &str,
    relay: &str,
    db: &Path,
    shell: Option<&str>,
    extra: &[&str],
) -> (Proc, super::Endpoint) {
    let bin = Path::new(env!("CARGO_BIN_EXE_smp-agent"));
    let (p, addr, token) = spawn_agent(bin, name, relay, db, shell, extra);
    (p, super::Endpoint { addr, token })
}
