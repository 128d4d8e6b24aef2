//! The `smp-agent` binary: `serve` answers the text protocol, and its state
//! survives `kill -9` (the database is the only thing kept).
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::{Client, procs, temp_db};
use smp_groups_wire::client::{AgentEvent, ErrorCode};

fn serve(db: &std::path::Path, relay: &str) -> (procs::Proc, common::Endpoint) {
    procs::agent("agent", relay, db)
}

/// `r` refuses to create something again: it survived the restart.
fn assert_survived(r: &AgentEvent, what: &str) {
    assert!(
        matches!(
            r,
            AgentEvent::Error {
                code: ErrorCode::Duplicate,
                ..
            }
        ),
        "{what} survived: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_its_state_across_kill_9() {
    let db = temp_db("served");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let (mut child, addr) = serve(&db, &relay);
    let mut c = Client::connect(&addr, "client").await;
    let r = c.call("1", "G:club NEW :Book club").await;
    assert!(
        matches!(&r, AgentEvent::Ok { entity } if entity.to_string() == "G:club"),
        "{r:?}"
    );
    let r = c.call("2", "C:a NEW").await;
    assert!(matches!(&r, AgentEvent::Ok { .. }), "{r:?}");
    let r = c.call("3", "G:club SEND :alone").await;
    assert!(matches!(&r, AgentEvent::GroupSent { .. }), "{r:?}");
    let r = c.call("4", "X:bad NEW").await;
    assert!(matches!(&r, AgentEvent::Error { .. }), "{r:?}");

    // SIGKILL: nothing but what was committed survives.
    child.kill9();

    let (mut child, addr) = serve(&db, &relay);
    let mut c = Client::connect(&addr, "client").await;
    let r = c.call("5", "G:club NEW :again").await;
    assert_survived(&r, "the group");
    let r = c.call("6", "C:a NEW").await;
    assert_survived(&r, "the connection");
    let r = c.call("7", "G:club SEND :still here").await;
    assert!(matches!(&r, AgentEvent::GroupSent { .. }), "{r:?}");
    child.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_cleanly_on_sigterm() {
    let db = temp_db("sigterm");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let (mut p, addr) = serve(&db, &relay);
    let mut c = Client::connect(&addr, "client").await;
    let r = c.call("1", "G:club NEW :Book club").await;
    assert!(matches!(&r, AgentEvent::Ok { .. }), "{r:?}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = p.child.wait().unwrap();
    assert!(exit.success(), "smp-agent exited with {exit}");
    let (_p, addr) = serve(&db, &relay);
    let mut c = Client::connect(&addr, "client").await;
    let r = c.call("2", "G:club NEW :again").await;
    assert_survived(&r, "the group");
}

/// `serve --approval-threshold 1`: alice (the creator) is asked before bob's
/// addition of carol takes effect for her, over TCP (`APPROVE`, `ALLOW`);
/// carol's join then completes. Bob and carol run with the default
/// threshold and are asked nothing. Then bob removes carol: alice is asked
/// (`APPROVE n REM`), refuses (`DENY`) and keeps carol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_the_approval_threshold_from_its_command_line() {
    use common::flows;
    use smp_groups_wire::client::Approval;
    let db = temp_db("policy");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let (_pa, a_ep) = procs::agent_with(
        "alice",
        &relay,
        &db.with_file_name("alice.db"),
        None,
        &["--approval-threshold", "1"],
    );
    let (_pb, b_ep) = procs::agent("bob", &relay, &db.with_file_name("bob.db"));
    let (_pc, c_ep) = procs::agent("carol", &relay, &db.with_file_name("carol.db"));
    let mut a = Client::connect(&a_ep, "alice").await;
    let mut b = Client::connect(&b_ep, "bob").await;
    let mut c = Client::connect(&c_ep, "carol").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    let r = a.call("g1", "G:club NEW :Book club").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
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
    // Alice's events from here on: carol's `MEM` is the first member one.
    let mark = a.seen.len();
    let r = a.call("a1", &format!("G:club ALLOW {req}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    c.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupMem { group, member: None } if group.as_str() == "club")
            .then_some(())
    })
    .await;
    for (who, client) in [("bob", &b), ("carol", &c)] {
        assert_eq!(
            client.count(|e| matches!(e, AgentEvent::Approve { .. })),
            0,
            "{who} was asked"
        );
    }

    // Bob removes carol; alice is asked again (`APPROVE n REM`) and refuses
    // (`DENY`): she keeps carol, and her client never hears `REMD`.
    // Bob's first `CON` in his group is alice (he joined through her).
    let con = |not: Option<String>| {
        move |t: &smp_groups_wire::client::Transmission<AgentEvent>| match &t.msg {
            AgentEvent::GroupCon { group, member }
                if group.as_str() == "books" && Some(member.as_str()) != not.as_deref() =>
            {
                Some(member.as_str().to_owned())
            }
            _ => None,
        }
    };
    let alice_at_bob = b.wait(con(None)).await;
    let carol_at_bob = b.wait(con(Some(alice_at_bob))).await;
    let carol_at_alice = a
        .wait_from(mark, |t| match &t.msg {
            AgentEvent::GroupMem {
                group,
                member: Some(m),
            } if group.as_str() == "club" => Some(m.as_str().to_owned()),
            _ => None,
        })
        .await;
    let r = b.call("b2", &format!("G:books REM C:{carol_at_bob}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let (req, member) = a
        .wait(|t| match &t.msg {
            AgentEvent::Approve {
                group,
                req_id,
                change: Approval::Remove { member, .. },
            } if group.as_str() == "club" => Some((*req_id, member.as_str().to_owned())),
            _ => None,
        })
        .await;
    assert_eq!(member, carol_at_alice);
    let r = a.call("a2", &format!("G:club DENY {req}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    // Denying twice: the request is gone.
    let r = a.call("a3", &format!("G:club DENY {req}")).await;
    assert!(matches!(r, AgentEvent::Error { .. }), "{r:?}");
    let rows = match a.call("a4", "G:club MEMBERS").await {
        AgentEvent::Rows { rows, .. } => rows,
        r => panic!("{r:?}"),
    };
    assert!(
        rows.iter()
            .any(|r| r.get("member") == Some(format!("C:{carol_at_alice}").as_str())),
        "{rows:?}"
    );
    assert_eq!(
        a.count(|e| matches!(e, AgentEvent::Removed { .. })),
        0,
        "alice applied a removal she refused"
    );
}
