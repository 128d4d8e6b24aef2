//! The queue logic of the relay, free of sockets and clocks: requests in,
//! responses and events out, with every change committed to the [`Store`]
//! before the response that reports it is returned.
//!
//! The rules follow the reference relay (`Server.hs`): credentials are checked
//! first (`CMD NO_AUTH` / `HAS_AUTH` / `NO_ENTITY`), then the authorization
//! against the queue's key (`AUTH` also when there is no such queue), then the
//! command itself. One connection at a time is subscribed to a queue; one
//! message at a time is delivered until it is acknowledged.

use std::collections::{HashMap, VecDeque};

use smp_groups_crypto::{CryptoRng, RngCore, nacl, x25519};

use crate::auth::{self, SessionAuth};
use crate::config::{RCV_PADDED_LEN, RelayConfig, max_message_length};
use crate::store::{Store, StoreError};
use crate::types::{
    AuthKey, Authorization, CmdError, Command, ConnId, ErrorCode, ID_LEN, MessageBody, MsgId,
    NewQueue, Outcome, QueueId, QueueMode, QueueRecord, QueueStatus, Reply, Request, Response,
    StoredMessage,
};

/// A random generator the relay can own and move between threads.
pub trait RelayRng: RngCore + CryptoRng + Send {}
impl<T: RngCore + CryptoRng + Send> RelayRng for T {}

/// What the relay knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct Session {
    /// The connection, as returned by [`RelayState::connect`].
    pub conn: ConnId,
    /// The negotiated SMP version.
    pub version: u16,
    /// The TLS session id (`tls-unique`), part of every authorized transmission.
    pub session_id: Vec<u8>,
    /// Keys for checking authenticators.
    pub auth: SessionAuth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubKind {
    /// `SUB`: the connection is the queue's subscriber and gets `MSG` events.
    Server,
    /// `GET` was used: messages only on request, and `SUB` is refused.
    Prohibit,
}

#[derive(Clone, Debug)]
struct Sub {
    kind: SubKind,
    delivered: Option<MsgId>,
}

#[derive(Debug, Default)]
struct Conn {
    subs: HashMap<QueueId, Sub>,
}

#[derive(Debug)]
struct Queue {
    rec: QueueRecord,
    can_write: bool,
    msgs: VecDeque<StoredMessage>,
}

/// The relay's state: queues, messages, connections and subscriptions.
pub struct RelayState {
    config: RelayConfig,
    store: Store,
    rng: Box<dyn RelayRng>,
    queues: HashMap<QueueId, Queue>,
    senders: HashMap<QueueId, QueueId>,
    subscribers: HashMap<QueueId, ConnId>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
}

impl std::fmt::Debug for RelayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayState")
            .field("queues", &self.queues.len())
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

fn as_id(b: &[u8]) -> Option<QueueId> {
    <[u8; ID_LEN]>::try_from(b).ok()
}

/// The `checkCredentials` rules: which commands need an authorization and an
/// entity id, and which must have none.
pub fn check_credentials(
    cmd: &Command,
    auth: &Authorization,
    entity: &[u8],
) -> Result<(), CmdError> {
    let has_auth = auth.is_present();
    match cmd {
        Command::New(_) if !has_auth => Err(CmdError::NoAuth),
        Command::New(_) if !entity.is_empty() => Err(CmdError::HasAuth),
        Command::Send { .. } if entity.is_empty() => Err(CmdError::NoEntity),
        Command::Ping if has_auth || !entity.is_empty() => Err(CmdError::HasAuth),
        Command::New(_) | Command::Send { .. } | Command::Ping | Command::NotServed(_) => Ok(()),
        _ if !has_auth || entity.is_empty() => Err(CmdError::NoAuth),
        _ => Ok(()),
    }
}

impl RelayState {
    /// The state held in `store`, with the queues and messages it has.
    pub fn open(
        store: Store,
        config: RelayConfig,
        rng: Box<dyn RelayRng>,
    ) -> Result<Self, StoreError> {
        let mut queues = HashMap::new();
        let mut senders = HashMap::new();
        for lq in store.load()? {
            let rid = lq.record.recipient_id;
            senders.insert(lq.record.sender_id, rid);
            queues.insert(
                rid,
                Queue {
                    rec: lq.record,
                    can_write: lq.can_write,
                    msgs: lq.messages.into(),
                },
            );
        }
        Ok(Self {
            config,
            store,
            rng,
            queues,
            senders,
            subscribers: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// How many queues exist.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// How many messages wait in all queues (quota markers included).
    pub fn message_count(&self) -> usize {
        self.queues.values().map(|q| q.msgs.len()).sum()
    }

    /// Registers a new connection.
    pub fn connect(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, Conn::default());
        id
    }

    /// Forgets a connection and ends its subscriptions (messages stay queued).
    pub fn disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            for rid in c.subs.keys() {
                if self.subscribers.get(rid) == Some(&conn) {
                    self.subscribers.remove(rid);
                }
            }
        }
    }

    /// Handles one request from `session` at time `now` (Unix seconds).
    pub fn handle(&mut self, session: &Session, req: Request, now: i64) -> Outcome {
        let mut out = Outcome::default();
        let Request {
            corr_id,
            entity_id,
            auth,
            authorized,
            command,
        } = req;
        let reply = |out: &mut Outcome, reply: Reply| {
            out.responses.push(Response {
                corr_id: corr_id.clone(),
                entity_id: entity_id.clone(),
                reply,
            });
        };
        if let Err(e) = check_credentials(&command, &auth, &entity_id) {
            reply(&mut out, Reply::Err(ErrorCode::Cmd(e)));
            return out;
        }
        let rid = match self.verify(session, &command, &auth, &authorized, &corr_id, &entity_id) {
            Ok(rid) => rid,
            Err(e) => {
                reply(&mut out, Reply::Err(e));
                return out;
            }
        };
        self.conns.entry(session.conn).or_default();
        let result = match (command, rid) {
            (Command::Ping, _) => Ok(Reply::Pong),
            (Command::NotServed(_), _) => Err(ErrorCode::Cmd(CmdError::Prohibited)),
            (Command::New(nq), _) => self.create_queue(session.conn, &nq),
            (_, None) => Err(ErrorCode::Internal),
            (Command::Sub, Some(rid)) => {
                match self.subscribe_cmd(session.conn, rid, &mut out.events) {
                    Ok(msg) => {
                        reply(&mut out, Reply::Subscribed);
                        if let Some(m) = msg {
                            out.responses.push(Response::event(&rid, m));
                        }
                        return out;
                    }
                    Err(e) => Err(e),
                }
            }
            (Command::Get, Some(rid)) => self.get_cmd(session.conn, rid),
            (Command::Ack(id), Some(rid)) => self.ack_cmd(session.conn, rid, &id),
            (Command::Key(k) | Command::SKey(k), Some(rid)) => self.secure(rid, k),
            (Command::Send { notification, body }, Some(rid)) => self.send_cmd(
                session.version,
                rid,
                notification,
                body,
                now,
                &mut out.events,
            ),
            (Command::Off, Some(rid)) => self.off_cmd(rid),
            (Command::Del, Some(rid)) => self.del_cmd(session.conn, rid, &mut out.events),
        };
        reply(&mut out, result.unwrap_or_else(Reply::Err));
        out
    }

    /// `verifyTransmission`: finds the queue the command is for and checks the
    /// authorization. Returns the recipient id of the queue, if any.
    fn verify(
        &self,
        session: &Session,
        cmd: &Command,
        auth: &Authorization,
        authorized: &[u8],
        corr_id: &[u8],
        entity: &[u8],
    ) -> Result<Option<QueueId>, ErrorCode> {
        let check = |key: &AuthKey| auth::verify(&session.auth, key, auth, authorized, corr_id);
        let dummy = || {
            let _ = auth::dummy_verify(&session.auth, auth, authorized, corr_id);
            Err(ErrorCode::Auth)
        };
        match cmd {
            Command::Ping | Command::NotServed(_) => Ok(None),
            Command::New(nq) => {
                if check(&nq.recipient_key) {
                    Ok(None)
                } else {
                    Err(ErrorCode::Auth)
                }
            }
            Command::Send { .. } | Command::SKey(_) => {
                let Some(q) = as_id(entity)
                    .and_then(|sid| self.senders.get(&sid))
                    .and_then(|rid| self.queues.get(rid))
                else {
                    return dummy();
                };
                let ok = match cmd {
                    Command::SKey(k) => {
                        let allowed = q.rec.mode == Some(QueueMode::Messaging)
                            && q.rec.sender_key.is_none_or(|sk| sk == *k);
                        if !allowed {
                            return dummy();
                        }
                        check(k)
                    }
                    _ => match &q.rec.sender_key {
                        None => !auth.is_present(),
                        Some(k) => check(k),
                    },
                };
                if ok {
                    Ok(Some(q.rec.recipient_id))
                } else {
                    Err(ErrorCode::Auth)
                }
            }
            _ => {
                let Some(q) = as_id(entity).and_then(|rid| self.queues.get(&rid)) else {
                    return dummy();
                };
                if check(&q.rec.recipient_key) {
                    Ok(Some(q.rec.recipient_id))
                } else {
                    Err(ErrorCode::Auth)
                }
            }
        }
    }

    fn random_id(&mut self) -> [u8; ID_LEN] {
        let mut id = [0u8; ID_LEN];
        self.rng.fill_bytes(&mut id);
        id
    }

    fn create_queue(&mut self, conn: ConnId, nq: &NewQueue) -> Result<Reply, ErrorCode> {
        let password_ok = self
            .config
            .new_queue_password
            .as_ref()
            .is_none_or(|p| nq.basic_auth.as_deref() == Some(p.as_slice()));
        if !self.config.allow_new_queues || !password_ok {
            return Err(ErrorCode::Auth);
        }
        let dh_key = {
            let mut rng: &mut dyn RelayRng = &mut *self.rng;
            x25519::SecretKey::generate(&mut rng)
        };
        let rcv_dh_secret = *dh_key.diffie_hellman(&nq.recipient_dh_key).as_bytes();
        for _ in 0..3 {
            let recipient_id = self.random_id();
            let sender_id = self.random_id();
            if recipient_id == sender_id
                || self.queues.contains_key(&recipient_id)
                || self.senders.contains_key(&sender_id)
            {
                continue;
            }
            let rec = QueueRecord {
                recipient_id,
                sender_id,
                recipient_key: nq.recipient_key,
                rcv_dh_secret,
                sender_key: None,
                mode: nq.mode,
                status: QueueStatus::Active,
            };
            match self.store.insert_queue(&rec) {
                Ok(()) => {}
                Err(StoreError::Duplicate) => continue,
                Err(e) => return Err(internal(&e)),
            }
            self.senders.insert(sender_id, recipient_id);
            self.queues.insert(
                recipient_id,
                Queue {
                    rec,
                    can_write: true,
                    msgs: VecDeque::new(),
                },
            );
            if nq.subscribe {
                let mut ignored = Vec::new();
                self.register_subscriber(conn, recipient_id, &mut ignored);
            }
            return Ok(Reply::Ids {
                recipient_id,
                sender_id,
                server_dh_key: dh_key.public_key(),
                mode: nq.mode,
            });
        }
        Err(ErrorCode::Internal)
    }

    /// Makes `conn` the subscriber of `rid`; a previous subscriber on another
    /// connection gets `END` and loses its subscription.
    fn register_subscriber(
        &mut self,
        conn: ConnId,
        rid: QueueId,
        events: &mut Vec<(ConnId, Response)>,
    ) {
        if let Some(prev) = self.subscribers.insert(rid, conn)
            && prev != conn
            && let Some(pc) = self.conns.get_mut(&prev)
        {
            pc.subs.remove(&rid);
            events.push((prev, Response::event(&rid, Reply::End)));
        }
        self.conns.entry(conn).or_default().subs.insert(
            rid,
            Sub {
                kind: SubKind::Server,
                delivered: None,
            },
        );
    }

    /// The first message of `rid` as delivered to the recipient, and marks it
    /// delivered on `conn`'s subscription.
    fn deliver_first(&mut self, conn: ConnId, rid: QueueId) -> Result<Option<Reply>, ErrorCode> {
        let Some(q) = self.queues.get(&rid) else {
            return Ok(None);
        };
        let Some(m) = q.msgs.front() else {
            return Ok(None);
        };
        let reply = encrypt_msg(&q.rec, m)?;
        if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.subs.get_mut(&rid)) {
            s.delivered = Some(m.id);
        }
        Ok(Some(reply))
    }

    fn subscribe_cmd(
        &mut self,
        conn: ConnId,
        rid: QueueId,
        events: &mut Vec<(ConnId, Response)>,
    ) -> Result<Option<Reply>, ErrorCode> {
        let existing = self.conns.get_mut(&conn).and_then(|c| c.subs.get_mut(&rid));
        match existing {
            None => self.register_subscriber(conn, rid, events),
            Some(s) if s.kind == SubKind::Prohibit => {
                return Err(ErrorCode::Cmd(CmdError::Prohibited));
            }
            Some(s) => s.delivered = None,
        }
        self.deliver_first(conn, rid)
    }

    fn get_cmd(&mut self, conn: ConnId, rid: QueueId) -> Result<Reply, ErrorCode> {
        let c = self.conns.entry(conn).or_default();
        match c.subs.get_mut(&rid) {
            None => {
                c.subs.insert(
                    rid,
                    Sub {
                        kind: SubKind::Prohibit,
                        delivered: None,
                    },
                );
            }
            Some(s) if s.kind == SubKind::Prohibit => s.delivered = None,
            Some(_) => return Err(ErrorCode::Cmd(CmdError::Prohibited)),
        }
        Ok(self.deliver_first(conn, rid)?.unwrap_or(Reply::Ok))
    }

    fn ack_cmd(&mut self, conn: ConnId, rid: QueueId, msg_id: &[u8]) -> Result<Reply, ErrorCode> {
        let Some(sub) = self.conns.get_mut(&conn).and_then(|c| c.subs.get_mut(&rid)) else {
            return Err(ErrorCode::NoMsg);
        };
        match sub.delivered {
            Some(d) if msg_id.is_empty() || d.as_slice() == msg_id => sub.delivered = None,
            _ => return Err(ErrorCode::NoMsg),
        }
        let kind = sub.kind;
        let Some(q) = self.queues.get_mut(&rid) else {
            return Err(ErrorCode::Internal);
        };
        if q.msgs.front().is_some_and(|m| m.id.as_slice() == msg_id) {
            let id = q.msgs.front().map(|m| m.id).unwrap_or_default();
            self.store
                .remove_messages(&rid, &[id], q.can_write)
                .map_err(|e| internal(&e))?;
            q.msgs.pop_front();
        }
        if kind == SubKind::Prohibit {
            return Ok(Reply::Ok);
        }
        Ok(self.deliver_first(conn, rid)?.unwrap_or(Reply::Ok))
    }

    fn secure(&mut self, rid: QueueId, key: AuthKey) -> Result<Reply, ErrorCode> {
        let Some(q) = self.queues.get_mut(&rid) else {
            return Err(ErrorCode::Internal);
        };
        match q.rec.sender_key {
            Some(k) if k == key => Ok(Reply::Ok),
            Some(_) => Err(ErrorCode::Auth),
            None => {
                self.store
                    .set_sender_key(&rid, &key)
                    .map_err(|e| internal(&e))?;
                q.rec.sender_key = Some(key);
                Ok(Reply::Ok)
            }
        }
    }

    fn off_cmd(&mut self, rid: QueueId) -> Result<Reply, ErrorCode> {
        let Some(q) = self.queues.get_mut(&rid) else {
            return Err(ErrorCode::Internal);
        };
        self.store
            .set_status(&rid, QueueStatus::Off)
            .map_err(|e| internal(&e))?;
        q.rec.status = QueueStatus::Off;
        Ok(Reply::Ok)
    }

    fn del_cmd(
        &mut self,
        conn: ConnId,
        rid: QueueId,
        events: &mut Vec<(ConnId, Response)>,
    ) -> Result<Reply, ErrorCode> {
        self.store.delete_queue(&rid).map_err(|e| internal(&e))?;
        if let Some(q) = self.queues.remove(&rid) {
            self.senders.remove(&q.rec.sender_id);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subs.remove(&rid);
        }
        if let Some(sc) = self.subscribers.remove(&rid)
            && sc != conn
            && let Some(other) = self.conns.get_mut(&sc)
        {
            other.subs.remove(&rid);
            events.push((sc, Response::event(&rid, Reply::Deld)));
        }
        Ok(Reply::Ok)
    }

    fn send_cmd(
        &mut self,
        version: u16,
        rid: QueueId,
        notification: bool,
        body: Vec<u8>,
        now: i64,
        events: &mut Vec<(ConnId, Response)>,
    ) -> Result<Reply, ErrorCode> {
        if body.len() > max_message_length(version) {
            return Err(ErrorCode::LargeMsg);
        }
        let msg_id = self.random_id();
        let expire_before = self
            .config
            .message_ttl
            .filter(|_| self.config.expire_on_send)
            .map(|ttl| now.saturating_sub(ttl));
        let quota = self.config.quota;
        let Some(q) = self.queues.get_mut(&rid) else {
            return Err(ErrorCode::Internal);
        };
        if q.rec.status == QueueStatus::Off {
            return Err(ErrorCode::Auth);
        }
        if let Some(old) = expire_before {
            expire_queue(&mut self.store, rid, q, old).map_err(|e| internal(&e))?;
        }
        let was_empty = q.msgs.is_empty();
        if !(q.can_write || was_empty) {
            return Err(ErrorCode::Quota);
        }
        let can_write = quota > q.msgs.len();
        let msg = StoredMessage {
            id: msg_id,
            ts: now,
            body: if can_write {
                MessageBody::Message { notification, body }
            } else {
                MessageBody::Quota
            },
        };
        self.store
            .push_message(&rid, &msg, can_write)
            .map_err(|e| internal(&e))?;
        q.can_write = can_write;
        q.msgs.push_back(msg);
        if !can_write {
            return Err(ErrorCode::Quota);
        }
        if was_empty {
            self.try_deliver(rid, events)?;
        }
        Ok(Reply::Ok)
    }

    /// Delivers the first message of `rid` to its subscriber, if there is one and
    /// nothing is delivered and unacknowledged.
    fn try_deliver(
        &mut self,
        rid: QueueId,
        events: &mut Vec<(ConnId, Response)>,
    ) -> Result<(), ErrorCode> {
        let Some(&sc) = self.subscribers.get(&rid) else {
            return Ok(());
        };
        let ready = self
            .conns
            .get(&sc)
            .and_then(|c| c.subs.get(&rid))
            .is_some_and(|s| s.kind == SubKind::Server && s.delivered.is_none());
        if ready && let Some(m) = self.deliver_first(sc, rid)? {
            events.push((sc, Response::event(&rid, m)));
        }
        Ok(())
    }

    /// Deletes messages older than the configured lifetime from every queue
    /// (the periodic sweep); returns how many were deleted.
    pub fn expire_messages(&mut self, now: i64) -> Result<usize, StoreError> {
        let Some(ttl) = self.config.message_ttl else {
            return Ok(0);
        };
        let old = now.saturating_sub(ttl);
        let mut n = 0;
        for (rid, q) in &mut self.queues {
            n += expire_queue(&mut self.store, *rid, q, old)?;
        }
        Ok(n)
    }
}

/// Deletes the leading messages of `q` sent before `old` (stopping at a quota
/// marker, as the reference does).
fn expire_queue(
    store: &mut Store,
    rid: QueueId,
    q: &mut Queue,
    old: i64,
) -> Result<usize, StoreError> {
    let n = q
        .msgs
        .iter()
        .take_while(|m| matches!(m.body, MessageBody::Message { .. }) && m.ts < old)
        .count();
    if n > 0 {
        let ids: Vec<MsgId> = q.msgs.iter().take(n).map(|m| m.id).collect();
        store.remove_messages(&rid, &ids, q.can_write)?;
        q.msgs.drain(..n);
    }
    Ok(n)
}

fn internal(e: &StoreError) -> ErrorCode {
    tracing::error!(error = %e, "relay store failed");
    ErrorCode::Internal
}

/// The `MSG` the recipient gets for `m`: crypto_box with the queue's DH secret,
/// nonce = message id, of `pad(ts || flags || ' ' || body, 16106)` (or of
/// `"QUOTA " || ts` for the quota marker).
fn encrypt_msg(rec: &QueueRecord, m: &StoredMessage) -> Result<Reply, ErrorCode> {
    let mut plain = Vec::new();
    match &m.body {
        MessageBody::Message { notification, body } => {
            plain.reserve(10 + body.len());
            plain.extend_from_slice(&m.ts.to_be_bytes());
            plain.push(if *notification { b'T' } else { b'F' });
            plain.push(b' ');
            plain.extend_from_slice(body);
        }
        MessageBody::Quota => {
            plain.extend_from_slice(b"QUOTA ");
            plain.extend_from_slice(&m.ts.to_be_bytes());
        }
    }
    let enc_body =
        nacl::cb_encrypt(&rec.rcv_dh_secret, &m.id, &plain, RCV_PADDED_LEN).map_err(|e| {
            tracing::error!(error = %e, "cannot encrypt a stored message");
            ErrorCode::Internal
        })?;
    Ok(Reply::Msg {
        msg_id: m.id,
        enc_body,
    })
}
