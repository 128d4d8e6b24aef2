//! End to end over the client text protocol: agents on two relays in this process,
//! each served on a loopback TCP port, driven by text lines.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::{Client, RELAY_A, RELAY_B, flows, relays, serve_agent};
use smp_groups_wire::client::{AgentEvent, ErrorCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_flow_over_the_text_protocol() {
    let relays = relays().await;
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
    let relays = relays().await;
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

    let relays = relays().await;
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

/// The rows of a status answer, as `key=value` text per row.
fn rows(e: &AgentEvent) -> Vec<smp_groups_wire::client::Row> {
    match e {
        AgentEvent::Rows { rows, .. } => rows.clone(),
        other => panic!("not rows: {other:?}"),
    }
}

/// Sends a query and prints the exchange as it went over the wire (with
/// `--nocapture`; docs/protocol-client.md's transcripts are replayed by
/// `tests/client_doc_replay.rs`).
async fn ask(x: &mut Client, corr: &str, rest: &str) -> AgentEvent {
    let e = x.call(corr, rest).await;
    let t = smp_groups_wire::client::Transmission::new(
        smp_groups_wire::client::CorrId::new(corr).unwrap(),
        e.clone(),
    );
    println!("> {corr} {rest}");
    for l in String::from_utf8_lossy(&t.to_bytes()).split("\r\n") {
        if !l.is_empty() {
            println!("< {l}");
        }
    }
    e
}

/// The status queries over TCP: groups, connections, members as they join
/// and leave, a send awaiting receipts until each member acknowledged it, a
/// `CHECK` recorded by a peer, a pending invitation; errors for a bad group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_queries_over_the_text_protocol() {
    let relays = relays().await;
    let (_agent_a, addr_a) = serve_agent(&relays, "alice", RELAY_A).await;
    let (_agent_b, addr_b) = serve_agent(&relays, "bob", RELAY_B).await;
    let (_agent_c, addr_c) = serve_agent(&relays, "carol", RELAY_A).await;
    let mut a = Client::connect(&addr_a, "alice").await;
    let mut b = Client::connect(&addr_b, "bob").await;
    let mut c = Client::connect(&addr_c, "carol").await;
    assert!(matches!(
        a.call("n", "G:club NEW :Book club").await,
        AgentEvent::Ok { .. }
    ));
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    flows::connect(&mut a, &mut c, "carol", "alice").await;
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    flows::invite(&mut a, &mut c, "carol", "alice", "club", "reads").await;

    let g = rows(&ask(&mut a, "1", "G: LIST").await);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].get("group"), Some("G:club"));
    assert_eq!(g[0].get("members"), Some("2"));
    assert_eq!(g[0].get("connected"), Some("2"));
    assert_eq!(g[0].get("state"), Some("active"));
    let conns = rows(&ask(&mut a, "2", "C: LIST").await);
    assert_eq!(
        conns.iter().map(|r| r.get("conn")).collect::<Vec<_>>(),
        vec![Some("C:bob"), Some("C:carol")]
    );
    assert!(conns.iter().all(|r| r.get("state") == Some("ready")));
    assert_eq!(conns[0].get("peer_relay"), Some(RELAY_B));
    let members = rows(&ask(&mut a, "3", "G:club MEMBERS").await);
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|r| r.get("state") == Some("full")));
    let b_id = members
        .iter()
        .find(|r| r.get("peer_relay") == Some(RELAY_B))
        .and_then(|r| r.get("member"))
        .unwrap()
        .to_owned();

    // A send awaits both receipts until each member acknowledged it.
    let from_b = b.seen.len();
    let from_c = c.seen.len();
    assert!(matches!(
        a.call("4", "G:club SEND :hello").await,
        AgentEvent::GroupSent { .. }
    ));
    let msg_of = |name: &'static str| {
        move |t: &smp_groups_wire::client::Transmission<AgentEvent>| match &t.msg {
            AgentEvent::GroupMsg { group, msg_id, .. } if group.as_str() == name => Some(*msg_id),
            _ => None,
        }
    };
    let mb = b.wait_from(from_b, msg_of("books")).await;
    let mc = c.wait_from(from_c, msg_of("reads")).await;
    let st = rows(&ask(&mut a, "5", "G:club STATUS").await);
    assert_eq!(st[0].get("sent"), Some("1"));
    assert_eq!(st[0].get("sends"), Some("1"));
    let waits = |st: &[smp_groups_wire::client::Row]| {
        st.iter()
            .filter(|r| r.get("wait") == Some("receipt"))
            .count()
    };
    assert_eq!(waits(&st), 2);
    let from_a = a.seen.len();
    b.line(&format!("a1 G:books ACK {mb}")).await;
    a.wait_from(from_a, |t| {
        matches!(&t.msg, AgentEvent::GroupRcvd { member: Some(m), .. } if m.as_str() == &b_id[2..])
            .then_some(())
    })
    .await;
    let st = rows(&ask(&mut a, "6", "G:club STATUS").await);
    assert_eq!(waits(&st), 1);
    assert!(
        !st.iter()
            .any(|r| r.get("member") == Some(&b_id) && r.get("wait").is_some())
    );
    c.line(&format!("a2 G:reads ACK {mc}")).await;
    a.wait_from(from_a, |t| {
        matches!(&t.msg, AgentEvent::GroupRcvd { member: None, .. }).then_some(())
    })
    .await;
    let st = rows(&ask(&mut a, "7", "G:club STATUS").await);
    assert_eq!(st[0].get("sends"), Some("0"));
    assert_eq!(waits(&st), 0);

    // CHECK: bob records alice's check.
    let alice_on_b = {
        let m = rows(&b.call("8", "G:books MEMBERS").await);
        let me = rows(&a.call("9", "G: LIST").await)[0]
            .get("me")
            .unwrap()
            .to_owned();
        assert!(m.iter().any(|r| r.get("member") == Some(&me)));
        assert_eq!(
            m.iter()
                .find(|r| r.get("member") == Some(&me))
                .and_then(|r| r.get("rcvd")),
            Some("1")
        );
        me
    };
    assert!(matches!(
        ask(&mut a, "10", "G:club CHECK").await,
        AgentEvent::Ok { .. }
    ));
    let mut n = 0;
    loop {
        n += 1;
        let st = rows(&b.call(&format!("s{n}"), "G:books STATUS").await);
        let got = st
            .iter()
            .find(|r| r.get("member") == Some(&alice_on_b))
            .and_then(|r| r.get("check_rcvd"))
            .unwrap()
            .to_owned();
        if got != "0" {
            ask(&mut b, "11", "G:books STATUS").await;
            break;
        }
        assert!(n < 100, "bob never recorded alice's check");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A pending invitation.
    assert!(matches!(
        a.call("12", "G:two NEW :Second").await,
        AgentEvent::Ok { .. }
    ));
    let from_b = b.seen.len();
    assert!(matches!(
        a.call("13", "C:bob INTRO G:two :Second").await,
        AgentEvent::Ok { .. }
    ));
    let inv = b
        .wait_from(from_b, |t| match &t.msg {
            AgentEvent::Req { invitation, .. } => Some(invitation.as_str().to_owned()),
            _ => None,
        })
        .await;
    let p = rows(&ask(&mut b, "14", "G: PENDING").await);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].get("invitation"), Some(format!("g:{inv}").as_str()));
    assert_eq!(p[0].get("conn"), Some("C:alice"));

    // Carol leaves: alice lists her as left.
    let from_a = a.seen.len();
    assert!(matches!(
        c.call("15", "G:reads LEAVE").await,
        AgentEvent::Ok { .. }
    ));
    a.wait_from(from_a, |t| {
        matches!(
            &t.msg,
            AgentEvent::Left {
                member: Some(_),
                ..
            }
        )
        .then_some(())
    })
    .await;
    let members = rows(&ask(&mut a, "16", "G:club MEMBERS").await);
    assert_eq!(
        members
            .iter()
            .filter(|r| r.get("state") == Some("left"))
            .count(),
        1
    );
    let g = rows(&ask(&mut a, "17", "G: LIST").await);
    assert_eq!(g[0].get("connected"), Some("1"));

    // Errors.
    let e = ask(&mut a, "18", "G:nope MEMBERS").await;
    assert!(
        matches!(
            e,
            AgentEvent::Error {
                code: ErrorCode::UnknownEntity,
                ..
            }
        ),
        "{e:?}"
    );
    let e = ask(&mut a, "19", "G:club LIST").await;
    assert!(
        matches!(
            e,
            AgentEvent::Error {
                code: ErrorCode::Syntax,
                ..
            }
        ),
        "{e:?}"
    );
}
