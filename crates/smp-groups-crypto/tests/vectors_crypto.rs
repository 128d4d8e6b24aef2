//! Runs every crypto vector in `testdata/smp-vectors.json` through the crate's
//! public functions and checks the number run per kind.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use serde_json::Value;
use smp_groups_crypto::sbc::{self, ChainKey};
use smp_groups_crypto::{ed25519, nacl, sha256, sha512, x25519};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/smp-vectors.json"
));

fn vectors(kind: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(all["format"], "smp-vectors/1");
    all["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == kind)
        .cloned()
        .collect()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string")),
    )
    .unwrap()
}

fn arr<const N: usize>(v: &Value, field: &str) -> [u8; N] {
    bytes(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("{field} is not {N} bytes"))
}

fn num(v: &Value, field: &str) -> usize {
    usize::try_from(v[field].as_u64().unwrap()).unwrap()
}

fn fails(v: &Value) -> bool {
    v["expect"]["error"] == true
}

/// Runs `f` on every vector of `kind`, asserting that exactly `count` ran.
fn run(kind: &str, count: usize, f: impl Fn(&Value, &Value)) {
    let vs = vectors(kind);
    for v in &vs {
        f(&v["input"], &v["expect"]);
    }
    assert_eq!(vs.len(), count, "{kind}: vectors run");
}

#[test]
fn x25519_shared() {
    run("crypto.x25519", 2, |i, e| {
        assert_eq!(
            x25519::x25519(arr(i, "priv"), arr(i, "pub")).to_vec(),
            bytes(e, "shared")
        );
    });
}

#[test]
fn x25519_public() {
    run("crypto.x25519_pub", 2, |i, e| {
        assert_eq!(
            x25519::x25519_base(arr(i, "priv")).to_vec(),
            bytes(e, "pub")
        );
    });
}

#[test]
fn ed25519_sign() {
    run("crypto.ed25519_sign", 4, |i, e| {
        let msg = bytes(i, "msg");
        let (sig, public) = ed25519::sign_with_seed(arr(i, "seed"), &msg);
        assert_eq!(sig.to_bytes().to_vec(), bytes(e, "sig"));
        assert_eq!(public.as_bytes().to_vec(), bytes(e, "pub"));
        public.verify(&msg, &sig).unwrap();
    });
}

#[test]
fn sha512_digest() {
    run("crypto.sha512", 3, |i, e| {
        assert_eq!(sha512(&bytes(i, "msg")).to_vec(), bytes(e, "digest"));
    });
}

#[test]
fn cb_encrypt() {
    run("crypto.cb_encrypt", 3, |i, e| {
        let dh = arr(i, "dh_secret");
        if !i["priv"].is_null() && !i["pub"].is_null() {
            assert_eq!(x25519::x25519(arr(i, "priv"), arr(i, "pub")), dh);
        }
        let (nonce, msg) = (arr(i, "nonce"), bytes(i, "msg"));
        let out = nacl::cb_encrypt(&dh, &nonce, &msg, num(i, "pad_len"));
        if fails(e) {
            assert!(out.is_err());
        } else {
            let out = out.unwrap();
            assert_eq!(out, bytes(e, "out"));
            assert_eq!(out.len(), num(i, "pad_len") + 16);
            assert_eq!(nacl::cb_decrypt(&dh, &nonce, &out).unwrap(), msg);
        }
    });
}

#[test]
fn sb_encrypt() {
    run("crypto.sb_encrypt", 3, |i, e| {
        let (key, nonce, msg) = (arr(i, "key"), arr(i, "nonce"), bytes(i, "msg"));
        let out = nacl::sb_encrypt(&key, &nonce, &msg, num(i, "pad_len"));
        if fails(e) {
            assert!(out.is_err());
        } else {
            let out = out.unwrap();
            assert_eq!(out, bytes(e, "out"));
            assert_eq!(nacl::sb_decrypt(&key, &nonce, &out).unwrap(), msg);
        }
    });
}

#[test]
fn cb_authenticator() {
    run("crypto.cb_authenticator", 5, |i, e| {
        let peer = x25519::PublicKey::from_bytes(arr(i, "peer_pub"));
        let own = x25519::SecretKey::from_bytes(arr(i, "own_priv"));
        let (nonce, msg) = (arr(i, "nonce"), bytes(i, "msg"));
        let out = nacl::cb_authenticator(&peer, &own, &nonce, &msg);
        assert_eq!(out.to_vec(), bytes(e, "out"));
    });
}

#[test]
fn sbc_init() {
    run("smp.sbc_init", 3, |i, e| {
        let keys = sbc::sbc_init(&bytes(i, "session_id"), &bytes(i, "secret"));
        assert_eq!(keys.snd.0.to_vec(), bytes(e, "snd_chain_key"));
        assert_eq!(keys.rcv.0.to_vec(), bytes(e, "rcv_chain_key"));
    });
}

#[test]
fn sbc_hkdf() {
    run("smp.sbc_hkdf", 3, |i, e| {
        let k = sbc::sbc_hkdf(&ChainKey(arr(i, "chain_key")));
        assert_eq!(k.key.to_vec(), bytes(e, "key"));
        assert_eq!(k.nonce.to_vec(), bytes(e, "nonce"));
        assert_eq!(k.next_chain_key.0.to_vec(), bytes(e, "next_chain_key"));
    });
}

#[test]
fn block_encrypt() {
    run("smp.block_encrypt", 2, |i, e| {
        let ck = ChainKey(arr(i, "chain_key"));
        let block = bytes(i, "block");
        let res = sbc::block_encrypt_with(&ck, &block, num(i, "padded_len"));
        if fails(e) {
            assert!(res.is_err());
            return;
        }
        let (out, next) = res.unwrap();
        assert_eq!(out.len(), num(e, "out_len"));
        assert_eq!(sha256(&out).to_vec(), bytes(e, "out_sha256"));
        assert_eq!(out[..64].to_vec(), bytes(e, "out_prefix64"));
        assert_eq!(next.0.to_vec(), bytes(e, "next_chain_key"));
        let (plain, next2) = sbc::block_decrypt_with(&ck, &out).unwrap();
        assert_eq!(plain, block);
        assert_eq!(next2, next);
    });
}
