//! The queue logic, without sockets: lifecycle, subscriptions, quota, expiry,
//! authorization and the errors the reference relay gives.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use common::*;
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::{
    AuthKey, Authorization, CmdError, ErrorCode, NewQueue, QueueCommand, QueueMode, Reply, Response,
};
use smp_groups_relay::{QueueStore, RelayConfig, RelayState};

#[test]
fn whole_queue_lifecycle() {
    let mut relay = relay(RelayConfig::default());
    let rcv = session(&mut relay, None);
    let snd = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 10, false, None);

    // Before KEY the sender sends without authorization.
    let out = relay.handle(&snd, unsigned(2, &q.sid, send(b"hello")), 100);
    assert_eq!(only(&out), Reply::Ok);
    assert!(out.events.is_empty(), "nobody is subscribed yet");

    // KEY by the recipient secures the queue with the sender's key.
    let key = QueueCommand::Key(AuthKey::Ed25519(q.snd_key.public_key()));
    assert_eq!(
        only(&relay.handle(&rcv, signed(&q.rcv_key, 3, &q.rid, key.clone()), 101)),
        Reply::Ok
    );
    // Repeating KEY with the same key is fine, another key is refused.
    assert_eq!(
        only(&relay.handle(&rcv, signed(&q.rcv_key, 4, &q.rid, key), 101)),
        Reply::Ok
    );
    let other = ed25519::SigningKey::generate(&mut rng::seeded(99));
    let key2 = QueueCommand::Key(AuthKey::Ed25519(other.public_key()));
    assert_eq!(
        only(&relay.handle(&rcv, signed(&q.rcv_key, 5, &q.rid, key2), 101)),
        Reply::Err(ErrorCode::Auth)
    );

    // Now unsigned SEND is refused and signed SEND accepted.
    assert_eq!(
        only(&relay.handle(&snd, unsigned(6, &q.sid, send(b"x")), 102)),
        Reply::Err(ErrorCode::Auth)
    );
    let out = relay.handle(&snd, signed(&q.snd_key, 7, &q.sid, send(b"second")), 103);
    assert_eq!(only(&out), Reply::Ok);

    // SUB answers and delivers the first message.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 8, &q.rid, QueueCommand::Sub), 104);
    assert_eq!(out.responses.len(), 2);
    assert_eq!(out.responses[0].reply, Reply::Subscribed);
    assert_eq!(out.responses[0].corr_id, vec![8; 24]);
    assert!(out.responses[1].corr_id.is_empty(), "MSG is an event");
    assert_eq!(out.responses[1].entity_id, q.rid.to_vec());
    let (id1, ts1, flag, body) = open_msg(&q, &out.responses[1].reply);
    assert_eq!((ts1, flag, body.as_slice()), (100, false, &b"hello"[..]));

    // Only one message at a time: ACK with a wrong id is NO_MSG, the right one
    // answers with the next message.
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 9, &q.rid, QueueCommand::Ack(vec![0; 24])),
        105,
    );
    assert_eq!(only(&out), Reply::Err(ErrorCode::NoMsg));
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 10, &q.rid, QueueCommand::Ack(id1.clone())),
        105,
    );
    let (id2, ts2, _, body) = open_msg(&q, &only(&out));
    assert_eq!(
        out.responses[0].corr_id,
        vec![10; 24],
        "the next MSG answers the ACK"
    );
    assert_eq!((ts2, body.as_slice()), (103, &b"second"[..]));
    assert_ne!(id1, id2);
    // ACK of an already acknowledged message.
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 11, &q.rid, QueueCommand::Ack(id1)),
        105,
    );
    assert_eq!(only(&out), Reply::Err(ErrorCode::NoMsg));
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 12, &q.rid, QueueCommand::Ack(id2)),
        105,
    );
    assert_eq!(only(&out), Reply::Ok);

    // A message to an idle subscribed queue is delivered as an event.
    let out = relay.handle(
        &snd,
        signed(
            &q.snd_key,
            13,
            &q.sid,
            QueueCommand::Send {
                notification: true,
                body: b"third".to_vec(),
            },
        ),
        106,
    );
    assert_eq!(only(&out), Reply::Ok);
    let ev = events_for(&out, rcv.conn);
    assert_eq!(ev.len(), 1);
    let (id3, _, flag, body) = open_msg(&q, &ev[0].reply);
    assert!(flag);
    assert_eq!(body, b"third");
    // While it is unacknowledged, the next message waits.
    let out = relay.handle(&snd, signed(&q.snd_key, 14, &q.sid, send(b"fourth")), 107);
    assert_eq!(only(&out), Reply::Ok);
    assert!(out.events.is_empty());
    // GET is prohibited on a subscribed connection.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 15, &q.rid, QueueCommand::Get), 107);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Cmd(CmdError::Prohibited)));
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 16, &q.rid, QueueCommand::Ack(id3)),
        107,
    );
    assert_eq!(open_msg(&q, &only(&out)).3, b"fourth");

    // OFF: sending is refused, the recipient still works.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 17, &q.rid, QueueCommand::Off), 108);
    assert_eq!(only(&out), Reply::Ok);
    let out = relay.handle(&snd, signed(&q.snd_key, 18, &q.sid, send(b"late")), 108);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));

    // DEL by the recipient on another connection: the subscriber gets DELD.
    let rcv2 = session(&mut relay, None);
    let out = relay.handle(
        &rcv2,
        signed(&q.rcv_key, 19, &q.rid, QueueCommand::Del),
        109,
    );
    assert_eq!(only(&out), Reply::Ok);
    assert_eq!(
        events_for(&out, rcv.conn),
        vec![Response::event(&q.rid, Reply::Deld)]
    );
    assert_eq!(relay.queue_count(), 0);
    assert_eq!(relay.message_count(), 0);
    // The queue is gone for both parties.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 20, &q.rid, QueueCommand::Sub), 110);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    let out = relay.handle(&snd, signed(&q.snd_key, 21, &q.sid, send(b"x")), 110);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
}

#[test]
fn sender_secures_with_skey() {
    let mut relay = relay(RelayConfig::default());
    let rcv = session(&mut relay, None);
    let snd = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 11, true, Some(QueueMode::Messaging));
    let skey = QueueCommand::SKey(AuthKey::Ed25519(q.snd_key.public_key()));
    // SKEY must be signed by the key it sets.
    let wrong = ed25519::SigningKey::generate(&mut rng::seeded(5));
    assert_eq!(
        only(&relay.handle(&snd, signed(&wrong, 2, &q.sid, skey.clone()), 1)),
        Reply::Err(ErrorCode::Auth)
    );
    assert_eq!(
        only(&relay.handle(&snd, signed(&q.snd_key, 3, &q.sid, skey.clone()), 1)),
        Reply::Ok
    );
    // Retrying with the same key succeeds (lost response), another key fails.
    assert_eq!(
        only(&relay.handle(&snd, signed(&q.snd_key, 4, &q.sid, skey), 1)),
        Reply::Ok
    );
    let skey2 = QueueCommand::SKey(AuthKey::Ed25519(wrong.public_key()));
    assert_eq!(
        only(&relay.handle(&snd, signed(&wrong, 5, &q.sid, skey2), 1)),
        Reply::Err(ErrorCode::Auth)
    );
    // Subscribed at NEW: the message is delivered at once.
    let out = relay.handle(&snd, signed(&q.snd_key, 6, &q.sid, send(b"hi")), 2);
    assert_eq!(only(&out), Reply::Ok);
    let ev = events_for(&out, rcv.conn);
    assert_eq!(open_msg(&q, &ev[0].reply).3, b"hi");

    // A queue without the messaging mode cannot be secured by the sender.
    let q2 = new_queue(&mut relay, &rcv, 12, false, None);
    let skey = QueueCommand::SKey(AuthKey::Ed25519(q2.snd_key.public_key()));
    assert_eq!(
        only(&relay.handle(&snd, signed(&q2.snd_key, 7, &q2.sid, skey), 1)),
        Reply::Err(ErrorCode::Auth)
    );
}

#[test]
fn signed_send_to_unsecured_queue_is_refused() {
    let mut relay = relay(RelayConfig::default());
    let rcv = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 13, false, None);
    let out = relay.handle(&rcv, signed(&q.snd_key, 2, &q.sid, send(b"x")), 1);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
}

#[test]
fn second_subscriber_ends_the_first() {
    let mut relay = relay(RelayConfig::default());
    let a = session(&mut relay, None);
    let b = session(&mut relay, None);
    let snd = session(&mut relay, None);
    let q = new_queue(&mut relay, &a, 14, false, None);
    relay.handle(&snd, unsigned(2, &q.sid, send(b"m1")), 1);

    let out = relay.handle(&a, signed(&q.rcv_key, 3, &q.rid, QueueCommand::Sub), 2);
    let (id1, ..) = open_msg(&q, &out.responses[1].reply);
    let out = relay.handle(&b, signed(&q.rcv_key, 4, &q.rid, QueueCommand::Sub), 3);
    assert_eq!(out.responses[0].reply, Reply::Subscribed);
    assert_eq!(
        open_msg(&q, &out.responses[1].reply).0,
        id1,
        "redelivered to b"
    );
    assert_eq!(
        events_for(&out, a.conn),
        vec![Response::event(&q.rid, Reply::End)]
    );
    assert!(events_for(&out, b.conn).is_empty());

    // a no longer holds the subscription.
    let out = relay.handle(
        &a,
        signed(&q.rcv_key, 5, &q.rid, QueueCommand::Ack(id1.clone())),
        4,
    );
    assert_eq!(only(&out), Reply::Err(ErrorCode::NoMsg));
    let out = relay.handle(&b, signed(&q.rcv_key, 6, &q.rid, QueueCommand::Ack(id1)), 4);
    assert_eq!(only(&out), Reply::Ok);
    let out = relay.handle(&snd, unsigned(7, &q.sid, send(b"m2")), 5);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].0, b.conn);

    // SUB again on the same connection re-sends the unacknowledged message.
    let out = relay.handle(&b, signed(&q.rcv_key, 8, &q.rid, QueueCommand::Sub), 6);
    assert_eq!(open_msg(&q, &out.responses[1].reply).3, b"m2");
    assert!(out.events.is_empty(), "no END to itself");

    // After b disconnects, nothing is delivered until someone subscribes.
    relay.disconnect(b.conn);
    let out = relay.handle(&b, signed(&q.rcv_key, 9, &q.rid, QueueCommand::Get), 7);
    assert_eq!(open_msg(&q, &only(&out)).3, b"m2");
}

#[test]
fn get_and_its_rules() {
    let mut relay = relay(RelayConfig::default());
    let rcv = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 15, false, None);
    let out = relay.handle(&rcv, signed(&q.rcv_key, 2, &q.rid, QueueCommand::Get), 1);
    assert_eq!(only(&out), Reply::Ok, "empty queue");
    relay.handle(&rcv, unsigned(3, &q.sid, send(b"a")), 1);
    relay.handle(&rcv, unsigned(4, &q.sid, send(b"b")), 1);
    let out = relay.handle(&rcv, signed(&q.rcv_key, 5, &q.rid, QueueCommand::Get), 2);
    assert_eq!(
        out.responses[0].corr_id,
        vec![5; 24],
        "GET's MSG carries the corrId"
    );
    let (id, _, _, body) = open_msg(&q, &only(&out));
    assert_eq!(body, b"a");
    // GET again without ACK returns the same message.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 6, &q.rid, QueueCommand::Get), 2);
    assert_eq!(open_msg(&q, &only(&out)).0, id);
    // SUB after GET on the same connection is prohibited.
    let out = relay.handle(&rcv, signed(&q.rcv_key, 7, &q.rid, QueueCommand::Sub), 2);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Cmd(CmdError::Prohibited)));
    // ACK after GET answers OK, without the next message.
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 8, &q.rid, QueueCommand::Ack(id)),
        2,
    );
    assert_eq!(only(&out), Reply::Ok);
    let out = relay.handle(&rcv, signed(&q.rcv_key, 9, &q.rid, QueueCommand::Get), 2);
    assert_eq!(open_msg(&q, &only(&out)).3, b"b");
    // ACK with an empty id acknowledges whatever was delivered.
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 10, &q.rid, QueueCommand::Ack(vec![])),
        2,
    );
    assert_eq!(only(&out), Reply::Ok);
    // ACK with nothing delivered.
    let out = relay.handle(
        &rcv,
        signed(&q.rcv_key, 11, &q.rid, QueueCommand::Ack(vec![1; 24])),
        2,
    );
    assert_eq!(only(&out), Reply::Err(ErrorCode::NoMsg));
}

#[test]
fn quota_then_marker_then_recovery() {
    let mut relay = relay(RelayConfig {
        quota: 3,
        ..RelayConfig::default()
    });
    let rcv = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 16, false, None);
    for i in 0..3u8 {
        assert_eq!(
            only(&relay.handle(&rcv, unsigned(i, &q.sid, send(&[i])), 10)),
            Reply::Ok
        );
    }
    assert_eq!(
        only(&relay.handle(&rcv, unsigned(3, &q.sid, send(b"over")), 11)),
        Reply::Err(ErrorCode::Quota)
    );
    assert_eq!(
        only(&relay.handle(&rcv, unsigned(4, &q.sid, send(b"over")), 12)),
        Reply::Err(ErrorCode::Quota)
    );
    assert_eq!(
        relay.message_count(),
        4,
        "three messages and the quota marker"
    );

    let out = relay.handle(&rcv, signed(&q.rcv_key, 5, &q.rid, QueueCommand::Sub), 13);
    let mut reply = out.responses[1].reply.clone();
    let mut got = Vec::new();
    for corr in 6..10u8 {
        let (id, ts, _, body) = open_msg(&q, &reply);
        got.push((ts, body));
        // Sending still fails while anything is left.
        assert_eq!(
            only(&relay.handle(&rcv, unsigned(50 + corr, &q.sid, send(b"x")), 14)),
            Reply::Err(ErrorCode::Quota)
        );
        let out = relay.handle(
            &rcv,
            signed(&q.rcv_key, corr, &q.rid, QueueCommand::Ack(id)),
            14,
        );
        reply = only(&out);
    }
    assert_eq!(reply, Reply::Ok);
    assert_eq!(
        got,
        vec![
            (10, vec![0]),
            (10, vec![1]),
            (10, vec![2]),
            (11, b"QUOTA".to_vec())
        ]
    );
    // Emptied: the queue accepts messages again.
    let out = relay.handle(&rcv, unsigned(20, &q.sid, send(b"again")), 15);
    assert_eq!(only(&out), Reply::Ok);
    assert_eq!(
        open_msg(&q, &events_for(&out, rcv.conn)[0].reply).3,
        b"again"
    );
}

#[test]
fn messages_expire() {
    let mut relay = relay(RelayConfig {
        message_ttl: Some(100),
        ..RelayConfig::default()
    });
    let rcv = session(&mut relay, None);
    let q = new_queue(&mut relay, &rcv, 17, false, None);
    relay.handle(&rcv, unsigned(1, &q.sid, send(b"old")), 1000);
    relay.handle(&rcv, unsigned(2, &q.sid, send(b"mid")), 1050);
    // Sending at 1120 expires what was sent before 1020.
    relay.handle(&rcv, unsigned(3, &q.sid, send(b"new")), 1120);
    assert_eq!(relay.message_count(), 2);
    // The periodic sweep at 1160 removes "mid" (before 1060) and keeps "new".
    assert_eq!(relay.expire_messages(1160).unwrap(), 1);
    let out = relay.handle(&rcv, signed(&q.rcv_key, 4, &q.rid, QueueCommand::Get), 1160);
    assert_eq!(open_msg(&q, &only(&out)).3, b"new");
    assert_eq!(relay.expire_messages(1160).unwrap(), 0);
    assert_eq!(relay.expire_messages(1221).unwrap(), 1);
    assert_eq!(relay.message_count(), 0);
}

#[test]
fn credentials_are_checked_first() {
    let mut relay = relay(RelayConfig::default());
    let s = session(&mut relay, None);
    let q = new_queue(&mut relay, &s, 18, false, None);
    let k = &q.rcv_key;
    let new = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::Ed25519(k.public_key()),
        recipient_dh_key: q.rcv_dh.public_key(),
        basic_auth: None,
        subscribe: false,
        mode: None,
    });
    let cmd_err = |e| Reply::Err(ErrorCode::Cmd(e));
    assert_eq!(
        only(&relay.handle(&s, unsigned(1, &[], new.clone()), 0)),
        cmd_err(CmdError::NoAuth)
    );
    assert_eq!(
        only(&relay.handle(&s, signed(k, 2, &q.rid, new), 0)),
        cmd_err(CmdError::HasAuth)
    );
    assert_eq!(
        only(&relay.handle(&s, unsigned(3, &[], send(b"x")), 0)),
        cmd_err(CmdError::NoEntity)
    );
    assert_eq!(
        only(&relay.handle(&s, signed(k, 4, &[], QueueCommand::Ping), 0)),
        cmd_err(CmdError::HasAuth)
    );
    assert_eq!(
        only(&relay.handle(&s, unsigned(5, &q.rid, QueueCommand::Ping), 0)),
        cmd_err(CmdError::HasAuth)
    );
    assert_eq!(
        only(&relay.handle(&s, unsigned(6, &[], QueueCommand::Ping), 0)),
        Reply::Pong
    );
    for cmd in [
        QueueCommand::Sub,
        QueueCommand::Get,
        QueueCommand::Off,
        QueueCommand::Del,
        QueueCommand::Ack(vec![]),
    ] {
        assert_eq!(
            only(&relay.handle(&s, unsigned(7, &q.rid, cmd.clone()), 0)),
            cmd_err(CmdError::NoAuth)
        );
        assert_eq!(
            only(&relay.handle(&s, signed(k, 8, &[], cmd), 0)),
            cmd_err(CmdError::NoAuth)
        );
    }
    // Unknown queue: AUTH, the same as a wrong key.
    let out = relay.handle(&s, signed(k, 9, &[5; 24], QueueCommand::Sub), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    assert_eq!(out.responses[0].entity_id, vec![5; 24]);
    let out = relay.handle(&s, signed(k, 10, &[5; 3], QueueCommand::Sub), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // A recipient command addressed by the sender id is an unknown queue too.
    let out = relay.handle(&s, signed(k, 11, &q.sid, QueueCommand::Sub), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // Commands this relay does not serve.
    let out = relay.handle(
        &s,
        signed(k, 12, &q.rid, QueueCommand::NotServed("NKEY")),
        0,
    );
    assert_eq!(only(&out), cmd_err(CmdError::Prohibited));
}

#[test]
fn bad_signature_is_refused() {
    let mut relay = relay(RelayConfig::default());
    let s = session(&mut relay, None);
    let q = new_queue(&mut relay, &s, 19, false, None);
    // Signed by the wrong key.
    let out = relay.handle(&s, signed(&q.snd_key, 2, &q.rid, QueueCommand::Sub), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // The right key over other bytes.
    let mut req = signed(&q.rcv_key, 3, &q.rid, QueueCommand::Sub);
    req.authorized.push(0);
    assert_eq!(only(&relay.handle(&s, req, 0)), Reply::Err(ErrorCode::Auth));
    // A flipped signature bit.
    let mut req = signed(&q.rcv_key, 4, &q.rid, QueueCommand::Sub);
    if let Authorization::Ed25519(sig) = &req.auth {
        let mut b = sig.to_bytes();
        b[10] ^= 1;
        req.auth = Authorization::Ed25519(ed25519::Signature::from_bytes(b));
    }
    assert_eq!(only(&relay.handle(&s, req, 0)), Reply::Err(ErrorCode::Auth));
    // An Ed448 signature never verifies here.
    let mut req = signed(&q.rcv_key, 5, &q.rid, QueueCommand::Sub);
    req.auth = Authorization::Unsupported;
    assert_eq!(only(&relay.handle(&s, req, 0)), Reply::Err(ErrorCode::Auth));
    // NEW signed by a key other than the one it registers.
    let new = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::Ed25519(q.rcv_key.public_key()),
        recipient_dh_key: q.rcv_dh.public_key(),
        basic_auth: None,
        subscribe: false,
        mode: None,
    });
    let out = relay.handle(&s, signed(&q.snd_key, 6, &[], new), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // The correct signature still works.
    let out = relay.handle(&s, signed(&q.rcv_key, 7, &q.rid, QueueCommand::Sub), 0);
    assert_eq!(out.responses[0].reply, Reply::Subscribed);
}

#[test]
fn authenticators_use_the_session_key() {
    let mut r = rng::seeded(20);
    let server_key = x25519::SecretKey::generate(&mut r);
    let mut relay = relay(RelayConfig::default());
    let s = session(&mut relay, Some(server_key.clone()));
    let no_key = session(&mut relay, None);
    let rcv_auth = x25519::SecretKey::generate(&mut r);
    let rcv_dh = x25519::SecretKey::generate(&mut r);
    let make = |corr: u8, entity: &[u8], cmd: QueueCommand, key: &x25519::SecretKey| {
        let corr_id = vec![corr; 24];
        let authorized = authorized(&corr_id, entity, b"cmd");
        let a = nacl::cb_authenticator(
            &server_key.public_key(),
            key,
            &corr_id.clone().try_into().unwrap(),
            &authorized,
        );
        smp_groups_relay::Request {
            corr_id,
            entity_id: entity.to_vec(),
            auth: Authorization::Authenticator(a),
            authorized,
            command: cmd,
        }
    };
    let new = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::X25519(rcv_auth.public_key()),
        recipient_dh_key: rcv_dh.public_key(),
        basic_auth: None,
        subscribe: false,
        mode: None,
    });
    // Without the relay's session key (no key in the handshake) it cannot verify.
    let out = relay.handle(&no_key, make(1, &[], new.clone(), &rcv_auth), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    let out = relay.handle(&s, make(2, &[], new, &rcv_auth), 0);
    let Reply::Ids { recipient_id, .. } = only(&out) else {
        panic!("{out:?}")
    };
    let out = relay.handle(&s, make(3, &recipient_id, QueueCommand::Get, &rcv_auth), 0);
    assert_eq!(only(&out), Reply::Ok);
    // Made with another key.
    let out = relay.handle(&s, make(4, &recipient_id, QueueCommand::Get, &rcv_dh), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // An Ed25519 signature for an X25519 queue key.
    let ed = ed25519::SigningKey::generate(&mut r);
    let out = relay.handle(&s, signed(&ed, 5, &recipient_id, QueueCommand::Get), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
}

#[test]
fn large_messages_are_refused_by_version() {
    let mut relay = relay(RelayConfig::default());
    let mut s = session(&mut relay, None);
    let q = new_queue(&mut relay, &s, 21, false, None);
    let out = relay.handle(&s, unsigned(1, &q.sid, send(&[0; 16049])), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::LargeMsg));
    let out = relay.handle(&s, unsigned(2, &q.sid, send(&[0; 16048])), 0);
    assert_eq!(only(&out), Reply::Ok);
    s.version = 7;
    let out = relay.handle(&s, unsigned(3, &q.sid, send(&[0; 16088])), 0);
    assert_eq!(only(&out), Reply::Ok);
    let out = relay.handle(&s, unsigned(4, &q.sid, send(&[0; 16089])), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::LargeMsg));
    // The largest body still fits the delivered box.
    let out = relay.handle(&s, signed(&q.rcv_key, 5, &q.rid, QueueCommand::Get), 0);
    assert_eq!(open_msg(&q, &only(&out)).3.len(), 16048);
}

#[test]
fn new_queue_password() {
    let mut relay = relay(RelayConfig {
        new_queue_password: Some(b"secret".to_vec()),
        ..RelayConfig::default()
    });
    let s = session(&mut relay, None);
    let k = ed25519::SigningKey::generate(&mut rng::seeded(22));
    let dh = x25519::SecretKey::generate(&mut rng::seeded(23));
    let new = |basic_auth: Option<&[u8]>| {
        QueueCommand::New(NewQueue {
            recipient_key: AuthKey::Ed25519(k.public_key()),
            recipient_dh_key: dh.public_key(),
            basic_auth: basic_auth.map(<[u8]>::to_vec),
            subscribe: false,
            mode: None,
        })
    };
    assert_eq!(
        only(&relay.handle(&s, signed(&k, 1, &[], new(None)), 0)),
        Reply::Err(ErrorCode::Auth)
    );
    assert_eq!(
        only(&relay.handle(&s, signed(&k, 2, &[], new(Some(b"wrong"))), 0)),
        Reply::Err(ErrorCode::Auth)
    );
    assert!(matches!(
        only(&relay.handle(&s, signed(&k, 3, &[], new(Some(b"secret"))), 0)),
        Reply::Ids { .. }
    ));
}

#[test]
fn restart_loses_nothing() {
    let dir = temp_dir("restart");
    let (q, ids_before) = {
        let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Process).unwrap();
        let mut relay =
            RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(3))).unwrap();
        let s = session(&mut relay, None);
        let q = new_queue(&mut relay, &s, 24, false, None);
        let key = QueueCommand::Key(AuthKey::Ed25519(q.snd_key.public_key()));
        assert_eq!(
            only(&relay.handle(&s, signed(&q.rcv_key, 1, &q.rid, key), 0)),
            Reply::Ok
        );
        for i in 0..10u8 {
            let out = relay.handle(
                &s,
                signed(&q.snd_key, 2, &q.sid, send(&[i; 100])),
                10 + i64::from(i),
            );
            assert_eq!(only(&out), Reply::Ok);
        }
        // Deliver and acknowledge the first two.
        let out = relay.handle(&s, signed(&q.rcv_key, 3, &q.rid, QueueCommand::Sub), 30);
        let (id, ..) = open_msg(&q, &out.responses[1].reply);
        let out = relay.handle(&s, signed(&q.rcv_key, 4, &q.rid, QueueCommand::Ack(id)), 30);
        let (id, ..) = open_msg(&q, &only(&out));
        let out = relay.handle(&s, signed(&q.rcv_key, 5, &q.rid, QueueCommand::Ack(id)), 30);
        let (id3, ..) = open_msg(&q, &only(&out));
        (q, id3)
    };
    let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Process).unwrap();
    let mut relay =
        RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(4))).unwrap();
    assert_eq!(relay.queue_count(), 1);
    assert_eq!(relay.message_count(), 8);
    let s = session(&mut relay, None);
    // The queue is still secured.
    let out = relay.handle(&s, unsigned(6, &q.sid, send(b"x")), 40);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    let out = relay.handle(&s, signed(&q.rcv_key, 7, &q.rid, QueueCommand::Sub), 40);
    let mut reply = out.responses[1].reply.clone();
    let mut bodies = Vec::new();
    for corr in 0..8u8 {
        let (id, ts, _, body) = open_msg(&q, &reply);
        if corr == 0 {
            assert_eq!(id, ids_before, "the unacknowledged message comes first");
        }
        assert_eq!(ts, 12 + i64::from(corr));
        bodies.push(body);
        reply = only(&relay.handle(
            &s,
            signed(&q.rcv_key, corr, &q.rid, QueueCommand::Ack(id)),
            41,
        ));
    }
    assert_eq!(reply, Reply::Ok);
    assert_eq!(bodies, (2..10u8).map(|i| vec![i; 100]).collect::<Vec<_>>());
    drop(relay);
    let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Process).unwrap();
    assert_eq!(
        store.message_count().unwrap(),
        0,
        "acknowledged messages are gone"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deleted_queue_stays_deleted_after_restart() {
    let dir = temp_dir("deleted");
    let q = {
        let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Machine).unwrap();
        let mut relay =
            RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(5))).unwrap();
        let s = session(&mut relay, None);
        let q = new_queue(&mut relay, &s, 25, false, None);
        let keep = new_queue(&mut relay, &s, 26, false, None);
        relay.handle(&s, unsigned(1, &q.sid, send(b"gone")), 0);
        relay.handle(&s, unsigned(1, &keep.sid, send(b"kept")), 0);
        relay.handle(&s, signed(&q.rcv_key, 2, &q.rid, QueueCommand::Off), 0);
        assert_eq!(
            only(&relay.handle(&s, signed(&q.rcv_key, 3, &q.rid, QueueCommand::Del), 0)),
            Reply::Ok
        );
        keep
    };
    let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Machine).unwrap();
    let mut relay =
        RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(6))).unwrap();
    assert_eq!((relay.queue_count(), relay.message_count()), (1, 1));
    let s = session(&mut relay, None);
    let out = relay.handle(&s, signed(&q.rcv_key, 4, &q.rid, QueueCommand::Get), 0);
    assert_eq!(open_msg(&q, &only(&out)).3, b"kept");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn off_survives_restart() {
    let dir = temp_dir("off");
    let q = {
        let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Process).unwrap();
        let mut relay =
            RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(7))).unwrap();
        let s = session(&mut relay, None);
        let q = new_queue(&mut relay, &s, 27, false, Some(QueueMode::Messaging));
        relay.handle(&s, signed(&q.rcv_key, 2, &q.rid, QueueCommand::Off), 0);
        q
    };
    let store = QueueStore::open_dir(&dir, smp_groups_relay::Durability::Process).unwrap();
    let mut relay =
        RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(8))).unwrap();
    let s = session(&mut relay, None);
    let out = relay.handle(&s, unsigned(1, &q.sid, send(b"x")), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    let _ = std::fs::remove_dir_all(&dir);
}

fn new_cmd(k: &ed25519::SigningKey, dh: &x25519::SecretKey) -> QueueCommand {
    QueueCommand::New(NewQueue {
        recipient_key: AuthKey::Ed25519(k.public_key()),
        recipient_dh_key: dh.public_key(),
        basic_auth: None,
        subscribe: false,
        mode: None,
    })
}

/// Queues per connection and in total are limited: `NEW` beyond gets
/// `ERR QUOTA`, counted; another connection may create until the total.
#[test]
fn queue_limits_refuse_new_and_are_counted() {
    let mut relay = relay(RelayConfig {
        max_queues: 5,
        max_queues_per_connection: 3,
        ..RelayConfig::default()
    });
    let k = ed25519::SigningKey::generate(&mut rng::seeded(40));
    let dh = x25519::SecretKey::generate(&mut rng::seeded(41));
    let a = session(&mut relay, None);
    let b = session(&mut relay, None);
    let mut replies = Vec::new();
    for (i, s) in [&a, &a, &a, &a, &b, &b, &b].into_iter().enumerate() {
        let r = only(&relay.handle(
            s,
            signed(&k, u8::try_from(i).unwrap(), &[], new_cmd(&k, &dh)),
            0,
        ));
        replies.push(matches!(r, Reply::Ids { .. }));
        if !matches!(r, Reply::Ids { .. }) {
            assert_eq!(r, Reply::Err(ErrorCode::Quota));
        }
    }
    assert_eq!(replies, [true, true, true, false, true, true, false]);
    assert_eq!(relay.queue_count(), 5);
    let r = relay.refusals();
    assert_eq!((r.queues_per_connection, r.queues_total), (1, 1));
}

/// The bytes of stored bodies are limited in total: a `SEND` that would pass
/// the limit gets `ERR QUOTA` and stores nothing (no quota marker); once a
/// message is acknowledged, there is room again.
#[test]
fn stored_bytes_limit_refuses_send() {
    let mut relay = relay(RelayConfig {
        max_stored_bytes: 2_500,
        ..RelayConfig::default()
    });
    let s = session(&mut relay, None);
    let q = new_queue(&mut relay, &s, 42, false, None);
    for i in 0..2u8 {
        let out = relay.handle(&s, unsigned(10 + i, &q.sid, send(&[i; 1_000])), 0);
        assert_eq!(only(&out), Reply::Ok);
    }
    let out = relay.handle(&s, unsigned(12, &q.sid, send(&[9; 1_000])), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Quota));
    assert_eq!((relay.message_count(), relay.stored_bytes()), (2, 2_000));
    assert_eq!(relay.refusals().stored_bytes, 1);
    // A GET and its ACK free 1 000 bytes.
    let out = relay.handle(&s, signed(&q.rcv_key, 13, &q.rid, QueueCommand::Get), 0);
    let (id, ..) = open_msg(&q, &only(&out));
    let out = relay.handle(&s, signed(&q.rcv_key, 14, &q.rid, QueueCommand::Ack(id)), 0);
    assert_eq!(only(&out), Reply::Ok);
    let out = relay.handle(&s, unsigned(15, &q.sid, send(&[9; 1_000])), 0);
    assert_eq!(only(&out), Reply::Ok);
    assert_eq!(relay.stored_bytes(), 2_000);
}

/// A recipient DH key of small order would make the delivery boxes' key all
/// zeros, and an X25519 authorization key of small order would let anyone
/// authorize: both `NEW`s are refused.
#[test]
fn small_order_keys_are_refused() {
    let mut relay = relay(RelayConfig::default());
    let server = x25519::SecretKey::generate(&mut rng::seeded(44));
    let s = session(&mut relay, Some(server.clone()));
    let k = ed25519::SigningKey::generate(&mut rng::seeded(45));
    let low = x25519::PublicKey::from_bytes([0; 32]);
    let cmd = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::Ed25519(k.public_key()),
        recipient_dh_key: low,
        basic_auth: None,
        subscribe: false,
        mode: None,
    });
    let out = relay.handle(&s, signed(&k, 1, &[], cmd), 0);
    assert_eq!(only(&out), Reply::Err(ErrorCode::Auth));
    // An authenticator "made" with the all-zero shared secret.
    let dh = x25519::SecretKey::generate(&mut rng::seeded(46));
    let cmd = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::X25519(low),
        recipient_dh_key: dh.public_key(),
        basic_auth: None,
        subscribe: false,
        mode: None,
    });
    let corr_id = vec![2u8; 24];
    let authorized = authorized(&corr_id, &[], format!("{cmd:?}").as_bytes());
    let nonce: [u8; 24] = corr_id.clone().try_into().unwrap();
    let forged: [u8; 80] =
        nacl::cb_encrypt_no_pad(&[0; 32], &nonce, &smp_groups_crypto::sha512(&authorized))
            .try_into()
            .unwrap();
    let req = smp_groups_relay::Request {
        corr_id,
        entity_id: Vec::new(),
        auth: Authorization::Authenticator(forged),
        authorized,
        command: cmd,
    };
    assert_eq!(only(&relay.handle(&s, req, 0)), Reply::Err(ErrorCode::Auth));
    assert_eq!(relay.queue_count(), 0);
}

/// A queue's DH secret is never shown by `Debug` (logs, panics).
#[test]
fn queue_secret_is_not_in_debug_output() {
    let secret = smp_groups_relay::DhSecret::from_bytes([0xab; 32]);
    let shown = format!("{secret:?}");
    assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
}

/// A full store: the change that does not fit is answered `ERR INTERNAL`, the
/// batch is rolled back and the state reloaded from the store (memory and
/// store agree: nothing half-done is left), the relay goes on serving, and
/// once there is room again sends succeed.
#[test]
fn a_full_store_fails_the_batch_and_recovers() {
    let store = QueueStore::in_memory().unwrap();
    store.limit_pages(60).unwrap();
    let mut relay =
        RelayState::open(store, RelayConfig::default(), Box::new(rng::seeded(50))).unwrap();
    let s = session(&mut relay, None);
    let q = new_queue(&mut relay, &s, 51, true, None);
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..100u8 {
        let out = relay.handle(&s, unsigned(i, &q.sid, send(&[i; 8_000])), 0);
        match only(&out) {
            Reply::Ok => accepted += 1,
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    assert_eq!(refused, Some(Reply::Err(ErrorCode::Internal)));
    assert!(accepted > 0);
    // Memory was reloaded from the store: the refused message is in neither.
    assert_eq!(relay.message_count(), accepted);
    assert_eq!(relay.messages(&q.rid).unwrap().len(), accepted);
    // Still serving: the first message is delivered again on SUB (what was
    // delivered before may not have been committed), and acknowledged.
    let out = relay.handle(&s, signed(&q.rcv_key, 200, &q.rid, QueueCommand::Sub), 0);
    let (id, _, _, body) = open_msg(&q, &out.responses[1].reply);
    assert_eq!(body, vec![0u8; 8_000]);
    let out = relay.handle(
        &s,
        signed(&q.rcv_key, 201, &q.rid, QueueCommand::Ack(id)),
        0,
    );
    assert!(matches!(only(&out), Reply::Msg { .. }));
    // Room again: a send fits.
    let out = relay.handle(&s, unsigned(202, &q.sid, send(&[1; 8_000])), 0);
    assert_eq!(only(&out), Reply::Ok);
    assert_eq!(relay.message_count(), accepted);
}
