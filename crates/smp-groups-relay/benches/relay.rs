//! Relay throughput at the state level: a `SEND` delivered as `MSG` to the
//! subscriber and acknowledged, with the SQLite store on disk (WAL), Ed25519
//! signatures checked and the 16 KiB delivery box made for every message.

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)] // criterion macros; setup failures abort the bench

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_relay::SessionAuth;
use smp_groups_relay::{AuthKey, Authorization, NewQueue, QueueCommand, QueueId, Reply, Request};
use smp_groups_relay::{Durability, QueueStore, RelayConfig, RelayState, Session};

const BODY: usize = 16_000;

fn signed(key: &ed25519::SigningKey, entity: &[u8], command: QueueCommand) -> Request {
    let corr_id = vec![1; 24];
    let mut authorized = vec![3, 1, 2, 3, 24];
    authorized.extend_from_slice(&corr_id);
    authorized.push(24);
    authorized.extend_from_slice(entity);
    authorized.extend_from_slice(
        format!("{command:?}")
            .as_bytes()
            .get(..16)
            .unwrap_or_default(),
    );
    Request {
        auth: Authorization::Ed25519(key.sign(&authorized)),
        corr_id,
        entity_id: entity.to_vec(),
        authorized,
        command,
    }
}

struct Setup {
    relay: RelayState,
    rcv: Session,
    snd: Session,
    /// Per queue: the signed SEND, and the recipient's key and id for the ACK.
    queues: Vec<(Request, ed25519::SigningKey, QueueId)>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(n: usize) -> Setup {
    let dir = std::env::temp_dir().join(format!("smp-relay-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = QueueStore::open_dir(&dir, Durability::Process).unwrap();
    let mut relay =
        RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(1))).unwrap();
    let session = |relay: &mut RelayState| Session {
        conn: relay.connect(),
        version: 11,
        session_id: vec![1, 2, 3],
        auth: SessionAuth { server_key: None },
    };
    let rcv = session(&mut relay);
    let snd = session(&mut relay);
    let mut r = rng::seeded(2);
    let mut queues = Vec::new();
    for _ in 0..n {
        let rk = ed25519::SigningKey::generate(&mut r);
        let sk = ed25519::SigningKey::generate(&mut r);
        let dh = x25519::SecretKey::generate(&mut r);
        let new = QueueCommand::New(NewQueue {
            recipient_key: AuthKey::Ed25519(rk.public_key()),
            recipient_dh_key: dh.public_key(),
            basic_auth: None,
            subscribe: true,
            mode: None,
        });
        let out = relay.handle(&rcv, signed(&rk, &[], new), 0);
        let Reply::Ids {
            recipient_id,
            sender_id,
            ..
        } = out.responses[0].reply.clone()
        else {
            panic!("{out:?}")
        };
        let key = QueueCommand::Key(AuthKey::Ed25519(sk.public_key()));
        relay.handle(&rcv, signed(&rk, &recipient_id, key), 0);
        let send = QueueCommand::Send {
            notification: false,
            body: vec![0x55; BODY],
        };
        queues.push((signed(&sk, &sender_id, send), rk, recipient_id));
    }
    Setup {
        relay,
        rcv,
        snd,
        queues,
        _dir: TempDir(dir),
    }
}

/// Sends one message to every queue, then acknowledges every delivered `MSG`
/// (the recipient signs each `ACK`, about 20 us of client work included).
fn send_msg_ack(s: &mut Setup) {
    let mut delivered = Vec::with_capacity(s.queues.len());
    for (send, _, _) in &s.queues {
        let out = s.relay.handle(&s.snd, send.clone(), 1);
        let [(_, ev)] = out.events.as_slice() else {
            panic!("expected one MSG event: {:?}", out.responses)
        };
        let Reply::Msg { msg_id, .. } = &ev.reply else {
            panic!("expected MSG")
        };
        delivered.push(*msg_id);
        black_box(&out);
    }
    for ((_, rk, rid), id) in s.queues.iter().zip(delivered) {
        let out = s
            .relay
            .handle(&s.rcv, signed(rk, rid, QueueCommand::Ack(id.to_vec())), 1);
        assert!(out.responses[0].reply == Reply::Ok, "ACK answered OK");
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_state");
    g.sample_size(20);
    for n in [1usize, 100] {
        let mut s = setup(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("send_msg_ack_{n}_queues"), |b| {
            b.iter(|| send_msg_ack(&mut s));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
