//! History for new members with real processes: an `smp-relay` and three
//! `smp-agent serve` processes over TCP. With `--history N` the member that
//! adds someone hands it the last N group messages it holds (its own and
//! the others', each signed by its sender); the new member's client sees them
//! as `MSG … history R=0,…` before its `MEM`, with their original senders,
//! ids, times and contents, and then live messages as usual. Off by default:
//! nothing is handed on. `--history-bytes` bounds what is kept in content
//! bytes (the oldest go first; a message larger than the bound is not kept).
//! A member without history sends unsigned messages: nobody hands them on.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::{Client, flows, procs, temp_db};
use smp_groups_wire::client::{AgentEvent, MsgIntegrity};

/// A group message as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// Where it is in the client's list of everything received.
    at: usize,
    sender: String,
    integrity: MsgIntegrity,
    /// The agent's id for `ACK` (`R=`).
    msg_id: u64,
    /// The sender's group-wide id (`S=`).
    snd_msg_id: u64,
    snd_ts: u64,
    body: String,
}

/// Every group message of `group` that `x` received.
fn group_msgs(x: &Client, group: &str) -> Vec<Seen> {
    x.seen
        .iter()
        .enumerate()
        .filter_map(|(at, t)| match &t.msg {
            AgentEvent::GroupMsg {
                group: g,
                member,
                msg_id,
                meta,
                body,
            } if g.as_str() == group => Some(Seen {
                at,
                sender: member.as_str().to_owned(),
                integrity: meta.integrity,
                msg_id: *msg_id,
                snd_msg_id: meta.snd_msg_id,
                snd_ts: meta.snd_ts,
                body: String::from_utf8(body.clone()).unwrap(),
            }),
            _ => None,
        })
        .collect()
}

/// Where `x` saw its own `MEM` for `group` (its join completed).
fn own_mem_at(x: &Client, group: &str) -> usize {
    x.seen
        .iter()
        .position(|t| {
            matches!(&t.msg, AgentEvent::GroupMem { group: g, member: None } if g.as_str() == group)
        })
        .unwrap_or_else(|| panic!("{}: no MEM for {group}", x.name))
}

/// The processes of one scenario, and their clients: alice created `club`,
/// bob joined it as `books`.
struct Net {
    _procs: Vec<procs::Proc>,
    a: Client,
    b: Client,
    c: Client,
}

async fn start(name: &str, flags: &[&str]) -> Net {
    start_with(name, [flags, flags, flags]).await
}

/// [`start`] with each agent's own flags (alice, bob, carol).
async fn start_with(name: &str, flags: [&[&str]; 3]) -> Net {
    let db = temp_db(name);
    let (relay_p, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let mut ps = vec![relay_p];
    let mut eps = Vec::new();
    for (who, flags) in ["alice", "bob", "carol"].into_iter().zip(flags) {
        let (p, ep) = procs::agent_with(
            who,
            &relay,
            &db.with_file_name(format!("{name}-{who}.db")),
            None,
            flags,
        );
        ps.push(p);
        eps.push(ep);
    }
    let mut a = Client::connect(&eps[0], "alice").await;
    let mut b = Client::connect(&eps[1], "bob").await;
    let c = Client::connect(&eps[2], "carol").await;
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    let r = a.call("g1", "G:club NEW :Book club").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    Net {
        _procs: ps,
        a,
        b,
        c,
    }
}

/// `from` sends `body` to its group `group`; waits until `to` received it in
/// `to_group` and acknowledges it there. Returns the message as `to` saw it.
async fn send_and_wait(
    from: &mut Client,
    group: &str,
    to: &mut Client,
    to_group: &str,
    body: &str,
) -> Seen {
    let r = from.call("s", &format!("G:{group} SEND :{body}")).await;
    assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
    let want = body.to_owned();
    let tg = to_group.to_owned();
    to.wait(move |t| {
        matches!(&t.msg, AgentEvent::GroupMsg { group: g, body: b, .. } if g.as_str() == tg && b == want.as_bytes())
            .then_some(())
    })
    .await;
    let seen = group_msgs(to, to_group)
        .into_iter()
        .find(|m| m.body == body)
        .unwrap();
    let r = to
        .call("k", &format!("G:{to_group} ACK {}", seen.msg_id))
        .await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    seen
}

/// Alice and bob alternate `bodies` (alice first), each waiting for the
/// other to receive the message; returns (sender id, extMsgId, snd_ts, body)
/// of each in order, the ids as the receiver named the sender.
async fn converse(n: &mut Net, bodies: &[&str]) -> Vec<(String, u64, u64, String)> {
    let mut out = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let m = if i % 2 == 0 {
            send_and_wait(&mut n.a, "club", &mut n.b, "books", body).await
        } else {
            send_and_wait(&mut n.b, "books", &mut n.a, "club", body).await
        };
        assert_eq!(m.integrity, MsgIntegrity::Ok, "{m:?}");
        out.push((m.sender, m.snd_msg_id, m.snd_ts, m.body));
    }
    out
}

/// Alice adds carol to `club` (carol's alias `reads`).
async fn add_carol(n: &mut Net) {
    flows::connect(&mut n.a, &mut n.c, "carol", "alice").await;
    flows::invite(&mut n.a, &mut n.c, "carol", "alice", "club", "reads").await;
}

/// Carol's history messages, each checked to be history with no local id
/// and to come before her `MEM`, as (sender, extMsgId, snd_ts, body).
fn carol_history(c: &Client) -> Vec<(String, u64, u64, String)> {
    let mem = own_mem_at(c, "reads");
    group_msgs(c, "reads")
        .into_iter()
        .filter(|m| m.integrity == MsgIntegrity::History)
        .map(|m| {
            assert_eq!(m.msg_id, 0, "history has no id to ACK: {m:?}");
            assert!(m.at < mem, "history after MEM: {m:?}");
            (m.sender, m.snd_msg_id, m.snd_ts, m.body)
        })
        .collect()
}

/// After the join, bob sends a live message: carol gets it with integrity
/// `ok` as her first group message to acknowledge (`R=1`), after her `MEM`.
async fn live_message_reaches_carol(n: &mut Net, bob_id: &str, bob_ext: u64) {
    let m = send_and_wait(&mut n.b, "books", &mut n.c, "reads", "live after join").await;
    assert_eq!(m.integrity, MsgIntegrity::Ok, "{m:?}");
    assert_eq!(m.msg_id, 1, "{m:?}");
    assert_eq!(m.snd_msg_id, bob_ext, "{m:?}");
    assert_eq!(m.sender, bob_id);
    assert!(m.at > own_mem_at(&n.c, "reads"), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_gets_the_last_three_messages_as_history() {
    let mut n = start("hist3", &["--history", "3", "--history-bytes", "4096"]).await;
    let sent = converse(&mut n, &["a one", "b one", "a two", "b two", "a three"]).await;
    let alice_id = sent[0].0.clone();
    let bob_id = sent[1].0.clone();
    assert_ne!(alice_id, bob_id);
    // Each sender's group-wide ids count from 1.
    let ids: Vec<u64> = sent.iter().map(|m| m.1).collect();
    assert_eq!(ids, [1, 1, 2, 2, 3]);

    add_carol(&mut n).await;
    // Exactly the last three, oldest first, with their senders, ids, send
    // times and contents as the live receivers saw them.
    assert_eq!(carol_history(&n.c), sent[2..].to_vec());
    live_message_reaches_carol(&mut n, &bob_id, 3).await;
    // Alice's next message reaches carol live too, under her next id.
    let m = send_and_wait(&mut n.a, "club", &mut n.c, "reads", "a four").await;
    assert_eq!(
        (m.sender.as_str(), m.integrity, m.msg_id, m.snd_msg_id),
        (alice_id.as_str(), MsgIntegrity::Ok, 2, 4)
    );
    // Nothing was handed on twice, and bob (already a member) got none.
    assert_eq!(carol_history(&n.c).len(), 3);
    assert!(
        group_msgs(&n.b, "books")
            .iter()
            .all(|m| m.integrity == MsgIntegrity::Ok)
    );
    assert_eq!(group_msgs(&n.c, "reads").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_a_new_member_gets_none() {
    let mut n = start("hist-off", &[]).await;
    let sent = converse(&mut n, &["a one", "b one", "a two", "b two", "a three"]).await;
    let bob_id = sent[1].0.clone();
    add_carol(&mut n).await;
    live_message_reaches_carol(&mut n, &bob_id, 3).await;
    // The live message is the only one carol ever saw.
    let all = group_msgs(&n.c, "reads");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].body, "live after join");
}

/// `--history-bytes 12` with messages of 5 bytes: two fit (10 bytes), a
/// third would not; a message of 13 bytes is not kept at all (and does not
/// push the others out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_bound_keeps_fewer_messages() {
    let mut n = start("hist-bytes", &["--history", "3", "--history-bytes", "12"]).await;
    let sent = converse(
        &mut n,
        &["msg-1", "msg-2", "msg-3", "msg-4", "thirteen-byte"],
    )
    .await;
    assert_eq!(sent[4].3.len(), 13);
    let bob_id = sent[1].0.clone();
    add_carol(&mut n).await;
    assert_eq!(carol_history(&n.c), sent[2..4].to_vec());
    live_message_reaches_carol(&mut n, &bob_id, 3).await;
}

/// Only alice runs with history: bob's messages go unsigned (`MSG`), so she
/// keeps and hands on only her own; carol gets alice's last messages and
/// none of bob's, though bob's were among the last three of the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_messages_of_a_member_without_history_are_not_handed_on() {
    let on: &[&str] = &["--history", "3"];
    let mut n = start_with("hist-mixed", [on, &[], &[]]).await;
    let sent = converse(&mut n, &["a one", "b one", "a two", "b two", "a three"]).await;
    let bob_id = sent[1].0.clone();
    add_carol(&mut n).await;
    let alices: Vec<_> = sent.iter().step_by(2).cloned().collect();
    assert_eq!(carol_history(&n.c), alices);
    live_message_reaches_carol(&mut n, &bob_id, 3).await;
}
