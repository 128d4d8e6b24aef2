//! A deterministic simulation: N agents, in-memory relays and queues, a virtual
//! clock, and seeded faults (loss with retry, duplicates, reordering through
//! random delays, agent restarts from persisted state).
//!
//! Everything random comes from one seed, so a run is reproduced by running the
//! same seed again; [`Sim::trace_hash`] summarises a run to compare two.
//! Every agent envelope sent (first attempt of a relay `SEND`) is counted by
//! type ([`Sim::counts`]).
//!
//! [`model`] runs scenarios of group operations and checks what must hold
//! after them (shared by the core property test and the `group_sim` fuzz target).

pub mod model;
mod relay;
mod scenario;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use self::relay::{OpResult, Relays};
use crate::api::{ClientEvent, Command};
use crate::relay::{RelayError, RelayEvent, RelayOp};
use crate::store::{Key, SCHEMA_VERSION};
use crate::{Agent, Config, Input, Output, Timestamp};

pub use scenario::GroupHandle;

/// Fault settings; probabilities are in parts per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// An operation (or its response) is lost; the agent sees a timeout and retries.
    pub loss_ppm: u32,
    /// A delivered message is delivered a second time.
    pub duplicate_ppm: u32,
    /// Largest extra random delay of any hop, in ms (reorders across queues).
    pub max_delay_ms: u64,
}

/// What an agent sees of the network: one hop's base latency.
const HOP_MS: u64 = 10;
/// When a lost operation is reported as failed.
const OP_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Deliver an input to agent `.0` (incarnation `.1`).
    Input(usize, u64, InputKey),
    /// An operation from agent `.0` (incarnation `.1`) reaches its relay.
    Op(usize, u64, u64),
}

/// Inputs are stored aside (they are not `Ord`), by sequence number.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct InputKey(u64);

struct Node {
    agent: Option<Agent>,
    store: BTreeMap<Key, Vec<u8>>,
    incarnation: u64,
    events: Vec<ClientEvent>,
    timer: Option<u64>,
    rng: ChaCha20Rng,
    /// Refusals counted by the agent's earlier incarnations.
    refused: crate::RefusalCounts,
}

/// The simulation.
pub struct Sim {
    nodes: Vec<Node>,
    relays: Relays,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    inputs: BTreeMap<u64, Input>,
    ops: BTreeMap<u64, RelayOp>,
    seq: u64,
    now: u64,
    rng: ChaCha20Rng,
    faults: Faults,
    seed: u64,
    counted: BTreeSet<(usize, u64)>,
    counts: BTreeMap<String, u64>,
    op_counts: BTreeMap<&'static str, u64>,
    trace: u64,
    steps: u64,
    corr: u64,
    visible: BTreeMap<(usize, usize), (String, String)>,
    check_store: bool,
    record_trace: bool,
}

impl Sim {
    /// `n` agents with configuration `config`, all randomness from `seed`.
    pub fn new(n: usize, config: &Config, faults: Faults, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|_| {
                let mut node = Node {
                    agent: Some(Agent::new(config.clone())),
                    store: BTreeMap::new(),
                    incarnation: 0,
                    events: Vec::new(),
                    timer: None,
                    rng: ChaCha20Rng::seed_from_u64(rng.next_u64()),
                    refused: crate::RefusalCounts::default(),
                };
                if let Some(a) = node.agent.as_mut() {
                    while let Some(Output::Store(b)) = a.poll() {
                        apply(&mut node.store, b);
                    }
                }
                node
            })
            .collect();
        Self {
            nodes,
            relays: Relays::default(),
            queue: BinaryHeap::new(),
            inputs: BTreeMap::new(),
            ops: BTreeMap::new(),
            seq: 0,
            now: 0,
            rng,
            faults,
            seed,
            counted: BTreeSet::new(),
            counts: BTreeMap::new(),
            op_counts: BTreeMap::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            steps: 0,
            corr: 0,
            visible: BTreeMap::new(),
            check_store: false,
            record_trace: true,
        }
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual time, in ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without agents.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Agent `i` (`None` while it is down).
    pub fn agent(&self, i: usize) -> Option<&Agent> {
        self.nodes.get(i).and_then(|n| n.agent.as_ref())
    }

    /// Agent `i`, to change it directly (tests of what a misbehaving agent
    /// sends), if it is up. Its next input's batch stores what changed.
    pub fn agent_mut(&mut self, i: usize) -> Option<&mut Agent> {
        self.nodes.get_mut(i).and_then(|n| n.agent.as_mut())
    }

    /// The client events agent `i` produced so far.
    pub fn events(&self, i: usize) -> &[ClientEvent] {
        self.nodes.get(i).map_or(&[], |n| n.events.as_slice())
    }

    /// The inputs agent `i` refused, by source and kind, over all its
    /// incarnations (an agent's own counts restart with it).
    pub fn refusals(&self, i: usize) -> crate::RefusalCounts {
        let Some(node) = self.nodes.get(i) else {
            return crate::RefusalCounts::default();
        };
        let mut total = node.refused.clone();
        if let Some(a) = &node.agent {
            total.add(a.refusals());
        }
        total
    }

    /// Agent envelopes sent, by type (first attempt of each relay `SEND`).
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Relay operations issued, by operation.
    pub fn op_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.op_counts
    }

    /// A digest of everything that happened (inputs, outputs, times).
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// Number of inputs processed.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn mix(&mut self, text: &str) {
        for b in text.bytes() {
            self.trace ^= u64::from(b);
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.next_u64() % 1_000_000 < u64::from(ppm)
    }

    fn delay(&mut self) -> u64 {
        let extra = if self.faults.max_delay_ms > 0 {
            self.rng.next_u64() % (self.faults.max_delay_ms + 1)
        } else {
            0
        };
        HOP_MS + extra
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn push_input(&mut self, at: u64, agent: usize, input: Input) {
        let inc = self.nodes.get(agent).map_or(0, |n| n.incarnation);
        self.seq += 1;
        let key = self.seq;
        self.inputs.insert(key, input);
        self.push(at, Ev::Input(agent, inc, InputKey(key)));
    }

    /// Gives agent `i` a command now; returns its correlation id.
    pub fn command(&mut self, i: usize, command: Command) -> String {
        self.corr += 1;
        let corr = format!("{}", self.corr);
        self.deliver(
            i,
            Input::Command {
                corr: corr.clone(),
                command,
            },
        );
        corr
    }

    /// Runs `input` on agent `i` now and acts on its outputs.
    fn deliver(&mut self, i: usize, input: Input) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(agent) = node.agent.as_mut() else {
            return;
        };
        let desc = if self.record_trace || self.check_store {
            describe(now, i, &input)
        } else {
            String::new()
        };
        let _span = tracing::debug_span!("agent", i, now).entered();
        agent.handle(input, Timestamp::from_millis(now), &mut node.rng);
        let mut outputs = Vec::new();
        while let Some(o) = agent.poll() {
            outputs.push(o);
        }
        let timer = agent.poll_timeout().map(Timestamp::as_millis);
        self.steps += 1;
        if self.record_trace {
            self.mix(&desc);
        }
        self.act(i, outputs);
        self.set_timer(i, timer);
        if self.check_store {
            self.assert_store_current(i, &desc);
        }
    }

    /// Runs `input` on agent `i` now, as if its driver gave it: for tests that
    /// feed what an honest relay or peer would not (garbage, a message for a
    /// queue that does not exist, a forged confirmation).
    pub fn inject(&mut self, i: usize, input: Input) {
        self.deliver(i, input);
    }

    /// The receive queues agent `i` has at the relays: (server, recipient id).
    pub fn receive_queues(&self, i: usize) -> Vec<(String, Vec<u8>)> {
        self.relays
            .queues
            .iter()
            .filter(|(_, q)| q.owner == i)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The messages waiting at the relays in agent `i`'s receive queues:
    /// (server, recipient id, how many), for queues that hold any.
    pub fn queued_for(&self, i: usize) -> Vec<(String, Vec<u8>, usize)> {
        self.relays
            .queues
            .iter()
            .filter(|(_, q)| q.owner == i && !q.messages.is_empty())
            .map(|((s, r), q)| (s.clone(), r.clone(), q.messages.len()))
            .collect()
    }

    /// Drops message `index` (0: the oldest) waiting in queue (`server`,
    /// `rcv_id`), as a relay that lost it would; one being delivered is not
    /// dropped. Returns whether a message was dropped.
    pub fn drop_queued(&mut self, server: &str, rcv_id: &[u8], index: usize) -> bool {
        let Some(q) = self
            .relays
            .queues
            .get_mut(&(server.to_owned(), rcv_id.to_vec()))
        else {
            return false;
        };
        if index == 0 && q.delivering.is_some() {
            return false;
        }
        let dropped = q.messages.remove(index).is_some();
        self.mix(&format!("drop {server} {rcv_id:?} {index}"));
        dropped
    }

    /// Changes agent `i`'s settings ([`crate::Agent::apply_settings`]), as
    /// an agent restarted with other settings would have them.
    pub fn apply_settings(&mut self, i: usize, settings: &crate::Settings) {
        if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.agent.as_mut()) {
            a.apply_settings(settings);
        }
    }

    /// Makes agent `i` cheat in its group sends ([`crate::Agent::set_cheat`]),
    /// until it restarts (`cheat` feature, tests of detection only).
    #[cfg(feature = "cheat")]
    pub fn set_cheat(&mut self, i: usize, cheat: Option<crate::Cheat>) {
        if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.agent.as_mut()) {
            a.set_cheat(cheat);
        }
    }

    /// Forks agent `i`'s hash chain on its pairwise connection `alias`
    /// ([`crate::Agent::fork_pairwise_chain`]); false if there is none
    /// (`cheat` feature, tests of detection only).
    #[cfg(feature = "cheat")]
    pub fn fork_pairwise_chain(&mut self, i: usize, alias: &str) -> bool {
        self.nodes
            .get_mut(i)
            .and_then(|n| n.agent.as_mut())
            .is_some_and(|a| a.fork_pairwise_chain(alias))
    }

    /// The longest body the simulated relays take in a `SEND` (`None`: no
    /// limit); a longer one is refused as a relay with a smaller block
    /// refuses it (`LARGE_MSG`, [`crate::RelayError::Refused`]).
    pub fn set_relay_max_body(&mut self, max: Option<usize>) {
        self.relays.max_body = max;
    }

    /// After every input, check that each agent's store holds exactly its
    /// in-memory state (a change never marked for storage would be lost in a
    /// crash). Slow: for tests.
    pub fn set_check_store(&mut self, on: bool) {
        self.check_store = on;
    }

    /// Whether [`Sim::trace_hash`] is kept (on by default). Benchmarks turn
    /// it off: it hashes every message body, a cost no agent has.
    pub fn set_trace(&mut self, on: bool) {
        self.record_trace = on;
    }

    fn assert_store_current(&self, i: usize, input: &str) {
        let Some(node) = self.nodes.get(i) else {
            return;
        };
        let Some(agent) = node.agent.as_ref() else {
            return;
        };
        let records: BTreeMap<Key, Vec<u8>> = agent.records().into_iter().collect();
        for (k, v) in &records {
            if node.store.get(k) != Some(v)
                && let (Key::Group(_), Some(old)) = (k, node.store.get(k))
            {
                let a: Result<crate::state::Group, _> =
                    postcard::from_bytes(old.get(1..).unwrap_or(&[]));
                let b: Result<crate::state::Group, _> =
                    postcard::from_bytes(v.get(1..).unwrap_or(&[]));
                if let (Ok(a), Ok(b)) = (a, b) {
                    let (a, b) = (format!("{a:#?}"), format!("{b:#?}"));
                    for (x, y) in a.lines().zip(b.lines()) {
                        if x != y {
                            eprintln!("stored: {x}\nmemory: {y}");
                            break;
                        }
                    }
                }
            }
            assert!(
                node.store.get(k) == Some(v),
                "seed {}: agent {i}: record {k:?} changed but was not stored (input {input})",
                self.seed
            );
        }
        for k in node.store.keys() {
            assert!(
                records.contains_key(k),
                "seed {}: agent {i}: record {k:?} is gone but still stored (input {input})",
                self.seed
            );
        }
    }

    fn set_timer(&mut self, i: usize, timer: Option<u64>) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if node.timer == timer {
            return;
        }
        node.timer = timer;
        if let Some(t) = timer {
            let at = t.max(self.now);
            self.push_input(at, i, Input::Timeout);
        }
    }

    fn act(&mut self, i: usize, outputs: Vec<Output>) {
        let inc = self.nodes.get(i).map_or(0, |n| n.incarnation);
        for o in outputs {
            match o {
                Output::Store(b) => {
                    if let Some(node) = self.nodes.get_mut(i) {
                        apply(&mut node.store, b);
                    }
                }
                Output::Event(e) if !self.record_trace => {
                    if let Some(node) = self.nodes.get_mut(i) {
                        node.events.push(e);
                    }
                }
                Output::Event(e) => {
                    let desc = match &e.event {
                        crate::Event::Msg {
                            member,
                            msg_id,
                            body,
                            ..
                        } => {
                            format!(
                                "{i} msg {member} {msg_id} {:?}",
                                &smp_groups_crypto::sha256(body)[..8]
                            )
                        }
                        _ => format!("{i} {e:?}"),
                    };
                    self.mix(&desc);
                    if let Some(node) = self.nodes.get_mut(i) {
                        node.events.push(e);
                    }
                }
                Output::Relay(op) => {
                    let id = op.op().0;
                    if self.counted.insert((i, id)) {
                        *self.op_counts.entry(op.command_name()).or_default() += 1;
                        if let RelayOp::Send { kind, .. } = &op {
                            *self.counts.entry(kind.to_string()).or_default() += 1;
                        }
                    }
                    self.seq += 1;
                    let key = self.seq;
                    self.ops.insert(key, op);
                    let at = self.now + self.delay();
                    self.push(at, Ev::Op(i, inc, key));
                }
            }
        }
    }

    /// Processes the next event; false if there is none before `until`.
    fn step(&mut self, until: u64) -> bool {
        let Some(Reverse((at, _, _))) = self.queue.peek() else {
            return false;
        };
        if *at > until {
            return false;
        }
        let Some(Reverse((at, _, ev))) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        match ev {
            Ev::Input(i, inc, InputKey(k)) => {
                let Some(input) = self.inputs.remove(&k) else {
                    return true;
                };
                let live = self
                    .nodes
                    .get(i)
                    .is_some_and(|n| n.incarnation == inc && n.agent.is_some());
                if !live {
                    return true;
                }
                if input == Input::Timeout {
                    let due = self.nodes.get(i).and_then(|n| n.timer);
                    if due.is_none_or(|t| t > self.now) {
                        return true;
                    }
                    if let Some(n) = self.nodes.get_mut(i) {
                        n.timer = None;
                    }
                }
                self.deliver(i, input);
            }
            Ev::Op(i, inc, k) => {
                let Some(op) = self.ops.remove(&k) else {
                    return true;
                };
                let live = self
                    .nodes
                    .get(i)
                    .is_some_and(|n| n.incarnation == inc && n.agent.is_some());
                if !live {
                    return true;
                }
                self.run_op(i, &op);
            }
        }
        self.pump_deliveries();
        true
    }

    fn run_op(&mut self, i: usize, op: &RelayOp) {
        let id = op.op();
        // Lost before the relay: the agent times out and retries.
        if self.chance(self.faults.loss_ppm) {
            let at = self.now + OP_TIMEOUT_MS;
            self.push_input(
                at,
                i,
                Input::Relay(RelayEvent::Failed {
                    op: id,
                    error: RelayError::Temporary,
                }),
            );
            return;
        }
        let result = self.relays.execute(i, op, self.now);
        let ev = match result {
            OpResult::Created { rcv_id, snd_id } => RelayEvent::QueueCreated {
                op: id,
                rcv_id,
                snd_id,
            },
            OpResult::Done => RelayEvent::Done { op: id },
            OpResult::Failed(error) => RelayEvent::Failed { op: id, error },
        };
        // The response is lost: executed, but the agent retries (a duplicate).
        let ev = if self.chance(self.faults.loss_ppm) {
            RelayEvent::Failed {
                op: id,
                error: RelayError::Temporary,
            }
        } else {
            ev
        };
        if matches!(op, RelayOp::Ack { .. }) && matches!(ev, RelayEvent::Done { .. }) {
            // Nothing waits for an ack's result but its pending record.
        }
        let at = self.now + self.delay();
        self.push_input(at, i, Input::Relay(ev));
    }

    fn pump_deliveries(&mut self) {
        let online: Vec<bool> = self.nodes.iter().map(|n| n.agent.is_some()).collect();
        for (owner, server, rcv_id, msg_id, ts, body) in self.relays.deliverable(&online) {
            let at = self.now + self.delay();
            let ev = RelayEvent::Message {
                server,
                rcv_id,
                msg_id,
                ts: Timestamp::from_millis(ts),
                body,
            };
            if self.chance(self.faults.duplicate_ppm) {
                let later = at + self.delay();
                self.push_input(later, owner, Input::Relay(ev.clone()));
            }
            self.push_input(at, owner, Input::Relay(ev));
        }
    }

    /// Runs every event up to virtual time `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    /// Runs until nothing is scheduled within `horizon_ms` of the clock; returns
    /// the number of events processed.
    pub fn settle(&mut self, horizon_ms: u64) -> u64 {
        let mut n = 0;
        while self.step(self.now + horizon_ms) {
            n += 1;
        }
        n
    }

    /// The records agent `i` has stored, in key order (what
    /// [`crate::Agent::restore`] would be given).
    pub fn stored(&self, i: usize) -> Vec<(Key, Vec<u8>)> {
        self.nodes
            .get(i)
            .map(|n| {
                n.store
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes agent `i` down (its in-memory state is lost; its store survives).
    pub fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i) {
            if let Some(a) = node.agent.take() {
                node.refused.add(a.refusals());
            }
            node.incarnation += 1;
            node.timer = None;
        }
        self.relays.disconnect(i);
        self.mix(&format!("crash {i}"));
    }

    /// Brings agent `i` back from its store.
    pub fn restart(&mut self, i: usize) -> Result<(), crate::RestoreError> {
        let Some(node) = self.nodes.get_mut(i) else {
            return Ok(());
        };
        if node.agent.is_some() {
            return Ok(());
        }
        let records: Vec<(Key, Vec<u8>)> = node
            .store
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut agent = Agent::restore(records, SCHEMA_VERSION)?;
        let mut outputs = Vec::new();
        while let Some(o) = agent.poll() {
            outputs.push(o);
        }
        let timer = agent.poll_timeout().map(Timestamp::as_millis);
        node.agent = Some(agent);
        self.mix(&format!("restart {i}"));
        self.act(i, outputs);
        self.set_timer(i, timer);
        Ok(())
    }

    /// Whether agent `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.agent.is_some())
    }

    /// Messages waiting in relay queues.
    pub fn queued_messages(&self) -> usize {
        self.relays.queues.values().map(|q| q.messages.len()).sum()
    }
}

/// A short description of an input for the trace: message bodies enter by
/// their hash, not their text.
fn describe(now: u64, i: usize, input: &Input) -> String {
    match input {
        Input::Relay(RelayEvent::Message {
            rcv_id,
            msg_id,
            body,
            ..
        }) => {
            let h = smp_groups_crypto::sha256(body);
            format!("{now} {i} msg {rcv_id:?} {msg_id:?} {:?}", &h[..8])
        }
        Input::Command {
            command: Command::Send { group, body },
            corr,
        } => {
            let h = smp_groups_crypto::sha256(body);
            format!("{now} {i} {corr} send {group} {:?}", &h[..8])
        }
        other => format!("{now} {i} {other:?}"),
    }
}

fn apply(store: &mut BTreeMap<Key, Vec<u8>>, batch: crate::StoreBatch) {
    for (k, v) in batch.puts {
        store.insert(k, v);
    }
    for k in batch.deletes {
        store.remove(&k);
    }
}
