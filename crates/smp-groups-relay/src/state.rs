//! The queue logic of the relay, free of sockets and clocks: requests in,
//! responses and events out, with every change written to the [`QueueStore`] in
//! the transaction of the batch it belongs to.
//!
//! The rules follow the reference relay (`Server.hs`): credentials are checked
//! first (`CMD NO_AUTH` / `HAS_AUTH` / `NO_ENTITY`), then the authorization
//! against the queue's key (`AUTH` also when there is no such queue), then the
//! command itself. One connection at a time is subscribed to a queue; one
//! message at a time is delivered until it is acknowledged.
//!
//! Memory holds each queue's record, its message count and bytes and the id of
//! its first message; bodies stay in the store and are read when delivered.
//!
//! Two ways in:
//! * [`RelayState::handle`] checks a request and applies it in a transaction
//!   of its own (the relay's state tests and benchmarks).
//! * The server checks requests on the connections' tasks
//!   ([`crate::auth::verify_request`] against [`RelayState::index`]) and
//!   applies many, from many connections, in one transaction on the store
//!   thread: [`RelayState::begin_batch`], [`RelayState::apply`]...,
//!   [`RelayState::end_batch`]; `MSG`s to subscribers are made when their
//!   connection can take them ([`RelayState::deliver`]).

use std::collections::HashMap;
use std::sync::Arc;

use smp_groups_crypto::{CryptoRng, RngCore, nacl, x25519};

use crate::auth::{AuthIndex, IndexEntry, SessionAuth, Verified, password_matches, verify_request};
use crate::config::{RCV_PADDED_LEN, RelayConfig, max_message_length};
use crate::ratelog::RateLog;
use crate::store::{FrontMessage, QueueStore, QueueStoreError};
use crate::types::{
    AuthKey, CmdError, ConnId, DhSecret, ErrorCode, ID_LEN, MessageBody, MsgId, NewQueue, Outcome,
    QueueCommand, QueueId, QueueRecord, QueueStatus, Reply, Request, Response, StoredMessage,
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
    /// A delivery was handed out ([`Outcome::deliveries`]) and not made yet.
    notified: bool,
}

#[derive(Debug, Default)]
struct Conn {
    subs: HashMap<QueueId, Sub>,
    /// Queues this connection created.
    created: u64,
}

#[derive(Debug)]
struct Queue {
    rec: QueueRecord,
    can_write: bool,
    count: u64,
    bytes: u64,
    front: Option<FrontMessage>,
}

/// Commands refused by a limit since the relay started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusals {
    /// `NEW` refused: the relay holds `max_queues` queues.
    pub queues_total: u64,
    /// `NEW` refused: the connection created `max_queues_per_connection`.
    pub queues_per_connection: u64,
    /// `SEND` refused: the stored bodies would pass `max_stored_bytes`.
    pub stored_bytes: u64,
    /// `SEND` refused: the queue is full (`quota`).
    pub quota: u64,
}

#[derive(Debug, Default)]
struct RefusalLogs {
    queues_total: RateLog,
    queues_per_connection: RateLog,
    stored_bytes: RateLog,
    quota: RateLog,
}

/// A batch whose changes could not be committed: every command in it must be
/// answered `ERR INTERNAL`. The state was reloaded from the store.
#[derive(Debug)]
pub struct BatchFailed {
    /// What failed.
    pub cause: String,
    /// Subscribed queues with messages, to deliver again (what was delivered
    /// before may not have been committed).
    pub redeliver: Vec<(ConnId, QueueId)>,
}

/// The relay's state: queues, connections and subscriptions.
pub struct RelayState {
    config: RelayConfig,
    store: QueueStore,
    rng: Box<dyn RelayRng>,
    queues: HashMap<QueueId, Queue>,
    senders: HashMap<QueueId, QueueId>,
    subscribers: HashMap<QueueId, ConnId>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    index: Arc<AuthIndex>,
    stored_messages: u64,
    stored_bytes: u64,
    failure: Option<QueueStoreError>,
    logs: RefusalLogs,
    /// Messages stored in this batch at the front of a queue whose
    /// subscriber was handed a delivery: their `MSG` is made from here, not
    /// read back from the store. Emptied by [`RelayState::forget_fresh`]
    /// once the batch's deliveries are made, so no body stays in memory.
    fresh: HashMap<QueueId, StoredMessage>,
}

impl std::fmt::Debug for RelayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayState")
            .field("queues", &self.queues.len())
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl RelayState {
    /// The state held in `store`: its queues, their message counts and first
    /// messages (no bodies are read).
    pub fn open(
        store: QueueStore,
        config: RelayConfig,
        rng: Box<dyn RelayRng>,
    ) -> Result<Self, QueueStoreError> {
        let mut state = Self {
            config,
            store,
            rng,
            queues: HashMap::new(),
            senders: HashMap::new(),
            subscribers: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            index: Arc::new(AuthIndex::default()),
            stored_messages: 0,
            stored_bytes: 0,
            failure: None,
            logs: RefusalLogs::default(),
            fresh: HashMap::new(),
        };
        state.load()?;
        Ok(state)
    }

    /// Replaces the queues in memory with those in the store.
    fn load(&mut self) -> Result<(), QueueStoreError> {
        let loaded = self.store.load()?;
        self.queues.clear();
        self.senders.clear();
        self.index.clear();
        self.stored_messages = 0;
        self.stored_bytes = 0;
        for lq in loaded {
            let rid = lq.record.recipient_id;
            self.senders.insert(lq.record.sender_id, rid);
            self.index_queue(&lq.record);
            self.stored_messages += lq.count;
            self.stored_bytes += lq.bytes;
            self.queues.insert(
                rid,
                Queue {
                    rec: lq.record,
                    can_write: lq.can_write,
                    count: lq.count,
                    bytes: lq.bytes,
                    front: lq.front,
                },
            );
        }
        Ok(())
    }

    fn index_queue(&self, rec: &QueueRecord) {
        self.index.insert(
            rec.recipient_id,
            IndexEntry::Recipient {
                key: rec.recipient_key,
            },
        );
        self.index.insert(
            rec.sender_id,
            IndexEntry::Sender {
                rid: rec.recipient_id,
                key: rec.sender_key,
                mode: rec.mode,
            },
        );
    }

    /// The settings in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The keys of every queue, for checking requests elsewhere
    /// ([`verify_request`]); kept up to date by this state.
    pub fn index(&self) -> Arc<AuthIndex> {
        Arc::clone(&self.index)
    }

    /// How many queues exist.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// How many messages wait in all queues (quota markers included).
    pub fn message_count(&self) -> usize {
        usize::try_from(self.stored_messages).unwrap_or(usize::MAX)
    }

    /// Bytes of the message bodies waiting in all queues.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Commands refused by a limit so far.
    pub fn refusals(&self) -> Refusals {
        Refusals {
            queues_total: self.logs.queues_total.total(),
            queues_per_connection: self.logs.queues_per_connection.total(),
            stored_bytes: self.logs.stored_bytes.total(),
            quota: self.logs.quota.total(),
        }
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

    /// Checks one request from `session` and applies it at time `now` (Unix
    /// seconds), in a transaction of its own; `MSG`s to subscribers are made
    /// at once (in [`Outcome::events`]).
    pub fn handle(&mut self, session: &Session, req: Request, now: i64) -> Outcome {
        let (corr_id, entity_id) = (req.corr_id.clone(), req.entity_id.clone());
        self.begin_batch();
        let mut out = match verify_request(&self.index, &session.auth, req) {
            Ok(v) => self.apply(session.conn, session.version, v, now),
            Err(e) => Outcome {
                responses: vec![Response {
                    corr_id: corr_id.clone(),
                    entity_id: entity_id.clone(),
                    reply: Reply::Err(e),
                }],
                ..Outcome::default()
            },
        };
        for (conn, rid) in std::mem::take(&mut out.deliveries) {
            if let Some(r) = self.deliver(conn, rid) {
                out.events.push((conn, r));
            }
        }
        self.forget_fresh();
        if let Err(failed) = self.end_batch() {
            out = Outcome {
                responses: vec![Response {
                    corr_id,
                    entity_id,
                    reply: Reply::Err(ErrorCode::Internal),
                }],
                ..Outcome::default()
            };
            for (conn, rid) in failed.redeliver {
                if let Some(r) = self.deliver(conn, rid) {
                    out.events.push((conn, r));
                }
            }
        }
        out
    }

    /// Starts a batch: the changes of the requests applied until
    /// [`RelayState::end_batch`] are committed together.
    pub fn begin_batch(&mut self) {
        if let Err(e) = self.store.begin() {
            self.fail(e);
        }
    }

    /// Commits the batch. If a change in it failed, or the commit does, the
    /// batch is rolled back, the queues are reloaded from the store, and every
    /// request of the batch must be answered `ERR INTERNAL`.
    pub fn end_batch(&mut self) -> Result<(), BatchFailed> {
        let cause = match self.failure.take() {
            Some(e) => {
                self.store.rollback();
                e.to_string()
            }
            None => match self.store.commit() {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            },
        };
        tracing::error!(error = %cause, "relay store: a batch was not committed; reloading");
        let redeliver = self.reload();
        Err(BatchFailed { cause, redeliver })
    }

    /// Drops the bodies kept for the deliveries of this batch (call once
    /// they are made; a delivery made later reads its body from the store).
    pub fn forget_fresh(&mut self) {
        self.fresh.clear();
    }

    /// After a failed batch: the queues as the store has them; subscriptions
    /// stay, with nothing delivered.
    fn reload(&mut self) -> Vec<(ConnId, QueueId)> {
        self.fresh.clear();
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "relay store: reloading the queues failed");
        }
        let mut redeliver = Vec::new();
        let queues = &self.queues;
        self.subscribers.retain(|rid, _| queues.contains_key(rid));
        for (conn, c) in &mut self.conns {
            c.subs.retain(|rid, _| queues.contains_key(rid));
            for (rid, s) in &mut c.subs {
                s.delivered = None;
                s.notified = false;
                if s.kind == SubKind::Server && queues.get(rid).is_some_and(|q| q.count > 0) {
                    s.notified = true;
                    redeliver.push((*conn, *rid));
                }
            }
        }
        redeliver
    }

    /// Records a store failure: the batch will be rolled back.
    fn fail(&mut self, e: QueueStoreError) -> ErrorCode {
        tracing::error!(error = %e, "relay store failed");
        if self.failure.is_none() {
            self.failure = Some(e);
        }
        ErrorCode::Internal
    }

    /// Applies a checked request from connection `conn` (SMP version
    /// `version`) at time `now`, inside the current batch.
    pub fn apply(&mut self, conn: ConnId, version: u16, v: Verified, now: i64) -> Outcome {
        let mut out = Outcome::default();
        let Verified {
            request,
            rid,
            sender_key,
        } = v;
        let Request {
            corr_id,
            entity_id,
            command,
            ..
        } = request;
        let reply = |out: &mut Outcome, reply: Reply| {
            out.responses.push(Response {
                corr_id: corr_id.clone(),
                entity_id: entity_id.clone(),
                reply,
            });
        };
        self.conns.entry(conn).or_default();
        let result = match (command, rid) {
            (QueueCommand::Ping, _) => Ok(Reply::Pong),
            (QueueCommand::NotServed(_), _) => Err(ErrorCode::Cmd(CmdError::Prohibited)),
            (QueueCommand::New(nq), _) => self.create_queue(conn, &nq),
            // Deleted after the request was checked: as an unknown queue.
            (_, None) => Err(ErrorCode::Auth),
            (_, Some(rid)) if !self.queues.contains_key(&rid) => Err(ErrorCode::Auth),
            (QueueCommand::Sub, Some(rid)) => {
                match self.subscribe_cmd(conn, rid, &mut out.events) {
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
            (QueueCommand::Get, Some(rid)) => self.get_cmd(conn, rid),
            (QueueCommand::Ack(id), Some(rid)) => self.ack_cmd(conn, rid, &id),
            (QueueCommand::Key(k) | QueueCommand::SKey(k), Some(rid)) => self.secure(rid, k),
            (QueueCommand::Send { notification, body }, Some(rid)) => {
                if self.queues.get(&rid).map(|q| q.rec.sender_key) == Some(sender_key) {
                    self.send_cmd(version, rid, notification, body, now, &mut out.deliveries)
                } else {
                    // Secured after the request was checked.
                    Err(ErrorCode::Auth)
                }
            }
            (QueueCommand::Off, Some(rid)) => self.off_cmd(rid),
            (QueueCommand::Del, Some(rid)) => self.del_cmd(conn, rid, &mut out.events),
        };
        reply(&mut out, result.unwrap_or_else(Reply::Err));
        out
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
            .is_none_or(|p| password_matches(nq.basic_auth.as_deref(), p));
        if !self.config.allow_new_queues || !password_ok {
            return Err(ErrorCode::Auth);
        }
        if self.queues.len() as u64 >= self.config.max_queues {
            if let Some(n) = self.logs.queues_total.hit() {
                tracing::warn!(
                    refused = n,
                    limit = self.config.max_queues,
                    "NEW refused: the relay holds its limit of queues"
                );
            }
            return Err(ErrorCode::Quota);
        }
        let created = self.conns.get(&conn).map_or(0, |c| c.created);
        if created >= self.config.max_queues_per_connection {
            if let Some(n) = self.logs.queues_per_connection.hit() {
                tracing::warn!(
                    refused = n,
                    conn,
                    limit = self.config.max_queues_per_connection,
                    "NEW refused: the connection created its limit of queues"
                );
            }
            return Err(ErrorCode::Quota);
        }
        let dh_key = {
            let mut rng: &mut dyn RelayRng = &mut *self.rng;
            x25519::SecretKey::generate(&mut rng)
        };
        // A recipient DH key of small order would make the delivery boxes'
        // key all zeros.
        let rcv_dh_secret = match dh_key.diffie_hellman_checked(&nq.recipient_dh_key) {
            Ok(s) => DhSecret::from_bytes(*s.as_bytes()),
            Err(_) => return Err(ErrorCode::Auth),
        };
        for _ in 0..3 {
            let recipient_id = self.random_id();
            let sender_id = self.random_id();
            if recipient_id == sender_id
                || self.queues.contains_key(&recipient_id)
                || self.senders.contains_key(&sender_id)
                || self.index.get(&recipient_id).is_some()
                || self.index.get(&sender_id).is_some()
            {
                continue;
            }
            let rec = QueueRecord {
                recipient_id,
                sender_id,
                recipient_key: nq.recipient_key,
                rcv_dh_secret: rcv_dh_secret.clone(),
                sender_key: None,
                mode: nq.mode,
                status: QueueStatus::Active,
            };
            match self.store.insert_queue(&rec) {
                Ok(()) => {}
                Err(QueueStoreError::Duplicate) => continue,
                Err(e) => return Err(self.fail(e)),
            }
            self.senders.insert(sender_id, recipient_id);
            self.index_queue(&rec);
            self.queues.insert(
                recipient_id,
                Queue {
                    rec,
                    can_write: true,
                    count: 0,
                    bytes: 0,
                    front: None,
                },
            );
            if let Some(c) = self.conns.get_mut(&conn) {
                c.created += 1;
            }
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
                notified: false,
            },
        );
    }

    /// The first message of `rid` as delivered to the recipient (its body read
    /// from the store), and marks it delivered on `conn`'s subscription.
    fn deliver_first(&mut self, conn: ConnId, rid: QueueId) -> Result<Option<Reply>, ErrorCode> {
        let Some(q) = self.queues.get(&rid).filter(|q| q.count > 0) else {
            return Ok(None);
        };
        // Sent in this batch: the body is still here (it is the front
        // message only if its id is the front's).
        let front = q.front.map(|f| f.id);
        let fresh = self.fresh.remove(&rid).filter(|m| Some(m.id) == front);
        let m = match fresh.map_or_else(|| self.store.front_message(&rid), |m| Ok(Some(m))) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let Some(q) = self.queues.get(&rid) else {
            return Ok(None);
        };
        let reply = encrypt_msg(&q.rec, &m)?;
        if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.subs.get_mut(&rid)) {
            s.delivered = Some(m.id);
        }
        Ok(Some(reply))
    }

    /// Makes the `MSG` of a delivery handed out in [`Outcome::deliveries`],
    /// when `conn` can take it: the first message of `rid`, if `conn` is still
    /// its subscriber and nothing is delivered and unacknowledged.
    pub fn deliver(&mut self, conn: ConnId, rid: QueueId) -> Option<Response> {
        let sub = self.conns.get_mut(&conn)?.subs.get_mut(&rid)?;
        sub.notified = false;
        if sub.kind != SubKind::Server || sub.delivered.is_some() {
            return None;
        }
        match self.deliver_first(conn, rid) {
            Ok(Some(m)) => Some(Response::event(&rid, m)),
            Ok(None) | Err(_) => None,
        }
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
                        notified: false,
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
        let front = self.queues.get(&rid).and_then(|q| q.front);
        if let Some(f) = front.filter(|f| f.id.as_slice() == msg_id) {
            let removed = match self.store.remove_front(&rid, &f.id) {
                Ok(r) => r,
                Err(e) => return Err(self.fail(e)),
            };
            // The queue's last message needs no query for the next one.
            let last = removed.is_some() && self.queues.get(&rid).is_some_and(|q| q.count <= 1);
            let next = match if last {
                Ok(None)
            } else {
                self.store.front(&rid)
            } {
                Ok(n) => n,
                Err(e) => return Err(self.fail(e)),
            };
            if let (Some(len), Some(q)) = (removed, self.queues.get_mut(&rid)) {
                q.count = q.count.saturating_sub(1);
                q.bytes = q.bytes.saturating_sub(len);
                q.front = next;
                self.stored_messages = self.stored_messages.saturating_sub(1);
                self.stored_bytes = self.stored_bytes.saturating_sub(len);
            }
        }
        if kind == SubKind::Prohibit {
            return Ok(Reply::Ok);
        }
        Ok(self.deliver_first(conn, rid)?.unwrap_or(Reply::Ok))
    }

    fn secure(&mut self, rid: QueueId, key: AuthKey) -> Result<Reply, ErrorCode> {
        let Some(current) = self.queues.get(&rid).map(|q| q.rec.sender_key) else {
            return Err(ErrorCode::Auth);
        };
        match current {
            Some(k) if k == key => Ok(Reply::Ok),
            Some(_) => Err(ErrorCode::Auth),
            None => {
                if let Err(e) = self.store.set_sender_key(&rid, &key) {
                    return Err(self.fail(e));
                }
                if let Some(q) = self.queues.get_mut(&rid) {
                    q.rec.sender_key = Some(key);
                    self.index.insert(
                        q.rec.sender_id,
                        IndexEntry::Sender {
                            rid,
                            key: Some(key),
                            mode: q.rec.mode,
                        },
                    );
                }
                Ok(Reply::Ok)
            }
        }
    }

    fn off_cmd(&mut self, rid: QueueId) -> Result<Reply, ErrorCode> {
        if let Err(e) = self.store.set_status(&rid, QueueStatus::Off) {
            return Err(self.fail(e));
        }
        if let Some(q) = self.queues.get_mut(&rid) {
            q.rec.status = QueueStatus::Off;
        }
        Ok(Reply::Ok)
    }

    fn del_cmd(
        &mut self,
        conn: ConnId,
        rid: QueueId,
        events: &mut Vec<(ConnId, Response)>,
    ) -> Result<Reply, ErrorCode> {
        if let Err(e) = self.store.delete_queue(&rid) {
            return Err(self.fail(e));
        }
        if let Some(q) = self.queues.remove(&rid) {
            self.senders.remove(&q.rec.sender_id);
            self.index.remove(&rid);
            self.index.remove(&q.rec.sender_id);
            self.stored_messages = self.stored_messages.saturating_sub(q.count);
            self.stored_bytes = self.stored_bytes.saturating_sub(q.bytes);
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
        deliveries: &mut Vec<(ConnId, QueueId)>,
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
        match self.queues.get(&rid) {
            None => return Err(ErrorCode::Auth),
            Some(q) if q.rec.status == QueueStatus::Off => return Err(ErrorCode::Auth),
            Some(_) => {}
        }
        if let Some(old) = expire_before
            && let Err(e) = self.expire_queue(rid, old)
        {
            return Err(self.fail(e));
        }
        let quota = self.config.quota as u64;
        let Some(q) = self.queues.get(&rid) else {
            return Err(ErrorCode::Internal);
        };
        let was_empty = q.count == 0;
        if !(q.can_write || was_empty) {
            if let Some(n) = self.logs.quota.hit() {
                tracing::info!(refused = n, "SEND refused: the queue is full (quota)");
            }
            return Err(ErrorCode::Quota);
        }
        let can_write = quota > q.count;
        let len = body.len() as u64;
        if can_write && self.stored_bytes.saturating_add(len) > self.config.max_stored_bytes {
            if let Some(n) = self.logs.stored_bytes.hit() {
                tracing::warn!(
                    refused = n,
                    limit = self.config.max_stored_bytes,
                    "SEND refused: the relay stores its limit of message bytes"
                );
            }
            return Err(ErrorCode::Quota);
        }
        let msg = StoredMessage {
            id: msg_id,
            ts: now,
            body: if can_write {
                MessageBody::Message { notification, body }
            } else {
                MessageBody::Quota
            },
        };
        if let Err(e) = self.store.push_message(&rid, &msg, can_write) {
            return Err(self.fail(e));
        }
        let stored = if can_write { len } else { 0 };
        if let Some(q) = self.queues.get_mut(&rid) {
            q.count += 1;
            q.bytes += stored;
            q.can_write = can_write;
            if q.front.is_none() {
                q.front = Some(FrontMessage {
                    id: msg_id,
                    ts: now,
                    quota: !can_write,
                });
            }
        }
        self.stored_messages += 1;
        self.stored_bytes += stored;
        if !can_write {
            if let Some(n) = self.logs.quota.hit() {
                tracing::info!(refused = n, "SEND refused: the queue is full (quota)");
            }
            return Err(ErrorCode::Quota);
        }
        if was_empty && self.try_deliver(rid, deliveries) {
            self.fresh.insert(rid, msg);
        }
        Ok(Reply::Ok)
    }

    /// Hands out a delivery of `rid`'s first message to its subscriber, if
    /// there is one with nothing delivered and unacknowledged; true if so.
    fn try_deliver(&mut self, rid: QueueId, deliveries: &mut Vec<(ConnId, QueueId)>) -> bool {
        let Some(&sc) = self.subscribers.get(&rid) else {
            return false;
        };
        if let Some(s) = self.conns.get_mut(&sc).and_then(|c| c.subs.get_mut(&rid))
            && s.kind == SubKind::Server
            && s.delivered.is_none()
            && !s.notified
        {
            s.notified = true;
            deliveries.push((sc, rid));
            return true;
        }
        false
    }

    /// Deletes messages older than the configured lifetime from every queue
    /// (the periodic sweep), in a batch of its own; returns how many were
    /// deleted.
    pub fn expire_messages(&mut self, now: i64) -> Result<usize, QueueStoreError> {
        let Some(ttl) = self.config.message_ttl else {
            return Ok(0);
        };
        let old = now.saturating_sub(ttl);
        let due: Vec<QueueId> = self
            .queues
            .iter()
            .filter(|(_, q)| q.front.is_some_and(|f| !f.quota && f.ts < old))
            .map(|(rid, _)| *rid)
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        self.begin_batch();
        let mut n = 0;
        for rid in due {
            match self.expire_queue(rid, old) {
                Ok(k) => n += k,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        match self.end_batch() {
            Ok(()) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(f) => Err(QueueStoreError::Batch(f.cause)),
        }
    }

    /// Deletes the leading messages of `rid` sent before `old` (stopping at a
    /// quota marker, as the reference does).
    fn expire_queue(&mut self, rid: QueueId, old: i64) -> Result<u64, QueueStoreError> {
        let due = self
            .queues
            .get(&rid)
            .and_then(|q| q.front)
            .is_some_and(|f| !f.quota && f.ts < old);
        if !due {
            return Ok(0);
        }
        let (n, bytes) = self.store.expire(&rid, old)?;
        let front = self.store.front(&rid)?;
        if let Some(q) = self.queues.get_mut(&rid) {
            q.count = q.count.saturating_sub(n);
            q.bytes = q.bytes.saturating_sub(bytes);
            q.front = front;
        }
        self.stored_messages = self.stored_messages.saturating_sub(n);
        self.stored_bytes = self.stored_bytes.saturating_sub(bytes);
        Ok(n)
    }

    /// Caps the store at `pages` pages, as a full disk would (for tests and
    /// fuzzing of store failures).
    pub fn limit_store_pages(&self, pages: u32) -> Result<(), QueueStoreError> {
        self.store.limit_pages(pages)
    }

    /// The stored messages of queue `rid`, oldest first (for checks).
    pub fn messages(&self, rid: &QueueId) -> Result<Vec<StoredMessage>, QueueStoreError> {
        self.store.messages(rid)
    }
}

/// The `MSG` the recipient gets for `m`: crypto_box with the queue's DH secret,
/// nonce = message id, of `pad(ts || flags || ' ' || body, 16106)` (or of
/// `"QUOTA " || ts` for the quota marker).
fn encrypt_msg(rec: &QueueRecord, m: &StoredMessage) -> Result<Reply, ErrorCode> {
    let ts = m.ts.to_be_bytes();
    // The parts are padded and boxed in one buffer (the body copied once).
    let boxed = match &m.body {
        MessageBody::Message { notification, body } => {
            let flags = [if *notification { b'T' } else { b'F' }, b' '];
            let parts: [&[u8]; 3] = [&ts, &flags, body];
            nacl::cb_encrypt_parts(rec.rcv_dh_secret.as_bytes(), &m.id, &parts, RCV_PADDED_LEN)
        }
        MessageBody::Quota => nacl::cb_encrypt_parts(
            rec.rcv_dh_secret.as_bytes(),
            &m.id,
            &[b"QUOTA ", &ts],
            RCV_PADDED_LEN,
        ),
    };
    let enc_body = boxed.map_err(|e| {
        tracing::error!(error = %e, "cannot encrypt a stored message");
        ErrorCode::Internal
    })?;
    Ok(Reply::Msg {
        msg_id: m.id,
        enc_body,
    })
}
