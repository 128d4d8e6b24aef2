//! A deterministic simulation of a group: `n` members exchanging group messages,
//! receipts and `G_CHECK`s over pairwise connections with random delays,
//! redeliveries and reordering across connections, driven by a seeded schedule
//! and a virtual clock.
//!
//! Each directed connection is a FIFO queue (as an SMP queue is): a message
//! never overtakes an earlier one on the same connection, but messages on
//! different connections arrive in any order. Every envelope goes through the
//! connection's [`ConnectionChain`]; a redelivered envelope is a duplicate there
//! and is also fed to the group layer, which must recognise it.

#![allow(
    dead_code,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_integrity::{
    Anchor, CheckError, Config, ConnVerdict, ConnectionChain, Delivery, GroupIntegrity, Receipt,
    ReceiptError, Timestamp, Violation,
};
use smp_groups_wire::agent::{GCheck, GroupId, MemberId, MsgHeader};
use smp_groups_wire::{Encode, decode_all};

/// Check interval.
pub const T: u64 = 1000;
/// Largest delivery delay.
pub const D_MAX: u64 = 300;
/// Grace period: at least 2 * D_MAX, at most T - D_MAX.
pub const GRACE: u64 = 700;
/// Spacing of scheduled sends.
pub const SEND_SPACING: u64 = 150;

/// A small deterministic generator (SplitMix64).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the adversarial sender (if any) does.
#[derive(Clone, Debug)]
pub enum Adversary {
    None,
    /// `sender`'s message sent at `at` carries other content to the members whose
    /// bit is set in `split` (its own sent chain records the normal content).
    Equivocate {
        sender: usize,
        at: u64,
        split: u64,
    },
    /// `sender`'s message sent at `at` (and every later one if `all_after`) is not
    /// sent to `victim`.
    Withhold {
        sender: usize,
        victim: usize,
        at: u64,
        all_after: bool,
    },
}

impl Adversary {
    pub fn sender(&self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Equivocate { sender, .. } | Self::Withhold { sender, .. } => Some(*sender),
        }
    }
}

/// Rejected inputs to inject into an honest run.
#[derive(Clone, Copy, Debug)]
pub enum Injection {
    /// Deliver again, at member `to`, the last check it accepted from `from`,
    /// with its old sequence number.
    ReplayCheck { to: usize, from: usize },
    /// Deliver, at member `to`, member `author`'s last check to it as if `from`
    /// had sent it, with the next sequence number.
    ForgeCheck {
        to: usize,
        from: usize,
        author: usize,
    },
    /// Deliver, at member `to`, a check from a member that is not in the group.
    StrangerCheck { to: usize },
    /// Deliver, at member `to`, a receipt of one of its messages by `from` whose
    /// signature bit `bit` is flipped.
    BadReceipt { to: usize, from: usize, bit: u16 },
    /// Deliver, at member `to`, a receipt in `from`'s name signed with a key that
    /// is not `from`'s.
    WrongKeyReceipt { to: usize, from: usize },
}

#[derive(Clone, Debug)]
pub struct Params {
    pub n: usize,
    pub seed: u64,
    pub messages: usize,
    pub duplicate_pct: u64,
    pub adversary: Adversary,
    pub injections: Vec<(u64, Injection)>,
}

#[derive(Clone, Debug)]
enum Payload {
    Msg { ext: u64, content: Vec<u8> },
    Check(Vec<u8>),
    Rcvd(Vec<u8>),
}

impl Payload {
    fn encode(&self, header: &MsgHeader) -> Vec<u8> {
        let mut out = header.to_bytes();
        match self {
            Self::Msg { ext, content } => {
                out.push(b'M');
                out.extend_from_slice(&ext.to_be_bytes());
                out.extend_from_slice(content);
            }
            Self::Check(text) => {
                out.push(b'C');
                out.extend_from_slice(text);
            }
            Self::Rcvd(bytes) => {
                out.push(b'R');
                out.extend_from_slice(bytes);
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
struct Envelope {
    from: usize,
    to: usize,
    header: MsgHeader,
    bytes: Vec<u8>,
    payload: Payload,
}

#[derive(Debug)]
enum Event {
    Send { node: usize, adversarial: bool },
    Timer { node: usize },
    Deliver(Envelope),
    Inject(Injection),
}

struct Node {
    id: MemberId,
    gi: GroupIntegrity,
    key: SigningKey,
    out: Vec<ConnectionChain>,
    inb: Vec<ConnectionChain>,
    /// The last check accepted from each member: (seq, check).
    last_check: Vec<Option<(u64, GCheck)>>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (time, member that found it, violation).
    pub violations: Vec<(u64, usize, Violation)>,
    /// Anything the harness expected and did not see.
    pub anomalies: Vec<String>,
    /// When the adversarial message was sent.
    pub adversary_at: Option<u64>,
    /// Rejected injections: (member, error).
    pub rejected_checks: Vec<(usize, CheckError)>,
    pub rejected_receipts: Vec<(usize, ReceiptError)>,
    pub checks_accepted: usize,
    pub receipts_accepted: usize,
    pub messages_chained: usize,
    pub end: u64,
}

pub fn member_id(i: usize) -> MemberId {
    let mut b = [0u8; 16];
    b[0] = 0xA0;
    b[15] = u8::try_from(i).unwrap();
    MemberId(b)
}

pub fn config() -> Config {
    let mut c = Config::new(GroupId([0x5A; 16]));
    c.check_interval_ms = Some(T);
    c.check_every_messages = None;
    c.lag_grace_ms = GRACE;
    c.window = 64;
    c.max_held = 64;
    c
}

pub struct Sim {
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    link_last: Vec<Vec<u64>>,
    rng: Rng,
    now: u64,
    end: u64,
    params: Params,
    out: Outcome,
}

impl Sim {
    pub fn new(params: Params) -> Self {
        let n = params.n;
        let mut rng = Rng::new(params.seed);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let phase = rng.below(T);
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&rng.next().to_be_bytes());
            let key = SigningKey::from_seed(seed);
            let gi = GroupIntegrity::new(config(), member_id(i), Timestamp(phase));
            nodes.push(Node {
                id: member_id(i),
                gi,
                key,
                out: vec![ConnectionChain::new(); n],
                inb: vec![ConnectionChain::new(); n],
                last_check: vec![None; n],
            });
        }
        let keys: Vec<_> = nodes.iter().map(|x| x.key.public_key()).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.gi.set_own_signing_key(keys[i]);
            for (j, key) in keys.iter().enumerate() {
                if i != j {
                    node.gi
                        .add_member(member_id(j), Anchor::Genesis, Some(*key))
                        .unwrap();
                }
            }
        }
        let mut sim = Self {
            nodes,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            link_last: vec![vec![0; n]; n],
            rng,
            now: 0,
            end: 0,
            params: params.clone(),
            out: Outcome::default(),
        };
        let span = params.messages as u64 * SEND_SPACING;
        for _ in 0..params.messages {
            let node = sim.rng.below(n as u64) as usize;
            // Sends start one interval in, once every member's checks run every T.
            let at = T + sim.rng.below(span.max(1));
            sim.schedule(
                at,
                Event::Send {
                    node,
                    adversarial: false,
                },
            );
        }
        match params.adversary {
            Adversary::None => {}
            Adversary::Equivocate { sender, at, .. } | Adversary::Withhold { sender, at, .. } => {
                sim.schedule(
                    T + at,
                    Event::Send {
                        node: sender,
                        adversarial: true,
                    },
                );
            }
        }
        for (at, inj) in &params.injections {
            sim.schedule(*at, Event::Inject(*inj));
        }
        let last_send = T + span.max(match params.adversary {
            Adversary::None => 0,
            Adversary::Equivocate { at, .. } | Adversary::Withhold { at, .. } => at,
        });
        sim.end = last_send + 5 * T;
        for i in 0..n {
            let at = sim.nodes[i].gi.next_check_at().unwrap().0;
            sim.schedule(at, Event::Timer { node: i });
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        let idx = self.events.len();
        self.events.push(Some(ev));
        self.queue.push(Reverse((at, idx as u64, idx)));
    }

    fn anomaly(&mut self, s: String) {
        self.out.anomalies.push(s);
    }

    pub fn run(mut self) -> (Outcome, Vec<GroupIntegrity>) {
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            self.now = at;
            let Some(ev) = self.events[idx].take() else {
                continue;
            };
            match ev {
                Event::Send { node, adversarial } => self.send(node, adversarial),
                Event::Timer { node } => self.timer(node),
                Event::Deliver(env) => self.deliver(env),
                Event::Inject(inj) => self.inject(inj),
            }
        }
        self.out.end = self.end;
        let states = self.nodes.into_iter().map(|x| x.gi).collect();
        (self.out, states)
    }

    fn transmit(&mut self, from: usize, to: usize, payload: Payload) {
        let header = self.nodes[from].out[to].next_header().unwrap();
        let bytes = payload.encode(&header);
        self.nodes[from].out[to]
            .record_sent(&header, &bytes)
            .unwrap();
        let delay = 1 + self.rng.below(D_MAX);
        let at = (self.now + delay).max(self.link_last[from][to]);
        self.link_last[from][to] = at;
        let env = Envelope {
            from,
            to,
            header,
            bytes,
            payload,
        };
        if self.rng.percent(self.params.duplicate_pct) {
            self.schedule(at, Event::Deliver(env.clone()));
        }
        self.schedule(at, Event::Deliver(env));
    }

    fn send(&mut self, node: usize, adversarial: bool) {
        let n = self.params.n;
        let content = format!("message from {node} at {}", self.now).into_bytes();
        let sent = self.nodes[node].gi.on_sent(&content).unwrap();
        if adversarial {
            self.out.adversary_at = Some(self.now);
        }
        for to in (0..n).filter(|&j| j != node) {
            let mut body = content.clone();
            match self.params.adversary {
                Adversary::Equivocate { split, .. } if adversarial && split & (1 << to) != 0 => {
                    body = format!("other message from {node} at {}", self.now).into_bytes();
                }
                Adversary::Withhold {
                    sender,
                    victim,
                    all_after,
                    ..
                } if node == sender
                    && to == victim
                    && (adversarial || (all_after && self.out.adversary_at.is_some())) =>
                {
                    continue;
                }
                _ => {}
            }
            self.transmit(
                node,
                to,
                Payload::Msg {
                    ext: sent.ext_msg_id,
                    content: body,
                },
            );
        }
    }

    fn timer(&mut self, node: usize) {
        let now = Timestamp(self.now);
        if self.nodes[node].gi.due(now) {
            let check = self.nodes[node].gi.build_check(now);
            let text = check.to_bytes();
            for to in (0..self.params.n).filter(|&j| j != node) {
                self.transmit(node, to, Payload::Check(text.clone()));
            }
        } else {
            self.anomaly(format!("timer for {node} at {} but no check due", self.now));
        }
        if let Some(next) = self.nodes[node].gi.next_check_at()
            && next.0 <= self.end
        {
            self.schedule(next.0, Event::Timer { node });
        }
    }

    fn deliver(&mut self, env: Envelope) {
        let (from, to, now) = (env.from, env.to, self.now);
        let verdict = self.nodes[to].inb[from].receive(&env.header, &env.bytes);
        let duplicate = match verdict {
            ConnVerdict::Ok => false,
            ConnVerdict::Duplicate { .. } => true,
            other => {
                self.anomaly(format!("connection {from}->{to}: {other:?}"));
                return;
            }
        };
        let sender_id = member_id(from);
        match &env.payload {
            Payload::Msg { ext, content } => {
                let r = match self.nodes[to].gi.on_received(sender_id, *ext, content) {
                    Ok(r) => r,
                    Err(e) => {
                        return self.anomaly(format!("{to} refused message {ext} of {from}: {e}"));
                    }
                };
                if duplicate {
                    if r.delivery != Delivery::Duplicate || !r.violations.is_empty() {
                        self.anomaly(format!("redelivery at {to} not a duplicate: {r:?}"));
                    }
                    return;
                }
                for v in r.violations {
                    self.out.violations.push((now, to, v));
                }
                if let Delivery::Chained { from: a, to: b } = r.delivery {
                    self.out.messages_chained += (b - a + 1) as usize;
                    for id in a..=b {
                        let receipt =
                            self.nodes[to]
                                .gi
                                .receipt_for(sender_id, id, &self.nodes[to].key);
                        match receipt {
                            Ok(rc) => self.transmit(to, from, Payload::Rcvd(rc.to_bytes())),
                            Err(e) => {
                                self.anomaly(format!("no receipt at {to} for {id} of {from}: {e}"))
                            }
                        }
                    }
                }
            }
            Payload::Check(text) => {
                let check = match GCheck::parse(text) {
                    Ok(c) => c,
                    Err(e) => return self.anomaly(format!("check text does not parse: {e}")),
                };
                let seq = env.header.snd_msg_id;
                let res = self.nodes[to]
                    .gi
                    .on_check(sender_id, seq, &check, Timestamp(now));
                match (duplicate, res) {
                    (false, Ok(vs)) => {
                        self.out.checks_accepted += 1;
                        self.nodes[to].last_check[from] = Some((seq, check));
                        for v in vs {
                            self.out.violations.push((now, to, v));
                        }
                    }
                    (true, Err(CheckError::Replayed { .. })) => {}
                    (d, r) => self.anomaly(format!("check {from}->{to} (duplicate: {d}): {r:?}")),
                }
            }
            Payload::Rcvd(bytes) => {
                let receipt: Receipt = match decode_all(bytes) {
                    Ok(r) => r,
                    Err(e) => return self.anomaly(format!("receipt does not decode: {e}")),
                };
                match self.nodes[to].gi.on_receipt(&receipt) {
                    Ok(vs) => {
                        if !duplicate {
                            self.out.receipts_accepted += 1;
                        }
                        for v in vs {
                            self.out.violations.push((now, to, v));
                        }
                    }
                    Err(e) => self.anomaly(format!("receipt {from}->{to} rejected: {e}")),
                }
            }
        }
    }

    fn inject(&mut self, inj: Injection) {
        let now = Timestamp(self.now);
        match inj {
            Injection::ReplayCheck { to, from } => {
                let Some((seq, check)) = self.nodes[to].last_check[from].clone() else {
                    return;
                };
                let res =
                    self.reject_check(to, |gi| gi.on_check(member_id(from), seq, &check, now));
                self.expect_check_error(to, res, |e| matches!(e, CheckError::Replayed { .. }));
            }
            Injection::ForgeCheck { to, from, author } => {
                if from == author || from == to || author == to {
                    return;
                }
                let Some((_, check)) = self.nodes[to].last_check[author].clone() else {
                    return;
                };
                let seq = self.nodes[to].inb[from].last_received_id() + 1;
                let res =
                    self.reject_check(to, |gi| gi.on_check(member_id(from), seq, &check, now));
                self.expect_check_error(to, res, |e| matches!(e, CheckError::WrongReporter { .. }));
            }
            Injection::StrangerCheck { to } => {
                let stranger = member_id(200);
                let mut check = self.nodes[to].gi.clone().build_check(now);
                check.entries[0].member = stranger;
                let res = self.reject_check(to, |gi| gi.on_check(stranger, 1, &check, now));
                self.expect_check_error(to, res, |e| matches!(e, CheckError::UnknownReporter(_)));
            }
            Injection::BadReceipt { to, from, bit } => {
                if from == to {
                    return;
                }
                let Some((id, digest)) = self.nodes[to].gi.head(member_id(to)) else {
                    return;
                };
                let good = Receipt::sign(
                    &self.nodes[from].key,
                    &config().group_id,
                    member_id(to),
                    member_id(from),
                    id,
                    digest,
                );
                let mut sig = good.sig.to_bytes();
                sig[usize::from(bit % 512) / 8] ^= 1 << (bit % 8);
                let bad = Receipt {
                    sig: smp_groups_crypto::ed25519::Signature::from_bytes(sig),
                    ..good
                };
                let res = self.reject_receipt(to, &bad);
                self.expect_receipt_error(to, res);
            }
            Injection::WrongKeyReceipt { to, from } => {
                if from == to {
                    return;
                }
                let Some((id, digest)) = self.nodes[to].gi.head(member_id(to)) else {
                    return;
                };
                let forger = SigningKey::from_seed([0xEE; 32]);
                let bad = Receipt::sign(
                    &forger,
                    &config().group_id,
                    member_id(to),
                    member_id(from),
                    id,
                    digest,
                );
                let res = self.reject_receipt(to, &bad);
                self.expect_receipt_error(to, res);
            }
        }
    }

    /// Runs a check that must be rejected, and that must leave the state as it was.
    fn reject_check(
        &mut self,
        to: usize,
        f: impl FnOnce(&mut GroupIntegrity) -> Result<Vec<Violation>, CheckError>,
    ) -> Result<Vec<Violation>, CheckError> {
        let before = postcard::to_allocvec(&self.nodes[to].gi).unwrap();
        let res = f(&mut self.nodes[to].gi);
        if res.is_err() && postcard::to_allocvec(&self.nodes[to].gi).unwrap() != before {
            self.anomaly(format!("rejected check changed the state of {to}"));
        }
        res
    }

    fn reject_receipt(&mut self, to: usize, r: &Receipt) -> Result<Vec<Violation>, ReceiptError> {
        let before = postcard::to_allocvec(&self.nodes[to].gi).unwrap();
        let res = self.nodes[to].gi.on_receipt(r);
        if res.is_err() && postcard::to_allocvec(&self.nodes[to].gi).unwrap() != before {
            self.anomaly(format!("rejected receipt changed the state of {to}"));
        }
        res
    }

    fn expect_check_error(
        &mut self,
        to: usize,
        res: Result<Vec<Violation>, CheckError>,
        ok: impl Fn(&CheckError) -> bool,
    ) {
        match res {
            Err(e) if ok(&e) => self.out.rejected_checks.push((to, e)),
            other => self.anomaly(format!("injected check at {to} gave {other:?}")),
        }
    }

    fn expect_receipt_error(&mut self, to: usize, res: Result<Vec<Violation>, ReceiptError>) {
        match res {
            Err(e @ ReceiptError::BadSignature { .. }) => self.out.rejected_receipts.push((to, e)),
            other => self.anomaly(format!("injected receipt at {to} gave {other:?}")),
        }
    }
}
