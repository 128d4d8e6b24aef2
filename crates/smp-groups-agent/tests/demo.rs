//! The scripted demo: every seed flow with its exact envelope count, on two
//! relays.
#![allow(clippy::unwrap_used, clippy::panic)]

// The demo is part of the `smp-agent` binary, not of the library's API.
#[allow(dead_code)]
#[path = "../src/bin/smp-agent/demo.rs"]
mod demo;

use demo::Op;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_every_step_holds_for_four_members_and_two_messages() {
    let report = demo::run(4, 2, false).await.unwrap();
    let failed: Vec<_> = report.steps.iter().filter(|s| !s.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // create, 3 adds, 4 x 2 sends, G_CHECK, remove, leave, delete.
    assert_eq!(report.steps.len(), 1 + 3 + 8 + 1 + 3);
    let counts = |op: Op| -> Vec<(u64, u64)> {
        report
            .steps
            .iter()
            .filter(|s| s.op == op)
            .map(|s| (s.n, s.envelopes))
            .collect()
    };
    // Counted from what the agents sent, every step at its exact formula.
    assert_eq!(counts(Op::Create), vec![(1, 0)]);
    assert_eq!(counts(Op::Add), vec![(2, 5), (3, 11), (4, 17)]);
    assert_eq!(counts(Op::Send), vec![(4, 6); 8]);
    // A full round: each of the 4 members checks each of the other 3, and
    // re-broadcasts to each the receipts of the other two (`PROOF`).
    assert_eq!(counts(Op::Check), vec![(4, 24)]);
    assert_eq!(counts(Op::Remove), vec![(4, 5)]);
    assert_eq!(counts(Op::Leave), vec![(3, 2)]);
    assert_eq!(counts(Op::Delete), vec![(2, 2)]);
    // The summary's figures: below 8 members the reference is the last add
    // itself; time per envelope is the step's time over its envelopes.
    let scaling = report.add_scaling().unwrap();
    assert_eq!((scaling.reference.n, scaling.last.n), (4, 4));
    assert_eq!(scaling.last.envelopes, 17);
    assert_eq!(
        scaling.last.per_envelope().unwrap(),
        scaling.last.elapsed / 17
    );
    assert_eq!(scaling.ratio(), Some(1.0));
}
