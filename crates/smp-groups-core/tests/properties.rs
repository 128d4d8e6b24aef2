//! Property tests over random operation sequences with faults (loss, duplicates,
//! reordering, crashes of any agent), with adds, sends, direct messages,
//! leaves, removals, deletes, open invitations and approvals.
//!
//! The scenario model (operations, runner, checks) is
//! [`smp_groups_core::sim::model`], shared with the `group_sim` fuzz target;
//! this file generates the cases (`op`, `scenario`), bounds the totals over
//! them, and keeps the regression cases found so far.
//!
//! What is asserted, after the run settles:
//! - every agent that still holds the group finished its join (no stall), and its
//!   view of the membership (connected and pending alike) is exactly the set of
//!   agents that hold the group: computed from who is in, not only agreement;
//! - every agent that held the group and no longer does was told why (`LEFT`,
//!   `OUT` or `DELD`), and a deleted group is held by nobody;
//! - every message reaches, exactly once, every member that was in the group
//!   (join complete on both sides) when it was sent and is still in it, unless
//!   its sender was removed; no agent receives a message twice; every send of a
//!   member still in the group completes (`RCVD` for all);
//! - no `VIOLATION` in these honest runs; no event names an unknown member or group;
//! - no input refused as the fault of a peer or of the agent itself
//!   ([`FaultSource::Peer`], [`FaultSource::Local`]) and no `FAULT` event: the
//!   simulated relay's duplicates, reordering and losses are counted as the
//!   relay's (or as expected races), and without any injected fault nothing is
//!   counted as a duplicate.
//!
//! Every operation that could not be applied is counted by cause, and the totals
//! over all cases are bounded (a run where most operations were skipped proves
//! nothing). `CORE_PROP_CASES` sets the number of cases (default 64); the ignored
//! `random_operations_10k` runs 10,000.

use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use smp_groups_core::sim::Faults;
use smp_groups_core::sim::model::{self, Case, Op, Stats};
use smp_groups_core::{FaultKind, FaultSource};

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..n, 0..n).prop_map(|(by, who)| Op::Add { by, who }),
        10 => (0..n).prop_map(|by| Op::Send { by }),
        5 => (0..n, 0..n).prop_map(|(by, to)| Op::DirectSend { by, to }),
        2 => (0..n).prop_map(Op::Leave),
        2 => (0..n, 0..n).prop_map(|(by, who)| Op::Remove { by, who }),
        2 => (0..n).prop_map(Op::Crash),
        10 => (0u16..3000).prop_map(Op::Run),
        1 => (0..n).prop_map(|by| Op::Delete { by }),
        3 => Just(Op::Settle),
    ]
}

fn scenario() -> impl Strategy<Value = Case> {
    (3usize..=8).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..40),
            (0u32..30_000, 0u32..30_000, 0u64..300).prop_map(|(l, d, m)| Faults {
                loss_ppm: l,
                duplicate_ppm: d,
                max_delay_ms: m,
            }),
            any::<u64>(),
            any::<bool>(),
            prop_oneof![2 => Just(64usize), 1 => 2usize..6],
        )
            .prop_map(
                |(n, ops, faults, seed, open_invitations, approval_threshold)| Case {
                    n,
                    ops,
                    faults,
                    seed,
                    open_invitations,
                    approval_threshold,
                },
            )
    })
}

/// Checks one case with the shared model ([`model::check`]); with
/// `CORE_PROP_DUMP` set, the core's logs go to the test output
/// (`CORE_PROP_LOG` filters them).
fn check(case: &Case, stats: &mut Stats) -> Result<(), TestCaseError> {
    if std::env::var_os("CORE_PROP_DUMP").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("CORE_PROP_LOG").unwrap_or_else(|_| "smp_groups_core=debug".into()),
            )
            .with_test_writer()
            .try_init();
    }
    model::check(case, stats).map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Runs `cases` random cases and bounds what was skipped over all of them.
fn run_cases(cases: u32) {
    let total = Mutex::new(Stats::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&scenario(), |case| {
        let mut stats = Stats::default();
        check(&case, &mut stats)?;
        total.lock().expect("stats").add(&stats);
        Ok(())
    });
    assert!(
        result.is_ok(),
        "{}",
        result.err().map(|e| e.to_string()).unwrap_or_default()
    );
    let t = total.into_inner().expect("stats");
    eprintln!("{t:#?}");
    assert_eq!(t.cases, u64::from(cases));
    // Most generated operations took effect, and the checks had material.
    // The bounds are loose enough for the spread of a 64-case sample (fresh
    // seeds gave 69.8 % applied and 44 deliveries in 64 cases) and still
    // catch runs where most operations were skipped or nothing was checked.
    assert!(
        t.applied * 10 >= t.ops * 6,
        "too many operations skipped: {t:?}"
    );
    // Adds asked of a member whose own join is not complete yet are refused
    // (and counted). Twelve fresh 64-case samples gave 1 % to 10 % of the
    // adds completed, and one sample went above a fifth (a case where a
    // joining member was asked again and again): a third still catches a run
    // where adds mostly failed.
    assert!(
        t.add_refused * 3 <= t.adds_completed,
        "too many refused adds: {t:?}"
    );
    assert!(t.adds_completed >= u64::from(cases), "too few adds: {t:?}");
    assert!(
        t.deliveries_checked * 2 >= u64::from(cases),
        "too few deliveries: {t:?}"
    );
    // Direct messages: sent only between members whose join is complete, so
    // fewer than group sends (242 in 1,000 cases at a third of this weight);
    // 59 % of them were checked (the rest had a sender or recipient leave or
    // be removed afterwards). Loose bounds, for 64-case samples too.
    assert!(
        t.direct_sends * 16 >= u64::from(cases) && t.direct_checked * 4 >= t.direct_sends,
        "too few direct messages checked: {t:?}"
    );
    // Sends of a member that was removed are not checked. Over 1,000 cases
    // they are about 7 % (267 of 3,892); removals come in clusters (a removed
    // member's sends all count), so 64-case samples spread from 3 % to 12.5 %
    // (seen on fresh seeds): a fifth still catches a run that checked little.
    assert!(
        t.sender_removed * 5 <= t.sends,
        "too many unchecked sends: {t:?}"
    );
    // The relay's duplicates were seen, and counted as the relay's.
    assert!(
        t.refusals.get(FaultSource::Relay, FaultKind::Duplicate) > 0,
        "no duplicate counted: {}",
        t.refusals
    );
}

#[test]
fn random_operations_with_faults() {
    let cases = std::env::var("CORE_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    run_cases(cases);
}

/// The nightly-style run: 10,000 cases.
#[test]
#[ignore = "long: 10,000 cases"]
fn random_operations_10k() {
    run_cases(10_000);
}

fn case(n: usize, ops: Vec<Op>, faults: Faults, seed: u64) -> Case {
    Case {
        n,
        ops,
        faults,
        seed,
        open_invitations: false,
        approval_threshold: 64,
    }
}

/// Issue 11's shrunk case: agent 0's view lacked a member that agents 2 and 4
/// had. Agent 3's introducer was removed before its join completed; it left,
/// but its `LEFT` was dropped on the connections still waiting for `HELLO`.
#[test]
fn regression_left_before_hello_n7() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Run(203),
        Op::Run(1402),
        Op::Run(575),
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Add { by: 4, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Run(460),
        Op::Remove { by: 6, who: 1 },
    ];
    let faults = Faults {
        loss_ppm: 11012,
        duplicate_ppm: 21105,
        max_delay_ms: 33,
    };
    let c = case(7, ops, faults, 4_177_112_992_971_552_613);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by the 1,000-case run of the earlier property test: a message from
/// agent 1 never reached agent 2.
#[test]
fn regression_message_lost_n6() {
    let ops = vec![
        Op::Add { by: 0, who: 4 },
        Op::Run(345),
        Op::Add { by: 1, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Run(742),
        Op::Send { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 9139,
        duplicate_ppm: 1,
        max_delay_ms: 63,
    };
    let c = case(6, ops, faults, 4_104_968_191_225_727_933);
    check(&c, &mut Stats::default()).expect("exactly once");
}

/// A delete while the only other member's join is in flight.
#[test]
fn regression_delete_during_join() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Delete { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Delete { by: 0 },
    ];
    let c = case(5, ops, Faults::default(), 98_565_363_886_668);
    check(&c, &mut Stats::default()).expect("deleted everywhere");
}

#[test]
fn regression_delete_with_open_invitations() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 2, who: 0 },
        Op::Delete { by: 2 },
        Op::Remove { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 28186,
        duplicate_ppm: 23968,
        max_delay_ms: 81,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(5, ops, faults, 3_077_736_506_856_027_600)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_deleter_keeps_group() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Run(132),
        Op::Remove { by: 3, who: 2 },
        Op::Delete { by: 4 },
    ];
    let faults = Faults {
        loss_ppm: 122,
        duplicate_ppm: 25066,
        max_delay_ms: 12,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 64,
        ..case(5, ops, faults, 6_447_940_569_206_508_666)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_delete_and_leave_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 3 },
        Op::Run(1540),
        Op::Add { by: 3, who: 1 },
        Op::Run(183),
        Op::Leave(2),
        Op::Send { by: 3 },
        Op::Add { by: 3, who: 0 },
        Op::Add { by: 2, who: 3 },
        Op::Run(99),
        Op::Send { by: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Send { by: 3 },
        Op::Delete { by: 0 },
        Op::Leave(3),
        Op::Add { by: 2, who: 3 },
        Op::Add { by: 1, who: 3 },
        Op::Run(377),
        Op::Leave(3),
        Op::Run(1017),
        Op::Add { by: 1, who: 3 },
        Op::Add { by: 3, who: 3 },
        Op::Remove { by: 1, who: 3 },
        Op::Add { by: 2, who: 3 },
        Op::Run(723),
        Op::Send { by: 0 },
        Op::Send { by: 3 },
        Op::Add { by: 0, who: 1 },
        Op::Send { by: 3 },
        Op::Send { by: 0 },
        Op::Delete { by: 0 },
        Op::Add { by: 2, who: 2 },
        Op::Send { by: 2 },
        Op::Add { by: 1, who: 3 },
        Op::Add { by: 1, who: 3 },
        Op::Send { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 16398,
        duplicate_ppm: 9760,
        max_delay_ms: 57,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 5,
        ..case(4, ops, faults, 9_861_986_351_614_806_269)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_leave_after_crash_open_inv() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Run(265),
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Crash(1),
        Op::Leave(0),
        Op::Run(584),
    ];
    let faults = Faults {
        loss_ppm: 20760,
        duplicate_ppm: 1991,
        max_delay_ms: 124,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(3, ops, faults, 17_837_990_790_469_510_940)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_a() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 2, who: 0 },
        Op::Send { by: 4 },
        Op::Run(125),
        Op::Add { by: 3, who: 0 },
        Op::Crash(0),
        Op::Crash(2),
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 6 },
        Op::Run(95),
        Op::Add { by: 4, who: 0 },
        Op::Run(255),
        Op::Add { by: 0, who: 0 },
        Op::Remove { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 7315,
        duplicate_ppm: 16075,
        max_delay_ms: 25,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(7, ops, faults, 7_094_663_707_023_650_308)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_b() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 6, who: 0 },
        Op::Delete { by: 3 },
        Op::Run(611),
        Op::Crash(0),
    ];
    let faults = Faults {
        loss_ppm: 4283,
        duplicate_ppm: 1,
        max_delay_ms: 69,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(7, ops, faults, 11_945_222_302_459_417_009)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_c() {
    let ops = vec![
        Op::Add { by: 1, who: 0 },
        Op::Run(2753),
        Op::Send { by: 2 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Send { by: 0 },
        Op::Run(87),
        Op::Run(2168),
        Op::Add { by: 3, who: 2 },
    ];
    let faults = Faults {
        loss_ppm: 15202,
        duplicate_ppm: 8140,
        max_delay_ms: 85,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(4, ops, faults, 2_462_972_356_081_337_289)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_d() {
    let ops = vec![
        Op::Add { by: 3, who: 1 },
        Op::Add { by: 2, who: 2 },
        Op::Send { by: 3 },
        Op::Run(1037),
        Op::Run(468),
        Op::Run(1436),
        Op::Add { by: 1, who: 2 },
        Op::Send { by: 1 },
        Op::Remove { by: 3, who: 3 },
        Op::Run(2754),
        Op::Run(2130),
        Op::Run(1815),
        Op::Send { by: 2 },
        Op::Send { by: 0 },
        Op::Add { by: 1, who: 2 },
        Op::Delete { by: 3 },
        Op::Run(1055),
        Op::Add { by: 2, who: 3 },
        Op::Add { by: 0, who: 1 },
        Op::Run(751),
        Op::Add { by: 0, who: 3 },
        Op::Add { by: 1, who: 1 },
        Op::Run(386),
        Op::Add { by: 3, who: 3 },
        Op::Run(2267),
        Op::Add { by: 0, who: 3 },
        Op::Delete { by: 1 },
        Op::Send { by: 2 },
        Op::Crash(1),
        Op::Run(2085),
        Op::Send { by: 1 },
        Op::Add { by: 3, who: 0 },
        Op::Send { by: 2 },
        Op::Run(2403),
        Op::Add { by: 2, who: 3 },
        Op::Remove { by: 1, who: 0 },
        Op::Send { by: 1 },
        Op::Run(808),
        Op::Add { by: 2, who: 2 },
    ];
    let faults = Faults {
        loss_ppm: 26160,
        duplicate_ppm: 836,
        max_delay_ms: 67,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(4, ops, faults, 17_207_899_047_475_588_279)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_e() {
    let ops = vec![
        Op::Add { by: 0, who: 1 },
        Op::Add { by: 0, who: 1 },
        Op::Crash(3),
        Op::Run(128),
        Op::Send { by: 2 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 29122,
        duplicate_ppm: 17954,
        max_delay_ms: 53,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 4,
        ..case(4, ops, faults, 16_130_844_451_938_258_251)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_auto_g() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(455),
        Op::Send { by: 2 },
        Op::Leave(2),
        Op::Crash(0),
    ];
    let faults = Faults {
        loss_ppm: 0,
        duplicate_ppm: 1,
        max_delay_ms: 18,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 64,
        ..case(3, ops, faults, 1_055_489_481_334_086_342)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_delete_after_remove_and_leave() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Settle,
        Op::Remove { by: 1, who: 2 },
        Op::Send { by: 2 },
        Op::Leave(0),
        Op::Delete { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 6829,
        duplicate_ppm: 0,
        max_delay_ms: 136,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 64,
        ..case(3, ops, faults, 8_043_467_359_133_673_939)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_message_from_member_removed_while_leaving() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(1140),
        Op::Send { by: 0 },
        Op::Remove { by: 1, who: 0 },
        Op::Leave(0),
    ];
    let faults = Faults {
        loss_ppm: 0,
        duplicate_ppm: 0,
        max_delay_ms: 0,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 64,
        ..case(3, ops, faults, 0)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

#[test]
fn regression_deleted_generation_held_n6() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 1 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 1 },
        Op::Run(1327),
        Op::Add { by: 3, who: 0 },
        Op::Remove { by: 1, who: 0 },
        Op::Send { by: 4 },
        Op::Add { by: 0, who: 0 },
        Op::Run(951),
        Op::Delete { by: 0 },
        Op::Run(0),
    ];
    let faults = Faults {
        loss_ppm: 7815,
        duplicate_ppm: 808,
        max_delay_ms: 80,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 64,
        ..case(6, ops, faults, 7_270_652_418_418_256_016)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

/// Found by CI on a fresh seed: a removal waiting for approval (threshold 2)
/// whose remover left before it was approved was dropped as stale; the
/// removed member was out while the others kept it.
#[test]
fn regression_member_kept_after_removal_and_leave_n8() {
    let ops = vec![
        Op::Add { by: 0, who: 2 },
        Op::Settle,
        Op::Add { by: 0, who: 1 },
        Op::Remove { by: 3, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Run(301),
        Op::Run(1338),
        Op::Run(1254),
        Op::Remove { by: 7, who: 2 },
        Op::Leave(1),
    ];
    let faults = Faults {
        loss_ppm: 1364,
        duplicate_ppm: 12776,
        max_delay_ms: 0,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 2,
        ..case(8, ops, faults, 116_419_709)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

/// Found by CI on a fresh seed: a member kept across a delete and a leave
/// (fixed by sending LEFT on every live connection).
#[test]
fn regression_member_kept_after_delete_generation_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 0 },
        Op::Send { by: 0 },
        Op::Send { by: 0 },
        Op::Settle,
        Op::Send { by: 0 },
        Op::Run(271),
        Op::Send { by: 2 },
        Op::Remove { by: 1, who: 0 },
        Op::Send { by: 2 },
        Op::Add { by: 1, who: 2 },
        Op::Settle,
        Op::Add { by: 2, who: 0 },
        Op::Send { by: 0 },
        Op::Run(427),
        Op::Delete { by: 1 },
        Op::Run(546),
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(1263),
        Op::Leave(2),
    ];
    let faults = Faults {
        loss_ppm: 1,
        duplicate_ppm: 7478,
        max_delay_ms: 80,
    };
    let c = Case {
        open_invitations: false,
        approval_threshold: 64,
        ..case(4, ops, faults, 484_066_623_420_452_364)
    };
    check(&c, &mut Stats::default()).expect("holds");
}

/// Found by a 1,000-case run after the refusal counters went in: generation 0
/// was deleted, and agent 2 still held it.
#[test]
fn regression_deleted_generation_held_n3_open() {
    let ops = vec![
        Op::Crash(2),
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 2 },
        Op::Settle,
        Op::Add { by: 1, who: 0 },
        Op::Crash(1),
        Op::Add { by: 0, who: 0 },
        Op::Delete { by: 0 },
        Op::Add { by: 0, who: 1 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 2 },
    ];
    let faults = Faults {
        loss_ppm: 22861,
        duplicate_ppm: 19470,
        max_delay_ms: 124,
    };
    let mut c = case(3, ops, faults, 15_542_363_175_822_980_046);
    c.open_invitations = true;
    check(&c, &mut Stats::default()).expect("deleted everywhere");
}

/// Found by a 10,000-case run: agent 2 left while agent 1's add was in
/// flight and agent 1 crashed; agent 2 still saw agent 1 afterwards.
#[test]
fn regression_leave_during_add_with_crash_n3() {
    let ops = vec![
        Op::Crash(1),
        Op::Run(0),
        Op::Run(96),
        Op::Add { by: 0, who: 1 },
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(2783),
        Op::Crash(1),
        Op::Leave(2),
        Op::Send { by: 0 },
        Op::Send { by: 0 },
        Op::Run(1348),
    ];
    let faults = Faults {
        loss_ppm: 24941,
        duplicate_ppm: 24051,
        max_delay_ms: 189,
    };
    let c = case(3, ops, faults, 8_954_991_876_690_546_906);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: a message from agent 1 never reached agent 2.
#[test]
fn regression_message_lost_after_leaves_n3() {
    let ops = vec![
        Op::Add { by: 0, who: 2 },
        Op::Send { by: 0 },
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 0 },
        Op::Settle,
        Op::Leave(0),
        Op::Send { by: 0 },
        Op::Leave(2),
        Op::Remove { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 1973,
        duplicate_ppm: 1,
        max_delay_ms: 4,
    };
    let c = case(3, ops, faults, 91_277_867_169_262_827);
    check(&c, &mut Stats::default()).expect("exactly once");
}

/// Found by a 10,000-case run: agent 1 still saw a member that left.
#[test]
fn regression_remove_then_leave_n3() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(388),
        Op::Send { by: 0 },
        Op::Settle,
        Op::Remove { by: 2, who: 0 },
        Op::Leave(2),
    ];
    let faults = Faults {
        loss_ppm: 9158,
        duplicate_ppm: 10472,
        max_delay_ms: 1,
    };
    let c = case(3, ops, faults, 9_357_422_634_048_332_618);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: generation 0 was deleted, and agent 1 still
/// held it.
#[test]
fn regression_delete_after_remove_open_n3() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Crash(2),
        Op::Run(2281),
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 1 },
        Op::Send { by: 2 },
        Op::Send { by: 2 },
        Op::Run(2326),
        Op::Remove { by: 0, who: 2 },
        Op::Run(1796),
        Op::Delete { by: 2 },
    ];
    let faults = Faults {
        loss_ppm: 25361,
        duplicate_ppm: 1,
        max_delay_ms: 290,
    };
    let mut c = case(3, ops, faults, 15_671_451_395_477_387_409);
    c.open_invitations = true;
    check(&c, &mut Stats::default()).expect("deleted everywhere");
}

/// Found by a 10,000-case run (approval threshold 2): agent 0 lacked a member
/// that the others had.
#[test]
fn regression_member_missing_after_approved_removal_n3() {
    let ops = vec![
        Op::Crash(2),
        Op::Add { by: 0, who: 2 },
        Op::Run(1110),
        Op::Add { by: 2, who: 0 },
        Op::Run(621),
        Op::Remove { by: 1, who: 2 },
        Op::Leave(1),
        Op::Add { by: 0, who: 0 },
        Op::Remove { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 11310,
        duplicate_ppm: 1,
        max_delay_ms: 105,
    };
    let c = Case {
        approval_threshold: 2,
        ..case(3, ops, faults, 1_791_918_342_971_523_669)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: generation 0 was deleted, and agent 2 still
/// held it.
#[test]
fn regression_deleted_generation_held_after_remove_n3() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Run(1139),
        Op::Remove { by: 2, who: 1 },
        Op::Add { by: 0, who: 0 },
        Op::Run(204),
        Op::Delete { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 5118,
        duplicate_ppm: 18385,
        max_delay_ms: 256,
    };
    let c = case(3, ops, faults, 18_028_513_077_079_506_854);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations): a message from agent 1
/// never reached agent 3, which was in the group when it was sent. Agents 1
/// and 3 joined concurrently and each completed its join without the other
/// (agent 3 took a `FWD` for agent 1 as a second attempt while both were
/// pending); agent 1 sent before it knew agent 3, to the members it knew,
/// and nothing gives agent 3 that message once they connect. Open: either
/// the sender catches a member up from the anchor it was given, or a join
/// is not complete while such a member is unknown.
#[test]
fn regression_message_lost_open_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 1 },
        Op::Send { by: 2 },
        Op::Send { by: 0 },
        Op::Run(1372),
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 1 },
        Op::Add { by: 1, who: 0 },
        Op::Send { by: 0 },
        Op::Run(1835),
        Op::Send { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 2581,
        duplicate_ppm: 24810,
        max_delay_ms: 107,
    };
    let c = Case {
        open_invitations: true,
        ..case(4, ops, faults, 6_058_127_609_782_128_178)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations, a crash): a message from
/// agent 3 never reached agent 2.
#[test]
fn regression_message_lost_open_crash_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 3 },
        Op::Settle,
        Op::Add { by: 1, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Run(222),
        Op::Run(1602),
        Op::Run(2411),
        Op::Send { by: 3 },
        Op::Add { by: 0, who: 0 },
        Op::Crash(1),
        Op::Run(480),
        Op::Settle,
    ];
    let faults = Faults {
        loss_ppm: 6344,
        duplicate_ppm: 1,
        max_delay_ms: 290,
    };
    let c = Case {
        open_invitations: true,
        ..case(4, ops, faults, 2_816_776_021_797_205_687)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations, approval above 2 members,
/// a crash, a removal): agent 0's view kept a member the others had dropped.
#[test]
fn regression_member_kept_after_removal_open_approval_n4() {
    let ops = vec![
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 2 },
        Op::Crash(1),
        Op::Run(0),
        Op::Send { by: 0 },
        Op::Run(1765),
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Send { by: 2 },
        Op::Run(1522),
        Op::Run(1520),
        Op::Remove { by: 3, who: 2 },
    ];
    let faults = Faults {
        loss_ppm: 6201,
        duplicate_ppm: 1,
        max_delay_ms: 155,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 2,
        ..case(4, ops, faults, 2_127_697_557_013_649_809)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: two members removed each other while a third
/// joined; agent 2 kept a member that was out.
#[test]
fn regression_member_kept_after_mutual_removal_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 0 },
        Op::Settle,
        Op::Add { by: 0, who: 0 },
        Op::Run(287),
        Op::Remove { by: 1, who: 0 },
        Op::Remove { by: 0, who: 1 },
        Op::Run(1755),
        Op::Add { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 13035,
        duplicate_ppm: 869,
        max_delay_ms: 41,
    };
    let c = case(4, ops, faults, 12_717_902_187_833_158_315);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: a removal by a member that had crashed while
/// a join was in flight; agent 1 kept a member the others had dropped.
#[test]
fn regression_member_kept_after_remove_with_crash_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 1 },
        Op::Run(528),
        Op::Add { by: 1, who: 1 },
        Op::Run(2262),
        Op::Add { by: 0, who: 0 },
        Op::Crash(2),
        Op::Run(672),
        Op::Remove { by: 2, who: 3 },
    ];
    let faults = Faults {
        loss_ppm: 3111,
        duplicate_ppm: 1,
        max_delay_ms: 3,
    };
    let c = case(4, ops, faults, 742_703_776_659_620_636);
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (approval above 2 members, crashes, a
/// removal): agent 1 kept a member the others had dropped.
#[test]
fn regression_member_kept_after_approved_removal_crashes_n4() {
    let ops = vec![
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 2 },
        Op::Crash(0),
        Op::Send { by: 0 },
        Op::Settle,
        Op::Add { by: 2, who: 0 },
        Op::Run(649),
        Op::Run(78),
        Op::Send { by: 0 },
        Op::Run(2836),
        Op::Add { by: 2, who: 0 },
        Op::Run(1492),
        Op::Send { by: 3 },
        Op::Run(126),
        Op::Run(803),
        Op::Send { by: 3 },
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 1 },
        Op::Crash(3),
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 0 },
        Op::Run(2016),
        Op::Remove { by: 3, who: 2 },
        Op::Crash(0),
    ];
    let faults = Faults {
        loss_ppm: 17031,
        duplicate_ppm: 5605,
        max_delay_ms: 119,
    };
    let c = Case {
        approval_threshold: 2,
        ..case(4, ops, faults, 14_264_381_341_680_637_227)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run: a removal, a leave and a deletion crossing
/// (n = 3); agent 1 still held the deleted group. Agent 2 added agent 1 and
/// removed agent 0 before agent 1 was introduced to it, then left; agent 0
/// deleted the group before it heard of its removal. The only member that
/// knew both (agent 2) had left when agent 0's `DEL` reached it, so nothing
/// can reach agent 1, which is alone in the group (it got `EMPTY`). Decided:
/// a deletion by a member being removed binds the members it could reach (and
/// those they pass it on to); agent 1 never knew agent 0 and keeps the group
/// (docs/groups.md, "Deletion by a member being removed"). The case checks
/// that this is the only way it is still held, and what agent 1 holds.
#[test]
fn regression_deleted_generation_held_after_remove_leave_n3() {
    let ops = vec![
        Op::Add { by: 0, who: 1 },
        Op::Settle,
        Op::Add { by: 1, who: 0 },
        Op::Run(228),
        Op::Run(838),
        Op::Remove { by: 2, who: 0 },
        Op::Leave(2),
        Op::Delete { by: 0 },
    ];
    let faults = Faults {
        loss_ppm: 0,
        duplicate_ppm: 0,
        max_delay_ms: 144,
    };
    let c = case(3, ops, faults, 322_594_533_346_702_660);
    let mut stats = Stats::default();
    check(&c, &mut stats).expect("converges");
    assert_eq!(stats.deletes, 1);
    assert_eq!(stats.deletes_unreachable, 1, "{stats:?}");
}

/// Found by a 10,000-case run (open invitations, approvals from 2 members,
/// n = 5): agent 2 saw other members than those in the group.
#[test]
fn regression_member_view_after_removals_and_leave_open_n5() {
    let ops = vec![
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Settle,
        Op::Add { by: 0, who: 0 },
        Op::Send { by: 4 },
        Op::Send { by: 4 },
        Op::Settle,
        Op::Add { by: 3, who: 2 },
        Op::Add { by: 4, who: 0 },
        Op::Crash(2),
        Op::Add { by: 0, who: 0 },
        Op::Run(968),
        Op::Run(2199),
        Op::Run(1256),
        Op::Remove { by: 2, who: 0 },
        Op::Remove { by: 1, who: 3 },
        Op::Leave(1),
        Op::Send { by: 3 },
        Op::Run(383),
    ];
    let faults = Faults {
        loss_ppm: 15785,
        duplicate_ppm: 19053,
        max_delay_ms: 169,
    };
    let c = Case {
        open_invitations: true,
        approval_threshold: 2,
        ..case(5, ops, faults, 18_130_251_945_133_484_823)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations, n = 4, a crash and a
/// leave): a message of agent 2 did not reach agent 1 exactly once. The two
/// were introduced both ways at once; agent 2 queued the message on its own
/// invitation (not established), left, and only its other attempt (its
/// confirmation out, waiting for `HELLO`) carried `LEFT`. A leaver now moves
/// what waits on an attempt that will not be established to one that still
/// delivers, ahead of `LEFT`.
#[test]
fn regression_message_not_once_after_crash_and_leave_open_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 2 },
        Op::Settle,
        Op::Add { by: 2, who: 0 },
        Op::Add { by: 1, who: 0 },
        Op::Run(1188),
        Op::Run(1033),
        Op::Send { by: 2 },
        Op::Crash(0),
        Op::Leave(1),
    ];
    let faults = Faults {
        loss_ppm: 0,
        duplicate_ppm: 0,
        max_delay_ms: 103,
    };
    let c = Case {
        open_invitations: true,
        ..case(4, ops, faults, 7_316_393_676_336_541_679)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run at the end of a session (open invitations,
/// n = 4, loss and duplicates, no crash): agent 1 completed its join without
/// being connected to agent 3 (they joined concurrently), then deleted the
/// group; its `DEL` reached only the members it knew, and the members that
/// knew agent 3 did not pass it on, so agent 3 still held the group. A
/// member that gets `DEL` now passes it on to the members it added whose
/// late introduction to the deleter still waits for the deleter's answer.
#[test]
fn regression_deleted_generation_held_open_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 1 },
        Op::Run(736),
        Op::Add { by: 1, who: 0 },
        Op::Run(1621),
        Op::Add { by: 2, who: 0 },
        Op::Run(1280),
        Op::Add { by: 0, who: 0 },
        Op::Delete { by: 1 },
    ];
    let faults = Faults {
        loss_ppm: 14107,
        duplicate_ppm: 13317,
        max_delay_ms: 78,
    };
    let c = Case {
        open_invitations: true,
        ..case(4, ops, faults, 16_097_633_175_100_827_020)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations, n = 4, no loss, a leave):
/// agent 3 compared member sets with another member during agent 2's join (3
/// against 4), then again after agent 2 left, when its set was the same 3
/// again and that member's check still held 4. The same pair of digests, seen
/// the grace period apart, was taken for a lasting difference and reported.
/// Now every change of our own set starts the comparisons over.
#[test]
fn regression_members_reported_after_leave_n4() {
    let ops = vec![
        Op::Add { by: 0, who: 3 },
        Op::Add { by: 0, who: 1 },
        Op::Send { by: 0 },
        Op::Send { by: 0 },
        Op::Run(1440),
        Op::Run(1740),
        Op::Add { by: 0, who: 0 },
        Op::Run(370),
        Op::Send { by: 1 },
        Op::Send { by: 0 },
        Op::Send { by: 1 },
        Op::Send { by: 1 },
        Op::Send { by: 1 },
        Op::Settle,
        Op::Leave(2),
        Op::Send { by: 0 },
    ];
    let faults = Faults {
        loss_ppm: 0,
        duplicate_ppm: 0,
        max_delay_ms: 26,
    };
    let c = Case {
        open_invitations: true,
        ..case(4, ops, faults, 5_409_573_636_997_897_029)
    };
    check(&c, &mut Stats::default()).expect("converges");
}

/// Found by a 10,000-case run (open invitations, n = 6, threshold 64, loss,
/// a crash and a removal): agent 0's view lacked agent 4, which the others
/// held. Agent 4 was down longer than the pending-member time while agent
/// 0's `HELLO` waited in its queue; back, it dropped agent 0 as never
/// connected before reading it, and agent 0, finding 4's queue gone, dropped
/// 4 in turn. The time now counts from the restart too.
#[test]
fn regression_member_missing_after_crash_and_remove_open_n6() {
    let ops = vec![
        Op::Send { by: 0 },
        Op::Add { by: 0, who: 2 },
        Op::Run(539),
        Op::Add { by: 0, who: 4 },
        Op::Settle,
        Op::Add { by: 1, who: 1 },
        Op::Add { by: 3, who: 5 },
        Op::Run(1584),
        Op::Send { by: 4 },
        Op::Run(218),
        Op::Run(2229),
        Op::Crash(4),
        Op::Remove { by: 4, who: 5 },
        Op::Add { by: 5, who: 0 },
        Op::Add { by: 0, who: 0 },
        Op::Add { by: 0, who: 0 },
    ];
    let faults = Faults {
        loss_ppm: 9971,
        duplicate_ppm: 1,
        max_delay_ms: 52,
    };
    let c = Case {
        open_invitations: true,
        ..case(6, ops, faults, 5_573_968_655_996_907_600)
    };
    check(&c, &mut Stats::default()).expect("converges");
}
