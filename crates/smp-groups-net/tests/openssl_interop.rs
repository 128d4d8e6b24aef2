//! The session id and certificate checks against OpenSSL as the independent peer.
//!
//! OpenSSL exposes the Finished messages (`SSL_get_finished` / `SSL_get_peer_finished`),
//! so each test computes the same handshake's client Finished `verify_data` on both sides
//! and compares. The OpenSSL side runs blocking on a std thread over loopback TCP.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    AlpnError, Ssl, SslContext, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion,
    select_next_proto,
};
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509, X509NameBuilder};
use smp_groups_crypto::sha256;
use smp_groups_net::{
    CertError, NetError, ServerIdentity, SmpTlsStream, client_config, server_config, validate_chain,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUITE: &str = "TLS_CHACHA20_POLY1305_SHA256";

/// An OpenSSL context for TLS 1.3 with the SMP suite.
fn openssl_ctx(method: SslMethod, groups: &str) -> SslContextBuilder {
    let mut ctx = SslContext::builder(method).unwrap();
    ctx.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    ctx.set_max_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    ctx.set_ciphersuites(SUITE).unwrap();
    ctx.set_groups_list(groups).unwrap();
    ctx
}

/// Runs an OpenSSL relay for one connection presenting `chain` with `key`; it answers
/// "ping" with "pong" and returns the client Finished it received.
fn openssl_server(chain: Vec<X509>, key: &PKey<Private>) -> (u16, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ctx = openssl_ctx(SslMethod::tls_server(), "X25519");
    ctx.set_num_tickets(0).unwrap();
    ctx.set_private_key(key).unwrap();
    let mut chain = chain.into_iter();
    ctx.set_certificate(&chain.next().unwrap()).unwrap();
    for extra in chain {
        ctx.add_extra_chain_cert(extra).unwrap();
    }
    ctx.check_private_key().unwrap();
    ctx.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x05smp/1", client).ok_or(AlpnError::NOACK)
    });
    let ctx = ctx.build();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let Ok(mut tls) = Ssl::new(&ctx).unwrap().accept(tcp) else {
            return Vec::new();
        };
        assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"smp/1"[..]));
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).unwrap();
        assert_eq!(&ping, b"ping");
        tls.write_all(b"pong").unwrap();
        let mut finished = [0u8; 64];
        let n = tls.ssl().peer_finished(&mut finished);
        let _ = tls.shutdown();
        finished[..n].to_vec()
    });
    (port, handle)
}

/// A TCP stream that keeps a copy of everything written to it.
#[derive(Debug)]
struct Tee {
    tcp: TcpStream,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.sent.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// What the OpenSSL client saw.
struct ClientView {
    finished: Vec<u8>,
    peer_chain: Vec<Vec<u8>>,
    client_hellos: usize,
}

/// Runs an OpenSSL client against `port` offering key shares in the order of `groups`;
/// it sends "ping", expects "pong" and returns the Finished it sent.
fn openssl_client(port: u16, groups: &'static str) -> thread::JoinHandle<ClientView> {
    thread::spawn(move || {
        let mut ctx = openssl_ctx(SslMethod::tls_client(), groups);
        ctx.set_verify(SslVerifyMode::NONE);
        ctx.set_alpn_protos(b"\x05smp/1").unwrap();
        let ctx = ctx.build();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut tls = Ssl::new(&ctx)
            .unwrap()
            .connect(Tee {
                tcp,
                sent: sent.clone(),
            })
            .unwrap();
        let mut finished = [0u8; 64];
        let n = tls.ssl().finished(&mut finished);
        let peer_chain = tls
            .ssl()
            .peer_cert_chain()
            .unwrap()
            .iter()
            .map(|c| c.to_der().unwrap())
            .collect();
        let client_hellos = common::count_client_hellos(&sent.lock().unwrap());
        tls.write_all(b"ping").unwrap();
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"pong");
        ClientView {
            finished: finished[..n].to_vec(),
            peer_chain,
            client_hellos,
        }
    })
}

/// Our relay accepts one connection on loopback from an OpenSSL client; returns both views.
async fn relay_against_openssl_client(
    name: &str,
    groups: &'static str,
) -> (Vec<u8>, ClientView, ServerIdentity) {
    let dir = common::fresh_dir(name);
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let config = server_config(&identity).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = openssl_client(listener.local_addr().unwrap().port(), groups);
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = SmpTlsStream::accept(tcp, &config).await.unwrap();
    assert_eq!(tls.alpn(), Some(&b"smp/1"[..]));
    let mut ping = [0u8; 4];
    tls.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"ping");
    tls.write_all(b"pong").await.unwrap();
    tls.flush().await.unwrap();
    let view = client.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (tls.session_id().to_vec(), view, identity)
}

#[tokio::test]
async fn relay_session_id_equals_openssl_client_finished() {
    let (session_id, view, identity) = relay_against_openssl_client("relay-x25519", "X25519").await;
    assert_eq!(view.client_hellos, 1);
    assert_eq!(view.finished.len(), 32);
    assert_eq!(session_id, view.finished);
    assert_eq!(
        view.peer_chain,
        vec![
            identity.online_der().to_vec(),
            identity.identity_der().to_vec()
        ]
    );
}

#[tokio::test]
async fn relay_session_id_equals_openssl_client_finished_after_hello_retry() {
    // The client's first key share is P-256, which the relay does not accept: the relay
    // answers with a HelloRetryRequest and the client sends a second ClientHello.
    let (session_id, view, _) = relay_against_openssl_client("relay-hrr", "P-256:X25519").await;
    assert_eq!(view.client_hellos, 2);
    assert_eq!(view.finished.len(), 32);
    assert_eq!(session_id, view.finished);
}

/// Our client connects to an OpenSSL relay on loopback; returns (our result, relay's peer Finished).
async fn client_against_openssl_relay(
    chain: Vec<X509>,
    key: PKey<Private>,
    key_hash: [u8; 32],
) -> (Result<Vec<u8>, NetError>, Vec<u8>) {
    let (port, server) = openssl_server(chain, &key);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let result = match SmpTlsStream::connect(tcp, &client_config(key_hash).unwrap()).await {
        Ok(mut tls) => {
            assert_eq!(tls.alpn(), Some(&b"smp/1"[..]));
            tls.write_all(b"ping").await.unwrap();
            tls.flush().await.unwrap();
            let mut pong = [0u8; 4];
            tls.read_exact(&mut pong).await.unwrap();
            assert_eq!(&pong, b"pong");
            Ok(tls.session_id().to_vec())
        }
        Err(e) => Err(e),
    };
    let peer_finished = server.join().unwrap();
    (result, peer_finished)
}

#[tokio::test]
async fn client_session_id_equals_openssl_relay_peer_finished() {
    let dir = common::fresh_dir("client-ed25519");
    let identity = ServerIdentity::load_or_create(&dir).unwrap();
    let chain = vec![
        X509::from_der(identity.online_der()).unwrap(),
        X509::from_der(identity.identity_der()).unwrap(),
    ];
    // ring writes PKCS#8 v2 (with the public key), which OpenSSL 3.0 does not read: take
    // the 32-byte seed after the fixed Ed25519 PKCS#8 prefix.
    let online_key = identity.online_key();
    let der = online_key.secret_der();
    assert_eq!(
        der[5..16],
        [
            0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
        ]
    );
    let key = PKey::private_key_from_raw_bytes(&der[16..48], openssl::pkey::Id::ED25519).unwrap();
    let (ours, theirs) = client_against_openssl_relay(chain, key, identity.key_hash()).await;
    let ours = ours.unwrap();
    assert_eq!(ours.len(), 32);
    assert_eq!(ours, theirs);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A certificate for `subject_key` named `cn`, signed by `issuer` (or self-signed),
/// valid from `from` to `until` (Unix seconds).
fn make_cert(
    cn: &str,
    subject_key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
    (from, until): (i64, i64),
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(u32::try_from(now() % 1_000_000).unwrap() + 1)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((cert, _)) => b.set_issuer_name(cert.subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(subject_key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(until).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    }
    let signer = issuer.map_or(subject_key, |(_, k)| k);
    b.sign(signer, MessageDigest::null()).unwrap();
    b.build()
}

fn valid() -> (i64, i64) {
    (now() - 3600, now() + 86_400)
}

#[tokio::test]
async fn client_accepts_an_ed448_relay_and_agrees_with_openssl() {
    // Relays set up before 2024 have Ed448 identity and online certificates.
    let id_key = PKey::generate_ed448().unwrap();
    let online_key = PKey::generate_ed448().unwrap();
    let identity = make_cert("identity", &id_key, None, true, valid());
    let online = make_cert(
        "online",
        &online_key,
        Some((&identity, &id_key)),
        false,
        valid(),
    );
    let key_hash = sha256(&identity.to_der().unwrap());
    let (ours, theirs) =
        client_against_openssl_relay(vec![online, identity], online_key, key_hash).await;
    let ours = ours.unwrap();
    assert_eq!(ours.len(), 32);
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn client_rejects_an_online_certificate_not_signed_by_the_identity() {
    let id_key = PKey::generate_ed448().unwrap();
    let online_key = PKey::generate_ed448().unwrap();
    let identity = make_cert("identity", &id_key, None, true, valid());
    // Same issuer name, but signed by the online key itself.
    let forged = {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(identity.subject_name()).unwrap();
        b.set_issuer_name(identity.subject_name()).unwrap();
        b.set_pubkey(&online_key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(valid().0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(valid().1).unwrap())
            .unwrap();
        b.sign(&online_key, MessageDigest::null()).unwrap();
        b.build()
    };
    let key_hash = sha256(&identity.to_der().unwrap());
    let (ours, _) =
        client_against_openssl_relay(vec![forged, identity], online_key, key_hash).await;
    let err = ours.unwrap_err();
    let NetError::Tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
        &err
    else {
        panic!("unexpected error {err:?}")
    };
    assert_eq!(
        other.0.downcast_ref::<CertError>(),
        Some(&CertError::BadSignature)
    );
}

#[test]
fn chain_validation_pins_the_second_certificate() {
    // [online, identity, operator CA]: the key hash is of the identity certificate (the
    // second), and the chain must lead to the last certificate.
    let ca_key = PKey::generate_ed25519().unwrap();
    let id_key = PKey::generate_ed448().unwrap();
    let online_key = PKey::generate_ed25519().unwrap();
    let ca = make_cert("operator", &ca_key, None, true, valid());
    let identity = make_cert("identity", &id_key, Some((&ca, &ca_key)), true, valid());
    let online = make_cert(
        "online",
        &online_key,
        Some((&identity, &id_key)),
        false,
        valid(),
    );
    let (ca, identity, online) = (
        ca.to_der().unwrap(),
        identity.to_der().unwrap(),
        online.to_der().unwrap(),
    );
    let id_hash = sha256(&identity);
    let t = now();

    validate_chain(&[&online, &identity], &id_hash, t).unwrap();
    validate_chain(&[&online, &identity, &ca], &id_hash, t).unwrap();
    assert_eq!(
        validate_chain(&[&online, &identity, &ca], &sha256(&ca), t),
        Err(CertError::KeyHashMismatch)
    );
    assert_eq!(
        validate_chain(&[&online, &identity, &ca], &sha256(&online), t),
        Err(CertError::KeyHashMismatch)
    );
    assert_eq!(
        validate_chain(&[&identity], &id_hash, t),
        Err(CertError::ChainLength(1))
    );
    assert_eq!(
        validate_chain(&[&online, &identity, &ca, &ca, &ca], &id_hash, t),
        Err(CertError::ChainLength(5))
    );
    // The identity must be signed by the next certificate when there is one.
    let stranger_key = PKey::generate_ed25519().unwrap();
    let stranger = make_cert("operator", &stranger_key, None, true, valid())
        .to_der()
        .unwrap();
    assert_eq!(
        validate_chain(&[&online, &identity, &stranger], &id_hash, t),
        Err(CertError::BadSignature)
    );
    // Order matters: the online certificate did not sign the identity.
    assert_eq!(
        validate_chain(&[&identity, &online], &sha256(&online), t),
        Err(CertError::IssuerMismatch)
    );
    // Validity periods are checked.
    assert_eq!(
        validate_chain(&[&online, &identity], &id_hash, t + 2 * 86_400),
        Err(CertError::NotValidNow)
    );
    assert_eq!(
        validate_chain(&[&online, &identity], &id_hash, t - 2 * 3600),
        Err(CertError::NotValidNow)
    );
    // Garbage is rejected without panicking.
    let mut broken = online.clone();
    broken.truncate(broken.len() / 2);
    assert!(matches!(
        validate_chain(&[&broken, &identity], &id_hash, t),
        Err(CertError::Malformed(_))
    ));
    // RSA and ECDSA certificates are not SMP certificates.
    let ec_key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let ec = {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(
            openssl::x509::X509::from_der(&identity)
                .unwrap()
                .subject_name(),
        )
        .unwrap();
        b.set_issuer_name(
            openssl::x509::X509::from_der(&identity)
                .unwrap()
                .subject_name(),
        )
        .unwrap();
        b.set_pubkey(&ec_key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(valid().0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(valid().1).unwrap())
            .unwrap();
        b.sign(&ec_key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    };
    assert_eq!(
        validate_chain(&[&ec, &identity], &id_hash, t),
        Err(CertError::UnsupportedAlgorithm)
    );
}
