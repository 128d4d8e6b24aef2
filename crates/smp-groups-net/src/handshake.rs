//! The SMP hello blocks exchanged right after TLS, and the checks on them.

use smp_groups_crypto::sbc::{ChainKeys, sbc_init};
use smp_groups_crypto::x25519;
use smp_groups_wire::smp::{CertChainPubKey, decode_handshake_block, encode_handshake_block};
use smp_groups_wire::smp::{
    ClientHello, KeyHash, ServerHello, Version, VersionRange, X25519PublicKey,
};
use smp_groups_wire::smp::{SignatureAlgorithm, build_ed25519_signed};
use smp_groups_wire::{LargeBytes, ShortBytes};

use crate::cert::{Algorithm, Cert};
use crate::error::{HandshakeError, NetError};
use crate::identity::ServerIdentity;
use crate::stream::SmpTlsStream;

/// What the client learned from the relay's hello.
#[derive(Debug)]
pub(crate) struct ServerHelloChecked {
    /// The agreed version (the highest common one).
    pub(crate) version: Version,
    /// The relay's authenticated X25519 session key, when it sent one.
    pub(crate) server_key: Option<x25519::PublicKey>,
}

/// What the relay learned from the client's hello.
#[derive(Debug)]
pub(crate) struct Negotiated {
    /// The version the client chose.
    pub(crate) version: Version,
    /// The client's X25519 key, when it sent one.
    pub(crate) client_key: Option<x25519::PublicKey>,
}

/// Checks the relay's hello block on the client side.
pub(crate) fn check_server_hello<S>(
    tls: &SmpTlsStream<S>,
    block: &[u8],
    key_hash: [u8; 32],
    versions: VersionRange,
) -> Result<ServerHelloChecked, NetError> {
    let hello = smp_groups_wire::decode_all::<ServerHello>(decode_handshake_block(block)?)?;
    if hello.session_id.as_slice() != tls.session_id() {
        return Err(HandshakeError::BadSession.into());
    }
    let version = hello
        .versions
        .negotiate(versions)
        .ok_or(HandshakeError::Version)?;
    let server_key = match &hello.auth {
        Some(auth) => Some(check_server_auth(tls, auth, key_hash)?),
        None => None,
    };
    Ok(ServerHelloChecked {
        version,
        server_key,
    })
}

/// Checks the relay's certificate chain (its identity certificate must hash to
/// `key_hash`) and its session key, signed by the key of the TLS certificate.
fn check_server_auth<S>(
    tls: &SmpTlsStream<S>,
    auth: &CertChainPubKey,
    key_hash: [u8; 32],
) -> Result<x25519::PublicKey, HandshakeError> {
    let certs = auth.certs();
    if !(2..=4).contains(&certs.len()) {
        return Err(HandshakeError::BadAuth("certificate chain length"));
    }
    let identity = certs
        .get(1)
        .ok_or(HandshakeError::BadAuth("certificate chain length"))?;
    if smp_groups_crypto::sha256(identity.as_slice()) != key_hash {
        return Err(HandshakeError::BadAuth("identity certificate"));
    }
    let leaf_der = tls
        .peer_certificates()
        .first()
        .copied()
        .ok_or(HandshakeError::BadAuth("no TLS certificate"))?;
    let leaf = Cert::parse(leaf_der).map_err(|_| HandshakeError::BadAuth("TLS certificate"))?;
    let signed = auth.signed_key();
    let algorithm = match signed.algorithm {
        SignatureAlgorithm::Ed25519 => Algorithm::Ed25519,
        SignatureAlgorithm::Ed448 => Algorithm::Ed448,
        SignatureAlgorithm::Other => {
            return Err(HandshakeError::BadAuth("session key signature algorithm"));
        }
    };
    if algorithm != leaf.key_algorithm {
        return Err(HandshakeError::BadAuth("session key signature algorithm"));
    }
    algorithm
        .verify(leaf.public_key, signed.tbs, signed.signature)
        .map_err(|_| HandshakeError::BadAuth("session key signature"))?;
    let key = signed
        .x25519_key()
        .map_err(|_| HandshakeError::BadAuth("session key"))?;
    Ok(x25519::PublicKey::from_bytes(key.0))
}

/// The client's hello block.
pub(crate) fn client_hello_block(
    version: Version,
    key_hash: [u8; 32],
    client_key: Option<&x25519::PublicKey>,
) -> Result<Vec<u8>, NetError> {
    let hello = ClientHello {
        version,
        key_hash: KeyHash::from(key_hash),
        auth_key: client_key.map(|k| X25519PublicKey(*k.as_bytes())),
        proxy_server: false,
        service: None,
    };
    Ok(encode_handshake_block(&hello.encode()?)?)
}

/// The relay's hello block: from version 7 with `[online, identity]` and `session_key`
/// signed by the online key.
pub(crate) fn server_hello_block<S>(
    tls: &SmpTlsStream<S>,
    identity: &ServerIdentity,
    versions: VersionRange,
    session_key: &x25519::PublicKey,
) -> Result<Vec<u8>, NetError> {
    let auth = if versions.max() >= Version::AUTH_CMDS {
        let tbs = X25519PublicKey(*session_key.as_bytes()).to_der();
        let signature = identity.sign_online(&tbs)?;
        Some(CertChainPubKey::new(
            vec![
                LargeBytes::new(identity.online_der())?,
                LargeBytes::new(identity.identity_der())?,
            ],
            LargeBytes::new(build_ed25519_signed(&tbs, &signature))?,
        )?)
    } else {
        None
    };
    let hello = ServerHello {
        versions,
        session_id: ShortBytes::new(tls.session_id())?,
        auth,
    };
    Ok(encode_handshake_block(&hello.encode()?)?)
}

/// Checks the client's hello block on the relay side.
pub(crate) fn check_client_hello(
    block: &[u8],
    key_hash: [u8; 32],
    versions: VersionRange,
) -> Result<Negotiated, NetError> {
    let hello = smp_groups_wire::decode_all::<ClientHello>(decode_handshake_block(block)?)?;
    if hello.key_hash.as_bytes() != key_hash.as_slice() {
        return Err(HandshakeError::Identity.into());
    }
    if !versions.contains(hello.version) {
        return Err(HandshakeError::Version.into());
    }
    Ok(Negotiated {
        version: hello.version,
        client_key: hello.auth_key.map(|k| x25519::PublicKey::from_bytes(k.0)),
    })
}

/// The block-chain keys: `sbc_init(session_id, X25519(own secret, peer key))`, with `snd`
/// the relay's sending key.
pub(crate) fn chain_keys(
    session_id: &[u8],
    secret: &x25519::SecretKey,
    peer: &x25519::PublicKey,
) -> Result<ChainKeys, NetError> {
    let shared = secret.diffie_hellman_checked(peer)?;
    Ok(sbc_init(session_id, shared.as_bytes()))
}
