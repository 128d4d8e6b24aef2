//! The member's own recent messages, kept to catch up a member that joined
//! concurrently (`LINTRO`): bounded, stored one record each, restored, and
//! forgotten with the group. The catch-up itself is shown by the property
//! test's `regression_message_lost_open_n4`.

use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, Config, HISTORY_MAX_MESSAGES, Key};

fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        ..Config::default()
    }
}

/// The extMsgIds of the kept messages of agent `i`, as its records hold them.
fn kept(sim: &Sim, i: usize) -> Vec<u64> {
    sim.agent(i)
        .expect("agent up")
        .records()
        .into_iter()
        .filter_map(|(k, _)| match k {
            Key::Sent(_, id) => Some(id),
            _ => None,
        })
        .collect()
}

#[test]
fn kept_messages_are_bounded_restored_and_forgotten_with_the_group() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 7);
    sim.set_check_store(true);
    let hs = sim.build_group(2).expect("group of 2");
    let total = HISTORY_MAX_MESSAGES as u64 + 6;
    for k in 0..total {
        sim.command(
            1,
            Command::Send {
                group: hs[1].alias.clone(),
                body: format!("m{k}").into_bytes(),
            },
        );
    }
    sim.settle_all();
    // The joiner keeps its last messages (extMsgIds 1..=total), no more.
    let want: Vec<u64> = (total - HISTORY_MAX_MESSAGES as u64 + 1..=total).collect();
    assert_eq!(kept(&sim, 1), want);
    sim.crash(1);
    sim.restart(1).expect("restores");
    assert_eq!(kept(&sim, 1), want, "kept messages survive a restart");
    sim.command(
        1,
        Command::Leave {
            group: hs[1].alias.clone(),
        },
    );
    sim.settle_all();
    assert_eq!(kept(&sim, 1), Vec::<u64>::new(), "forgotten with the group");
}

#[test]
fn messages_sent_before_the_join_completed_are_not_kept() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 9);
    let hs = sim.build_group(2).expect("group of 2");
    // The creator's own join is complete from the start: it keeps its own.
    sim.command(
        0,
        Command::Send {
            group: hs[0].alias.clone(),
            body: b"one".to_vec(),
        },
    );
    sim.settle_all();
    assert_eq!(kept(&sim, 0), vec![1]);
    // A member still joining keeps nothing of what it sends meanwhile.
    let h2 = sim.invite(&hs[0], 2).expect("invited");
    sim.command(
        2,
        Command::Send {
            group: h2.alias.clone(),
            body: b"early".to_vec(),
        },
    );
    assert_eq!(kept(&sim, 2), Vec::<u64>::new());
    sim.settle_all();
    sim.command(
        2,
        Command::Send {
            group: h2.alias.clone(),
            body: b"late".to_vec(),
        },
    );
    sim.settle_all();
    // Only the message sent after the join completed (the last extMsgId).
    let ids = kept(&sim, 2);
    assert_eq!(ids.len(), 1, "{ids:?}");
}
