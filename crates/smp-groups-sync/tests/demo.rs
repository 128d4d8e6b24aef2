//! End to end: the demo's flow on two embedded TLS relays (three devices,
//! concurrent profile edits while one is stopped, its catch-up from its
//! queues and stored replica, a late joiner's snapshot).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_converge_and_a_late_joiner_gets_a_snapshot() {
    let report = smp_groups_sync::demo::run(false).await.expect("demo runs");
    assert!(report.ok(), "{report:#?}");
    assert!(report.snapshots_received >= 1);
    // The documents printed at the end of steps 4 to 6: laptop, phone,
    // tablet, new phone, all the same, with the concurrent edits merged.
    assert_eq!(report.documents.len(), 4, "{report:#?}");
    assert!(
        report.documents.windows(2).all(|w| w[0] == w[1]),
        "{report:#?}"
    );
    let doc = &report.documents[0];
    assert!(doc.contains("profile.bio = \"Counting engines\""), "{doc}");
    assert!(doc.contains("profile.image = <49152 bytes>"), "{doc}");
    assert!(doc.contains("pref.theme = (deleted)"), "{doc}");
    assert!(doc.contains("pref.language = \"en\""), "{doc}");
}
