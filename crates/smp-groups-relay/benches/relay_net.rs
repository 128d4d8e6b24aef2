//! Relay throughput over loopback TLS (block encryption, v11): a sender
//! connection sends 16000-byte messages, the subscribed recipient connection
//! gets each as `MSG` and acknowledges it. One queue (one message in flight)
//! and 100 queues (100 in flight); and 100 concurrent clients, each sending
//! to its own subscribed queue and acknowledging (`SEND -> MSG -> ACK`, 100
//! connections, 100 messages in flight).

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)] // criterion macros; setup failures abort the bench

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_net::{SmpTlsStream, SmpTransport, client_config};
use smp_groups_relay::server::{Relay, RelayHandle};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::command::{NewQueue, QueueReqData, SubscriptionMode};
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, Ed25519PublicKey, MsgFlags, RecipientCommand, SenderCommand,
    ServerMsg, SmpDecode, SmpEncode, Transmission, TransmissionAuth, Version, VersionRange,
    X25519PublicKey,
};
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
            let t = Transmission::decode(c.version(), t).unwrap();
            out.push((
                t.entity_id.into_vec(),
                ServerMsg::smp_decode(c.version(), &t.command).unwrap(),
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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("smp-relay-bench-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = rt.block_on(Relay::spawn_local(&dir)).unwrap();
    let mut g = c.benchmark_group("relay_loopback");
    g.sample_size(10);
    for n in [1usize, 100] {
        let mut s = rt.block_on(setup(&relay, n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("send_msg_ack_{n}_queues"), |b| {
            b.iter(|| rt.block_on(round(&mut s)));
        });
    }
    let mut clients = Some(rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..100 {
            v.push(solo(&relay, 1_000 + i).await);
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
    drop(clients);
    rt.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
