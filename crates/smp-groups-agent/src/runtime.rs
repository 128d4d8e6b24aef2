//! The runtime task: owns the core [`CoreAgent`] and its [`Store`], and runs
//! every input through one store transaction before acting on its outputs.
//!
//! For each input (a client command, a relay result or delivered message, a
//! timer):
//!
//! 1. A delivered message already processed before a crash
//!    ([`Store::is_processed`]) is only acknowledged to the relay.
//! 2. The core handles the input with the real clock and the system RNG.
//! 3. Its storage batch, its relay operations (the outbox), its client events
//!    (the events the agent sends on its own), the processed mark of the
//!    delivered message, and the removal of outbox items the input completes,
//!    are committed in ONE transaction.
//! 4. Only then are the relay operations performed (so a message is
//!    acknowledged to the relay only after its effects are durable), the
//!    command's response returned, and the events delivered to subscribers.
//!    An event is marked delivered once a subscriber confirms it; events not
//!    confirmed before a crash are delivered again after the restart, and
//!    never after their confirmation.

use std::collections::{HashMap, HashSet, VecDeque};

use smp_groups_core::{
    Agent as CoreAgent, ClientEvent, Command, Event, Input, OpId, Output, RelayEvent, RelayOp,
    Timestamp,
};
use smp_groups_store::{Store, Transaction, queue_key};
use smp_groups_wire::client::{AgentEvent, CorrId, LineDecoder, Transmission};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::events::to_agent_event;
use crate::relay_client::RelayClient;

/// One client event with its sequence number (confirm it with
/// [`crate::Agent::confirm`] once handled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The event's sequence number: contiguous, in order.
    pub seq: u64,
    /// The event.
    pub event: AgentEvent,
}

/// Envelopes and relay operations this agent sent (first attempts only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Agent envelopes sent (relay `SEND`s), by type.
    pub envelopes: HashMap<String, u64>,
    /// All relay operations performed.
    pub operations: u64,
}

impl Metrics {
    /// Total envelopes sent.
    pub fn total_envelopes(&self) -> u64 {
        self.envelopes.values().sum()
    }
}

pub(crate) enum Request {
    Command {
        command: Command,
        reply: oneshot::Sender<Event>,
    },
    Subscribe(mpsc::UnboundedSender<Delivery>),
    Confirm(u64),
    Metrics(oneshot::Sender<Metrics>),
    Members(
        String,
        oneshot::Sender<Vec<smp_groups_wire::agent::MemberId>>,
    ),
    MemberId(
        String,
        oneshot::Sender<Option<smp_groups_wire::agent::MemberId>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

/// Private operation ids for acknowledging redelivered messages (the core's ids
/// count up from 1 and never get here).
const OWN_OP_BASE: u64 = 1 << 63;

pub(crate) struct Runtime {
    pub(crate) core: CoreAgent,
    pub(crate) store: Store,
    pub(crate) relay: Box<dyn RelayClient>,
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) relay_events: mpsc::UnboundedReceiver<RelayEvent>,
    /// Outbox items of each operation in flight.
    pub(crate) outbox: HashMap<OpId, Vec<u64>>,
    pub(crate) counted: HashSet<OpId>,
    pub(crate) metrics: Metrics,
    pub(crate) waiting: HashMap<String, oneshot::Sender<Event>>,
    pub(crate) subscribers: Vec<mpsc::UnboundedSender<Delivery>>,
    /// Events committed and not yet confirmed, in order.
    pub(crate) unconfirmed: VecDeque<Delivery>,
    pub(crate) next_corr: u64,
    pub(crate) next_own_op: u64,
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(ms)
}

/// Decodes a stored event line.
pub(crate) fn decode_event(bytes: &[u8]) -> Option<AgentEvent> {
    let mut dec = LineDecoder::<AgentEvent>::new(smp_groups_wire::client::FrameLimits::default());
    dec.push(bytes);
    match dec.next() {
        Some(Ok(t)) => Some(t.msg),
        _ => None,
    }
}

impl Runtime {
    /// Commits the outputs the core produced when it was created or restored,
    /// replacing the outbox of the previous run (the core re-issues what was in
    /// flight), and loads the events not yet confirmed.
    pub(crate) fn start(&mut self) -> Result<(), Error> {
        let stale: Vec<u64> = self.store.outbox()?.into_iter().map(|i| i.id).collect();
        for p in self.store.pending_events()? {
            if let Some(event) = decode_event(&p.body) {
                self.unconfirmed.push_back(Delivery { seq: p.seq, event });
            } else {
                tracing::error!(seq = p.seq, "stored event does not decode; skipped");
            }
        }
        self.commit(None, stale)
    }

    pub(crate) async fn run(mut self) {
        loop {
            let timer = self.core.poll_timeout().map(|t| {
                let wait = t.as_millis().saturating_sub(now().as_millis());
                tokio::time::Instant::now() + std::time::Duration::from_millis(wait)
            });
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mut stop = None;
            let result = tokio::select! {
                req = self.requests.recv() => match req {
                    Some(Request::Shutdown(done)) => {
                        stop = Some(done);
                        Ok(())
                    }
                    Some(r) => self.on_request(r),
                    None => return,
                },
                ev = self.relay_events.recv() => match ev {
                    Some(ev) => self.on_relay(ev),
                    None => return,
                },
                () = sleep => {
                    let span = tracing::debug_span!("timer");
                    let _g = span.enter();
                    self.step(Input::Timeout, None, Vec::new())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "agent stopped: a store transaction failed");
                return;
            }
            if let Some(done) = stop {
                drop(self);
                let _ = done.send(());
                return;
            }
        }
    }

    fn on_request(&mut self, req: Request) -> Result<(), Error> {
        match req {
            Request::Command { command, reply } => {
                self.next_corr += 1;
                let corr = self.next_corr.to_string();
                let span =
                    tracing::info_span!("command", corr = %corr, command = command_name(&command));
                let _g = span.enter();
                self.waiting.insert(corr.clone(), reply);
                self.step(Input::Command { corr, command }, None, Vec::new())
            }
            Request::Subscribe(tx) => {
                for d in &self.unconfirmed {
                    if tx.send(d.clone()).is_err() {
                        break;
                    }
                }
                self.subscribers.push(tx);
                Ok(())
            }
            Request::Confirm(seq) => {
                let Some(last) = self.unconfirmed.back().map(|d| d.seq) else {
                    return Ok(());
                };
                if seq > last {
                    return Ok(());
                }
                self.store.mark_delivered(seq)?;
                while self.unconfirmed.front().is_some_and(|d| d.seq <= seq) {
                    self.unconfirmed.pop_front();
                }
                Ok(())
            }
            Request::Metrics(tx) => {
                let _ = tx.send(self.metrics.clone());
                Ok(())
            }
            Request::Members(group, tx) => {
                let _ = tx.send(self.core.members(&group));
                Ok(())
            }
            Request::MemberId(group, tx) => {
                let _ = tx.send(self.core.member_id(&group));
                Ok(())
            }
            Request::Shutdown(_) => Ok(()),
        }
    }

    fn on_relay(&mut self, ev: RelayEvent) -> Result<(), Error> {
        let op = match &ev {
            RelayEvent::QueueCreated { op, .. }
            | RelayEvent::Done { op }
            | RelayEvent::Failed { op, .. } => Some(*op),
            RelayEvent::Message { .. } => None,
        };
        if let Some(op) = op {
            if op.0 >= OWN_OP_BASE {
                return Ok(());
            }
            let done = !matches!(
                ev,
                RelayEvent::Failed {
                    error: smp_groups_core::RelayError::Temporary,
                    ..
                }
            );
            if done {
                self.counted.remove(&op);
            }
            let remove = self.outbox.remove(&op).unwrap_or_default();
            return self.step(Input::Relay(ev), None, remove);
        }
        let RelayEvent::Message {
            server,
            rcv_id,
            msg_id,
            ..
        } = &ev
        else {
            return Ok(());
        };
        let span = tracing::debug_span!("message", server = %server);
        let _g = span.enter();
        let Some(queue) = queue_key(server, rcv_id) else {
            return Ok(());
        };
        if self.store.is_processed(&queue, msg_id)? {
            // Processed before a restart: its effects are committed, only the
            // acknowledgement to the relay may be missing.
            self.next_own_op += 1;
            self.relay.perform(RelayOp::Ack {
                op: OpId(OWN_OP_BASE + self.next_own_op),
                server: server.clone(),
                rcv_id: rcv_id.clone(),
                msg_id: msg_id.clone(),
            });
            return Ok(());
        }
        let mark = Some((queue, msg_id.clone()));
        self.step(Input::Relay(ev), mark, Vec::new())
    }

    fn step(
        &mut self,
        input: Input,
        processed: Option<(Vec<u8>, Vec<u8>)>,
        remove: Vec<u64>,
    ) -> Result<(), Error> {
        let mut rng = smp_groups_crypto::rng::system();
        self.core.handle(input, now(), &mut rng);
        let mut txn = Transaction::new();
        txn.processed_msg = processed;
        txn.outbox_remove = remove;
        self.commit_into(txn)
    }

    fn commit(
        &mut self,
        processed: Option<(Vec<u8>, Vec<u8>)>,
        remove: Vec<u64>,
    ) -> Result<(), Error> {
        let mut txn = Transaction::new();
        txn.processed_msg = processed;
        txn.outbox_remove = remove;
        self.commit_into(txn)
    }

    /// Commits the core's pending outputs with `txn`, then acts on them.
    fn commit_into(&mut self, mut txn: Transaction) -> Result<(), Error> {
        let mut ops = Vec::new();
        let mut responses: Vec<ClientEvent> = Vec::new();
        let mut events = Vec::new();
        while let Some(out) = self.core.poll() {
            match out {
                Output::Store(batch) => txn.add_batch(batch),
                Output::Relay(op) => {
                    txn.outbox_add
                        .push(postcard::to_allocvec(&op).unwrap_or_default());
                    ops.push(op);
                }
                Output::Event(e) if e.corr.is_some() => responses.push(e),
                Output::Event(e) => {
                    if let Some(ev) = to_agent_event(&e.event) {
                        txn.events_add
                            .push(Transmission::new(CorrId::empty(), ev.clone()).to_bytes());
                        events.push(ev);
                    } else {
                        tracing::warn!(event = ?e.event, "event without a client form");
                    }
                }
            }
        }
        let applied = if txn.is_empty() {
            smp_groups_store::Applied::default()
        } else {
            self.store.apply(&txn)?
        };
        // Committed: act on the outputs.
        for (op, id) in ops.into_iter().zip(applied.outbox_ids) {
            let op_id = op.op();
            self.outbox.entry(op_id).or_default().push(id);
            self.metrics.operations += 1;
            if self.counted.insert(op_id)
                && let RelayOp::Send { kind, .. } = &op
            {
                *self.metrics.envelopes.entry(kind.clone()).or_default() += 1;
            }
            self.relay.perform(op);
        }
        for r in responses {
            if let Some(corr) = r.corr
                && let Some(tx) = self.waiting.remove(&corr)
            {
                let _ = tx.send(r.event);
            }
        }
        for (event, seq) in events.into_iter().zip(applied.event_seqs) {
            let d = Delivery { seq, event };
            self.subscribers.retain(|s| s.send(d.clone()).is_ok());
            self.unconfirmed.push_back(d);
        }
        Ok(())
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::NewConn { .. } => "new_conn",
        Command::JoinConn { .. } => "join_conn",
        Command::SendConn { .. } => "send_conn",
        Command::AckConn { .. } => "ack_conn",
        Command::DelConn { .. } => "del_conn",
        Command::NewGroup { .. } => "new_group",
        Command::Intro { .. } => "intro",
        Command::JoinGroup { .. } => "join_group",
        Command::Send { .. } => "send",
        Command::Ack { .. } => "ack",
        Command::Leave { .. } => "leave",
        Command::Remove { .. } => "remove",
        Command::Delete { .. } => "delete",
        Command::Approve { .. } => "approve",
    }
}
