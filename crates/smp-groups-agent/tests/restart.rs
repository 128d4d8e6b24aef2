//! Crash safety: an agent stopped between two inputs mid-traffic and restarted
//! from its database delivers every message to its client exactly once, and
//! the group goes on working; events not confirmed before the stop are
//! delivered again, confirmed ones never.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{RELAY_A, RELAY_B, WAIT, relays, temp_db};
use smp_groups_agent::{Agent, AgentConfig, EventStream};
use smp_groups_core::Config;
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

fn config(name: &str, relay: &str, db: std::path::PathBuf) -> AgentConfig {
    let mut c = AgentConfig::new(name, relay, Some(db));
    c.core = Config {
        server: relay.to_owned(),
        check_interval_ms: None,
        check_every_messages: Some(7),
        check_window: 64,
        ..Config::default()
    };
    c
}

async fn next(events: &mut EventStream) -> AgentEvent {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the agent runs")
        .event
}

async fn until<T>(events: &mut EventStream, f: impl Fn(&AgentEvent) -> Option<T>) -> T {
    loop {
        if let Some(x) = f(&next(events).await) {
            return x;
        }
    }
}

/// Alice and bob in one group: (alice, bob, alice's events, alice's group,
/// bob's group).
async fn pair(
    relays: &std::sync::Arc<smp_groups_agent::testing::MemoryRelays>,
    db_a: std::path::PathBuf,
    db_b: std::path::PathBuf,
) -> (Agent, Agent, EventStream, String, String) {
    let (a, b, ea, eb, ga, gb) = pair_with(relays.clone(), relays.clone(), db_a, db_b).await;
    drop(eb);
    (a, b, ea, ga, gb)
}

/// [`pair`] with each agent's own relay connector; bob's events too.
async fn pair_with(
    relays_a: std::sync::Arc<dyn smp_groups_agent::RelayConnector>,
    relays_b: std::sync::Arc<dyn smp_groups_agent::RelayConnector>,
    db_a: std::path::PathBuf,
    db_b: std::path::PathBuf,
) -> (Agent, Agent, EventStream, EventStream, String, String) {
    let a = Agent::open(config("alice", RELAY_A, db_a), relays_a).unwrap();
    let b = Agent::open(config("bob", RELAY_B, db_b), relays_b).unwrap();
    let mut ea = a.events().await.unwrap();
    let mut eb = b.events().await.unwrap();
    let conn = a.new_connection(None).await.unwrap();
    let inv = until(&mut ea, |e| match e {
        AgentEvent::Inv {
            conn: c,
            invitation,
        } if c.as_str() == conn => Some(invitation.as_str().to_owned()),
        _ => None,
    })
    .await;
    let inv = base64url::decode_unpadded(&inv, "invitation").unwrap();
    b.join_connection(None, inv).await.unwrap();
    until(&mut ea, |e| {
        matches!(e, AgentEvent::Con { .. }).then_some(())
    })
    .await;
    until(&mut eb, |e| {
        matches!(e, AgentEvent::Con { .. }).then_some(())
    })
    .await;
    let ga = a.create_group(Some("g"), b"g").await.unwrap();
    a.invite(&conn, &ga, b"g").await.unwrap();
    let req = until(&mut eb, |e| match e {
        AgentEvent::Req { invitation, .. } => Some(invitation.as_str().to_owned()),
        _ => None,
    })
    .await;
    let gb = b.join(Some("h"), &req).await.unwrap();
    until(&mut eb, |e| {
        matches!(e, AgentEvent::GroupMem { member: None, .. }).then_some(())
    })
    .await;
    until(&mut ea, |e| {
        matches!(
            e,
            AgentEvent::GroupMem {
                member: Some(_),
                ..
            }
        )
        .then_some(())
    })
    .await;
    (a, b, ea, eb, ga, gb)
}

/// Bob is stopped after `cut` of alice's messages reached his client, while the
/// rest are in flight, restarted from his database, and must see each of the
/// 12 messages exactly once; then both directions still work.
async fn restart_mid_traffic(cut: usize) {
    let relays = relays().await;
    let (db_a, db_b) = (temp_db("alice"), temp_db("bob"));
    let (a, b, mut ea, ga, gb) = pair(&relays, db_a, db_b.clone()).await;
    let mut eb = b.events_unconfirmed().await.unwrap();
    let total = 12;
    for i in 0..total {
        a.send(&ga, format!("m{i}").as_bytes()).await.unwrap();
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed_upto = 0;
    while got.values().sum::<usize>() < cut {
        let d = tokio::time::timeout(WAIT, eb.next())
            .await
            .unwrap()
            .unwrap();
        if let AgentEvent::GroupMsg { body, msg_id, .. } = &d.event {
            *got.entry(String::from_utf8(body.clone()).unwrap())
                .or_default() += 1;
            b.ack(&gb, *msg_id).await.unwrap();
        }
        b.confirm(d.seq).await;
        confirmed_upto = d.seq;
    }
    // One more event delivered and not confirmed: it must come again.
    let unconfirmed = tokio::time::timeout(WAIT, eb.next())
        .await
        .unwrap()
        .unwrap();
    b.shutdown().await;
    drop(eb);
    drop(b);

    let b = Agent::open(config("bob", RELAY_B, db_b.clone()), relays.clone()).unwrap();
    let mut eb = b.events().await.unwrap();
    let first = tokio::time::timeout(WAIT, eb.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.seq,
        confirmed_upto + 1,
        "delivery resumes after the last confirmed event"
    );
    assert_eq!(
        first, unconfirmed,
        "the unconfirmed event is delivered again"
    );
    let mut pending = Some(first.event);
    while got.len() < total {
        let e = match pending.take() {
            Some(e) => e,
            None => next(&mut eb).await,
        };
        if let AgentEvent::GroupMsg { body, msg_id, .. } = &e {
            *got.entry(String::from_utf8(body.clone()).unwrap())
                .or_default() += 1;
            b.ack(&gb, *msg_id).await.unwrap();
        }
    }
    // Nothing more arrives for bob's client: no message twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(100), eb.next()).await {
        if let AgentEvent::GroupMsg { body, .. } = &d.event {
            *got.entry(String::from_utf8(body.clone()).unwrap())
                .or_default() += 1;
        }
    }
    assert_eq!(got.len(), total);
    assert!(got.values().all(|&n| n == 1), "each message once: {got:?}");

    // Every message's receipts reached alice, and the group works both ways.
    let mut all = 0;
    while all < total {
        if matches!(
            next(&mut ea).await,
            AgentEvent::GroupRcvd { member: None, .. }
        ) {
            all += 1;
        }
    }
    b.send(&gb, b"after restart").await.unwrap();
    until(&mut ea, |e| match e {
        AgentEvent::GroupMsg { body, .. } if body == b"after restart" => Some(()),
        _ => None,
    })
    .await;
    a.send(&ga, b"and back").await.unwrap();
    until(&mut eb, |e| match e {
        AgentEvent::GroupMsg { body, .. } if body == b"and back" => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_first_message() {
    restart_mid_traffic(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream() {
    restart_mid_traffic(6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_the_sender() {
    let relays = relays().await;
    let (db_a, db_b) = (temp_db("alice2"), temp_db("bob2"));
    let (a, b, ea, ga, gb) = pair(&relays, db_a.clone(), db_b).await;
    drop(ea);
    let mut eb = b.events().await.unwrap();
    for i in 0..5 {
        a.send(&ga, format!("x{i}").as_bytes()).await.unwrap();
    }
    a.shutdown().await;
    drop(a);
    let a = Agent::open(config("alice", RELAY_A, db_a), relays.clone()).unwrap();
    for i in 5..8 {
        a.send(&ga, format!("x{i}").as_bytes()).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 8 {
        if let AgentEvent::GroupMsg { body, msg_id, .. } = next(&mut eb).await {
            got.push(String::from_utf8(body).unwrap());
            b.ack(&gb, msg_id).await.unwrap();
        }
    }
    let want: Vec<String> = (0..8).map(|i| format!("x{i}")).collect();
    assert_eq!(got, want, "in order, each once");
}

/// Relay access (the real client) that loses every `ACK` while `lose` is
/// set: the agent stops after committing a message and before the relay
/// learned it was processed.
struct LoseAcks {
    inner: smp_groups_agent::NetworkRelay,
    lose: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

struct LoseAcksClient {
    inner: Box<dyn smp_groups_agent::RelayClient>,
    lose: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl smp_groups_agent::RelayClient for LoseAcksClient {
    fn perform(&mut self, op: smp_groups_core::RelayOp) {
        if matches!(op, smp_groups_core::RelayOp::Ack { .. })
            && self.lose.load(std::sync::atomic::Ordering::SeqCst)
        {
            self.lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        self.inner.perform(op);
    }
}

static LOST: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicUsize>> =
    std::sync::LazyLock::new(Default::default);

impl smp_groups_agent::RelayConnector for LoseAcks {
    fn connect(
        &self,
        context: smp_groups_agent::RelayContext,
    ) -> Result<Box<dyn smp_groups_agent::RelayClient>, smp_groups_agent::Error> {
        Ok(Box::new(LoseAcksClient {
            inner: self.inner.connect(context)?,
            lose: self.lose.clone(),
            lost: LOST.clone(),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_processed_but_not_acknowledged_is_delivered_once() {
    let relays = relays().await;
    let lose = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connector: std::sync::Arc<dyn smp_groups_agent::RelayConnector> =
        std::sync::Arc::new(LoseAcks {
            inner: relays.client(),
            lose: lose.clone(),
        });
    let (db_a, db_b) = (temp_db("alice3"), temp_db("bob3"));
    let (a, b, _ea, mut eb, ga, gb) =
        pair_with(relays.clone(), connector.clone(), db_a, db_b.clone()).await;
    // From now on bob's acknowledgements are lost: the first message is
    // processed and committed, and the relay holds it (and the rest) back.
    lose.store(true, std::sync::atomic::Ordering::SeqCst);
    let lost_before = LOST.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..3 {
        a.send(&ga, format!("y{i}").as_bytes()).await.unwrap();
    }
    let mut got = Vec::new();
    let first = until(&mut eb, |e| match e {
        AgentEvent::GroupMsg { body, .. } => Some(body.clone()),
        _ => None,
    })
    .await;
    got.push(first);
    assert!(
        LOST.load(std::sync::atomic::Ordering::SeqCst) > lost_before,
        "an ACK was lost"
    );
    b.shutdown().await;
    drop(eb);
    drop(b);

    // Restart with working acknowledgements: the relay delivers the processed
    // message again; it is only acknowledged, and the others follow.
    lose.store(false, std::sync::atomic::Ordering::SeqCst);
    let b = Agent::open(config("bob", RELAY_B, db_b), connector).unwrap();
    let mut eb = b.events().await.unwrap();
    while got.len() < 3 {
        if let AgentEvent::GroupMsg { body, msg_id, .. } = next(&mut eb).await {
            got.push(body);
            b.ack(&gb, msg_id).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(100), eb.next()).await {
        if let AgentEvent::GroupMsg { body, .. } = d.event {
            got.push(body);
        }
    }
    let want: Vec<Vec<u8>> = (0..3).map(|i| format!("y{i}").into_bytes()).collect();
    assert_eq!(got, want, "each message once, in order");
    // The last ACK may still be on its way to the relay.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stored = usize::MAX;
    while tokio::time::Instant::now() < deadline {
        stored = relays.stats(RELAY_B).await.unwrap().messages;
        if stored == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored, 0, "every message acknowledged");
}
