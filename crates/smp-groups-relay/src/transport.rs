//! The relay side of the SMP block transport, split into a reading and a
//! writing half so that a connection can deliver `MSG`, `END` and `DELD` while
//! it waits for the client's next block.
//!
//! The handshake: after TLS (see `smp_groups_net::SmpTlsStream`), the relay
//! sends its hello block (version range, session id and, when it offers v7 or
//! later, the certificate chain `[online, identity]` with a fresh X25519 session
//! key signed by the online key), reads the client hello (key hash, chosen
//! version, optional X25519 key), and from v11, when the client sent its key,
//! encrypts every block with the block chain keyed by
//! `sbc_init(session id, X25519(session key, client key))`.

use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain, sbc_init};
use smp_groups_crypto::{CryptoRng, RngCore, x25519};
use smp_groups_net::{ALPN_SMP, ServerIdentity, SmpTlsStream};
use smp_groups_wire::smp::handshake::{
    CertChainPubKey, ClientHello, ServerHello, decode_handshake_block, encode_handshake_block,
};
use smp_groups_wire::smp::x509::build_ed25519_signed;
use smp_groups_wire::smp::{Version, VersionRange, X25519PublicKey};
use smp_groups_wire::{LargeBytes, ShortBytes, pad};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// The versions the relay offers: 6 to 18, as the reference relay does.
pub fn relay_versions() -> VersionRange {
    VersionRange::new(Version::MIN, Version::REFERENCE_CURRENT).unwrap_or(VersionRange::SUPPORTED)
}

/// A transport failure on one connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// TLS failed (handshake or session id).
    #[error("TLS: {0}")]
    Tls(#[from] smp_groups_net::NetError),
    /// Reading or writing the socket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A block or hello did not decode.
    #[error("malformed block: {0}")]
    Wire(#[from] smp_groups_wire::Error),
    /// Block encryption or the identity key failed.
    #[error("block crypto: {0}")]
    Crypto(#[from] smp_groups_crypto::CryptoError),
    /// The client hello names another relay's key hash.
    #[error("client hello is for another relay")]
    Identity,
    /// The client chose a version the relay did not offer.
    #[error("client chose version {0}, not offered")]
    Version(u16),
    /// The relay's online key cannot sign.
    #[error("the relay's online key cannot sign")]
    OnlineKey,
}

/// Receives blocks.
#[derive(Debug)]
pub struct BlockReader<R> {
    io: R,
    chain: Option<BlockChain>,
}

/// Sends blocks.
#[derive(Debug)]
pub struct BlockWriter<W> {
    io: W,
    chain: Option<BlockChain>,
}

impl<R: AsyncRead + Unpin> BlockReader<R> {
    /// The data of the next block.
    pub async fn recv(&mut self) -> Result<Vec<u8>, TransportError> {
        let mut block = vec![0u8; BLOCK_SIZE];
        self.io.read_exact(&mut block).await?;
        match &mut self.chain {
            Some(c) => Ok(c.decrypt(&block)?),
            None => Ok(pad::unpad(&block)?.to_vec()),
        }
    }
}

impl<W: AsyncWrite + Unpin> BlockWriter<W> {
    /// Sends `data` as one block.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let block = match &mut self.chain {
            Some(c) => c.encrypt(data)?,
            None => pad::pad(data, BLOCK_SIZE)?,
        };
        self.io.write_all(&block).await?;
        self.io.flush().await?;
        Ok(())
    }
}

/// A connection after the SMP handshake.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The reading half.
    pub reader: BlockReader<ReadHalf<SmpTlsStream<S>>>,
    /// The writing half.
    pub writer: BlockWriter<WriteHalf<SmpTlsStream<S>>>,
    /// The agreed version.
    pub version: Version,
    /// The session id.
    pub session_id: Vec<u8>,
    /// The relay's X25519 session key (v>=7), for command authenticators.
    pub session_key: Option<x25519::SecretKey>,
}

fn sign_online(identity: &ServerIdentity, msg: &[u8]) -> Result<[u8; 64], TransportError> {
    let key = identity.online_key();
    let rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8) = &key else {
        return Err(TransportError::OnlineKey);
    };
    let pair =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.secret_pkcs8_der())
            .map_err(|_| TransportError::OnlineKey)?;
    let mut out = [0u8; 64];
    out.copy_from_slice(pair.sign(msg).as_ref());
    Ok(out)
}

/// Runs the relay side of the SMP handshake on an accepted TLS connection.
/// Without ALPN `smp/1` only version 6 is offered, as the reference does.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: SmpTlsStream<S>,
    identity: &ServerIdentity,
    versions: VersionRange,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Accepted<S>, TransportError> {
    let versions = if tls.alpn() == Some(ALPN_SMP) {
        versions
    } else {
        VersionRange::new(Version::MIN, Version::MIN)?
    };
    let secret = x25519::SecretKey::generate(rng);
    let session_id = tls.session_id().to_vec();
    let auth = if versions.max() >= Version::AUTH_CMDS {
        let tbs = X25519PublicKey(*secret.public_key().as_bytes()).to_der();
        let sig = sign_online(identity, &tbs)?;
        Some(CertChainPubKey::new(
            vec![
                LargeBytes::new(identity.online_der())?,
                LargeBytes::new(identity.identity_der())?,
            ],
            LargeBytes::new(build_ed25519_signed(&tbs, &sig))?,
        )?)
    } else {
        None
    };
    let hello = ServerHello {
        versions,
        session_id: ShortBytes::new(session_id.clone())?,
        auth,
    };
    tls.write_all(&encode_handshake_block(&hello.encode()?)?)
        .await?;
    tls.flush().await?;
    let mut block = vec![0u8; BLOCK_SIZE];
    tls.read_exact(&mut block).await?;
    let client = ClientHello::decode(decode_handshake_block(&block)?)?;
    if client.key_hash.as_bytes() != identity.key_hash().as_slice() {
        return Err(TransportError::Identity);
    }
    if !versions.contains(client.version) {
        return Err(TransportError::Version(client.version.0));
    }
    let version = client.version;
    let (snd, rcv) = match &client.auth_key {
        Some(k) if version >= Version::ENCRYPTED_BLOCK => {
            let shared = secret.diffie_hellman(&x25519::PublicKey::from_bytes(k.0));
            let keys = sbc_init(&session_id, shared.as_bytes());
            (
                Some(BlockChain::new(keys.snd)),
                Some(BlockChain::new(keys.rcv)),
            )
        }
        _ => (None, None),
    };
    let (r, w) = tokio::io::split(tls);
    Ok(Accepted {
        reader: BlockReader { io: r, chain: rcv },
        writer: BlockWriter { io: w, chain: snd },
        version,
        session_id,
        session_key: (version >= Version::AUTH_CMDS).then_some(secret),
    })
}
