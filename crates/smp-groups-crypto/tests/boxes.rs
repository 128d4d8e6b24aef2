//! Round trips and typed failures of the NaCl boxes, the block chain, AES-GCM and
//! the injected RNG.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use proptest::prelude::*;
use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain, sbc_init};
use smp_groups_crypto::x25519::SecretKey;
use smp_groups_crypto::{CryptoError, RngCore, aead, nacl, rng};

#[test]
fn seeded_rng_is_reproducible_and_seed_dependent() {
    let first = rng::seeded(7).next_u64();
    assert_eq!(rng::seeded(7).next_u64(), first);
    assert_ne!(rng::seeded(8).next_u64(), first);
    let k1 = SecretKey::generate(&mut rng::seeded(1));
    let k2 = SecretKey::generate(&mut rng::seeded(1));
    assert_eq!(k1, k2);
    assert_ne!(SecretKey::generate(&mut rng::system()), k1);
}

#[test]
fn crypto_box_with_two_key_pairs() {
    let mut r = rng::seeded(1);
    let (a, b) = (SecretKey::generate(&mut r), SecretKey::generate(&mut r));
    let dh_a = a.diffie_hellman(&b.public_key());
    let dh_b = b.diffie_hellman(&a.public_key());
    let nonce = [3u8; 24];
    let boxed = nacl::cb_encrypt(dh_a.as_bytes(), &nonce, b"hello", 100).unwrap();
    assert_eq!(boxed.len(), 116);
    assert_eq!(
        nacl::cb_decrypt(dh_b.as_bytes(), &nonce, &boxed).unwrap(),
        b"hello"
    );
    assert!(matches!(
        nacl::cb_encrypt(dh_a.as_bytes(), &nonce, &[0; 99], 100),
        Err(CryptoError::TooLong { len: 99, max: 98 })
    ));
    let raw = nacl::cb_encrypt_no_pad(dh_a.as_bytes(), &nonce, b"raw");
    assert_eq!(raw.len(), 19);
    assert_eq!(
        nacl::cb_decrypt_no_pad(dh_b.as_bytes(), &nonce, &raw).unwrap(),
        b"raw"
    );
    // Wrong nonce, wrong key, short input: typed errors.
    let fail = Err(CryptoError::DecryptFailed { what: "crypto_box" });
    assert_eq!(nacl::cb_decrypt(dh_b.as_bytes(), &[4; 24], &boxed), fail);
    assert_eq!(nacl::cb_decrypt(&[0; 32], &nonce, &boxed), fail);
    assert!(matches!(
        nacl::cb_decrypt(dh_b.as_bytes(), &nonce, &boxed[..15]),
        Err(CryptoError::InvalidLength { .. })
    ));
}

#[test]
fn secretbox_padding_errors_are_typed() {
    let key = [9u8; 32];
    let nonce = [1u8; 24];
    // A box whose plaintext is too short to hold the padding length.
    let boxed = nacl::cb_encrypt_no_pad(&key, &nonce, &[0]);
    assert_eq!(
        nacl::sb_decrypt(&key, &nonce, &boxed),
        Err(CryptoError::BadPadding { what: "secretbox" })
    );
    // A length prefix that claims more than there is.
    let boxed = nacl::cb_encrypt_no_pad(&key, &nonce, &[0, 9, 1]);
    assert_eq!(
        nacl::sb_decrypt(&key, &nonce, &boxed),
        Err(CryptoError::BadPadding { what: "secretbox" })
    );
}

#[test]
fn authenticator_verifies_and_rejects() {
    let mut r = rng::seeded(2);
    let (server, entity) = (SecretKey::generate(&mut r), SecretKey::generate(&mut r));
    let nonce = [5u8; 24];
    let auth = nacl::cb_authenticator(&server.public_key(), &entity, &nonce, b"transmission");
    nacl::verify_cb_authenticator(
        &entity.public_key(),
        &server,
        &nonce,
        b"transmission",
        &auth,
    )
    .unwrap();
    assert!(
        nacl::verify_cb_authenticator(
            &entity.public_key(),
            &server,
            &nonce,
            b"transmissioN",
            &auth
        )
        .is_err()
    );
    assert!(
        nacl::verify_cb_authenticator(
            &entity.public_key(),
            &server,
            &[6; 24],
            b"transmission",
            &auth
        )
        .is_err()
    );
    assert!(matches!(
        nacl::verify_cb_authenticator(
            &entity.public_key(),
            &server,
            &nonce,
            b"transmission",
            &auth[..79]
        ),
        Err(CryptoError::InvalidLength { .. })
    ));
}

/// A public key of small order gives the all-zero shared secret with any
/// private key, so its "authenticator" can be made by anyone: refused.
#[test]
fn authenticator_with_a_small_order_key_is_refused() {
    let server = SecretKey::generate(&mut rng::seeded(3));
    let nonce = [7u8; 24];
    let msg = b"transmission";
    // u = 0 and u = 1 are points of small order.
    for low in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let forged = nacl::cb_encrypt_no_pad(&[0u8; 32], &nonce, &smp_groups_crypto::sha512(msg));
        let peer = smp_groups_crypto::x25519::PublicKey::from_bytes(low);
        assert!(matches!(
            nacl::verify_cb_authenticator(&peer, &server, &nonce, msg, &forged),
            Err(CryptoError::InvalidKey { .. })
        ));
    }
}

#[test]
fn block_chain_both_directions() {
    let server = sbc_init(b"session id", b"dh secret");
    let client = sbc_init(b"session id", b"dh secret");
    let mut server_snd = BlockChain::new(server.snd.clone());
    let mut client_rcv = BlockChain::new(client.snd.clone());
    let mut client_snd = BlockChain::new(client.rcv.clone());
    let mut server_rcv = BlockChain::new(server.rcv.clone());
    assert_ne!(server.snd, server.rcv);
    for i in 0..3u8 {
        let b = server_snd.encrypt(&[i; 100]).unwrap();
        assert_eq!(b.len(), BLOCK_SIZE);
        assert_eq!(client_rcv.decrypt(&b).unwrap(), [i; 100]);
        let b = client_snd.encrypt(&vec![i; 16366]).unwrap();
        assert_eq!(server_rcv.decrypt(&b).unwrap(), vec![i; 16366]);
    }
    assert!(matches!(
        client_snd.encrypt(&[0; 16367]),
        Err(CryptoError::TooLong { .. })
    ));
    // A corrupted block fails and leaves the chain where it was.
    let b = server_snd.encrypt(b"next").unwrap();
    let mut bad = b.clone();
    bad[100] ^= 1;
    let before = client_rcv.clone();
    assert_eq!(
        client_rcv.decrypt(&bad),
        Err(CryptoError::DecryptFailed { what: "secretbox" })
    );
    assert_eq!(client_rcv, before);
    assert!(matches!(
        client_rcv.decrypt(&b[1..]),
        Err(CryptoError::InvalidLength { .. })
    ));
    assert_eq!(client_rcv.decrypt(&b).unwrap(), b"next");
    // Out of order is not possible: the block encrypted after fails before it.
    let (b1, b2) = (
        server_snd.encrypt(b"1").unwrap(),
        server_snd.encrypt(b"2").unwrap(),
    );
    assert!(client_rcv.decrypt(&b2).is_err());
    assert_eq!(client_rcv.decrypt(&b1).unwrap(), b"1");
    assert_eq!(client_rcv.decrypt(&b2).unwrap(), b"2");
}

#[test]
fn aes_gcm_round_trip_and_rejects() {
    let (k, n) = ([7u8; 32], [1u8; 12]);
    let c = aead::encrypt(&k, &n, b"ad", b"plain");
    assert_eq!(c.len(), 5 + aead::TAG_LEN);
    assert_eq!(aead::decrypt(&k, &n, b"ad", &c).unwrap(), b"plain");
    assert!(aead::decrypt(&k, &n, b"AD", &c).is_err());
    assert!(aead::decrypt(&k, &[2; 12], b"ad", &c).is_err());
    assert!(matches!(
        aead::decrypt(&k, &n, b"ad", &c[..15]),
        Err(CryptoError::InvalidLength { .. })
    ));
}

proptest! {
    /// Any flipped bit in a crypto_box is detected.
    #[test]
    fn crypto_box_detects_any_flipped_bit(msg in prop::collection::vec(any::<u8>(), 0..64), pos in any::<usize>(), bit in 0u8..8) {
        let (key, nonce) = ([1u8; 32], [2u8; 24]);
        let mut boxed = nacl::cb_encrypt(&key, &nonce, &msg, 66).unwrap();
        prop_assert_eq!(nacl::cb_decrypt(&key, &nonce, &boxed).unwrap(), msg);
        let i = pos % boxed.len();
        boxed[i] ^= 1 << bit;
        prop_assert_eq!(nacl::cb_decrypt(&key, &nonce, &boxed), Err(CryptoError::DecryptFailed { what: "crypto_box" }));
    }
}

proptest! {
    /// The one-buffer paths give the bytes of the plain ones.
    #[test]
    fn parts_and_in_place_match_the_plain_boxes(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        head in proptest::collection::vec(any::<u8>(), 0..40),
        body in proptest::collection::vec(any::<u8>(), 0..400),
        extra in 0usize..50,
        flip in any::<Option<(usize, u8)>>(),
    ) {
        let pad_len = head.len() + body.len() + 2 + extra;
        let whole: Vec<u8> = head.iter().chain(&body).copied().collect();
        let boxed = nacl::cb_encrypt(&key, &nonce, &whole, pad_len).unwrap();
        prop_assert_eq!(
            &nacl::cb_encrypt_parts(&key, &nonce, &[&head, &body], pad_len).unwrap(),
            &boxed
        );
        let mut boxed = nacl::sb_encrypt(&key, &nonce, &whole, pad_len).unwrap();
        if let Some((i, x)) = flip.filter(|(_, x)| *x != 0) {
            let i = i % boxed.len();
            boxed[i] ^= x;
        }
        let plain = nacl::sb_decrypt(&key, &nonce, &boxed);
        let mut in_place = boxed.clone();
        match nacl::sb_decrypt_in_place(&key, &nonce, &mut in_place) {
            Ok(()) => prop_assert_eq!(plain.unwrap(), in_place),
            Err(e) => {
                prop_assert_eq!(plain.unwrap_err(), e);
                prop_assert_eq!(in_place, boxed);
            }
        }
    }
}

#[test]
fn a_block_decrypted_in_place_is_the_block_decrypted() {
    let keys = sbc_init(&[1; 32], &[2; 32]);
    let (mut snd, mut rcv, mut rcv2) = (
        BlockChain::new(keys.snd.clone()),
        BlockChain::new(keys.snd.clone()),
        BlockChain::new(keys.snd),
    );
    for n in [0usize, 1, 1000, BLOCK_SIZE - 18] {
        let byte = u8::try_from(n % 256).unwrap();
        let block = snd.encrypt(&vec![byte; n]).unwrap();
        let data = rcv.decrypt(&block).unwrap();
        assert_eq!(rcv2.decrypt_owned(block).unwrap(), data);
        assert_eq!(data, vec![byte; n]);
    }
    assert!(rcv2.decrypt_owned(vec![0; BLOCK_SIZE]).is_err());
    assert!(rcv2.decrypt_owned(vec![0; 100]).is_err());
}
