//! The G_CHECK rules one at a time, with hand-built checks.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

use smp_groups_integrity::{
    Anchor, CheckError, Config, Delivery, GroupIntegrity, MemberError, ReceiveError, Timestamp,
    Violation, ViolationKind,
};
use smp_groups_wire::agent::{GCheck, GCheckEntry, GCheckStatus, GroupId, MemberId};

const A: MemberId = MemberId([1; 16]);
const B: MemberId = MemberId([2; 16]);
const S: MemberId = MemberId([3; 16]);
const GRACE: u64 = 1_000;

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

fn config() -> Config {
    let mut c = Config::new(GroupId([9; 16]));
    c.check_interval_ms = Some(5_000);
    c.check_every_messages = Some(3);
    c.lag_grace_ms = GRACE;
    c.window = 8;
    c.max_held = 8;
    c
}

/// Members A, B and S, as seen by `me`.
fn member(me: MemberId) -> GroupIntegrity {
    let mut g = GroupIntegrity::new(config(), me, t(0));
    for m in [A, B, S] {
        if m != me {
            g.add_member(m, Anchor::Genesis, None).unwrap();
        }
    }
    g
}

fn receive(g: &mut GroupIntegrity, from: MemberId, ids: std::ops::RangeInclusive<u64>, tag: &str) {
    for i in ids {
        let r = g
            .on_received(from, i, format!("{tag}{i}").as_bytes())
            .unwrap();
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }
}

fn kinds(v: &[Violation]) -> Vec<ViolationKind> {
    v.iter().map(|v| v.kind).collect()
}

#[test]
fn check_lists_self_first_then_every_member() {
    let mut a = member(A);
    a.on_sent(b"x").unwrap();
    receive(&mut a, S, 1..=2, "s");
    let c = a.build_check(t(10));
    let ids: Vec<_> = c
        .entries
        .iter()
        .map(|e| (e.member, e.msg_id, e.status))
        .collect();
    assert_eq!(
        ids,
        vec![
            (A, 1, GCheckStatus::Ok),
            (B, 0, GCheckStatus::Ok),
            (S, 2, GCheckStatus::Ok)
        ]
    );
    assert_eq!(c.entries[0].digest, a.head(A).unwrap().1);
    // A gap shows as "gap".
    a.on_received(S, 4, b"s4").unwrap();
    assert_eq!(a.build_check(t(11)).entries[2].status, GCheckStatus::Gap);
}

#[test]
fn agreeing_members_confirm_and_report_nothing() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=3, "s");
    receive(&mut b, S, 1..=3, "s");
    let v = b.on_check(A, 1, &a.build_check(t(5)), t(5)).unwrap();
    assert!(v.is_empty());
    assert_eq!(b.confirmed(S, A), Some(3));
}

#[test]
fn ahead_receiver_marks_the_last_matching_message_then_waits() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=2, "s");
    receive(&mut b, S, 1..=5, "s");
    // B is ahead: 2 matches; no violation yet.
    assert!(
        b.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.confirmed(S, A), Some(2));
    // A's next check before the grace period: still nothing.
    assert!(
        b.on_check(A, 2, &a.build_check(t(500)), t(500))
            .unwrap()
            .is_empty()
    );
    // A catches up to 4 only; after the grace period, it is behind our 5.
    receive(&mut a, S, 3..=4, "s");
    let v = b
        .on_check(A, 3, &a.build_check(t(1_000)), t(1_000))
        .unwrap();
    assert_eq!(
        kinds(&v),
        vec![ViolationKind::Behind {
            reported: 4,
            expected: 5
        }]
    );
    assert_eq!((v[0].sender, v[0].reporter), (S, A));
    // Reported once, not at every check.
    assert!(
        b.on_check(A, 4, &a.build_check(t(3_000)), t(3_000))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn behind_receiver_that_catches_up_reports_nothing() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=5, "s");
    receive(&mut b, S, 1..=2, "s");
    assert!(
        b.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    receive(&mut b, S, 3..=5, "s");
    assert_eq!(b.confirmed(S, A), Some(5));
    assert!(
        b.on_check(A, 2, &a.build_check(t(2_000)), t(2_000))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn behind_receiver_that_stays_behind_reports_missing() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=5, "s");
    receive(&mut b, S, 1..=2, "s");
    assert!(
        b.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    // Next check inside the grace period: waits.
    assert!(
        b.on_check(A, 2, &a.build_check(t(999)), t(999))
            .unwrap()
            .is_empty()
    );
    let v = b
        .on_check(A, 3, &a.build_check(t(1_000)), t(1_000))
        .unwrap();
    assert_eq!(
        kinds(&v),
        vec![ViolationKind::Missing { ours: 2, theirs: 5 }]
    );
    assert_eq!((v[0].sender, v[0].reporter), (S, A));
}

#[test]
fn equivocation_is_reported_at_once_either_way_round() {
    // Same id, different content: B compares directly.
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=3, "s");
    receive(&mut b, S, 1..=2, "s");
    b.on_received(S, 3, b"something else").unwrap();
    let v = b.on_check(A, 1, &a.build_check(t(0)), t(0)).unwrap();
    assert!(matches!(
        v[..],
        [Violation {
            sender: S,
            reporter: A,
            kind: ViolationKind::Equivocation { msg_id: 3, .. }
        }]
    ));
    // B now marks S bad in its own checks.
    let bc = b.build_check(t(1));
    assert_eq!(
        bc.entries.iter().find(|e| e.member == S).unwrap().status,
        GCheckStatus::Bad
    );
    // A learns of it from B's check.
    let v = a.on_check(B, 1, &bc, t(1)).unwrap();
    assert!(
        v.iter()
            .any(|v| v.kind == ViolationKind::ReportedBad && v.reporter == B && v.sender == S)
    );
    assert!(
        v.iter()
            .any(|v| matches!(v.kind, ViolationKind::Equivocation { msg_id: 3, .. }))
    );

    // B behind A: the digest is kept and compared when B's chain gets there.
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=3, "s");
    receive(&mut b, S, 1..=1, "s");
    assert!(
        b.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    b.on_received(S, 2, b"s2").unwrap();
    let r = b.on_received(S, 3, b"forked").unwrap();
    assert_eq!(r.delivery, Delivery::Chained { from: 3, to: 3 });
    assert!(matches!(
        r.violations[..],
        [Violation {
            sender: S,
            reporter: A,
            kind: ViolationKind::Equivocation { msg_id: 3, .. }
        }]
    ));
}

#[test]
fn conflicting_resend_is_a_conflict() {
    let mut b = member(B);
    receive(&mut b, S, 1..=2, "s");
    let r = b.on_received(S, 2, b"different").unwrap();
    assert_eq!(r.delivery, Delivery::Conflict);
    assert_eq!(
        kinds(&r.violations),
        vec![ViolationKind::Conflict { msg_id: 2 }]
    );
    assert_eq!(r.violations[0].reporter, B);
    assert_eq!(
        b.on_received(S, 2, b"s2").unwrap().delivery,
        Delivery::Duplicate
    );
}

#[test]
fn claims_about_our_own_messages() {
    let (mut a, mut s) = (member(A), member(S));
    for i in 1..=3u64 {
        let sent = s.on_sent(format!("s{i}").as_bytes()).unwrap();
        assert_eq!(sent.ext_msg_id, i);
    }
    receive(&mut a, S, 1..=3, "s");
    assert!(
        s.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.confirmed(S, A), Some(3));
    // A check claiming a 4th message of ours that we never sent.
    let mut c = a.build_check(t(1));
    let e = c.entries.iter_mut().find(|e| e.member == S).unwrap();
    e.msg_id = 4;
    let v = s.on_check(A, 2, &c, t(1)).unwrap();
    assert_eq!(
        kinds(&v),
        vec![ViolationKind::UnsentClaimed {
            claimed: 4,
            sent: 3
        }]
    );
}

#[test]
fn rejected_checks_change_nothing() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=3, "s");
    let c = a.build_check(t(0));
    b.on_check(A, 5, &c, t(0)).unwrap();
    let before = serde_json::to_string(&b).unwrap();

    let replay = b.on_check(A, 5, &c, t(1));
    assert_eq!(
        replay,
        Err(CheckError::Replayed {
            reporter: A,
            seq: 5,
            last: 5
        })
    );
    assert!(matches!(
        b.on_check(A, 4, &c, t(1)),
        Err(CheckError::Replayed { .. })
    ));
    assert_eq!(
        b.on_check(S, 1, &c, t(1)),
        Err(CheckError::WrongReporter {
            reporter: S,
            named: A
        })
    );
    let stranger = MemberId([7; 16]);
    assert_eq!(
        b.on_check(stranger, 1, &c, t(1)),
        Err(CheckError::UnknownReporter(stranger))
    );
    assert_eq!(
        b.on_check(B, 1, &c, t(1)),
        Err(CheckError::UnknownReporter(B))
    );
    assert_eq!(
        b.on_check(
            A,
            6,
            &GCheck {
                entries: vec![],
                members: None
            },
            t(1)
        ),
        Err(CheckError::Empty(A))
    );
    let mut dup = c.clone();
    dup.entries.push(dup.entries[2]);
    assert!(matches!(
        b.on_check(A, 6, &dup, t(1)),
        Err(CheckError::DuplicateEntry { sender: S, .. })
    ));
    // An older check with a fresh sequence number still goes back.
    let old = GCheck {
        entries: vec![
            c.entries[0],
            GCheckEntry {
                msg_id: 2,
                ..c.entries[2]
            },
        ],
        members: None,
    };
    assert_eq!(
        b.on_check(A, 6, &old, t(1)),
        Err(CheckError::Regressed {
            reporter: A,
            sender: S,
            before: 3,
            now: 2
        })
    );
    assert_eq!(serde_json::to_string(&b).unwrap(), before);
    // The next genuine check is accepted.
    assert!(b.on_check(A, 6, &c, t(2)).is_ok());
}

#[test]
fn schedule_by_time_and_by_count() {
    let mut a = member(A);
    assert_eq!(a.next_check_at(), Some(t(5_000)));
    assert!(!a.due(t(4_999)));
    assert!(a.due(t(5_000)));
    a.build_check(t(5_000));
    assert!(!a.due(t(5_001)));
    a.on_sent(b"1").unwrap();
    receive(&mut a, S, 1..=1, "s");
    assert!(!a.due(t(5_002)));
    a.on_received(S, 2, b"s2").unwrap();
    assert!(a.due(t(5_003)), "three messages since the last check");
    a.build_check(t(5_003));
    assert!(!a.due(t(5_004)));
    assert_eq!(a.next_check_at(), Some(t(10_003)));
}

#[test]
fn membership() {
    let mut a = member(A);
    assert_eq!(
        a.add_member(B, Anchor::Genesis, None),
        Err(MemberError::Exists(B))
    );
    assert_eq!(
        a.add_member(A, Anchor::Genesis, None),
        Err(MemberError::Exists(A))
    );
    assert_eq!(
        a.on_received(A, 1, b"x").unwrap_err(),
        ReceiveError::FromSelf
    );
    let x = MemberId([8; 16]);
    assert_eq!(
        a.on_received(x, 1, b"x").unwrap_err(),
        ReceiveError::UnknownSender(x)
    );
    let mut c = config();
    c.max_members = 3;
    let mut small = GroupIntegrity::new(c, A, t(0));
    small.add_member(B, Anchor::Genesis, None).unwrap();
    small.add_member(S, Anchor::Genesis, None).unwrap();
    assert_eq!(
        small.add_member(x, Anchor::Genesis, None),
        Err(MemberError::Full(3))
    );

    // A removed member's entries in others' checks are ignored.
    let mut b = member(B);
    receive(&mut a, S, 1..=2, "s");
    assert!(b.remove_member(S));
    assert!(!b.remove_member(S));
    assert!(
        b.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.build_check(t(0)).entries.len(), 2);
}

#[test]
fn late_member_anchored_at_the_senders_head_agrees() {
    let (mut a, mut s) = (member(A), member(S));
    for i in 1..=4u64 {
        let m = format!("s{i}");
        s.on_sent(m.as_bytes()).unwrap();
        a.on_received(S, i, m.as_bytes()).unwrap();
    }
    // N joins now; S announces its anchor when they connect.
    let n = MemberId([4; 16]);
    let mut late = GroupIntegrity::new(config(), n, t(0));
    late.add_member(S, s.self_anchor(), None).unwrap();
    late.add_member(A, a.self_anchor(), None).unwrap();
    a.add_member(n, Anchor::Genesis, None).unwrap();
    s.add_member(n, Anchor::Genesis, None).unwrap();
    for i in 5..=6u64 {
        let m = format!("s{i}");
        s.on_sent(m.as_bytes()).unwrap();
        a.on_received(S, i, m.as_bytes()).unwrap();
        late.on_received(S, i, m.as_bytes()).unwrap();
    }
    assert_eq!(late.head(S), a.head(S));
    assert!(
        a.on_check(n, 1, &late.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    assert!(
        late.on_check(A, 1, &a.build_check(t(0)), t(0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(a.confirmed(S, n), Some(6));
    // A message from before the anchor is stale for the late member.
    assert_eq!(
        late.on_received(S, 3, b"s3").unwrap().delivery,
        Delivery::Stale
    );
}

#[test]
fn state_round_trips_through_serde() {
    let (mut a, mut b) = (member(A), member(B));
    receive(&mut a, S, 1..=5, "s");
    receive(&mut b, S, 1..=2, "s");
    b.on_received(S, 4, b"s4").unwrap();
    b.on_sent(b"mine").unwrap();
    a.on_received(B, 1, b"mine").unwrap();
    b.on_check(A, 1, &a.build_check(t(0)), t(0)).unwrap();
    let json = serde_json::to_string(&b).unwrap();
    let from_json: GroupIntegrity = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, b);
    let bin = postcard::to_allocvec(&b).unwrap();
    let mut from_bin: GroupIntegrity = postcard::from_bytes(&bin).unwrap();
    assert_eq!(from_bin, b);
    // The restored state still holds the pending expectation and the held message.
    assert_eq!(
        from_bin.on_received(S, 3, b"s3").unwrap().delivery,
        Delivery::Chained { from: 3, to: 4 }
    );
    let v = from_bin
        .on_check(A, 2, &a.build_check(t(5_000)), t(5_000))
        .unwrap();
    assert_eq!(
        kinds(&v),
        vec![ViolationKind::Missing { ours: 4, theirs: 5 }]
    );
}
