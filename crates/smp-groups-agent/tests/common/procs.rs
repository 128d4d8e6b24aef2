//! `smp-relay` and `smp-agent serve` as child processes.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `smp-relay` binary: beside `smp-agent` in the target directory (cargo
/// builds it for the relay crate's own tests), else built now.
pub fn relay_bin() -> PathBuf {
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_smp-agent"));
    let path = agent.with_file_name(format!("smp-relay{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "smp-groups-relay", "--bin", "smp-relay"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building smp-relay failed");
    }
    assert!(path.exists(), "no smp-relay at {}", path.display());
    path
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    /// What its first line of stdout said.
    pub first_line: String,
}

impl Proc {
    /// Starts `cmd`, reads its first stdout line. Its log (at the level of
    /// `SMP_TEST_LOG`, default `warn`) is appended to `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let level = std::env::var("SMP_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = cmd
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the process starts");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Self {
            child,
            first_line: line.trim().to_owned(),
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `smp-relay --listen LISTEN --data DIR`; returns it and its address.
pub fn relay(listen: &str, dir: &Path) -> (Proc, String) {
    let mut cmd = Command::new(relay_bin());
    cmd.args(["--listen", listen]).arg("--data").arg(dir);
    std::fs::create_dir_all(dir).unwrap();
    let p = Proc::start(cmd, &dir.with_extension("log"));
    assert!(
        p.first_line.starts_with("smp://"),
        "smp-relay printed {:?}",
        p.first_line
    );
    let address = p.first_line.clone();
    (p, address)
}

/// `smp-agent serve --listen 127.0.0.1:0 --relay RELAY --db DB --identity NAME`;
/// returns it and the address it listens on.
pub fn agent(name: &str, relay: &str, db: &Path) -> (Proc, std::net::SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smp-agent"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--relay",
        relay,
        "--identity",
        name,
    ])
    .arg("--db")
    .arg(db);
    let p = Proc::start(cmd, &db.with_extension("log"));
    let addr = p
        .first_line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("smp-agent printed {:?}", p.first_line))
        .parse()
        .unwrap();
    (p, addr)
}
