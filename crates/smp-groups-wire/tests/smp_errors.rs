//! Bad input: arbitrary bytes never panic and give typed errors; the exact
//! error is pinned for truncation, over-long fields, unknown tags, trailing
//! bytes, bad base64 and version-gated fields at the wrong version.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly on purpose

use proptest::prelude::*;
use smp_groups_wire::smp::BlockingInfo;
use smp_groups_wire::smp::BlockingReason;
use smp_groups_wire::smp::{
    self, AuthPublicKey, ClientHello, ClientMessage, ClientMsgEnvelope, Command, ErrorType,
    KeyHash, MsgFlags, ProtocolServer, RcvMsgBody, RecipientCommand, SenderCommand, ServerHello,
    ServerMsg, SmpEncode, SmpQueueUri, Transmission, TransmissionAuth, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{NewNtfCreds, NewQueue, QueueReqData, SubscriptionMode};
use smp_groups_wire::{Decode, Encode, Error, ShortBytes, decode_all};

const V: Version = Version(19);

fn x_key() -> X25519PublicKey {
    X25519PublicKey([1; 32])
}

fn new_queue() -> NewQueue {
    NewQueue {
        rcv_auth_key: AuthPublicKey::X25519(x_key()),
        rcv_dh_key: x_key(),
        basic_auth: None,
        subscribe_mode: SubscriptionMode::Subscribe,
        queue_req: Some(QueueReqData::Messaging(None)),
        ntf_creds: None,
    }
}

#[test]
fn truncated_input_names_the_field() {
    // ACK whose msgId says 24 bytes but has 3
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"ACK \x18abc", V),
        Err(Error::Truncated {
            what: "short string",
            needed: 24,
            available: 3
        })
    );
    // a transmission that ends inside the corrId
    assert_eq!(
        smp_groups_wire::decode_all_with::<Transmission, _>(&[0, 24, 1, 2], V),
        Err(Error::Truncated {
            what: "short string",
            needed: 24,
            available: 2
        })
    );
    // a batch that promises 2 transmissions and has 1
    assert_eq!(
        smp::decode_batch(&[2, 0, 1, b'x']),
        Err(Error::Truncated {
            what: "transmission",
            needed: 2,
            available: 0
        })
    );
    // a key that ends early
    let mut key = x_key().to_bytes();
    key.truncate(20);
    assert_eq!(
        decode_all::<X25519PublicKey>(&key),
        Err(Error::Truncated {
            what: "X25519 public key",
            needed: 44,
            available: 19
        })
    );
    // a client message envelope without a full nonce
    assert_eq!(
        decode_all::<ClientMsgEnvelope>(&[0, 4, b'0', 1, 2, 3]),
        Err(Error::Truncated {
            what: "nonce",
            needed: 24,
            available: 3
        })
    );
}

#[test]
fn lengths_beyond_the_declared_maximum() {
    let body = vec![0u8; smp::limits::MAX_MESSAGE_LENGTH + 1];
    let send = Command::Sender(SenderCommand::Send {
        flags: MsgFlags::default(),
        body: body.clone(),
    });
    assert_eq!(
        send.smp_bytes(V),
        Err(Error::TooLong {
            what: "SEND body",
            len: 16049,
            max: 16048
        })
    );
    // the same body is allowed before v11 (16064 at v8-10)
    assert!(send.smp_bytes(Version(10)).is_ok());
    let mut wire = b"SEND F ".to_vec();
    wire.extend_from_slice(&body);
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(&wire, V),
        Err(Error::TooLong {
            what: "SEND body",
            len: 16049,
            max: 16048
        })
    );
    // 256 transmissions do not fit a batch count
    let items = vec![vec![0u8; 1]; 256];
    assert_eq!(
        smp::encode_batch(&items),
        Err(Error::TooLong {
            what: "batch",
            len: 256,
            max: 255
        })
    );
    // a transmission larger than a block
    let huge = vec![vec![0u8; 16384]];
    assert_eq!(
        smp::pack_batches(&huge, 16384),
        Err(Error::TooLong {
            what: "transmission in a block",
            len: 16386,
            max: 16365
        })
    );
    // a corrId longer than a short string
    assert_eq!(
        smp::encode_to_send(&[0; 256], b"", b"PING"),
        Err(Error::TooLong {
            what: "corrId",
            len: 256,
            max: 255
        })
    );
    // more hosts than allowed
    let mut bin = vec![17u8];
    for _ in 0..17 {
        bin.extend_from_slice(b"\x01h");
    }
    assert_eq!(
        decode_all::<ProtocolServer>(&bin),
        Err(Error::TooLong {
            what: "hosts",
            len: 17,
            max: 16
        })
    );
    // a queue URI longer than the maximum
    let long = format!("smp://{}", "a".repeat(5000));
    assert_eq!(
        long.parse::<SmpQueueUri>(),
        Err(Error::TooLong {
            what: "queue URI",
            len: 5006,
            max: 4096
        })
    );
    // nested PROXY errors are bounded
    let nested = format!("ERR {}AUTH", "PROXY PROTOCOL ".repeat(5));
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(nested.as_bytes(), V),
        Err(Error::TooLong {
            what: "PROXY error nesting",
            len: 5,
            max: 4
        })
    );
    assert!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(
            format!("ERR {}AUTH", "PROXY PROTOCOL ".repeat(4)).as_bytes(),
            V
        )
        .is_ok()
    );
}

#[test]
fn unknown_tags() {
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"HELO", V),
        Err(Error::UnknownTag {
            what: "SMP command",
            tag: "HELO".into()
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"NOPE x", V),
        Err(Error::UnknownTag {
            what: "SMP response",
            tag: "NOPE".into()
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"ERR BOGUS", V),
        Err(Error::UnknownTag {
            what: "SMP error",
            tag: "BOGUS".into()
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"ERR CMD WHAT", V),
        Err(Error::UnknownTag {
            what: "CMD error",
            tag: "WHAT".into()
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(
            b"ERR PROXY BROKER TRANSPORT HANDSHAKE NOPE",
            V
        ),
        Err(Error::UnknownTag {
            what: "handshake error",
            tag: "NOPE".into()
        })
    );
    assert_eq!(
        decode_all::<ClientMessage>(b"Xbody"),
        Err(Error::UnknownTag {
            what: "private header",
            tag: "X".into()
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"SEND X body", V),
        Err(Error::UnknownTag {
            what: "message flags",
            tag: "X".into()
        })
    );
    // the backward-compatible spelling is accepted
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"ERR CMD NO_QUEUE", V),
        Ok(ServerMsg::Err(ErrorType::Cmd(smp::CommandError::NoEntity)))
    );
}

#[test]
fn trailing_bytes() {
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"SUB ", V),
        Err(Error::TrailingBytes {
            what: "SMP command",
            count: 1
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"PINGX", V),
        Err(Error::UnknownTag {
            what: "SMP command",
            tag: "PINGX".into()
        })
    );
    let mut ack = Command::Recipient(RecipientCommand::Ack(ShortBytes::new(vec![1; 24]).unwrap()))
        .smp_bytes(V)
        .unwrap();
    ack.push(0);
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(&ack, V),
        Err(Error::TrailingBytes {
            what: "SMP command",
            count: 1
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"ERR AUTH x", V),
        Err(Error::TrailingBytes {
            what: "SMP error",
            count: 2
        })
    );
    assert_eq!(
        smp::decode_batch(&[1, 0, 0, 9]),
        Err(Error::TrailingBytes {
            what: "batch",
            count: 1
        })
    );
    assert_eq!(
        decode_all::<ProtocolServer>(&[&smp_server_bytes()[..], &[0]].concat()),
        Err(Error::TrailingBytes {
            what: "ProtocolServer",
            count: 1
        })
    );
}

fn smp_server_bytes() -> Vec<u8> {
    hex::decode("010f736d702e6578616d706c652e636f6d0435323233200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20").unwrap()
}

#[test]
fn bad_base64() {
    assert_eq!(
        "smp://AQ$D@host".parse::<ProtocolServer>(),
        Err(Error::BadBase64 { what: "key hash" })
    );
    assert_eq!(
        "AQIDBA".parse::<KeyHash>(),
        Err(Error::BadBase64 { what: "key hash" })
    );
    assert_eq!(
        smp::base64url::decode("Zh==", "x"),
        Err(Error::BadBase64 { what: "x" })
    );
    let kh = KeyHash::from([1; 32]);
    let uri = format!("smp://{kh}@h/a+b=#/?v=4&dh=x");
    assert_eq!(
        uri.parse::<SmpQueueUri>(),
        Err(Error::BadBase64 { what: "sender id" })
    );
    let uri = format!("smp://{kh}@h/AAAA#/?v=4&dh=%%%");
    assert!(matches!(
        uri.parse::<SmpQueueUri>(),
        Err(Error::InvalidValue { .. })
    ));
    let uri = format!("smp://{kh}@h/AAAA#/?v=4&dh=MC*w");
    assert_eq!(
        uri.parse::<SmpQueueUri>(),
        Err(Error::BadBase64 { what: "dh key" })
    );
}

#[test]
fn version_gated_fields() {
    let skey = Command::Sender(SenderCommand::SKey(AuthPublicKey::X25519(x_key())));
    assert_eq!(
        skey.smp_bytes(Version(8)),
        Err(Error::Version {
            what: "SKEY",
            version: 8
        })
    );
    let wire = skey.smp_bytes(Version(9)).unwrap();
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(&wire, Version(8)),
        Err(Error::Version {
            what: "SKEY",
            version: 8
        })
    );
    assert_eq!(
        ServerMsg::Deld.smp_bytes(Version(9)),
        Err(Error::Version {
            what: "DELD",
            version: 9
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(b"DELD", Version(9)),
        Err(Error::Version {
            what: "DELD",
            version: 9
        })
    );
    let blocked = ServerMsg::Err(ErrorType::Blocked(BlockingInfo {
        reason: BlockingReason::Spam,
        notice: None,
    }));
    assert_eq!(
        blocked.smp_bytes(Version(11)),
        Err(Error::Version {
            what: "BLOCKED error",
            version: 11
        })
    );
    assert_eq!(
        blocked.smp_bytes(Version(12)).unwrap(),
        b"ERR BLOCKED reason=spam"
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<ServerMsg, _>(
            b"ERR BLOCKED reason=spam,notice={}",
            Version(17)
        ),
        Err(Error::Version {
            what: "BLOCKED notice",
            version: 17
        })
    );
    let mut nq = new_queue();
    nq.ntf_creds = Some(NewNtfCreds {
        auth_key: AuthPublicKey::X25519(x_key()),
        dh_key: x_key(),
    });
    let new = Command::Recipient(RecipientCommand::New(Box::new(nq)));
    assert_eq!(
        new.smp_bytes(Version(16)),
        Err(Error::Version {
            what: "NEW notifier credentials",
            version: 16
        })
    );
    let new8 = Command::Recipient(RecipientCommand::New(Box::new(new_queue())));
    assert_eq!(
        new8.smp_bytes(Version(8)),
        Err(Error::Version {
            what: "NEW queue request data",
            version: 8
        })
    );
    let t = Transmission {
        auth: TransmissionAuth::Signature([0; 64]),
        service_sig: Some([0; 64]),
        session_id: None,
        corr_id: ShortBytes::default(),
        entity_id: ShortBytes::default(),
        command: b"PING".to_vec(),
    };
    assert_eq!(
        t.smp_bytes(Version(15)),
        Err(Error::Version {
            what: "service signature",
            version: 15
        })
    );
    let hello = ClientHello {
        version: Version(13),
        key_hash: KeyHash::from([0; 32]),
        auth_key: None,
        proxy_server: true,
        service: None,
    };
    assert_eq!(
        hello.encode(),
        Err(Error::Version {
            what: "client hello proxyServer",
            version: 13
        })
    );
    assert_eq!(
        Command::Ping.smp_bytes(Version(5)),
        Err(Error::Version {
            what: "SMP command",
            version: 5
        })
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<Command, _>(b"PING", Version(20)),
        Err(Error::Version {
            what: "SMP command",
            version: 20
        })
    );
}

#[test]
fn new_layout_per_version() {
    // v6-8: optional "A"+auth then the subscription mode; v9-14 adds sndSecure.
    let mut nq = new_queue();
    nq.queue_req = None;
    nq.basic_auth = Some(smp::BasicAuth::new("pw").unwrap());
    let key = x_key().to_bytes();
    let v8 = Command::Recipient(RecipientCommand::New(Box::new(nq.clone())))
        .smp_bytes(Version(8))
        .unwrap();
    assert_eq!(v8, [b"NEW ".as_ref(), &key, &key, b"A\x02pwS"].concat());
    nq.queue_req = Some(QueueReqData::Messaging(None));
    let v9 = Command::Recipient(RecipientCommand::New(Box::new(nq.clone())))
        .smp_bytes(Version(9))
        .unwrap();
    assert_eq!(v9, [b"NEW ".as_ref(), &key, &key, b"1\x02pwST"].concat());
    let v15 = Command::Recipient(RecipientCommand::New(Box::new(nq.clone())))
        .smp_bytes(Version(15))
        .unwrap();
    assert_eq!(v15, [b"NEW ".as_ref(), &key, &key, b"1\x02pwS1M0"].concat());
    let v17 = Command::Recipient(RecipientCommand::New(Box::new(nq)))
        .smp_bytes(Version(17))
        .unwrap();
    assert_eq!(
        v17,
        [b"NEW ".as_ref(), &key, &key, b"1\x02pwS1M00"].concat()
    );
}

#[test]
fn hello_known_layouts() {
    // The server hello keeps reading past an unparsable key (it is optional) and
    // ignores trailing bytes.
    let body = [&[0u8, 6, 0, 18][..], &[2, 0xaa, 0xbb], b"junk"].concat();
    let h = smp_groups_wire::decode_all::<ServerHello>(&body).unwrap();
    assert_eq!(
        (
            h.versions.min(),
            h.versions.max(),
            h.session_id.as_slice(),
            h.auth.is_none()
        ),
        (Version(6), Version(18), &[0xaa, 0xbb][..], true)
    );
    assert_eq!(
        smp_groups_wire::decode_all::<ServerHello>(&[0, 9, 0, 8, 0]),
        Err(Error::InvalidValue {
            what: "version range",
            reason: "minimum 9 is above maximum 8".into()
        })
    );
    // The client hello with a key at v18.
    let hello = ClientHello {
        version: Version(18),
        key_hash: KeyHash::from([2; 32]),
        auth_key: Some(x_key()),
        proxy_server: false,
        service: None,
    };
    let bytes = hello.encode().unwrap();
    assert_eq!(bytes.len(), 2 + 33 + 45 + 1 + 1);
    assert_eq!(&bytes[bytes.len() - 2..], b"F0");
    assert_eq!(
        smp_groups_wire::decode_all::<ClientHello>(&bytes).unwrap(),
        hello
    );
}

#[test]
fn rcv_msg_body_layout() {
    let m = RcvMsgBody::Message {
        timestamp: 1_234_567_890_123_456_789,
        flags: MsgFlags { notification: true },
        body: b"hi".to_vec(),
    };
    assert_eq!(hex::encode(m.encode().unwrap()), "112210f47de9811554206869");
    // extra flag bytes before the space are skipped (room for more flags)
    let mut with_ext = m.encode().unwrap();
    with_ext.splice(9..9, [b'X', b'Y']);
    assert_eq!(smp_groups_wire::decode_all::<RcvMsgBody>(&with_ext), Ok(m));
    // no space after the flags
    assert_eq!(
        smp_groups_wire::decode_all::<RcvMsgBody>(&hex::decode("112210f47de9811554").unwrap()),
        Err(Error::Truncated {
            what: "message body",
            needed: 1,
            available: 0
        })
    );
    let q = RcvMsgBody::Quota { timestamp: 5 };
    assert_eq!(q.encode().unwrap(), b"QUOTA \0\0\0\0\0\0\0\x05");
    assert_eq!(
        smp_groups_wire::decode_all::<RcvMsgBody>(b"QUOTA \0\0\0\0\0\0\0\x05"),
        Ok(q)
    );
}

fn all_decoders(v: Version, bytes: &[u8]) {
    let _ = smp_groups_wire::decode_all_with::<Command, _>(bytes, v);
    let _ = smp_groups_wire::decode_all_with::<ServerMsg, _>(bytes, v);
    let _ = smp_groups_wire::decode_all_with::<Transmission, _>(bytes, v);
    let _ = smp::decode_batch(bytes);
    let _ = smp_groups_wire::decode_all::<ClientHello>(bytes);
    let _ = smp_groups_wire::decode_all::<ServerHello>(bytes);
    let _ = decode_all::<ProtocolServer>(bytes);
    let _ = decode_all::<ClientMsgEnvelope>(bytes);
    let _ = decode_all::<ClientMessage>(bytes);
    let _ = smp_groups_wire::decode_all::<RcvMsgBody>(bytes);
    let _ = smp::SignedObject::parse(bytes);
    let _ = AuthPublicKey::decode(&mut smp_groups_wire::Reader::new(bytes));
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = s.parse::<SmpQueueUri>();
        let _ = s.parse::<ProtocolServer>();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(v in 0u16..=25, bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        all_decoders(Version(v), &bytes);
    }

    #[test]
    fn tagged_prefixes_never_panic(
        v in 6u16..=19,
        tag in prop::sample::select(vec![
            "NEW ", "KEY ", "SKEY ", "ACK ", "SEND ", "IDS ", "MSG ", "ERR ", "ERR PROXY ",
            "ERR PROXY BROKER ", "ERR BLOCKED ", "ERR CMD ", "QUOTA ",
        ]),
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let bytes = [tag.as_bytes(), &rest].concat();
        all_decoders(Version(v), &bytes);
        // Whatever decodes re-encodes to something that decodes to the same value.
        if let Ok(c) = smp_groups_wire::decode_all_with::<Command, _>(&bytes, Version(v)) {
            prop_assert_eq!(smp_groups_wire::decode_all_with::<Command, _>(&c.smp_bytes(Version(v)).unwrap(), Version(v)).unwrap(), c);
        }
        if let Ok(m) = smp_groups_wire::decode_all_with::<ServerMsg, _>(&bytes, Version(v)) {
            prop_assert_eq!(smp_groups_wire::decode_all_with::<ServerMsg, _>(&m.smp_bytes(Version(v)).unwrap(), Version(v)).unwrap(), m);
        }
    }
}
