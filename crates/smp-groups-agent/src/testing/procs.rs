//! `smp-relay` and `smp-agent serve` as child processes, for the end-to-end
//! tests of this crate and of the crates above it.
//!
//! These helpers fail by panicking, with what went wrong: they run only in
//! tests, where a panic is the test's failure.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Builds binaries of this workspace from its sources in the profile the
/// running test was built in (a no-op when they are up to date) and returns
/// their paths in the order asked, taken from cargo's own report, so a stale
/// binary left in the target directory is never used.
///
/// `own_exe` is an executable of the same build (a test's
/// `CARGO_BIN_EXE_<name>`), from whose directory the profile is read;
/// `bins` lists `(package, binary)` pairs.
pub fn build_binaries(own_exe: &Path, bins: &[(&str, &str)]) -> Vec<PathBuf> {
    // `target/<profile dir>/<exe>`: the dev profile builds into `debug`.
    let profile = match own_exe
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
    {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let mut cmd = Command::new(env!("CARGO"));
    // What cargo sets for a test run (the package's variables, OUT_DIR, the
    // library path) would make the inner build's fingerprints differ from
    // the outer one's, and rebuild everything every run.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
            || k == "OUT_DIR"
            || k == "LD_LIBRARY_PATH"
        {
            cmd.env_remove(&*k);
        }
    }
    cmd.arg("build");
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    let out = cmd
        .args([
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building {bins:?} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    bins.iter()
        .map(|(_, bin)| {
            let exe = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
            let path = stdout
                .lines()
                .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
                .find_map(|l| {
                    let (_, rest) = l.split_once(r#""executable":""#)?;
                    let (path, _) = rest.split_once('"')?;
                    path.ends_with(&exe)
                        .then(|| PathBuf::from(path.replace(r"\\", r"\")))
                })
                .unwrap_or_else(|| panic!("cargo reports no {bin} executable"));
            assert!(path.exists(), "no {bin} at {}", path.display());
            path
        })
        .collect()
}

/// A child process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    /// The process.
    pub child: Child,
    /// What its first line of stdout said.
    pub first_line: String,
}

impl Proc {
    /// Starts `cmd` and returns once it printed its first stdout line; its
    /// log (at the level of `SMP_TEST_LOG`, default `warn`) is appended to
    /// `log`. Its later stdout is read and dropped, so that it never blocks
    /// on a full pipe.
    pub fn start(mut cmd: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("log {}: {e}", log.display()));
        let level = std::env::var("SMP_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = cmd
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the process starts");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        out.read_line(&mut line).expect("the process writes a line");
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

    /// Resident memory in KiB (Linux).
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in the process's status")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `smp-relay --listen LISTEN --data DIR` (the binary at `bin`), its log in
/// `DIR.log`; returns it and the address it printed.
pub fn spawn_relay(bin: &Path, listen: &str, dir: &Path) -> (Proc, String) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", listen]).arg("--data").arg(dir);
    let p = Proc::start(cmd, &dir.with_extension("log"));
    assert!(
        p.first_line.starts_with("smp://"),
        "smp-relay printed {:?}",
        p.first_line
    );
    let address = p.first_line.clone();
    (p, address)
}

/// `smp-agent serve --listen 127.0.0.1:0 --relay RELAY --identity NAME --db
/// DB EXTRA...` (the binary at `bin`), run by `sh -c` after `shell` (for
/// example `ulimit -n 64 &&`) when given, its log in `DB.log`; returns it,
/// where it listens and the token it wrote to `DB.token`.
pub fn spawn_agent(
    bin: &Path,
    name: &str,
    relay: &str,
    db: &Path,
    shell: Option<&str>,
    extra: &[&str],
) -> (Proc, SocketAddr, String) {
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
        .unwrap_or_else(|e| panic!("smp-agent printed {:?}: {e}", p.first_line));
    let mut token_file = db.as_os_str().to_owned();
    token_file.push(".token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&token_file).display()))
        .trim()
        .to_owned();
    (p, addr, token)
}
