//! The SMP client against a minimal relay on loopback: versions, command/response
//! matching, batching, events, typed errors, timeouts, keep-alive, malformed data and
//! reconnection with resubscription.

#![allow(clippy::unwrap_used, clippy::panic)]

mod client_support;

use std::collections::HashMap;
use std::time::Duration;

use client_support::{Behaviour, PingReply, TestServer};
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::{rng, x25519};
use smp_groups_net::{
    ClientError, ConnectionEvent, EventReceiver, ReconnectConfig, ReconnectingClient, SmpClient,
    SmpClientConfig,
};
use smp_groups_wire::smp::{ErrorType, KeyHash, MsgFlags, ServerMsg, Version, VersionRange};

/// Bounds every wait so that a broken client fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

fn config() -> SmpClientConfig {
    SmpClientConfig {
        keepalive: None,
        ..SmpClientConfig::default()
    }
}

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut rng::seeded(seed))
}

fn dh(seed: u64) -> x25519::PublicKey {
    x25519::SecretKey::generate(&mut rng::seeded(seed)).public_key()
}

async fn next_event(events: &mut EventReceiver) -> ConnectionEvent {
    tokio::time::timeout(BOUND, events.recv())
        .await
        .expect("no event")
        .expect("event stream ended")
}

/// The next queue event, as `(queue, msg id, body)` for `MSG`.
async fn next_msg(events: &mut EventReceiver) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    match next_event(events).await {
        ConnectionEvent::Queue {
            entity_id,
            msg: ServerMsg::Msg { msg_id, body },
        } => (entity_id, msg_id.as_slice().to_vec(), body),
        other => panic!("expected MSG, got {other:?}"),
    }
}

#[tokio::test]
async fn queue_lifecycle_at_each_version() {
    let server = TestServer::start("versions", Behaviour::default()).await;
    for (min, max) in [(6, 6), (7, 7), (9, 10), (11, 19)] {
        let cfg = SmpClientConfig {
            versions: VersionRange::new(Version(min), Version(max)).unwrap(),
            ..config()
        };
        let client = SmpClient::connect(&server.address(), cfg).await.unwrap();
        assert_eq!(client.version(), Version(max));
        // The relay offers up to v19, so it sends its session key even when v6 is chosen.
        assert!(client.server_session_key().is_some());
        let mut events = client.take_events().unwrap();
        assert!(client.take_events().is_none());

        let rk = key(u64::from(max));
        let ids = client.new_queue(&rk, &dh(1), true).await.unwrap();
        assert_eq!(ids.rcv_id.as_slice(), &rk.public_key().as_bytes()[..24]);
        let (rcv, snd) = (ids.rcv_id.as_slice(), ids.snd_id.as_slice());

        client
            .send(snd, None, MsgFlags::default(), b"one")
            .await
            .unwrap();
        let (q, id, body) = next_msg(&mut events).await;
        assert_eq!((q.as_slice(), body.as_slice()), (rcv, &b"one"[..]));
        client.ack(rcv, &rk, &id).await.unwrap();
        assert!(client.get(rcv, &rk).await.unwrap().is_none());

        // Secured by the recipient: unsigned SEND is refused, signed SEND accepted.
        let sk = key(100 + u64::from(max));
        client.secure(rcv, &rk, &sk.public_key()).await.unwrap();
        assert!(matches!(
            client.send(snd, None, MsgFlags::default(), b"x").await,
            Err(ClientError::Server(ErrorType::Auth))
        ));
        client
            .send(snd, Some(&sk), MsgFlags { notification: true }, b"two")
            .await
            .unwrap();
        let (_, id2, body) = next_msg(&mut events).await;
        assert_eq!(body, b"two");
        client.ack(rcv, &rk, &id2).await.unwrap();

        if max >= 9 {
            // Secured by the sender.
            let rk2 = key(200 + u64::from(max));
            let ids2 = client.new_queue(&rk2, &dh(2), false).await.unwrap();
            let sk2 = key(300);
            client.skey(ids2.snd_id.as_slice(), &sk2).await.unwrap();
            client
                .send(
                    ids2.snd_id.as_slice(),
                    Some(&sk2),
                    MsgFlags::default(),
                    b"s",
                )
                .await
                .unwrap();
            let got = client
                .get(ids2.rcv_id.as_slice(), &rk2)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.body, b"s");
        }

        client.ping().await.unwrap();
        client.off(rcv, &rk).await.unwrap();
        client.del(rcv, &rk).await.unwrap();
        assert!(matches!(
            client.sub(rcv, &rk).await,
            Err(ClientError::Server(ErrorType::Auth))
        ));
    }
}

#[tokio::test]
async fn concurrent_commands_get_their_own_responses_in_shared_blocks() {
    // The relay answers each batch in reverse order, so only corrIds can match them.
    let behaviour = Behaviour {
        reverse: true,
        ..Behaviour::default()
    };
    let server = TestServer::start("concurrent", behaviour).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    let n = 300u64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let rk = key(1000 + i);
            let ids = client.new_queue(&rk, &dh(i), false).await.unwrap();
            (rk, ids)
        }));
    }
    for t in tasks {
        let (rk, ids) = t.await.unwrap();
        assert_eq!(ids.rcv_id.as_slice(), &rk.public_key().as_bytes()[..24]);
        assert_eq!(ids.snd_id.as_slice(), &rk.public_key().as_bytes()[8..]);
    }
    let (sizes, commands) = server.seen(|s| (s.batch_sizes.clone(), s.commands.len()));
    assert_eq!(commands, 300);
    assert_eq!(sizes.iter().sum::<usize>(), 300);
    assert!(
        sizes.iter().any(|&s| s > 1),
        "no block carried more than one transmission: {sizes:?}"
    );
    assert!(sizes.len() < 300);
}

#[tokio::test]
async fn events_are_routed_to_their_queue() {
    let server = TestServer::start("events", Behaviour::default()).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    let mut events = client.take_events().unwrap();
    let (ka, kb) = (key(1), key(2));
    let a = client.new_queue(&ka, &dh(1), true).await.unwrap();
    let b = client.new_queue(&kb, &dh(2), false).await.unwrap();
    client.sub(b.rcv_id.as_slice(), &kb).await.unwrap();

    for (q, body) in [(&a, "a1"), (&b, "b1"), (&a, "a2")] {
        client
            .send(
                q.snd_id.as_slice(),
                None,
                MsgFlags::default(),
                body.as_bytes(),
            )
            .await
            .unwrap();
    }
    // One message per queue is delivered until it is acknowledged.
    let mut got = HashMap::new();
    for _ in 0..2 {
        let (q, id, body) = next_msg(&mut events).await;
        assert!(got.insert(q, (id, body)).is_none());
    }
    let (a_id, a_body) = &got[a.rcv_id.as_slice()];
    assert_eq!(a_body, b"a1");
    assert_eq!(got[b.rcv_id.as_slice()].1, b"b1");
    // The next message of A comes as the response to ACK, and goes to the events.
    client.ack(a.rcv_id.as_slice(), &ka, a_id).await.unwrap();
    let (q, _, body) = next_msg(&mut events).await;
    assert_eq!(
        (q.as_slice(), body.as_slice()),
        (a.rcv_id.as_slice(), &b"a2"[..])
    );
    // A message waiting at SUB time also comes as an event.
    let c = client.new_queue(&key(3), &dh(3), false).await.unwrap();
    client
        .send(c.snd_id.as_slice(), None, MsgFlags::default(), b"c1")
        .await
        .unwrap();
    client.sub(c.rcv_id.as_slice(), &key(3)).await.unwrap();
    let (q, _, body) = next_msg(&mut events).await;
    assert_eq!(
        (q.as_slice(), body.as_slice()),
        (c.rcv_id.as_slice(), &b"c1"[..])
    );
}

#[tokio::test]
async fn relay_errors_are_typed() {
    let server = TestServer::start("errors", Behaviour::default()).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    let rk = key(5);
    let ids = client.new_queue(&rk, &dh(5), false).await.unwrap();
    let rcv = ids.rcv_id.as_slice();
    assert!(matches!(
        client.sub(rcv, &key(6)).await,
        Err(ClientError::Server(ErrorType::Auth))
    ));
    assert!(matches!(
        client.ack(rcv, &rk, b"nope").await,
        Err(ClientError::Server(ErrorType::NoMsg))
    ));
    // Errors of single commands leave the connection usable.
    client.sub(rcv, &rk).await.unwrap();
    // A relay with another key hash fails the handshake.
    let mut wrong = server.address();
    wrong.key_hash = KeyHash::from([0u8; 32]);
    assert!(matches!(
        SmpClient::connect(&wrong, config()).await,
        Err(ClientError::Handshake(_))
    ));
}

#[tokio::test]
async fn unanswered_command_times_out_and_the_connection_stays() {
    let behaviour = Behaviour {
        ignore: Some("GET"),
        ..Behaviour::default()
    };
    let server = TestServer::start("timeout", behaviour).await;
    let cfg = SmpClientConfig {
        command_timeout: Duration::from_millis(200),
        ..config()
    };
    let client = SmpClient::connect(&server.address(), cfg).await.unwrap();
    let rk = key(7);
    let ids = client.new_queue(&rk, &dh(7), false).await.unwrap();
    assert!(matches!(
        client.get(ids.rcv_id.as_slice(), &rk).await,
        Err(ClientError::Timeout)
    ));
    client.ping().await.unwrap();
    assert!(!client.is_closed());
}

#[tokio::test]
async fn unanswered_keepalive_pings_close_the_connection() {
    let behaviour = Behaviour {
        ignore: Some("PING"),
        ..Behaviour::default()
    };
    let server = TestServer::start("keepalive", behaviour).await;
    let cfg = SmpClientConfig {
        keepalive: Some(Duration::from_millis(20)),
        keepalive_max_missed: 3,
        ..config()
    };
    let client = SmpClient::connect(&server.address(), cfg).await.unwrap();
    let mut events = client.take_events().unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(ClientError::KeepAlive(3))
    ));
    assert!(server.seen(|s| s.commands.iter().filter(|c| c.1 == "PING").count()) >= 3);
    assert!(matches!(
        client.ping().await,
        Err(ClientError::KeepAlive(3))
    ));
}

#[tokio::test]
async fn keepalive_pings_only_when_idle() {
    let server = TestServer::start("keepalive-ok", Behaviour::default()).await;
    let cfg = SmpClientConfig {
        keepalive: Some(Duration::from_millis(10)),
        ..config()
    };
    let client = SmpClient::connect(&server.address(), cfg).await.unwrap();
    // Wait until the relay has seen a few keep-alive pings, then check it is alive.
    for _ in 0..3000 {
        if server.seen(|s| s.commands.len()) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(server.seen(|s| s.commands.iter().all(|c| c.1 == "PING" && c.2.is_empty())));
    assert!(server.seen(|s| s.commands.len()) >= 3);
    client.ping().await.unwrap();
    assert!(!client.is_closed());
}

#[tokio::test]
async fn undecodable_response_fails_only_its_command() {
    let behaviour = Behaviour {
        ping: PingReply::BadTag,
        ..Behaviour::default()
    };
    let server = TestServer::start("badtag", behaviour).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    assert!(matches!(client.ping().await, Err(ClientError::Protocol(_))));
    client.new_queue(&key(8), &dh(8), false).await.unwrap();
}

#[tokio::test]
async fn malformed_block_closes_the_connection_with_a_typed_error() {
    let behaviour = Behaviour {
        ping: PingReply::GarbageBlock,
        ..Behaviour::default()
    };
    let server = TestServer::start("garbage", behaviour).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    let mut events = client.take_events().unwrap();
    let rk = key(9);
    let ids = client.new_queue(&rk, &dh(9), false).await.unwrap();
    assert!(matches!(client.ping().await, Err(ClientError::Protocol(_))));
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(ClientError::Protocol(_))
    ));
    assert!(client.is_closed());
    assert!(matches!(
        client.get(ids.rcv_id.as_slice(), &rk).await,
        Err(ClientError::Protocol(_))
    ));
}

#[tokio::test]
async fn closing_every_handle_ends_the_connection() {
    let server = TestServer::start("drop", Behaviour::default()).await;
    let client = SmpClient::connect(&server.address(), config())
        .await
        .unwrap();
    let mut events = client.take_events().unwrap();
    drop(client);
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(ClientError::Closed)
    ));
}

#[tokio::test]
async fn reconnecting_client_resubscribes() {
    let server = TestServer::start("reconnect", Behaviour::default()).await;
    let cfg = ReconnectConfig {
        client: config(),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    };
    let rc = ReconnectingClient::connect(server.address(), cfg)
        .await
        .unwrap();
    let mut events = rc.take_events().unwrap();
    let (ka, kb, kc) = (key(11), key(12), key(13));
    let a = rc.new_queue(&ka, &dh(11), true).await.unwrap();
    let b = rc.new_queue(&kb, &dh(12), false).await.unwrap();
    rc.sub(b.rcv_id.as_slice(), &kb).await.unwrap();
    let c = rc.new_queue(&kc, &dh(13), true).await.unwrap();
    rc.del(c.rcv_id.as_slice(), &kc).await.unwrap();
    let mut subs = rc.subscriptions();
    subs.sort();
    let mut want = vec![a.rcv_id.as_slice().to_vec(), b.rcv_id.as_slice().to_vec()];
    want.sort();
    assert_eq!(subs, want);

    server.drop_connections();
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(ClientError::Transport(_) | ClientError::Protocol(_))
    ));
    assert!(matches!(
        next_event(&mut events).await,
        ConnectionEvent::Reconnected {
            resubscribed: 2,
            failed: 0
        }
    ));
    // The relay saw SUB for both queues, signed, on the second connection.
    let mut resubs: Vec<Vec<u8>> = server.seen(|s| {
        s.commands
            .iter()
            .filter(|(conn, tag, _)| *conn == 2 && tag == "SUB")
            .map(|c| c.2.clone())
            .collect()
    });
    resubs.sort();
    assert_eq!(resubs, want);
    // Messages now reach the new connection's events.
    rc.send(a.snd_id.as_slice(), None, MsgFlags::default(), b"after")
        .await
        .unwrap();
    let (q, _, body) = next_msg(&mut events).await;
    assert_eq!(
        (q.as_slice(), body.as_slice()),
        (a.rcv_id.as_slice(), &b"after"[..])
    );
    rc.ping().await.unwrap();
}

#[tokio::test]
async fn a_resubscription_that_times_out_is_sent_again() {
    // The relay leaves the first SUB it gets unanswered: the resubscription.
    let behaviour = Behaviour {
        ignore: Some("SUB"),
        ignore_first: 1,
        ..Behaviour::default()
    };
    let server = TestServer::start("resub-timeout", behaviour).await;
    let cfg = ReconnectConfig {
        client: SmpClientConfig {
            command_timeout: Duration::from_millis(200),
            ..config()
        },
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    };
    let rc = ReconnectingClient::connect(server.address(), cfg)
        .await
        .unwrap();
    let mut events = rc.take_events().unwrap();
    let ka = key(21);
    let a = rc.new_queue(&ka, &dh(21), true).await.unwrap();
    server.drop_connections();
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
    let subs = server.seen(|s| {
        s.commands
            .iter()
            .filter(|(conn, tag, _)| *conn == 2 && tag == "SUB")
            .count()
    });
    assert_eq!(subs, 2, "the SUB that timed out was sent again");
    rc.send(
        a.snd_id.as_slice(),
        None,
        MsgFlags::default(),
        b"subscribed",
    )
    .await
    .unwrap();
    let (q, _, body) = next_msg(&mut events).await;
    assert_eq!(
        (q.as_slice(), body.as_slice()),
        (a.rcv_id.as_slice(), &b"subscribed"[..])
    );
}
