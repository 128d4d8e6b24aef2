//! `smp-relay` and `smp-agent serve` as child processes.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The `smp-relay` binary, built from this workspace's sources: the first call
/// in a test process runs `cargo build -p smp-groups-relay --bin smp-relay` in
/// the profile the tests were built in (a no-op when it is up to date) and
/// takes the executable's path from cargo's own report, so a stale binary
/// left in the target directory is never used.
pub fn relay_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_relay).clone()
}

fn build_relay() -> PathBuf {
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_smp-agent"));
    // `target/<profile dir>/smp-agent`: the dev profile builds into `debug`.
    let profile = match agent
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
    {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", "smp-groups-relay", "--bin", "smp-relay"])
        .args([
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building smp-relay failed");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
        .find_map(|l| {
            let (_, rest) = l.split_once(r#""executable":""#)?;
            let (path, _) = rest.split_once('"')?;
            path.ends_with(&format!("smp-relay{}", std::env::consts::EXE_SUFFIX))
                .then(|| PathBuf::from(path.replace(r"\\", r"\")))
        })
        .expect("cargo reports the smp-relay executable");
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
    let bin = env!("CARGO_BIN_EXE_smp-agent");
    let mut cmd = match shell {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix} exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
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
    .arg(db)
    .args(extra);
    let p = Proc::start(cmd, &db.with_extension("log"));
    let addr = p
        .first_line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("smp-agent printed {:?}", p.first_line))
        .parse()
        .unwrap();
    let mut token_file = db.as_os_str().to_owned();
    token_file.push(".token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    (p, super::Endpoint { addr, token })
}

impl Proc {
    /// Resident memory in KiB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}
