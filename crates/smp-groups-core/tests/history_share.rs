//! History for new members (`Config::history`): the member that adds
//! someone hands it the last group messages it holds, each with its
//! original sender's signature; the new member checks them and reports them
//! as history, outside every chain. Off by default; bounded; a tampered
//! entry is refused (`BadSignature`, counted) and never shown; kept messages
//! survive a crash.

mod common;

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{
    Command, Config, Event, FaultKind, FaultSource, HistoryShare, MsgIntegrity, Settings,
};
use smp_groups_wire::agent::MemberId;

const KEEP: u16 = 5;

fn config_with_history() -> Config {
    Config {
        history: HistoryShare {
            messages: KEEP,
            bytes: 1 << 20,
        },
        ..common::config()
    }
}

fn send(sim: &mut Sim, h: &GroupHandle, body: &str) {
    sim.command(
        h.agent,
        Command::Send {
            group: h.alias.clone(),
            body: body.as_bytes().to_vec(),
        },
    );
}

/// Agent `i`'s group messages: (sender, extMsgId, body, integrity, local id).
fn msgs(sim: &Sim, i: usize) -> Vec<(MemberId, u64, Vec<u8>, MsgIntegrity, u64)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::Msg {
                member,
                msg_id,
                meta,
                body,
                ..
            } => Some((
                *member,
                meta.snd_msg_id,
                body.clone(),
                meta.integrity,
                *msg_id,
            )),
            _ => None,
        })
        .collect()
}

fn history(sim: &Sim, i: usize) -> Vec<(MemberId, u64, Vec<u8>)> {
    msgs(sim, i)
        .into_iter()
        .filter(|m| m.3 == MsgIntegrity::History)
        .map(|(m, id, body, _, local)| {
            assert_eq!(local, 0, "history has no local id");
            (m, id, body)
        })
        .collect()
}

/// A group of 3 whose members sent 9 messages (agents 1 and 2 four each,
/// agent 0 one); each settled in turn.
fn busy_group(sim: &mut Sim) -> Vec<GroupHandle> {
    let hs = sim.build_group(3).expect("group of 3");
    for k in 0..4 {
        send(sim, &hs[1], &format!("b{k}"));
        sim.settle_all();
        send(sim, &hs[2], &format!("c{k}"));
        sim.settle_all();
    }
    send(sim, &hs[0], "a0");
    sim.settle_all();
    hs
}

/// What agent 0 will hand on: (sender, extMsgId), oldest first.
fn kept(sim: &Sim, h: &GroupHandle) -> Vec<(MemberId, u64)> {
    sim.agent(h.agent).expect("up").shared_history(&h.alias)
}

#[test]
fn off_by_default_nothing_is_handed_on() {
    let mut sim = Sim::new(4, &common::config(), Faults::default(), 11);
    let hs = busy_group(&mut sim);
    assert!(kept(&sim, &hs[0]).is_empty());
    sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    assert!(msgs(&sim, 3).is_empty(), "no history without the setting");
}

#[test]
fn a_new_member_gets_the_last_messages_as_verified_history() {
    let mut sim = Sim::new(4, &config_with_history(), Faults::default(), 12);
    sim.set_check_store(true);
    let hs = busy_group(&mut sim);
    let want = kept(&sim, &hs[0]);
    assert_eq!(want.len(), usize::from(KEEP), "bounded to the last {KEEP}");
    let d = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    let got = history(&sim, 3);
    assert_eq!(
        got.iter().map(|(m, id, _)| (*m, *id)).collect::<Vec<_>>(),
        want,
        "the kept messages, in order"
    );
    // The last one is agent 0's own "a0"; the others are b3/c3... of 1 and 2.
    assert_eq!(got.last().map(|m| m.2.clone()), Some(b"a0".to_vec()));
    let bob = sim
        .agent(1)
        .and_then(|a| a.member_id(&hs[1].alias))
        .unwrap();
    assert!(got.contains(&(bob, 4, b"b3".to_vec())));
    // History is outside every chain: a live message afterwards is the next
    // of its sender's chain for the new member, without a gap or a fault.
    send(&mut sim, &hs[1], "live");
    sim.settle_all();
    let live: Vec<_> = msgs(&sim, 3)
        .into_iter()
        .filter(|m| m.3 != MsgIntegrity::History)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].2, b"live");
    assert_eq!(live[0].3, MsgIntegrity::Ok);
    let r = sim.refusals(3);
    assert_eq!(r.get(FaultSource::Nobody, FaultKind::Duplicate), 0);
    assert_eq!(r.get(FaultSource::Peer, FaultKind::BadSignature), 0);
    for i in 0..4 {
        assert_eq!(
            common::count(sim.events(i), |e| matches!(e, Event::Violation { .. })),
            0,
            "no violation at agent {i}"
        );
    }
    // The new member's history needs no ACK, and its own later adds hand
    // on what it keeps from now on (not the history it was given).
    assert!(kept(&sim, &d).iter().all(|(m, _)| *m == bob));
}

#[test]
fn history_arrives_once_under_loss_duplicates_and_reordering() {
    let faults = Faults {
        loss_ppm: 50_000,
        duplicate_ppm: 50_000,
        max_delay_ms: 200,
    };
    for seed in 0..4 {
        let mut sim = Sim::new(4, &config_with_history(), faults, 200 + seed);
        let hs = busy_group(&mut sim);
        let want = kept(&sim, &hs[0]);
        sim.invite(&hs[0], 3).expect("invited");
        sim.settle_all();
        let got: Vec<_> = history(&sim, 3)
            .into_iter()
            .map(|(m, id, _)| (m, id))
            .collect();
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn a_tampered_entry_is_refused_counted_and_never_shown() {
    let mut sim = Sim::new(4, &config_with_history(), Faults::default(), 13);
    let hs = busy_group(&mut sim);
    let n = kept(&sim, &hs[0]).len() as u64;
    sim.agent_mut(0).expect("up").tamper_shared(&hs[0].alias);
    sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    assert!(history(&sim, 3).is_empty(), "nothing altered is shown");
    assert_eq!(
        sim.refusals(3)
            .get(FaultSource::Peer, FaultKind::BadSignature),
        n
    );
    // The join itself completes.
    assert_eq!(
        common::count(sim.events(3), |e| matches!(
            e,
            Event::Mem { member: None, .. }
        )),
        1
    );
}

#[test]
fn kept_messages_survive_a_crash() {
    let mut sim = Sim::new(4, &config_with_history(), Faults::default(), 14);
    sim.set_check_store(true);
    let hs = busy_group(&mut sim);
    let want = kept(&sim, &hs[0]);
    sim.crash(0);
    sim.restart(0).expect("restores");
    assert_eq!(kept(&sim, &hs[0]), want, "restored from the store");
    // The setting is given again at start, as `smp-agent serve` does.
    let mut settings = Settings::of(sim.agent(0).expect("up").config());
    settings.history = config_with_history().history;
    sim.apply_settings(0, &settings);
    sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    let got: Vec<_> = history(&sim, 3)
        .into_iter()
        .map(|(m, id, _)| (m, id))
        .collect();
    assert_eq!(got, want);
    // Leaving forgets the kept messages.
    sim.command(
        0,
        Command::Leave {
            group: hs[0].alias.clone(),
        },
    );
    sim.settle_all();
    assert!(
        !sim.agent(0)
            .expect("up")
            .records()
            .iter()
            .any(|(k, _)| matches!(k, smp_groups_core::Key::Shared(..)))
    );
}
