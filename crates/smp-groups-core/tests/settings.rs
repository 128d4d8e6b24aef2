//! Settings changed on a restored agent (approvals, the check schedule,
//! receipts) take effect and are stored; the others stay as created.

use std::collections::BTreeMap;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smp_groups_core::{
    Agent, Command, Config, Input, Key, Output, ReceiptPolicy, SCHEMA_VERSION, Settings, Timestamp,
};

/// Drains `agent`'s outputs into `records` (what a store would hold).
fn store(agent: &mut Agent, records: &mut BTreeMap<Key, Vec<u8>>) {
    while let Some(out) = agent.poll() {
        if let Output::Store(batch) = out {
            for k in batch.deletes {
                records.remove(&k);
            }
            records.extend(batch.puts);
        }
    }
}

fn restore(records: &BTreeMap<Key, Vec<u8>>) -> Agent {
    Agent::restore(records.clone(), SCHEMA_VERSION).expect("restores")
}

#[test]
fn settings_applied_to_a_restored_agent_are_kept() {
    let created = Config {
        open_invitations: true,
        ..Config::default()
    };
    let mut records = BTreeMap::new();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut a = Agent::new(created.clone());
    a.handle(
        Input::Command {
            corr: "1".into(),
            command: Command::NewGroup {
                alias: Some("g".into()),
                info: Vec::new(),
            },
        },
        Timestamp::from_millis(1_000),
        &mut rng,
    );
    store(&mut a, &mut records);

    let mut b = restore(&records);
    assert_eq!(*b.config(), created);
    let settings = Settings {
        approval_threshold: 3,
        check_interval_ms: None,
        check_every_messages: Some(9),
        receipts: ReceiptPolicy::EACH_SIGNED,
        history: smp_groups_core::HistoryShare::default(),
    };
    b.apply_settings(&settings);
    assert_eq!(Settings::of(b.config()), settings);
    // Stored with the next input's batch.
    b.handle(
        Input::Command {
            corr: "2".into(),
            command: Command::Send {
                group: "g".into(),
                body: b"hello".to_vec(),
            },
        },
        Timestamp::from_millis(2_000),
        &mut rng,
    );
    store(&mut b, &mut records);

    let c = restore(&records);
    assert_eq!(Settings::of(c.config()), settings);
    // The rest is as the agent was created.
    let mut expected = created;
    settings.apply_to(&mut expected);
    assert_eq!(*c.config(), expected);
    assert!(c.config().open_invitations);
    assert_eq!(c.groups(), vec!["g".to_owned()]);
}
