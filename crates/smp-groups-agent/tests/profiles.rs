//! Group information and member profiles over the client text protocol:
//! `G:g INFO` and `G:g PROFILE` commands, the `INFO` and `PROFILE` events
//! they cause on the other members, byte for byte as written in
//! docs/protocol-client.md, and the `profile=` field of `MEMBERS` rows; a
//! member added afterwards gets the current values. Three agents on two
//! relays in this process, each served on a loopback TCP port.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Client, RELAY_A, RELAY_B, flows, relays, serve_agent};
use smp_groups_wire::client::{AgentEvent, Transmission};

/// The bytes of a received transmission, as the agent wrote them.
fn bytes(t: &Transmission<AgentEvent>) -> String {
    String::from_utf8(Transmission::new(t.corr_id.clone(), t.msg.clone()).to_bytes()).unwrap()
}

/// The first `INFO` or `PROFILE` event of group `group` from `from` on.
async fn wait_event(x: &mut Client, from: usize, word: &'static str, group: &str) -> String {
    let group = group.to_owned();
    x.wait_from(from, move |t| {
        let hit = match &t.msg {
            AgentEvent::GroupInfo { group: g, .. } => word == "INFO" && g.as_str() == group,
            AgentEvent::Profile { group: g, .. } => word == "PROFILE" && g.as_str() == group,
            _ => false,
        };
        hit.then(|| bytes(t))
    })
    .await
}

fn rows(e: &AgentEvent) -> Vec<smp_groups_wire::client::Row> {
    match e {
        AgentEvent::Rows { rows, .. } => rows.clone(),
        other => panic!("not rows: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_profiles_over_the_text_protocol() {
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
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;

    // The member ids, as MEMBERS names them.
    let alice_id = rows(&b.call("m0", "G:books MEMBERS").await)[0]
        .get("member")
        .unwrap()
        .to_owned();
    let members = rows(&a.call("m1", "G:club MEMBERS").await);
    let bob_id = members[0].get("member").unwrap().to_owned();
    assert_eq!(members[0].get("profile"), None, "no profile yet");

    // Alice changes the group information: Bob is told who set it.
    let from_b = b.seen.len();
    let r = a.call("20", "G:club INFO :Book club, Tuesdays").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let line = wait_event(&mut b, from_b, "INFO", "books").await;
    assert_eq!(
        line,
        format!(" G:books INFO {alice_id} :Book club, Tuesdays\r\n")
    );

    // Bob sets his profile: Alice is told, and MEMBERS shows it.
    let from_a = a.seen.len();
    let r = b.call("21", "G:books PROFILE :Bob B.").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let line = wait_event(&mut a, from_a, "PROFILE", "club").await;
    assert_eq!(line, format!(" G:club PROFILE {bob_id} :Bob B.\r\n"));
    let members = rows(&a.call("m2", "G:club MEMBERS").await);
    assert_eq!(
        members[0].get("profile"),
        Some(smp_groups_wire::base64url::encode_unpadded(b"Bob B.").as_str())
    );

    // A profile over several lines goes in the length form.
    let from_a = a.seen.len();
    b.send_raw(b"22 G:books PROFILE 5\r\nBo\r\nb\r\n").await;
    let line = wait_event(&mut a, from_a, "PROFILE", "club").await;
    assert_eq!(line, format!(" G:club PROFILE {bob_id} 5\r\nBo\r\nb\r\n"));

    // Carol joins afterwards (her invitation carries the old information):
    // she gets the current one and Bob's profile, reported with his CON.
    flows::connect(&mut a, &mut c, "carol", "alice").await;
    let from_c = c.seen.len();
    flows::invite(&mut a, &mut c, "carol", "alice", "club", "reads").await;
    let line = wait_event(&mut c, from_c, "INFO", "reads").await;
    assert_eq!(
        line,
        format!(" G:reads INFO {alice_id} :Book club, Tuesdays\r\n")
    );
    let line = wait_event(&mut c, from_c, "PROFILE", "reads").await;
    assert_eq!(line, format!(" G:reads PROFILE {bob_id} 5\r\nBo\r\nb\r\n"));

    // Errors: too long, unknown group.
    let long = "x".repeat(4097);
    let r = a.call("23", &format!("G:club PROFILE :{long}")).await;
    assert!(
        matches!(&r, AgentEvent::Error { code, .. } if *code == smp_groups_wire::client::ErrorCode::Large),
        "{r:?}"
    );
    let r = a.call("24", "G:nope INFO :x").await;
    assert!(
        matches!(&r, AgentEvent::Error { code, .. } if *code == smp_groups_wire::client::ErrorCode::UnknownEntity),
        "{r:?}"
    );
}
