//! The SMP block transport: after the hello blocks, every read and write is one
//! 16384-byte block, either padded (`Word16 length || data || '#'*`) or, from version 11
//! when the client sent its X25519 key, encrypted with the block chain.
//!
//! [`SmpTransport::into_split`] splits a connection into a [`BlockReader`] and a
//! [`BlockWriter`], so that one task can wait for blocks while another writes. The two
//! directions have separate block chains, so each half takes its own.

use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain};
use smp_groups_crypto::x25519;
use smp_groups_crypto::{CryptoRng, RngCore};
use smp_groups_wire::pad;
use smp_groups_wire::smp::{Version, VersionRange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::error::NetError;
use crate::handshake::{self, Negotiated};
use crate::identity::ServerIdentity;
use crate::stream::SmpTlsStream;

/// The two directions of block encryption.
#[derive(Debug)]
struct Chains {
    snd: BlockChain,
    rcv: BlockChain,
}

impl Chains {
    /// The chains of a connection at `version` whose peer sent the X25519 key `peer`:
    /// from version 11, keyed by `sbc_init(session id, X25519(secret, peer))`; none
    /// before, or without the peer's key. The relay sends with the `snd` chain of
    /// `sbc_init`, the client with its `rcv` chain.
    fn agree(
        session_id: &[u8],
        secret: &x25519::SecretKey,
        peer: Option<&x25519::PublicKey>,
        version: Version,
        relay_side: bool,
    ) -> Result<Option<Self>, NetError> {
        let Some(peer) = peer.filter(|_| version >= Version::ENCRYPTED_BLOCK) else {
            return Ok(None);
        };
        let keys = handshake::chain_keys(session_id, secret, peer)?;
        let (snd, rcv) = if relay_side {
            (&keys.snd, &keys.rcv)
        } else {
            (&keys.rcv, &keys.snd)
        };
        Ok(Some(Self {
            snd: BlockChain::new(snd.clone()),
            rcv: BlockChain::new(rcv.clone()),
        }))
    }
}

/// An SMP connection after its handshake: a TLS stream carrying 16384-byte blocks.
#[derive(Debug)]
pub struct SmpTransport<S> {
    tls: SmpTlsStream<S>,
    version: Version,
    chains: Option<Chains>,
    /// Client side: the relay's X25519 session key. Relay side: none.
    peer_session_key: Option<x25519::PublicKey>,
    /// Relay side: its X25519 session secret. Client side: none.
    session_secret: Option<x25519::SecretKey>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmpTransport<S> {
    /// Runs the client side of the SMP handshake over an established TLS connection:
    /// reads the relay's hello, checks its session id and (from version 7) its
    /// certificate chain against `key_hash` and its session key signature against the TLS
    /// certificate, picks the highest common version in `versions`, and sends the client
    /// hello with a fresh X25519 key (version 7 and later).
    pub async fn client(
        mut tls: SmpTlsStream<S>,
        key_hash: [u8; 32],
        versions: VersionRange,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, NetError> {
        let secret = x25519::SecretKey::generate(rng);
        let block = read_raw_block(&mut tls).await?;
        let hello = handshake::check_server_hello(&tls, &block, key_hash, versions)?;
        let client_key = (hello.version >= Version::AUTH_CMDS).then(|| secret.public_key());
        let out = handshake::client_hello_block(hello.version, key_hash, client_key.as_ref())?;
        write_raw_block(&mut tls, &out).await?;
        let chains = Chains::agree(
            tls.session_id(),
            &secret,
            hello.server_key.as_ref(),
            hello.version,
            false,
        )?;
        Ok(Self {
            tls,
            version: hello.version,
            chains,
            peer_session_key: hello.server_key,
            session_secret: None,
        })
    }

    /// Runs the relay side of the SMP handshake over an established TLS connection:
    /// sends the hello (version range, session id and, from version 7, the certificate
    /// chain with a fresh X25519 session key signed by the online key), then reads the
    /// client hello and checks its key hash and version. Without ALPN `smp/1` the relay
    /// offers version 6 only, as SMP relays do.
    pub async fn server(
        mut tls: SmpTlsStream<S>,
        identity: &ServerIdentity,
        versions: VersionRange,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self, NetError> {
        let secret = x25519::SecretKey::generate(rng);
        let versions = if tls.alpn() == Some(crate::ALPN_SMP) {
            versions
        } else {
            VersionRange::new(Version::MIN, Version::MIN)?
        };
        let out = handshake::server_hello_block(&tls, identity, versions, &secret.public_key())?;
        write_raw_block(&mut tls, &out).await?;
        let block = read_raw_block(&mut tls).await?;
        let Negotiated {
            version,
            client_key,
        } = handshake::check_client_hello(&block, identity.key_hash(), versions)?;
        let chains = Chains::agree(
            tls.session_id(),
            &secret,
            client_key.as_ref(),
            version,
            true,
        )?;
        Ok(Self {
            tls,
            version,
            chains,
            peer_session_key: None,
            session_secret: Some(secret),
        })
    }

    /// Sends `data` as one block (at most 16366 bytes with block encryption, 16382
    /// without).
    pub async fn send_block(&mut self, data: &[u8]) -> Result<(), NetError> {
        let block = seal(self.chains.as_mut().map(|c| &mut c.snd), data)?;
        write_raw_block(&mut self.tls, &block).await
    }

    /// Receives one block and returns its data.
    pub async fn recv_block(&mut self) -> Result<Vec<u8>, NetError> {
        let block = read_raw_block(&mut self.tls).await?;
        open(self.chains.as_mut().map(|c| &mut c.rcv), block)
    }

    /// Splits the connection into its reading and writing halves, each with the block
    /// chain of its direction. Take the version, session id and keys first: the halves
    /// carry only the stream and the chains.
    pub fn into_split(self) -> (TransportReader<S>, TransportWriter<S>) {
        let (snd, rcv) = match self.chains {
            Some(Chains { snd, rcv }) => (Some(snd), Some(rcv)),
            None => (None, None),
        };
        let (r, w) = tokio::io::split(self.tls);
        (
            BlockReader { io: r, chain: rcv },
            BlockWriter { io: w, chain: snd },
        )
    }
}

/// The reading half of an [`SmpTransport`] over `S`.
pub type TransportReader<S> = BlockReader<ReadHalf<SmpTlsStream<S>>>;

/// The writing half of an [`SmpTransport`] over `S`.
pub type TransportWriter<S> = BlockWriter<WriteHalf<SmpTlsStream<S>>>;

/// The receiving half of a split [`SmpTransport`].
#[derive(Debug)]
pub struct BlockReader<R> {
    io: R,
    chain: Option<BlockChain>,
}

/// The sending half of a split [`SmpTransport`].
#[derive(Debug)]
pub struct BlockWriter<W> {
    io: W,
    chain: Option<BlockChain>,
}

impl<R: AsyncRead + Unpin> BlockReader<R> {
    /// Receives one block and returns its data.
    pub async fn recv(&mut self) -> Result<Vec<u8>, NetError> {
        let block = read_raw_block(&mut self.io).await?;
        open(self.chain.as_mut(), block)
    }
}

impl<W: AsyncWrite + Unpin> BlockWriter<W> {
    /// Sends `data` as one block (the same limits as [`SmpTransport::send_block`]).
    pub async fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
        let block = seal(self.chain.as_mut(), data)?;
        write_raw_block(&mut self.io, &block).await
    }

    /// Ends the sending direction: flushes, and over TLS sends `close_notify`
    /// (the peer then reads a clean end of stream, not an abrupt one).
    pub async fn close(&mut self) -> Result<(), NetError> {
        tokio::io::AsyncWriteExt::shutdown(&mut self.io).await?;
        Ok(())
    }
}

impl<S> SmpTransport<S> {
    /// The agreed protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The SMP session id (see [`SmpTlsStream::session_id`]).
    pub fn session_id(&self) -> &[u8] {
        self.tls.session_id()
    }

    /// Whether blocks are encrypted with the block chain (version 11 and later, when the
    /// client sent its key).
    pub fn block_encryption(&self) -> bool {
        self.chains.is_some()
    }

    /// Client side: the relay's authenticated X25519 session key (for crypto_box
    /// authorization of commands from version 7).
    pub fn server_session_key(&self) -> Option<&x25519::PublicKey> {
        self.peer_session_key.as_ref()
    }

    /// Relay side: its X25519 session secret.
    pub fn session_secret(&self) -> Option<&x25519::SecretKey> {
        self.session_secret.as_ref()
    }

    /// The TLS stream.
    pub fn tls(&self) -> &SmpTlsStream<S> {
        &self.tls
    }
}

/// The block for `data`: encrypted with `chain`, or padded without one.
fn seal(chain: Option<&mut BlockChain>, data: &[u8]) -> Result<Vec<u8>, NetError> {
    match chain {
        Some(c) => Ok(c.encrypt(data)?),
        None => Ok(pad::pad(data, BLOCK_SIZE)?),
    }
}

/// The data of `block`: decrypted with `chain` (in the block's buffer), or
/// unpadded without one.
fn open(chain: Option<&mut BlockChain>, block: Vec<u8>) -> Result<Vec<u8>, NetError> {
    match chain {
        Some(c) => Ok(c.decrypt_owned(block)?),
        None => Ok(pad::unpad(&block)?.to_vec()),
    }
}

/// Reads exactly one block.
/// A peer that ends the stream cleanly before a block (over TLS, with
/// `close_notify`) gives [`NetError::Closed`]; one that stops inside a block,
/// or without `close_notify`, an I/O error.
async fn read_raw_block<R: AsyncRead + Unpin>(io: &mut R) -> Result<Vec<u8>, NetError> {
    let mut block = vec![0u8; BLOCK_SIZE];
    let first = io.read(&mut block).await?;
    if first == 0 {
        return Err(NetError::Closed);
    }
    io.read_exact(block.get_mut(first..).unwrap_or_default())
        .await?;
    Ok(block)
}

/// Writes one block and flushes it.
async fn write_raw_block<W: AsyncWrite + Unpin>(io: &mut W, block: &[u8]) -> Result<(), NetError> {
    io.write_all(block).await?;
    io.flush().await?;
    Ok(())
}
