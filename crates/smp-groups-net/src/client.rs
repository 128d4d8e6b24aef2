//! The SMP client: one connection to a relay, shared by cheap clones of
//! [`SmpClient`].
//!
//! [`SmpClient::connect`] connects over TCP (or [`SmpClient::connect_via`] over the
//! stream of any [`Dialer`](crate::Dialer)), runs TLS and the SMP handshake, and starts
//! one background task that owns the connection. Commands are queued to that task,
//! which writes as many as fit into each block, matches responses to commands by their
//! random correlation id, and sends relay events (`MSG`, `END`, `DELD`) to the event
//! stream ([`SmpClient::take_events`]). [`ReconnectingClient`] adds reconnection with
//! backoff and resubscription.

mod config;
mod error;
mod event;
mod reconnect;
mod worker;

use std::sync::{Arc, Mutex};

use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::x25519;
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    AuthPublicKey, Command, Ed25519PublicKey, MsgFlags, ProtocolServer, QueueIds, RecipientCommand,
    SenderCommand, ServerMsg, Version, X25519PublicKey,
};
use smp_groups_wire::smp::{NewQueue, QueueReqData, SubscriptionMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

pub use config::{ReconnectConfig, SmpClientConfig};
pub use error::ClientError;
pub use event::{ConnectionEvent, EventReceiver};
pub use reconnect::ReconnectingClient;

use crate::dial::{Dialer, TcpDialer};
use worker::{CloseReason, Request, WorkerParts};

/// A message taken with `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id (to acknowledge it).
    pub msg_id: Vec<u8>,
    /// The body, encrypted for the recipient.
    pub body: Vec<u8>,
}

/// A connection to an SMP relay. Clones share the connection; it closes when every
/// clone is dropped or when it fails.
#[derive(Debug, Clone)]
pub struct SmpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Request>,
    version: Version,
    session_id: Vec<u8>,
    server_key: Option<x25519::PublicKey>,
    config: SmpClientConfig,
    close: Arc<CloseReason>,
    events: Mutex<Option<EventReceiver>>,
}

impl SmpClient {
    /// Connects to `server` (`smp://keyHash@host:port`): TCP to its first host that
    /// accepts, TLS with the key hash check, the SMP handshake, all within
    /// `config.connect_timeout`.
    pub async fn connect(
        server: &ProtocolServer,
        config: SmpClientConfig,
    ) -> Result<Self, ClientError> {
        Self::connect_via(&TcpDialer, server, config).await
    }

    /// [`connect`](Self::connect) over the stream `dialer` opens to `server`:
    /// TLS with the key hash check and the SMP handshake run over it, all
    /// within `config.connect_timeout`.
    pub async fn connect_via(
        dialer: &dyn Dialer,
        server: &ProtocolServer,
        config: SmpClientConfig,
    ) -> Result<Self, ClientError> {
        let key_hash = server
            .key_hash
            .as_sha256()
            .ok_or(ClientError::Address("key hash is not 32 bytes"))?;
        let connect = async {
            let io = dialer.dial(server).await?;
            Self::handshake(io, key_hash, config.clone()).await
        };
        tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::ConnectTimeout)?
    }

    /// Runs TLS and the SMP handshake over `io` (any byte stream to the relay with
    /// key hash `key_hash`) and starts the connection task. No connect timeout is
    /// applied here.
    pub async fn handshake<S>(
        io: S,
        key_hash: [u8; 32],
        config: SmpClientConfig,
    ) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let hs = |e| ClientError::Handshake(Arc::new(e));
        let tls_config = crate::client_config(key_hash).map_err(hs)?;
        let tls = crate::SmpTlsStream::connect(io, &tls_config)
            .await
            .map_err(hs)?;
        let mut rng = smp_groups_crypto::rng::system();
        let transport = crate::SmpTransport::client(tls, key_hash, config.versions, &mut rng)
            .await
            .map_err(hs)?;
        let (commands, commands_rx) = mpsc::channel(config.command_queue.max(1));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let close = Arc::new(CloseReason::default());
        let inner = Inner {
            commands,
            version: transport.version(),
            session_id: transport.session_id().to_vec(),
            server_key: transport.server_session_key().copied(),
            config: config.clone(),
            close: close.clone(),
            events: Mutex::new(Some(events_rx)),
        };
        tokio::spawn(worker::run(
            transport,
            WorkerParts {
                commands: commands_rx,
                events: events_tx,
                close,
                keepalive: config.keepalive,
                keepalive_max_missed: config.keepalive_max_missed,
            },
        ));
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The event stream (queue events, then `Disconnected` when the connection ends).
    /// It can be taken once; later calls return `None`.
    pub fn take_events(&self) -> Option<EventReceiver> {
        self.inner.events.lock().ok().and_then(|mut e| e.take())
    }

    /// The agreed SMP version.
    pub fn version(&self) -> Version {
        self.inner.version
    }

    /// The SMP session id.
    pub fn session_id(&self) -> &[u8] {
        &self.inner.session_id
    }

    /// The relay's authenticated X25519 session key (version 7 and later).
    pub fn server_session_key(&self) -> Option<&x25519::PublicKey> {
        self.inner.server_key.as_ref()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }

    /// Sends one command and waits for its response (`ERR` becomes
    /// [`ClientError::Server`]). `key` signs the transmission.
    pub async fn command(
        &self,
        entity_id: &[u8],
        command: &Command,
        key: Option<&SigningKey>,
    ) -> Result<ServerMsg, ClientError> {
        self.request(entity_id, command, key, false).await
    }

    async fn request(
        &self,
        entity_id: &[u8],
        command: &Command,
        key: Option<&SigningKey>,
        msg_is_event: bool,
    ) -> Result<ServerMsg, ClientError> {
        let inner = &self.inner;
        let corr_id = worker::random_corr_id();
        let bytes = worker::encode_transmission(
            inner.version,
            &inner.session_id,
            &corr_id,
            entity_id,
            command,
            key,
        )?;
        let (reply, response) = oneshot::channel();
        let req = Request {
            corr_id,
            entity_id: entity_id.to_vec(),
            bytes,
            msg_is_event,
            reply,
        };
        let timeout = inner.config.command_timeout;
        let sent = tokio::time::timeout(timeout, inner.commands.send(req)).await;
        match sent {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(_)) => return Err(inner.close.get()),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout(timeout, response).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(_)) => Err(inner.close.get()),
            Ok(Ok(Ok(ServerMsg::Err(e)))) => Err(ClientError::Server(e)),
            Ok(Ok(r)) => r,
        }
    }

    /// `NEW`: creates a queue with the recipient's signing key `rcv_key` and DH key
    /// `rcv_dh_key`, subscribed on this connection when `subscribe`. From version 9 it
    /// is a messaging queue (the sender may secure it with `SKEY`).
    pub async fn new_queue(
        &self,
        rcv_key: &SigningKey,
        rcv_dh_key: &x25519::PublicKey,
        subscribe: bool,
    ) -> Result<QueueIds, ClientError> {
        let new = NewQueue {
            rcv_auth_key: AuthPublicKey::Ed25519(Ed25519PublicKey(
                *rcv_key.public_key().as_bytes(),
            )),
            rcv_dh_key: X25519PublicKey(*rcv_dh_key.as_bytes()),
            basic_auth: None,
            subscribe_mode: if subscribe {
                SubscriptionMode::Subscribe
            } else {
                SubscriptionMode::OnlyCreate
            },
            queue_req: (self.version() >= Version::SND_AUTH_KEY)
                .then_some(QueueReqData::Messaging(None)),
            ntf_creds: None,
        };
        self.create_queue(rcv_key, new).await
    }

    /// `NEW` with every field given, signed with `rcv_key` (which should match
    /// `new.rcv_auth_key`).
    pub async fn create_queue(
        &self,
        rcv_key: &SigningKey,
        new: NewQueue,
    ) -> Result<QueueIds, ClientError> {
        let cmd = Command::Recipient(RecipientCommand::New(Box::new(new)));
        match self.request(&[], &cmd, Some(rcv_key), false).await? {
            ServerMsg::Ids(ids) => Ok(ids),
            other => Err(unexpected(&other, "NEW")),
        }
    }

    /// `KEY`: the recipient secures the queue with the sender's key.
    pub async fn secure(
        &self,
        rcv_id: &[u8],
        rcv_key: &SigningKey,
        sender_key: &smp_groups_crypto::ed25519::PublicKey,
    ) -> Result<(), ClientError> {
        let key = AuthPublicKey::Ed25519(Ed25519PublicKey(*sender_key.as_bytes()));
        let cmd = Command::Recipient(RecipientCommand::Key(key));
        self.expect_ok(rcv_id, &cmd, Some(rcv_key), "KEY").await
    }

    /// `SKEY` (version 9 and later): the sender secures the queue with its own key,
    /// signing with it.
    pub async fn skey(&self, snd_id: &[u8], snd_key: &SigningKey) -> Result<(), ClientError> {
        let key = AuthPublicKey::Ed25519(Ed25519PublicKey(*snd_key.public_key().as_bytes()));
        let cmd = Command::Sender(SenderCommand::SKey(key));
        self.expect_ok(snd_id, &cmd, Some(snd_key), "SKEY").await
    }

    /// `SUB`: subscribes to the queue. A message waiting in it comes as a
    /// [`ConnectionEvent::Queue`] `MSG`.
    pub async fn sub(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        let cmd = Command::Recipient(RecipientCommand::Sub);
        self.expect_ok_or_msg(rcv_id, &cmd, rcv_key, "SUB").await
    }

    /// `SEND`: sends `body` to the queue, signed with `snd_key` when the queue is
    /// secured.
    pub async fn send(
        &self,
        snd_id: &[u8],
        snd_key: Option<&SigningKey>,
        flags: MsgFlags,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let cmd = Command::Sender(SenderCommand::Send {
            flags,
            body: body.to_vec(),
        });
        self.expect_ok(snd_id, &cmd, snd_key, "SEND").await
    }

    /// `ACK`: acknowledges message `msg_id`. The next message, if any, comes as a
    /// [`ConnectionEvent::Queue`] `MSG`.
    pub async fn ack(
        &self,
        rcv_id: &[u8],
        rcv_key: &SigningKey,
        msg_id: &[u8],
    ) -> Result<(), ClientError> {
        let id = ShortBytes::new(msg_id.to_vec()).map_err(ClientError::Encode)?;
        let cmd = Command::Recipient(RecipientCommand::Ack(id));
        self.expect_ok_or_msg(rcv_id, &cmd, rcv_key, "ACK").await
    }

    /// `OFF`: suspends the queue (no more messages are accepted).
    pub async fn off(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        let cmd = Command::Recipient(RecipientCommand::Off);
        self.expect_ok(rcv_id, &cmd, Some(rcv_key), "OFF").await
    }

    /// `DEL`: deletes the queue.
    pub async fn del(&self, rcv_id: &[u8], rcv_key: &SigningKey) -> Result<(), ClientError> {
        let cmd = Command::Recipient(RecipientCommand::Del);
        self.expect_ok(rcv_id, &cmd, Some(rcv_key), "DEL").await
    }

    /// `GET`: takes the next message without subscribing (`None` when the queue is
    /// empty).
    pub async fn get(
        &self,
        rcv_id: &[u8],
        rcv_key: &SigningKey,
    ) -> Result<Option<ReceivedMessage>, ClientError> {
        let cmd = Command::Recipient(RecipientCommand::Get);
        match self.request(rcv_id, &cmd, Some(rcv_key), false).await? {
            ServerMsg::Msg { msg_id, body } => Ok(Some(ReceivedMessage {
                msg_id: msg_id.as_slice().to_vec(),
                body,
            })),
            ServerMsg::Ok => Ok(None),
            other => Err(unexpected(&other, "GET")),
        }
    }

    /// `PING`, answered with `PONG`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.request(&[], &Command::Ping, None, false).await? {
            ServerMsg::Pong => Ok(()),
            other => Err(unexpected(&other, "PING")),
        }
    }

    async fn expect_ok(
        &self,
        entity_id: &[u8],
        cmd: &Command,
        key: Option<&SigningKey>,
        name: &'static str,
    ) -> Result<(), ClientError> {
        match self.request(entity_id, cmd, key, false).await? {
            ServerMsg::Ok => Ok(()),
            other => Err(unexpected(&other, name)),
        }
    }

    async fn expect_ok_or_msg(
        &self,
        entity_id: &[u8],
        cmd: &Command,
        key: &SigningKey,
        name: &'static str,
    ) -> Result<(), ClientError> {
        match self.request(entity_id, cmd, Some(key), true).await? {
            ServerMsg::Ok | ServerMsg::Sok(_) | ServerMsg::Msg { .. } => Ok(()),
            other => Err(unexpected(&other, name)),
        }
    }
}

fn unexpected(msg: &ServerMsg, command: &'static str) -> ClientError {
    ClientError::UnexpectedResponse(msg.tag(), command)
}
