//! `serve --open-invitations --approval-threshold 1`: an add through an open
//! invitation is approved over the client text protocol, as an `INTRO` is.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use std::time::Duration;

use common::{Client, flows, procs, temp_db};
use smp_groups_wire::client::{AgentEvent, Approval};

/// Alice creates the group and adds bob; she hands bob an open invitation
/// (`OINV`). Bob adds carol: carol joins alice's open invitation (no
/// `INTRO` to alice), and alice, above her threshold, is asked (`APPROVE n
/// ADD`, listed by `G: PENDING`) before anything reaches her from carol;
/// carol's join waits until alice answers `ALLOW`, then completes, and
/// carol's message reaches alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_through_an_open_invitation_is_approved_over_tcp() {
    let db = temp_db("open-approval");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let open = ["--open-invitations"];
    let (_pa, a_ep) = procs::agent_with(
        "alice",
        &relay,
        &db.with_file_name("alice.db"),
        None,
        &["--open-invitations", "--approval-threshold", "1"],
    );
    let (_pb, b_ep) = procs::agent_with("bob", &relay, &db.with_file_name("bob.db"), None, &open);
    let (_pc, c_ep) =
        procs::agent_with("carol", &relay, &db.with_file_name("carol.db"), None, &open);
    let mut a = Client::connect(&a_ep, "alice").await;
    let mut b = Client::connect(&b_ep, "bob").await;
    let mut c = Client::connect(&c_ep, "carol").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    let r = a.call("g1", "G:club NEW :Book club").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    // Alice's open invitation for bob goes once its queue exists, on the
    // connection her messages take: a message sent after it reaches bob
    // after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = a.call("g2", "G:club SEND :welcome").await;
    assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
    b.wait(|t| match &t.msg {
        AgentEvent::GroupMsg { group, body, .. } if group.as_str() == "books" => {
            (body == b"welcome").then_some(())
        }
        _ => None,
    })
    .await;

    flows::connect(&mut b, &mut c, "carol", "bob").await;
    let r = b.call("b1", "C:carol INTRO G:books :books info").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let inv = c
        .wait(|t| match &t.msg {
            AgentEvent::Req { invitation, .. } => Some(invitation.as_str().to_owned()),
            _ => None,
        })
        .await;
    let r = c.call("c1", &format!("G:club JOIN g:{inv}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    // Once carol knows alice as well as bob (bob forwarded alice's open
    // invitation), she sends while her join waits: the message goes to
    // alice once connected.
    let mut tries = 0;
    loop {
        let rows = match c.call("c3", "G:club MEMBERS").await {
            AgentEvent::Rows { rows, .. } => rows,
            r => panic!("{r:?}"),
        };
        if rows
            .iter()
            .filter(|r| r.get("state") != Some("left"))
            .count()
            == 2
        {
            break;
        }
        tries += 1;
        assert!(tries < 100, "carol never learned of alice: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c.call("c2", "G:club SEND :hello from carol").await;
    assert!(
        matches!(r, AgentEvent::GroupSent { .. } | AgentEvent::Ok { .. }),
        "{r:?}"
    );
    let req = a
        .wait(|t| match &t.msg {
            AgentEvent::Approve {
                group,
                req_id,
                change: Approval::Add { .. },
            } if group.as_str() == "club" => Some(*req_id),
            _ => None,
        })
        .await;
    let rows = match a.call("a1", "G: PENDING").await {
        AgentEvent::Rows { rows, .. } => rows,
        r => panic!("{r:?}"),
    };
    assert!(
        rows.iter()
            .any(|r| r.get("approval") == Some(req.to_string().as_str())
                && r.get("change") == Some("add")
                && r.get("group") == Some("G:club")),
        "{rows:?}"
    );
    // Held: carol's join does not complete and nothing of hers reaches
    // alice while the add waits.
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let (ra, rc) = tokio::join!(a.pump_until(until), c.pump_until(until));
    assert!(ra && rc);
    assert_eq!(
        c.count(|e| matches!(e, AgentEvent::GroupMem { member: None, .. })),
        0,
        "carol's join completed before alice's answer"
    );
    // Alice is connected to bob only, and got no group message (bob sent
    // none).
    assert_eq!(
        (
            a.count(|e| matches!(e, AgentEvent::GroupCon { .. })),
            a.count(|e| matches!(e, AgentEvent::GroupMsg { .. }))
        ),
        (1, 0),
        "alice heard from carol before her answer: {:#?}",
        a.seen
    );

    let r = a.call("a2", &format!("G:club ALLOW {req}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    c.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupMem { group, member: None } if group.as_str() == "club")
            .then_some(())
    })
    .await;
    a.wait(|t| match &t.msg {
        AgentEvent::GroupMsg { group, body, .. } if group.as_str() == "club" => {
            (body == b"hello from carol").then_some(())
        }
        _ => None,
    })
    .await;
    let rows = match a.call("a3", "G: PENDING").await {
        AgentEvent::Rows { rows, .. } => rows,
        r => panic!("{r:?}"),
    };
    assert!(rows.iter().all(|r| r.get("approval").is_none()), "{rows:?}");
    for (who, client) in [("bob", &b), ("carol", &c)] {
        assert_eq!(
            client.count(|e| matches!(e, AgentEvent::Approve { .. })),
            0,
            "{who} was asked"
        );
    }
}
