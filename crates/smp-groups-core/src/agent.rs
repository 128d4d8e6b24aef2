//! The sans-IO agent: inputs in ([`Agent::handle`]), outputs polled
//! ([`Agent::poll`], [`Agent::poll_timeout`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use serde::Serialize;

use crate::api::{ClientEvent, Command, CommandError, Event};
use crate::config::Config;
use crate::fault::{At, FaultKind, FaultSource, RefusalCounts};
use crate::record::encode;
use crate::relay::{OpId, RelayError, RelayEvent, RelayOp};
use crate::state::{
    Conn, Group, MemberRecIn, MemberRecOut, Meta, Mid, PendingOp, Purpose, RecvInvitation,
};
use crate::store::{Key, RestoreError, SCHEMA_VERSION, StoreBatch};
use crate::time::Timestamp;

/// An input to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A client command with its correlation id.
    Command {
        /// Correlation id, echoed in the response.
        corr: String,
        /// The command.
        command: Command,
    },
    /// A relay result or a delivered message.
    Relay(RelayEvent),
    /// The time returned by [`Agent::poll_timeout`] has come.
    Timeout,
}

/// An output of the agent, in the order to act on them: the storage batch of an
/// input comes first (commit it), then its relay operations and client events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Storage writes, one atomic batch per input.
    Store(StoreBatch),
    /// A relay operation to perform.
    Relay(RelayOp),
    /// An event for the client.
    Event(ClientEvent),
}

/// The state of one agent: pairwise connections and groups, as a deterministic
/// state machine that does no IO and reads no clock.
#[derive(Debug)]
pub struct Agent {
    pub(crate) cfg: Config,
    pub(crate) next_id: u64,
    pub(crate) conns: BTreeMap<u64, Conn>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) invitations: BTreeMap<String, RecvInvitation>,
    pub(crate) ops: BTreeMap<OpId, PendingOp>,
    /// Receive queue (server, recipient id) -> connection.
    pub(crate) rcv_index: BTreeMap<(String, Vec<u8>), u64>,
    pub(crate) dirty: BTreeSet<Key>,
    /// Connections whose outbox may be able to move.
    pub(crate) kick: BTreeSet<u64>,
    ops_out: Vec<RelayOp>,
    events_out: Vec<ClientEvent>,
    outputs: VecDeque<Output>,
    pub(crate) now: u64,
    /// When this agent (new, or restored from its store) took its first
    /// input; `None` until then after a restore. A pending member expires
    /// [`Config::pending_member_ttl_ms`] after it was added or after this,
    /// whichever is later: what it sent while we were down waits in our
    /// queues, read only once we are back (not stored).
    pub(crate) up_since: Option<u64>,
    pub(crate) rng: ChaCha20Rng,
    /// Each member's own record part as last written, by group: a group's
    /// flush writes only the members whose record changed.
    written: BTreeMap<String, BTreeMap<Mid, crate::state::Member>>,
    /// Refused inputs since creation or restore (not stored).
    pub(crate) refusals: RefusalCounts,
    /// Undecryptable messages in a row, by connection (not stored).
    pub(crate) undecryptable: BTreeMap<u64, u32>,
    /// Connections whose send the relay refused ([`RelayError::Refused`]),
    /// already reported to the client; cleared when a send goes through.
    pub(crate) send_refused: BTreeSet<u64>,
    /// Receive queues we deleted lately (not stored; at most
    /// [`FORGOTTEN_QUEUES`]): what the relay still says of them is a race.
    pub(crate) forgotten: VecDeque<(String, Vec<u8>)>,
    /// The delivered message this input processes, if it is one (not
    /// stored): what its `MSG` event reports of the relay and the chain.
    pub(crate) inbound: Option<Inbound>,
    /// The cheat this agent's group sends follow (`cheat` feature, tests
    /// only; not stored).
    #[cfg(feature = "cheat")]
    pub(crate) cheat: Option<crate::cheat::Cheat>,
    /// Connections whose next sealed message is recorded in our chain as
    /// other bytes than were sent (`cheat` feature; not stored).
    #[cfg(feature = "cheat")]
    pub(crate) fork_next: BTreeSet<u64>,
}

/// What a `MSG` event reports of the delivery that carried the message.
#[derive(Clone, Debug)]
pub(crate) struct Inbound {
    /// The relay's id of the message.
    pub(crate) relay_msg_id: Vec<u8>,
    /// The relay's timestamp.
    pub(crate) relay_ts: Timestamp,
    /// The connection chain's verdict on the agent message, once decrypted.
    pub(crate) verdict: Option<smp_groups_integrity::ConnVerdict>,
}

/// How many deleted receive queues [`Agent`] remembers, to tell a late
/// message or answer for one of them (a race) from the relay's mistake.
const FORGOTTEN_QUEUES: usize = 1024;

impl Agent {
    /// A new agent with no connections or groups. Poll it for its first storage
    /// batch (its metadata record).
    pub fn new(cfg: Config) -> Self {
        let mut agent = Self::empty(cfg);
        agent.dirty.insert(Key::Meta);
        agent.flush();
        agent
    }

    fn empty(cfg: Config) -> Self {
        Self {
            cfg,
            next_id: 1,
            conns: BTreeMap::new(),
            groups: BTreeMap::new(),
            invitations: BTreeMap::new(),
            ops: BTreeMap::new(),
            rcv_index: BTreeMap::new(),
            dirty: BTreeSet::new(),
            kick: BTreeSet::new(),
            ops_out: Vec::new(),
            events_out: Vec::new(),
            outputs: VecDeque::new(),
            now: 0,
            up_since: Some(0),
            rng: ChaCha20Rng::from_seed([0; 32]),
            written: BTreeMap::new(),
            refusals: RefusalCounts::default(),
            undecryptable: BTreeMap::new(),
            send_refused: BTreeSet::new(),
            forgotten: VecDeque::new(),
            inbound: None,
            #[cfg(feature = "cheat")]
            cheat: None,
            #[cfg(feature = "cheat")]
            fork_next: BTreeSet::new(),
        }
    }

    /// The metadata of a message delivered by this input: the sender's id
    /// and time, `integrity`, and the relay's id and time of the delivery.
    pub(crate) fn msg_meta(
        &self,
        snd_msg_id: u64,
        snd_ts: u64,
        integrity: crate::MsgIntegrity,
    ) -> crate::MsgMeta {
        let (relay_msg_id, relay_ts) = self
            .inbound
            .as_ref()
            .map(|i| (i.relay_msg_id.clone(), i.relay_ts))
            .unwrap_or_default();
        crate::MsgMeta {
            snd_msg_id,
            snd_ts: Timestamp::from_millis(snd_ts),
            relay_msg_id,
            relay_ts,
            rcv_ts: Timestamp::from_millis(self.now),
            integrity,
        }
    }

    /// The agent's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Changes the settings that may change on a running or restored agent
    /// (approvals, the check schedule, receipts); they apply from the next
    /// input on and are stored with the next input's batch.
    pub fn apply_settings(&mut self, settings: &crate::Settings) {
        if crate::Settings::of(&self.cfg) != *settings {
            settings.apply_to(&mut self.cfg);
            self.dirty.insert(Key::Meta);
        }
    }

    /// Rebuilds an agent from the records its batches persisted. The restored
    /// agent re-subscribes to its receive queues and re-issues every relay
    /// operation that was in flight (poll for them).
    pub fn restore(
        records: impl IntoIterator<Item = (Key, Vec<u8>)>,
        schema: u32,
    ) -> Result<Self, RestoreError> {
        if schema != SCHEMA_VERSION && schema != crate::record::UNVERSIONED_SCHEMA {
            return Err(RestoreError::Schema {
                found: schema,
                expected: SCHEMA_VERSION,
            });
        }
        let mut meta: Option<Meta> = None;
        let mut conns = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let mut invitations = BTreeMap::new();
        let mut ops = BTreeMap::new();
        let mut members: BTreeMap<String, Vec<(Mid, MemberRecIn)>> = BTreeMap::new();
        let mut sent: BTreeMap<String, Vec<(u64, crate::history::SentRec)>> = BTreeMap::new();
        let mut direct: BTreeMap<String, crate::direct::DirectBook> = BTreeMap::new();
        let mut profiles: BTreeMap<String, crate::profile::Profiles> = BTreeMap::new();
        let mut proof_units: BTreeMap<String, Vec<(u64, crate::proof::Unit)>> = BTreeMap::new();
        let mut proof_sent: BTreeMap<String, Vec<(u64, BTreeSet<Mid>)>> = BTreeMap::new();
        let mut shared: BTreeMap<String, Vec<(u64, crate::history_share::SharedRec)>> =
            BTreeMap::new();
        // Records of an older layout, to be written again at the current one.
        let mut rewrite: Vec<Key> = Vec::new();
        for (key, stored) in records {
            let (value, migrated) = crate::record::open(&key, &stored, schema).map_err(|e| {
                use crate::record::OpenError;
                match e {
                    OpenError::NoLayout => RestoreError::Corrupt {
                        key: key.clone(),
                        reason: "no layout version".to_owned(),
                    },
                    OpenError::Newer(found) => RestoreError::Layout {
                        key: key.clone(),
                        found,
                        known: crate::record::layout(&key),
                    },
                    OpenError::Migration { from, reason } => RestoreError::Migration {
                        key: key.clone(),
                        from,
                        reason,
                    },
                }
            })?;
            if migrated {
                rewrite.push(key.clone());
            }
            let bad = |e: postcard::Error| RestoreError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            };
            match &key {
                Key::Meta => meta = Some(postcard::from_bytes(&value).map_err(bad)?),
                Key::Conn(id) => {
                    conns.insert(*id, postcard::from_bytes(&value).map_err(bad)?);
                }
                Key::Group(alias) => {
                    groups.insert(alias.clone(), postcard::from_bytes(&value).map_err(bad)?);
                }
                Key::Invitation(id) => {
                    invitations.insert(id.clone(), postcard::from_bytes(&value).map_err(bad)?);
                }
                Key::Op(id) => {
                    ops.insert(
                        OpId(*id),
                        postcard::from_bytes::<PendingOp>(&value).map_err(bad)?,
                    );
                }
                Key::Member(alias, mid) => {
                    let rec: MemberRecIn = postcard::from_bytes(&value).map_err(bad)?;
                    members.entry(alias.clone()).or_default().push((*mid, rec));
                }
                Key::Profiles(alias) => {
                    profiles.insert(alias.clone(), postcard::from_bytes(&value).map_err(bad)?);
                }
                Key::Proof(alias, n) => {
                    let unit = postcard::from_bytes(&value).map_err(bad)?;
                    proof_units
                        .entry(alias.clone())
                        .or_default()
                        .push((*n, unit));
                }
                Key::ProofSent(alias, id) => {
                    let to = postcard::from_bytes(&value).map_err(bad)?;
                    proof_sent.entry(alias.clone()).or_default().push((*id, to));
                }
                Key::Shared(alias, seq) => {
                    let rec = postcard::from_bytes(&value).map_err(bad)?;
                    shared.entry(alias.clone()).or_default().push((*seq, rec));
                }
                Key::Sent(alias, ext_msg_id) => {
                    let rec = crate::history::SentRec::from_stored(&value).map_err(bad)?;
                    sent.entry(alias.clone())
                        .or_default()
                        .push((*ext_msg_id, rec));
                }
                Key::Direct(alias) => {
                    direct.insert(alias.clone(), postcard::from_bytes(&value).map_err(bad)?);
                }
            }
        }
        for (alias, book) in direct {
            let Some(g) = groups.get_mut(&alias) else {
                return Err(RestoreError::Corrupt {
                    key: Key::Direct(alias),
                    reason: "direct messages of a group that is not stored".to_owned(),
                });
            };
            let g: &mut Group = g;
            g.direct = book;
        }
        for (alias, list) in shared {
            let Some(g) = groups.get_mut(&alias) else {
                return Err(RestoreError::Corrupt {
                    key: Key::Group(alias),
                    reason: "shared history of a group that is not stored".to_owned(),
                });
            };
            let g: &mut Group = g;
            g.shared.extend(list);
        }
        for alias in proof_units.keys().chain(proof_sent.keys()) {
            if !groups.contains_key(alias) {
                return Err(RestoreError::Corrupt {
                    key: Key::Group(alias.clone()),
                    reason: "proofs of a group that is not stored".to_owned(),
                });
            }
        }
        for (alias, g) in &mut groups {
            let g: &mut Group = g;
            let units = proof_units.remove(alias).unwrap_or_default();
            let sent = proof_sent.remove(alias).unwrap_or_default();
            if !units.is_empty() || !sent.is_empty() {
                g.proofs = crate::proof::ProofBook::restore(units, sent);
            }
        }
        for (alias, p) in profiles {
            let Some(g) = groups.get_mut(&alias) else {
                return Err(RestoreError::Corrupt {
                    key: Key::Profiles(alias),
                    reason: "profiles of a group that is not stored".to_owned(),
                });
            };
            let g: &mut Group = g;
            g.profiles = p;
        }
        for (alias, list) in sent {
            let Some(g) = groups.get_mut(&alias) else {
                return Err(RestoreError::Corrupt {
                    key: Key::Group(alias),
                    reason: "kept messages of a group that is not stored".to_owned(),
                });
            };
            let g: &mut Group = g;
            g.history.extend(list);
        }
        for (alias, list) in members {
            let Some(g) = groups.get_mut(&alias) else {
                return Err(RestoreError::Corrupt {
                    key: Key::Group(alias),
                    reason: "member records of a group that is not stored".to_owned(),
                });
            };
            let g: &mut Group = g;
            let mut states = BTreeMap::new();
            for (mid, rec) in list {
                g.members.insert(mid, rec.member);
                if let Some(st) = rec.integrity {
                    states.insert(smp_groups_wire::agent::MemberId(mid), st);
                }
            }
            g.integrity.restore_members(states);
            let _ = g.integrity.take_changed();
        }
        let meta = meta.ok_or(RestoreError::NoMeta)?;
        let mut agent = Self::empty(meta.config);
        agent.up_since = None;
        agent.next_id = meta.next_id;
        agent.conns = conns;
        agent.groups = groups;
        agent.invitations = invitations;
        agent.ops = ops;
        let aliases: Vec<String> = agent.groups.keys().cloned().collect();
        for a in aliases {
            let written = agent.member_parts(&a);
            agent.written.insert(a, written);
        }
        // Migrated records are written again, at their current layout, in
        // the batch below (a store of the unversioned schema: all of them).
        for key in rewrite {
            if let Key::Member(alias, mid) = &key {
                if let Some(w) = agent.written.get_mut(alias) {
                    w.remove(mid);
                }
                agent.dirty.insert(Key::Group(alias.clone()));
            } else {
                agent.dirty.insert(key);
            }
        }
        for (id, c) in &agent.conns {
            if let Some(q) = &c.rcv {
                agent
                    .rcv_index
                    .insert((q.server.clone(), q.rcv_id.clone()), *id);
            }
        }
        // Re-issue what was in flight, then subscribe to every receive queue.
        let pending: Vec<RelayOp> = agent.ops.values().map(|p| p.op.clone()).collect();
        agent.ops_out.extend(pending);
        let queues: Vec<(String, Vec<u8>)> = agent.rcv_index.keys().cloned().collect();
        for (server, rcv_id) in queues {
            let op = agent.alloc_op();
            agent.issue(RelayOp::Subscribe { op, server, rcv_id }, Purpose::Plain);
        }
        agent.flush();
        Ok(agent)
    }

    /// Processes one input at time `now`, with randomness from `rng`. Then poll
    /// the outputs.
    pub fn handle(&mut self, input: Input, now: Timestamp, rng: &mut (impl RngCore + CryptoRng)) {
        self.now = self.now.max(now.as_millis());
        self.up_since.get_or_insert(self.now);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        self.rng = ChaCha20Rng::from_seed(seed);
        match input {
            Input::Command { corr, command } => self.on_command(corr, command),
            Input::Relay(ev) => self.on_relay(ev),
            Input::Timeout => self.on_timeout(),
        }
        // A check triggered by a message count is due as soon as it counts.
        self.fire_due(crate::timers::TimerKind::Check);
        self.pump();
        self.flush();
    }

    /// The next output, in order.
    pub fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`handle`](Self::handle) with [`Input::Timeout`] next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_deadline().map(Timestamp::from_millis)
    }

    fn on_command(&mut self, corr: String, command: Command) {
        let result = match command {
            Command::NewConn { alias } => self.cmd_new_conn(alias),
            Command::JoinConn {
                alias,
                invitation,
                info,
            } => self.cmd_join_conn(alias, &invitation, info),
            Command::SendConn { alias, body } => self.cmd_send_conn(&alias, body),
            Command::AckConn { alias, msg_id } => self.cmd_ack_conn(&alias, msg_id),
            Command::DelConn { alias } => self.cmd_del_conn(&alias),
            Command::NewGroup { alias, info } => self.cmd_new_group(alias, info),
            Command::Intro { conn, group, info } => self.cmd_intro(&conn, &group, info),
            Command::JoinGroup { alias, invitation } => self.cmd_join_group(alias, &invitation),
            Command::RejectInvitation { invitation } => self.cmd_reject_invitation(&invitation),
            Command::Send { group, body } => self.cmd_send(&group, body),
            Command::DirectSend {
                group,
                member,
                body,
            } => self.cmd_direct_send(&group, member, body),
            Command::Ack { group, msg_id }
                if self
                    .groups
                    .get(&group)
                    .is_some_and(|g| g.direct.awaits_ack(msg_id)) =>
            {
                self.cmd_direct_ack(&group, msg_id)
            }
            Command::Ack { group, msg_id } => self.cmd_ack(&group, msg_id),
            Command::Leave { group } => self.cmd_leave(&group),
            Command::Remove { group, member } => self.cmd_remove(&group, member.0),
            Command::Delete { group } => self.cmd_delete(&group),
            Command::Check { group } => self.cmd_check(&group),
            Command::SetInfo { group, info } => self.cmd_set_info(&group, info),
            Command::SetProfile { group, profile } => self.cmd_set_profile(&group, profile),
            Command::Approve {
                group,
                approval,
                accept,
            } => self.cmd_approve(&group, approval, accept),
        };
        let event = result.unwrap_or_else(|e| {
            self.refuse(FaultSource::Client, FaultKind::Command, At::default(), &e);
            Event::Err(e)
        });
        self.events_out.push(ClientEvent {
            corr: Some(corr),
            event,
        });
    }

    fn on_relay(&mut self, ev: RelayEvent) {
        match ev {
            RelayEvent::QueueCreated { op, rcv_id, snd_id } => {
                let Some(p) = self.ops.get(&op) else {
                    // The queue was created but nothing waits for it: without
                    // its server we cannot delete it (it expires at the relay).
                    self.unknown_op(op, "QueueCreated");
                    return;
                };
                let (Purpose::RcvQueue(conn), RelayOp::CreateQueue { server, .. }) =
                    (&p.purpose, &p.op)
                else {
                    let detail = format!("a queue created for {}", p.op.command_name());
                    self.refuse(
                        FaultSource::Relay,
                        FaultKind::ResultMismatch,
                        At::default(),
                        &detail,
                    );
                    return;
                };
                let (conn, server) = (*conn, server.clone());
                self.finish_op(op);
                self.on_queue_created(conn, server, rcv_id, &snd_id);
            }
            RelayEvent::Done { op } => {
                let Some(p) = self.ops.get(&op) else {
                    self.unknown_op(op, "Done");
                    return;
                };
                if let Purpose::RcvQueue(conn) = p.purpose {
                    // A queue creation must answer with the queue's ids.
                    self.refuse(
                        FaultSource::Relay,
                        FaultKind::ResultMismatch,
                        At::conn(conn),
                        &"NEW answered without a queue",
                    );
                    return;
                }
                if let Some(p) = self.finish_op(op) {
                    match p.purpose {
                        Purpose::Send(conn) => self.on_send_done(conn, op),
                        Purpose::Secure(conn) => self.on_secured(conn),
                        Purpose::RcvQueue(_) | Purpose::Plain => {}
                    }
                }
            }
            RelayEvent::Failed { op, error } => self.on_op_failed(op, error),
            RelayEvent::Message {
                server,
                rcv_id,
                msg_id,
                ts,
                body,
            } => {
                let conn = self
                    .rcv_index
                    .get(&(server.clone(), rcv_id.clone()))
                    .copied();
                if let Some(conn) = conn {
                    self.inbound = Some(Inbound {
                        relay_msg_id: msg_id.clone(),
                        relay_ts: ts,
                        verdict: None,
                    });
                    self.on_message(conn, &body);
                    self.inbound = None;
                } else {
                    // Messages the relay delivered before it executed our
                    // `DEL` are a race; for a queue we never had, the
                    // relay's fault.
                    let source = if self.deleted_queue(&server, &rcv_id) {
                        FaultSource::Nobody
                    } else {
                        FaultSource::Relay
                    };
                    let detail = format!("message for queue {server} {rcv_id:02x?}");
                    self.refuse(source, FaultKind::UnknownQueue, At::default(), &detail);
                }
                // Acknowledged after the effects are in this input's batch.
                let op = self.alloc_op();
                self.issue(
                    RelayOp::Ack {
                        op,
                        server,
                        rcv_id,
                        msg_id,
                    },
                    Purpose::Plain,
                );
            }
        }
    }

    /// Remembers a receive queue we deleted (bounded, not stored).
    pub(crate) fn forget_queue(&mut self, server: String, rcv_id: Vec<u8>) {
        if self.forgotten.len() >= FORGOTTEN_QUEUES {
            self.forgotten.pop_front();
        }
        self.forgotten.push_back((server, rcv_id));
    }

    /// Whether we deleted (or are deleting) this receive queue: what the
    /// relay says of it now is a race, not a fault.
    fn deleted_queue(&self, server: &str, rcv_id: &[u8]) -> bool {
        self.forgotten
            .iter()
            .any(|(s, r)| s == server && r.as_slice() == rcv_id)
            || self.ops.values().any(|p| {
                matches!(&p.op, RelayOp::Delete { server: s, rcv_id: r, .. }
                    if s == server && r.as_slice() == rcv_id)
            })
    }

    /// A relay result for an operation that is not pending: a late answer
    /// to one that was retried or already answered.
    fn unknown_op(&mut self, op: OpId, what: &str) {
        let detail = format!("{what} for operation {}", op.0);
        self.refuse(
            FaultSource::Nobody,
            FaultKind::UnknownOp,
            At::default(),
            &detail,
        );
    }

    /// Schedules operation `op` again: after the next backoff step, or at
    /// the longest retry interval when `longest`.
    fn retry_later(&mut self, op: OpId, longest: bool) {
        let (base, max, now) = (self.cfg.retry_ms, self.cfg.max_retry_ms, self.now);
        if let Some(p) = self.ops.get_mut(&op) {
            p.attempts = p.attempts.saturating_add(1);
            let delay = if longest {
                max.max(1)
            } else {
                base.saturating_mul(1u64 << p.attempts.min(20))
                    .min(max)
                    .max(1)
            };
            p.retry_at = Some(now.saturating_add(delay));
            self.dirty.insert(Key::Op(op.0));
        }
    }

    fn on_op_failed(&mut self, op: OpId, error: RelayError) {
        if !self.ops.contains_key(&op) {
            self.unknown_op(op, &format!("{error:?}"));
            return;
        }
        if let (RelayError::Refused, Some(Purpose::Send(conn))) =
            (error, self.ops.get(&op).map(|p| &p.purpose))
        {
            // Not the peer's doing: the envelope stays first in line and is
            // tried again, rarely; the client is told once.
            let conn = *conn;
            let detail = format!("the relay refused a send on connection {conn}");
            if self.send_refused.insert(conn) {
                self.report(
                    FaultSource::Relay,
                    FaultKind::SendRefused,
                    At::conn(conn),
                    &detail,
                );
            } else {
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::SendRefused,
                    At::conn(conn),
                    &detail,
                );
            }
            self.retry_later(op, true);
            return;
        }
        match error {
            RelayError::Temporary => self.retry_later(op, false),
            RelayError::NoQueue | RelayError::Auth | RelayError::Refused => {
                // A retried confirmation refused because the inviter already
                // secured its queue with our key: it was delivered.
                let conf_done = matches!(error, RelayError::Auth)
                    && self.ops.get(&op).is_some_and(|p| match p.purpose {
                        Purpose::Send(c) => self
                            .conns
                            .get(&c)
                            .and_then(|c| c.snd.as_ref())
                            .is_some_and(|q| !q.secured),
                        _ => false,
                    });
                if conf_done {
                    if let Some(Purpose::Send(conn)) = self.finish_op(op).map(|p| p.purpose) {
                        self.on_send_done(conn, op);
                    }
                    return;
                }
                if let Some(p) = self.finish_op(op) {
                    let detail = format!("{} refused: {error:?}", p.op.command_name());
                    match p.purpose {
                        // The peer deleted its queue: nothing on this
                        // connection can be delivered any more.
                        Purpose::Send(conn) => self.on_send_dead(conn),
                        Purpose::Secure(conn) => {
                            // We deleted the queue while its `KEY` was on
                            // the way (the connection closed): a race.
                            let ours = self.conns.get(&conn).is_some_and(|c| c.rcv.is_some());
                            let source = if ours {
                                FaultSource::Relay
                            } else {
                                FaultSource::Nobody
                            };
                            self.refuse(source, FaultKind::SecureRefused, At::conn(conn), &detail);
                            self.on_secured(conn);
                        }
                        Purpose::RcvQueue(conn) => {
                            // The connection stays as it is (the client may
                            // delete it; a member's expires as pending).
                            self.report(
                                FaultSource::Relay,
                                FaultKind::QueueRefused,
                                At::conn(conn),
                                &detail,
                            );
                        }
                        Purpose::Plain => self.plain_op_refused(&p.op, &detail),
                    }
                }
            }
        }
    }

    /// A `SUB`, `ACK` or `DEL` refused for good. A refused `SUB` means our
    /// receive queue is gone: nothing more arrives on its connection.
    fn plain_op_refused(&mut self, op: &RelayOp, detail: &str) {
        let (server, rcv_id) = match op {
            RelayOp::Subscribe { server, rcv_id, .. }
            | RelayOp::Ack { server, rcv_id, .. }
            | RelayOp::Delete { server, rcv_id, .. } => (server, rcv_id),
            RelayOp::CreateQueue { .. } | RelayOp::Secure { .. } | RelayOp::Send { .. } => {
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::OpRefused,
                    At::default(),
                    &detail,
                );
                return;
            }
        };
        let conn = self
            .rcv_index
            .get(&(server.clone(), rcv_id.clone()))
            .copied();
        match (op, conn) {
            (RelayOp::Subscribe { .. }, Some(c)) => {
                self.report(
                    FaultSource::Relay,
                    FaultKind::QueueGone,
                    At::conn(c),
                    &detail,
                );
            }
            (_, Some(c)) => {
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::OpRefused,
                    At::conn(c),
                    &detail,
                );
            }
            // A queue we no longer have: we deleted it while the operation
            // was on the way (a race), or never had it.
            (_, None) => {
                let source = if self.deleted_queue(server, rcv_id) {
                    FaultSource::Nobody
                } else {
                    FaultSource::Relay
                };
                self.refuse(source, FaultKind::OpRefused, At::default(), &detail);
            }
        }
    }

    /// Issues again relay operation `id`, whose retry time has come.
    pub(crate) fn retry_op(&mut self, id: OpId) {
        if let Some(p) = self.edit_op(id) {
            p.retry_at = None;
            let op = p.op.clone();
            self.ops_out.push(op);
        }
    }

    /// Issues a relay operation and keeps it until its result arrives.
    pub(crate) fn issue(&mut self, op: RelayOp, purpose: Purpose) {
        let id = op.op();
        self.ops.insert(
            id,
            PendingOp {
                op: op.clone(),
                purpose,
                attempts: 0,
                retry_at: None,
            },
        );
        self.dirty.insert(Key::Op(id.0));
        self.ops_out.push(op);
    }

    fn finish_op(&mut self, op: OpId) -> Option<PendingOp> {
        let p = self.ops.remove(&op)?;
        self.dirty.insert(Key::Op(op.0));
        Some(p)
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.events_out.push(ClientEvent { corr: None, event });
    }

    pub(crate) fn touch_conn(&mut self, id: u64) {
        self.dirty.insert(Key::Conn(id));
        self.kick.insert(id);
    }

    pub(crate) fn touch_group(&mut self, alias: &str) {
        self.dirty.insert(Key::Group(alias.to_owned()));
    }

    /// A fresh alias with a prefix, unused among connections and groups.
    pub(crate) fn fresh_alias(&mut self, prefix: &str) -> String {
        loop {
            let alias = format!("{prefix}{}", self.alloc_id());
            if !self.alias_taken(&alias) {
                return alias;
            }
        }
    }

    pub(crate) fn alias_taken(&self, alias: &str) -> bool {
        self.groups.contains_key(alias)
            || self
                .conns
                .values()
                .any(|c| matches!(&c.owner, crate::state::Owner::Visible(a) if a == alias))
    }

    /// Every record of the agent's current state, as a store that applied
    /// every batch so far holds them. Restoring from these gives this agent.
    pub fn records(&self) -> Vec<(Key, Vec<u8>)> {
        fn put<T: Serialize>(out: &mut Vec<(Key, Vec<u8>)>, key: Key, value: &T) {
            if let Some(v) = encode(&key, value) {
                out.push((key, v));
            }
        }
        let mut out = Vec::new();
        let meta = Meta {
            config: self.cfg.clone(),
            next_id: self.next_id,
        };
        put(&mut out, Key::Meta, &meta);
        for (id, c) in &self.conns {
            put(&mut out, Key::Conn(*id), c);
        }
        for (a, g) in &self.groups {
            let mut shell = g.clone();
            let _ = shell.integrity.take_members();
            put(&mut out, Key::Group(a.clone()), &shell);
            for (mid, m) in &g.members {
                let rec = MemberRecOut {
                    member: m,
                    integrity: g
                        .integrity
                        .member_state(smp_groups_wire::agent::MemberId(*mid)),
                };
                put(&mut out, Key::Member(a.clone(), *mid), &rec);
            }
            for (id, r) in &g.history {
                put(&mut out, Key::Sent(a.clone(), *id), r);
            }
            if !g.direct.is_empty() {
                put(&mut out, Key::Direct(a.clone()), &g.direct);
            }
            for (seq, r) in &g.shared {
                put(&mut out, Key::Shared(a.clone(), *seq), r);
            }
            if g.profiles != crate::profile::Profiles::default() {
                put(&mut out, Key::Profiles(a.clone()), &g.profiles);
            }
            for (n, u) in g.proofs.units() {
                put(&mut out, Key::Proof(a.clone(), *n), u);
            }
            for (id, to) in g.proofs.noted() {
                put(&mut out, Key::ProofSent(a.clone(), *id), to);
            }
        }
        for (i, r) in &self.invitations {
            put(&mut out, Key::Invitation(i.clone()), r);
        }
        for (id, p) in &self.ops {
            put(&mut out, Key::Op(id.0), p);
        }
        out
    }

    /// A group's record (without its members) and the records of the members
    /// that changed since they were last written; deletes for the members
    /// gone. All of them if the group is gone.
    fn flush_group(&mut self, alias: &str, batch: &mut StoreBatch) {
        let old = self.written.remove(alias).unwrap_or_default();
        let Some(g) = self.groups.get_mut(alias) else {
            batch.deletes.push(Key::Group(alias.to_owned()));
            batch.deletes.push(Key::Profiles(alias.to_owned()));
            for mid in old.keys() {
                batch.deletes.push(Key::Member(alias.to_owned(), *mid));
            }
            return;
        };
        let changed = g.integrity.take_changed();
        let states = g.integrity.take_members();
        let key = Key::Group(alias.to_owned());
        let shell = encode(&key, &*g);
        g.integrity.restore_members(states);
        match shell {
            Some(v) => batch.puts.push((key, v)),
            None => batch.deletes.push(key),
        }
        let mut now = BTreeMap::new();
        for (mid, m) in &g.members {
            let id = smp_groups_wire::agent::MemberId(*mid);
            let same = old.get(mid) == Some(m) && !changed.contains(&id);
            if !same {
                let rec = MemberRecOut {
                    member: m,
                    integrity: g.integrity.member_state(id),
                };
                let key = Key::Member(alias.to_owned(), *mid);
                if let Some(v) = encode(&key, &rec) {
                    batch.puts.push((key, v));
                }
            }
            now.insert(*mid, m.clone());
        }
        for mid in old.keys() {
            if !g.members.contains_key(mid) {
                batch.deletes.push(Key::Member(alias.to_owned(), *mid));
            }
        }
        self.written.insert(alias.to_owned(), now);
    }

    /// The own parts of a group's member records as they are now.
    fn member_parts(&self, alias: &str) -> BTreeMap<Mid, crate::state::Member> {
        self.groups
            .get(alias)
            .map_or_else(BTreeMap::new, |g| g.members.clone())
    }

    /// Writes every dirty record into one batch, and queues the outputs.
    fn flush(&mut self) {
        let mut batch = StoreBatch {
            schema: SCHEMA_VERSION,
            puts: Vec::new(),
            deletes: Vec::new(),
        };
        for key in std::mem::take(&mut self.dirty) {
            match &key {
                Key::Group(alias) => {
                    self.flush_group(alias, &mut batch);
                    continue;
                }
                // Member records are written with their group's.
                Key::Member(..) => continue,
                _ => {}
            }
            let value = match &key {
                Key::Meta => encode(
                    &key,
                    &Meta {
                        config: self.cfg.clone(),
                        next_id: self.next_id,
                    },
                ),
                Key::Conn(id) => self.conns.get(id).and_then(|v| encode(&key, v)),
                Key::Group(_) | Key::Member(..) => continue,
                Key::Invitation(i) => self.invitations.get(i).and_then(|v| encode(&key, v)),
                Key::Op(id) => self.ops.get(&OpId(*id)).and_then(|v| encode(&key, v)),
                Key::Profiles(alias) => self
                    .groups
                    .get(alias)
                    .map(|g| &g.profiles)
                    .and_then(|v| encode(&key, v)),
                Key::Shared(alias, seq) => self
                    .groups
                    .get(alias)
                    .and_then(|g| g.shared.get(seq))
                    .and_then(|v| encode(&key, v)),
                Key::Sent(alias, id) => self
                    .groups
                    .get(alias)
                    .and_then(|g| g.history.get(id))
                    .and_then(|v| encode(&key, v)),
                Key::Direct(alias) => self
                    .groups
                    .get(alias)
                    .map(|g| &g.direct)
                    .filter(|d| !d.is_empty())
                    .and_then(|v| encode(&key, v)),
                Key::Proof(alias, n) => self
                    .groups
                    .get(alias)
                    .and_then(|g| g.proofs.unit(*n))
                    .and_then(|v| encode(&key, v)),
                Key::ProofSent(alias, id) => self
                    .groups
                    .get(alias)
                    .and_then(|g| g.proofs.recipients(*id))
                    .and_then(|v| encode(&key, v)),
            };
            match value {
                Some(v) => batch.puts.push((key, v)),
                None => batch.deletes.push(key),
            }
        }
        if !batch.is_empty() {
            self.outputs.push_back(Output::Store(batch));
        }
        for op in self.ops_out.drain(..) {
            self.outputs.push_back(Output::Relay(op));
        }
        for ev in self.events_out.drain(..) {
            self.outputs.push_back(Output::Event(ev));
        }
    }

    /// Maps a missing group to the command error.
    pub(crate) fn group_mut(&mut self, alias: &str) -> Result<&mut Group, CommandError> {
        self.groups
            .get_mut(alias)
            .ok_or_else(|| CommandError::NoGroup(alias.to_owned()))
    }
}

/// Read-only views for drivers and tests.
impl Agent {
    /// Our member id in a group.
    pub fn member_id(&self, group: &str) -> Option<smp_groups_wire::agent::MemberId> {
        self.groups
            .get(group)
            .map(|g| smp_groups_wire::agent::MemberId(g.me))
    }

    /// The group-wide id of a group.
    pub fn group_id(&self, group: &str) -> Option<smp_groups_wire::agent::GroupId> {
        self.groups
            .get(group)
            .map(|g| smp_groups_wire::agent::GroupId(g.id))
    }

    /// The members of a group we are connected to (ourselves excluded).
    pub fn members(&self, group: &str) -> Vec<smp_groups_wire::agent::MemberId> {
        self.groups.get(group).map_or_else(Vec::new, |g| {
            g.members
                .iter()
                .filter(|(_, m)| m.status != crate::state::MemberStatus::Pending)
                .map(|(id, _)| smp_groups_wire::agent::MemberId(*id))
                .collect()
        })
    }

    /// Every member we know, connected or not.
    pub fn known_members(&self, group: &str) -> Vec<smp_groups_wire::agent::MemberId> {
        self.groups.get(group).map_or_else(Vec::new, |g| {
            g.members
                .keys()
                .map(|id| smp_groups_wire::agent::MemberId(*id))
                .collect()
        })
    }

    /// Our group aliases.
    pub fn groups(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Number of connections (visible and hidden).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }
}
