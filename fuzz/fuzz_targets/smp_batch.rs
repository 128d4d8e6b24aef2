//! Parses an SMP batch, each transmission in it, and each command and response
//! they carry, at a protocol version taken from the first input byte; whatever
//! parses is re-encoded and must decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smp_groups_wire::smp::{
    self, ClientHello, ClientMessage, ClientMsgEnvelope, Command, RcvMsgBody, ServerHello,
    ServerMsg, SmpEncode, Transmission, Version,
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
    let Ok(t) = smp_groups_wire::decode_all_with::<Transmission, _>(bytes, v) else {
        return;
    };
    let again = t.smp_bytes(v).expect("a decoded transmission re-encodes");
    assert_eq!(
        smp_groups_wire::decode_all_with::<Transmission, _>(&again, v).expect("re-encoded transmission decodes"),
        t
    );
    if let Ok(c) = smp_groups_wire::decode_all_with::<Command, _>(&t.command, v) {
        let b = c.smp_bytes(v).expect("a decoded command re-encodes");
        assert_eq!(
            smp_groups_wire::decode_all_with::<Command, _>(&b, v).expect("re-encoded command decodes"),
            c
        );
    }
    if let Ok(m) = smp_groups_wire::decode_all_with::<ServerMsg, _>(&t.command, v) {
        let b = m.smp_bytes(v).expect("a decoded response re-encodes");
        assert_eq!(
            smp_groups_wire::decode_all_with::<ServerMsg, _>(&b, v).expect("re-encoded response decodes"),
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
    if let Ok(c) = smp_groups_wire::decode_all_with::<Command, _>(&tagged, v) {
        assert_eq!(
            smp_groups_wire::decode_all_with::<Command, _>(&c.smp_bytes(v).expect("re-encodes"), v).expect("decodes"),
            c
        );
    }
    if let Ok(m) = smp_groups_wire::decode_all_with::<ServerMsg, _>(&tagged, v) {
        assert_eq!(
            smp_groups_wire::decode_all_with::<ServerMsg, _>(&m.smp_bytes(v).expect("re-encodes"), v).expect("decodes"),
            m
        );
    }
    // Handshake and message layers.
    if let Ok(h) = smp_groups_wire::decode_all::<ClientHello>(rest) {
        assert_eq!(
            smp_groups_wire::decode_all::<ClientHello>(&h.encode().expect("re-encodes")).expect("decodes"),
            h
        );
    }
    if let Ok(h) = smp_groups_wire::decode_all::<ServerHello>(rest) {
        assert_eq!(
            smp_groups_wire::decode_all::<ServerHello>(&h.encode().expect("re-encodes")).expect("decodes"),
            h
        );
    }
    if let Ok(e) = decode_all::<ClientMsgEnvelope>(rest) {
        assert_eq!(e.to_bytes(), rest);
    }
    if let Ok(m) = decode_all::<ClientMessage>(rest) {
        assert_eq!(m.to_bytes(), rest);
    }
    if let Ok(b) = smp_groups_wire::decode_all::<RcvMsgBody>(rest) {
        assert_eq!(
            smp_groups_wire::decode_all::<RcvMsgBody>(&b.encode().expect("re-encodes")).expect("decodes"),
            b
        );
    }
});
