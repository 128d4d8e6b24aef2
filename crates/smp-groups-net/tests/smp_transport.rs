//! The SMP handshake blocks and the block transport, between this crate's client and
//! relay and against hand-driven peers that derive the keys themselves.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain, sbc_init};
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_net::{
    HandshakeError, NetError, ServerIdentity, SmpTlsStream, SmpTransport, client_config,
    server_config,
};
use smp_groups_wire::smp::build_ed25519_signed;
use smp_groups_wire::smp::{CertChainPubKey, decode_handshake_block, encode_handshake_block};
use smp_groups_wire::smp::{
    ClientHello, KeyHash, ServerHello, Version, VersionRange, X25519PublicKey,
};
use smp_groups_wire::{LargeBytes, ShortBytes, pad};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

type Tls = SmpTlsStream<DuplexStream>;

/// A TLS connection between this crate's client and relay (ALPN as configured).
async fn tls_pair(identity: &ServerIdentity, alpn: bool) -> (Tls, Tls) {
    let (c, s) = duplex(64 * 1024);
    let mut client_cfg = client_config(identity.key_hash()).unwrap();
    if !alpn {
        client_cfg.alpn_protocols.clear();
    }
    let server_cfg = server_config(identity).unwrap();
    let (c, s) = tokio::join!(
        SmpTlsStream::connect(c, &client_cfg),
        SmpTlsStream::accept(s, &server_cfg)
    );
    (c.unwrap(), s.unwrap())
}

fn range(min: u16, max: u16) -> VersionRange {
    VersionRange::new(Version(min), Version(max)).unwrap()
}

async fn read_block(tls: &mut Tls) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE];
    tls.read_exact(&mut b).await.unwrap();
    b
}

async fn write_block(tls: &mut Tls, b: &[u8]) {
    tls.write_all(b).await.unwrap();
    tls.flush().await.unwrap();
}

#[tokio::test]
async fn client_and_relay_agree_and_exchange_encrypted_blocks() {
    let dir = common::fresh_dir("smp-pair");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let (c, s) = tls_pair(&identity, true).await;
    let (mut r1, mut r2) = (rng::seeded(1), rng::seeded(2));
    let (client, server) = tokio::join!(
        SmpTransport::client(c, identity.key_hash(), VersionRange::SUPPORTED, &mut r1),
        SmpTransport::server(s, &identity, VersionRange::SUPPORTED, &mut r2)
    );
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.version(), Version::MAX);
    assert_eq!(server.version(), Version::MAX);
    assert!(client.block_encryption() && server.block_encryption());
    assert_eq!(client.session_id(), server.session_id());
    assert_eq!(
        client.server_session_key(),
        Some(&server.session_secret().unwrap().public_key())
    );
    for i in 0..3u8 {
        let up = vec![i; 100 + usize::from(i)];
        client.send_block(&up).await.unwrap();
        assert_eq!(server.recv_block().await.unwrap(), up);
        let down = vec![i ^ 0xff; 16_366];
        server.send_block(&down).await.unwrap();
        assert_eq!(client.recv_block().await.unwrap(), down);
    }
    assert!(client.send_block(&[0u8; 16_367]).await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A hand-driven client: reads the relay's hello, sends its own hello at `version` with
/// a key, and returns the relay's hello with its own secret.
async fn manual_client_hello(
    tls: &mut Tls,
    key_hash: [u8; 32],
    version: u16,
) -> (ServerHello, x25519::SecretKey) {
    let hello = smp_groups_wire::decode_all::<ServerHello>(
        decode_handshake_block(&read_block(tls).await).unwrap(),
    )
    .unwrap();
    let secret = x25519::SecretKey::from_bytes([9u8; 32]);
    let mine = ClientHello {
        version: Version(version),
        key_hash: KeyHash::from(key_hash),
        auth_key: Some(X25519PublicKey(*secret.public_key().as_bytes())),
        proxy_server: false,
        service: None,
    };
    write_block(
        tls,
        &encode_handshake_block(&mine.encode().unwrap()).unwrap(),
    )
    .await;
    (hello, secret)
}

#[tokio::test]
async fn relay_blocks_follow_the_sbc_chain_from_the_session_id() {
    let dir = common::fresh_dir("smp-manual-v11");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let (mut c, s) = tls_pair(&identity, true).await;
    let mut r = rng::seeded(3);
    let session_id = c.session_id().to_vec();
    let (manual, server) = tokio::join!(
        manual_client_hello(&mut c, identity.key_hash(), 11),
        SmpTransport::server(s, &identity, VersionRange::SUPPORTED, &mut r)
    );
    let (hello, secret) = manual;
    let mut server = server.unwrap();
    assert_eq!(server.version(), Version(11));
    assert!(server.block_encryption());

    // The relay's hello: its versions, the TLS session id, [online, identity] and a
    // session key signed by the online key.
    assert_eq!(hello.versions, VersionRange::SUPPORTED);
    assert_eq!(hello.session_id.as_slice(), &session_id[..]);
    let auth = hello.auth.unwrap();
    let certs: Vec<&[u8]> = auth.certs().iter().map(LargeBytes::as_slice).collect();
    assert_eq!(certs, vec![identity.online_der(), identity.identity_der()]);
    let signed = auth.signed_key();
    // The online key: the 32 bytes after the Ed25519 SPKI prefix in the certificate.
    let online_spki = identity.online_der();
    let online_key = {
        let pos = online_spki
            .windows(12)
            .position(|w| {
                w == [
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ]
            })
            .unwrap();
        ed25519::PublicKey::from_bytes(online_spki[pos + 12..pos + 44].try_into().unwrap())
    };
    online_key
        .verify(
            signed.tbs,
            &ed25519::Signature::from_slice(signed.signature).unwrap(),
        )
        .unwrap();
    let server_key = x25519::PublicKey::from_bytes(signed.x25519_key().unwrap().0);
    assert_eq!(server_key, server.session_secret().unwrap().public_key());

    // Keys derived here: secret = X25519(client secret, relay session key);
    // the relay sends with the first chain key, the client with the second.
    let shared = x25519::x25519(secret.to_bytes(), *server_key.as_bytes());
    let keys = sbc_init(&session_id, &shared);
    let mut from_relay = BlockChain::new(keys.snd.clone());
    let mut to_relay = BlockChain::new(keys.rcv.clone());

    server.send_block(b"first").await.unwrap();
    server.send_block(b"second").await.unwrap();
    let raw = read_block(&mut c).await;
    assert!(pad::unpad(&raw).map_or(true, |d| d != b"first"));
    assert_eq!(from_relay.decrypt(&raw).unwrap(), b"first");
    assert_eq!(
        from_relay.decrypt(&read_block(&mut c).await).unwrap(),
        b"second"
    );

    write_block(&mut c, &to_relay.encrypt(b"from client").unwrap()).await;
    assert_eq!(server.recv_block().await.unwrap(), b"from client");
    // A block encrypted with the wrong chain is rejected.
    write_block(&mut c, &from_relay.encrypt(b"wrong chain").unwrap()).await;
    assert!(matches!(
        server.recv_block().await,
        Err(NetError::Crypto(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn below_version_11_blocks_are_padded() {
    let dir = common::fresh_dir("smp-manual-v10");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let (mut c, s) = tls_pair(&identity, true).await;
    let mut r = rng::seeded(4);
    let (_, server) = tokio::join!(
        manual_client_hello(&mut c, identity.key_hash(), 10),
        SmpTransport::server(s, &identity, VersionRange::SUPPORTED, &mut r)
    );
    let mut server = server.unwrap();
    assert_eq!(server.version(), Version(10));
    assert!(!server.block_encryption());
    server.send_block(b"plain").await.unwrap();
    let raw = read_block(&mut c).await;
    assert_eq!(&raw[..7], b"\x00\x05plain");
    assert!(raw[7..].iter().all(|&b| b == b'#'));
    write_block(&mut c, &pad::pad(b"up", BLOCK_SIZE).unwrap()).await;
    assert_eq!(server.recv_block().await.unwrap(), b"up");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn relay_rejects_a_client_hello_for_another_identity_or_version() {
    let dir = common::fresh_dir("smp-identity");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    for (key_hash, version, expected) in [
        ([7u8; 32], 11, HandshakeError::Identity),
        (identity.key_hash(), 12, HandshakeError::Version),
    ] {
        let (mut c, s) = tls_pair(&identity, true).await;
        let mut r = rng::seeded(5);
        let (_, server) = tokio::join!(
            manual_client_hello(&mut c, key_hash, version),
            SmpTransport::server(s, &identity, range(6, 11), &mut r)
        );
        match server {
            Err(NetError::Handshake(e)) => assert_eq!(e, expected),
            other => panic!("unexpected {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs our client against a hand-driven relay sending `hello`.
async fn client_against_hello(
    identity: &ServerIdentity,
    make_hello: impl FnOnce(&[u8]) -> ServerHello,
) -> Result<SmpTransport<DuplexStream>, NetError> {
    let (c, mut s) = tls_pair(identity, true).await;
    let hello = make_hello(s.session_id());
    let block = encode_handshake_block(&hello.encode().unwrap()).unwrap();
    let mut r = rng::seeded(6);
    let (client, ()) = tokio::join!(
        SmpTransport::client(c, identity.key_hash(), VersionRange::SUPPORTED, &mut r),
        write_block(&mut s, &block)
    );
    client
}

/// A hello from `identity` whose session key is signed by `signer`.
fn hello_signed_by(
    identity: &ServerIdentity,
    session_id: &[u8],
    signer: &ed25519::SigningKey,
) -> ServerHello {
    let tbs = X25519PublicKey([5u8; 32]).to_der();
    let sig = signer.sign(&tbs).to_bytes();
    ServerHello {
        versions: VersionRange::SUPPORTED,
        session_id: ShortBytes::new(session_id).unwrap(),
        auth: Some(
            CertChainPubKey::new(
                vec![
                    LargeBytes::new(identity.online_der()).unwrap(),
                    LargeBytes::new(identity.identity_der()).unwrap(),
                ],
                LargeBytes::new(build_ed25519_signed(&tbs, &sig)).unwrap(),
            )
            .unwrap(),
        ),
    }
}

#[tokio::test]
async fn client_rejects_bad_relay_hellos() {
    let dir = common::fresh_dir("smp-bad-hello");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let stranger = ed25519::SigningKey::from_seed([3u8; 32]);

    let err = client_against_hello(&identity, |sid| {
        let mut wrong = sid.to_vec();
        wrong[0] ^= 1;
        hello_signed_by(&identity, &wrong, &stranger)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, NetError::Handshake(HandshakeError::BadSession)),
        "{err:?}"
    );

    let err = client_against_hello(&identity, |sid| hello_signed_by(&identity, sid, &stranger))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Handshake(HandshakeError::BadAuth("session key signature"))
        ),
        "{err:?}"
    );

    let err = client_against_hello(&identity, |sid| {
        let mut hello = hello_signed_by(&identity, sid, &stranger);
        hello.versions = range(6, 6);
        hello.auth = None;
        ServerHello {
            versions: range(20, 21),
            ..hello
        }
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, NetError::Handshake(HandshakeError::Version)),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn without_alpn_the_relay_offers_version_6_only() {
    let dir = common::fresh_dir("smp-no-alpn");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let (c, s) = tls_pair(&identity, false).await;
    assert_eq!(c.alpn(), None);
    let (mut r1, mut r2) = (rng::seeded(7), rng::seeded(8));
    let (client, server) = tokio::join!(
        SmpTransport::client(c, identity.key_hash(), VersionRange::SUPPORTED, &mut r1),
        SmpTransport::server(s, &identity, VersionRange::SUPPORTED, &mut r2)
    );
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.version(), Version(6));
    assert_eq!(server.version(), Version(6));
    assert!(!client.block_encryption());
    assert_eq!(client.server_session_key(), None);
    client.send_block(b"v6").await.unwrap();
    assert_eq!(server.recv_block().await.unwrap(), b"v6");
    std::fs::remove_dir_all(&dir).unwrap();
}
