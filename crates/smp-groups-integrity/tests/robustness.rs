//! Arbitrary input never panics, rejected input changes nothing, and the
//! per-sender chain does not depend on the order messages arrive in.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use smp_groups_integrity::{Anchor, Config, Delivery, GroupIntegrity, Timestamp};
use smp_groups_wire::agent::{Digest, GCheck, GCheckEntry, GCheckStatus, GroupId, MemberId};

fn member(i: u8) -> MemberId {
    MemberId([i; 16])
}

fn state(me: u8, n: u8) -> GroupIntegrity {
    let mut c = Config::new(GroupId([1; 16]));
    c.window = 16;
    c.max_held = 16;
    let mut g = GroupIntegrity::new(c, member(me), Timestamp(0));
    for i in (0..n).filter(|&i| i != me) {
        g.add_member(member(i), Anchor::Genesis, None).unwrap();
    }
    g
}

fn status(k: u8) -> GCheckStatus {
    match k % 3 {
        0 => GCheckStatus::Ok,
        1 => GCheckStatus::Gap,
        _ => GCheckStatus::Bad,
    }
}

proptest! {
    /// Any sequence of messages and checks (members from a set larger than the
    /// group, any ids, digests and statuses): no panic, and every rejected check
    /// leaves the state exactly as it was.
    #[test]
    fn arbitrary_checks_and_messages(
        ops in prop::collection::vec(
            (any::<bool>(), 0u8..6, any::<u64>(), 0u64..40,
             prop::collection::vec((0u8..6, 0u64..40, any::<u8>(), any::<u8>()), 0..8)),
            1..40),
    ) {
        let mut g = state(0, 4);
        let mut now = 0u64;
        for (is_check, from, seq, id, entries) in ops {
            now += 250;
            if is_check {
                let check = GCheck {
                    entries: entries.iter().map(|&(m, msg_id, d, s)| GCheckEntry {
                        member: member(m),
                        msg_id,
                        digest: Digest([d; 32]),
                        status: status(s),
                    }).collect(),
                    members: None,
                };
                let before = postcard::to_allocvec(&g).unwrap();
                if g.on_check(member(from), seq % 64, &check, Timestamp(now)).is_err() {
                    prop_assert_eq!(postcard::to_allocvec(&g).unwrap(), before);
                }
            } else {
                let _ = g.on_received(member(from), id, &seq.to_be_bytes());
            }
            let c = g.build_check(Timestamp(now));
            prop_assert_eq!(c.entries.len(), 4);
            prop_assert_eq!(c.entries[0].member, member(0));
        }
    }

    /// Messages of one sender delivered in any order, with repeats, within the
    /// held bound: the chain ends where in-order delivery ends, and every id is
    /// chained exactly once.
    #[test]
    fn chain_is_independent_of_arrival_order(
        order in Just((1u64..=12).collect::<Vec<_>>()).prop_shuffle(),
        repeats in prop::collection::vec(0usize..12, 0..6),
    ) {
        let content = |i: u64| format!("message {i}").into_bytes();
        let mut in_order = state(0, 2);
        for i in 1..=12 {
            in_order.on_received(member(1), i, &content(i)).unwrap();
        }
        let mut shuffled = state(0, 2);
        let mut arrivals = order.clone();
        for r in repeats {
            arrivals.insert(r, order[r]);
        }
        let mut chained = Vec::new();
        for i in arrivals {
            let r = shuffled.on_received(member(1), i, &content(i)).unwrap();
            prop_assert!(r.violations.is_empty());
            if let Delivery::Chained { from, to } = r.delivery {
                chained.extend(from..=to);
            }
        }
        prop_assert_eq!(chained, (1..=12).collect::<Vec<_>>());
        prop_assert_eq!(shuffled.head(member(1)), in_order.head(member(1)));
        prop_assert_eq!(shuffled.build_check(Timestamp(1)), in_order.build_check(Timestamp(1)));
    }
}
