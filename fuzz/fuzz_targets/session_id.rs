//! The SMP session id from a client's recorded handshake bytes
//! (`client_finished_from_records`: TLS record framing, the ClientHello's
//! random, decryption with the handshake traffic secret, handshake message
//! framing up to the Finished).
//!
//! The input chooses a ClientHello, handshake messages and how they are cut
//! into records, which are then encrypted with a key from the input's
//! secret as a real client would, so that the fuzzer reaches the parsers
//! behind the AEAD; raw bytes may be appended or replace the records.
//! Checked: nothing panics; a session id returned is the body of the first
//! Finished message of the handshake bytes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ring::{aead, hkdf};
use rustls::CipherSuite;
use smp_groups_net::client_finished_from_records;

#[derive(Arbitrary, Debug)]
struct Input {
    suite: u8,
    random: [u8; 32],
    wrong_random: bool,
    secret: [u8; 48],
    hello_extra: Vec<u8>,
    /// Plain handshake bytes (messages: type, u24 length, body).
    handshake: Vec<u8>,
    /// Record sizes the handshake bytes are cut into.
    cuts: Vec<u8>,
    /// Padding after the inner content type of each record.
    padding: u8,
    /// Content type of the records (22 = handshake).
    inner_type: u8,
    ccs: bool,
    tail: Vec<u8>,
    raw: bool,
}

fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let len = u16::try_from(out.len()).unwrap_or(0).to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).unwrap_or(0)];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    struct L(usize);
    impl hkdf::KeyType for L {
        fn len(&self) -> usize {
            self.0
        }
    }
    if let Ok(okm) = prk.expand(&info, L(out.len())) {
        let _ = okm.fill(out);
    }
}

fn find_finished(mut msgs: &[u8]) -> Option<&[u8]> {
    while msgs.len() >= 4 {
        let len = msgs[1..4]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let body = msgs.get(4..4 + len)?;
        if msgs[0] == 20 {
            return Some(body);
        }
        msgs = &msgs[4 + len..];
    }
    None
}

fuzz_target!(|input: Input| {
    let (suite, hash, alg, hash_len) = match input.suite % 3 {
        0 => (
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            hkdf::HKDF_SHA256,
            &aead::CHACHA20_POLY1305,
            32,
        ),
        1 => (
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            hkdf::HKDF_SHA256,
            &aead::AES_128_GCM,
            32,
        ),
        _ => (
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            hkdf::HKDF_SHA384,
            &aead::AES_256_GCM,
            48,
        ),
    };
    let secret = &input.secret[..hash_len];
    // ClientHello record: type(1) u24 length, legacy_version, random, more.
    let mut hello = vec![1, 0, 0, 0, 3, 3];
    hello.extend_from_slice(&input.random);
    hello.extend_from_slice(&input.hello_extra[..input.hello_extra.len().min(300)]);
    let body_len = hello.len() - 4;
    hello[1..4].copy_from_slice(&u32::try_from(body_len).unwrap_or(0).to_be_bytes()[1..]);
    let mut recorded = vec![22, 3, 1];
    recorded.extend_from_slice(&u16::try_from(hello.len()).unwrap_or(0).to_be_bytes());
    recorded.extend_from_slice(&hello);
    if input.ccs {
        recorded.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
    }
    if input.raw {
        recorded.extend_from_slice(&input.tail);
    } else {
        let prk = hkdf::Prk::new_less_safe(hash, secret);
        let mut key = [0u8; 32];
        expand_label(&prk, b"key", &mut key[..alg.key_len()]);
        let mut iv = [0u8; 12];
        expand_label(&prk, b"iv", &mut iv);
        let Ok(unbound) = aead::UnboundKey::new(alg, &key[..alg.key_len()]) else {
            return;
        };
        let key = aead::LessSafeKey::new(unbound);
        let mut rest: &[u8] = &input.handshake;
        let mut cuts = input.cuts.iter().cycle();
        let mut seq = 0u64;
        while !rest.is_empty() && seq < 64 {
            let cut = usize::from(*cuts.next().unwrap_or(&255))
                .max(1)
                .min(rest.len());
            let (chunk, more) = rest.split_at(cut);
            rest = more;
            let mut inner = chunk.to_vec();
            inner.push(if input.inner_type == 0 {
                22
            } else {
                input.inner_type
            });
            inner.extend(std::iter::repeat_n(0, usize::from(input.padding % 16)));
            let len = u16::try_from(inner.len() + alg.tag_len()).unwrap_or(0);
            let header = [23, 3, 3, len.to_be_bytes()[0], len.to_be_bytes()[1]];
            let mut nonce = iv;
            for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            if key
                .seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(header),
                    &mut inner,
                )
                .is_err()
            {
                return;
            }
            recorded.extend_from_slice(&header);
            recorded.extend_from_slice(&inner);
            seq += 1;
        }
        recorded.extend_from_slice(&input.tail[..input.tail.len().min(64)]);
    }
    let mut logged = input.random;
    if input.wrong_random {
        logged[0] ^= 1;
    }
    let result = client_finished_from_records(&recorded, suite, &logged, secret);
    if let Ok(id) = &result {
        assert!(!input.wrong_random, "a wrong client random is refused");
        assert_eq!(id.len(), hash_len);
        if !input.raw && (input.inner_type == 0 || input.inner_type == 22) {
            assert_eq!(Some(id.as_slice()), find_finished(&input.handshake));
        }
    }
});
