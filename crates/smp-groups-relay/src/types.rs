//! The relay's domain types: queue records, stored messages, commands and replies,
//! independent of the wire encoding and the protocol version.

use smp_groups_crypto::{ed25519, x25519};

/// Length of every id the relay creates (recipient, sender and message ids).
pub const ID_LEN: usize = 24;

/// A queue id (recipient or sender), 24 random bytes.
pub type QueueId = [u8; ID_LEN];

/// A message id, 24 random bytes; also the nonce of the delivered box.
pub type MsgId = [u8; ID_LEN];

/// A connection (TLS session) of a client to the relay, as the relay numbers them.
pub type ConnId = u64;

/// A key that authorizes commands on a queue: an Ed25519 key (signatures) or an
/// X25519 key (crypto_box authenticators, SMP v7 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKey {
    /// Commands are signed with the matching Ed25519 key.
    Ed25519(ed25519::PublicKey),
    /// Commands carry an 80-byte authenticator made with the matching X25519 key.
    X25519(x25519::PublicKey),
}

impl AuthKey {
    /// The DER SubjectPublicKeyInfo encoding, as SMP sends keys.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.to_spki_der(),
            Self::X25519(k) => k.to_spki_der(),
        }
    }

    /// Parses a DER SubjectPublicKeyInfo Ed25519 or X25519 key.
    pub fn from_spki_der(der: &[u8]) -> Option<Self> {
        if let Ok(k) = ed25519::PublicKey::from_spki_der(der) {
            return Some(Self::Ed25519(k));
        }
        x25519::PublicKey::from_spki_der(der).ok().map(Self::X25519)
    }
}

/// A queue's DH secret: wiped when dropped, compared in constant time, and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct DhSecret(zeroize::Zeroizing<[u8; 32]>);

impl DhSecret {
    /// Wraps the raw 32 bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(b))
    }

    /// The secret from a 32-byte slice.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let mut s = Self::from_bytes([0; 32]);
        s.0.copy_from_slice(b.get(..32).filter(|_| b.len() == 32)?);
        Some(s)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for DhSecret {
    fn eq(&self, other: &Self) -> bool {
        smp_groups_crypto::ct_eq(self.0.as_slice(), other.0.as_slice())
    }
}

impl Eq for DhSecret {}

impl std::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DhSecret(..)")
    }
}

/// Who may secure a queue and how it is used (`queueMode` of the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// A messaging queue: the sender may secure it with `SKEY`.
    Messaging,
    /// A contact address queue: it is never secured.
    Contact,
}

/// Whether a queue accepts messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueStatus {
    /// Accepts messages.
    Active,
    /// Suspended by the recipient with `OFF`: `SEND` is refused with `ERR AUTH`.
    Off,
}

/// A queue as the relay stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRecord {
    /// The id the recipient addresses the queue by.
    pub recipient_id: QueueId,
    /// The id the sender addresses the queue by.
    pub sender_id: QueueId,
    /// The recipient's key, from `NEW`.
    pub recipient_key: AuthKey,
    /// X25519(relay's queue DH private key, recipient's DH key from `NEW`): the
    /// key of the boxes the relay delivers.
    pub rcv_dh_secret: DhSecret,
    /// The sender's key once the queue is secured (`KEY` or `SKEY`).
    pub sender_key: Option<AuthKey>,
    /// The queue mode, when the client gave one.
    pub mode: Option<QueueMode>,
    /// Active or suspended.
    pub status: QueueStatus,
}

/// What a stored message holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// A message a sender sent.
    Message {
        /// The sender's notification flag.
        notification: bool,
        /// The sender's body, as sent.
        body: Vec<u8>,
    },
    /// The marker the relay stores when the queue reaches its quota; it is
    /// delivered to the recipient like a message.
    Quota,
}

/// A message waiting in a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id (random, chosen by the relay).
    pub id: MsgId,
    /// When the relay accepted it, in Unix seconds.
    pub ts: i64,
    /// The message or the quota marker.
    pub body: MessageBody,
}

/// The authorization of a transmission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// No authorization.
    None,
    /// A 64-byte Ed25519 signature of the authorized bytes.
    Ed25519(ed25519::Signature),
    /// An 80-byte crypto_box authenticator of the authorized bytes (v>=7).
    Authenticator([u8; 80]),
    /// A well-formed signature of an algorithm this relay does not hold keys
    /// for (Ed448); it never verifies.
    Unsupported,
}

impl Authorization {
    /// True unless [`Authorization::None`].
    pub fn is_present(&self) -> bool {
        !matches!(self, Self::None)
    }
}

/// The `NEW` command's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewQueue {
    /// The key that authorizes the recipient's commands.
    pub recipient_key: AuthKey,
    /// The recipient's X25519 key for the delivery boxes.
    pub recipient_dh_key: x25519::PublicKey,
    /// The basic-auth password for creating queues, if the client sent one.
    pub basic_auth: Option<Vec<u8>>,
    /// `S`: subscribe this connection at once; `C`: only create.
    pub subscribe: bool,
    /// The queue mode the client asked for.
    pub mode: Option<QueueMode>,
}

/// A client command, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueCommand {
    /// Create a queue.
    New(NewQueue),
    /// Subscribe to a queue (recipient).
    Sub,
    /// Secure a queue with the sender's key (recipient).
    Key(AuthKey),
    /// Secure a queue with the sender's own key (sender, v>=9).
    SKey(AuthKey),
    /// Send a message (sender).
    Send {
        /// The notification flag.
        notification: bool,
        /// The body.
        body: Vec<u8>,
    },
    /// Acknowledge the delivered message (recipient).
    Ack(Vec<u8>),
    /// Get one message without subscribing (recipient).
    Get,
    /// Suspend the queue (recipient).
    Off,
    /// Delete the queue (recipient).
    Del,
    /// Keep-alive.
    Ping,
    /// A command of the protocol this relay does not serve (notifiers, short
    /// links, proxying, services); answered with `ERR CMD PROHIBITED`.
    NotServed(&'static str),
}

/// A transmission from a client, decoded (the transport and wire layers produce it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The correlation id (echoed in the response; the authenticator's nonce).
    pub corr_id: Vec<u8>,
    /// The queue id (recipient or sender id), or empty.
    pub entity_id: Vec<u8>,
    /// The authorization.
    pub auth: Authorization,
    /// The bytes the authorization covers (session id, corrId, entityId,
    /// command); empty when there is no authorization, and dropped once it
    /// is checked.
    pub authorized: Vec<u8>,
    /// The command.
    pub command: QueueCommand,
}

/// `CMD` error details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// Unknown command tag.
    Unknown,
    /// The command's fields do not parse.
    Syntax,
    /// Not allowed in this state or on this connection.
    Prohibited,
    /// Needs an authorization and an entity id.
    NoAuth,
    /// Must have no authorization (or no entity id).
    HasAuth,
    /// Needs an entity id.
    NoEntity,
}

/// Errors the relay returns in `ERR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The transmission (or block) is malformed.
    Block,
    /// The session id in the transmission is not this session's.
    Session,
    /// A command error.
    Cmd(CmdError),
    /// Authorization failed, or there is no such queue.
    Auth,
    /// The queue is full.
    Quota,
    /// Nothing to acknowledge with that id.
    NoMsg,
    /// The message body is too large.
    LargeMsg,
    /// An error inside the relay (e.g. its store failed).
    Internal,
}

/// What the relay says in a response or event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The new queue's ids and the relay's DH key for it.
    Ids {
        /// Recipient id.
        recipient_id: QueueId,
        /// Sender id.
        sender_id: QueueId,
        /// The relay's X25519 key of this queue.
        server_dh_key: x25519::PublicKey,
        /// The queue mode, echoed.
        mode: Option<QueueMode>,
    },
    /// Subscribed (`OK` before v16, `SOK` with no service from v16).
    Subscribed,
    /// Done.
    Ok,
    /// Answer to `PING`.
    Pong,
    /// A message for the recipient.
    Msg {
        /// The message id (the box nonce).
        msg_id: MsgId,
        /// crypto_box of the padded received-message body.
        enc_body: Vec<u8>,
    },
    /// Another connection subscribed to the queue.
    End,
    /// The queue was deleted (sent as `END` before v10).
    Deld,
    /// An error.
    Err(ErrorCode),
}

/// A transmission from the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's correlation id, or empty for events.
    pub corr_id: Vec<u8>,
    /// The queue id, or empty.
    pub entity_id: Vec<u8>,
    /// What the relay says.
    pub reply: Reply,
}

impl Response {
    /// An event (no correlation id) about queue `entity`.
    pub fn event(entity: &QueueId, reply: Reply) -> Self {
        Self {
            corr_id: Vec::new(),
            entity_id: entity.to_vec(),
            reply,
        }
    }
}

/// What handling one request produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Transmissions for the requesting connection, in order.
    pub responses: Vec<Response>,
    /// Transmissions for other connections (`MSG` to a subscriber, `END`, `DELD`).
    pub events: Vec<(ConnId, Response)>,
    /// Messages to deliver to subscribers when their connection can take them
    /// ([`crate::RelayState::deliver`] makes the `MSG`).
    /// [`crate::RelayState::handle`] has already turned them into `events`.
    pub deliveries: Vec<(ConnId, QueueId)>,
}
