//! Property tests: `decode(encode(x)) == x` for every SMP type, at every
//! protocol version 6..=19 (values generated to fit the version).
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly on purpose

use proptest::collection::vec;
use proptest::prelude::*;
use smp_groups_wire::smp::ServerNtfCreds;
use smp_groups_wire::smp::{
    self, AuthPublicKey, ClientHello, ClientMessage, ClientMsgEnvelope, Command, Ed25519PublicKey,
    ErrorType, Host, KeyHash, MsgFlags, Port, PrivHeader, ProtocolServer, QueueIds, RcvMsgBody,
    RecipientCommand, SenderCommand, ServerHello, ServerMsg, SmpEncode, SmpQueueUri, Transmission,
    TransmissionAuth, Version, VersionRange, X25519PublicKey,
};
use smp_groups_wire::smp::{
    BasicAuth, NewNtfCreds, NewQueue, QueueLinkData, QueueMode, QueueReqData, SubscriptionMode,
};
use smp_groups_wire::smp::{
    BlockingInfo, BlockingReason, BrokerError, CommandError, HandshakeError, ProxyError,
    TransportError,
};
use smp_groups_wire::smp::{CertChainPubKey, ClientService, ServiceRole};
use smp_groups_wire::{Decode, Encode, LargeBytes, Reader, ShortBytes, decode_all};

fn versions() -> impl Strategy<Value = Version> {
    (6u16..=19).prop_map(Version)
}

fn short(max: usize) -> impl Strategy<Value = ShortBytes> {
    vec(any::<u8>(), 0..=max).prop_map(|b| ShortBytes::new(b).unwrap())
}

fn large(max: usize) -> impl Strategy<Value = LargeBytes> {
    vec(any::<u8>(), 0..=max).prop_map(|b| LargeBytes::new(b).unwrap())
}

fn x25519() -> impl Strategy<Value = X25519PublicKey> {
    any::<[u8; 32]>().prop_map(X25519PublicKey)
}

fn auth_key() -> impl Strategy<Value = AuthPublicKey> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|k| AuthPublicKey::Ed25519(Ed25519PublicKey(k))),
        x25519().prop_map(AuthPublicKey::X25519),
    ]
}

fn basic_auth() -> impl Strategy<Value = BasicAuth> {
    "[a-zA-Z0-9!#$%&*+.=?^_~-]{0,20}".prop_map(|s| BasicAuth::new(s).unwrap())
}

fn link_data() -> impl Strategy<Value = QueueLinkData> {
    (large(300), large(50)).prop_map(|(fixed, user)| QueueLinkData { fixed, user })
}

fn queue_req(v: Version) -> BoxedStrategy<Option<QueueReqData>> {
    if v < Version::SND_AUTH_KEY {
        Just(None).boxed()
    } else if v < Version::SHORT_LINKS {
        prop_oneof![
            Just(Some(QueueReqData::Messaging(None))),
            Just(Some(QueueReqData::Contact(None)))
        ]
        .boxed()
    } else {
        proptest::option::of(prop_oneof![
            proptest::option::of((short(24), link_data())).prop_map(QueueReqData::Messaging),
            proptest::option::of((short(24), short(24), link_data()))
                .prop_map(QueueReqData::Contact),
        ])
        .boxed()
    }
}

fn new_queue(v: Version) -> impl Strategy<Value = NewQueue> {
    let ntf = if v >= Version::NEW_NTF_CREDS {
        proptest::option::of(
            (auth_key(), x25519()).prop_map(|(auth_key, dh_key)| NewNtfCreds { auth_key, dh_key }),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        auth_key(),
        x25519(),
        proptest::option::of(basic_auth()),
        any::<bool>(),
        queue_req(v),
        ntf,
    )
        .prop_map(
            |(rcv_auth_key, rcv_dh_key, basic_auth, sub, queue_req, ntf_creds)| NewQueue {
                rcv_auth_key,
                rcv_dh_key,
                basic_auth,
                subscribe_mode: if sub {
                    SubscriptionMode::Subscribe
                } else {
                    SubscriptionMode::OnlyCreate
                },
                queue_req,
                ntf_creds,
            },
        )
}

fn command(v: Version) -> BoxedStrategy<Command> {
    let max = smp::limits::max_message_length(v);
    let mut options = vec![
        new_queue(v)
            .prop_map(|n| Command::Recipient(RecipientCommand::New(Box::new(n))))
            .boxed(),
        Just(Command::Recipient(RecipientCommand::Sub)).boxed(),
        auth_key()
            .prop_map(|k| Command::Recipient(RecipientCommand::Key(k)))
            .boxed(),
        Just(Command::Recipient(RecipientCommand::Get)).boxed(),
        short(24)
            .prop_map(|m| Command::Recipient(RecipientCommand::Ack(m)))
            .boxed(),
        Just(Command::Recipient(RecipientCommand::Off)).boxed(),
        Just(Command::Recipient(RecipientCommand::Del)).boxed(),
        (
            any::<bool>(),
            prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), max..=max)],
        )
            .prop_map(|(n, body)| {
                Command::Sender(SenderCommand::Send {
                    flags: MsgFlags { notification: n },
                    body,
                })
            })
            .boxed(),
        Just(Command::Ping).boxed(),
    ];
    if v >= Version::SND_AUTH_KEY {
        options.push(
            auth_key()
                .prop_map(|k| Command::Sender(SenderCommand::SKey(k)))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn transport_error() -> impl Strategy<Value = TransportError> {
    prop_oneof![
        Just(TransportError::Block),
        Just(TransportError::Version),
        Just(TransportError::LargeMsg),
        Just(TransportError::Session),
        Just(TransportError::NoAuth),
        prop_oneof![
            Just(HandshakeError::Parse),
            Just(HandshakeError::Identity),
            Just(HandshakeError::BadAuth),
            Just(HandshakeError::BadService)
        ]
        .prop_map(TransportError::Handshake),
    ]
}

fn error_type(v: Version) -> BoxedStrategy<ErrorType> {
    let cmd = prop_oneof![
        Just(CommandError::Unknown),
        Just(CommandError::Syntax),
        Just(CommandError::Prohibited),
        Just(CommandError::NoAuth),
        Just(CommandError::HasAuth),
        Just(CommandError::NoEntity),
    ];
    let mut leaves = vec![
        Just(ErrorType::Block).boxed(),
        Just(ErrorType::Session).boxed(),
        cmd.prop_map(ErrorType::Cmd).boxed(),
        Just(ErrorType::Auth).boxed(),
        Just(ErrorType::Service).boxed(),
        Just(ErrorType::Crypto).boxed(),
        Just(ErrorType::Quota).boxed(),
        "[ -~]{0,30}".prop_map(ErrorType::Store).boxed(),
        Just(ErrorType::NoMsg).boxed(),
        Just(ErrorType::LargeMsg).boxed(),
        Just(ErrorType::Expired).boxed(),
        Just(ErrorType::Internal).boxed(),
        Just(ErrorType::Duplicate).boxed(),
    ];
    if v >= Version::BLOCKED_ENTITY {
        let notice = if v >= Version::CLIENT_NOTICES {
            proptest::option::of(Just(r#"{"ttl":3600}"#.to_string())).boxed()
        } else {
            Just(None).boxed()
        };
        leaves.push(
            (any::<bool>(), notice)
                .prop_map(|(spam, notice)| {
                    ErrorType::Blocked(BlockingInfo {
                        reason: if spam {
                            BlockingReason::Spam
                        } else {
                            BlockingReason::Content
                        },
                        notice,
                    })
                })
                .boxed(),
        );
    }
    let leaf = proptest::strategy::Union::new(leaves);
    leaf.prop_recursive(2, 8, 1, |inner| {
        let broker = prop_oneof![
            short(30).prop_map(BrokerError::Response),
            short(30).prop_map(BrokerError::Unexpected),
            transport_error().prop_map(BrokerError::Transport),
            Just(BrokerError::Network),
            Just(BrokerError::Timeout),
            Just(BrokerError::Host),
            Just(BrokerError::NoService),
        ];
        prop_oneof![
            inner.prop_map(|e| ErrorType::Proxy(Box::new(ProxyError::Protocol(e)))),
            broker.prop_map(|b| ErrorType::Proxy(Box::new(ProxyError::Broker(b)))),
            Just(ErrorType::Proxy(Box::new(ProxyError::BasicAuth))),
            Just(ErrorType::Proxy(Box::new(ProxyError::NoSession))),
        ]
    })
    .boxed()
}

fn queue_ids(v: Version) -> impl Strategy<Value = QueueIds> {
    let mode = if v < Version::SND_AUTH_KEY {
        Just(None).boxed()
    } else if v < Version::SHORT_LINKS {
        prop_oneof![
            Just(Some(QueueMode::Messaging)),
            Just(Some(QueueMode::Contact))
        ]
        .boxed()
    } else {
        proptest::option::of(prop_oneof![
            Just(QueueMode::Messaging),
            Just(QueueMode::Contact)
        ])
        .boxed()
    };
    let gated_short = |min: Version| {
        if v >= min {
            proptest::option::of(short(24)).boxed()
        } else {
            Just(None).boxed()
        }
    };
    let ntf = if v >= Version::NEW_NTF_CREDS {
        proptest::option::of((short(24), x25519()).prop_map(|(notifier_id, dh_key)| {
            ServerNtfCreds {
                notifier_id,
                dh_key,
            }
        }))
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        short(24),
        short(24),
        x25519(),
        mode,
        gated_short(Version::SHORT_LINKS),
        gated_short(Version::SERVICE_CERTS),
        ntf,
    )
        .prop_map(
            |(rcv_id, snd_id, srv_dh_key, queue_mode, link_id, service_id, ntf_creds)| QueueIds {
                rcv_id,
                snd_id,
                srv_dh_key,
                queue_mode,
                link_id,
                service_id,
                ntf_creds,
            },
        )
}

fn server_msg(v: Version) -> BoxedStrategy<ServerMsg> {
    let mut options = vec![
        queue_ids(v).prop_map(ServerMsg::Ids).boxed(),
        (short(24), vec(any::<u8>(), 0..100))
            .prop_map(|(msg_id, body)| ServerMsg::Msg { msg_id, body })
            .boxed(),
        Just(ServerMsg::End).boxed(),
        Just(ServerMsg::Ok).boxed(),
        error_type(v).prop_map(ServerMsg::Err).boxed(),
        Just(ServerMsg::Pong).boxed(),
    ];
    if v >= Version::DELETED_EVENT {
        options.push(Just(ServerMsg::Deld).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn tauth() -> impl Strategy<Value = TransmissionAuth> {
    prop_oneof![
        Just(TransmissionAuth::None),
        any::<[u8; 64]>().prop_map(TransmissionAuth::Signature),
        vec(any::<u8>(), 80).prop_map(|b| TransmissionAuth::Authenticator(b.try_into().unwrap())),
    ]
}

fn transmission(v: Version) -> impl Strategy<Value = Transmission> {
    let sess = if v < Version::AUTH_CMDS {
        short(32).prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    (
        tauth(),
        proptest::option::of(any::<[u8; 64]>()),
        sess,
        short(24),
        short(24),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(
            move |(auth, sig, session_id, corr_id, entity_id, command)| {
                let service_sig = if v >= Version::SERVICE_CERTS && !auth.is_none() {
                    sig
                } else {
                    None
                };
                Transmission {
                    auth,
                    service_sig,
                    session_id,
                    corr_id,
                    entity_id,
                    command,
                }
            },
        )
}

fn der_seq(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let n = body.len();
    if n < 0x80 {
        out.push(u8::try_from(n).unwrap());
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, u8::try_from(n).unwrap()]);
    } else {
        out.extend_from_slice(&[
            0x82,
            u8::try_from(n >> 8).unwrap(),
            u8::try_from(n & 0xff).unwrap(),
        ]);
    }
    out.extend_from_slice(body);
    out
}

fn cert_key() -> impl Strategy<Value = CertChainPubKey> {
    (
        vec(vec(any::<u8>(), 0..300), 1..4),
        x25519(),
        any::<[u8; 64]>(),
    )
        .prop_map(|(certs, key, sig)| {
            let certs = certs
                .into_iter()
                .map(|c| LargeBytes::new(der_seq(&c)).unwrap())
                .collect();
            let signed = smp::build_ed25519_signed(&key.to_der(), &sig);
            CertChainPubKey::new(certs, LargeBytes::new(signed).unwrap()).unwrap()
        })
}

fn host() -> impl Strategy<Value = Host> {
    "[a-z0-9][a-z0-9.-]{0,30}".prop_map(|h| Host::new(h).unwrap())
}

fn server() -> impl Strategy<Value = ProtocolServer> {
    (
        vec(host(), 1..4),
        proptest::option::of(any::<u16>()),
        any::<[u8; 32]>(),
    )
        .prop_map(|(hosts, port, kh)| {
            ProtocolServer::new(
                hosts,
                port.map_or_else(Port::default_port, Port::new),
                KeyHash::from(kh),
            )
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn command_round_trip((v, cmd) in versions().prop_flat_map(|v| (Just(v), command(v)))) {
        let bytes = cmd.smp_bytes(v).unwrap();
        prop_assert_eq!(smp_groups_wire::decode_all_with::<Command, _>(&bytes, v).unwrap(), cmd);
    }

    #[test]
    fn server_msg_round_trip((v, msg) in versions().prop_flat_map(|v| (Just(v), server_msg(v)))) {
        let bytes = msg.smp_bytes(v).unwrap();
        prop_assert_eq!(smp_groups_wire::decode_all_with::<ServerMsg, _>(&bytes, v).unwrap(), msg);
    }

    #[test]
    fn transmission_round_trip((v, t) in versions().prop_flat_map(|v| (Just(v), transmission(v)))) {
        let bytes = t.smp_bytes(v).unwrap();
        prop_assert_eq!(smp_groups_wire::decode_all_with::<Transmission, _>(&bytes, v).unwrap(), t);
    }

    #[test]
    fn transmission_carrying_typed_command((v, cmd, corr) in versions().prop_flat_map(|v| (Just(v), command(v), short(24)))) {
        let t = Transmission {
            auth: TransmissionAuth::Signature([1; 64]),
            service_sig: None,
            session_id: (v < Version::AUTH_CMDS).then(|| ShortBytes::new(vec![7; 32]).unwrap()),
            corr_id: corr,
            entity_id: ShortBytes::new(vec![2; 24]).unwrap(),
            command: cmd.smp_bytes(v).unwrap(),
        };
        let back = smp_groups_wire::decode_all_with::<Transmission, _>(&t.smp_bytes(v).unwrap(), v).unwrap();
        prop_assert_eq!(smp_groups_wire::decode_all_with::<Command, _>(&back.command, v).unwrap(), cmd);
        prop_assert_eq!(back, t);
    }

    #[test]
    fn batch_round_trip(items in vec(vec(any::<u8>(), 0..300), 1..=255)) {
        let b = smp::encode_batch(&items).unwrap();
        let back: Vec<Vec<u8>> = smp::decode_batch(&b).unwrap().into_iter().map(<[u8]>::to_vec).collect();
        prop_assert_eq!(back, items);
    }

    #[test]
    fn packed_batches_fit_blocks_and_keep_order(sizes in vec(0usize..6000, 1..600)) {
        let items: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![u8::try_from(i % 251).unwrap(); n]).collect();
        let batches = smp::pack_batches(&items, smp::limits::BLOCK_SIZE).unwrap();
        let mut all = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            prop_assert!(b.len() <= smp::limits::BLOCK_SIZE - 18);
            let got = smp::decode_batch(b).unwrap();
            prop_assert!(got.len() <= 255);
            // each batch but the last was full: the next transmission would not fit
            if let Some(next) = batches.get(i + 1) {
                let first_next = smp::decode_batch(next).unwrap()[0].len() + 2;
                prop_assert!(got.len() == 255 || b.len() - 1 + first_next > smp::limits::BLOCK_SIZE - 19);
            }
            all.extend(got.into_iter().map(<[u8]>::to_vec));
        }
        prop_assert_eq!(all, items);
    }

    #[test]
    fn client_hello_round_trip(
        v in versions(), kh in any::<[u8; 32]>(), key in proptest::option::of(x25519()),
        proxy in any::<bool>(), service in proptest::option::of((0u8..3, cert_key())),
        trailing in vec(any::<u8>(), 0..8),
    ) {
        let hello = ClientHello {
            version: v,
            key_hash: KeyHash::from(kh),
            auth_key: if v >= Version::AUTH_CMDS { key } else { None },
            proxy_server: proxy && v >= Version::PROXY_SERVER_HANDSHAKE,
            service: service.filter(|_| v >= Version::SERVICE_CERTS).map(|(r, cert_key)| ClientService {
                role: [ServiceRole::Messaging, ServiceRole::Notifier, ServiceRole::Proxy][usize::from(r)],
                cert_key,
            }),
        };
        let mut bytes = hello.encode().unwrap();
        if v >= Version::PROXY_SERVER_HANDSHAKE {
            bytes.extend_from_slice(&trailing); // extensions are ignored
        }
        prop_assert_eq!(smp_groups_wire::decode_all::<ClientHello>(&bytes).unwrap(), hello);
    }

    #[test]
    fn server_hello_round_trip(min in 6u16..=19, span in 0u16..4, sess in short(32), auth in proptest::option::of(cert_key())) {
        let versions = VersionRange::new(Version(min), Version(min + span)).unwrap();
        let hello = ServerHello { versions, session_id: sess, auth: if versions.max() >= Version::AUTH_CMDS { auth } else { None } };
        let block = smp::encode_handshake_block(&hello.encode().unwrap()).unwrap();
        let body = smp::decode_handshake_block(&block).unwrap();
        prop_assert_eq!(smp_groups_wire::decode_all::<ServerHello>(body).unwrap(), hello);
    }

    #[test]
    fn protocol_server_round_trip(srv in server()) {
        prop_assert_eq!(decode_all::<ProtocolServer>(&srv.to_bytes()).unwrap(), srv.clone());
        prop_assert_eq!(srv.to_string().parse::<ProtocolServer>().unwrap(), srv);
    }

    #[test]
    fn queue_uri_round_trip(
        srv in server(), min in 1u16..=4, sender in vec(any::<u8>(), 1..40), dh in x25519(),
        mode in proptest::option::of(prop_oneof![Just(QueueMode::Messaging), Just(QueueMode::Contact)]),
    ) {
        let uri = SmpQueueUri {
            client_versions: VersionRange::new(Version(min), Version(4)).unwrap(),
            server: srv,
            sender_id: ShortBytes::new(sender).unwrap(),
            dh_key: dh,
            queue_mode: mode,
        };
        prop_assert_eq!(uri.to_string().parse::<SmpQueueUri>().unwrap(), uri);
    }

    #[test]
    fn client_msg_envelope_round_trip(cv in any::<u16>(), key in proptest::option::of(x25519()), nonce in any::<[u8; 24]>(), body in vec(any::<u8>(), 0..500)) {
        let env = ClientMsgEnvelope { client_version: Version(cv), e2e_key: key, nonce, enc_body: body };
        prop_assert_eq!(decode_all::<ClientMsgEnvelope>(&env.to_bytes()).unwrap(), env);
    }

    #[test]
    fn client_message_round_trip(key in proptest::option::of(auth_key()), body in vec(any::<u8>(), 0..500)) {
        let msg = ClientMessage { header: key.map_or(PrivHeader::Empty, PrivHeader::Confirmation), body };
        let bytes = msg.to_bytes();
        prop_assert_eq!(ClientMessage::decode(&mut Reader::new(&bytes)).unwrap(), msg);
    }

    #[test]
    fn rcv_msg_body_round_trip(ts in any::<i64>(), n in any::<bool>(), quota in any::<bool>(), body in vec(any::<u8>(), 0..300)) {
        let m = if quota { RcvMsgBody::Quota { timestamp: ts } } else { RcvMsgBody::Message { timestamp: ts, flags: MsgFlags { notification: n }, body } };
        prop_assert_eq!(smp_groups_wire::decode_all::<RcvMsgBody>(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn version_range_round_trip(a in any::<u16>(), b in any::<u16>()) {
        let r = VersionRange::new(Version(a.min(b)), Version(a.max(b))).unwrap();
        prop_assert_eq!(decode_all::<VersionRange>(&r.to_bytes()).unwrap(), r);
        prop_assert_eq!(r.to_string().parse::<VersionRange>().unwrap(), r);
    }

    #[test]
    fn key_hash_text_round_trip(kh in any::<[u8; 32]>()) {
        let k = KeyHash::from(kh);
        prop_assert_eq!(k.to_string().parse::<KeyHash>().unwrap(), k.clone());
        prop_assert_eq!(decode_all::<KeyHash>(&k.to_bytes()).unwrap(), k);
    }
}
