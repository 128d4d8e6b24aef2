//! Random command sequences from several connections against the relay's
//! queue logic (`RelayState`), one request at a time (`handle`), in batches
//! as the server runs them (`begin_batch`, `apply`..., `end_batch`,
//! `deliver`), as raw blocks (`handle_batch`), and with the store filling up.
//!
//! Checked after every step: nothing panics; the relay's message count is the
//! store's; every `MSG` opens with its queue's key and is the queue's first
//! stored message; a `SEND` answered `OK` stored exactly one message, the one
//! sent; an `ACK` of the delivered first message removed exactly it; the
//! quota holds; after a failed batch memory and store agree.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::handle_batch;
use smp_groups_relay::{
    AuthKey, Authorization, ConnId, MessageBody, NewQueue, QueueCommand, QueueId, QueueMode, Reply,
    Request, Response,
};
use smp_groups_relay::{QueueStore, RelayConfig, RelayState, Session};
use smp_groups_relay::{SessionAuth, verify_request};

const QUOTA: usize = 4;
const CONNS: usize = 3;
const KEYS: usize = 4;

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    New {
        conn: u8,
        key: u8,
        subscribe: bool,
        contact: bool,
        low_dh: bool,
    },
    Sub {
        conn: u8,
        q: u8,
        key: u8,
    },
    Get {
        conn: u8,
        q: u8,
    },
    Ack {
        conn: u8,
        q: u8,
        which: u8,
    },
    Key {
        conn: u8,
        q: u8,
        key: u8,
    },
    SKey {
        conn: u8,
        q: u8,
        key: u8,
    },
    Send {
        conn: u8,
        q: u8,
        len: u16,
        sign: Option<u8>,
    },
    Off {
        conn: u8,
        q: u8,
    },
    Del {
        conn: u8,
        q: u8,
        key: u8,
    },
    Ping {
        conn: u8,
    },
    Disconnect {
        conn: u8,
    },
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    Batch {
        ops: Vec<Op>,
    },
    Fill {
        pages: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
}

struct Q {
    rid: QueueId,
    sid: QueueId,
    dh: x25519::SecretKey,
    srv: x25519::PublicKey,
}

struct World {
    relay: RelayState,
    conns: Vec<Session>,
    keys: Vec<ed25519::SigningKey>,
    queues: Vec<Q>,
    /// Message ids delivered (in `MSG`s seen), per queue index.
    delivered: Vec<Option<Vec<u8>>>,
    corr: u32,
    body_seq: u32,
    /// The DH keys of the `NEW`s made, by correlation id.
    pending_dh: std::collections::HashMap<Vec<u8>, x25519::SecretKey>,
}

fn session(relay: &mut RelayState, version: u16) -> Session {
    Session {
        conn: relay.connect(),
        version,
        session_id: vec![7; 32],
        auth: SessionAuth { server_key: None },
    }
}

impl World {
    fn new() -> Self {
        let store = QueueStore::in_memory().expect("in-memory store");
        let config = RelayConfig {
            quota: QUOTA,
            message_ttl: None,
            max_queues: 12,
            max_queues_per_connection: 8,
            ..RelayConfig::default()
        };
        let mut relay = RelayState::open(store, config, Box::new(rng::seeded(1))).expect("opens");
        let conns = (0..CONNS)
            .map(|i| session(&mut relay, [6, 11, 18][i % 3]))
            .collect();
        let mut r = rng::seeded(2);
        let keys = (0..KEYS)
            .map(|_| ed25519::SigningKey::generate(&mut r))
            .collect();
        Self {
            relay,
            conns,
            keys,
            queues: Vec::new(),
            delivered: Vec::new(),
            corr: 0,
            body_seq: 0,
            pending_dh: std::collections::HashMap::new(),
        }
    }

    fn conn(&self, c: u8) -> Session {
        self.conns[usize::from(c) % CONNS].clone()
    }

    fn key(&self, k: u8) -> &ed25519::SigningKey {
        &self.keys[usize::from(k) % KEYS]
    }

    fn q(&self, q: u8) -> Option<usize> {
        (!self.queues.is_empty()).then(|| usize::from(q) % self.queues.len())
    }

    fn request(
        &mut self,
        key: Option<&ed25519::SigningKey>,
        entity: &[u8],
        command: QueueCommand,
    ) -> Request {
        self.corr += 1;
        let mut corr_id = vec![0u8; 24];
        corr_id[..4].copy_from_slice(&self.corr.to_be_bytes());
        let mut authorized = vec![32];
        authorized.extend_from_slice(&[7; 32]);
        authorized.push(24);
        authorized.extend_from_slice(&corr_id);
        authorized.push(u8::try_from(entity.len()).unwrap_or(0));
        authorized.extend_from_slice(entity);
        authorized.extend_from_slice(format!("{command:?}").as_bytes());
        Request {
            auth: key.map_or(Authorization::None, |k| {
                Authorization::Ed25519(k.sign(&authorized))
            }),
            corr_id,
            entity_id: entity.to_vec(),
            authorized,
            command,
        }
    }

    /// The request an op makes (`None` for ops that are not requests).
    fn make(&mut self, op: &Op) -> Option<(Session, Request, Option<usize>)> {
        Some(match *op {
            Op::New {
                conn,
                key,
                subscribe,
                contact,
                low_dh,
            } => {
                let k = self.key(key).clone();
                let dh = x25519::SecretKey::generate(&mut rng::seeded(u64::from(self.corr)));
                let cmd = QueueCommand::New(NewQueue {
                    recipient_key: AuthKey::Ed25519(k.public_key()),
                    recipient_dh_key: if low_dh {
                        x25519::PublicKey::from_bytes([0; 32])
                    } else {
                        dh.public_key()
                    },
                    basic_auth: None,
                    subscribe,
                    mode: Some(if contact {
                        QueueMode::Contact
                    } else {
                        QueueMode::Messaging
                    }),
                });
                let req = self.request(Some(&k), &[], cmd);
                self.pending_dh.insert(req.corr_id.clone(), dh);
                (self.conn(conn), req, None)
            }
            Op::Sub { conn, q, key } => {
                let i = self.q(q)?;
                let (rid, k) = (self.queues[i].rid, self.key(key).clone());
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Sub),
                    Some(i),
                )
            }
            Op::Get { conn, q } => {
                let i = self.q(q)?;
                let rid = self.queues[i].rid;
                let k = self.keys[0].clone();
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Get),
                    Some(i),
                )
            }
            Op::Ack { conn, q, which } => {
                let i = self.q(q)?;
                let rid = self.queues[i].rid;
                let id = match which % 3 {
                    0 => self.delivered[i].clone().unwrap_or_default(),
                    1 => Vec::new(),
                    _ => vec![which; 24],
                };
                let k = self.keys[0].clone();
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Ack(id)),
                    Some(i),
                )
            }
            Op::Key { conn, q, key } => {
                let i = self.q(q)?;
                let rid = self.queues[i].rid;
                let sk = AuthKey::Ed25519(self.key(key).public_key());
                let k = self.keys[0].clone();
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Key(sk)),
                    Some(i),
                )
            }
            Op::SKey { conn, q, key } => {
                let i = self.q(q)?;
                let sid = self.queues[i].sid;
                let k = self.key(key).clone();
                let cmd = QueueCommand::SKey(AuthKey::Ed25519(k.public_key()));
                (self.conn(conn), self.request(Some(&k), &sid, cmd), Some(i))
            }
            Op::Send { conn, q, len, sign } => {
                let i = self.q(q)?;
                let sid = self.queues[i].sid;
                self.body_seq += 1;
                let mut body = self.body_seq.to_be_bytes().to_vec();
                body.resize(usize::from(len % 17_000).max(4), 0xab);
                let k = sign.map(|s| self.key(s).clone());
                let cmd = QueueCommand::Send {
                    notification: len % 2 == 0,
                    body,
                };
                (
                    self.conn(conn),
                    self.request(k.as_ref(), &sid, cmd),
                    Some(i),
                )
            }
            Op::Off { conn, q } => {
                let i = self.q(q)?;
                let rid = self.queues[i].rid;
                let k = self.keys[0].clone();
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Off),
                    Some(i),
                )
            }
            Op::Del { conn, q, key } => {
                let i = self.q(q)?;
                let rid = self.queues[i].rid;
                let k = self.key(key).clone();
                (
                    self.conn(conn),
                    self.request(Some(&k), &rid, QueueCommand::Del),
                    Some(i),
                )
            }
            Op::Ping { conn } => (
                self.conn(conn),
                self.request(None, &[], QueueCommand::Ping),
                None,
            ),
            _ => return None,
        })
    }
}

/// The stored messages of queue `i`.
fn stored(w: &World, i: usize) -> Vec<smp_groups_relay::StoredMessage> {
    w.relay.messages(&w.queues[i].rid).expect("store reads")
}

/// Every `MSG` opens with its queue's key and (`strict`: right after one
/// request) is the queue's first stored message.
fn check_msgs(w: &mut World, out: &[(ConnId, Response)], strict: bool) {
    for (_, r) in out {
        let Reply::Msg { msg_id, enc_body } = &r.reply else {
            continue;
        };
        let Some(i) = w
            .queues
            .iter()
            .position(|q| q.rid.as_slice() == r.entity_id.as_slice())
        else {
            panic!("MSG for an unknown queue")
        };
        let secret = w.queues[i].dh.diffie_hellman(&w.queues[i].srv);
        let plain = nacl::cb_decrypt(secret.as_bytes(), msg_id, enc_body).expect("MSG opens");
        w.delivered[i] = Some(msg_id.to_vec());
        if !strict {
            continue;
        }
        let first = stored(w, i)
            .into_iter()
            .next()
            .expect("a delivered message is stored");
        assert_eq!(&first.id, msg_id, "MSG is the first stored message");
        match first.body {
            MessageBody::Message { body, .. } => assert_eq!(plain.get(10..), Some(body.as_slice())),
            MessageBody::Quota => assert!(plain.starts_with(b"QUOTA ")),
        }
    }
}

fn check_totals(w: &World) {
    let n: usize = (0..w.queues.len()).map(|i| stored(w, i).len()).sum();
    assert_eq!(
        w.relay.message_count(),
        n,
        "memory and store agree on messages"
    );
    let bytes: u64 = (0..w.queues.len())
        .flat_map(|i| stored(w, i))
        .map(|m| match m.body {
            MessageBody::Message { body, .. } => body.len() as u64,
            MessageBody::Quota => 0,
        })
        .sum();
    assert_eq!(
        w.relay.stored_bytes(),
        bytes,
        "memory and store agree on bytes"
    );
    for i in 0..w.queues.len() {
        assert!(
            stored(w, i).len() <= QUOTA + 1,
            "quota and one marker at most"
        );
    }
}

/// Checks a request's answer against the store before and after.
fn check_answer(
    w: &mut World,
    req: &Request,
    qi: Option<usize>,
    before: Option<Vec<smp_groups_relay::StoredMessage>>,
    responses: &[Response],
) {
    let Some(first) = responses.first() else {
        panic!("every request is answered")
    };
    assert_eq!(first.corr_id, req.corr_id);
    let (Some(i), Some(before)) = (qi, before) else {
        return;
    };
    let after = stored(w, i);
    match (&req.command, &first.reply) {
        (QueueCommand::Send { body, .. }, Reply::Ok) => {
            assert_eq!(after.len(), before.len() + 1, "SEND OK stores one message");
            match &after.last().expect("stored").body {
                MessageBody::Message { body: b, .. } => assert_eq!(b, body),
                MessageBody::Quota => panic!("SEND OK stored a quota marker"),
            }
        }
        (QueueCommand::Send { .. }, Reply::Err(_)) => {
            assert!(after.len() <= before.len() + 1);
            if after.len() == before.len() + 1 {
                assert!(matches!(
                    after.last().map(|m| &m.body),
                    Some(MessageBody::Quota)
                ));
            }
        }
        (QueueCommand::Ack(id), Reply::Ok | Reply::Msg { .. }) => {
            let acked_first = before
                .first()
                .is_some_and(|m| m.id.as_slice() == id.as_slice());
            let expect = if acked_first {
                before.len() - 1
            } else {
                before.len()
            };
            assert_eq!(
                after.len(),
                expect,
                "ACK removes the acknowledged first message only"
            );
        }
        (QueueCommand::Del, Reply::Ok) => assert!(after.is_empty()),
        _ => {}
    }
}

fn record_new(w: &mut World, responses: &[Response]) {
    let Some(first) = responses.first() else {
        return;
    };
    let dh = w.pending_dh.remove(&first.corr_id);
    if let Reply::Ids {
        recipient_id,
        sender_id,
        server_dh_key,
        ..
    } = &first.reply
    {
        if let Some(dh) = dh {
            w.queues.push(Q {
                rid: *recipient_id,
                sid: *sender_id,
                dh,
                srv: *server_dh_key,
            });
            w.delivered.push(None);
        }
    }
}

fuzz_target!(|input: Input| {
    let mut w = World::new();
    for op in input.ops.iter().take(200) {
        match op {
            Op::Disconnect { conn } => {
                let c = usize::from(*conn) % CONNS;
                w.relay.disconnect(w.conns[c].conn);
                w.conns[c] = session(&mut w.relay, w.conns[c].version);
            }
            Op::Raw { conn, bytes } => {
                let s = w.conn(*conn);
                let out = handle_batch(&mut w.relay, &s, bytes, 0);
                let all: Vec<_> = out
                    .responses
                    .iter()
                    .map(|r| (s.conn, r.clone()))
                    .chain(out.events.clone())
                    .collect();
                check_msgs(&mut w, &all, true);
            }
            Op::Fill { pages } => {
                // Sometimes the store is nearly full: batches fail and recover.
                let _ = w.relay.limit_store_pages(u32::from(*pages) + 8);
            }
            Op::Batch { ops } => {
                // As the server runs them: checked first, applied in one
                // transaction, deliveries made afterwards.
                let mut reqs = Vec::new();
                for o in ops.iter().take(16) {
                    if let Some(r) = w.make(o) {
                        reqs.push(r);
                    }
                }
                let index = w.relay.index();
                w.relay.begin_batch();
                let mut outs = Vec::new();
                for (s, req, _) in reqs {
                    match verify_request(&index, &s.auth, req) {
                        Ok(v) => outs.push((s.conn, w.relay.apply(s.conn, s.version, v, 0))),
                        Err(_) => {}
                    }
                }
                let failed = w.relay.end_batch().err();
                let mut seen = Vec::new();
                for (c, out) in &outs {
                    if failed.is_none() {
                        record_new(&mut w, &out.responses);
                        seen.extend(out.responses.iter().map(|r| (*c, r.clone())));
                    }
                }
                if failed.is_none() {
                    check_msgs(&mut w, &seen, false);
                }
                let mut deliveries: Vec<(ConnId, QueueId)> =
                    outs.into_iter().flat_map(|(_, o)| o.deliveries).collect();
                if let Some(f) = failed {
                    deliveries = f.redeliver;
                }
                for (c, rid) in deliveries {
                    if let Some(r) = w.relay.deliver(c, rid) {
                        check_msgs(&mut w, &[(c, r)], true);
                    }
                }
                w.relay.forget_fresh();
            }
            op => {
                let Some((s, req, qi)) = w.make(op) else {
                    continue;
                };
                let before = qi.map(|i| stored(&w, i));
                let out = w.relay.handle(&s, req.clone(), 0);
                record_new(&mut w, &out.responses);
                let failed = out
                    .responses
                    .first()
                    .is_some_and(|r| r.reply == Reply::Err(smp_groups_relay::ErrorCode::Internal));
                if !failed {
                    check_answer(&mut w, &req, qi, before, &out.responses);
                }
                let all: Vec<_> = out
                    .responses
                    .iter()
                    .map(|r| (s.conn, r.clone()))
                    .chain(out.events.clone())
                    .collect();
                check_msgs(&mut w, &all, true);
            }
        }
        check_totals(&w);
    }
});
