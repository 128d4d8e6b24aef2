//! Crash safety with real processes: `smp-agent serve` killed with SIGKILL at
//! random points of group traffic through an `smp-relay` process, and the relay
//! itself killed and restarted while messages are in flight.
//!
//! What must hold: every message accepted by an agent (its `SENT` response
//! came back) reaches the other member's client under one message id, never
//! as two messages; a message id may be shown again only if it was not yet
//! confirmed when the agent died, and then with the same body; and the group
//! still works afterwards in both directions.
//!
//! "Confirmed" is what the client can know: its `ACK` of the message was
//! answered `OK`, and a command it wrote after that `ACK` was answered too (the
//! agent takes a session's lines in order, so the confirmation was handed to
//! the agent before that command, and committed with it or before). Such an
//! id must never be shown again. Every `ACK` answer is checked: `OK`, or
//! `ERR UNKNOWN_ENTITY` for a message shown again that an earlier session had
//! acknowledged.
//!
//! The kill points come from a seeded generator, seeded from the clock unless
//! `CRASH_SEED=n` is set; the seed is printed, so a failing run can be
//! repeated.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::procs::{self, Proc};
use common::{Client, flows, temp_db};
use smp_groups_wire::client::AgentEvent;
use tokio::time::Instant;

/// A small deterministic generator for the schedule (xorshift64*).
struct Schedule(u64);

impl Schedule {
    fn from_env() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed_c0de, |d| {
                        u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
                    })
            });
        eprintln!("crash schedule seed {seed} (CRASH_SEED={seed} repeats it)");
        Self(seed.max(1))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What one side's client has seen of the other's group messages.
#[derive(Default)]
struct Inbox {
    /// message id -> body, first sighting.
    by_id: HashMap<u64, Vec<u8>>,
    /// Index into the client's `seen` up to which it was read.
    read: usize,
    /// The same id shown again (after a restart, unconfirmed).
    redelivered: usize,
    /// Ids whose confirmation the client knows was handed to the agent
    /// before a later command was answered: never to be shown again.
    confirmed: BTreeSet<u64>,
    /// Ids acknowledged in this session, in the order the `ACK`s were written.
    acked: Vec<u64>,
}

impl Inbox {
    /// Takes the new `MSG`s of `group` from `client` (a fresh client after a
    /// restart starts at 0), checks them, and acknowledges each.
    async fn take(&mut self, client: &mut Client, group: &str) {
        let new: Vec<(u64, Vec<u8>)> = client.seen[self.read..]
            .iter()
            .filter_map(|t| match &t.msg {
                AgentEvent::GroupMsg {
                    group: g,
                    msg_id,
                    body,
                    ..
                } if g.as_str() == group => Some((*msg_id, body.clone())),
                _ => None,
            })
            .collect();
        self.read = client.seen.len();
        for (id, body) in new {
            match self.by_id.get(&id) {
                Some(b) => {
                    assert_eq!(*b, body, "message {id} shown again with another body");
                    assert!(
                        !self.confirmed.contains(&id),
                        "message {id} shown again after its confirmation was committed"
                    );
                    self.redelivered += 1;
                }
                None => {
                    self.by_id.insert(id, body);
                }
            }
            // Every sighting is answered: a message shown again after a
            // restart stays unconfirmed until this session answers it.
            let _ = client
                .try_line(&format!("ack{id} G:{group} ACK {id}"))
                .await;
            self.acked.push(id);
        }
    }

    /// Checks the answers to this session's `ACK`s, and records as confirmed
    /// the first `upto` acknowledged ids if the command written after them
    /// (`barrier`) was answered; starts a new session's bookkeeping.
    fn end_session(&mut self, client: &Client, upto: usize, barrier: &str) {
        let answer = |id: u64| {
            let corr = format!("ack{id}");
            client
                .seen
                .iter()
                .find(|t| t.corr_id.as_str() == corr)
                .map(|t| t.msg.clone())
        };
        for &id in &self.acked {
            match answer(id) {
                None
                | Some(
                    AgentEvent::Ok { .. }
                    | AgentEvent::Error {
                        code: smp_groups_wire::client::ErrorCode::UnknownEntity,
                        ..
                    },
                ) => {}
                Some(other) => panic!("ACK {id} answered {other:?}"),
            }
        }
        let barrier_answered = client.seen.iter().any(|t| t.corr_id.as_str() == barrier);
        if barrier_answered {
            for &id in self.acked.iter().take(upto) {
                if matches!(answer(id), Some(AgentEvent::Ok { .. })) {
                    self.confirmed.insert(id);
                }
            }
        }
        self.acked.clear();
        self.read = 0;
    }

    /// Every body, checked to appear under one id only.
    fn bodies(&self) -> BTreeSet<Vec<u8>> {
        let mut out = BTreeSet::new();
        for body in self.by_id.values() {
            assert!(
                out.insert(body.clone()),
                "{:?} delivered as two messages",
                String::from_utf8_lossy(body)
            );
        }
        out
    }
}

/// The bodies of `sent` (by corrId) whose `SENT` response `client` has seen.
fn accepted(client: &Client, sent: &HashMap<String, Vec<u8>>) -> Vec<Vec<u8>> {
    client
        .seen
        .iter()
        .filter(|t| matches!(t.msg, AgentEvent::GroupSent { .. }))
        .filter_map(|t| sent.get(t.corr_id.as_str()).cloned())
        .collect()
}

fn dir(name: &str) -> PathBuf {
    let d = temp_db(name).with_extension("d");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A two-member group `club` (alice) / `books` (bob), both agents as processes.
async fn group(relay: &str, dir: &Path) -> (Proc, Client, Proc, Client, PathBuf) {
    let bob_db = dir.join("bob.db");
    let (pa, addr_a) = procs::agent("alice", relay, &dir.join("alice.db"));
    let (pb, addr_b) = procs::agent("bob", relay, &bob_db);
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    let r = a.call("g", "G:club NEW :crash club").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    (pa, a, pb, b, bob_db)
}

/// Kills bob `points` times at random moments while both send, then checks
/// that nothing was lost or doubled and that the group still works.
async fn kill_bob_repeatedly(points: usize) {
    let mut rng = Schedule::from_env();
    let d = dir("crash");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &d.join("relay"));
    let (_pa, mut a, mut pb, mut b, bob_db) = group(&relay, &d).await;

    let mut to_bob: HashMap<String, Vec<u8>> = HashMap::new();
    let mut to_alice: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut bob_inbox, mut alice_inbox) = (Inbox::default(), Inbox::default());
    let mut bob_accepted: BTreeSet<Vec<u8>> = BTreeSet::new();

    for round in 0..points {
        // Alice sends a few messages and does not wait for their answers.
        for k in 0..3 {
            let corr = format!("a{round}x{k}");
            let body = format!("from alice {round}.{k}");
            a.try_line(&format!("{corr} G:club SEND :{body}")).await;
            to_bob.insert(corr, body.into_bytes());
        }
        // Bob reads and acknowledges for a random while, sends one message
        // at a random moment of it, and is killed at a random moment.
        let corr = format!("b{round}");
        let body = format!("from bob {round}");
        to_alice.insert(corr.clone(), body.clone().into_bytes());
        let start = Instant::now();
        let until = start + Duration::from_millis(rng.below(400));
        let send_at = start + Duration::from_millis(rng.below(400));
        let mut barrier = None;
        while Instant::now() < until {
            if barrier.is_none() && Instant::now() >= send_at {
                b.try_line(&format!("{corr} G:books SEND :{body}")).await;
                barrier = Some(bob_inbox.acked.len());
            }
            let step = Instant::now() + Duration::from_millis(rng.below(40) + 1);
            if !b.pump_until(step.min(until)).await {
                break;
            }
            bob_inbox.take(&mut b, "books").await;
        }
        if barrier.is_none() {
            b.try_line(&format!("{corr} G:books SEND :{body}")).await;
            barrier = Some(bob_inbox.acked.len());
        }
        bob_accepted.extend(accepted(&b, &to_alice));
        pb.kill9();
        // What the agent wrote before it died is still in this client's
        // socket: a client reads it to the end.
        b.pump_until(Instant::now() + Duration::from_secs(5)).await;
        bob_inbox.take(&mut b, "books").await;
        bob_accepted.extend(accepted(&b, &to_alice));
        a.pump_until(Instant::now() + Duration::from_millis(20))
            .await;
        alice_inbox.take(&mut a, "club").await;

        bob_inbox.end_session(&b, barrier.unwrap_or(0), &corr);

        let (p, addr) = procs::agent("bob", &relay, &bob_db);
        pb = p;
        b = Client::connect(&addr, "bob").await;
    }

    // Everything alice's agent accepted reaches bob's client; everything
    // bob's accepted reaches alice's.
    a.pump_until(Instant::now() + Duration::from_millis(200))
        .await;
    let alice_accepted: BTreeSet<Vec<u8>> = accepted(&a, &to_bob).into_iter().collect();
    assert_eq!(alice_accepted.len(), points * 3, "alice's agent never dies");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        b.pump_until(Instant::now() + Duration::from_millis(100))
            .await;
        bob_inbox.take(&mut b, "books").await;
        a.pump_until(Instant::now() + Duration::from_millis(10))
            .await;
        alice_inbox.take(&mut a, "club").await;
        let bob_has = bob_inbox.bodies();
        let alice_has = alice_inbox.bodies();
        if alice_accepted.is_subset(&bob_has) && bob_accepted.is_subset(&alice_has) {
            // Nothing arrives that was never sent.
            let sent_to_bob: BTreeSet<Vec<u8>> = to_bob.values().cloned().collect();
            let sent_to_alice: BTreeSet<Vec<u8>> = to_alice.values().cloned().collect();
            assert!(bob_has.is_subset(&sent_to_bob));
            assert!(alice_has.is_subset(&sent_to_alice));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing at bob: {:?}; missing at alice: {:?} (logs in {})",
            alice_accepted
                .difference(&bob_has)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>(),
            bob_accepted
                .difference(&alice_has)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>(),
            d.display()
        );
    }
    eprintln!(
        "{points} kills: bob got {} messages ({} shown again unconfirmed, {} known confirmed), alice got {} of bob's {} accepted",
        bob_inbox.by_id.len(),
        bob_inbox.redelivered,
        bob_inbox.confirmed.len(),
        alice_inbox.by_id.len(),
        bob_accepted.len()
    );
    assert_eq!(alice_inbox.redelivered, 0, "alice's agent never restarted");

    // The group still works, both ways.
    let r = a.call("fa", "G:club SEND :after the crashes").await;
    assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
    b.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupMsg { body, .. } if body == b"after the crashes")
            .then_some(())
    })
    .await;
    let r = b.call("fb", "G:books SEND :bob is back").await;
    assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupMsg { body, .. } if body == b"bob is back").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_at_20_points_of_group_traffic() {
    kill_bob_repeatedly(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 100 kills (cargo test -p smp-groups-agent --test crash -- --ignored)"]
async fn agent_killed_at_100_points_of_group_traffic() {
    kill_bob_repeatedly(100).await;
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_and_restarted_mid_traffic_loses_nothing() {
    let d = dir("relay-restart");
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut relay_proc, relay) = procs::relay(&listen, &d.join("relay"));
    let (_pa, mut a, _pb, mut b, _) = group(&relay, &d).await;
    let mut to_bob = HashMap::new();
    let mut inbox = Inbox::default();
    for i in 0..30 {
        let corr = format!("m{i}");
        let body = format!("message {i}");
        let r = a.call(&corr, &format!("G:club SEND :{body}")).await;
        assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
        to_bob.insert(corr, body.into_bytes());
        b.pump_until(Instant::now() + Duration::from_millis(10))
            .await;
        inbox.take(&mut b, "books").await;
        if i == 12 {
            // SIGKILL: the relay keeps only what it committed, which is
            // everything it answered OK to.
            relay_proc.kill9();
        }
        if i == 18 {
            let (p, again) = procs::relay(&listen, &d.join("relay"));
            assert_eq!(again, relay, "same identity, same address");
            relay_proc = p;
        }
    }
    let want: BTreeSet<Vec<u8>> = to_bob.values().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while inbox.bodies() != want {
        assert!(
            Instant::now() < deadline,
            "bob has {} of {}",
            inbox.by_id.len(),
            want.len()
        );
        b.pump_until(Instant::now() + Duration::from_millis(100))
            .await;
        inbox.take(&mut b, "books").await;
    }
    assert_eq!(inbox.redelivered, 0, "bob's agent never restarted");
    drop(relay_proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_while_its_relay_is_down_catches_up() {
    let d = dir("relay-late");
    let listen = format!("127.0.0.1:{}", free_port());
    // The relay's identity (and so its address) is made on its first start.
    let (mut first, relay) = procs::relay(&listen, &d.join("relay"));
    first.kill9();
    let (_pa, addr) = procs::agent("alice", &relay, &d.join("alice.db"));
    let mut a = Client::connect(&addr, "alice").await;
    // Accepted while the relay is unreachable; the queue is made once it is up.
    let r = a.call("1", "C:bob NEW").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        a.count(|e| matches!(e, AgentEvent::Inv { .. })),
        0,
        "no invitation without a relay"
    );
    let (_relay, again) = procs::relay(&listen, &d.join("relay"));
    assert_eq!(again, relay);
    a.wait(|t| matches!(&t.msg, AgentEvent::Inv { .. }).then_some(()))
        .await;
}
