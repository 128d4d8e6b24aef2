//! The relay over loopback TLS: the SMP handshake, the queue lifecycle, events
//! to subscribers, restarts, malformed blocks, and 100 concurrent clients.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::many_single_char_names
)] // tests fail by panicking

mod common;

use std::collections::HashMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::net::NetClient;
use common::temp_dir;
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::Relay;
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, Ed25519PublicKey, ErrorType, MsgFlags, RecipientCommand,
    SenderCommand, ServerMsg, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};

const V: u16 = 11;

struct Queue {
    rk: ed25519::SigningKey,
    dh: x25519::SecretKey,
    rid: Vec<u8>,
    sid: Vec<u8>,
    srv_dh: x25519::PublicKey,
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
    let t = c.cmd(Some(&rk), b"new-queue-corr-id-000000", &[], &new);
    c.send(&[t]).await;
    let (corr, _, bytes) = c.recv().await;
    assert_eq!(corr, b"new-queue-corr-id-000000");
    let ServerMsg::Ids(ids) = msg(c, &bytes) else {
        panic!("expected IDS")
    };
    Queue {
        rk,
        dh,
        rid: ids.rcv_id.into_vec(),
        sid: ids.snd_id.into_vec(),
        srv_dh: x25519::PublicKey::from_bytes(ids.srv_dh_key.0),
    }
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

fn send(body: &[u8]) -> wsmp::Command {
    wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: body.to_vec(),
    })
}

fn corr(tag: u8, n: u32) -> Vec<u8> {
    let mut c = vec![tag; 24];
    c[20..].copy_from_slice(&n.to_be_bytes());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_loopback_tls() {
    let dir = temp_dir("net-lifecycle");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    assert!(relay.address().starts_with("smp://"));
    assert!(
        relay
            .address()
            .ends_with(&format!("@127.0.0.1:{}", relay.local_addr().port()))
    );
    let (addr, kh) = (relay.local_addr(), relay.key_hash());
    let mut a = NetClient::connect(addr, kh, V).await;
    let mut b = NetClient::connect(addr, kh, V).await;
    let q = create(&mut a, 1, true).await;

    // b sends; a, subscribed at NEW, gets the MSG as an event.
    b.send(&[b.cmd(None, &corr(b'S', 1), &q.sid, &send(b"hello a"))])
        .await;
    let (c, _, r) = b.recv().await;
    assert_eq!((c, msg(&b, &r)), (corr(b'S', 1), ServerMsg::Ok));
    let (c, e, r) = a.recv().await;
    assert!(c.is_empty());
    assert_eq!(e, q.rid);
    let (id, body) = open(&q, &msg(&a, &r));
    assert_eq!(body, b"hello a");

    // Secure the queue; then unsigned SEND is refused.
    let sk = ed25519::SigningKey::generate(&mut rng::seeded(2));
    let key = wsmp::Command::Recipient(RecipientCommand::Key(AuthPublicKey::Ed25519(
        Ed25519PublicKey(*sk.public_key().as_bytes()),
    )));
    let ack = wsmp::Command::Recipient(RecipientCommand::Ack(
        smp_groups_wire::ShortBytes::new(id).unwrap(),
    ));
    a.send(&[
        a.cmd(Some(&q.rk), &corr(b'A', 1), &q.rid, &ack),
        a.cmd(Some(&q.rk), &corr(b'K', 1), &q.rid, &key),
    ])
    .await;
    for expected in [corr(b'A', 1), corr(b'K', 1)] {
        let (c, _, r) = a.recv().await;
        assert_eq!((c, msg(&a, &r)), (expected, ServerMsg::Ok));
    }
    b.send(&[b.cmd(None, &corr(b'S', 2), &q.sid, &send(b"x"))])
        .await;
    assert_eq!(b.recv_msg().await, ServerMsg::Err(ErrorType::Auth));
    b.send(&[b.cmd(Some(&sk), &corr(b'S', 3), &q.sid, &send(b"signed"))])
        .await;
    assert_eq!(b.recv_msg().await, ServerMsg::Ok);
    let (_, _, r) = a.recv().await;
    assert_eq!(open(&q, &msg(&a, &r)).1, b"signed");

    // A second subscriber: a gets END, c gets the unacknowledged message again.
    let mut c = NetClient::connect(addr, kh, V).await;
    let sub = wsmp::Command::Recipient(RecipientCommand::Sub);
    c.send(&[c.cmd(Some(&q.rk), &corr(b'U', 1), &q.rid, &sub)])
        .await;
    assert_eq!(c.recv_msg().await, ServerMsg::Ok);
    assert_eq!(open(&q, &c.recv_msg().await).1, b"signed");
    let (cid, e, r) = a.recv().await;
    assert!(cid.is_empty());
    assert_eq!((e, msg(&a, &r)), (q.rid.clone(), ServerMsg::End));

    // A malformed block, a bad signature, and PING on the same connection.
    b.send_block(&[3, 0]).await;
    assert_eq!(b.recv_msg().await, ServerMsg::Err(ErrorType::Block));
    let bad = ed25519::SigningKey::generate(&mut rng::seeded(3));
    b.send(&[
        b.cmd(Some(&bad), &corr(b'S', 4), &q.sid, &send(b"forged")),
        b.raw(None, &corr(b'P', 1), &[], b"PING"),
    ])
    .await;
    assert_eq!(b.recv_msg().await, ServerMsg::Err(ErrorType::Auth));
    assert_eq!(b.recv_msg().await, ServerMsg::Pong);

    // DEL by a: c, the subscriber, gets DELD.
    let del = wsmp::Command::Recipient(RecipientCommand::Del);
    a.send(&[a.cmd(Some(&q.rk), &corr(b'D', 1), &q.rid, &del)])
        .await;
    assert_eq!(a.recv_msg().await, ServerMsg::Ok);
    let (_, e, r) = c.recv().await;
    assert_eq!((e, msg(&c, &r)), (q.rid.clone(), ServerMsg::Deld));
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_identity_queues_and_messages() {
    let dir = temp_dir("net-restart");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    let kh = relay.key_hash();
    let mut a = NetClient::connect(relay.local_addr(), kh, V).await;
    let q = create(&mut a, 4, false).await;
    for i in 0..5u32 {
        a.send(&[a.cmd(
            None,
            &corr(b'S', i),
            &q.sid,
            &send(format!("m{i}").as_bytes()),
        )])
        .await;
        assert_eq!(a.recv_msg().await, ServerMsg::Ok);
    }
    relay.shutdown().await;
    let relay = Relay::spawn_local(&dir).await.unwrap();
    assert_eq!(relay.key_hash(), kh, "the identity survives a restart");
    let mut a = NetClient::connect(relay.local_addr(), kh, V).await;
    let sub = wsmp::Command::Recipient(RecipientCommand::Sub);
    a.send(&[a.cmd(Some(&q.rk), &corr(b'U', 0), &q.rid, &sub)])
        .await;
    assert_eq!(a.recv_msg().await, ServerMsg::Ok);
    let mut got = Vec::new();
    let mut next = a.recv().await;
    for i in 0..5u32 {
        let (id, body) = open(&q, &msg(&a, &next.2));
        got.push(String::from_utf8(body).unwrap());
        let ack = wsmp::Command::Recipient(RecipientCommand::Ack(
            smp_groups_wire::ShortBytes::new(id).unwrap(),
        ));
        a.send(&[a.cmd(Some(&q.rk), &corr(b'A', i), &q.rid, &ack)])
            .await;
        next = a.recv().await;
    }
    assert_eq!(msg(&a, &next.2), ServerMsg::Ok, "nothing more");
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

const CLIENTS: usize = 100;
const MESSAGES: u32 = 100;

/// Client `i` owns queue `i` and sends `MESSAGES` to queue `i + 1`; every
/// client must receive exactly the messages of its predecessor, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_hundred_messages_each() {
    let dir = temp_dir("net-load");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    let (addr, kh) = (relay.local_addr(), relay.key_hash());
    let mut clients = Vec::new();
    let mut queues = Vec::new();
    for i in 0..CLIENTS {
        let mut c = NetClient::connect(addr, kh, V).await;
        queues.push(create(&mut c, 1000 + i as u64, true).await);
        clients.push(c);
    }
    let senders: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|i| queues[(i + 1) % CLIENTS].sid.clone())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (mut c, q)) in clients.into_iter().zip(queues).enumerate() {
        let to = senders[i].clone();
        tasks.spawn(async move {
            // Pipelined sends, ten per block.
            for chunk in 0..MESSAGES / 10 {
                let ts: Vec<Vec<u8>> = (0..10)
                    .map(|k| {
                        let n = chunk * 10 + k;
                        c.cmd(
                            None,
                            &corr(b'S', n),
                            &to,
                            &send(format!("{i}:{n}").as_bytes()),
                        )
                    })
                    .collect();
                c.send(&ts).await;
            }
            let (mut send_oks, mut acked, mut got) = (0, 0, Vec::new());
            while send_oks < MESSAGES || acked < MESSAGES {
                let (cid, _, bytes) = c.recv().await;
                match (cid.first(), msg(&c, &bytes)) {
                    (Some(b'S'), ServerMsg::Ok) => send_oks += 1,
                    (Some(b'A'), ServerMsg::Ok) => acked += 1,
                    (tag, m @ ServerMsg::Msg { .. }) => {
                        if tag == Some(&b'A') {
                            acked += 1;
                        }
                        let (id, body) = open(&q, &m);
                        got.push(String::from_utf8(body).unwrap());
                        let n = u32::try_from(got.len()).unwrap();
                        let ack = wsmp::Command::Recipient(RecipientCommand::Ack(
                            smp_groups_wire::ShortBytes::new(id).unwrap(),
                        ));
                        c.send(&[c.cmd(Some(&q.rk), &corr(b'A', n), &q.rid, &ack)])
                            .await;
                    }
                    (tag, other) => panic!("client {i}: unexpected {other:?} for {tag:?}"),
                }
            }
            assert!(
                c.try_recv_within(200).await.is_none(),
                "client {i}: nothing extra"
            );
            (i, got)
        });
    }
    let mut results = HashMap::new();
    let all = tokio::time::timeout(std::time::Duration::from_secs(300), async {
        while let Some(r) = tasks.join_next().await {
            let (i, got) = r.unwrap();
            results.insert(i, got);
        }
    })
    .await;
    assert!(all.is_ok(), "every client finished within the bound");
    assert_eq!(results.len(), CLIENTS);
    for (i, got) in &results {
        let from = (i + CLIENTS - 1) % CLIENTS;
        let expected: Vec<String> = (0..MESSAGES).map(|n| format!("{from}:{n}")).collect();
        assert_eq!(
            got, &expected,
            "client {i} got its predecessor's messages once, in order"
        );
    }
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_hash_in_client_hello_is_refused() {
    let dir = temp_dir("net-keyhash");
    let relay = Relay::spawn_local(&dir).await.unwrap();
    // TLS with the right pin, but the hello names another relay: the relay closes.
    let tcp = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    let mut tls = smp_groups_net::SmpTlsStream::connect(
        tcp,
        &smp_groups_net::client_config(relay.key_hash()).unwrap(),
    )
    .await
    .unwrap();
    let mut block = vec![0u8; 16384];
    tls.read_exact(&mut block).await.unwrap();
    let hello = wsmp::ClientHello {
        version: Version(V),
        key_hash: wsmp::KeyHash::from([0; 32]),
        auth_key: None,
        proxy_server: false,
        service: None,
    };
    tls.write_all(&wsmp::encode_handshake_block(&hello.encode().unwrap()).unwrap())
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tls.read(&mut block))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "connection closed, got {n:?}");
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The relay takes time and randomness from its configuration: a delivered
/// message carries the injected clock's time, and two relays given the same
/// seed hand out the same queue and message ids to the same sequence of
/// requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_and_randomness_are_injected() {
    use smp_groups_crypto::clock::ManualClock;
    use smp_groups_crypto::rng::SeededRandom;
    use smp_groups_relay::ServerConfig;
    use std::sync::Arc;

    const T0: u64 = 1_800_000_000_000;
    let run = |n: u32| async move {
        let dir = temp_dir(&format!("net-injected-{n}"));
        let clock = Arc::new(ManualClock::new(T0));
        let config = ServerConfig {
            clock: Arc::clone(&clock) as _,
            random: Arc::new(SeededRandom::new(42)),
            ..ServerConfig::default()
        };
        let relay = Relay::spawn_local_with(&dir, config).await.unwrap();
        let (addr, kh) = (relay.local_addr(), relay.key_hash());
        let mut a = NetClient::connect(addr, kh, V).await;
        let q = create(&mut a, 1, true).await;
        let mut stamps = Vec::new();
        let mut ids = Vec::new();
        for (k, step) in [0u64, 90_000].into_iter().enumerate() {
            clock.advance(step);
            let k = u32::try_from(k).unwrap();
            a.send(&[a.cmd(None, &corr(b'S', k), &q.sid, &send(b"tick"))])
                .await;
            let (c, _, r) = a.recv().await;
            let mut deliveries = Vec::new();
            // The OK and the delivery come in either order on one connection.
            let mut ok = false;
            for (cid, r) in [(c, r), {
                let (c, _, r) = a.recv().await;
                (c, r)
            }] {
                match msg(&a, &r) {
                    ServerMsg::Ok => ok = cid == corr(b'S', k),
                    m => deliveries.push(m),
                }
            }
            assert!(ok);
            let ServerMsg::Msg { msg_id, body } = &deliveries[0] else {
                panic!("expected MSG")
            };
            let secret = q.dh.diffie_hellman(&q.srv_dh);
            let plain = nacl::cb_decrypt(
                secret.as_bytes(),
                msg_id.as_slice().try_into().unwrap(),
                body,
            )
            .unwrap();
            stamps.push(i64::from_be_bytes(plain[..8].try_into().unwrap()));
            ids.push(msg_id.as_slice().to_vec());
            let ack = wsmp::Command::Recipient(RecipientCommand::Ack(
                smp_groups_wire::ShortBytes::new(msg_id.as_slice().to_vec()).unwrap(),
            ));
            a.send(&[a.cmd(Some(&q.rk), &corr(b'A', k), &q.rid, &ack)])
                .await;
            assert_eq!(a.recv_msg().await, ServerMsg::Ok);
        }
        relay.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        (q.rid, q.sid, ids, stamps)
    };
    let (rid, sid, ids, stamps) = run(1).await;
    let secs = i64::try_from(T0 / 1000).unwrap();
    assert_eq!(stamps, vec![secs, secs + 90]);
    let again = run(2).await;
    assert_eq!((rid, sid, ids), (again.0, again.1, again.2));
}
