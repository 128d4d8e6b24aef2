//! Relay throughput over loopback TLS (block encryption, v11): a sender
//! connection sends 16000-byte messages, the subscribed recipient connection
//! gets each as `MSG` and acknowledges it. One queue (one message in flight)
//! and 100 queues (100 in flight); and 100 concurrent clients, each sending
//! to its own subscribed queue and acknowledging (`SEND -> MSG -> ACK`, 100
//! connections, 100 messages in flight).
//!
//! Two kinds of figures:
//! * `relay_loopback`: wall-clock time, relay and clients on one tokio
//!   runtime of two workers (what a reader of the throughput sees on this
//!   machine; the clients' block and TLS encryption share the cores).
//! * `relay_cpu` and `relay_clients_cpu`: the same three workloads with the
//!   relay on a runtime of its own, measured in CPU time (Linux
//!   `/proc/self/task/*/schedstat`) of the relay's threads (its workers and
//!   the store thread) or of the clients' threads (their workers and the
//!   bench's main thread). "time" is then CPU time per iteration and
//!   "thrpt" messages per CPU-second: the relay alone, without its clients.

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)] // criterion macros; setup failures abort the bench

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_net::{SmpTlsStream, SmpTransport, client_config};
use smp_groups_relay::{Relay, RelayHandle};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, Ed25519PublicKey, MsgFlags, RecipientCommand, SenderCommand,
    ServerMsg, SmpEncode, Transmission, TransmissionAuth, Version, VersionRange, X25519PublicKey,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};
use tokio::net::TcpStream;

const BODY: usize = 16_000;

type Conn = SmpTransport<TcpStream>;

async fn connect(relay: &RelayHandle) -> Conn {
    let tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = SmpTlsStream::connect(tcp, &client_config(relay.key_hash()).unwrap())
        .await
        .unwrap();
    let vr = VersionRange::new(Version(6), Version(11)).unwrap();
    SmpTransport::client(tls, relay.key_hash(), vr, &mut rng::system())
        .await
        .unwrap()
}

fn tx(c: &Conn, key: Option<&ed25519::SigningKey>, entity: &[u8], cmd: &wsmp::Command) -> Vec<u8> {
    let mut command = Vec::new();
    cmd.smp_encode(c.version(), &mut command).unwrap();
    let corr = [7u8; 24];
    let for_auth = wsmp::encode_for_auth(c.session_id(), &corr, entity, &command).unwrap();
    let t = Transmission {
        auth: key.map_or(TransmissionAuth::None, |k| {
            TransmissionAuth::Signature(k.sign(&for_auth).to_bytes())
        }),
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
        entity_id: ShortBytes::new(entity.to_vec()).unwrap(),
        command,
    };
    let mut out = Vec::new();
    t.smp_encode(c.version(), &mut out).unwrap();
    out
}

/// Receives blocks until `n` transmissions arrived; returns their commands.
async fn recv_n(c: &mut Conn, n: usize) -> Vec<(Vec<u8>, ServerMsg)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let block = c.recv_block().await.unwrap();
        for t in wsmp::decode_batch(&block).unwrap() {
            let t = smp_groups_wire::decode_all_with::<Transmission, _>(t, c.version()).unwrap();
            out.push((
                t.entity_id.into_vec(),
                smp_groups_wire::decode_all_with::<ServerMsg, _>(&t.command, c.version()).unwrap(),
            ));
        }
    }
    out
}

struct Setup {
    snd: Conn,
    rcv: Conn,
    /// Per queue: sender id, recipient id, recipient key.
    queues: Vec<(Vec<u8>, Vec<u8>, ed25519::SigningKey)>,
    send: Vec<Vec<u8>>,
}

async fn setup(relay: &RelayHandle, n: usize) -> Setup {
    let mut rcv = connect(relay).await;
    let snd = connect(relay).await;
    let mut r = rng::seeded(n as u64);
    let mut queues = Vec::new();
    for _ in 0..n {
        let rk = ed25519::SigningKey::generate(&mut r);
        let dh = x25519::SecretKey::generate(&mut r);
        let new = wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
            rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*rk.public_key().as_bytes())),
            rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
            basic_auth: None,
            subscribe_mode: SubscriptionMode::Subscribe,
            queue_req: Some(QueueReqData::Messaging(None)),
            ntf_creds: None,
        })));
        let t = tx(&rcv, Some(&rk), &[], &new);
        rcv.send_block(&wsmp::encode_batch(&[t]).unwrap())
            .await
            .unwrap();
        let (_, m) = recv_n(&mut rcv, 1).await.remove(0);
        let ServerMsg::Ids(ids) = m else {
            panic!("{m:?}")
        };
        queues.push((ids.snd_id.into_vec(), ids.rcv_id.into_vec(), rk));
    }
    let body = wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: vec![0x55; BODY],
    });
    let send = queues
        .iter()
        .map(|(sid, _, _)| tx(&snd, None, sid, &body))
        .collect();
    Setup {
        snd,
        rcv,
        queues,
        send,
    }
}

async fn round(s: &mut Setup) {
    let n = s.queues.len();
    for t in &s.send {
        s.snd
            .send_block(&wsmp::encode_batch(std::slice::from_ref(t)).unwrap())
            .await
            .unwrap();
    }
    let oks = recv_n(&mut s.snd, n).await;
    assert!(oks.iter().all(|(_, m)| *m == ServerMsg::Ok));
    let msgs = recv_n(&mut s.rcv, n).await;
    let mut acks = Vec::with_capacity(n);
    for (entity, m) in msgs {
        let ServerMsg::Msg { msg_id, .. } = m else {
            panic!("{m:?}")
        };
        let (_, rid, rk) = s.queues.iter().find(|(_, rid, _)| *rid == entity).unwrap();
        acks.push(tx(
            &s.rcv,
            Some(rk),
            rid,
            &wsmp::Command::Recipient(RecipientCommand::Ack(msg_id)),
        ));
    }
    for block in wsmp::pack_batches(&acks, 16384).unwrap() {
        s.rcv.send_block(&block).await.unwrap();
    }
    let acked = recv_n(&mut s.rcv, n).await;
    assert!(acked.iter().all(|(_, m)| *m == ServerMsg::Ok));
}

/// One client of the 100: its connection (recipient and sender of its own
/// queue), the queue, and its `SEND` transmission.
struct Solo {
    conn: Conn,
    rid: Vec<u8>,
    rk: ed25519::SigningKey,
    send: Vec<u8>,
}

async fn solo(relay: &RelayHandle, seed: u64) -> Solo {
    let mut conn = connect(relay).await;
    let mut r = rng::seeded(seed);
    let rk = ed25519::SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let new = wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
        rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*rk.public_key().as_bytes())),
        rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
        basic_auth: None,
        subscribe_mode: SubscriptionMode::Subscribe,
        queue_req: Some(QueueReqData::Messaging(None)),
        ntf_creds: None,
    })));
    let t = tx(&conn, Some(&rk), &[], &new);
    conn.send_block(&wsmp::encode_batch(&[t]).unwrap())
        .await
        .unwrap();
    let (_, m) = recv_n(&mut conn, 1).await.remove(0);
    let ServerMsg::Ids(ids) = m else {
        panic!("{m:?}")
    };
    let body = wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: vec![0x55; BODY],
    });
    let sid = ids.snd_id.into_vec();
    let send = tx(&conn, None, &sid, &body);
    Solo {
        conn,
        rid: ids.rcv_id.into_vec(),
        rk,
        send,
    }
}

/// One message through one client: `SEND`, its `OK` and the `MSG` (in either
/// order), `ACK`, its `OK`.
async fn solo_round(mut s: Solo) -> Solo {
    s.conn
        .send_block(&wsmp::encode_batch(std::slice::from_ref(&s.send)).unwrap())
        .await
        .unwrap();
    let mut msg_id = None;
    for (_, m) in recv_n(&mut s.conn, 2).await {
        match m {
            ServerMsg::Ok => {}
            ServerMsg::Msg { msg_id: id, .. } => msg_id = Some(id),
            other => panic!("{other:?}"),
        }
    }
    let ack = tx(
        &s.conn,
        Some(&s.rk),
        &s.rid,
        &wsmp::Command::Recipient(RecipientCommand::Ack(msg_id.unwrap())),
    );
    s.conn
        .send_block(&wsmp::encode_batch(&[ack]).unwrap())
        .await
        .unwrap();
    let (_, m) = recv_n(&mut s.conn, 1).await.remove(0);
    assert_eq!(m, ServerMsg::Ok);
    s
}

/// Runs the three workloads on `relay` with the clients on `rt`:
/// 1 queue, 100 queues, 100 clients.
fn workloads<M: Measurement>(
    c: &mut Criterion<M>,
    group: &str,
    rt: &tokio::runtime::Runtime,
    relay: &RelayHandle,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for n in [1usize, 100] {
        let mut s = rt.block_on(setup(relay, n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("send_msg_ack_{n}_queues"), |b| {
            b.iter(|| rt.block_on(round(&mut s)));
        });
    }
    let mut clients = Some(rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..100 {
            v.push(solo(relay, 1_000 + i).await);
        }
        v
    }));
    g.throughput(Throughput::Elements(100));
    g.bench_function("send_msg_ack_100_clients", |b| {
        b.iter(|| {
            let all = clients.take().unwrap_or_default();
            let done = rt.block_on(async {
                let tasks: Vec<_> = all
                    .into_iter()
                    .map(|s| tokio::spawn(solo_round(s)))
                    .collect();
                let mut back = Vec::with_capacity(tasks.len());
                for t in tasks {
                    back.push(t.await.unwrap());
                }
                back
            });
            clients = Some(done);
        });
    });
    g.finish();
}

fn data_dir(what: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("smp-relay-bench-net-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Relay and clients on one runtime of two workers, wall-clock time.
fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = data_dir("wall");
    let relay = rt.block_on(Relay::spawn_local(&dir)).unwrap();
    workloads(c, "relay_loopback", &rt, &relay);
    rt.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Thread-name prefix of the relay's runtime workers in the CPU benches.
const RELAY_THREADS: &str = "relay-rt";
/// Thread-name prefix of the clients' runtime workers in the CPU benches.
const CLIENT_THREADS: &str = "bench-client";
/// The relay's store thread (`smp-relay-store`, as the kernel keeps it).
const STORE_THREAD: &str = "smp-relay-store";

/// Whose CPU time a [`ThreadCpu`] measures.
#[derive(Clone, Copy)]
enum Side {
    /// The relay's workers and its store thread.
    Relay,
    /// The clients' workers and the bench's main thread (which runs the
    /// clients of the 1- and 100-queue cases).
    Clients,
}

/// CPU time (nanoseconds) of this process's threads of one side, read from
/// `/proc/self/task/*/schedstat`: a criterion measurement.
struct ThreadCpu {
    side: Side,
    wall: WallTime,
}

impl ThreadCpu {
    fn total(&self) -> u64 {
        let me = std::process::id().to_string();
        let mut sum = 0;
        for t in std::fs::read_dir("/proc/self/task").expect("/proc/self/task (Linux only)") {
            let Ok(t) = t else { continue };
            let path = t.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let name = name.trim_end();
            let main = t.file_name().to_str() == Some(me.as_str());
            let ours = match self.side {
                Side::Relay => name.starts_with(RELAY_THREADS) || name == STORE_THREAD,
                Side::Clients => name.starts_with(CLIENT_THREADS) || main,
            };
            if ours {
                let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
                sum += stat
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        sum
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        self.total()
    }
    fn end(&self, start: u64) -> u64 {
        self.total().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    #[allow(clippy::cast_precision_loss)] // nanoseconds of a bench run
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // CPU nanoseconds read as durations; throughput as elements per
        // CPU-second.
        self.wall.formatter()
    }
}

/// The relay on a runtime of its own (two workers, as the relay binary on
/// this machine would have), the clients on another; CPU time of `side`.
fn bench_cpu(c: &mut Criterion<ThreadCpu>, side: Side) {
    let (group, what) = match side {
        Side::Relay => ("relay_cpu", "cpu-relay"),
        Side::Clients => ("relay_clients_cpu", "cpu-clients"),
    };
    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(RELAY_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let dir = data_dir(what);
    let relay = relay_rt.block_on(Relay::spawn_local(&dir)).unwrap();
    workloads(c, group, &rt, &relay);
    relay_rt.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

fn relay_cpu(c: &mut Criterion<ThreadCpu>) {
    bench_cpu(c, Side::Relay);
}

fn clients_cpu(c: &mut Criterion<ThreadCpu>) {
    bench_cpu(c, Side::Clients);
}

fn cpu_config(side: Side) -> Criterion<ThreadCpu> {
    Criterion::default()
        .with_measurement(ThreadCpu {
            side,
            wall: WallTime,
        })
        .warm_up_time(Duration::from_secs(2))
}

criterion_group!(benches, bench);
criterion_group! {
    name = relay_cpu_benches;
    config = cpu_config(Side::Relay);
    targets = relay_cpu
}
criterion_group! {
    name = clients_cpu_benches;
    config = cpu_config(Side::Clients);
    targets = clients_cpu
}
criterion_main!(benches, relay_cpu_benches, clients_cpu_benches);
