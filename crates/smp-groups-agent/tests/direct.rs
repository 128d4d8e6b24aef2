//! Direct messages to one member of a group over the client text protocol,
//! with `smp-relay` and three `smp-agent serve` processes on loopback TCP:
//! `G:g DSEND C:m msg` reaches that member only, as `DMSG` (never `MSG`),
//! with the pair's own ids; the sender hears `DSENT` (the answer, then the
//! relay's) and `DRCVD` once the member's client acknowledged it; a member
//! removed before acknowledging gives `DFAIL ... unconfirmed`; a departed,
//! unknown or malformed member is an error line. Module `api`: the same
//! through `Agent::send_direct`, across restarts of both agents.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

mod common;

use common::flows::{self, Lossy, check_meta, now_ms};
use common::{Client, procs, temp_db};
use smp_groups_wire::client::{
    AgentEvent, DirectFailure, ErrorCode, MsgIntegrity, RcvdStatus, Transmission,
};

/// A direct message received: (agent's id, sender, sender's direct id,
/// integrity, body).
type Got = (u64, String, u64, MsgIntegrity, Vec<u8>);

fn direct_msg(t: &Transmission<AgentEvent>, group: &str) -> Option<Got> {
    match &t.msg {
        AgentEvent::DirectMsg {
            group: g,
            member,
            msg_id,
            meta,
            body,
        } if g.as_str() == group => Some((
            *msg_id,
            member.as_str().to_owned(),
            meta.snd_msg_id,
            meta.integrity,
            body.clone(),
        )),
        _ => None,
    }
}

fn count_direct(c: &Client) -> usize {
    c.count(|e| matches!(e, AgentEvent::DirectMsg { .. }))
}

fn count_group_msgs(c: &Client) -> usize {
    c.count(|e| matches!(e, AgentEvent::GroupMsg { .. }))
}

/// `DSEND`, answered by `G:g DSENT id` (no member: queued); returns the id.
async fn dsend(x: &mut Client, corr: &str, group: &str, member: &str, body: &str) -> u64 {
    let r = x
        .call(corr, &format!("G:{group} DSEND C:{member} :{body}"))
        .await;
    match &r {
        AgentEvent::DirectSent {
            group: g,
            member: None,
            msg_id,
        } if g.as_str() == group => {
            assert_eq!(r.to_string_lossy(), format!("G:{group} DSENT {msg_id}"));
            *msg_id
        }
        other => panic!("{}: DSEND answered {other:?}", x.name),
    }
}

/// The error an answer is: its code and its line.
fn error(r: &AgentEvent) -> (ErrorCode, String) {
    match r {
        AgentEvent::Error { code, .. } => (*code, r.to_string_lossy()),
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_reach_one_member_over_the_text_protocol() {
    let db = temp_db("direct");
    let (_relay, relay) = procs::relay("127.0.0.1:0", &db.with_extension("relay"));
    let (_pa, a_ep) = procs::agent("alice", &relay, &db.with_file_name("alice.db"));
    let (_pb, b_ep) = procs::agent("bob", &relay, &db.with_file_name("bob.db"));
    let (_pc, c_ep) = procs::agent("carol", &relay, &db.with_file_name("carol.db"));
    let mut a = Client::connect(&a_ep, "alice").await;
    let mut b = Client::connect(&b_ep, "bob").await;
    let mut c = Client::connect(&c_ep, "carol").await;

    // Alice's group with bob (`books` for him) and carol (`team` for her).
    flows::connect(&mut a, &mut b, "bob", "alice").await;
    flows::connect(&mut a, &mut c, "carol", "alice").await;
    let r = a.call("g1", "G:club NEW :Book club").await;
    assert_eq!(r.to_string_lossy(), "G:club OK");
    flows::invite(&mut a, &mut b, "bob", "alice", "club", "books").await;
    let id_b = a
        .wait(|t| match &t.msg {
            AgentEvent::GroupMem {
                member: Some(m), ..
            } => Some(m.as_str().to_owned()),
            _ => None,
        })
        .await;
    flows::invite(&mut a, &mut c, "carol", "alice", "club", "team").await;
    let id_c = a
        .wait(|t| match &t.msg {
            AgentEvent::GroupMem {
                member: Some(m), ..
            } if m.as_str() != id_b => Some(m.as_str().to_owned()),
            _ => None,
        })
        .await;
    // Bob and carol are connected to each other too.
    b.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupCon { member, .. } if member.as_str() == id_c)
            .then_some(())
    })
    .await;

    // A group message first: bob and carol each get it as `MSG`.
    let r = a.call("s1", "G:club SEND :to everyone").await;
    assert!(matches!(r, AgentEvent::GroupSent { .. }), "{r:?}");
    let id_a = b
        .wait(|t| match &t.msg {
            AgentEvent::GroupMsg { member, body, .. } if body == b"to everyone" => {
                Some(member.as_str().to_owned())
            }
            _ => None,
        })
        .await;
    c.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupMsg { body, .. } if body == b"to everyone").then_some(())
    })
    .await;

    // Alice to bob only: `DSENT id`, then `DSENT C:bob id` once the relay
    // took it.
    let before = now_ms();
    let mark_a = a.seen.len();
    let d1 = dsend(&mut a, "d1", "club", &id_b, "for bob only").await;
    let line = a
        .wait_from(mark_a, |t| match &t.msg {
            // The agent's own event: no corrId.
            AgentEvent::DirectSent {
                member: Some(_), ..
            } => Some((t.corr_id.is_empty(), t.msg.to_string_lossy())),
            _ => None,
        })
        .await;
    assert_eq!(line, (true, format!("G:club DSENT C:{id_b} {d1}")));

    // Bob gets it as `DMSG` from alice, the first of the pair's direct ids.
    let (local, from, snd_id, integrity, body) = b.wait(|t| direct_msg(t, "books")).await;
    assert_eq!(from, id_a);
    assert_eq!(snd_id, 1);
    assert_eq!(integrity, MsgIntegrity::Ok);
    assert_eq!(body, b"for bob only");
    let meta = b
        .seen
        .iter()
        .find_map(|t| match &t.msg {
            AgentEvent::DirectMsg { meta, .. } => Some(meta.clone()),
            _ => None,
        })
        .unwrap();
    check_meta(&meta, 1, before, now_ms());
    let line = b
        .seen
        .iter()
        .find(|t| matches!(t.msg, AgentEvent::DirectMsg { .. }))
        .map(|t| t.msg.to_string_lossy())
        .unwrap();
    assert!(
        line.starts_with(&format!("G:books DMSG C:{id_a} ok R={local},"))
            && line.contains(" S=1,")
            && line.ends_with(" :for bob only"),
        "{line}"
    );

    // Bob acknowledges it: alice hears `DRCVD C:bob id ok`.
    let r = b.call("b1", &format!("G:books ACK {local}")).await;
    assert_eq!(r.to_string_lossy(), "G:books OK");
    let line = a
        .wait_from(mark_a, |t| match &t.msg {
            AgentEvent::DirectRcvd { .. } => Some(t.msg.to_string_lossy()),
            _ => None,
        })
        .await;
    assert_eq!(line, format!("G:club DRCVD C:{id_b} {d1} ok"));

    // A second one to bob carries the pair's next id; bob answers alice
    // directly, with his own first id.
    let d2 = dsend(&mut a, "d2", "club", &id_b, "again").await;
    assert_ne!(d2, d1);
    let mark_b = b.seen.len();
    let got = b.wait_from(mark_b, |t| direct_msg(t, "books")).await;
    assert_eq!(
        (got.1.as_str(), got.2, got.4.as_slice()),
        (id_a.as_str(), 2, &b"again"[..])
    );
    assert_eq!(got.3, MsgIntegrity::Ok);
    let r = b.call("b2", &format!("G:books ACK {}", got.0)).await;
    assert_eq!(r.to_string_lossy(), "G:books OK");
    let reply = dsend(&mut b, "b3", "books", &id_a, "thanks alice").await;
    let got = a.wait_from(mark_a, |t| direct_msg(t, "club")).await;
    assert_eq!(
        (got.1.as_str(), got.2, got.3, got.4.as_slice()),
        (id_b.as_str(), 1, MsgIntegrity::Ok, &b"thanks alice"[..])
    );
    let r = a.call("a1", &format!("G:club ACK {}", got.0)).await;
    assert_eq!(r.to_string_lossy(), "G:club OK");
    b.wait_from(mark_b, |t| {
        matches!(&t.msg, AgentEvent::DirectRcvd { msg_id, status: RcvdStatus::Ok, .. } if *msg_id == reply)
            .then_some(())
    })
    .await;
    a.wait_from(mark_a, |t| {
        matches!(&t.msg, AgentEvent::DirectRcvd { msg_id, status: RcvdStatus::Ok, .. } if *msg_id == d2)
            .then_some(())
    })
    .await;

    // Errors, each an error line naming the group: a member alias that is
    // no member id, a member id not in the group, a missing message.
    let r = a.call("e1", "G:club DSEND C:nobody :x").await;
    assert_eq!(error(&r).0, ErrorCode::UnknownEntity, "{r:?}");
    assert!(
        error(&r).1.starts_with("G:club ERR UNKNOWN_ENTITY"),
        "{r:?}"
    );
    let stranger = smp_groups_wire::base64url::encode_unpadded(&[0x77; 16]);
    let r = a.call("e2", &format!("G:club DSEND C:{stranger} :x")).await;
    assert_eq!(error(&r).0, ErrorCode::UnknownEntity, "{r:?}");
    let r = a.call("e3", &format!("G:club DSEND C:{id_b}")).await;
    assert_eq!(error(&r).0, ErrorCode::Syntax, "{r:?}");
    let r = a.call("e4", &format!("G:nope DSEND C:{id_b} :x")).await;
    assert_eq!(error(&r).0, ErrorCode::UnknownEntity, "{r:?}");

    // Carol got none of alice's direct messages to bob, and bob's group
    // message count is still the one group message.
    c.pump_until(tokio::time::Instant::now() + std::time::Duration::from_millis(500))
        .await;
    assert_eq!(count_direct(&c), 0, "{:#?}", c.seen);
    assert_eq!(count_group_msgs(&c), 1);
    assert_eq!(count_direct(&b), 2);
    assert_eq!(count_group_msgs(&b), 1);
    assert_eq!(count_direct(&a), 1);

    // A direct message to carol that she does not acknowledge; alice then
    // removes her: it will never be confirmed (`DFAIL ... unconfirmed`).
    let d3 = dsend(&mut a, "d3", "club", &id_c, "read it?").await;
    let got = c.wait(|t| direct_msg(t, "team")).await;
    assert_eq!(
        (got.1.as_str(), got.2, got.4.as_slice()),
        (id_a.as_str(), 1, &b"read it?"[..])
    );
    let mark_a = a.seen.len();
    let r = a.call("r1", &format!("G:club REM C:{id_c}")).await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    let line = a
        .wait_from(mark_a, |t| match &t.msg {
            AgentEvent::DirectFailed { .. } => Some(t.msg.to_string_lossy()),
            _ => None,
        })
        .await;
    assert_eq!(line, format!("G:club DFAIL C:{id_c} {d3} unconfirmed"));
    a.wait_from(mark_a, |t| {
        matches!(&t.msg, AgentEvent::Removed { member, by: None, .. } if member.as_str() == id_c)
            .then_some(())
    })
    .await;
    // The failure is reported before the removal completes.
    let pos = |f: &dyn Fn(&AgentEvent) -> bool| a.seen.iter().position(|t| f(&t.msg)).unwrap();
    assert!(
        pos(&|e| matches!(e, AgentEvent::DirectFailed { .. }))
            < pos(&|e| matches!(e, AgentEvent::Removed { .. })),
        "{:#?}",
        &a.seen[mark_a..]
    );
    c.wait(|t| matches!(&t.msg, AgentEvent::Out { .. }).then_some(()))
        .await;
    // Carol is gone: a direct message to her is refused.
    let r = a
        .call("d4", &format!("G:club DSEND C:{id_c} :too late"))
        .await;
    assert_eq!(error(&r).0, ErrorCode::Prohibited, "{r:?}");

    // Bob leaves: the same for him, and nothing more reached anyone.
    let r = b.call("l1", "G:books LEAVE").await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    a.wait(|t| {
        matches!(&t.msg, AgentEvent::Left { member: Some(m), .. } if m.as_str() == id_b)
            .then_some(())
    })
    .await;
    let r = a.call("d5", &format!("G:club DSEND C:{id_b} :bye")).await;
    assert_eq!(error(&r).0, ErrorCode::Prohibited, "{r:?}");
    a.pump_until(tokio::time::Instant::now() + std::time::Duration::from_millis(500))
        .await;
    let failed: Vec<(String, u64, DirectFailure)> = a
        .seen
        .iter()
        .filter_map(|t| match &t.msg {
            AgentEvent::DirectFailed {
                member,
                msg_id,
                reason,
                ..
            } => Some((member.as_str().to_owned(), *msg_id, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![(id_c.clone(), d3, DirectFailure::Unconfirmed)]);
    let receipts = a.count(|e| matches!(e, AgentEvent::DirectRcvd { .. }));
    assert_eq!(receipts, 2, "d1 and d2, never d3");
    assert_eq!(count_direct(&c), 1);
}

mod api {
    //! `Agent::send_direct` and the direct records through the agent's
    //! store: messages sent while the member is stopped reach it once after
    //! its restart; what neither side acknowledged before both restart is
    //! acknowledged afterwards, by the same ids, and confirmed.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::common::{RELAY_A, RELAY_B, WAIT, relays, temp_db};
    use smp_groups_agent::testing::MemoryRelays;
    use smp_groups_agent::{Agent, AgentConfig, Error, EventStream};
    use smp_groups_core::CommandError;
    use smp_groups_wire::base64url;
    use smp_groups_wire::client::{AgentEvent, MsgIntegrity, RcvdStatus};

    async fn next(events: &mut EventStream) -> AgentEvent {
        tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the agent runs")
            .event
    }

    async fn until<T>(events: &mut EventStream, f: impl Fn(&AgentEvent) -> Option<T>) -> T {
        loop {
            if let Some(x) = f(&next(events).await) {
                return x;
            }
        }
    }

    /// Every event that arrives within `ms` milliseconds.
    async fn drain(events: &mut EventStream, ms: u64) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, events.next()).await {
            out.push(d.event);
        }
        out
    }

    fn open(
        name: &str,
        relay: &str,
        db: &std::path::Path,
        relays: &std::sync::Arc<MemoryRelays>,
    ) -> Agent {
        Agent::open(
            AgentConfig::new(name, relay, Some(db.to_path_buf())),
            relays.clone(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_messages_survive_restarts_of_both_members() {
        let relays = relays().await;
        let (db_a, db_b) = (temp_db("alice-direct"), temp_db("bob-direct"));
        let a = open("alice", RELAY_A, &db_a, &relays);
        let b = open("bob", RELAY_B, &db_b, &relays);
        let mut ea = a.events().await.unwrap();
        let mut eb = b.events().await.unwrap();
        let conn = a.new_connection(None).await.unwrap();
        let inv = until(&mut ea, |e| match e {
            AgentEvent::Inv {
                conn: c,
                invitation,
            } if c.as_str() == conn => Some(invitation.as_str().to_owned()),
            _ => None,
        })
        .await;
        let inv = base64url::decode_unpadded(&inv, "invitation").unwrap();
        b.join_connection(None, inv).await.unwrap();
        until(&mut eb, |e| {
            matches!(e, AgentEvent::Con { .. }).then_some(())
        })
        .await;
        let ga = a.create_group(Some("g"), b"g").await.unwrap();
        a.invite(&conn, &ga, b"g").await.unwrap();
        let req = until(&mut eb, |e| match e {
            AgentEvent::Req { invitation, .. } => Some(invitation.as_str().to_owned()),
            _ => None,
        })
        .await;
        let gb = b.join(Some("h"), &req).await.unwrap();
        until(&mut eb, |e| {
            matches!(e, AgentEvent::GroupMem { member: None, .. }).then_some(())
        })
        .await;
        until(&mut ea, |e| {
            matches!(
                e,
                AgentEvent::GroupMem {
                    member: Some(_),
                    ..
                }
            )
            .then_some(())
        })
        .await;
        let bob = a.members(&ga).await.unwrap()[0];
        let alice = b.members(&gb).await.unwrap()[0];

        // Bob stops; alice sends five direct messages: the relay takes each.
        b.shutdown().await;
        drop(eb);
        drop(b);
        let mut ids = Vec::new();
        for i in 1..=5 {
            ids.push(
                a.send_direct(&ga, bob, format!("d{i}").as_bytes())
                    .await
                    .unwrap(),
            );
        }
        let mut sent = 0;
        while sent < ids.len() {
            if let AgentEvent::DirectSent {
                member: Some(m),
                msg_id,
                ..
            } = next(&mut ea).await
            {
                assert_eq!(m.as_str(), bob.to_base64url());
                assert!(ids.contains(&msg_id), "{msg_id} not in {ids:?}");
                sent += 1;
            }
        }
        // Our own member id is no member to send to: a typed refusal.
        let me = a.member_id(&ga).await.unwrap().unwrap();
        match a.send_direct(&ga, me, b"to myself").await {
            Err(Error::Command(CommandError::NoMember(m))) => assert_eq!(m, me),
            other => panic!("{other:?}"),
        }

        // Bob restarts: each arrives once, in order, as DMSG from alice.
        let b = open("bob", RELAY_B, &db_b, &relays);
        let mut eb = b.events().await.unwrap();
        let mut got: BTreeMap<u64, (u64, Vec<u8>)> = BTreeMap::new();
        while got.len() < 5 {
            if let AgentEvent::DirectMsg {
                member,
                msg_id,
                meta,
                body,
                ..
            } = next(&mut eb).await
            {
                assert_eq!(member.as_str(), alice.to_base64url());
                assert_eq!(meta.integrity, MsgIntegrity::Ok);
                assert!(
                    got.insert(meta.snd_msg_id, (msg_id, body)).is_none(),
                    "direct id {} twice",
                    meta.snd_msg_id
                );
            }
        }
        let bodies: Vec<(u64, Vec<u8>)> = got
            .iter()
            .map(|(d, (_, body))| (*d, body.clone()))
            .collect();
        let want: Vec<(u64, Vec<u8>)> =
            (1..=5).map(|i| (i, format!("d{i}").into_bytes())).collect();
        assert_eq!(bodies, want);
        // Bob acknowledges the first two only.
        for d in [1, 2] {
            b.ack(&gb, got[&d].0).await.unwrap();
        }
        let mut rcvd: BTreeMap<u64, RcvdStatus> = BTreeMap::new();
        while rcvd.len() < 2 {
            if let AgentEvent::DirectRcvd { msg_id, status, .. } = next(&mut ea).await {
                assert!(rcvd.insert(msg_id, status).is_none());
            }
        }
        assert_eq!(
            rcvd,
            BTreeMap::from([(ids[0], RcvdStatus::Ok), (ids[1], RcvdStatus::Ok)])
        );

        // Both stop and restart; bob acknowledges the other three by the ids
        // he was given, and alice, restarted, confirms them under hers.
        b.shutdown().await;
        a.shutdown().await;
        drop((ea, eb, a, b));
        let a = open("alice", RELAY_A, &db_a, &relays);
        let b = open("bob", RELAY_B, &db_b, &relays);
        let mut ea = a.events().await.unwrap();
        let mut eb = b.events().await.unwrap();
        for d in [3, 4, 5] {
            b.ack(&gb, got[&d].0).await.unwrap();
        }
        // An id already acknowledged is no longer waiting.
        match b.ack(&gb, got[&1].0).await {
            Err(Error::Command(CommandError::NoId(id))) => assert_eq!(id, got[&1].0),
            other => panic!("{other:?}"),
        }
        while rcvd.len() < 5 {
            if let AgentEvent::DirectRcvd { msg_id, status, .. } = next(&mut ea).await {
                assert!(
                    rcvd.insert(msg_id, status).is_none(),
                    "DRCVD {msg_id} twice"
                );
            }
        }
        assert_eq!(
            rcvd,
            ids.iter()
                .map(|i| (*i, RcvdStatus::Ok))
                .collect::<BTreeMap<_, _>>()
        );
        // Nothing more: no message twice, no receipt or failure twice.
        let rest_b = drain(&mut eb, 500).await;
        assert!(
            !rest_b
                .iter()
                .any(|e| matches!(e, AgentEvent::DirectMsg { .. })),
            "{rest_b:?}"
        );
        let rest_a = drain(&mut ea, 300).await;
        assert!(
            !rest_a.iter().any(|e| matches!(
                e,
                AgentEvent::DirectRcvd { .. } | AgentEvent::DirectFailed { .. }
            )),
            "{rest_a:?}"
        );
    }
}
