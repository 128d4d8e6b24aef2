//! The client's connection: the SMP client handshake (as in
//! [`SmpTransport::client`](crate::SmpTransport::client)) over a TLS stream, then the
//! stream split into a block reader and a block writer, so that one side can wait for
//! blocks while the other writes.

use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain};
use smp_groups_crypto::{CryptoRng, RngCore, x25519};
use smp_groups_wire::pad;
use smp_groups_wire::smp::{Version, VersionRange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::error::NetError;
use crate::handshake;
use crate::stream::SmpTlsStream;

/// Receives blocks.
#[derive(Debug)]
pub(crate) struct BlockReader<R> {
    io: R,
    chain: Option<BlockChain>,
}

/// Sends blocks.
#[derive(Debug)]
pub(crate) struct BlockWriter<W> {
    io: W,
    chain: Option<BlockChain>,
}

impl<R: AsyncRead + Unpin> BlockReader<R> {
    /// The data of the next block.
    pub(crate) async fn recv(&mut self) -> Result<Vec<u8>, NetError> {
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
    pub(crate) async fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
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
pub(crate) struct Link<S> {
    pub(crate) reader: BlockReader<ReadHalf<SmpTlsStream<S>>>,
    pub(crate) writer: BlockWriter<WriteHalf<SmpTlsStream<S>>>,
    pub(crate) version: Version,
    pub(crate) session_id: Vec<u8>,
    pub(crate) server_key: Option<x25519::PublicKey>,
}

/// The client side of the SMP handshake over an established TLS connection: the same
/// checks as [`SmpTransport::client`](crate::SmpTransport::client).
pub(crate) async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: SmpTlsStream<S>,
    key_hash: [u8; 32],
    versions: VersionRange,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Link<S>, NetError> {
    let secret = x25519::SecretKey::generate(rng);
    let mut block = vec![0u8; BLOCK_SIZE];
    tls.read_exact(&mut block).await?;
    let hello = handshake::check_server_hello(&tls, &block, key_hash, versions)?;
    let client_key = (hello.version >= Version::AUTH_CMDS).then(|| secret.public_key());
    let out = handshake::client_hello_block(hello.version, key_hash, client_key.as_ref())?;
    tls.write_all(&out).await?;
    tls.flush().await?;
    let (snd, rcv) = match &hello.server_key {
        Some(server_key) if hello.version >= Version::ENCRYPTED_BLOCK => {
            let keys = handshake::chain_keys(tls.session_id(), &secret, server_key)?;
            // The client sends with the relay's receiving key and vice versa.
            (
                Some(BlockChain::new(keys.rcv.clone())),
                Some(BlockChain::new(keys.snd.clone())),
            )
        }
        _ => (None, None),
    };
    let session_id = tls.session_id().to_vec();
    let (r, w) = tokio::io::split(tls);
    Ok(Link {
        reader: BlockReader { io: r, chain: rcv },
        writer: BlockWriter { io: w, chain: snd },
        version: hello.version,
        session_id,
        server_key: hello.server_key,
    })
}
