//! Test helpers: a client that makes signed requests and opens delivered messages.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::SessionAuth;
use smp_groups_relay::{
    AuthKey, Authorization, ConnId, NewQueue, QueueCommand, QueueId, QueueMode, Reply, Request,
    Response,
};
use smp_groups_relay::{QueueStore, RelayConfig, RelayState, Session};

pub const SESSION_ID: [u8; 32] = [7; 32];

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "smp-relay-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn relay(config: RelayConfig) -> RelayState {
    RelayState::open(
        QueueStore::in_memory().unwrap(),
        config,
        Box::new(rng::seeded(1)),
    )
    .unwrap()
}

pub fn session(relay: &mut RelayState, server_key: Option<x25519::SecretKey>) -> Session {
    Session {
        conn: relay.connect(),
        version: 11,
        session_id: SESSION_ID.to_vec(),
        auth: SessionAuth { server_key },
    }
}

/// The bytes a transmission's authorization covers, as SMP v7+ builds them.
pub fn authorized(corr: &[u8], entity: &[u8], cmd: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(SESSION_ID.len()).unwrap()];
    v.extend_from_slice(&SESSION_ID);
    v.push(u8::try_from(corr.len()).unwrap());
    v.extend_from_slice(corr);
    v.push(u8::try_from(entity.len()).unwrap());
    v.extend_from_slice(entity);
    v.extend_from_slice(cmd);
    v
}

pub fn signed(
    key: &ed25519::SigningKey,
    corr: u8,
    entity: &[u8],
    command: QueueCommand,
) -> Request {
    let corr_id = vec![corr; 24];
    let authorized = authorized(&corr_id, entity, format!("{command:?}").as_bytes());
    Request {
        auth: Authorization::Ed25519(key.sign(&authorized)),
        corr_id,
        entity_id: entity.to_vec(),
        authorized,
        command,
    }
}

pub fn unsigned(corr: u8, entity: &[u8], command: QueueCommand) -> Request {
    let corr_id = vec![corr; 24];
    let authorized = authorized(&corr_id, entity, format!("{command:?}").as_bytes());
    Request {
        auth: Authorization::None,
        corr_id,
        entity_id: entity.to_vec(),
        authorized,
        command,
    }
}

/// The one reply of an outcome, checking the correlation id.
pub fn only(out: &smp_groups_relay::Outcome) -> Reply {
    assert_eq!(out.responses.len(), 1, "{out:?}");
    out.responses[0].reply.clone()
}

/// A queue as its recipient and its sender know it.
pub struct TestQueue {
    pub rcv_key: ed25519::SigningKey,
    pub rcv_dh: x25519::SecretKey,
    pub rid: QueueId,
    pub sid: QueueId,
    pub server_dh: x25519::PublicKey,
    pub snd_key: ed25519::SigningKey,
}

pub fn new_queue(
    relay: &mut RelayState,
    s: &Session,
    seed: u64,
    subscribe: bool,
    mode: Option<QueueMode>,
) -> TestQueue {
    let mut r = rng::seeded(seed);
    let rcv_key = ed25519::SigningKey::generate(&mut r);
    let rcv_dh = x25519::SecretKey::generate(&mut r);
    let snd_key = ed25519::SigningKey::generate(&mut r);
    let cmd = QueueCommand::New(NewQueue {
        recipient_key: AuthKey::Ed25519(rcv_key.public_key()),
        recipient_dh_key: rcv_dh.public_key(),
        basic_auth: None,
        subscribe,
        mode,
    });
    let out = relay.handle(s, signed(&rcv_key, 1, &[], cmd), 0);
    match only(&out) {
        Reply::Ids {
            recipient_id,
            sender_id,
            server_dh_key,
            mode: m,
        } => {
            assert_eq!(m, mode);
            assert_ne!(recipient_id, sender_id);
            TestQueue {
                rcv_key,
                rcv_dh,
                rid: recipient_id,
                sid: sender_id,
                server_dh: server_dh_key,
                snd_key,
            }
        }
        other => panic!("expected IDS, got {other:?}"),
    }
}

/// Opens a delivered MSG: (message id, timestamp, notification flag, body), or
/// the quota marker as body `QUOTA`.
pub fn open_msg(q: &TestQueue, reply: &Reply) -> (Vec<u8>, i64, bool, Vec<u8>) {
    let Reply::Msg { msg_id, enc_body } = reply else {
        panic!("expected MSG, got {reply:?}");
    };
    assert_eq!(enc_body.len(), 16106 + 16, "delivered bodies have one size");
    let secret = q.rcv_dh.diffie_hellman(&q.server_dh);
    let plain = nacl::cb_decrypt(secret.as_bytes(), msg_id, enc_body).unwrap();
    if let Some(ts) = plain.strip_prefix(b"QUOTA ") {
        let ts = i64::from_be_bytes(ts.try_into().unwrap());
        return (msg_id.to_vec(), ts, false, b"QUOTA".to_vec());
    }
    let ts = i64::from_be_bytes(plain[..8].try_into().unwrap());
    let flag = match plain[8] {
        b'T' => true,
        b'F' => false,
        other => panic!("bad flag {other}"),
    };
    assert_eq!(plain[9], b' ');
    (msg_id.to_vec(), ts, flag, plain[10..].to_vec())
}

pub fn send(body: &[u8]) -> QueueCommand {
    QueueCommand::Send {
        notification: false,
        body: body.to_vec(),
    }
}

pub fn events_for(out: &smp_groups_relay::Outcome, conn: ConnId) -> Vec<Response> {
    out.events
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, r)| r.clone())
        .collect()
}
pub mod net;
