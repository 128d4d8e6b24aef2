//! The `smp-agent` binary: `serve` answers the text protocol, and its state
//! survives `kill -9` (the database is the only thing kept).
#![allow(clippy::unwrap_used, clippy::panic)]

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
