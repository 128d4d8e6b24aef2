//! Parses an SMP batch, each transmission in it, and each command and response
//! they carry, at a protocol version taken from the first input byte; whatever
//! parses is re-encoded and must decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smp_groups_wire::smp::{
    self, ClientHello, ClientMessage, ClientMsgEnvelope, Command, RcvMsgBody, ServerHello,
    ServerMsg, SmpDecode, SmpEncode, Transmission, Version,
};
use smp_groups_wire::{Encode, decode_all};

/// Prefixes put in front of the input for the command and response parsers.
const TAGS: &[&[u8]] = &[
    b"",
    b"NEW ",
    b"KEY ",
    b"SKEY ",
    b"ACK ",
    b"SEND ",
    b"IDS ",
    b"MSG ",
    b"ERR ",
    b"ERR PROXY ",
    b"ERR PROXY BROKER ",
    b"ERR BLOCKED reason=",
    b"ERR CMD ",
    b"DELD",
    b"PING",
];

fn check_transmission(v: Version, bytes: &[u8]) {
    let Ok(t) = Transmission::decode(v, bytes) else {
        return;
    };
    let again = t.smp_bytes(v).expect("a decoded transmission re-encodes");
    assert_eq!(
        Transmission::decode(v, &again).expect("re-encoded transmission decodes"),
        t
    );
    if let Ok(c) = Command::smp_decode(v, &t.command) {
        let b = c.smp_bytes(v).expect("a decoded command re-encodes");
        assert_eq!(
            Command::smp_decode(v, &b).expect("re-encoded command decodes"),
            c
        );
    }
    if let Ok(m) = ServerMsg::smp_decode(v, &t.command) {
        let b = m.smp_bytes(v).expect("a decoded response re-encodes");
        assert_eq!(
            ServerMsg::smp_decode(v, &b).expect("re-encoded response decodes"),
            m
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let v = Version(6 + u16::from(first % 14));
    if let Ok(items) = smp::decode_batch(rest) {
        let again = smp::encode_batch(&items).expect("a decoded batch re-encodes");
        assert_eq!(again, rest);
        for t in items {
            check_transmission(v, t);
        }
    }
    // The same bytes as a single transmission, and (behind a tag the first
    // byte picks, so that the fuzzer reaches every command's fields) as a
    // command and a response.
    check_transmission(v, rest);
    let tag = TAGS[usize::from(first / 14) % TAGS.len()];
    let tagged = [tag, rest].concat();
    if let Ok(c) = Command::smp_decode(v, &tagged) {
        assert_eq!(
            Command::smp_decode(v, &c.smp_bytes(v).expect("re-encodes")).expect("decodes"),
            c
        );
    }
    if let Ok(m) = ServerMsg::smp_decode(v, &tagged) {
        assert_eq!(
            ServerMsg::smp_decode(v, &m.smp_bytes(v).expect("re-encodes")).expect("decodes"),
            m
        );
    }
    // Handshake and message layers.
    if let Ok(h) = ClientHello::decode(rest) {
        assert_eq!(
            ClientHello::decode(&h.encode().expect("re-encodes")).expect("decodes"),
            h
        );
    }
    if let Ok(h) = ServerHello::decode(rest) {
        assert_eq!(
            ServerHello::decode(&h.encode().expect("re-encodes")).expect("decodes"),
            h
        );
    }
    if let Ok(e) = decode_all::<ClientMsgEnvelope>(rest) {
        assert_eq!(e.to_bytes(), rest);
    }
    if let Ok(m) = decode_all::<ClientMessage>(rest) {
        assert_eq!(m.to_bytes(), rest);
    }
    if let Ok(b) = RcvMsgBody::decode(rest) {
        assert_eq!(
            RcvMsgBody::decode(&b.encode().expect("re-encodes")).expect("decodes"),
            b
        );
    }
});
