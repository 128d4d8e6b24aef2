//! The agent runtime and the relay take the wall clock and randomness from
//! their configuration: with fixed clocks, a pairwise message carries the
//! sender's, the relay's and the receiver's injected times, and a seeded
//! agent with a seeded relay hands out the same invitation twice.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{WAIT, temp_db};
use smp_groups_agent::{Agent, AgentConfig, EventStream, NetworkRelay};
use smp_groups_core::Command;
use smp_groups_crypto::clock::ManualClock;
use smp_groups_crypto::rng::SeededRandom;
use smp_groups_relay::{Relay, ServerConfig};
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

const ALICE_T: u64 = 1_700_000_000_250;
const BOB_T: u64 = 1_750_000_000_500;
const RELAY_T: u64 = 1_800_000_000_000;

async fn until<T>(events: &mut EventStream, f: impl Fn(&AgentEvent) -> Option<T>) -> T {
    loop {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the agent runs")
            .event;
        if let Some(x) = f(&e) {
            return x;
        }
    }
}

fn config(name: &str, relay: &str, t: u64, seed: u64) -> AgentConfig {
    let mut c = AgentConfig::new(name, relay, None);
    c.clock = Arc::new(ManualClock::new(t));
    c.random = Arc::new(SeededRandom::new(seed));
    c
}

/// Starts a relay with a fixed clock and a seed, and alice on it; returns
/// alice's first invitation (bytes) with everything needed to go on.
async fn start(run: u32) -> (Relay2, Agent, EventStream, String, Vec<u8>) {
    start_seeded(run, 7).await
}

/// [`start`] with the relay's seed.
async fn start_seeded(run: u32, seed: u64) -> (Relay2, Agent, EventStream, String, Vec<u8>) {
    let dir = temp_db(&format!("injected-{run}")).with_extension("relay");
    let relay = Relay::spawn_local_with(
        &dir,
        ServerConfig {
            clock: Arc::new(ManualClock::new(RELAY_T)),
            random: Arc::new(SeededRandom::new(seed)),
            ..ServerConfig::default()
        },
    )
    .await
    .unwrap();
    let net = Arc::new(NetworkRelay::new());
    let a = Agent::open(config("alice", &relay.address(), ALICE_T, 1), net).unwrap();
    let mut ea = a.events().await.unwrap();
    let conn = a.new_connection(Some("bob")).await.unwrap();
    let inv = until(&mut ea, |e| match e {
        AgentEvent::Inv {
            conn: c,
            invitation,
        } if c.as_str() == conn => Some(invitation.as_str().to_owned()),
        _ => None,
    })
    .await;
    let inv = base64url::decode_unpadded(&inv, "invitation").unwrap();
    (Relay2 { relay, dir }, a, ea, conn, inv)
}

struct Relay2 {
    relay: smp_groups_relay::RelayHandle,
    dir: std::path::PathBuf,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_come_from_the_injected_clocks_and_seeds_repeat() {
    let (r, a, mut ea, conn, inv) = start(1).await;
    let net = Arc::new(NetworkRelay::new());
    let b = Agent::open(config("bob", &r.relay.address(), BOB_T, 2), net).unwrap();
    let mut eb = b.events().await.unwrap();
    b.join_connection(Some("alice"), inv.clone()).await.unwrap();
    for e in [&mut ea, &mut eb] {
        until(e, |e| matches!(e, AgentEvent::Con { .. }).then_some(())).await;
    }
    a.command(Command::SendConn {
        alias: conn,
        body: b"at a fixed time".to_vec(),
    })
    .await
    .unwrap();
    let meta = until(&mut eb, |e| match e {
        AgentEvent::Msg { meta, body, .. } if body == b"at a fixed time" => Some(meta.clone()),
        _ => None,
    })
    .await;
    assert_eq!(meta.snd_ts, ALICE_T, "{meta:?}");
    assert_eq!(meta.rcv_ts, BOB_T, "{meta:?}");
    // SMP relays stamp whole seconds.
    assert_eq!(meta.relay_ts, RELAY_T / 1000 * 1000, "{meta:?}");
    a.shutdown().await;
    b.shutdown().await;
    r.relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&r.dir);

    // The same seeds give the same invitation (queue ids from the relay's
    // stream, keys from the agent's) but for the relay's address, which names
    // its port and its identity key (made once per data directory).
    let (r2, a2, _, _, inv2) = start(2).await;
    let after_address = |v: &[u8]| {
        let i = smp_groups_wire::decode_all::<smp_groups_wire::agent::ConnInvitation>(v)
            .expect("an invitation");
        (
            i.queue.relay.len(),
            i.queue.queue_id,
            i.e2e_params,
            i.anchor,
        )
    };
    assert_eq!(after_address(&inv), after_address(&inv2));
    let (r3, a3, _, _, inv3) = start_seeded(3, 8).await;
    assert_ne!(after_address(&inv), after_address(&inv3));
    a3.shutdown().await;
    r3.relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&r3.dir);
    a2.shutdown().await;
    r2.relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&r2.dir);
}
