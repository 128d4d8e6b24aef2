//! Agents reaching relays over TLS (`NetworkRelay`): the group flows on two
//! embedded relays, and as real processes (`smp-relay`, `smp-agent serve`).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Client, flows, procs, serve_network_agent, temp_db, tls_relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_flow_on_two_tls_relays() {
    let (relay_a, _) = tls_relay("net-a").await;
    let (relay_b, _) = tls_relay("net-b").await;
    let (ra, rb) = (relay_a.address(), relay_b.address());
    let (_a, addr_a) = serve_network_agent("alice", &ra, Some(temp_db("alice"))).await;
    let (_b, addr_b) = serve_network_agent("bob", &rb, Some(temp_db("bob"))).await;
    let (_c, addr_c) = serve_network_agent("carol", &ra, Some(temp_db("carol"))).await;
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    let mut c = Client::connect(&addr_c, "carol").await;
    flows::every_group_flow(&mut a, &mut b, &mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_flow_with_relay_and_agent_processes() {
    let dir = temp_db("procs").with_extension("d");
    let (_relay_a, ra) = procs::relay("127.0.0.1:0", &dir.join("relay-a"));
    let (_relay_b, rb) = procs::relay("127.0.0.1:0", &dir.join("relay-b"));
    let (_pa, addr_a) = procs::agent("alice", &ra, &dir.join("alice.db"));
    let (_pb, addr_b) = procs::agent("bob", &rb, &dir.join("bob.db"));
    let (_pc, addr_c) = procs::agent("carol", &ra, &dir.join("carol.db"));
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    let mut c = Client::connect(&addr_c, "carol").await;
    flows::every_group_flow(&mut a, &mut b, &mut c).await;
}
