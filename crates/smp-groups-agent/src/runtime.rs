//! The runtime task: owns the core [`CoreAgent`] and runs every input
//! through a store transaction before acting on its outputs. The store itself
//! lives on a writer thread of its own ([`Writer`]), so no commit (and no
//! `fsync`) runs on the async runtime's workers, and the agents of one process
//! commit side by side.
//!
//! For each input (a client command, a relay result or delivered message, a
//! timer):
//!
//! 1. A delivered message already processed ([`Store::is_processed`], kept in
//!    memory here) is only acknowledged to the relay, once everything handled
//!    before it is committed.
//! 2. The core handles the input with the real clock and the system RNG.
//! 3. Its storage batch (which holds a record of every relay operation it
//!    issued or retries, `Key::Op`: the core's own persistence of what is in
//!    flight), its client events (the events the agent sends on its own) and
//!    the processed mark of the delivered message go into ONE transaction,
//!    merged with those of the other inputs handled while the previous commit
//!    was running (group commit: at most one commit in flight, the next holds
//!    everything that arrived meanwhile, up to [`MAX_GROUP_INPUTS`] inputs).
//! 4. Only once that commit returns are the relay operations performed (so a
//!    message is acknowledged to the relay only after its effects are
//!    durable, and an operation only after its record is), the command's
//!    response returned, and the events delivered to subscribers, in input
//!    order. An event is marked delivered once a
//!    subscriber confirms it (the mark rides on the next commit, or is
//!    committed alone after [`MARK_DELAY`]); events not confirmed before a
//!    crash are delivered again after the restart, and never after their
//!    confirmation is committed.
//!
//! After a restart the core re-issues the operations whose records survived
//! ([`CoreAgent::restore`]); the runtime itself stores nothing about relay
//! operations. Which operations are performed and not yet answered is kept in
//! memory only, for [`Metrics::in_flight`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use smp_groups_core::{
    Agent as CoreAgent, ClientEvent, Command, Event, Input, OpId, Output, RefusalCounts,
    RelayEvent, RelayOp, Timestamp,
};
use smp_groups_crypto::clock::Clock;
use smp_groups_crypto::rng::SharedRng;
use smp_groups_store::{Applied, Store, StoreError, Transaction, Writer};

use crate::records::{add_batch, queue_key};
use smp_groups_wire::client::{AgentEvent, CorrId, LineDecoder, Transmission};
use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::AgentConfig;
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

/// Envelopes and relay operations this agent sent (first attempts only), and
/// how its inputs were committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Agent envelopes sent (relay `SEND`s), by type.
    pub envelopes: HashMap<String, u64>,
    /// All relay operations performed.
    pub operations: u64,
    /// Inputs the core handled (commands, relay results and messages,
    /// timers).
    pub inputs: u64,
    /// Store commits (each one transaction and one `fsync`); fewer than
    /// `inputs` when several inputs were committed together.
    pub commits: u64,
    /// Work not finished at the time of the query: relay operations
    /// performed and not answered yet, and inputs handled and not committed
    /// yet (0: the agent is idle until a message or timer arrives).
    pub in_flight: u64,
    /// Inputs the core refused since this agent started, by who is at fault
    /// and what was refused (`docs/faults.md`). Not stored: a restart resets
    /// them. Messages the runtime recognises as already processed are
    /// acknowledged without reaching the core, and are not counted.
    pub refusals: RefusalCounts,
}

impl Metrics {
    /// Total envelopes sent.
    pub fn total_envelopes(&self) -> u64 {
        self.envelopes.values().sum()
    }
}

/// A read-only query of the core state: reads it, and returns what sends the
/// answer (called after the commit of what was handled before it).
pub(crate) type QueryFn =
    Box<dyn FnOnce(&smp_groups_core::Agent) -> Box<dyn FnOnce() + Send> + Send>;

pub(crate) enum Request {
    Command {
        command: Command,
        reply: oneshot::Sender<Event>,
    },
    Confirm(u64),
    Metrics(oneshot::Sender<Metrics>),
    /// A read-only query of the core: run now, its answer sent once what
    /// was handled before it is committed.
    Query(QueryFn),
    /// Runs the core's timers now; answered once what they did is committed.
    RunTimers(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Private operation ids for acknowledging redelivered messages (the core's ids
/// count up from 1 and never get here).
const OWN_OP_BASE: u64 = 1 << 63;

/// Most inputs committed together (while one commit runs, the inputs that
/// arrive are handled and gathered for the next; beyond this many the runtime
/// waits for the commit before taking more).
pub(crate) const MAX_GROUP_INPUTS: usize = 128;

/// Most store items (record writes, events, marks...) gathered for one
/// commit; the store takes up to 65 536.
const MAX_GROUP_ITEMS: usize = 8_192;

/// How long a delivered mark with nothing else to commit waits for other work
/// before it is committed alone.
pub(crate) const MARK_DELAY: Duration = Duration::from_millis(100);

/// Events committed and not confirmed that the runtime holds before it stops
/// taking delivered messages from the relays (they wait there, within the
/// relays' quotas, until a client confirms events).
pub(crate) const MAX_UNCONFIRMED_EVENTS: usize = 10_000;

/// Events committed and not yet confirmed, in order: the runtime appends and
/// removes confirmed ones; every event stream reads them at its own pace
/// (nothing is queued per subscriber, so a subscriber that does not read
/// costs nothing).
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    queue: Mutex<VecDeque<Delivery>>,
}

impl EventLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first event with a sequence number of at least `seq`.
    pub(crate) fn first_from(&self, seq: u64) -> Option<Delivery> {
        let q = self.lock();
        let i = q.partition_point(|d| d.seq < seq);
        q.get(i).cloned()
    }

    fn push(&self, d: Delivery) {
        self.lock().push_back(d);
    }

    fn last_seq(&self) -> Option<u64> {
        self.lock().back().map(|d| d.seq)
    }

    fn confirm_upto(&self, seq: u64) {
        let mut q = self.lock();
        while q.front().is_some_and(|d| d.seq <= seq) {
            q.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What an agent's handles see of its runtime: the event log, the last
/// event's sequence number (changes wake the event streams) and, once it has
/// stopped on a failure, why.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) log: Arc<EventLog>,
    pub(crate) latest: watch::Receiver<u64>,
    pub(crate) failure: watch::Receiver<Option<String>>,
}

/// Jobs the writer thread queues: the commit in flight and the close.
const WRITER_DEPTH: usize = 2;

/// What to do once a commit has returned, in input order.
enum Action {
    /// Perform a relay operation (its record is in the commit).
    Perform(RelayOp),
    /// Return a command's response.
    Respond(ClientEvent),
    /// Deliver a client event (it has the next sequence number).
    Deliver(AgentEvent),
    /// Acknowledge a redelivered message (the runtime's own operation, not
    /// recorded by the core).
    Ack(RelayOp),
    /// Send a query's answer (made before, sent after the commit of what was
    /// handled before it).
    Answer(Box<dyn FnOnce() + Send>),
    Done(oneshot::Sender<()>),
}

/// Inputs handled and not yet submitted: their merged transaction and what to
/// do after its commit.
#[derive(Default)]
struct Group {
    txn: Transaction,
    inputs: usize,
    actions: Vec<Action>,
    /// Since when a delivered mark alone waits (nothing else gathered).
    mark_since: Option<tokio::time::Instant>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.inputs == 0 && self.actions.is_empty() && self.txn.is_empty()
    }

    /// True if only a delivered mark waits.
    fn marks_only(&self) -> bool {
        self.inputs == 0 && self.actions.is_empty()
    }

    fn has_room(&self) -> bool {
        self.inputs < MAX_GROUP_INPUTS && self.txn.item_count() < MAX_GROUP_ITEMS
    }
}

/// The commit running on the writer thread.
struct Inflight {
    done: oneshot::Receiver<Result<Applied, StoreError>>,
    inputs: usize,
    actions: Vec<Action>,
}

pub(crate) struct Runtime {
    core: CoreAgent,
    writer: Writer,
    relay: Box<dyn RelayClient>,
    requests: mpsc::Receiver<Request>,
    relay_events: mpsc::UnboundedReceiver<RelayEvent>,
    /// The core's operations performed and not answered yet (in memory only:
    /// the core's records are what survives a restart).
    in_flight: HashSet<OpId>,
    counted: HashSet<OpId>,
    metrics: Metrics,
    waiting: HashMap<String, oneshot::Sender<Event>>,
    /// Events committed and not yet confirmed, in order.
    log: Arc<EventLog>,
    latest: watch::Sender<u64>,
    failure: watch::Sender<Option<String>>,
    next_corr: u64,
    next_own_op: u64,
    /// The last message given to the core of each receive queue (committed,
    /// or in a commit not yet returned): one per queue, like the store's
    /// `processed` table.
    processed: HashMap<Vec<u8>, Vec<u8>>,
    /// The wall clock the core's time comes from.
    clock: Arc<dyn Clock>,
    /// The randomness the core draws from.
    rng: SharedRng,
    pending: Group,
    inflight: Option<Inflight>,
    stopping: Option<oneshot::Sender<()>>,
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

/// Waits for the commit in flight (forever if there is none).
async fn commit_done(inflight: &mut Option<Inflight>) -> Result<Applied, StoreError> {
    match inflight {
        Some(f) => (&mut f.done)
            .await
            .unwrap_or(Err(StoreError::WriterStopped)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Runtime {
    /// Takes over the opened `store` and `core`: loads the events not yet
    /// confirmed and the processed marks, commits (here, before the task
    /// starts) the outputs the core produced when it was created or restored
    /// (the core re-issues what was in flight), and acts on them. The store
    /// moves to its writer thread.
    pub(crate) fn new(
        core: CoreAgent,
        store: Store,
        relay: Box<dyn RelayClient>,
        requests: mpsc::Receiver<Request>,
        relay_events: mpsc::UnboundedReceiver<RelayEvent>,
        config: &AgentConfig,
    ) -> Result<Self, Error> {
        let name = config.identity.as_str();
        let log = Arc::new(EventLog::default());
        for p in store.pending_events()? {
            if let Some(event) = decode_event(&p.body) {
                log.push(Delivery { seq: p.seq, event });
            } else {
                tracing::error!(seq = p.seq, "stored event does not decode; skipped");
            }
        }
        let processed = store.processed_marks()?.into_iter().collect();
        let writer = Writer::spawn(store, name, WRITER_DEPTH)?;
        let mut rt = Self {
            core,
            writer,
            relay,
            requests,
            relay_events,
            in_flight: HashSet::new(),
            counted: HashSet::new(),
            metrics: Metrics::default(),
            waiting: HashMap::new(),
            latest: watch::Sender::new(log.last_seq().unwrap_or(0)),
            log,
            failure: watch::Sender::new(None),
            next_corr: 0,
            next_own_op: 0,
            processed,
            clock: Arc::clone(&config.clock),
            rng: SharedRng(Arc::clone(&config.random)),
            pending: Group::default(),
            inflight: None,
            stopping: None,
        };
        rt.gather(Transaction::new());
        let group = std::mem::take(&mut rt.pending);
        let applied = if group.txn.is_empty() {
            Applied::default()
        } else {
            // Opening waits for this commit, as it waits for the store.
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            rt.metrics.commits += 1;
            rt.writer.submit(group.txn, move |r| {
                let _ = tx.send(r);
            })?;
            rx.recv().map_err(|_| StoreError::WriterStopped)??
        };
        rt.act(group.actions, applied)?;
        Ok(rt)
    }

    pub(crate) async fn run(mut self) {
        loop {
            if let Err(e) = self.submit_ready() {
                self.fail(&e);
                return;
            }
            if self.inflight.is_none()
                && self.pending.is_empty()
                && let Some(done) = self.stopping.take()
            {
                self.close(done).await;
                return;
            }
            let accepting = self.stopping.is_none() && self.pending.has_room();
            // Delivered messages wait at their relays while clients have
            // not confirmed many events.
            let relays_open = accepting && self.log.len() < MAX_UNCONFIRMED_EVENTS;
            let timer = self.core.poll_timeout().map(|t| {
                let wait = t.as_millis().saturating_sub(self.clock.unix_millis());
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            let mark_at = self
                .pending
                .mark_since
                .filter(|_| self.inflight.is_none() && self.pending.marks_only())
                .map(|t| t + MARK_DELAY);
            let result = tokio::select! {
                biased;
                r = commit_done(&mut self.inflight) => self.committed(r),
                req = self.requests.recv(), if accepting => match req {
                    Some(Request::Shutdown(done)) => {
                        self.stopping = Some(done);
                        Ok(())
                    }
                    Some(r) => {
                        self.on_request(r);
                        Ok(())
                    }
                    None => return,
                },
                ev = self.relay_events.recv(), if relays_open => match ev {
                    Some(ev) => {
                        self.on_relay(ev);
                        Ok(())
                    }
                    None => return,
                },
                () = sleep_until(timer), if accepting => {
                    let span = tracing::debug_span!("timer");
                    let _g = span.enter();
                    self.step(Input::Timeout, None);
                    Ok(())
                }
                () = sleep_until(mark_at) => {
                    self.pending.mark_since = None;
                    self.submit_now()
                }
            };
            if let Err(e) = result {
                self.fail(&e);
                return;
            }
        }
    }

    /// A store transaction failed: nothing more can be made durable, so the
    /// runtime stops; its handles answer with the cause from now on
    /// ([`Error::StoreFailed`]), and `smp-agent` exits non-zero.
    fn fail(&self, e: &Error) {
        tracing::error!(error = %e, "agent stopped: a store transaction failed");
        self.failure.send_replace(Some(e.to_string()));
    }

    /// What the agent's handles see of this runtime.
    pub(crate) fn shared(&self) -> Shared {
        Shared {
            log: Arc::clone(&self.log),
            latest: self.latest.subscribe(),
            failure: self.failure.subscribe(),
        }
    }

    /// Stops: the store is closed on its thread (after the commit in flight),
    /// then the relay client is dropped (closing its connections).
    async fn close(self, done: oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        if self
            .writer
            .close(move || {
                let _ = tx.send(());
            })
            .is_ok()
        {
            let _ = rx.await;
        }
        drop(self);
        let _ = done.send(());
    }

    /// True while something handled is not committed yet.
    fn uncommitted(&self) -> bool {
        self.inflight.is_some() || self.pending.inputs > 0
    }

    /// Submits the gathered inputs if no commit is in flight (a delivered
    /// mark alone waits for [`MARK_DELAY`] unless the agent is stopping).
    fn submit_ready(&mut self) -> Result<(), Error> {
        if self.inflight.is_some() || self.pending.is_empty() {
            return Ok(());
        }
        if self.pending.marks_only() && !self.pending.txn.is_empty() && self.stopping.is_none() {
            return Ok(());
        }
        self.submit_now()
    }

    fn submit_now(&mut self) -> Result<(), Error> {
        if self.inflight.is_some() || self.pending.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.pending);
        if group.txn.is_empty() {
            // Nothing to write: answers and acknowledgements that waited for
            // the commits before them.
            return self.act(group.actions, Applied::default());
        }
        let (tx, rx) = oneshot::channel();
        self.metrics.commits += 1;
        self.writer.submit(group.txn, move |r| {
            let _ = tx.send(r);
        })?;
        self.inflight = Some(Inflight {
            done: rx,
            inputs: group.inputs,
            actions: group.actions,
        });
        Ok(())
    }

    fn committed(&mut self, r: Result<Applied, StoreError>) -> Result<(), Error> {
        let Some(f) = self.inflight.take() else {
            return Ok(());
        };
        self.act(f.actions, r?)
    }

    fn on_request(&mut self, req: Request) {
        match req {
            Request::Command { command, reply } => {
                self.next_corr += 1;
                let corr = self.next_corr.to_string();
                let span =
                    tracing::info_span!("command", corr = %corr, command = command_name(&command));
                let _g = span.enter();
                self.waiting.insert(corr.clone(), reply);
                self.step(Input::Command { corr, command }, None);
            }
            Request::Confirm(seq) => {
                let Some(last) = self.log.last_seq() else {
                    return;
                };
                if seq > last {
                    return;
                }
                self.log.confirm_upto(seq);
                let p = &mut self.pending;
                p.txn.delivered_upto = p.txn.delivered_upto.max(Some(seq));
                if p.marks_only() && p.mark_since.is_none() {
                    p.mark_since = Some(tokio::time::Instant::now());
                }
            }
            Request::Metrics(tx) => {
                let mut m = self.metrics.clone();
                let uncommitted =
                    self.pending.inputs + self.inflight.as_ref().map_or(0, |f| f.inputs);
                m.in_flight = (self.in_flight.len() + uncommitted) as u64;
                m.refusals = self.core.refusals().clone();
                let _ = tx.send(m);
            }
            Request::Query(query) => {
                let send = query(&self.core);
                self.answer(Action::Answer(send));
            }
            Request::RunTimers(tx) => {
                self.step(Input::Timeout, None);
                self.pending.actions.push(Action::Done(tx));
            }
            Request::Shutdown(_) => {}
        }
    }

    /// Answers now if everything handled is committed, else after the commit.
    fn answer(&mut self, action: Action) {
        if self.uncommitted() {
            self.pending.actions.push(action);
        } else {
            let _ = self.act(vec![action], Applied::default());
        }
    }

    fn on_relay(&mut self, ev: RelayEvent) {
        let op = match &ev {
            RelayEvent::QueueCreated { op, .. }
            | RelayEvent::Done { op }
            | RelayEvent::Failed { op, .. } => Some(*op),
            RelayEvent::Message { .. } => None,
        };
        if let Some(op) = op {
            if op.0 >= OWN_OP_BASE {
                return;
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
            self.in_flight.remove(&op);
            self.step(Input::Relay(ev), None);
            return;
        }
        let RelayEvent::Message {
            server,
            rcv_id,
            msg_id,
            ..
        } = &ev
        else {
            return;
        };
        let span = tracing::debug_span!("message", server = %server);
        let _g = span.enter();
        let Some(queue) = queue_key(server, rcv_id) else {
            return;
        };
        if self.processed.get(&queue) == Some(msg_id) {
            // Processed already (before a restart, or in a commit not yet
            // returned): only the acknowledgement to the relay is missing,
            // and it goes once the processing is durable.
            self.next_own_op += 1;
            let ack = RelayOp::Ack {
                op: OpId(OWN_OP_BASE + self.next_own_op),
                server: server.clone(),
                rcv_id: rcv_id.clone(),
                msg_id: msg_id.clone(),
            };
            if self.uncommitted() {
                self.pending.actions.push(Action::Ack(ack));
            } else {
                self.relay.perform(ack);
            }
            return;
        }
        self.processed.insert(queue.clone(), msg_id.clone());
        let mark = Some((queue, msg_id.clone()));
        self.step(Input::Relay(ev), mark);
    }

    /// The core handles `input`; its outputs join the pending group.
    fn step(&mut self, input: Input, processed: Option<(Vec<u8>, Vec<u8>)>) {
        let now = Timestamp::from_millis(self.clock.unix_millis());
        self.core.handle(input, now, &mut self.rng);
        let mut txn = Transaction::new();
        txn.processed.extend(processed);
        self.gather(txn);
    }

    /// Adds the core's pending outputs, with `txn`, to the pending group:
    /// their writes merged into its transaction, what to do after the commit
    /// appended to its actions (per input: relay operations, responses,
    /// events).
    fn gather(&mut self, mut txn: Transaction) {
        let mut ops = Vec::new();
        let mut responses = Vec::new();
        let mut events = Vec::new();
        while let Some(out) = self.core.poll() {
            match out {
                Output::Store(batch) => add_batch(&mut txn, batch),
                Output::Relay(op) => ops.push(Action::Perform(op)),
                Output::Event(e) if e.corr.is_some() => responses.push(Action::Respond(e)),
                Output::Event(e) => {
                    if let Some(ev) = to_agent_event(&e.event) {
                        txn.events_add
                            .push(Transmission::new(CorrId::empty(), ev.clone()).to_bytes());
                        events.push(Action::Deliver(ev));
                    } else {
                        tracing::warn!(event = ?e.event, "event without a client form");
                    }
                }
            }
        }
        self.metrics.inputs += 1;
        let p = &mut self.pending;
        p.inputs += 1;
        p.mark_since = None;
        p.txn.merge(txn);
        p.actions.extend(ops);
        p.actions.extend(responses);
        p.actions.extend(events);
    }

    /// Acts on what a commit made durable, in order.
    fn act(&mut self, actions: Vec<Action>, applied: Applied) -> Result<(), Error> {
        let mut seqs = applied.event_seqs.into_iter();
        for action in actions {
            match action {
                Action::Perform(op) => {
                    let op_id = op.op();
                    self.in_flight.insert(op_id);
                    self.metrics.operations += 1;
                    if self.counted.insert(op_id)
                        && let RelayOp::Send { kind, .. } = &op
                    {
                        *self.metrics.envelopes.entry(kind.to_string()).or_default() += 1;
                    }
                    self.relay.perform(op);
                }
                Action::Respond(r) => {
                    if let Some(corr) = r.corr
                        && let Some(tx) = self.waiting.remove(&corr)
                    {
                        let _ = tx.send(r.event);
                    }
                }
                Action::Deliver(event) => {
                    let Some(seq) = seqs.next() else {
                        return Err(Error::Unexpected(
                            "the commit returned fewer sequence numbers than events".into(),
                        ));
                    };
                    let d = Delivery { seq, event };
                    self.log.push(d);
                    self.latest.send_replace(seq);
                }
                Action::Ack(op) => self.relay.perform(op),
                Action::Answer(send) => send(),
                Action::Done(tx) => {
                    let _ = tx.send(());
                }
            }
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
        Command::RejectInvitation { .. } => "reject_invitation",
        Command::Send { .. } => "send",
        Command::DirectSend { .. } => "direct_send",
        Command::Ack { .. } => "ack",
        Command::Leave { .. } => "leave",
        Command::Remove { .. } => "remove",
        Command::Delete { .. } => "delete",
        Command::Check { .. } => "check",
        Command::SetInfo { .. } => "set_info",
        Command::SetProfile { .. } => "set_profile",
        Command::Approve { .. } => "approve",
    }
}
