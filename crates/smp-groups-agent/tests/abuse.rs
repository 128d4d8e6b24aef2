//! Hostile load on loopback: `smp-agent serve` stays up, bounded and private.
//!
//! Each test runs the real binaries (`smp-relay` and `smp-agent serve`); file
//! descriptor and file size limits are set with `ulimit` in a shell around
//! the agent. Assertions are counts, sizes and states; the time bounds are
//! generous.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::many_single_char_names
)] // tests fail by panicking

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::procs::{self, Proc};
use common::{Client, Endpoint, connect_authenticated, temp_db};
use smp_groups_wire::client::AgentEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The agent's resident memory must stay under this while abused.
const RSS_BOUND_KB: u64 = 64 * 1024;

fn dir(name: &str) -> PathBuf {
    temp_db(name).parent().unwrap().to_path_buf()
}

fn log_of(db: &Path) -> String {
    std::fs::read_to_string(db.with_extension("log")).unwrap_or_default()
}

/// Sends `corr G:name NEW :info` and returns the answer's word and line.
async fn new_group(c: &mut Client, corr: u32, name: &str) -> (String, String) {
    c.line(&format!("{corr} G:{name} NEW :abuse")).await;
    let from = c.seen.len();
    let corr = corr.to_string();
    c.wait_from(from, |t| {
        (t.corr_id.as_str() == corr).then(|| (t.msg.word().to_owned(), format!("{t:?}")))
    })
    .await
}

/// Whether the process is still running.
fn alive(p: &mut Proc) -> bool {
    p.child.try_wait().unwrap().is_none()
}

/// Point 2: under `ulimit -n 64`, 100 idle connections make `accept` fail
/// with "too many open files". The agent logs it (once per interval, not
/// per failure), backs off, and goes on: once the idle connections are gone a
/// client is served. It used to exit at the first failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_survives_running_out_of_file_descriptors() {
    let d = dir("abuse-emfile");
    let (_relay, relay_addr) = procs::relay("127.0.0.1:0", &d.join("relay"));
    let db = d.join("agent.db");
    let (mut agent, ep) =
        procs::agent_with("agent", &relay_addr, &db, Some("ulimit -n 64 &&"), &[]);
    let idle: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(ep.addr).ok())
        .collect();
    let end = Instant::now() + Duration::from_secs(30);
    while !log_of(&db).contains("accept failed") && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = log_of(&db);
    assert!(
        log.contains("Too many open files"),
        "no EMFILE seen:\n{log}"
    );
    assert!(alive(&mut agent), "the agent exited:\n{log}");
    drop(idle);
    // Served again once descriptors are free.
    let mut c = Client::connect(&ep, "client").await;
    let (word, line) = new_group(&mut c, 1, "after").await;
    assert_eq!(word, "OK", "{line}");
    assert!(alive(&mut agent));
    let lines = log_of(&db).matches("accept failed").count();
    assert!(lines <= 10, "{lines} accept failure lines: a log storm");
    let _ = std::fs::remove_dir_all(&d);
}

/// Point 3: a client that writes bad lines and never reads the `ERR`s. Its
/// commands stop being read once its answers wait (its writes stall long
/// before 16 MiB), the agent's memory stays under the bound, the client is
/// cut off when a write stalls for the write timeout, and another client is
/// served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_slowed_and_cut_off() {
    let d = dir("abuse-unread");
    let (_relay, relay_addr) = procs::relay("127.0.0.1:0", &d.join("relay"));
    let db = d.join("agent.db");
    let (agent, ep) = procs::agent_with("agent", &relay_addr, &db, None, &["--write-timeout", "3"]);
    let rss_idle = agent.rss_kb();
    let (mut flood, _) = connect_authenticated(&ep).await;
    let chunk = b"x\r\n".repeat(20_000);
    let (mut sent, mut stalled) = (0usize, false);
    while sent < 16 << 20 {
        if let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_secs(2), flood.write_all(&chunk)).await
        {
            sent += chunk.len();
        } else {
            stalled = true;
            break;
        }
    }
    let rss = agent.rss_kb();
    println!(
        "bad-line flood: {} KiB written before the agent stopped reading; agent RSS {rss_idle} KiB idle, {rss} KiB flooded",
        sent / 1024
    );
    assert!(
        stalled,
        "the agent read {sent} bytes from a client that reads nothing"
    );
    assert!(rss < RSS_BOUND_KB, "agent RSS {rss} KiB");
    // Another client is served meanwhile.
    let mut c = Client::connect(&ep, "client").await;
    assert_eq!(new_group(&mut c, 1, "served").await.0, "OK");
    // The flooding client is cut off once a write stalls for 3 s: reading
    // now drains what was written, then the end of the stream.
    // The client goes on writing without reading: on a loaded machine its
    // first stall may be a slow agent rather than one that stopped reading,
    // and only a full socket stalls the agent's writes.
    let end = Instant::now() + Duration::from_secs(60);
    while !log_of(&db).contains("it does not read") && Instant::now() < end {
        let _ = tokio::time::timeout(Duration::from_millis(100), flood.write_all(&chunk)).await;
    }
    assert!(log_of(&db).contains("it does not read"), "{}", log_of(&db));
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match flood.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the client that did not read is still connected"
    );
    let rss_after = agent.rss_kb();
    println!("bad-line flood: agent RSS {rss_after} KiB after");
    assert!(rss_after < RSS_BOUND_KB);
    let _ = std::fs::remove_dir_all(&d);
}

/// Point 5: the text port needs the token. A TCP client with a wrong token,
/// or without `AUTH`, gets `AUTH ERR` and nothing else, not even an event
/// that is waiting; with the token it gets the event. The default listener
/// is a Unix socket of mode 0600 (and the token file is 0600); a
/// non-loopback `--listen` is refused unless `--allow-remote`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_port_requires_authentication() {
    let d = dir("abuse-auth");
    let (_relay, relay_addr) = procs::relay("127.0.0.1:0", &d.join("relay"));
    let (_alice, a_ep) = procs::agent("alice", &relay_addr, &d.join("alice.db"));
    let (_bob, b_ep) = procs::agent("bob", &relay_addr, &d.join("bob.db"));
    // alice invites, then no client of hers is connected when bob joins:
    // her CON event waits for her next client.
    let mut a = Client::connect(&a_ep, "alice").await;
    a.line("1 C:bob NEW").await;
    let inv = a
        .wait_from(0, |t| match &t.msg {
            AgentEvent::Inv { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .await;
    drop(a);
    let mut b = Client::connect(&b_ep, "bob").await;
    b.line(&format!("1 C:alice JOIN {inv}")).await;
    b.wait_from(0, |t| matches!(t.msg, AgentEvent::Con { .. }).then_some(()))
        .await;

    for first in [
        "AUTH wrong-token\r\n".to_owned(),
        "2 G:g NEW :x\r\n".to_owned(),
        format!("AUTH {}x\r\n", a_ep.token),
    ] {
        let mut s = TcpStream::connect(a_ep.addr).await.unwrap();
        s.write_all(first.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
        assert!(r.is_ok(), "not closed after {first:?}");
        assert_eq!(got, b"AUTH ERR\r\n", "after {first:?}");
    }
    // Silent: closed after the AUTH timeout, having received nothing.
    let mut s = TcpStream::connect(a_ep.addr).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(40), s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "a silent client stayed connected");
    assert_eq!(got, b"AUTH ERR\r\n");
    // With the token: the waiting event.
    let mut a = Client::connect(&a_ep, "alice").await;
    a.wait_from(0, |t| matches!(t.msg, AgentEvent::Con { .. }).then_some(()))
        .await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.join("alice.db.token")), 0o600);
        assert_eq!(mode(&d.join("alice.db")), 0o600);
        // The default listener: a Unix socket beside the database, 0600.
        let db = d.join("carol.db");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smp-agent"));
        cmd.args([
            "serve",
            "--relay",
            &relay_addr,
            "--identity",
            "carol",
            "--db",
        ])
        .arg(&db);
        let carol = Proc::start(cmd, &db.with_extension("log"));
        let sock = d.join("carol.db.sock");
        assert_eq!(
            carol.first_line,
            format!("listening on unix:{}", sock.display())
        );
        assert_eq!(mode(&sock), 0o600);
        let mut u = tokio::net::UnixStream::connect(&sock).await.unwrap();
        u.write_all(b"1 G:g NEW :over the socket\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(20), u.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"1 G:g OK\r\n");
    }
    // Only loopback without --allow-remote.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smp-agent"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--relay",
            &relay_addr,
            "--db",
        ])
        .arg(d.join("dave.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
    let _ = std::fs::remove_dir_all(&d);
}

/// Point 6: the agent's database on a "full disk" (a file size limit, with
/// SIGXFSZ ignored, so writes fail with EFBIG as on a full file system).
/// Commands are accepted until a commit fails; that command and those after
/// are answered `ERR INTERNAL` with the cause, and the process exits
/// non-zero so that a supervisor restarts it. Restarted with room, it has
/// every group it accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_the_agent_exits_for_a_restart() {
    let d = dir("abuse-full");
    let (_relay, relay_addr) = procs::relay("127.0.0.1:0", &d.join("relay"));
    let db = d.join("agent.db");
    let (mut agent, ep) = procs::agent_with(
        "agent",
        &relay_addr,
        &db,
        Some("trap '' XFSZ; ulimit -f 2048 &&"),
        &[],
    );
    let mut c = Client::connect(&ep, "client").await;
    let mut accepted = Vec::new();
    let mut refusal = None;
    for i in 1..=20_000u32 {
        let name = format!("g{i}");
        let (word, line) = new_group(&mut c, i, &name).await;
        if word == "OK" {
            accepted.push(name);
        } else {
            refusal = Some(line);
            break;
        }
    }
    let refusal = refusal.expect("the file size limit was never reached");
    println!(
        "full disk: {} groups accepted, then {refusal}",
        accepted.len()
    );
    assert!(refusal.contains("store failed"), "{refusal}");
    assert!(!accepted.is_empty());
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the agent did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "exit status {status:?}");
    assert!(log_of(&db).contains("store failed"));
    drop(c);
    // The supervisor restarts it with room: every accepted group is there.
    let (_again, ep2): (Proc, Endpoint) = procs::agent("agent", &relay_addr, &db);
    let mut c = Client::connect(&ep2, "client").await;
    for (i, name) in accepted.iter().enumerate() {
        let (word, line) = new_group(&mut c, 100_000 + u32::try_from(i).unwrap(), name).await;
        assert_eq!(word, "ERR", "group {name} was lost: {line}");
        assert!(line.contains("Duplicate"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
