//! smp-groups: the core's deterministic simulation (`smp_groups_core::sim::Sim`):
//! every agent its own state machine, in-memory relays and queues, every
//! envelope sealed with its connection's double ratchet, serialized, relayed,
//! parsed and opened, every agent's state persisted (`Output::Store` batches
//! applied to its in-memory store) after every input.

use std::collections::BTreeMap;

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event, ReceiptPolicy, ReceiptStatus};

use crate::{Protocol, Sample};

/// The configuration: the defaults, except the two that would stop the
/// simulation from settling or the client from being in control.
pub fn config() -> Config {
    Config {
        // G_CHECK reconciliation off: its timer keeps the simulation from
        // settling, and one round costs n(n-1) envelopes, amortized over at
        // most 100 messages by default (see docs/costs.md).
        check_interval_ms: None,
        check_every_messages: None,
        // Every member applies every membership change without asking its
        // client (the default asks above 64 members).
        approval_threshold: usize::MAX,
        ..Config::default()
    }
}

/// A group in the simulation; member 0 created it and makes every change.
pub struct Ours {
    sim: Sim,
    /// The members, in joining order (`hs[0]` is the creator).
    hs: Vec<GroupHandle>,
    /// Client events of each agent already looked at.
    seen: BTreeMap<usize, usize>,
    /// The next agent that never was in the group.
    next_agent: usize,
    /// The last `send`: time to deliver everywhere, then for the receipts.
    pub last_split: Option<(Sample, Sample)>,
    /// Time of the visible connections made before each add (not counted).
    pub connect_samples: Vec<Sample>,
}

impl Ours {
    /// Client `ACK` of every group message received since the last call.
    fn ack_all(&mut self) -> usize {
        let mut acks = 0;
        for h in &self.hs {
            let start = self.seen.get(&h.agent).copied().unwrap_or(0);
            let ids: Vec<u64> = self.sim.events(h.agent)[start..]
                .iter()
                .filter_map(|e| match &e.event {
                    Event::Msg { msg_id, .. } => Some(*msg_id),
                    _ => None,
                })
                .collect();
            self.seen.insert(h.agent, self.sim.events(h.agent).len());
            for msg_id in ids {
                acks += 1;
                self.sim.command(
                    h.agent,
                    Command::Ack {
                        group: h.alias.clone(),
                        msg_id,
                    },
                );
            }
        }
        acks
    }

    /// A group of `n` agents (and `spare` more) with configuration `cfg`.
    pub fn setup_with(n: usize, spare: usize, cfg: &Config) -> Self {
        let mut sim = Sim::new(n + spare, cfg, Faults::default(), 42);
        // The run's trace digest hashes every message body: a cost of the
        // simulation, not of an agent.
        sim.set_trace(false);
        let hs = sim.build_group(n).expect("group");
        let mut o = Self {
            sim,
            hs,
            seen: BTreeMap::new(),
            next_agent: n,
            last_split: None,
            connect_samples: Vec::new(),
        };
        o.ack_all();
        o.sim.settle_all();
        o.mark_seen();
        o
    }

    fn mark_seen(&mut self) {
        for h in &self.hs {
            self.seen.insert(h.agent, self.sim.events(h.agent).len());
        }
    }
}

impl Ours {
    /// `k` messages from member `from` in a row, delivered to everyone, every
    /// one acknowledged by every member, until every receipt is back.
    pub fn send_burst(&mut self, from: usize, body: &[u8], k: usize) {
        let sender = self.hs[from].clone();
        let start = self.sim.events(sender.agent).len();
        for _ in 0..k {
            self.sim.command(
                sender.agent,
                Command::Send {
                    group: sender.alias.clone(),
                    body: body.to_vec(),
                },
            );
        }
        self.sim.settle_all();
        let acks = self.ack_all();
        self.sim.settle_all();
        assert_eq!(acks, k * (self.hs.len() - 1), "every member received every message");
        let done = self.sim.events(sender.agent)[start..]
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    Event::Rcvd {
                        member: None,
                        status: ReceiptStatus::Ok,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(done, k, "the sender has every receipt");
        self.mark_seen();
    }
}

/// The receipt policies compared in the detail rows: name, policy, burst.
pub fn policies() -> Vec<(&'static str, ReceiptPolicy, usize)> {
    let grouped = ReceiptPolicy::default();
    vec![
        ("receipts grouped and signed (default), burst of 16", grouped, 16),
        ("each receipt signed, one message", ReceiptPolicy::EACH_SIGNED, 1),
        (
            "receipts grouped, unsigned, burst of 16",
            ReceiptPolicy {
                sign: false,
                ..grouped
            },
            16,
        ),
    ]
}

/// The cost of one 15 kB message with its receipts under each policy, per
/// message (a burst's time divided by its length).
pub fn policy_rows(n: usize, iters: usize) -> Vec<(String, Vec<Sample>)> {
    let body: Vec<u8> = (0..15_000usize).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    for (name, policy, k) in policies() {
        let cfg = Config {
            receipts: policy,
            ..config()
        };
        let mut o = Ours::setup_with(n, 0, &cfg);
        o.send_burst(n / 2, &body, k); // warm-up
        let mut samples = Vec::new();
        for _ in 0..iters {
            let ((), s) = crate::measure(|| o.send_burst(n / 2, &body, k));
            let k32 = u32::try_from(k).unwrap_or(1);
            samples.push(Sample {
                cpu: s.cpu / k32,
                wall: s.wall / k32,
            });
        }
        out.push((format!("message 15 kB, {name}, per message"), samples));
    }
    out
}

/// A joiner: an agent with a visible connection to member 0.
pub struct Joiner(usize);

impl Protocol for Ours {
    type Joiner = Joiner;

    fn name() -> &'static str {
        "ours"
    }

    fn setup(n: usize, spare: usize) -> Self {
        Self::setup_with(n, spare, &config())
    }

    fn size(&self) -> usize {
        self.hs.len()
    }

    fn send(&mut self, from: usize, body: &[u8]) {
        let sender = self.hs[from].clone();
        let start = self.sim.events(sender.agent).len();
        let (_, delivered) = crate::measure(|| {
            self.sim.command(
                sender.agent,
                Command::Send {
                    group: sender.alias.clone(),
                    body: body.to_vec(),
                },
            );
            self.sim.settle_all();
        });
        let (acks, receipts) = crate::measure(|| {
            let acks = self.ack_all();
            self.sim.settle_all();
            acks
        });
        assert_eq!(acks, self.hs.len() - 1, "every member received the message");
        self.last_split = Some((delivered, receipts));
        // Every receipt is back: the sender saw the final `RCVD`.
        let done = self.sim.events(sender.agent)[start..].iter().any(|e| {
            matches!(
                e.event,
                Event::Rcvd {
                    member: None,
                    status: ReceiptStatus::Ok,
                    ..
                }
            )
        });
        assert!(done, "the sender has every receipt");
        self.mark_seen();
    }

    fn prepare_joiner(&mut self) -> Joiner {
        let b = self.next_agent;
        self.next_agent += 1;
        assert!(b < self.sim.len(), "no spare agent left");
        let (_, s) = crate::measure(|| self.sim.connect(self.hs[0].agent, b).expect("connect"));
        self.connect_samples.push(s);
        Joiner(b)
    }

    fn add(&mut self, joiner: Joiner) {
        let by = self.hs[0].clone();
        let h = self.sim.invite(&by, joiner.0).expect("invite");
        self.sim.settle_all();
        self.hs.push(h);
        self.mark_seen();
    }

    fn remove(&mut self, i: usize) {
        assert!(i > 0, "member 0 removes");
        let target = &self.hs[i];
        let member = self
            .sim
            .agent(target.agent)
            .and_then(|a| a.member_id(&target.alias))
            .expect("member id");
        let by = self.hs[0].clone();
        self.sim.command(
            by.agent,
            Command::Remove {
                group: by.alias.clone(),
                member,
            },
        );
        self.sim.settle_all();
        self.hs.remove(i);
        self.mark_seen();
    }

    fn check(&self) {
        let n = self.hs.len();
        for h in &self.hs {
            let a = self.sim.agent(h.agent).expect("up");
            assert_eq!(a.members(&h.alias).len(), n - 1, "agent {}", h.agent);
        }
        for h in &self.hs {
            let events = self.sim.events(h.agent);
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e.event, Event::ApprovalRequired { .. } | Event::Err(_))),
                "agent {}: unexpected event",
                h.agent
            );
        }
    }
}
