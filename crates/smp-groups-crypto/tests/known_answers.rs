//! Published known answers (RFC 8032, RFC 7748, FIPS 180) and HKDF-SHA512 /
//! HMAC-SHA512 values computed independently with Python's `hmac` and `hashlib`.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use smp_groups_crypto::ed25519::{self, PublicKey, Signature, SigningKey};
use smp_groups_crypto::{
    CryptoError, HKDF_SHA512_MAX, hkdf_sha512, hkdf_sha512_into, hmac_sha512, sha256, sha512,
    x25519,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn a32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

/// RFC 8032 section 7.1, tests 1 to 3: (secret key, public key, message, signature).
const RFC8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn rfc8032_ed25519_tests_1_to_3() {
    for (sk, pk, msg, sig) in RFC8032 {
        let key = SigningKey::from_seed(a32(sk));
        assert_eq!(key.seed(), a32(sk));
        let public = key.public_key();
        assert_eq!(public.as_bytes().to_vec(), h(pk));
        let msg = h(msg);
        let s = key.sign(&msg);
        assert_eq!(s.to_bytes().to_vec(), h(sig));
        let from_der = PublicKey::from_spki_der(&public.to_spki_der()).unwrap();
        from_der
            .verify(&msg, &Signature::from_bytes(s.to_bytes()))
            .unwrap();
        // Any change to the message or the signature is rejected.
        let mut other = msg.clone();
        other.push(0);
        assert_eq!(public.verify(&other, &s), Err(CryptoError::BadSignature));
        let mut bad = s.to_bytes();
        bad[10] ^= 0x40;
        assert_eq!(
            public.verify(&msg, &Signature::from_bytes(bad)),
            Err(CryptoError::BadSignature)
        );
    }
}

#[test]
fn ed25519_der_and_serde() {
    let key = SigningKey::from_seed(a32(RFC8032[0].0));
    let der = key.public_key().to_spki_der();
    assert_eq!(hex::encode(&der[..12]), "302a300506032b6570032100");
    assert_eq!(der.len(), 44);
    // An X25519 DER key, a truncated key and a long key are refused.
    let mut x = der.clone();
    x[8] = 0x6e;
    assert!(matches!(
        PublicKey::from_spki_der(&x),
        Err(CryptoError::InvalidKey { .. })
    ));
    assert!(PublicKey::from_spki_der(&der[..43]).is_err());
    assert!(PublicKey::from_spki_der(&[der.clone(), vec![0]].concat()).is_err());
    assert!(Signature::from_slice(&[0; 63]).is_err());
    // Keys and signatures survive a postcard round trip.
    let bytes = postcard::to_allocvec(&key).unwrap();
    let back: SigningKey = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, key);
    let s = key.sign(b"m");
    let back: Signature = postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    assert!(
        postcard::from_bytes::<Signature>(&postcard::to_allocvec(&[0u8; 63][..]).unwrap()).is_err()
    );
    let (sig, public) = ed25519::sign_with_seed(a32(RFC8032[1].0), &h(RFC8032[1].2));
    assert_eq!(sig.to_bytes().to_vec(), h(RFC8032[1].3));
    assert_eq!(public, key_public(RFC8032[1].1));
}

fn key_public(s: &str) -> PublicKey {
    PublicKey::from_bytes(a32(s))
}

#[test]
fn rfc7748_section_5_2() {
    let cases = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for (k, u, out) in cases {
        assert_eq!(x25519::x25519(a32(k), a32(u)), a32(out));
    }
    // The iterated test: k = u = 9; (k, u) = (X25519(k, u), k).
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for i in 1..=1000 {
        let next = x25519::x25519(k, u);
        u = k;
        k = next;
        if i == 1 {
            assert_eq!(
                k,
                a32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
            );
        }
    }
    assert_eq!(
        k,
        a32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

#[test]
fn rfc7748_section_6_1() {
    let alice = x25519::SecretKey::from_bytes(a32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob = x25519::SecretKey::from_bytes(a32(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let a_pub = alice.public_key();
    let b_pub = bob.public_key();
    assert_eq!(
        *a_pub.as_bytes(),
        a32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        *b_pub.as_bytes(),
        a32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let k = a32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(*alice.diffie_hellman(&b_pub).as_bytes(), k);
    assert_eq!(*bob.diffie_hellman_checked(&a_pub).unwrap().as_bytes(), k);
    assert_eq!(x25519::x25519_base(alice.to_bytes()), *a_pub.as_bytes());
    // Storage round trips: raw bytes, serde, DER.
    assert_eq!(x25519::SecretKey::from_bytes(alice.to_bytes()), alice);
    let back: x25519::SecretKey =
        postcard::from_bytes(&postcard::to_allocvec(&alice).unwrap()).unwrap();
    assert_eq!(back.public_key(), a_pub);
    let der = a_pub.to_spki_der();
    assert_eq!(hex::encode(&der[..12]), "302a300506032b656e032100");
    assert_eq!(x25519::PublicKey::from_spki_der(&der).unwrap(), a_pub);
    assert!(x25519::PublicKey::from_spki_der(&der[1..]).is_err());
    // A small-order point is refused by the checked agreement.
    assert!(matches!(
        alice.diffie_hellman_checked(&x25519::PublicKey::from_bytes([0; 32])),
        Err(CryptoError::InvalidKey { .. })
    ));
}

#[test]
fn fips180_sha2() {
    assert_eq!(
        sha256(b"abc").to_vec(),
        h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        sha512(b"abc").to_vec(),
        h(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
    );
    assert_eq!(
        sha512(b"").to_vec(),
        h(
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        )
    );
}

/// RFC 5869's test inputs with SHA-512 in place of SHA-256; expected values from
/// Python `hmac`/`hashlib`.
#[test]
fn hkdf_sha512_rfc5869_inputs() {
    let ikm = [0x0b; 22];
    let salt: Vec<u8> = (0x00..=0x0c).collect();
    let info: Vec<u8> = (0xf0..=0xf9).collect();
    let okm = hkdf_sha512::<42>(&salt, &ikm, &info).unwrap();
    assert_eq!(
        okm.to_vec(),
        h("832390086cda71fb47625bb5ceb168e4c8e26a1a16ed34d9fc7fe92c1481579338da362cb8d9f925d7cb")
    );

    let ikm: Vec<u8> = (0x00..0x50).collect();
    let salt: Vec<u8> = (0x60..0xb0).collect();
    let info: Vec<u8> = (0xb0..=0xff).collect();
    let okm = hkdf_sha512::<82>(&salt, &ikm, &info).unwrap();
    assert_eq!(
        okm.to_vec(),
        h(
            "ce6c97192805b346e6161e821ed165673b84f400a2b514b2fe23d84cd189ddf1b695b48cbd1c8388441137b3ce28f16aa64ba33ba466b24df6cfcb021ecff235f6a2056ce3af1de44d572097a8505d9e7a93"
        )
    );

    // Empty salt and info.
    let okm = hkdf_sha512::<42>(b"", &[0x0b; 22], b"").unwrap();
    assert_eq!(
        okm.to_vec(),
        h("f5fa02b18298a72a8c23898a8703472c6eb179dc204c03425c970e3b164bf90fff22d04836d0e2343bac")
    );

    // The block-chain step shape (88 bytes, empty salt).
    let okm = hkdf_sha512::<88>(b"", &[1; 32], b"SimpleXSbChain").unwrap();
    assert_eq!(
        okm.to_vec(),
        h(
            "a6ab7d9f654ff7a7a16b6c5d89ac195a304178a600f8e1fe72a9865484d4f9a14c820c3b1c50a12248a5c111c4286e7bc5ce8c11c4a98f979b326517c9780d8c1e5da29c3f856fa977494a9bfbb34ff9ff57cc8286026e54"
        )
    );
}

#[test]
fn hkdf_sha512_length_limit() {
    let mut out = vec![0u8; HKDF_SHA512_MAX];
    hkdf_sha512_into(b"salt", b"ikm", b"info", &mut out).unwrap();
    assert_eq!(
        sha256(&out).to_vec(),
        h("b6fa35bf8c3a5541ef3ec6b72f7b8bd01f808831463a299bc92fdae205623015")
    );
    let mut too_long = vec![0u8; HKDF_SHA512_MAX + 1];
    assert_eq!(
        hkdf_sha512_into(b"salt", b"ikm", b"info", &mut too_long),
        Err(CryptoError::HkdfLength(HKDF_SHA512_MAX + 1))
    );
}

#[test]
fn hmac_sha512_known_answer() {
    assert_eq!(
        hmac_sha512(b"key", b"The quick brown fox jumps over the lazy dog").to_vec(),
        h(
            "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a"
        )
    );
}
