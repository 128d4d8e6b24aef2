//! The scripted demo: every seed flow with its exact envelope count, on two
//! relays.
#![allow(clippy::unwrap_used, clippy::panic)]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_every_step_holds_for_four_members_and_two_messages() {
    let report = smp_groups_agent::demo::run(4, 2, false).await.unwrap();
    let failed: Vec<_> = report.steps.iter().filter(|s| !s.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // create, 3 adds, 4 x 2 sends, G_CHECK, remove, leave, delete.
    assert_eq!(report.steps.len(), 1 + 3 + 8 + 1 + 3);
    let sends: Vec<u64> = report
        .steps
        .iter()
        .filter(|s| s.name.contains("sends"))
        .map(|s| s.envelopes)
        .collect();
    assert_eq!(sends, vec![6; 8]);
}
