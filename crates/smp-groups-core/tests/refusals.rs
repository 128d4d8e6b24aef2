//! Refused inputs are counted by who is at fault and what was refused, logged,
//! and reported to the client where a connection can no longer make progress
//! (`docs/faults.md`).

mod common;

use common::{config, count};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{
    Agent, ClientEvent, Command, Event, FaultKind, FaultSource, FaultTarget, Input, Output,
    RelayError, RelayEvent, RelayOp, Timestamp,
};
use smp_groups_wire::Encode;
use smp_groups_wire::agent::{AGENT_VERSION, AgentEnvelope, Bounded, Encrypted};

/// A bare agent and what it output, driven by hand.
struct Bare {
    agent: Agent,
    rng: ChaCha20Rng,
    ops: Vec<RelayOp>,
    events: Vec<ClientEvent>,
    now: u64,
}

impl Bare {
    fn new() -> Self {
        let mut b = Self {
            agent: Agent::new(config()),
            rng: ChaCha20Rng::seed_from_u64(7),
            ops: Vec::new(),
            events: Vec::new(),
            now: 1_000,
        };
        b.drain();
        b
    }

    fn drain(&mut self) {
        while let Some(o) = self.agent.poll() {
            match o {
                Output::Store(_) => {}
                Output::Relay(op) => self.ops.push(op),
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.now += 10;
        self.agent
            .handle(input, Timestamp::from_millis(self.now), &mut self.rng);
        self.drain();
    }

    fn relay(&mut self, ev: RelayEvent) {
        self.input(Input::Relay(ev));
    }

    fn command(&mut self, command: Command) {
        self.input(Input::Command {
            corr: "1".into(),
            command,
        });
    }

    /// The operation id of the last `CreateQueue` issued.
    fn last_create(&self) -> smp_groups_core::OpId {
        self.ops
            .iter()
            .rev()
            .find_map(|o| match o {
                RelayOp::CreateQueue { op, .. } => Some(*op),
                _ => None,
            })
            .expect("a CreateQueue")
    }

    fn faults(&self) -> Vec<(FaultTarget, FaultSource, FaultKind)> {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Fault {
                    target,
                    source,
                    kind,
                } => Some((target.clone(), *source, *kind)),
                _ => None,
            })
            .collect()
    }

    fn get(&self, source: FaultSource, kind: FaultKind) -> u64 {
        self.agent.refusals().get(source, kind)
    }
}

/// A visible connection `c1` waiting for its peer: the queue (server,
/// recipient id) exists and the invitation is out.
fn inviter() -> (Bare, String, Vec<u8>) {
    let mut b = Bare::new();
    b.command(Command::NewConn {
        alias: Some("c1".into()),
    });
    let op = b.last_create();
    b.relay(RelayEvent::QueueCreated {
        op,
        rcv_id: b"r1".to_vec(),
        snd_id: b"s1".to_vec(),
    });
    assert_eq!(
        count(&b.events, |e| matches!(e, Event::Invitation { .. })),
        1
    );
    let server = b.agent.config().server.clone();
    (b, server, b"r1".to_vec())
}

fn message(server: &str, rcv_id: &[u8], n: u8, body: Vec<u8>) -> RelayEvent {
    RelayEvent::Message {
        server: server.to_owned(),
        rcv_id: rcv_id.to_vec(),
        msg_id: vec![n],
        ts: Timestamp::from_millis(0),
        body,
    }
}

fn acks(b: &Bare) -> usize {
    b.ops
        .iter()
        .filter(|o| matches!(o, RelayOp::Ack { .. }))
        .count()
}

#[test]
fn garbage_on_a_queue_is_malformed_by_the_peer_and_still_acknowledged() {
    let (mut b, server, rcv) = inviter();
    let before = acks(&b);
    b.relay(message(&server, &rcv, 1, b"not an envelope".to_vec()));
    assert_eq!(b.get(FaultSource::Peer, FaultKind::Malformed), 1);
    assert_eq!(b.agent.refusals().total(), 1);
    assert_eq!(acks(&b), before + 1, "a refused message is acknowledged");
    // One malformed message does not stop the connection: no client event.
    assert!(b.faults().is_empty());
}

#[test]
fn a_message_for_an_unknown_queue_is_the_relays_fault() {
    let (mut b, server, _) = inviter();
    let before = acks(&b);
    b.relay(message(&server, b"nope", 1, b"x".to_vec()));
    assert_eq!(b.get(FaultSource::Relay, FaultKind::UnknownQueue), 1);
    assert_eq!(acks(&b), before + 1);
    assert!(b.faults().is_empty());
}

#[test]
fn a_message_before_the_confirmation_is_unexpected() {
    let (mut b, server, rcv) = inviter();
    let env = AgentEnvelope::Message {
        agent_version: AGENT_VERSION,
        enc_agent_message: Encrypted::new(vec![1; 64]).expect("bounded"),
    };
    b.relay(message(&server, &rcv, 1, env.to_bytes()));
    assert_eq!(b.get(FaultSource::Peer, FaultKind::Unexpected), 1);
}

#[test]
fn a_bad_confirmation_is_reported_and_the_invitation_stays_open() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 11);
    let from = sim.events(0).len();
    let corr = sim.command(
        0,
        Command::NewConn {
            alias: Some("bob".into()),
        },
    );
    assert!(matches!(sim.response(0, &corr), Some(Event::Ok { .. })));
    sim.settle_all();
    let invitation = sim.events(0)[from..]
        .iter()
        .find_map(|e| match &e.event {
            Event::Invitation { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .expect("invitation");
    let (server, rcv_id) = sim.receive_queues(0).pop().expect("a queue");
    // Keys that are not X3DH keys, and connection info that is not encrypted.
    let env = AgentEnvelope::Confirmation {
        agent_version: AGENT_VERSION,
        e2e_params: Bounded::new(vec![0; 10]).expect("bounded"),
        enc_conn_info: Encrypted::new(vec![0; 100]).expect("bounded"),
    };
    sim.inject(
        0,
        Input::Relay(RelayEvent::Message {
            server,
            rcv_id,
            msg_id: b"forged".to_vec(),
            ts: Timestamp::from_millis(0),
            body: env.to_bytes(),
        }),
    );
    let r = sim.refusals(0);
    assert_eq!(
        r.get(FaultSource::Peer, FaultKind::BadConfirmation),
        1,
        "{r}"
    );
    assert_eq!(
        count(sim.events(0), |e| matches!(
            e,
            Event::Fault {
                target: FaultTarget::Conn(a),
                source: FaultSource::Peer,
                kind: FaultKind::BadConfirmation,
            } if a == "bob"
        )),
        1
    );
    // The real joiner still connects.
    sim.command(
        1,
        Command::JoinConn {
            alias: Some("alice".into()),
            invitation,
            info: Vec::new(),
        },
    );
    sim.settle_all();
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::Con { alias, .. } if alias == "bob")
        ),
        1
    );
    assert_eq!(
        count(
            sim.events(1),
            |e| matches!(e, Event::Con { alias, .. } if alias == "alice")
        ),
        1
    );
    assert_eq!(sim.refusals(1).total(), 0, "{}", sim.refusals(1));
}

#[test]
fn undecryptable_messages_are_counted_and_reported_once_in_a_row() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 12);
    let (a, b) = sim.connect(0, 1).expect("connected");
    let (server, rcv_id) = sim.receive_queues(0).pop().expect("a queue");
    for n in 0..5u8 {
        let env = AgentEnvelope::Message {
            agent_version: AGENT_VERSION,
            enc_agent_message: Encrypted::new(vec![n; 300]).expect("bounded"),
        };
        sim.inject(
            0,
            Input::Relay(RelayEvent::Message {
                server: server.clone(),
                rcv_id: rcv_id.clone(),
                msg_id: vec![b'x', n],
                ts: Timestamp::from_millis(0),
                body: env.to_bytes(),
            }),
        );
    }
    let r = sim.refusals(0);
    assert_eq!(r.get(FaultSource::Peer, FaultKind::Undecryptable), 5, "{r}");
    let reported = |sim: &Sim| {
        count(sim.events(0), |e| {
            matches!(e, Event::Fault {
                target: FaultTarget::Conn(x),
                source: FaultSource::Peer,
                kind: FaultKind::Undecryptable,
            } if *x == a)
        })
    };
    assert_eq!(reported(&sim), 1);
    // The connection still works, and a good message ends the streak.
    sim.command(
        1,
        Command::SendConn {
            alias: b,
            body: b"hi".to_vec(),
        },
    );
    sim.settle_all();
    assert_eq!(
        count(
            sim.events(0),
            |e| matches!(e, Event::ConnMsg { body, .. } if body == b"hi")
        ),
        1
    );
    assert_eq!(reported(&sim), 1);
}

#[test]
fn a_peer_that_deleted_the_connection_is_reported_when_a_send_fails() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 13);
    let (a, b) = sim.connect(0, 1).expect("connected");
    sim.command(1, Command::DelConn { alias: b });
    sim.settle_all();
    sim.command(
        0,
        Command::SendConn {
            alias: a.clone(),
            body: b"anyone?".to_vec(),
        },
    );
    sim.settle_all();
    let r = sim.refusals(0);
    assert_eq!(r.get(FaultSource::Peer, FaultKind::PeerQueueGone), 1, "{r}");
    assert_eq!(
        count(sim.events(0), |e| matches!(e, Event::Fault {
            target: FaultTarget::Conn(x),
            source: FaultSource::Peer,
            kind: FaultKind::PeerQueueGone,
        } if *x == a)),
        1
    );
}

#[test]
fn duplicates_from_the_relay_are_counted_as_the_relays() {
    let faults = Faults {
        duplicate_ppm: 1_000_000,
        ..Faults::default()
    };
    let mut sim = Sim::new(2, &config(), faults, 14);
    let (_, b) = sim.connect(0, 1).expect("connected");
    for k in 0..3u8 {
        sim.command(
            1,
            Command::SendConn {
                alias: b.clone(),
                body: vec![k],
            },
        );
    }
    sim.settle_all();
    assert_eq!(
        count(sim.events(0), |e| matches!(e, Event::ConnMsg { .. })),
        3,
        "each message once"
    );
    for i in 0..2 {
        let r = sim.refusals(i);
        assert_eq!(r.of_source(FaultSource::Peer), 0, "agent {i}: {r}");
        assert_eq!(
            r.total(),
            r.get(FaultSource::Relay, FaultKind::Duplicate),
            "agent {i}: {r}"
        );
    }
    // Agent 0 got the confirmation and three messages twice, agent 1 HELLO.
    assert!(
        sim.refusals(0)
            .get(FaultSource::Relay, FaultKind::Duplicate)
            >= 4
    );
    assert!(
        sim.refusals(1)
            .get(FaultSource::Relay, FaultKind::Duplicate)
            >= 1
    );
}

#[test]
fn a_fault_free_group_refuses_nothing_but_refused_commands() {
    let mut sim = Sim::new(4, &config(), Faults::default(), 15);
    let hs = sim.build_group(4).expect("group");
    for h in &hs {
        sim.command(
            h.agent,
            Command::Send {
                group: h.alias.clone(),
                body: b"hello".to_vec(),
            },
        );
    }
    sim.settle_all();
    let corr = sim.command(
        0,
        Command::Send {
            group: "no such group".into(),
            body: Vec::new(),
        },
    );
    assert!(matches!(sim.response(0, &corr), Some(Event::Err(_))));
    for i in 0..4 {
        let r = sim.refusals(i);
        let expected = u64::from(i == 0);
        assert_eq!(r.total(), expected, "agent {i}: {r}");
        assert_eq!(r.get(FaultSource::Client, FaultKind::Command), expected);
        assert_eq!(
            count(sim.events(i), |e| matches!(e, Event::Fault { .. })),
            0
        );
    }
}

#[test]
fn our_queue_refused_for_good_is_reported() {
    let mut b = Bare::new();
    b.command(Command::NewConn {
        alias: Some("c1".into()),
    });
    let op = b.last_create();
    b.relay(RelayEvent::Failed {
        op,
        error: RelayError::Auth,
    });
    assert_eq!(b.get(FaultSource::Relay, FaultKind::QueueRefused), 1);
    assert_eq!(
        b.faults(),
        vec![(
            FaultTarget::Conn("c1".into()),
            FaultSource::Relay,
            FaultKind::QueueRefused
        )]
    );
}

#[test]
fn results_for_unknown_or_mismatched_operations_change_nothing() {
    let mut b = Bare::new();
    b.command(Command::NewConn {
        alias: Some("c1".into()),
    });
    let op = b.last_create();
    // An answer to no pending operation: a late duplicate.
    b.relay(RelayEvent::Done {
        op: smp_groups_core::OpId(9_999),
    });
    b.relay(RelayEvent::Failed {
        op: smp_groups_core::OpId(9_998),
        error: RelayError::Temporary,
    });
    assert_eq!(b.get(FaultSource::Nobody, FaultKind::UnknownOp), 2);
    // A creation answered without a queue: refused, the operation stays
    // pending and its real answer still works.
    b.relay(RelayEvent::Done { op });
    assert_eq!(b.get(FaultSource::Relay, FaultKind::ResultMismatch), 1);
    b.relay(RelayEvent::QueueCreated {
        op,
        rcv_id: b"r".to_vec(),
        snd_id: b"s".to_vec(),
    });
    assert_eq!(
        count(&b.events, |e| matches!(e, Event::Invitation { .. })),
        1
    );
    // The same answer again creates nothing more.
    b.relay(RelayEvent::QueueCreated {
        op,
        rcv_id: b"r2".to_vec(),
        snd_id: b"s2".to_vec(),
    });
    assert_eq!(b.get(FaultSource::Nobody, FaultKind::UnknownOp), 3);
    assert_eq!(
        count(&b.events, |e| matches!(e, Event::Invitation { .. })),
        1
    );
    assert!(b.faults().is_empty());
}

/// An alias the client protocol cannot carry is refused when it is given
/// (every later event about it would have had no client form), and the
/// refused command leaves nothing behind: the same command with a good alias
/// then succeeds, and a taken alias is still a duplicate.
#[test]
fn an_alias_the_client_protocol_cannot_carry_is_refused() {
    let mut b = Bare::new();
    let too_long = "a".repeat(smp_groups_wire::client::MAX_ALIAS_LEN + 1);
    for bad in ["Book club", "tab\there", "caf\u{e9}", too_long.as_str()] {
        b.events.clear();
        b.command(Command::NewGroup {
            alias: Some(bad.to_owned()),
            info: Vec::new(),
        });
        assert!(
            matches!(
                &b.events[..],
                [ClientEvent { event: Event::Err(smp_groups_core::CommandError::BadAlias { alias, .. }), .. }]
                    if alias == bad
            ),
            "{bad:?}: {:?}",
            b.events
        );
        b.command(Command::NewConn {
            alias: Some(bad.to_owned()),
        });
        assert!(
            matches!(
                b.events.last().map(|e| &e.event),
                Some(Event::Err(smp_groups_core::CommandError::BadAlias { .. }))
            ),
            "{bad:?}: {:?}",
            b.events
        );
    }
    assert!(b.agent.groups().is_empty(), "{:?}", b.agent.groups());
    assert!(b.ops.is_empty(), "{:?}", b.ops);
    b.events.clear();
    b.command(Command::NewGroup {
        alias: Some("book-club".into()),
        info: Vec::new(),
    });
    assert_eq!(b.agent.groups(), vec!["book-club".to_owned()]);
    b.command(Command::NewGroup {
        alias: Some("book-club".into()),
        info: Vec::new(),
    });
    assert!(matches!(
        b.events.last().map(|e| &e.event),
        Some(Event::Err(smp_groups_core::CommandError::Duplicate(a))) if a == "book-club"
    ));
}

/// A send the relay refuses for a reason of its own (a relay whose block is
/// smaller than ours answers `LARGE_MSG`) is reported once per member as the
/// relay's `send_refused`, never as the member leaving; nothing is dropped,
/// and once the relay takes it the message reaches every member once.
#[test]
fn a_send_refused_by_the_relay_is_reported_and_kept_not_a_departure() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 17);
    let g = sim.create_group(0).expect("group");
    let h1 = sim.invite(&g, 1).expect("member 1");
    let h2 = sim.invite(&g, 2).expect("member 2");
    sim.settle_all();
    sim.set_relay_max_body(Some(64));
    sim.command(
        0,
        Command::Send {
            group: g.alias.clone(),
            body: b"through a narrow relay".to_vec(),
        },
    );
    // Several retries at the longest interval: reported once per member.
    let until = sim.now() + 5 * 60_000;
    sim.run_until(until);
    let refused = |e: &Event| {
        matches!(
            e,
            Event::Fault {
                target: FaultTarget::Member { .. },
                source: FaultSource::Relay,
                kind: FaultKind::SendRefused,
            }
        )
    };
    assert_eq!(count(sim.events(0), refused), 2, "{:?}", sim.events(0));
    assert!(
        sim.refusals(0)
            .get(FaultSource::Relay, FaultKind::SendRefused)
            > 2,
        "{}",
        sim.refusals(0)
    );
    let left = |e: &Event| {
        matches!(
            e,
            Event::Left { .. } | Event::Removed { .. } | Event::Out { .. }
        )
    };
    for i in 0..3 {
        assert_eq!(
            count(sim.events(i), left),
            0,
            "agent {i}: {:?}",
            sim.events(i)
        );
    }
    assert_eq!(sim.agent(0).expect("agent 0").members(&g.alias).len(), 2);
    sim.set_relay_max_body(None);
    sim.settle_all();
    for h in [&h1, &h2] {
        let got: Vec<&[u8]> = sim
            .events(h.agent)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg { group, body, .. } if *group == h.alias => Some(body.as_slice()),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![&b"through a narrow relay"[..]],
            "agent {}",
            h.agent
        );
    }
    // Reported once: no second report after the sends went through.
    assert_eq!(count(sim.events(0), refused), 2);
}

/// Signed receipts on (the default): an unsigned receipt is not proof, so
/// the sender reports it as `bad_sig` (per member and for all) and counts
/// it as the peer's; a member that does not require signatures still takes
/// signed receipts as ok.
#[test]
fn an_unsigned_receipt_is_bad_sig_when_signed_receipts_are_on() {
    use smp_groups_core::{ReceiptPolicy, ReceiptStatus, Settings};
    let mut sim = Sim::new(3, &config(), Faults::default(), 19);
    let g = sim.create_group(0).expect("group");
    let h1 = sim.invite(&g, 1).expect("member 1");
    let h2 = sim.invite(&g, 2).expect("member 2");
    sim.settle_all();
    let mut unsigned = Settings::of(sim.agent(1).expect("agent 1").config());
    unsigned.receipts = ReceiptPolicy {
        sign: false,
        ..ReceiptPolicy::default()
    };
    sim.apply_settings(1, &unsigned);
    let id1 = sim
        .agent(1)
        .and_then(|a| a.member_id(&h1.alias))
        .expect("id 1");
    let id2 = sim
        .agent(2)
        .and_then(|a| a.member_id(&h2.alias))
        .expect("id 2");
    for (i, alias) in [(0, &g.alias), (1, &h1.alias)] {
        sim.command(
            i,
            Command::Send {
                group: alias.clone(),
                body: format!("from {i}").into_bytes(),
            },
        );
    }
    sim.settle_all();
    for h in [&g, &h1, &h2] {
        let ids: Vec<u64> = sim
            .events(h.agent)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg { msg_id, .. } => Some(*msg_id),
                _ => None,
            })
            .collect();
        for msg_id in ids {
            sim.command(
                h.agent,
                Command::Ack {
                    group: h.alias.clone(),
                    msg_id,
                },
            );
        }
    }
    sim.settle_all();
    let rcvd = |i: usize| -> Vec<(Option<smp_groups_wire::agent::MemberId>, ReceiptStatus)> {
        sim.events(i)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Rcvd { member, status, .. } => Some((*member, *status)),
                _ => None,
            })
            .collect()
    };
    let r0 = rcvd(0);
    assert!(r0.contains(&(Some(id1), ReceiptStatus::BadSig)), "{r0:?}");
    assert!(r0.contains(&(Some(id2), ReceiptStatus::Ok)), "{r0:?}");
    assert!(r0.contains(&(None, ReceiptStatus::BadSig)), "{r0:?}");
    assert_eq!(r0.len(), 3, "{r0:?}");
    assert!(
        sim.refusals(0)
            .get(FaultSource::Peer, FaultKind::BadSignature)
            >= 1
    );
    // Agent 1 does not require signatures; the others' are valid anyway.
    let r1 = rcvd(1);
    assert_eq!(r1.len(), 3, "{r1:?}");
    assert!(r1.iter().all(|(_, s)| s.is_ok()), "{r1:?}");
    assert_eq!(
        sim.refusals(1)
            .get(FaultSource::Peer, FaultKind::BadSignature),
        0
    );
}
