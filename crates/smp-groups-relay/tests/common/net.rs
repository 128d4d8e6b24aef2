//! A minimal SMP client over TLS for the loopback tests: handshake, block
//! encryption, batches, signed commands.

use std::net::SocketAddr;

use smp_groups_crypto::sbc::{BLOCK_SIZE, BlockChain, sbc_init};
use smp_groups_crypto::{ed25519, rng, x25519};
use smp_groups_net::{SmpTlsStream, client_config};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::KeyHash;
use smp_groups_wire::smp::{
    self as wsmp, SmpEncode, Transmission, TransmissionAuth, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{
    ClientHello, ServerHello, decode_handshake_block, encode_handshake_block,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A received transmission: corrId, entityId, command bytes.
pub type Received = (Vec<u8>, Vec<u8>, Vec<u8>);

pub struct NetClient {
    pub version: Version,
    pub session_id: Vec<u8>,
    writer: WriteHalf<SmpTlsStream<TcpStream>>,
    snd: Option<BlockChain>,
    rx: mpsc::UnboundedReceiver<Received>,
    tx: Option<mpsc::UnboundedSender<Received>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// A client that does not read: the half it leaves alone and its chain.
    unread: Option<(ReadHalf<SmpTlsStream<TcpStream>>, Option<BlockChain>)>,
}

impl NetClient {
    pub async fn connect(addr: SocketAddr, key_hash: [u8; 32], version: u16) -> Self {
        Self::connect_with(addr, key_hash, version, true).await
    }

    /// A client that reads nothing the relay sends until [`start_reading`].
    pub async fn connect_unread(addr: SocketAddr, key_hash: [u8; 32], version: u16) -> Self {
        Self::connect_with(addr, key_hash, version, false).await
    }

    /// Starts reading what the relay sent (and sends).
    pub fn start_reading(&mut self) {
        if let (Some((r, chain)), Some(tx)) = (self.unread.take(), self.tx.take()) {
            self.reader = Some(tokio::spawn(read_loop(r, chain, self.version, tx)));
        }
    }

    async fn connect_with(addr: SocketAddr, key_hash: [u8; 32], version: u16, read: bool) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut tls = SmpTlsStream::connect(tcp, &client_config(key_hash).unwrap())
            .await
            .unwrap();
        let mut block = vec![0u8; BLOCK_SIZE];
        tls.read_exact(&mut block).await.unwrap();
        let hello =
            smp_groups_wire::decode_all::<ServerHello>(decode_handshake_block(&block).unwrap())
                .unwrap();
        assert_eq!(
            hello.session_id.as_slice(),
            tls.session_id(),
            "relay sends the session id"
        );
        let version = Version(version);
        assert!(hello.versions.contains(version));
        let secret = x25519::SecretKey::generate(&mut rng::system());
        let auth = hello
            .auth
            .as_ref()
            .expect("v7+ relays send their session key");
        let server_key = x25519::PublicKey::from_bytes(auth.signed_key().x25519_key().unwrap().0);
        let ch = ClientHello {
            version,
            key_hash: KeyHash::from(key_hash),
            auth_key: Some(X25519PublicKey(*secret.public_key().as_bytes())),
            proxy_server: false,
            service: None,
        };
        tls.write_all(&encode_handshake_block(&ch.encode().unwrap()).unwrap())
            .await
            .unwrap();
        tls.flush().await.unwrap();
        let session_id = tls.session_id().to_vec();
        let (snd, rcv) = if version >= Version::ENCRYPTED_BLOCK {
            let keys = sbc_init(&session_id, secret.diffie_hellman(&server_key).as_bytes());
            (
                Some(BlockChain::new(keys.rcv)),
                Some(BlockChain::new(keys.snd)),
            )
        } else {
            (None, None)
        };
        let (r, w) = tokio::io::split(tls);
        let (tx, rx) = mpsc::unbounded_channel();
        let (reader, unread, tx) = if read {
            (
                Some(tokio::spawn(read_loop(r, rcv, version, tx))),
                None,
                None,
            )
        } else {
            (None, Some((r, rcv)), Some(tx))
        };
        Self {
            version,
            session_id,
            writer: w,
            snd,
            rx,
            tx,
            reader,
            unread,
        }
    }

    /// One transmission of raw command bytes, signed by `key` when given.
    pub fn raw(
        &self,
        key: Option<&ed25519::SigningKey>,
        corr: &[u8],
        entity: &[u8],
        cmd: &[u8],
    ) -> Vec<u8> {
        let for_auth = wsmp::encode_for_auth(&self.session_id, corr, entity, cmd).unwrap();
        let t = Transmission {
            auth: key.map_or(TransmissionAuth::None, |k| {
                TransmissionAuth::Signature(k.sign(&for_auth).to_bytes())
            }),
            service_sig: None,
            session_id: None,
            corr_id: ShortBytes::new(corr.to_vec()).unwrap(),
            entity_id: ShortBytes::new(entity.to_vec()).unwrap(),
            command: cmd.to_vec(),
        };
        let mut out = Vec::new();
        t.smp_encode(self.version, &mut out).unwrap();
        out
    }

    pub fn cmd(
        &self,
        key: Option<&ed25519::SigningKey>,
        corr: &[u8],
        entity: &[u8],
        cmd: &wsmp::Command,
    ) -> Vec<u8> {
        let mut c = Vec::new();
        cmd.smp_encode(self.version, &mut c).unwrap();
        self.raw(key, corr, entity, &c)
    }

    /// Sends the transmissions as one batch in one block.
    pub async fn send(&mut self, ts: &[Vec<u8>]) {
        let batch = wsmp::encode_batch(ts).unwrap();
        self.send_block(&batch).await;
    }

    /// Sends raw block data.
    pub async fn send_block(&mut self, data: &[u8]) {
        let block = match &mut self.snd {
            Some(c) => c.encrypt(data).unwrap(),
            None => smp_groups_wire::pad::pad(data, BLOCK_SIZE).unwrap(),
        };
        self.writer.write_all(&block).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// Sends raw block data; false if the write did not finish within `limit`
    /// (the relay stopped reading).
    pub async fn try_send_block(&mut self, data: &[u8], limit: std::time::Duration) -> bool {
        let block = match &mut self.snd {
            Some(c) => c.encrypt(data).unwrap(),
            None => smp_groups_wire::pad::pad(data, BLOCK_SIZE).unwrap(),
        };
        let write = async {
            self.writer.write_all(&block).await?;
            self.writer.flush().await
        };
        matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
    }

    /// Reads until the relay closes the connection; false if it is still open
    /// after `limit`. Returns how many transmissions arrived meanwhile.
    pub async fn closed_within(&mut self, limit: std::time::Duration) -> Option<usize> {
        self.start_reading();
        let mut n = 0;
        let end = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(_)) => n += 1,
                Ok(None) => return Some(n),
                Err(_) => return None,
            }
        }
    }

    /// The next received transmission (fails the test after 30 s).
    pub async fn recv(&mut self) -> Received {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.rx.recv())
            .await
            .expect("a transmission within 30 s")
            .expect("connection open")
    }

    /// The command of the next received transmission, decoded.
    pub async fn recv_msg(&mut self) -> wsmp::ServerMsg {
        let (_, _, bytes) = self.recv().await;
        smp_groups_wire::decode_all_with::<wsmp::ServerMsg, _>(&bytes, self.version).unwrap()
    }

    /// Whether anything arrives within `ms` milliseconds.
    pub async fn try_recv_within(&mut self, ms: u64) -> Option<Received> {
        tokio::time::timeout(std::time::Duration::from_millis(ms), self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

async fn read_loop(
    mut r: ReadHalf<SmpTlsStream<TcpStream>>,
    mut chain: Option<BlockChain>,
    v: Version,
    tx: mpsc::UnboundedSender<Received>,
) {
    let mut block = vec![0u8; BLOCK_SIZE];
    while r.read_exact(&mut block).await.is_ok() {
        let data = match &mut chain {
            Some(c) => c.decrypt(&block).unwrap(),
            None => smp_groups_wire::pad::unpad(&block).unwrap().to_vec(),
        };
        for t in wsmp::decode_batch(&data).unwrap() {
            let t = smp_groups_wire::decode_all_with::<Transmission, _>(t, v).unwrap();
            assert!(t.auth.is_none());
            if tx
                .send((t.corr_id.into_vec(), t.entity_id.into_vec(), t.command))
                .is_err()
            {
                return;
            }
        }
    }
}
