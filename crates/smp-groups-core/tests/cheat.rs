//! A cheating member (`cheat` feature) in the simulation: one of five
//! equivocates or withholds from its second message on, and every honest
//! member reports a `Violation` naming it within two check rounds; an
//! honest run of the same length reports nothing.
//!
//! A round: every member sends one group message, everything settles and is
//! acknowledged, then every member sends its `G_CHECK` (`Command::Check`)
//! and everything settles again; between rounds the clock moves past the
//! integrity grace period (60 s), as check rounds are spaced in a group.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Cheat, CheatMode, Command, Config, Event};
use smp_groups_integrity::ViolationKind;
use smp_groups_wire::agent::MemberId;

const MEMBERS: usize = 5;
const CHEATER: usize = 1;
const ROUNDS: usize = 4;
/// The cheat starts with the cheater's message of this round (1-based),
/// which is its group-wide message id too (one message a round).
const CHEAT_ROUND: u64 = 2;

fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 64,
        ..Config::default()
    }
}

/// What a run saw: per member, the round of its first violation naming the
/// cheater, and every violation it got.
struct Outcome {
    first: BTreeMap<usize, usize>,
    violations: BTreeMap<usize, Vec<smp_groups_integrity::Violation>>,
    /// Per member, the cheater's group-wide ids it saw in `MSG`.
    seen_ids: BTreeMap<usize, BTreeSet<u64>>,
    cheater: MemberId,
}

fn run(cheat: Option<CheatMode>, seed: u64) -> Outcome {
    let mut sim = Sim::new(MEMBERS, &config(), Faults::default(), seed);
    let hs: Vec<GroupHandle> = sim.build_group(MEMBERS).expect("group built");
    sim.settle_all();
    if let Some(mode) = cheat {
        sim.set_cheat(
            CHEATER,
            Some(Cheat {
                mode,
                from_msg: CHEAT_ROUND,
                until_msg: None,
            }),
        );
    }
    let mut acked = BTreeMap::new();
    let mut first = BTreeMap::new();
    for round in 1..=ROUNDS {
        for h in &hs {
            sim.command(
                h.agent,
                Command::Send {
                    group: h.alias.clone(),
                    body: format!("m{} r{round}", h.agent).into_bytes(),
                },
            );
        }
        sim.settle_all();
        sim.ack_all(&hs, &mut acked);
        sim.settle_all();
        sim.check_all(&hs);
        for h in &hs {
            let any = sim
                .events(h.agent)
                .iter()
                .any(|e| matches!(e.event, Event::Violation { .. }));
            if any {
                first.entry(h.agent).or_insert(round);
            }
        }
        sim.run_until(sim.now() + 61_000);
    }
    // The cheater's member id, from what the others got from it.
    let cheater = hs
        .iter()
        .filter(|h| h.agent != CHEATER)
        .find_map(|h| {
            sim.events(h.agent).iter().find_map(|e| match &e.event {
                Event::Msg { member, body, .. } if body.starts_with(b"m1 ") => Some(*member),
                _ => None,
            })
        })
        .expect("the cheater's messages reached someone");
    let mut violations = BTreeMap::new();
    let mut seen_ids = BTreeMap::new();
    for h in &hs {
        let mut v = Vec::new();
        let mut ids = BTreeSet::new();
        for e in sim.events(h.agent) {
            match &e.event {
                Event::Violation { violation, .. } => v.push(*violation),
                Event::Msg { member, meta, .. } if *member == cheater => {
                    ids.insert(meta.snd_msg_id);
                }
                _ => {}
            }
        }
        violations.insert(h.agent, v);
        seen_ids.insert(h.agent, ids);
    }
    let o = Outcome {
        first,
        violations,
        seen_ids,
        cheater,
    };
    print(cheat, &o);
    o
}

fn print(cheat: Option<CheatMode>, o: &Outcome) {
    eprintln!("{cheat:?}: first violation by round (cheat from round {CHEAT_ROUND}):");
    for (m, v) in &o.violations {
        eprintln!(
            "  member {m}: round {:?}, {} violations: {:?}",
            o.first.get(m),
            v.len(),
            v.iter().map(|v| v.kind).collect::<Vec<_>>()
        );
    }
}

/// The id a violation names to the client (as the agent's `VIOLATION` does).
fn named_id(kind: ViolationKind) -> u64 {
    match kind {
        ViolationKind::Equivocation { msg_id, .. }
        | ViolationKind::Conflict { msg_id }
        | ViolationKind::ReceiptMismatch { msg_id, .. } => msg_id,
        ViolationKind::Behind { reported, .. } => reported + 1,
        ViolationKind::Missing { ours, .. } => ours + 1,
        ViolationKind::UnsentClaimed { claimed, .. } => claimed,
        ViolationKind::ReportedBad => 0,
        ViolationKind::Members { theirs, .. } => u64::from(theirs),
    }
}

fn assert_detected(o: &Outcome, withheld_from: Option<usize>) {
    for m in (0..MEMBERS).filter(|m| *m != CHEATER) {
        let round = o.first.get(&m).copied();
        assert!(
            round.is_some_and(|r| r <= usize::try_from(CHEAT_ROUND).unwrap() + 1),
            "member {m}: first violation in round {round:?}, cheat from round {CHEAT_ROUND}"
        );
        let vs = &o.violations[&m];
        let about: Vec<_> = vs.iter().filter(|v| v.sender == o.cheater).collect();
        assert!(
            !about.is_empty(),
            "member {m}: no violation names the cheater: {vs:?}"
        );
        assert!(
            vs.iter().all(|v| v.sender == o.cheater),
            "member {m}: a violation about an honest member: {vs:?}"
        );
        // `ReportedBad` (another member marks the cheater `bad` in its
        // check) names no message id.
        for v in about
            .into_iter()
            .filter(|v| v.kind != ViolationKind::ReportedBad)
        {
            let id = named_id(v.kind);
            if withheld_from == Some(m) {
                // The member left out names the first id it never got.
                assert!(
                    !o.seen_ids[&m].contains(&id) && id >= CHEAT_ROUND,
                    "member {m}: {v:?} names id {id}, seen {:?}",
                    o.seen_ids[&m]
                );
            } else {
                assert!(
                    o.seen_ids[&m].contains(&id),
                    "member {m}: {v:?} names id {id}, not among those it saw: {:?}",
                    o.seen_ids[&m]
                );
            }
        }
    }
}

#[test]
fn honest_run_reports_nothing() {
    for seed in 1..=3 {
        let o = run(None, seed);
        for (m, v) in &o.violations {
            assert!(v.is_empty(), "seed {seed}: member {m}: {v:?}");
        }
    }
}

#[test]
fn equivocation_is_reported_by_every_honest_member_within_two_rounds() {
    for seed in 1..=3 {
        let o = run(Some(CheatMode::Equivocate), seed);
        assert_detected(&o, None);
        assert!(
            o.violations.iter().any(|(m, v)| *m != CHEATER
                && v.iter()
                    .any(|v| matches!(v.kind, ViolationKind::Equivocation { .. }))),
            "no equivocation reported"
        );
    }
}

/// The signed receipts the cheater re-broadcasts with its checks (`PROOF`)
/// show the equivocation too, as signed evidence: every honest member
/// reports `ReceiptMismatch` for a message of the cheater it saw, naming as
/// reporter a member that signed the other content hash, never one that got
/// the same version.
#[test]
fn equivocation_shows_in_the_re_broadcast_receipts() {
    for seed in 1..=3 {
        let o = run(Some(CheatMode::Equivocate), seed);
        for m in (0..MEMBERS).filter(|m| *m != CHEATER) {
            let mismatches: Vec<_> = o.violations[&m]
                .iter()
                .filter_map(|v| match v.kind {
                    ViolationKind::ReceiptMismatch {
                        msg_id,
                        ours,
                        theirs,
                    } => Some((v.sender, v.reporter, msg_id, ours, theirs)),
                    _ => None,
                })
                .collect();
            assert!(
                !mismatches.is_empty(),
                "seed {seed}: member {m} saw no signed evidence"
            );
            for (sender, reporter, msg_id, ours, theirs) in mismatches {
                assert_eq!(sender, o.cheater);
                assert_ne!(reporter, o.cheater);
                assert_ne!(ours, theirs);
                assert!(msg_id >= CHEAT_ROUND && o.seen_ids[&m].contains(&msg_id));
            }
        }
    }
}

#[test]
fn withholding_is_reported_by_every_honest_member_within_two_rounds() {
    for seed in 1..=3 {
        let o = run(Some(CheatMode::Withhold), seed);
        // The member left out: the one that never saw the cheater's message
        // of the cheat round.
        let victim = (0..MEMBERS)
            .filter(|m| *m != CHEATER)
            .find(|m| !o.seen_ids[m].contains(&CHEAT_ROUND))
            .expect("someone was left out");
        assert_detected(&o, Some(victim));
    }
}

/// A pairwise connection whose sender forks its hash chain: the message
/// after the fork names a previous message the receiver never got, and is
/// delivered with `bad_hash` (and counted as the peer's `ChainFork`); the
/// messages before it are `ok`, and so is nothing else.
#[test]
fn a_forked_pairwise_chain_is_reported_as_bad_hash() {
    use smp_groups_core::{FaultKind, FaultSource, MsgIntegrity};
    let mut sim = Sim::new(2, &config(), Faults::default(), 11);
    let (a, _b) = sim.connect(0, 1).expect("connected");
    sim.settle_all();
    let send = |sim: &mut Sim, body: &[u8]| {
        sim.command(
            0,
            Command::SendConn {
                alias: a.clone(),
                body: body.to_vec(),
            },
        );
        sim.settle_all();
    };
    send(&mut sim, b"one");
    assert!(sim.fork_pairwise_chain(0, &a));
    assert!(!sim.fork_pairwise_chain(0, "no such connection"));
    send(&mut sim, b"two");
    send(&mut sim, b"three");
    let got: Vec<(Vec<u8>, MsgIntegrity)> = sim
        .events(1)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ConnMsg { meta, body, .. } => Some((body.clone(), meta.integrity)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (b"one".to_vec(), MsgIntegrity::Ok),
            (b"two".to_vec(), MsgIntegrity::Ok),
            (b"three".to_vec(), MsgIntegrity::BadHash),
        ]
    );
    let refused = sim.refusals(1);
    assert_eq!(refused.get(FaultSource::Peer, FaultKind::ChainFork), 1);
    assert_eq!(sim.refusals(0).of_source(FaultSource::Peer), 0);
}
