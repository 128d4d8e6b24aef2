//! The relay over SMP bytes: transmissions in, transmissions out, at several
//! protocol versions, and malformed input answered as the reference relay does.

#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)] // tests fail by panicking

mod common;

use common::SESSION_ID;
use smp_groups_crypto::{ed25519, nacl, rng, x25519};
use smp_groups_relay::Outcome;
use smp_groups_relay::SessionAuth;
use smp_groups_relay::handle_batch;
use smp_groups_relay::{QueueStore, RelayConfig, RelayState, Session};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    self as wsmp, AuthPublicKey, CommandError, Ed25519PublicKey, ErrorType, MsgFlags,
    RecipientCommand, SenderCommand, ServerMsg, SmpEncode, Transmission, TransmissionAuth, Version,
    X25519PublicKey,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};

struct Client {
    v: Version,
    session: Session,
}

fn relay() -> RelayState {
    RelayState::open(
        QueueStore::in_memory().unwrap(),
        RelayConfig::default(),
        Box::new(rng::seeded(9)),
    )
    .unwrap()
}

impl Client {
    fn new(relay: &mut RelayState, v: u16) -> Self {
        Self {
            v: Version(v),
            session: Session {
                conn: relay.connect(),
                version: v,
                session_id: SESSION_ID.to_vec(),
                auth: SessionAuth { server_key: None },
            },
        }
    }

    /// One encoded transmission of `cmd` (raw command bytes), signed with `key`.
    fn raw(
        &self,
        key: Option<&ed25519::SigningKey>,
        corr: &[u8],
        entity: &[u8],
        cmd: &[u8],
    ) -> Vec<u8> {
        let for_auth = wsmp::encode_for_auth(&SESSION_ID, corr, entity, cmd).unwrap();
        let auth = match key {
            Some(k) => TransmissionAuth::Signature(k.sign(&for_auth).to_bytes()),
            None => TransmissionAuth::None,
        };
        let t = Transmission {
            auth,
            service_sig: None,
            session_id: (self.v < Version::AUTH_CMDS)
                .then(|| ShortBytes::new(SESSION_ID.to_vec()).unwrap()),
            corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
            entity_id: ShortBytes::new(entity.to_vec()).unwrap(),
            command: cmd.to_vec(),
        };
        let mut out = Vec::new();
        t.smp_encode(self.v, &mut out).unwrap();
        out
    }

    fn cmd(
        &self,
        key: Option<&ed25519::SigningKey>,
        corr: u8,
        entity: &[u8],
        cmd: &wsmp::Command,
    ) -> Vec<u8> {
        let mut c = Vec::new();
        cmd.smp_encode(self.v, &mut c).unwrap();
        self.raw(key, &[corr; 24], entity, &c)
    }

    fn send(&self, relay: &mut RelayState, ts: &[Vec<u8>]) -> Outcome {
        let batch = wsmp::encode_batch(ts).unwrap();
        handle_batch(relay, &self.session, &batch, 1000)
    }

    /// Encoded responses, decoded back: (corrId, entityId, command bytes).
    fn decode(&self, out: &Outcome) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        out.responses
            .iter()
            .map(|r| {
                let bytes = smp_groups_relay::encode_response(self.v, &SESSION_ID, r).unwrap();
                let t =
                    smp_groups_wire::decode_all_with::<Transmission, _>(&bytes, self.v).unwrap();
                assert!(t.auth.is_none());
                (t.corr_id.into_vec(), t.entity_id.into_vec(), t.command)
            })
            .collect()
    }
}

fn server_msg(v: Version, bytes: &[u8]) -> ServerMsg {
    smp_groups_wire::decode_all_with::<ServerMsg, _>(bytes, v).unwrap()
}

fn new_cmd(k: &ed25519::SigningKey, dh: &x25519::SecretKey, v: Version) -> wsmp::Command {
    wsmp::Command::Recipient(RecipientCommand::New(Box::new(NewQueue {
        rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(*k.public_key().as_bytes())),
        rcv_dh_key: X25519PublicKey(*dh.public_key().as_bytes()),
        basic_auth: None,
        subscribe_mode: SubscriptionMode::OnlyCreate,
        queue_req: (v >= Version::SND_AUTH_KEY).then_some(QueueReqData::Messaging(None)),
        ntf_creds: None,
    })))
}

/// Creates a queue over bytes; returns (recipient id, sender id, server DH key).
fn create(
    relay: &mut RelayState,
    c: &Client,
    k: &ed25519::SigningKey,
    dh: &x25519::SecretKey,
) -> (Vec<u8>, Vec<u8>, x25519::PublicKey) {
    let out = c.send(relay, &[c.cmd(Some(k), 1, &[], &new_cmd(k, dh, c.v))]);
    let r = c.decode(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, vec![1; 24]);
    assert!(r[0].1.is_empty());
    match server_msg(c.v, &r[0].2) {
        ServerMsg::Ids(ids) => {
            if c.v >= Version::SND_AUTH_KEY {
                assert_eq!(ids.queue_mode, Some(wsmp::QueueMode::Messaging));
            }
            (
                ids.rcv_id.into_vec(),
                ids.snd_id.into_vec(),
                x25519::PublicKey::from_bytes(ids.srv_dh_key.0),
            )
        }
        other => panic!("expected IDS, got {other:?}"),
    }
}

fn send_cmd(body: &[u8]) -> wsmp::Command {
    wsmp::Command::Sender(SenderCommand::Send {
        flags: MsgFlags {
            notification: false,
        },
        body: body.to_vec(),
    })
}

#[test]
fn lifecycle_over_bytes_at_each_version() {
    for v in [6u16, 7, 9, 10, 11, 15, 16, 17, 18] {
        let mut relay = relay();
        let c = Client::new(&mut relay, v);
        let mut r = rng::seeded(u64::from(v));
        let k = ed25519::SigningKey::generate(&mut r);
        let dh = x25519::SecretKey::generate(&mut r);
        let (rid, sid, srv_dh) = create(&mut relay, &c, &k, &dh);
        // SEND and SUB in one batch: OK, then OK/SOK and the MSG.
        let sub = wsmp::Command::Recipient(RecipientCommand::Sub);
        let out = c.send(
            &mut relay,
            &[
                c.cmd(None, 2, &sid, &send_cmd(b"over the wire")),
                c.cmd(Some(&k), 3, &rid, &sub),
            ],
        );
        let rs = c.decode(&out);
        assert_eq!(rs.len(), 3, "v{v}");
        assert_eq!(server_msg(c.v, &rs[0].2), ServerMsg::Ok);
        if v >= 16 {
            assert_eq!(rs[1].2, b"SOK 0", "v{v}");
        } else {
            assert_eq!(server_msg(c.v, &rs[1].2), ServerMsg::Ok);
        }
        assert_eq!(
            (rs[2].0.as_slice(), rs[2].1.as_slice()),
            (&[][..], rid.as_slice())
        );
        let ServerMsg::Msg { msg_id, body } = server_msg(c.v, &rs[2].2) else {
            panic!("v{v}: {:?}", rs[2])
        };
        let secret = dh.diffie_hellman(&srv_dh);
        let plain = nacl::cb_decrypt(
            secret.as_bytes(),
            msg_id.as_slice().try_into().unwrap(),
            &body,
        )
        .unwrap();
        assert_eq!(&plain[..8], &1000i64.to_be_bytes());
        assert_eq!(&plain[8..], b"F over the wire");
        let ack = wsmp::Command::Recipient(RecipientCommand::Ack(msg_id));
        let rs = c.decode(&c.send(&mut relay, &[c.cmd(Some(&k), 4, &rid, &ack)]));
        assert_eq!(server_msg(c.v, &rs[0].2), ServerMsg::Ok);
        // DEL from a second connection: the subscriber gets DELD (END before v10).
        let c2 = Client::new(&mut relay, v);
        let del = wsmp::Command::Recipient(RecipientCommand::Del);
        let out = c2.send(&mut relay, &[c2.cmd(Some(&k), 5, &rid, &del)]);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].0, c.session.conn);
        let ev = smp_groups_relay::encode_response(c.v, &SESSION_ID, &out.events[0].1).unwrap();
        let ev = smp_groups_wire::decode_all_with::<Transmission, _>(&ev, c.v).unwrap();
        let expected = if v >= 10 {
            ServerMsg::Deld
        } else {
            ServerMsg::End
        };
        assert_eq!(server_msg(c.v, &ev.command), expected, "v{v}");
        let ping = c.raw(None, &[6; 24], &[], b"PING");
        let rs = c.decode(&c.send(&mut relay, &[ping]));
        assert_eq!(server_msg(c.v, &rs[0].2), ServerMsg::Pong);
    }
}

fn expect_err(c: &Client, out: &Outcome, corr: &[u8], entity: &[u8], e: &ErrorType) {
    let rs = c.decode(out);
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].0, corr, "corrId");
    assert_eq!(rs[0].1, entity, "entityId");
    assert_eq!(server_msg(c.v, &rs[0].2), ServerMsg::Err(e.clone()));
}

#[test]
fn malformed_input_is_answered_like_the_reference() {
    let mut relay = relay();
    let c = Client::new(&mut relay, 11);
    let mut r = rng::seeded(1);
    let k = ed25519::SigningKey::generate(&mut r);
    let dh = x25519::SecretKey::generate(&mut r);
    let (rid, sid, _) = create(&mut relay, &c, &k, &dh);
    let corr = [3u8; 24];
    let cmd = |e| ErrorType::Cmd(e);

    // A batch that does not parse: one ERR BLOCK without ids.
    let out = handle_batch(&mut relay, &c.session, &[2, 0, 5, 1], 0);
    expect_err(&c, &out, &[], &[], &ErrorType::Block);
    let out = handle_batch(&mut relay, &c.session, &[0], 0);
    expect_err(&c, &out, &[], &[], &ErrorType::Block);
    // A transmission that ends inside its corrId.
    let out = c.send(&mut relay, &[vec![0, 24, 1, 2]]);
    expect_err(&c, &out, &[], &[], &ErrorType::Block);
    // An authorization of a length that is neither 64 nor 80: BLOCK with the corrId.
    let mut t = vec![10];
    t.extend_from_slice(&[0; 10]);
    t.push(24);
    t.extend_from_slice(&corr);
    t.push(24);
    t.extend_from_slice(&rid);
    t.extend_from_slice(b"SUB");
    expect_err(&c, &c.send(&mut relay, &[t]), &corr, &[], &ErrorType::Block);
    // Unknown command: CMD UNKNOWN, with corrId and entityId.
    let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &rid, b"FOO bar")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::Unknown));
    // A relay message sent by a client is not a command.
    let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &rid, b"OK")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::Unknown));
    // Known commands with bad fields: CMD SYNTAX.
    for bad in [
        &b"SEND"[..],
        b"SEND X hi",
        b"SEND T",
        b"ACK",
        b"ACK \x05ab",
        b"SUB extra",
        b"KEY \x01a",
        b"NEW \x00",
    ] {
        let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &sid, bad)]);
        expect_err(&c, &out, &corr, &sid, &cmd(CommandError::Syntax));
    }
    // Credentials: NEW without signature, PING with an entity, SUB without signature.
    let new = {
        let mut b = Vec::new();
        new_cmd(&k, &dh, c.v).smp_encode(c.v, &mut b).unwrap();
        b
    };
    let out = c.send(&mut relay, &[c.raw(None, &corr, &[], &new)]);
    expect_err(&c, &out, &corr, &[], &cmd(CommandError::NoAuth));
    let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &rid, &new)]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::HasAuth));
    let out = c.send(&mut relay, &[c.raw(None, &corr, &rid, b"PING")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::HasAuth));
    let out = c.send(&mut relay, &[c.raw(None, &corr, &rid, b"SUB")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::NoAuth));
    let out = c.send(&mut relay, &[c.raw(None, &corr, &[], b"SEND F hi")]);
    expect_err(&c, &out, &corr, &[], &cmd(CommandError::NoEntity));
    // A signature by the wrong key, and one over other bytes.
    let out = c.send(
        &mut relay,
        &[c.raw(
            Some(&ed25519::SigningKey::generate(&mut r)),
            &corr,
            &rid,
            b"SUB",
        )],
    );
    expect_err(&c, &out, &corr, &rid, &ErrorType::Auth);
    // A tag that only starts like a known one is unknown.
    let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &rid, b"GETX")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::Unknown));
    let mut t = c.raw(Some(&k), &corr, &rid, b"GET");
    t[5] ^= 0x40; // inside the signature
    expect_err(&c, &c.send(&mut relay, &[t]), &corr, &rid, &ErrorType::Auth);
    // A body over the v11 limit is LARGE_MSG, not a syntax error.
    let mut big = b"SEND F ".to_vec();
    big.extend_from_slice(&[b'x'; 16049]);
    let out = c.send(&mut relay, &[c.raw(None, &corr, &sid, &big)]);
    expect_err(&c, &out, &corr, &sid, &ErrorType::LargeMsg);
    // Commands of the protocol this relay does not serve.
    let out = c.send(&mut relay, &[c.raw(Some(&k), &corr, &rid, b"QUE")]);
    expect_err(&c, &out, &corr, &rid, &cmd(CommandError::Prohibited));
    // The good transmission in a batch with bad ones is still served.
    let ok = c.raw(Some(&k), &[9; 24], &rid, b"GET");
    let out = c.send(&mut relay, &[c.raw(None, &corr, &rid, b"FOO"), ok]);
    let rs = c.decode(&out);
    assert_eq!(rs.len(), 2);
    assert_eq!(server_msg(c.v, &rs[1].2), ServerMsg::Ok);
}

#[test]
fn wrong_session_id_before_v7() {
    let mut relay = relay();
    let c = Client::new(&mut relay, 6);
    let mut t = vec![0, 32];
    t.extend_from_slice(&[8; 32]); // not SESSION_ID
    t.push(24);
    t.extend_from_slice(&[4; 24]);
    t.push(0);
    t.extend_from_slice(b"PING");
    let out = c.send(&mut relay, &[t]);
    expect_err(&c, &out, &[4; 24], &[], &ErrorType::Session);
    let ok = c.raw(None, &[5; 24], &[], b"PING");
    let rs = c.decode(&c.send(&mut relay, &[ok]));
    assert_eq!(server_msg(c.v, &rs[0].2), ServerMsg::Pong);
}
