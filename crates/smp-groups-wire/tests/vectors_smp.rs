//! Known-answer vectors (testdata/smp-vectors.json) for the SMP surface: every
//! vector of the kinds below is encoded with the public API, compared byte for
//! byte, and decoded back.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly on purpose

use std::collections::BTreeMap;

use serde_json::Value;
use smp_groups_wire::smp::{
    self, AuthPublicKey, ClientHello, ClientMessage, ClientMsgEnvelope, Command, Host, KeyHash,
    MsgFlags, Port, PrivHeader, ProtocolServer, RecipientCommand, SenderCommand, SmpEncode,
    Transmission, TransmissionAuth, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{QueueReqData, SubscriptionMode};
use smp_groups_wire::{Decode, Encode, ShortBytes, decode_all, pad};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/smp-vectors.json"
));

/// How many vectors of each kind the file holds; a vector that is not run, or
/// a change to the file, fails the test.
const EXPECTED: &[(&str, usize)] = &[
    ("pad", 7),
    ("smp.transmission", 5),
    ("smp.transmission_for_auth", 2),
    ("smp.batch1", 2),
    ("smp.command", 6),
    ("smp.client_hello", 1),
    ("smp.protocol_server", 6),
    ("smp.client_msg_envelope", 2),
    ("smp.client_message", 2),
];

fn hex(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string")),
    )
    .unwrap()
}

fn opt_hex(v: &Value, field: &str) -> Option<Vec<u8>> {
    if v[field].is_null() {
        None
    } else {
        Some(hex(v, field))
    }
}

fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number"))
}

fn version(v: &Value, field: &str) -> Version {
    Version(u16::try_from(num(v, field)).unwrap())
}

/// Runs one vector: `Ok(out)` is compared with `expect.out` (or the kind's
/// own fields), `Err` must match `expect.error`.
fn run(kind: &str, input: &Value, expect: &Value) {
    let must_fail = expect["error"].as_bool() == Some(true);
    match kind {
        "pad" => {
            let msg = hex(input, "msg");
            let r = pad::pad(&msg, usize::try_from(num(input, "len")).unwrap());
            if must_fail {
                assert!(r.is_err(), "pad must fail");
                return;
            }
            let out = r.unwrap();
            assert_eq!(out, hex(expect, "out"));
            assert_eq!(pad::unpad(&out).unwrap(), &msg[..]);
        }
        "smp.transmission" => {
            let (c, e, cmd) = (
                hex(input, "corr_id"),
                hex(input, "entity_id"),
                hex(input, "command"),
            );
            let r = smp::encode_to_send(&c, &e, &cmd);
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let out = r.unwrap();
            assert_eq!(out, hex(expect, "out"));
            let mut sent = vec![0u8];
            sent.extend_from_slice(&out);
            let t =
                smp_groups_wire::decode_all_with::<Transmission, _>(&sent, Version(19)).unwrap();
            assert_eq!(
                (t.corr_id.as_slice(), t.entity_id.as_slice(), &t.command[..]),
                (&c[..], &e[..], &cmd[..])
            );
            assert_eq!(t.auth, TransmissionAuth::None);
            assert_eq!(t.smp_bytes(Version(19)).unwrap(), sent);
        }
        "smp.transmission_for_auth" => {
            let (sess, c, e, cmd) = (
                hex(input, "session_id"),
                hex(input, "corr_id"),
                hex(input, "entity_id"),
                hex(input, "command"),
            );
            let r = smp::encode_for_auth(&sess, &c, &e, &cmd);
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let for_auth = r.unwrap();
            assert_eq!(for_auth, hex(expect, "for_auth"));
            assert_eq!(
                smp::encode_to_send(&c, &e, &cmd).unwrap(),
                hex(expect, "to_send")
            );
            let mut sent = vec![0u8];
            sent.extend_from_slice(&hex(expect, "to_send"));
            let t =
                smp_groups_wire::decode_all_with::<Transmission, _>(&sent, Version(19)).unwrap();
            assert_eq!(t.for_auth(&sess).unwrap(), for_auth);
            // Before v7 the session id is sent, and the sent bytes are the authorized ones.
            let t6 = smp_groups_wire::decode_all_with::<Transmission, _>(
                &[&[0u8][..], &for_auth].concat(),
                Version(6),
            )
            .unwrap();
            assert_eq!(
                t6.session_id.as_ref().map(ShortBytes::as_slice),
                Some(&sess[..])
            );
            assert_eq!(t6.for_auth(&sess).unwrap(), for_auth);
        }
        "smp.batch1" => {
            let to_send = hex(input, "to_send");
            let auth = match opt_hex(input, "auth") {
                None => Ok(TransmissionAuth::None),
                Some(a) => TransmissionAuth::from_bytes(&a),
            };
            let r = auth
                .and_then(|a| smp::encode_batch1(Version(19), &a, None, &to_send).map(|o| (a, o)));
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let (auth, out) = r.unwrap();
            assert_eq!(out, hex(expect, "out"));
            let items = smp::decode_batch(&out).unwrap();
            assert_eq!(items.len(), 1);
            let (a, sig, rest) = smp::decode_auth(Version(19), items[0]).unwrap();
            assert_eq!((a, sig, rest), (auth, None, &to_send[..]));
        }
        "smp.command" => {
            let v = version(input, "version");
            let cmd = match command_of(input) {
                Ok(c) => c,
                Err(e) => {
                    assert!(must_fail, "building the command failed: {e}");
                    return;
                }
            };
            let r = cmd.smp_bytes(v);
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let out = r.unwrap();
            assert_eq!(out, hex(expect, "out"), "{cmd:?}");
            assert_eq!(
                smp_groups_wire::decode_all_with::<Command, _>(&out, v).unwrap(),
                cmd
            );
        }
        "smp.client_hello" => {
            let built = (|| {
                Ok::<_, smp_groups_wire::Error>(ClientHello {
                    version: version(input, "version"),
                    key_hash: KeyHash::new(hex(input, "key_hash"))?,
                    auth_key: opt_hex(input, "auth_pub_key")
                        .map(|d| X25519PublicKey::from_der(&d))
                        .transpose()?,
                    proxy_server: input["proxy_server"].as_bool().unwrap_or(false),
                    service: None,
                })
            })();
            let r = built.and_then(|h| h.encode().map(|o| (h, o)));
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let (hello, out) = r.unwrap();
            assert_eq!(out, hex(expect, "out"));
            assert_eq!(
                smp_groups_wire::decode_all::<ClientHello>(&out).unwrap(),
                hello
            );
            let block = smp::encode_handshake_block(&out).unwrap();
            assert_eq!(block.len(), 16384);
            assert_eq!(smp::decode_handshake_block(&block).unwrap(), &out[..]);
        }
        "smp.protocol_server" => {
            let hosts: Result<Vec<Host>, _> = input["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| Host::new(h.as_str().unwrap()))
                .collect();
            let r = hosts.and_then(|hosts| {
                let port = Port::parse(input["port"].as_str().unwrap().as_bytes())?;
                ProtocolServer::new(hosts, port, KeyHash::new(hex(input, "key_hash"))?)
            });
            if must_fail {
                assert!(r.is_err());
                return;
            }
            let srv = r.unwrap();
            let out = srv.to_bytes();
            assert_eq!(out, hex(expect, "out"));
            assert_eq!(decode_all::<ProtocolServer>(&out).unwrap(), srv.clone());
            assert_eq!(srv.to_string().parse::<ProtocolServer>().unwrap(), srv);
        }
        "smp.client_msg_envelope" => {
            let built = (|| {
                Ok::<_, smp_groups_wire::Error>(ClientMsgEnvelope {
                    client_version: version(input, "client_version"),
                    e2e_key: opt_hex(input, "e2e_pub_key")
                        .map(|d| X25519PublicKey::from_der(&d))
                        .transpose()?,
                    nonce: hex(input, "nonce")
                        .try_into()
                        .map_err(|_| smp_groups_wire::Error::invalid("nonce", "not 24 bytes"))?,
                    enc_body: hex(input, "enc_body"),
                })
            })();
            if must_fail {
                assert!(built.is_err());
                return;
            }
            let env = built.unwrap();
            let out = env.to_bytes();
            assert_eq!(out, hex(expect, "out"));
            assert_eq!(decode_all::<ClientMsgEnvelope>(&out).unwrap(), env);
        }
        "smp.client_message" => {
            let header = match input["priv_header"].as_str().unwrap() {
                "empty" => Ok(PrivHeader::Empty),
                "confirmation" => opt_hex(input, "auth_key")
                    .ok_or_else(|| smp_groups_wire::Error::invalid("auth key", "missing"))
                    .and_then(|d| AuthPublicKey::from_der(&d))
                    .map(PrivHeader::Confirmation),
                other => panic!("unknown priv_header {other}"),
            };
            if must_fail {
                assert!(header.is_err());
                return;
            }
            let msg = ClientMessage {
                header: header.unwrap(),
                body: hex(input, "body"),
            };
            let out = msg.to_bytes();
            assert_eq!(out, hex(expect, "out"));
            let mut r = smp_groups_wire::Reader::new(&out);
            assert_eq!(ClientMessage::decode(&mut r).unwrap(), msg);
        }
        other => panic!("no runner for {other}"),
    }
}

fn command_of(input: &Value) -> Result<Command, smp_groups_wire::Error> {
    let key = |f: &str| AuthPublicKey::from_der(&hex(input, f));
    Ok(match input["tag"].as_str().unwrap() {
        "NEW" => {
            let queue_req = match input["queue_mode"].as_str() {
                Some("messaging") => Some(QueueReqData::Messaging(None)),
                Some("contact") => Some(QueueReqData::Contact(None)),
                None => None,
                Some(other) => panic!("queue_mode {other}"),
            };
            assert!(
                input["link_data"].is_null() && input["ntf_creds"].is_null(),
                "unsupported NEW input"
            );
            Command::Recipient(RecipientCommand::New(Box::new(smp::NewQueue {
                rcv_auth_key: key("rcv_auth_key")?,
                rcv_dh_key: X25519PublicKey::from_der(&hex(input, "rcv_dh_key"))?,
                basic_auth: opt_hex(input, "basic_auth")
                    .map(smp::BasicAuth::new)
                    .transpose()?,
                subscribe_mode: if input["subscribe"].as_bool().unwrap() {
                    SubscriptionMode::Subscribe
                } else {
                    SubscriptionMode::OnlyCreate
                },
                queue_req,
                ntf_creds: None,
            })))
        }
        "KEY" => Command::Recipient(RecipientCommand::Key(key("key")?)),
        "SKEY" => Command::Sender(SenderCommand::SKey(key("key")?)),
        "ACK" => Command::Recipient(RecipientCommand::Ack(ShortBytes::new(hex(
            input, "msg_id",
        ))?)),
        "SEND" => Command::Sender(SenderCommand::Send {
            flags: MsgFlags {
                notification: input["notification"].as_bool().unwrap(),
            },
            body: hex(input, "body"),
        }),
        "SUB" => Command::Recipient(RecipientCommand::Sub),
        "GET" => Command::Recipient(RecipientCommand::Get),
        "OFF" => Command::Recipient(RecipientCommand::Off),
        "DEL" => Command::Recipient(RecipientCommand::Del),
        "PING" => Command::Ping,
        other => panic!("unknown command tag {other}"),
    })
}

#[test]
fn smp_vectors_reproduce_exactly() {
    let file: Value = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(file["format"], "smp-vectors/1");
    let expected: BTreeMap<&str, usize> = EXPECTED.iter().copied().collect();
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
    for v in file["vectors"].as_array().unwrap() {
        let kind = v["kind"].as_str().unwrap();
        if let Some((k, _)) = expected.get_key_value(kind) {
            run(kind, &v["input"], &v["expect"]);
            *ran.entry(k).or_default() += 1;
        }
    }
    assert_eq!(ran, expected);
}

#[test]
fn smp_command_vectors_decode_at_every_version_that_has_them() {
    // The ten fixed encodings of the file are the same from v17 on.
    let file: Value = serde_json::from_str(VECTORS).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        if v["kind"] != "smp.command" || v["expect"]["error"].as_bool() == Some(true) {
            continue;
        }
        let cmd = command_of(&v["input"]).unwrap();
        let out = hex(&v["expect"], "out");
        for ver in 17..=19 {
            assert_eq!(cmd.smp_bytes(Version(ver)).unwrap(), out);
            assert_eq!(
                smp_groups_wire::decode_all_with::<Command, _>(&out, Version(ver)).unwrap(),
                cmd
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}
