//! The relay certificate chain check (`validate_chain`: the X.509 and DER
//! readers, Ed25519 and Ed448 signatures, validity times) on arbitrary chains.
//!
//! Input: one byte (2 to 4 certificates), then each certificate but the last
//! as a big-endian u16 length and its bytes, the last taking the rest but 8
//! bytes, which are the time. The key hash is made to match the second
//! certificate, so the fuzzer gets past the hash check into the parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smp_groups_crypto::sha256;
use smp_groups_net::validate_chain;

fn split(data: &[u8]) -> Option<(Vec<&[u8]>, i64)> {
    let (&n, mut rest) = data.split_first()?;
    let n = 2 + usize::from(n % 3);
    let (body, time) = rest.split_at(rest.len().checked_sub(8)?);
    rest = body;
    let mut certs = Vec::with_capacity(n);
    for _ in 1..n {
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let cert = rest.get(2..2 + len)?;
        certs.push(cert);
        rest = rest.get(2 + len..)?;
    }
    certs.push(rest);
    Some((certs, i64::from_be_bytes(time.try_into().ok()?)))
}

fuzz_target!(|data: &[u8]| {
    let Some((certs, now)) = split(data) else {
        return;
    };
    let hash = sha256(certs[1]);
    let result = validate_chain(&certs, &hash, now);
    // The same chain at a time inside any validity period it may claim, and
    // each certificate as a self-signed chain of two.
    let _ = validate_chain(&certs, &hash, 1_750_000_000);
    for c in &certs {
        let _ = validate_chain(&[c, c], &sha256(c), now);
    }
    // A wrong key hash is always refused.
    let mut wrong = hash;
    wrong[0] ^= 1;
    assert!(validate_chain(&certs, &wrong, now).is_err());
    let _ = result;
});
