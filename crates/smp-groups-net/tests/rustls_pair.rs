//! Client and relay of this crate talking to each other over in-memory pipes.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use smp_groups_net::{
    CertError, NetError, ServerIdentity, SmpTlsStream, client_config, server_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

async fn handshake(
    identity: &ServerIdentity,
    key_hash: [u8; 32],
) -> (
    Result<SmpTlsStream<tokio::io::DuplexStream>, NetError>,
    Result<SmpTlsStream<tokio::io::DuplexStream>, NetError>,
) {
    let (c, s) = duplex(64 * 1024);
    let client_cfg = client_config(key_hash).unwrap();
    let server_cfg = server_config(identity).unwrap();
    tokio::join!(
        SmpTlsStream::connect(c, &client_cfg),
        SmpTlsStream::accept(s, &server_cfg)
    )
}

#[tokio::test]
async fn client_and_relay_agree_on_the_session_id() {
    let dir = common::fresh_dir("agree");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let (client, server) = handshake(&identity, identity.key_hash()).await;
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.session_id().len(), 32);
    assert_eq!(client.session_id(), server.session_id());
    assert_eq!(client.alpn(), Some(&b"smp/1"[..]));
    assert_eq!(server.alpn(), Some(&b"smp/1"[..]));
    assert_eq!(
        client.peer_certificates(),
        vec![identity.online_der(), identity.identity_der()]
    );

    client.write_all(b"hello relay").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 11];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello relay");
    server.write_all(b"hello client").await.unwrap();
    server.flush().await.unwrap();
    let mut buf = [0u8; 12];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello client");

    // A second connection has another session id.
    let (c2, s2) = handshake(&identity, identity.key_hash()).await;
    let (c2, s2) = (c2.unwrap(), s2.unwrap());
    assert_eq!(c2.session_id(), s2.session_id());
    assert_ne!(c2.session_id(), client.session_id());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn client_rejects_a_relay_with_another_key_hash() {
    let dir = common::fresh_dir("reject");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let mut wrong = identity.key_hash();
    wrong[0] ^= 1;
    let (client, server) = handshake(&identity, wrong).await;
    let err = client.unwrap_err();
    let NetError::Tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
        &err
    else {
        panic!("unexpected error {err:?}")
    };
    assert_eq!(
        other.0.downcast_ref::<CertError>(),
        Some(&CertError::KeyHashMismatch)
    );
    assert!(server.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn identity_is_persisted_and_reloaded() {
    let dir = common::fresh_dir("persist");
    let first = ServerIdentity::load_or_create(&dir).unwrap();
    let second = ServerIdentity::load_or_create(&dir).unwrap();
    assert_eq!(first.key_hash(), second.key_hash());
    assert_eq!(first.identity_der(), second.identity_der());
    assert_eq!(first.online_der(), second.online_der());
    assert_eq!(
        first.key_hash(),
        smp_groups_crypto::sha256(first.identity_der())
    );
    for name in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name} is readable by others");
        }
    }
    // The chain the relay presents validates against its own key hash.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    smp_groups_net::validate_chain(
        &[first.online_der(), first.identity_der()],
        &first.key_hash(),
        now,
    )
    .unwrap();

    // Another directory gets another identity.
    let other_dir = common::fresh_dir("persist-other");
    let other = ServerIdentity::load_or_create(&other_dir).unwrap();
    assert_ne!(other.key_hash(), first.key_hash());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other_dir).unwrap();
}

#[test]
fn incomplete_or_mismatched_identity_directories_are_rejected() {
    let dir = common::fresh_dir("incomplete");
    ServerIdentity::load_or_create(&dir).unwrap();
    std::fs::remove_file(dir.join("server.key")).unwrap();
    let err = ServerIdentity::load_or_create(&dir).unwrap_err();
    assert!(matches!(err, NetError::IdentityFile { .. }), "{err:?}");

    // An online key from another identity does not match the online certificate.
    let other_dir = common::fresh_dir("incomplete-other");
    ServerIdentity::load_or_create(&other_dir).unwrap();
    std::fs::copy(other_dir.join("server.key"), dir.join("server.key")).unwrap();
    let err = ServerIdentity::load_or_create(&dir).unwrap_err();
    assert!(matches!(err, NetError::IdentityFile { .. }), "{err:?}");

    // An online certificate not signed by this identity.
    std::fs::copy(other_dir.join("server.crt"), dir.join("server.crt")).unwrap();
    let err = ServerIdentity::load_or_create(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Cert(CertError::IssuerMismatch | CertError::BadSignature)
        ),
        "{err:?}"
    );

    // The identity key may be kept offline.
    ServerIdentity::load_or_create(&other_dir).unwrap();
    std::fs::remove_file(other_dir.join("ca.key")).unwrap();
    ServerIdentity::load_or_create(&other_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other_dir).unwrap();
}

/// A client offering only another ALPN protocol gets the `no_application_protocol`
/// alert (over TCP, where the relay's failed handshake has one write to send
/// its flight and the alert), not a bare close.
#[tokio::test]
async fn a_wrong_alpn_gets_the_no_application_protocol_alert() {
    let dir = common::fresh_dir("alpn");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_cfg = server_config(&identity).unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        SmpTlsStream::accept(tcp, &server_cfg).await.map(|_| ())
    });
    let mut client_cfg = client_config(identity.key_hash()).unwrap();
    client_cfg.alpn_protocols = vec![b"foo/1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = SmpTlsStream::connect(tcp, &client_cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        ),
        "unexpected error {err:?}"
    );
    let server_err = server.await.unwrap().unwrap_err();
    assert!(
        matches!(
            server_err,
            NetError::Tls(rustls::Error::NoApplicationProtocol)
        ),
        "unexpected relay error {server_err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
