//! `NetworkRelay` keeps the order the handshake depends on: the joiner secures
//! its reply queue (`KEY`) and sends its confirmation in one step, and the
//! inviter answers with `HELLO` signed with the key the joiner's `KEY` sets.
//! If `HELLO` reached the relay before that `KEY`, the relay would refuse it
//! (`AUTH`) and the inviter would take the joiner for gone. Here the joiner's
//! connection to its relay is slow (every block from it is held back), so
//! `KEY` is late unless the confirmation waits for its answer.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, flows, serve_network_agent, temp_db, tls_relay};
use smp_groups_relay::relay_address;
use smp_groups_wire::client::AgentEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` on a loopback port; the first connection through
/// it has every chunk from its client held back for `delay`, the later ones
/// pass at once.
async fn slow_first_connection(upstream: SocketAddr, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut delay = delay;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::spawn(pipe(client, server, delay));
            delay = Duration::ZERO;
        }
    });
    port
}

async fn pipe(client: TcpStream, server: TcpStream, delay: Duration) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tokio::time::sleep(delay).await;
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_key_does_not_lose_the_joiner() {
    let (relay_x, _) = tls_relay("order-x").await;
    let (relay_y, _) = tls_relay("order-y").await;
    // Bob reaches relay Y through the proxy, and is the first to: his
    // commands to Y (his queue, its KEY) are each 300 ms late. Alice reaches
    // Y through the proxy too, without delay.
    let port = slow_first_connection(relay_y.local_addr(), Duration::from_millis(300)).await;
    let y = relay_address(relay_y.key_hash(), "127.0.0.1", port);
    let (_a, addr_a) =
        serve_network_agent("alice", &relay_x.address(), Some(temp_db("order-alice"))).await;
    let (_b, addr_b) = serve_network_agent("bob", &y, Some(temp_db("order-bob"))).await;
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;

    // Both directions work: neither side took the other for gone.
    message(&mut a, &mut b, "bob", "alice", "to bob").await;
    message(&mut b, &mut a, "alice", "bob", "to alice").await;
}

/// `from` sends `body` on `C:{alias_from}`; `to` gets it on `C:{alias_to}`.
async fn message(from: &mut Client, to: &mut Client, alias_from: &str, alias_to: &str, body: &str) {
    let r = from
        .call("s", &format!("C:{alias_from} SEND :{body}"))
        .await;
    assert!(matches!(r, AgentEvent::Sent { .. }), "{r:?}");
    to.wait(|t| {
        matches!(&t.msg, AgentEvent::Msg { conn, body: got, .. }
            if conn.as_str() == alias_to && got == body.as_bytes())
        .then_some(())
    })
    .await;
}
