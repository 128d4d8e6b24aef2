//! Property tests over a simulated group (see `sim`): honest members never report
//! a violation; an equivocating or withholding sender is reported by every honest
//! member within two check rounds; forged or replayed checks and badly signed
//! receipts are rejected with typed errors and cause no verdict.

#![allow(clippy::unwrap_used, clippy::panic)]

mod sim;

use proptest::prelude::*;
use sim::{Adversary, D_MAX, Injection, Params, Sim, T, member_id};
use smp_groups_integrity::ViolationKind;

/// Two check rounds after the adversarial message was sent: the message reaches
/// everyone within `D_MAX`, every member checks within `T` after that, and the
/// check reaches the others within `D_MAX`; twice.
const DEADLINE: u64 = 2 * T + 2 * D_MAX;

/// Equivocation needs one round: the first check sent by a member holding the
/// other version reaches everyone within `T + 2 * D_MAX` of the message.
const EQUIVOCATION_DEADLINE: u64 = T + 2 * D_MAX;

fn params(
    n: usize,
    seed: u64,
    messages: usize,
    duplicate_pct: u64,
    adversary: Adversary,
) -> Params {
    Params {
        n,
        seed,
        messages,
        duplicate_pct,
        adversary,
        injections: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn honest_members_report_nothing(
        n in 2usize..=8, seed in any::<u64>(), messages in 0usize..40, dup in 0u64..30,
    ) {
        let (out, states) = Sim::new(params(n, seed, messages, dup, Adversary::None)).run();
        prop_assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
        prop_assert!(out.violations.is_empty(), "{:?}", out.violations);
        // Everything was delivered and chained, everyone agrees, and every
        // member saw all its messages confirmed by all others.
        prop_assert_eq!(out.messages_chained, messages * (n - 1));
        for (i, s) in states.iter().enumerate() {
            let own = s.head(member_id(i)).unwrap();
            for (j, r) in states.iter().enumerate() {
                prop_assert_eq!(r.head(member_id(i)), Some(own), "{} sees {} differently", j, i);
            }
            prop_assert_eq!(s.delivered_to_all(), own.0);
        }
        // At least four check rounds ran after the last send.
        prop_assert!(out.checks_accepted >= n * (n - 1) * 4);
    }

    #[test]
    fn equivocation_is_reported_by_every_honest_member(
        n in 3usize..=8, seed in any::<u64>(), messages in 0usize..30, dup in 0u64..20,
        sender_pick in any::<usize>(), at in 0u64..4_000, split_bits in any::<u64>(),
    ) {
        let sender = sender_pick % n;
        // Other content to a random non-empty set of the other members.
        let mut split = split_bits & ((1u64 << n) - 1) & !(1u64 << sender);
        if split == 0 {
            split = 1u64 << ((sender + 1) % n);
        }
        let adv = Adversary::Equivocate { sender, at, split };
        let (out, _) = Sim::new(params(n, seed, messages, dup, adv)).run();
        prop_assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
        let t_e = out.adversary_at.unwrap();
        let s = member_id(sender);
        for h in (0..n).filter(|&h| h != sender) {
            let found = out.violations.iter().any(|(t, who, v)| {
                *who == h && v.sender == s && *t <= t_e + EQUIVOCATION_DEADLINE
                    && matches!(v.kind, ViolationKind::Equivocation { .. } | ViolationKind::Conflict { .. })
            });
            prop_assert!(found, "member {} did not report equivocation by {} (sent at {}): {:?}", h, sender, t_e, out.violations);
        }
        // No honest member is accused by an honest member.
        for (_, who, v) in &out.violations {
            if *who != sender {
                prop_assert_eq!(v.sender, s, "false verdict {:?}", v);
            }
        }
    }

    #[test]
    fn withholding_is_reported_by_every_honest_member(
        n in 3usize..=8, seed in any::<u64>(), messages in 0usize..30, dup in 0u64..20,
        sender_pick in any::<usize>(), victim_pick in any::<usize>(), at in 0u64..4_000, all_after in any::<bool>(),
    ) {
        let sender = sender_pick % n;
        let victim = (sender + 1 + victim_pick % (n - 1)) % n;
        let adv = Adversary::Withhold { sender, victim, at, all_after };
        let (out, _) = Sim::new(params(n, seed, messages, dup, adv)).run();
        prop_assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
        let t_w = out.adversary_at.unwrap();
        let s = member_id(sender);
        for h in (0..n).filter(|&h| h != sender) {
            let found = out.violations.iter().any(|(t, who, v)| {
                *who == h && v.sender == s && *t <= t_w + DEADLINE
                    && matches!(v.kind, ViolationKind::Behind { .. } | ViolationKind::Missing { .. })
            });
            prop_assert!(found, "member {} did not report {} withholding from {} (at {}): {:?}", h, sender, victim, t_w, out.violations);
        }
        for (_, who, v) in &out.violations {
            if *who != sender {
                prop_assert_eq!(v.sender, s, "false verdict {:?}", v);
                // The victim is named as the reporter of what it lacks, or is us.
                if let ViolationKind::Behind { .. } = v.kind {
                    prop_assert_eq!(v.reporter, member_id(victim));
                }
            }
        }
    }

    #[test]
    fn forged_replayed_checks_and_bad_receipts_are_rejected(
        n in 3usize..=8, seed in any::<u64>(), messages in 1usize..30, dup in 0u64..20,
        raw in prop::collection::vec((0u64..8_000, 0u8..5, any::<usize>(), any::<usize>(), any::<usize>(), any::<u16>()), 1..24),
    ) {
        let injections: Vec<_> = raw.iter().map(|&(at, kind, a, b, c, bit)| {
            let (to, from, author) = (a % n, b % n, c % n);
            let inj = match kind {
                0 => Injection::ReplayCheck { to, from },
                1 => Injection::ForgeCheck { to, from, author },
                2 => Injection::StrangerCheck { to },
                3 => Injection::BadReceipt { to, from, bit },
                _ => Injection::WrongKeyReceipt { to, from },
            };
            (at, inj)
        }).collect();
        let mut p = params(n, seed, messages, dup, Adversary::None);
        p.injections = injections;
        let (out, _) = Sim::new(p).run();
        prop_assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
        prop_assert!(out.violations.is_empty(), "false verdicts: {:?}", out.violations);
        // The stranger and receipt injections always apply: they were rejected.
        let always = raw.iter().filter(|r| r.1 == 2 || ((r.1 == 3 || r.1 == 4) && r.2 % n != r.3 % n)).count();
        prop_assert!(out.rejected_checks.len() + out.rejected_receipts.len() >= always);
    }
}
