//! The SMP client against the workspace relay over loopback TLS, with a
//! 16000-byte body: the `SEND` to `OK` round trip of one signed send, and one
//! message end to end (`SEND` on one connection, `MSG` to the recipient
//! subscribed on another, and its `ACK`).

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)] // criterion macros; setup failures abort the bench

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::{rng, x25519};
use smp_groups_net::{ConnectionEvent, EventReceiver, SmpClient, SmpClientConfig};
use smp_groups_relay::Relay;
use smp_groups_wire::smp::{MsgFlags, ProtocolServer, ServerMsg};

const BODY: usize = 16_000;

/// The sender's connection, with the queue it secured with its own key.
struct Sender {
    client: SmpClient,
    snd_id: Vec<u8>,
    snd_key: SigningKey,
    body: Vec<u8>,
}

/// The recipient's connection, subscribed to the queue.
struct Recipient {
    client: SmpClient,
    events: EventReceiver,
    rcv_id: Vec<u8>,
    rcv_key: SigningKey,
}

async fn setup(server: &ProtocolServer) -> (Sender, Recipient) {
    let cfg = SmpClientConfig::default();
    let recipient = SmpClient::connect(server, cfg.clone()).await.unwrap();
    let sender = SmpClient::connect(server, cfg).await.unwrap();
    let events = recipient.take_events().unwrap();
    let mut r = rng::seeded(7);
    let rcv_key = SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let ids = recipient
        .new_queue(&rcv_key, &dh.public_key(), true)
        .await
        .unwrap();
    let snd_key = SigningKey::generate(&mut r);
    sender.skey(ids.snd_id.as_slice(), &snd_key).await.unwrap();
    (
        Sender {
            client: sender,
            snd_id: ids.snd_id.as_slice().to_vec(),
            snd_key,
            body: vec![0x55; BODY],
        },
        Recipient {
            client: recipient,
            events,
            rcv_id: ids.rcv_id.as_slice().to_vec(),
            rcv_key,
        },
    )
}

impl Sender {
    /// `SEND`, until its `OK`.
    async fn send(&self) {
        self.client
            .send(
                &self.snd_id,
                Some(&self.snd_key),
                MsgFlags::default(),
                &self.body,
            )
            .await
            .unwrap();
    }
}

impl Recipient {
    /// The next `MSG` for the queue, acknowledged.
    async fn receive(&mut self) {
        let event = self.events.recv().await.unwrap();
        let ConnectionEvent::Queue {
            entity_id,
            msg: ServerMsg::Msg { msg_id, body },
        } = event
        else {
            panic!("expected MSG, got {event:?}")
        };
        assert_eq!(entity_id, self.rcv_id);
        assert!(body.len() > BODY, "the MSG body is {} bytes", body.len());
        self.client
            .ack(&self.rcv_id, &self.rcv_key, msg_id.as_slice())
            .await
            .unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("smp-net-bench-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = rt.block_on(Relay::spawn_local(&dir)).unwrap();
    let (server, _) = ProtocolServer::parse_prefix(&relay.address()).unwrap();
    let (sender, mut recipient) = rt.block_on(setup(&server));

    let mut g = c.benchmark_group("client_loopback");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(BODY as u64));
    // Only the send is timed; the recipient then takes and acknowledges the
    // message, so that the queue never fills up.
    g.bench_function("send_ok_16000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    sender.send().await;
                    timed += start.elapsed();
                    recipient.receive().await;
                }
                timed
            })
        });
    });
    // The send's OK and the recipient's MSG and ACK, waited for together.
    g.bench_function("send_msg_ack_16000", |b| {
        b.iter(|| rt.block_on(async { tokio::join!(sender.send(), recipient.receive()) }));
    });
    g.finish();
    rt.block_on(relay.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
