//! End to end over the client text protocol: agents on two in-process relays,
//! each served on a loopback TCP port, driven by text lines.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::{Client, RELAY_A, RELAY_B, relays, serve_agent};
use smp_groups_wire::client::{AgentEvent, ErrorCode, RcvdStatus};

/// A visible connection: `a` invites with `C:{ab} NEW`, `b` joins as `C:{ba}`.
async fn connect(a: &mut Client, b: &mut Client, ab: &str, ba: &str) {
    assert_eq!(
        a.call("c1", &format!("C:{ab} NEW")).await.to_string_lossy(),
        format!("C:{ab} OK")
    );
    let inv = a
        .wait(|t| match &t.msg {
            AgentEvent::Inv { conn, invitation } if conn.as_str() == ab => {
                Some(invitation.as_str().to_owned())
            }
            _ => None,
        })
        .await;
    let r = b.call("c2", &format!("C:{ba} JOIN {inv}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    a.wait(|t| matches!(&t.msg, AgentEvent::Con { conn } if conn.as_str() == ab).then_some(()))
        .await;
    b.wait(|t| matches!(&t.msg, AgentEvent::Con { conn } if conn.as_str() == ba).then_some(()))
        .await;
}

/// `a` invites the peer of `C:{ab}` to `G:{group}`; `b` joins it as `G:{alias}`.
async fn invite(a: &mut Client, b: &mut Client, ab: &str, ba: &str, group: &str, alias: &str) {
    let from = b.seen.len();
    let r = a
        .call("i1", &format!("C:{ab} INTRO G:{group} :{group} info"))
        .await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let inv = b
        .wait_from(from, |t| match &t.msg {
            AgentEvent::Req {
                conn,
                invitation,
                info,
            } if conn.as_str() == ba => {
                assert_eq!(info, format!("{group} info").as_bytes());
                Some(invitation.as_str().to_owned())
            }
            _ => None,
        })
        .await;
    let r = b.call("i2", &format!("G:{alias} JOIN g:{inv}")).await;
    assert!(
        matches!(&r, AgentEvent::Ok { entity } if entity.to_string() == format!("G:{alias}")),
        "{r:?}"
    );
    b.wait_from(from, |t| {
        matches!(&t.msg, AgentEvent::GroupMem { group, member: None } if group.as_str() == alias)
            .then_some(())
    })
    .await;
}

trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl Lossy for AgentEvent {
    fn to_string_lossy(&self) -> String {
        let t = smp_groups_wire::client::Transmission::new(
            smp_groups_wire::client::CorrId::empty(),
            self.clone(),
        );
        String::from_utf8_lossy(&t.to_bytes()).trim().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_flow_over_the_text_protocol() {
    let relays = relays();
    let (agent_a, addr_a) = serve_agent(&relays, "alice", RELAY_A).await;
    let (agent_b, addr_b) = serve_agent(&relays, "bob", RELAY_B).await;
    let (agent_c, addr_c) = serve_agent(&relays, "carol", RELAY_A).await;
    let mut a = Client::connect(addr_a, "alice").await;
    let mut b = Client::connect(addr_b, "bob").await;
    let mut c = Client::connect(addr_c, "carol").await;

    connect(&mut a, &mut b, "bob", "alice").await;
    connect(&mut a, &mut c, "carol", "alice").await;

    // A pairwise message, acknowledged.
    let r = a.call("p1", "C:bob SEND :hi bob").await;
    let AgentEvent::Sent { msg_id: pid, .. } = r else {
        panic!("{r:?}")
    };
    let got = b
        .wait(|t| match &t.msg {
            AgentEvent::Msg { conn, msg_id, body } if conn.as_str() == "alice" => {
                Some((*msg_id, body.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(got.1, b"hi bob");
    assert!(matches!(
        b.call("p2", &format!("C:alice ACK {}", got.0)).await,
        AgentEvent::Ok { .. }
    ));
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Rcvd { msg_id, status: RcvdStatus::Ok, .. } if *msg_id == pid)
            .then_some(())
    })
    .await;

    // Create, invite (across relays), join.
    let r = a.call("g1", "G:club NEW :Book club").await;
    assert_eq!(r.to_string_lossy(), "G:club OK");
    invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    invite(&mut a, &mut c, "carol", "alice", "club", "team").await;
    let id_a = agent_a
        .member_id("club")
        .await
        .unwrap()
        .unwrap()
        .to_base64url();
    let id_b = agent_b
        .member_id("books")
        .await
        .unwrap()
        .unwrap()
        .to_base64url();
    let id_c = agent_c
        .member_id("team")
        .await
        .unwrap()
        .unwrap()
        .to_base64url();
    for id in [&id_b, &id_c] {
        a.wait(|t| matches!(&t.msg, AgentEvent::GroupMem { member: Some(m), .. } if m.as_str() == id.as_str()).then_some(()))
            .await;
    }
    // b and c are connected to each other through the introduction.
    b.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupCon { member, .. } if member.as_str() == id_c)
            .then_some(())
    })
    .await;

    // Send: per-member and all-member SENT, MSG, ACK, per-member and all RCVD.
    let r = a.call("s1", "G:club SEND :first message").await;
    let AgentEvent::GroupSent { msg_id: mid, .. } = r else {
        panic!("{r:?}")
    };
    for (client, group) in [(&mut b, "books"), (&mut c, "team")] {
        let id = client
            .wait(|t| match &t.msg {
                AgentEvent::GroupMsg {
                    group: g,
                    member,
                    msg_id,
                    body,
                } if g.as_str() == group && member.as_str() == id_a => {
                    assert_eq!(body, b"first message");
                    Some(*msg_id)
                }
                _ => None,
            })
            .await;
        let r = client.call("s2", &format!("G:{group} ACK {id}")).await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    }
    for id in [&id_b, &id_c] {
        a.wait(|t| matches!(&t.msg, AgentEvent::GroupSentTo { member, msg_id, .. } if member.as_str() == id.as_str() && *msg_id == mid).then_some(()))
            .await;
        a.wait(|t| matches!(&t.msg, AgentEvent::GroupRcvd { member: Some(m), msg_id, status: RcvdStatus::Ok, .. } if m.as_str() == id.as_str() && *msg_id == mid).then_some(()))
            .await;
    }
    a.wait(|t| {
        (t.corr_id.is_empty()
            && matches!(&t.msg, AgentEvent::GroupSent { msg_id, .. } if *msg_id == mid))
        .then_some(())
    })
    .await;
    a.wait(|t| matches!(&t.msg, AgentEvent::GroupRcvd { member: None, msg_id, status: RcvdStatus::Ok, .. } if *msg_id == mid).then_some(()))
        .await;

    // Remove: REMD for the remover (once confirmed) and the others, OUT for the removed.
    let r = a.call("r1", &format!("G:club REM C:{id_c}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Removed { member, by: None, .. } if member.as_str() == id_c)
            .then_some(())
    })
    .await;
    c.wait(|t| matches!(&t.msg, AgentEvent::Out { by, .. } if by.as_str() == id_a).then_some(()))
        .await;
    b.wait(|t| {
        matches!(&t.msg, AgentEvent::Removed { member, by: Some(by), .. } if member.as_str() == id_c && by.as_str() == id_a)
            .then_some(())
    })
    .await;

    // Leave: the leaver and the remaining member learn it.
    let r = b.call("l1", "G:books LEAVE").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    b.wait(|t| matches!(&t.msg, AgentEvent::Left { member: None, .. }).then_some(()))
        .await;
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Left { member: Some(m), .. } if m.as_str() == id_b)
            .then_some(())
    })
    .await;
    // The last other member is gone: EMPTY.
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Empty { group } if group.as_str() == "club").then_some(())
    })
    .await;

    // Delete: a second group with bob.
    assert_eq!(
        a.call("d0", "G:two NEW :second").await.to_string_lossy(),
        "G:two OK"
    );
    invite(&mut a, &mut b, "bob", "alice", "two", "pair").await;
    let r = a.call("d1", "G:two DEL").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    b.wait(|t| matches!(&t.msg, AgentEvent::Deleted { group, by: Some(m) } if group.as_str() == "pair" && m.as_str() != "").then_some(()))
        .await;
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Deleted { group, by: None } if group.as_str() == "two")
            .then_some(())
    })
    .await;

    // Each event reached the client once.
    assert_eq!(b.count(|e| matches!(e, AgentEvent::GroupMsg { .. })), 1);
    assert_eq!(c.count(|e| matches!(e, AgentEvent::GroupMsg { .. })), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_errors_and_the_session_goes_on() {
    let relays = relays();
    let (_agent, addr) = serve_agent(&relays, "dave", RELAY_A).await;
    let mut x = Client::connect(addr, "x").await;
    let mut y = Client::connect(addr, "y").await;

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
