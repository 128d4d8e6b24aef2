//! The seed's group flows, driven over the client text protocol through three
//! agents however they are run (in this process or as `smp-agent serve`
//! processes) and whatever their relays are.
#![allow(dead_code, unreachable_pub, clippy::many_single_char_names)]

use smp_groups_wire::client::{AgentEvent, MsgIntegrity, MsgMeta, RcvdStatus};

use super::Client;

/// A visible connection: `a` invites with `C:{ab} NEW`, `b` joins as `C:{ba}`.
pub async fn connect(a: &mut Client, b: &mut Client, ab: &str, ba: &str) {
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
pub async fn invite(a: &mut Client, b: &mut Client, ab: &str, ba: &str, group: &str, alias: &str) {
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

/// The clock the agents under test read (they run on this machine).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The metadata of a message sent at or after `before` and received at or
/// before `after` (milliseconds, one clock): integrity ok, the sender's id,
/// a 24-byte relay id, the sender's time when it was sent, the relay's time
/// (whole seconds) when it took it, ours when we received it.
pub fn check_meta(meta: &MsgMeta, snd_msg_id: u64, before: u64, after: u64) {
    assert_eq!(meta.integrity, MsgIntegrity::Ok, "{meta:?}");
    assert_eq!(meta.snd_msg_id, snd_msg_id, "{meta:?}");
    assert_eq!(meta.relay_msg_id.len(), 24, "{meta:?}");
    assert!(
        before <= meta.snd_ts && meta.snd_ts <= meta.rcv_ts,
        "{meta:?}"
    );
    assert!(meta.rcv_ts <= after, "{meta:?}");
    assert_eq!(meta.relay_ts % 1000, 0, "{meta:?}");
    // The relay stamped it after it was sent, in whole seconds.
    assert!(meta.snd_ts < meta.relay_ts + 1000, "{meta:?}");
    assert!(
        before < meta.relay_ts + 1000 && meta.relay_ts <= meta.rcv_ts,
        "{meta:?}"
    );
}

pub trait Lossy {
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

/// Every seed flow with `a` (alice) as the creator and `b` (bob), `c` (carol)
/// as members: a pairwise connection with `SEND`/`MSG`/`ACK`/`RCVD`; create,
/// `INTRO`/`REQ`/`JOIN`, `CON`/`MEM` (b and c meet through the introduction);
/// a group `SEND` with per-member and all-member `SENT` and `RCVD`; `REM`
/// (`OUT` for the removed one); `LEAVE` and `EMPTY`; `DEL` of a second group.
pub async fn every_group_flow(a: &mut Client, b: &mut Client, c: &mut Client) {
    connect(a, b, "bob", "alice").await;
    connect(a, c, "carol", "alice").await;

    // A pairwise message, acknowledged: the inviter's second agent message
    // on the connection (after its HELLO).
    let before = now_ms();
    let r = a.call("p1", "C:bob SEND :hi bob").await;
    let AgentEvent::Sent { msg_id: pid, .. } = r else {
        panic!("{r:?}")
    };
    let got = b
        .wait(|t| match &t.msg {
            AgentEvent::Msg {
                conn,
                msg_id,
                meta,
                body,
            } if conn.as_str() == "alice" => Some((*msg_id, body.clone(), meta.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got.1, b"hi bob");
    check_meta(&got.2, 2, before, now_ms());
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
    invite(a, b, "bob", "alice", "club", "books").await;
    let id_b = a
        .wait(|t| match &t.msg {
            AgentEvent::GroupMem {
                member: Some(m), ..
            } => Some(m.as_str().to_owned()),
            _ => None,
        })
        .await;
    invite(a, c, "carol", "alice", "club", "team").await;
    let id_c = a
        .wait(|t| match &t.msg {
            AgentEvent::GroupMem {
                member: Some(m), ..
            } if m.as_str() != id_b => Some(m.as_str().to_owned()),
            _ => None,
        })
        .await;
    // b and c are connected to each other through the introduction.
    b.wait(|t| {
        matches!(&t.msg, AgentEvent::GroupCon { member, .. } if member.as_str() == id_c)
            .then_some(())
    })
    .await;

    // Send: per-member and all-member SENT, MSG, ACK, per-member and all RCVD.
    // Alice's first group message: extMsgId 1 for every member.
    let before = now_ms();
    let r = a.call("s1", "G:club SEND :first message").await;
    let AgentEvent::GroupSent { msg_id: mid, .. } = r else {
        panic!("{r:?}")
    };
    let mut senders = Vec::new();
    for (client, group) in [(&mut *b, "books"), (&mut *c, "team")] {
        let (id, sender) = client
            .wait(|t| match &t.msg {
                AgentEvent::GroupMsg {
                    group: g,
                    member,
                    msg_id,
                    meta,
                    body,
                } if g.as_str() == group => {
                    assert_eq!(body, b"first message");
                    check_meta(meta, 1, before, now_ms());
                    Some((*msg_id, member.as_str().to_owned()))
                }
                _ => None,
            })
            .await;
        senders.push(sender);
        let r = client.call("s2", &format!("G:{group} ACK {id}")).await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    }
    // Both name alice by the same member id, which is neither of theirs.
    let id_a = senders[0].clone();
    assert_eq!(senders[1], id_a);
    assert!(id_a != id_b && id_a != id_c);
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
    invite(a, b, "bob", "alice", "two", "pair").await;
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
