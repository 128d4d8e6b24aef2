//! Wall-time benchmarks of the hot crypto paths.

#![allow(missing_docs, clippy::unwrap_used)] // criterion macros; setup failures abort the bench

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::ratchet::{DEFAULT_DH_STEP_EVERY, Ratchet, RatchetConfig, X3dhKeyPairs};
use smp_groups_crypto::sbc::{BlockChain, sbc_init};
use smp_groups_crypto::{nacl, rng};

/// A fresh session with the given DH step policy: (initiator, responder, rng).
fn ratchet_pair(dh_step_every: u32) -> (Ratchet, Ratchet, ChaCha20Rng) {
    let mut r = rng::seeded(1);
    let alice_keys = X3dhKeyPairs::generate(&mut r);
    let bob_keys = X3dhKeyPairs::generate(&mut r);
    let config = config_with(dh_step_every);
    let alice = Ratchet::init_initiator(&alice_keys, &bob_keys.params(), config).unwrap();
    let bob = Ratchet::init_responder(&bob_keys, &alice_keys.params(), config).unwrap();
    (alice, bob, r)
}

const DEFAULT_K: u32 = DEFAULT_DH_STEP_EVERY;

fn config_with(dh_step_every: u32) -> RatchetConfig {
    RatchetConfig {
        dh_step_every,
        ..RatchetConfig::default()
    }
}

fn ratchet(c: &mut Criterion) {
    let msg = vec![0x42u8; 1000];
    let mut g = c.benchmark_group("ratchet");
    g.throughput(Throughput::Bytes(
        u64::try_from(RatchetConfig::default().message_len()).unwrap(),
    ));
    // One direction only: no DH step after the first message.
    let (mut alice, _, mut r) = ratchet_pair(DEFAULT_K);
    g.bench_function("encrypt 1000 B to 15744 B", |bench| {
        bench.iter(|| black_box(alice.encrypt(&mut r, black_box(&msg), b"ad").unwrap()));
    });
    let (mut alice, mut bob, mut r) = ratchet_pair(DEFAULT_K);
    g.bench_function("decrypt 15744 B", |bench| {
        bench.iter_batched(
            || alice.encrypt(&mut r, &msg, b"ad").unwrap(),
            |m| black_box(bob.decrypt(&m, b"ad").unwrap()),
            BatchSize::SmallInput,
        );
    });
    let (mut alice, mut bob, mut r) = ratchet_pair(DEFAULT_K);
    g.bench_function("encrypt+decrypt 1000 B to 15744 B", |bench| {
        bench.iter(|| {
            let m = alice.encrypt(&mut r, black_box(&msg), b"ad").unwrap();
            black_box(bob.decrypt(&m, b"ad").unwrap())
        });
    });
    // A message and its reply (a receipt): the conversation turns every time.
    for k in [1, DEFAULT_K] {
        let (mut alice, mut bob, mut r) = ratchet_pair(k);
        g.bench_function(format!("message+reply K={k}"), |bench| {
            bench.iter(|| {
                let m = alice.encrypt(&mut r, black_box(&msg), b"ad").unwrap();
                bob.decrypt(&m, b"ad").unwrap();
                let m = bob.encrypt(&mut r, black_box(&msg), b"ad").unwrap();
                black_box(alice.decrypt(&m, b"ad").unwrap())
            });
        });
    }
    g.finish();
}

fn blocks(c: &mut Criterion) {
    let keys = sbc_init(b"session", b"secret");
    let mut snd = BlockChain::new(keys.snd.clone());
    let (mut snd2, mut rcv2) = (
        BlockChain::new(keys.rcv.clone()),
        BlockChain::new(keys.rcv.clone()),
    );
    let data = vec![7u8; 16_000];
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(16_384));
    g.bench_function("encrypt 16 KiB block", |bench| {
        bench.iter(|| black_box(snd.encrypt(black_box(&data)).unwrap()));
    });
    g.bench_function("encrypt+decrypt 16 KiB block", |bench| {
        bench.iter(|| {
            let b = snd2.encrypt(black_box(&data)).unwrap();
            black_box(rcv2.decrypt(&b).unwrap())
        });
    });
    g.finish();
}

fn crypto_box(c: &mut Criterion) {
    let dh = [3u8; 32];
    let nonce = [1u8; 24];
    let body = vec![9u8; 16_000];
    let boxed = nacl::cb_encrypt(&dh, &nonce, &body, 16_384).unwrap();
    let mut g = c.benchmark_group("crypto_box");
    g.throughput(Throughput::Bytes(16_384));
    g.bench_function("encrypt 16 KiB", |bench| {
        bench.iter(|| black_box(nacl::cb_encrypt(&dh, &nonce, black_box(&body), 16_384).unwrap()));
    });
    g.bench_function("decrypt 16 KiB", |bench| {
        bench.iter(|| black_box(nacl::cb_decrypt(&dh, &nonce, black_box(&boxed)).unwrap()));
    });
    g.finish();
}

fn ed25519(c: &mut Criterion) {
    let key = SigningKey::generate(&mut rng::seeded(2));
    let public = key.public_key();
    let msg = [0x5au8; 100];
    let sig = key.sign(&msg);
    let mut g = c.benchmark_group("ed25519");
    g.bench_function("sign 100 B", |bench| {
        bench.iter(|| black_box(key.sign(black_box(&msg))));
    });
    g.bench_function("verify 100 B", |bench| {
        bench.iter(|| public.verify(black_box(&msg), black_box(&sig)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, ratchet, blocks, crypto_box, ed25519);
criterion_main!(benches);
