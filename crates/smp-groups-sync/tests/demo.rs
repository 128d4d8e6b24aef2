//! End to end: the demo's flow on two embedded TLS relays (three devices,
//! concurrent profile edits while one is stopped, its catch-up from its
//! queues and stored replica, a late joiner's snapshot, measured single
//! updates in the group of four).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_converge_and_a_late_joiner_gets_a_snapshot() {
    let report = smp_groups_sync::demo::run(false).await.expect("demo runs");
    assert!(report.ok(), "{report:#?}");
    assert_eq!(report.steps.len(), 6, "{report:#?}");
    assert!(report.snapshots_received >= 1, "{report:#?}");
    assert!(report.caught_up >= 1, "{report:#?}");
    // Every step that sends something counted it: the group's formation, the
    // concurrent edits, the catch-up's receipts, the join, the updates.
    for (i, s) in report.steps.iter().enumerate() {
        if i != 1 {
            assert!(s.total_envelopes() > 0, "step {i}: {s:?}");
        }
    }
    // The documents of laptop, phone, tablet and new phone at the end: all
    // the same, with the concurrent edits and the measured updates merged.
    assert_eq!(report.documents.len(), 4, "{report:#?}");
    assert!(
        report.documents.windows(2).all(|w| w[0].1 == w[1].1),
        "{report:#?}"
    );
    let doc = &report.documents[0].1;
    assert!(doc.contains("profile.display_name = \"Ada\""), "{doc}");
    assert!(doc.contains("profile.bio = \"Counting engines\""), "{doc}");
    assert!(doc.contains("profile.image = <49152 bytes>"), "{doc}");
    assert!(doc.contains("pref.theme = (deleted)"), "{doc}");
    assert!(doc.contains("pref.language = \"en\""), "{doc}");
    assert!(doc.contains("app.notes/last-opened = (deleted)"), "{doc}");

    // Single updates in the group of four: one message to each of the 3
    // other devices and one receipt from each (docs/costs.md, "Send").
    assert_eq!(report.costs.len(), 3, "{report:#?}");
    for c in &report.costs[..2] {
        assert_eq!(c.members, 4);
        assert!(c.body_bytes > 0 && c.body_bytes < 100, "{c:?}");
        assert_eq!(c.envelopes.get("MSG"), Some(&3), "{c:?}");
        assert_eq!(c.total_envelopes(), 6, "{c:?}");
    }
    // The 48 KiB image: fragments of one block to each device, one receipt
    // from each.
    let image = &report.costs[2];
    assert!(image.body_bytes > 48 * 1024, "{image:?}");
    let frags = image.envelopes.get("MSG/FRAG").copied().unwrap_or(0);
    assert!(frags >= 3 * 4 && frags % 3 == 0, "{image:?}");
    assert_eq!(image.total_envelopes(), frags + 3, "{image:?}");
}
