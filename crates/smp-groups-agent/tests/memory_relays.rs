//! The relays tests run in their process (`testing::MemoryRelays`) are real
//! relays reached by the production client: queues are made by SMP sessions
//! the relay counts, their keys are in each agent's own `queue_keys` table
//! (not in some shared test hub), and a relay an agent names that is not in
//! the network is reached as any `smp://` address is.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{RELAY_A, RELAY_B, WAIT, relays, temp_db};
use smp_groups_agent::{Agent, AgentConfig};
use smp_groups_store::Store;
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_meet_through_real_sessions_and_keep_their_own_queue_keys() {
    let relays = relays().await;
    let (db_a, db_b) = (temp_db("alice-mem"), temp_db("bob-mem"));
    let a = Agent::open(
        AgentConfig::new("alice", RELAY_A, Some(db_a.clone())),
        relays.clone(),
    )
    .unwrap();
    let b = Agent::open(
        AgentConfig::new("bob", RELAY_B, Some(db_b.clone())),
        relays.clone(),
    )
    .unwrap();
    let (mut ea, mut eb) = (a.events().await.unwrap(), b.events().await.unwrap());
    a.new_connection(None).await.unwrap();
    let inv = loop {
        let d = tokio::time::timeout(WAIT, ea.next())
            .await
            .unwrap()
            .unwrap();
        if let AgentEvent::Inv { invitation, .. } = d.event {
            break invitation.as_str().to_owned();
        }
    };
    b.join_connection(
        None,
        base64url::decode_unpadded(&inv, "invitation").unwrap(),
    )
    .await
    .unwrap();
    for events in [&mut ea, &mut eb] {
        loop {
            let d = tokio::time::timeout(WAIT, events.next())
                .await
                .unwrap()
                .unwrap();
            if matches!(d.event, AgentEvent::Con { .. }) {
                break;
            }
        }
    }

    // Each relay holds the queues of the agent that named it, made over an
    // SMP session of its own (one per agent and relay it talks to).
    let (sa, sb) = (
        relays.stats(RELAY_A).await.unwrap(),
        relays.stats(RELAY_B).await.unwrap(),
    );
    assert!(sa.queues >= 1 && sb.queues >= 1, "{sa:?} {sb:?}");
    assert!(sa.connections >= 1 && sb.connections >= 1, "{sa:?} {sb:?}");
    assert!(relays.stats("smp://nowhere.test").await.is_none());

    // The recipient secrets are in each agent's database, for its own relay
    // only, as the network client keeps them.
    for (db, relay, count) in [(&db_a, RELAY_A, sa.queues), (&db_b, RELAY_B, sb.queues)] {
        let keys = Store::open(db)
            .unwrap()
            .queue_keys()
            .unwrap()
            .load()
            .unwrap();
        // A key is stored once its queue exists and removed once it is
        // deleted: never more keys than queues, even with an operation in flight.
        assert!(
            (1..=count).contains(&keys.len()),
            "{} keys, {count} queues on {relay}",
            keys.len()
        );
        assert!(
            keys.iter()
                .all(|k| k.server == relay && k.secret.len() == 64)
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    relays.shutdown().await;
    assert!(relays.stats(RELAY_A).await.is_none(), "stopped and gone");
}
