//! Hostile load on loopback: the relay stays up, bounded and serving.
//!
//! Most tests run the `smp-relay` binary (its memory is measured apart from
//! the test's, and a file descriptor limit is set with `ulimit` in a shell
//! around it); the assertions are counts and sizes, and the few time bounds
//! are generous (seconds where the relay needs milliseconds).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::cast_possible_truncation
)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use common::net::NetClient;
use common::temp_dir;
use smp_groups_crypto::sbc::BLOCK_SIZE;
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::{AuthKey, MessageBody, QueueRecord, QueueStatus, StoredMessage};
use smp_groups_relay::{Durability, QueueStore};
use smp_groups_relay::{Relay, ServerConfig};
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, Ed25519PublicKey, MsgFlags, RecipientCommand, SenderCommand,
    ServerMsg, X25519PublicKey, pack_batches,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};

const V: u16 = 11;

/// The relay's resident memory must stay under this while abused.
const RSS_BOUND_KB: u64 = 64 * 1024;

/// `smp-relay` as a child process, killed when dropped.
struct RelayProc {
    child: Child,
    addr: SocketAddr,
    key_hash: [u8; 32],
    log: PathBuf,
    /// How long it took from start to printing its address.
    started_in: Duration,
}

impl RelayProc {
    /// Starts the relay on `dir` with `args`, under a file descriptor limit
    /// if given.
    fn start(dir: &Path, args: &[&str], nofile: Option<u32>) -> Self {
        let log = dir.with_extension("log");
        let bin = env!("CARGO_BIN_EXE_smp-relay");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let t0 = Instant::now();
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started_in = t0.elapsed();
        let server: wsmp::ProtocolServer = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port.number()));
        Self {
            child,
            addr,
            key_hash: server.key_hash.as_sha256().unwrap(),
            log,
            started_in,
        }
    }

    /// Resident memory in KiB.
    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn log(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    /// Waits (up to `limit`) for the log to contain `what`.
    async fn wait_log(&self, what: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.log().contains(what) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Queue {
    rk: ed25519::SigningKey,
    dh: x25519::SecretKey,
    rid: Vec<u8>,
    sid: Vec<u8>,
    srv_dh: x25519::PublicKey,
}

fn corr(tag: u8, n: u32) -> Vec<u8> {
    let mut c = vec![tag; 24];
    c[20..].copy_from_slice(&n.to_be_bytes());
    c
}

fn msg(c: &NetClient, bytes: &[u8]) -> ServerMsg {
    smp_groups_wire::decode_all_with::<ServerMsg, _>(bytes, c.version)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)))
}

async fn create(c: &mut NetClient, seed: u64, subscribe: bool) -> Queue {
    let mut r = rng::seeded(seed);
    let rk = ed25519::SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let new = wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
        rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*rk.public_key().as_bytes())),
        rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
        basic_auth: None,
        subscribe_mode: if subscribe {
            SubscriptionMode::Subscribe
        } else {
            SubscriptionMode::OnlyCreate
        },
        queue_req: Some(QueueReqData::Messaging(None)),
        ntf_creds: None,
    })));
    let t = c.cmd(Some(&rk), &corr(b'N', 0), &[], &new);
    c.send(&[t]).await;
    let (_, _, bytes) = c.recv().await;
    let ServerMsg::Ids(ids) = msg(c, &bytes) else {
        panic!("expected IDS, got {:?}", msg(c, &bytes))
    };
    Queue {
        rk,
        dh,
        rid: ids.rcv_id.into_vec(),
        sid: ids.snd_id.into_vec(),
        srv_dh: x25519::PublicKey::from_bytes(ids.srv_dh_key.0),
    }
}

async fn next_msg(c: &mut NetClient) -> ServerMsg {
    let (_, _, bytes) = c.recv().await;
    msg(c, &bytes)
}

fn send_cmd(body: &[u8]) -> wsmp::Command {
    wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: body.to_vec(),
    })
}

fn open(q: &Queue, m: &ServerMsg) -> (Vec<u8>, Vec<u8>) {
    let ServerMsg::Msg { msg_id, body } = m else {
        panic!("expected MSG, got {m:?}")
    };
    let secret = q.dh.diffie_hellman(&q.srv_dh);
    let plain = nacl::cb_decrypt(
        secret.as_bytes(),
        msg_id.as_slice().try_into().unwrap(),
        body,
    )
    .unwrap();
    (msg_id.as_slice().to_vec(), plain[10..].to_vec())
}

/// A normal client still gets through: a queue, a message to it, the `MSG`.
async fn normal_client_is_served(addr: SocketAddr, key_hash: [u8; 32], seed: u64) {
    let mut c = NetClient::connect(addr, key_hash, V).await;
    let q = create(&mut c, seed, true).await;
    c.send(&[c.cmd(None, &corr(b'S', 1), &q.sid, &send_cmd(b"still served"))])
        .await;
    let mut got = None;
    for _ in 0..2 {
        let (_, e, bytes) = c.recv().await;
        let m = msg(&c, &bytes);
        if e == q.rid && matches!(m, ServerMsg::Msg { .. }) {
            got = Some(open(&q, &m).1);
        }
    }
    assert_eq!(got.as_deref(), Some(&b"still served"[..]));
}

/// Point 1: a client that writes `GET`s of a 16 KiB message and never reads
/// the answers. The relay stops reading it once `max_inflight` answers wait
/// (its writes stall), its memory stays under 64 MB while the attacker is
/// connected and after, the attacker is cut off when its writes stall for
/// the idle timeout, and a normal client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_flood_is_bounded_and_cut_off() {
    let dir = temp_dir("abuse-get");
    let relay = RelayProc::start(&dir, &["--idle-timeout", "5"], None);
    let (addr, kh) = (relay.addr, relay.key_hash);
    let rss_idle = relay.rss_kb();

    let mut owner = NetClient::connect(addr, kh, V).await;
    let q = create(&mut owner, 1, false).await;
    owner
        .send(&[owner.cmd(None, &corr(b'S', 0), &q.sid, &send_cmd(&[7u8; 16_000]))])
        .await;
    assert_eq!(next_msg(&mut owner).await, ServerMsg::Ok);

    let mut attacker = NetClient::connect_unread(addr, kh, V).await;
    let get = wsmp::Command::Recipient(RecipientCommand::Get);
    let (mut sent_bytes, mut gets, mut stalled) = (0usize, 0u32, false);
    'flood: while sent_bytes < 16 << 20 {
        let ts: Vec<Vec<u8>> = (0..1_000)
            .map(|i| attacker.cmd(Some(&q.rk), &corr(b'G', gets + i), &q.rid, &get))
            .collect();
        gets += 1_000;
        for block in pack_batches(&ts, BLOCK_SIZE).unwrap() {
            if !attacker
                .try_send_block(&block, Duration::from_secs(3))
                .await
            {
                stalled = true;
                break 'flood;
            }
            sent_bytes += BLOCK_SIZE;
        }
    }
    let rss_flooded = relay.rss_kb();
    println!(
        "GET flood: {} KiB of GETs written before the relay stopped reading; relay RSS {} KiB idle, {} KiB flooded",
        sent_bytes / 1024,
        rss_idle,
        rss_flooded
    );
    assert!(
        stalled,
        "the relay kept reading a client that reads nothing ({sent_bytes} bytes)"
    );
    assert!(
        rss_flooded < RSS_BOUND_KB,
        "relay RSS {rss_flooded} KiB under the flood"
    );
    normal_client_is_served(addr, kh, 2).await;
    // Its writes stall for the idle timeout (5 s): the attacker is cut off.
    assert!(
        relay
            .wait_log("session closed: it does not read", Duration::from_secs(60))
            .await,
        "the stalled session was not closed:\n{}",
        relay.log()
    );
    drop(attacker);
    let rss_after = relay.rss_kb();
    println!("GET flood: relay RSS {rss_after} KiB after the attacker is gone");
    assert!(rss_after < RSS_BOUND_KB, "relay RSS {rss_after} KiB after");
    normal_client_is_served(addr, kh, 3).await;
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Point 4: 500 silent TCP connections to a relay that may open 256 files.
/// The oldest silent handshakes are dropped for newer connections, so a
/// normal client completes its handshake and `NEW` at once (it used to wait
/// for the silent ones' 30 s deadlines while `accept` failed 20 times a
/// second), and the failures are logged once per interval, not as a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_do_not_delay_a_client() {
    let dir = temp_dir("abuse-silent");
    let relay = RelayProc::start(&dir, &[], Some(256));
    let (addr, kh) = (relay.addr, relay.key_hash);
    let silent: Vec<std::net::TcpStream> = (0..500)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Let the relay take them all in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let mut c = NetClient::connect(addr, kh, V).await;
    let _q = create(&mut c, 4, true).await;
    let took = t0.elapsed();
    println!("500 silent connections: a client connected and created a queue in {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "a client waited {took:?} behind silent connections"
    );
    let log = relay.log();
    assert!(
        log.contains("handshake dropped for a newer connection"),
        "{log}"
    );
    let accept_lines = log.matches("accept failed").count();
    assert!(accept_lines <= 2, "{accept_lines} accept failure lines");
    drop(silent);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Point 4: a session that sends nothing is closed after the idle timeout; one
/// that pings is not. The TLS and SMP handshakes share one deadline: a client
/// that spends most of it on TLS has only the rest for the SMP hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_close_and_the_handshake_has_one_deadline() {
    let dir = temp_dir("abuse-idle");
    let relay = RelayProc::start(
        &dir,
        &["--idle-timeout", "3", "--handshake-timeout", "4"],
        None,
    );
    let (addr, kh) = (relay.addr, relay.key_hash);

    let mut quiet = NetClient::connect(addr, kh, V).await;
    let mut pinging = NetClient::connect(addr, kh, V).await;
    let ping = wsmp::Command::Ping;
    for i in 0..14 {
        pinging
            .send(&[pinging.cmd(None, &corr(b'P', i), &[], &ping)])
            .await;
        assert_eq!(next_msg(&mut pinging).await, ServerMsg::Pong);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // 7 s of pings every 0.5 s: still open.
    pinging
        .send(&[pinging.cmd(None, &corr(b'P', 99), &[], &ping)])
        .await;
    assert_eq!(next_msg(&mut pinging).await, ServerMsg::Pong);
    // The quiet one (7 s, timeout 3 s) is closed, or is within the bound.
    assert!(
        quiet.closed_within(Duration::from_secs(30)).await.is_some(),
        "an idle session stayed open"
    );
    assert!(relay.log().contains("idle session closed"));

    // TLS after 3 s of the 4 s deadline, then no SMP hello: closed at 4 s
    // (two deadlines one after the other would close it at 7 s).
    let t0 = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut tls =
        smp_groups_net::SmpTlsStream::connect(tcp, &smp_groups_net::client_config(kh).unwrap())
            .await
            .unwrap();
    let mut buf = vec![0u8; BLOCK_SIZE];
    let _hello = tls.read_exact(&mut buf).await;
    let closed = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await;
    let took = t0.elapsed();
    println!("handshake deadline 4 s: closed after {took:?}");
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "still open: {closed:?}"
    );
    assert!(took < Duration::from_millis(6_500), "closed after {took:?}");
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Points 7 and 8: a store of `queues` x 128 messages of `body` bytes, made
/// directly, then the relay started on it: it starts without reading the
/// bodies, its memory stays under the bound, a message is delivered, and the
/// secret-bearing files are owner-only.
async fn many_queues(queues: u32, body: usize) {
    let dir = temp_dir(&format!("abuse-store-{queues}"));
    let rk = ed25519::SigningKey::generate(&mut rng::seeded(9));
    let dh = x25519::SecretKey::generate(&mut rng::seeded(10));
    let srv = x25519::SecretKey::generate(&mut rng::seeded(11));
    let secret = srv.diffie_hellman(&dh.public_key());
    let t0 = Instant::now();
    {
        let mut store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
        store.begin().unwrap();
        for q in 0..queues {
            let mut rid = [1u8; 24];
            rid[..4].copy_from_slice(&q.to_be_bytes());
            let mut sid = [2u8; 24];
            sid[..4].copy_from_slice(&q.to_be_bytes());
            store
                .insert_queue(&QueueRecord {
                    recipient_id: rid,
                    sender_id: sid,
                    recipient_key: AuthKey::Ed25519(rk.public_key()),
                    rcv_dh_secret: smp_groups_relay::DhSecret::from_bytes(*secret.as_bytes()),
                    sender_key: None,
                    mode: None,
                    status: QueueStatus::Active,
                })
                .unwrap();
            for m in 0..128u32 {
                let mut id = [3u8; 24];
                id[..4].copy_from_slice(&q.to_be_bytes());
                id[4..8].copy_from_slice(&m.to_be_bytes());
                let msg = StoredMessage {
                    id,
                    ts: 4_000_000_000,
                    body: MessageBody::Message {
                        notification: false,
                        body: vec![(m % 251) as u8; body],
                    },
                };
                store.push_message(&rid, &msg, true).unwrap();
            }
        }
        store.commit().unwrap();
    }
    let made = t0.elapsed();
    let relay = RelayProc::start(&dir, &["--expire-days", "0"], None);
    let rss = relay.rss_kb();
    println!(
        "{queues} queues x 128 messages of {body} bytes: store made in {made:?}; relay started in {:?}, RSS {rss} KiB",
        relay.started_in
    );
    assert!(rss < RSS_BOUND_KB, "relay RSS {rss} KiB");
    assert!(
        relay.started_in < Duration::from_secs(20),
        "start took {:?}",
        relay.started_in
    );
    // The last queue's first message is delivered on SUB.
    let mut c = NetClient::connect(relay.addr, relay.key_hash, V).await;
    let mut rid = [1u8; 24];
    rid[..4].copy_from_slice(&(queues - 1).to_be_bytes());
    let sub = wsmp::Command::Recipient(RecipientCommand::Sub);
    c.send(&[c.cmd(Some(&rk), &corr(b'U', 0), &rid, &sub)])
        .await;
    let mut body_got = None;
    for _ in 0..2 {
        let (_, _, bytes) = c.recv().await;
        if let ServerMsg::Msg { msg_id, body: enc } = msg(&c, &bytes) {
            let plain = nacl::cb_decrypt(
                secret.as_bytes(),
                msg_id.as_slice().try_into().unwrap(),
                &enc,
            )
            .unwrap();
            body_got = Some(plain[10..].to_vec());
        }
    }
    assert_eq!(body_got, Some(vec![0u8; body]));
    // Point 8: owner-only files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "relay.sqlite3",
            "relay.sqlite3-wal",
            "relay.sqlite3-shm",
            "ca.key",
            "server.key",
        ] {
            let m = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{f}");
        }
    }
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CI size: 1,000 queues x 128 messages of 1 KiB (128 MiB of bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_queues_of_128_messages_start_small() {
    many_queues(1_000, 1_024).await;
}

/// The size: 10,000 queues x 128 messages (of 256 bytes, to keep the
/// store at 330 MB of bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds a 400 MB store; run with --ignored"]
async fn ten_thousand_queues_of_128_messages_start_small() {
    many_queues(10_000, 256).await;
}

/// A subscriber that reads nothing while messages arrive on many of its
/// queues: its waiting events pass `max_events`, or its writes stall, and it
/// is closed; both are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_closed() {
    let dir = temp_dir("abuse-events");
    let relay = Relay::spawn_local_with(
        &dir,
        ServerConfig {
            max_events: 16,
            idle_timeout: Duration::from_secs(2),
            ..ServerConfig::default()
        },
    )
    .await
    .unwrap();
    let (addr, kh) = (relay.local_addr(), relay.key_hash());
    let mut sub = NetClient::connect(addr, kh, V).await;
    let mut queues = Vec::new();
    for i in 0..600 {
        queues.push(create(&mut sub, 100 + i, false).await);
    }
    // Stop reading: a fresh client would not read; this one simply stops.
    let mut unread = NetClient::connect_unread(addr, kh, V).await;
    // Move the subscriptions to the client that does not read.
    let sub_cmd = wsmp::Command::Recipient(RecipientCommand::Sub);
    for chunk in queues.chunks(50) {
        let ts: Vec<Vec<u8>> = chunk
            .iter()
            .enumerate()
            .map(|(i, q)| unread.cmd(Some(&q.rk), &corr(b'U', i as u32), &q.rid, &sub_cmd))
            .collect();
        for b in pack_batches(&ts, BLOCK_SIZE).unwrap() {
            unread.send_block(&b).await;
        }
    }
    let mut sender = NetClient::connect(addr, kh, V).await;
    for (i, q) in queues.iter().enumerate() {
        sender
            .send(&[sender.cmd(
                None,
                &corr(b'S', i as u32),
                &q.sid,
                &send_cmd(&[1u8; 16_000]),
            )])
            .await;
        assert_eq!(next_msg(&mut sender).await, ServerMsg::Ok);
    }
    let end = Instant::now() + Duration::from_secs(60);
    let mut stats = relay.stats().await;
    while stats.slow_closed == 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = relay.stats().await;
    }
    println!("a subscriber that does not read: {stats:?}");
    assert!(stats.slow_closed >= 1, "{stats:?}");
    assert_eq!(stats.messages, 600, "{stats:?}");
    drop(sub);
    drop(unread);
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
