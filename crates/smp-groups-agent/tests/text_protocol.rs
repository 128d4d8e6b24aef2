//! End to end over the client text protocol: agents on two in-process relays,
//! each served on a loopback TCP port, driven by text lines.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::{Client, RELAY_A, RELAY_B, flows, relays, serve_agent};
use smp_groups_wire::client::{AgentEvent, ErrorCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_flow_over_the_text_protocol() {
    let relays = relays();
    let (_agent_a, addr_a) = serve_agent(&relays, "alice", RELAY_A).await;
    let (_agent_b, addr_b) = serve_agent(&relays, "bob", RELAY_B).await;
    let (_agent_c, addr_c) = serve_agent(&relays, "carol", RELAY_A).await;
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    let mut c = Client::connect(&addr_c, "carol").await;
    flows::every_group_flow(&mut a, &mut b, &mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_errors_and_the_session_goes_on() {
    let relays = relays();
    let (_agent, addr) = serve_agent(&relays, "dave", RELAY_A).await;
    let mut x = Client::connect(&addr, "x").await;
    let mut y = Client::connect(&addr, "y").await;

    let code = |e: &AgentEvent| match e {
        AgentEvent::Error { code, .. } => Some(*code),
        _ => None,
    };
    assert_eq!(
        code(&x.call("1", "C:a FLY").await),
        Some(ErrorCode::UnknownCommand)
    );
    assert_eq!(
        code(&x.call("2", "C:zed SEND :hi").await),
        Some(ErrorCode::UnknownEntity)
    );
    assert_eq!(
        code(&x.call("3", "G:nope SEND :hi").await),
        Some(ErrorCode::UnknownEntity)
    );
    assert_eq!(
        code(&x.call("4", "G:nope REM C:notamember").await),
        Some(ErrorCode::UnknownEntity)
    );
    assert_eq!(
        code(&x.call("5", "C:a ACK 007").await),
        Some(ErrorCode::Syntax)
    );

    // A payload over the limit, announced and sent: LARGE, bytes skipped.
    let from = x.seen.len();
    let mut big = b"6 G:nope SEND 2000000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2_000_000));
    big.extend_from_slice(b"\r\n");
    x.send_raw(&big).await;
    let e = x
        .wait_from(from, |t| (t.corr_id.as_str() == "6").then(|| t.msg.clone()))
        .await;
    assert_eq!(code(&e), Some(ErrorCode::Large));

    // Binary garbage, then a bare LF.
    let from = x.seen.len();
    x.send_raw(&[0xff, 0x00, 0x01, 0x80, b' ', 0xfe, b'\r', b'\n'])
        .await;
    x.send_raw(b"7 C: NEW\n").await;
    let mut errors = Vec::new();
    while errors.len() < 2 {
        let at = from + errors.len();
        let e = x.wait_from(at, |t| Some(t.clone())).await;
        errors.push(e);
    }
    assert!(
        matches!(
            errors[0].msg,
            AgentEvent::Error {
                code: ErrorCode::Syntax | ErrorCode::UnknownCommand,
                ..
            }
        ),
        "{errors:?}"
    );
    assert!(
        matches!(
            errors[1].msg,
            AgentEvent::Error {
                code: ErrorCode::Syntax,
                ..
            }
        ),
        "{errors:?}"
    );

    // Both sessions still work, at the same time.
    let (rx, ry) = tokio::join!(
        x.call("8", "G:fine NEW :ok"),
        y.call("9", "G: NEW :generated")
    );
    assert!(
        matches!(&rx, AgentEvent::Ok { entity } if entity.to_string() == "G:fine"),
        "{rx:?}"
    );
    assert!(
        matches!(&ry, AgentEvent::Ok { entity } if entity.to_string().len() > 2),
        "{ry:?}"
    );
    assert_eq!(
        code(&x.call("10", "G:fine NEW :again").await),
        Some(ErrorCode::Duplicate)
    );
}

/// A peer that deleted the connection: the next send is refused by the relay,
/// and the client gets `FAULT peer peer_queue_gone` on it; the refusal is
/// counted in the agent's metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_peer_is_reported_as_a_fault() {
    use smp_groups_core::{FaultKind, FaultSource};
    use smp_groups_wire::client::{FaultKind as Kind, FaultSource as Source};

    let relays = relays();
    let (agent_a, addr_a) = serve_agent(&relays, "alice", RELAY_A).await;
    let (_agent_b, addr_b) = serve_agent(&relays, "bob", RELAY_B).await;
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    assert!(matches!(
        b.call("d1", "C:alice DEL").await,
        AgentEvent::Ok { .. }
    ));
    // Bob's queue is deleted once his `DEL` is done; until then a send may
    // still go through. Send until the fault comes.
    let from = a.seen.len();
    let mut n = 0;
    let fault = loop {
        n += 1;
        let r = a.call(&format!("s{n}"), "C:bob SEND :anyone?").await;
        assert!(matches!(r, AgentEvent::Sent { .. }), "{r:?}");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        a.pump_until(deadline).await;
        let found = a.seen[from..].iter().find_map(|t| match &t.msg {
            AgentEvent::Fault { conn, source, kind } if conn.as_str() == "bob" => {
                Some((*source, *kind))
            }
            _ => None,
        });
        if let Some(f) = found {
            break f;
        }
        assert!(n < 20, "no FAULT; seen {:#?}", &a.seen[from..]);
    };
    assert_eq!(fault, (Source::Peer, Kind::PeerQueueGone));
    let m = agent_a.metrics().await.unwrap();
    assert_eq!(
        m.refusals.get(FaultSource::Peer, FaultKind::PeerQueueGone),
        1,
        "{}",
        m.refusals
    );
}
