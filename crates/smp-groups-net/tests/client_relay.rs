//! The SMP client against this workspace's relay (`Relay::spawn_local`) on loopback:
//! queues across connections, signed sends, `MSG` bodies opened with the queue's DH
//! secret, `DELD` routed to the right queue; and over in-memory pipes (a [`Dialer`],
//! `RelayHandle::serve_stream`), with reconnection and the relay's limits.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::{nacl, rng, x25519};
use smp_groups_net::{
    BoxedStream, ClientError, ConnectionEvent, DialFuture, Dialer, EventReceiver, ReconnectConfig,
    ReconnectingClient, SmpClient, SmpClientConfig,
};
use smp_groups_relay::{Relay, ServerConfig, relay_address};
use smp_groups_wire::smp::RcvMsgBody;
use smp_groups_wire::smp::{ErrorType, MsgFlags, ProtocolServer, QueueIds, ServerMsg};

const BOUND: Duration = Duration::from_secs(30);

async fn next_event(events: &mut EventReceiver) -> ConnectionEvent {
    tokio::time::timeout(BOUND, events.recv())
        .await
        .expect("no event")
        .expect("event stream ended")
}

fn open_body(dh: &x25519::SecretKey, ids: &QueueIds, msg_id: &[u8], body: &[u8]) -> Vec<u8> {
    let srv = x25519::PublicKey::from_bytes(ids.srv_dh_key.0);
    let secret = dh.diffie_hellman(&srv);
    let plain = nacl::cb_decrypt(secret.as_bytes(), msg_id.try_into().unwrap(), body).unwrap();
    match smp_groups_wire::decode_all::<RcvMsgBody>(&plain).unwrap() {
        RcvMsgBody::Message { body, .. } => body,
        other @ RcvMsgBody::Quota { .. } => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn queues_messages_and_events_through_the_relay() {
    let dir = std::env::temp_dir().join(format!(
        "smp-groups-net-client-relay-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = Relay::spawn_local(&dir).await.unwrap();
    let (server, _) = ProtocolServer::parse_prefix(&relay.address()).unwrap();
    let cfg = SmpClientConfig::default();
    let recipient = SmpClient::connect(&server, cfg.clone()).await.unwrap();
    let sender = SmpClient::connect(&server, cfg.clone()).await.unwrap();
    let other = SmpClient::connect(&server, cfg).await.unwrap();
    let mut events = recipient.take_events().unwrap();
    assert_ne!(recipient.session_id(), sender.session_id());

    let mut r = rng::seeded(42);
    let rk = SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let ids = recipient
        .new_queue(&rk, &dh.public_key(), true)
        .await
        .unwrap();
    let (rcv, snd) = (ids.rcv_id.as_slice(), ids.snd_id.as_slice());

    // The sender secures the queue; unsigned sends are refused from then on.
    let sk = SigningKey::generate(&mut r);
    sender.skey(snd, &sk).await.unwrap();
    assert!(matches!(
        sender
            .send(snd, None, MsgFlags::default(), b"unsigned")
            .await,
        Err(ClientError::Server(ErrorType::Auth))
    ));

    // Concurrent sends; the recipient receives each one, acknowledging as it goes.
    let n = 20;
    let mut sends = Vec::new();
    for i in 0..n {
        let (sender, sk, snd) = (sender.clone(), sk.clone(), snd.to_vec());
        sends.push(tokio::spawn(async move {
            let body = format!("message {i}");
            sender
                .send(&snd, Some(&sk), MsgFlags::default(), body.as_bytes())
                .await
                .unwrap();
        }));
    }
    let mut got = BTreeSet::new();
    for _ in 0..n {
        let ConnectionEvent::Queue {
            entity_id,
            msg: ServerMsg::Msg { msg_id, body },
        } = next_event(&mut events).await
        else {
            panic!("expected MSG")
        };
        assert_eq!(entity_id, rcv);
        let plain = open_body(&dh, &ids, msg_id.as_slice(), &body);
        assert!(got.insert(String::from_utf8(plain).unwrap()));
        recipient.ack(rcv, &rk, msg_id.as_slice()).await.unwrap();
    }
    for s in sends {
        s.await.unwrap();
    }
    let want: BTreeSet<String> = (0..n).map(|i| format!("message {i}")).collect();
    assert_eq!(got, want);
    // GET on a queue this connection subscribes to is refused, as relays do.
    assert!(matches!(
        recipient.get(rcv, &rk).await,
        Err(ClientError::Server(ErrorType::Cmd(_)))
    ));

    // Another connection subscribing to the queue takes it over (SOK from v16):
    // this connection gets END for it.
    other.sub(rcv, &rk).await.unwrap();
    match next_event(&mut events).await {
        ConnectionEvent::Queue { entity_id, msg } => {
            assert_eq!((entity_id.as_slice(), msg), (rcv, ServerMsg::End));
        }
        e => panic!("expected END, got {e:?}"),
    }

    let rk2 = SigningKey::generate(&mut r);
    let ids2 = recipient
        .new_queue(&rk2, &dh.public_key(), true)
        .await
        .unwrap();
    // Another connection deleting a queue this one subscribes to: DELD for it.
    other.del(ids2.rcv_id.as_slice(), &rk2).await.unwrap();
    match next_event(&mut events).await {
        ConnectionEvent::Queue { entity_id, msg } => {
            assert_eq!(
                (entity_id.as_slice(), msg),
                (ids2.rcv_id.as_slice(), ServerMsg::Deld)
            );
        }
        e => panic!("expected DELD, got {e:?}"),
    }
    recipient.ping().await.unwrap();
    // The relay closes its TLS sessions (close_notify) when it stops: the
    // client sees a clean close, not a dropped connection.
    relay.shutdown().await;
    match next_event(&mut events).await {
        ConnectionEvent::Disconnected(ClientError::Transport(e)) => {
            assert!(matches!(*e, smp_groups_net::NetError::Closed), "{e}");
        }
        other => panic!("expected a clean close, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dialer of in-memory pipes to one relay: each pipe runs through a task
/// the test can cut (both ends then see the connection end).
#[derive(Debug)]
struct PipeDialer {
    relay: std::sync::Arc<smp_groups_relay::RelayHandle>,
    dials: std::sync::atomic::AtomicUsize,
    cuts: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl PipeDialer {
    /// Cuts every pipe opened so far.
    fn cut(&self) {
        for t in self.cuts.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Dialer for PipeDialer {
    fn dial<'a>(&'a self, _server: &'a ProtocolServer) -> DialFuture<'a> {
        Box::pin(async move {
            self.dials.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (client, mut near) = tokio::io::duplex(64 * 1024);
            let (mut far, relay_end) = tokio::io::duplex(64 * 1024);
            self.relay.serve_stream(relay_end).await.unwrap();
            let pipe = tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
            });
            self.cuts.lock().unwrap().push(pipe);
            Ok(Box::new(client) as BoxedStream)
        })
    }
}

#[tokio::test]
async fn a_dialer_carries_every_connection_and_reconnection() {
    let dir = std::env::temp_dir().join(format!("smp-groups-net-dialer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let relay = std::sync::Arc::new(Relay::spawn_local(&dir).await.unwrap());
    // The relay's key hash with a host that does not resolve: only the dialer
    // can reach it, and the client still checks the relay's certificate.
    let address = relay_address(relay.key_hash(), "relay.invalid", 5223);
    let (server, _) = ProtocolServer::parse_prefix(&address).unwrap();
    let dialer = std::sync::Arc::new(PipeDialer {
        relay: std::sync::Arc::clone(&relay),
        dials: std::sync::atomic::AtomicUsize::new(0),
        cuts: std::sync::Mutex::new(Vec::new()),
    });
    let cfg = ReconnectConfig {
        client: SmpClientConfig::default(),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    };
    let rc = ReconnectingClient::connect_via(dialer.clone(), server.clone(), cfg)
        .await
        .unwrap();
    let mut events = rc.take_events().unwrap();
    let mut r = rng::seeded(7);
    let rk = SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let ids = rc.new_queue(&rk, &dh.public_key(), true).await.unwrap();
    assert_eq!(relay.stats().await.connections, 1);

    dialer.cut();
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(_)
    ));
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Reconnected {
            resubscribed: 1,
            failed: 0
        }
    ));
    assert_eq!(
        dialer.dials.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the reconnection went through the dialer"
    );
    // The resubscribed queue gets its messages on the new pipe.
    let sender = SmpClient::connect_via(&*dialer, &server, SmpClientConfig::default())
        .await
        .unwrap();
    sender
        .send(ids.snd_id.as_slice(), None, MsgFlags::default(), b"piped")
        .await
        .unwrap();
    let ConnectionEvent::Queue {
        entity_id,
        msg: ServerMsg::Msg { msg_id, body },
    } = next_event(&mut events).await
    else {
        panic!("expected MSG")
    };
    assert_eq!(entity_id, ids.rcv_id.as_slice());
    assert_eq!(open_body(&dh, &ids, msg_id.as_slice(), &body), b"piped");

    // A relay with another identity behind the same dialer is refused by
    // the certificate check, as over TCP.
    let wrong = relay_address([7; 32], "relay.invalid", 5223);
    let (wrong, _) = ProtocolServer::parse_prefix(&wrong).unwrap();
    assert!(matches!(
        SmpClient::connect_via(&*dialer, &wrong, SmpClientConfig::default()).await,
        Err(ClientError::Handshake(_))
    ));
    drop((rc, sender));
    dialer.cut();
    drop(dialer);
    if let Ok(relay) = std::sync::Arc::try_unwrap(relay) {
        relay.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn streams_handed_to_the_relay_are_held_to_its_connection_limit() {
    let dir =
        std::env::temp_dir().join(format!("smp-groups-net-stream-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let relay = Relay::spawn_local_with(&dir, config).await.unwrap();
    let cfg = SmpClientConfig {
        connect_timeout: Duration::from_secs(5),
        ..SmpClientConfig::default()
    };
    let pipe = || async {
        let (client, relay_end) = tokio::io::duplex(64 * 1024);
        relay.serve_stream(relay_end).await.unwrap();
        client
    };
    let first = SmpClient::handshake(pipe().await, relay.key_hash(), cfg.clone())
        .await
        .unwrap();
    first.ping().await.unwrap();
    // The one session is up: the next stream is closed at once.
    let second = SmpClient::handshake(pipe().await, relay.key_hash(), cfg).await;
    assert!(second.is_err(), "a second session over the limit");
    let stats = relay.stats().await;
    assert_eq!((stats.connections, stats.refused_connections), (1, 1));
    drop(first);
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
