//! Convergence in the core simulation: every simulated agent hosts a sync
//! [`Session`]; local edits are sent as group messages, received messages
//! are merged and acknowledged. Random schedules of edits (with clock skew
//! between devices), runs of the network (loss with retry, duplicates and
//! reordering through the sim's `Faults`) and crashes/restarts (a restarted
//! device restores its replica from the state it stored): after settling,
//! every replica holds the same entries, equal to the merge of every update
//! sent. A device that joins at the end gets a snapshot and converges too.
//!
//! `SYNC_PROP_CASES` sets the number of cases (default 24).
#![allow(clippy::many_single_char_names)]

use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, Config, Event};
use smp_groups_sync::{Action, DeviceId, Entry, Key, Replica, Session};

const DEVICES: usize = 3;
const KEYS: [&str; 4] = ["a", "b", "c", "d"];

fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 16,
        ..Config::default()
    }
}

/// One device: its agent's group alias, its session (None while down), its
/// storage, how many of its agent's events it has handled, and its clock
/// skew.
struct Device {
    alias: String,
    member: DeviceId,
    session: Option<Session>,
    stored: Option<Vec<u8>>,
    seen: usize,
    skew: u64,
}

#[derive(Clone, Debug)]
enum Op {
    /// Device `.0` writes key `.1` (a value, or deletes it with `None`).
    Edit(usize, usize, Option<u8>),
    /// Device `.0` sets two keys in one update.
    EditTwo(usize, usize, usize, u8),
    /// Device `.0` crashes.
    Crash(usize),
    /// Device `.0` restarts.
    Restart(usize),
    /// The network runs for `.0` ms.
    Run(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DEVICES;
    let k = 0..KEYS.len();
    prop_oneof![
        6 => (d.clone(), k.clone(), proptest::option::weighted(0.8, any::<u8>()))
            .prop_map(|(d, k, v)| Op::Edit(d, k, v)),
        1 => (d.clone(), k.clone(), k, any::<u8>()).prop_map(|(d, a, b, v)| Op::EditTwo(d, a, b, v)),
        1 => d.clone().prop_map(Op::Crash),
        1 => d.prop_map(Op::Restart),
        3 => (0u64..2_000).prop_map(Op::Run),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    faults: Faults,
    skews: Vec<u64>,
    ops: Vec<Op>,
    edit_while_joining: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        (0u32..100_000, 0u32..50_000, 0u64..500),
        proptest::collection::vec(0u64..5_000, DEVICES + 1),
        proptest::collection::vec(op(), 5..40),
        any::<bool>(),
    )
        .prop_map(|(seed, (l, d, m), skews, ops, edit_while_joining)| Case {
            seed,
            faults: Faults {
                loss_ppm: l,
                duplicate_ppm: d,
                max_delay_ms: m,
            },
            skews,
            ops,
            edit_while_joining,
        })
}

/// Totals over all cases.
#[derive(Debug, Default)]
struct Totals {
    cases: u64,
    edits: u64,
    crashes: u64,
    merged: u64,
    snapshots_received: u64,
}

/// Physical time on device `d` (the simulation starts at the epoch plus a
/// fixed offset, each device's clock off by its skew).
fn now(sim: &Sim, dev: &Device) -> u64 {
    1_700_000_000_000 + sim.now() + dev.skew
}

/// Carries out a session's actions on agent `i`.
fn act(sim: &mut Sim, i: usize, dev: &mut Device, actions: Vec<Action>) {
    for a in actions {
        match a {
            Action::Persist(state) => dev.stored = Some(state),
            Action::Send(body) => {
                sim.command(
                    i,
                    Command::Send {
                        group: dev.alias.clone(),
                        body,
                    },
                );
            }
            Action::Ack(msg_id) => {
                sim.command(
                    i,
                    Command::Ack {
                        group: dev.alias.clone(),
                        msg_id,
                    },
                );
            }
            Action::Changed(_) => {}
        }
    }
}

/// Lets every running device handle the events its agent produced.
fn drive(sim: &mut Sim, devs: &mut [Device]) {
    loop {
        let mut any = false;
        for (i, dev) in devs.iter_mut().enumerate() {
            if !sim.is_up(i) || dev.session.is_none() {
                continue;
            }
            let events: Vec<Event> = sim.events(i)[dev.seen..]
                .iter()
                .map(|e| e.event.clone())
                .collect();
            dev.seen += events.len();
            for e in events {
                any = true;
                let t = now(sim, dev);
                let actions = match (&e, dev.session.as_mut()) {
                    (
                        Event::Msg {
                            group,
                            msg_id,
                            body,
                            ..
                        },
                        Some(s),
                    ) if *group == dev.alias => s.on_message(t, *msg_id, body),
                    (Event::GroupCon { group, .. }, Some(s)) if *group == dev.alias => {
                        s.on_member_connected()
                    }
                    (
                        Event::Mem {
                            group,
                            member: None,
                        },
                        Some(s),
                    ) if *group == dev.alias => {
                        let members: Vec<DeviceId> = sim
                            .agent(i)
                            .map(|a| a.members(&dev.alias))
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|m| DeviceId::new(&m.0).ok())
                            .collect();
                        s.on_joined(&members)
                    }
                    _ => Vec::new(),
                };
                act(sim, i, dev, actions);
            }
        }
        if !any {
            return;
        }
    }
}

/// Runs the network and the devices until neither has anything left.
fn settle(sim: &mut Sim, devs: &mut [Device]) {
    for _ in 0..50 {
        drive(sim, devs);
        if sim.settle_all() == 0 {
            drive(sim, devs);
            if sim.settle_all() == 0 {
                return;
            }
        }
    }
}

fn entries(s: &Session) -> Vec<(Key, Entry)> {
    s.replica()
        .entries()
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect()
}

fn check(case: &Case, totals: &Mutex<Totals>) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(DEVICES + 1, &config(), case.faults, case.seed);
    let hs = sim
        .build_group(DEVICES)
        .ok_or_else(|| TestCaseError::fail("group not built"))?;
    let mut devs: Vec<Device> = Vec::new();
    for (i, h) in hs.iter().enumerate() {
        let member = sim
            .agent(i)
            .and_then(|a| a.member_id(&h.alias))
            .ok_or_else(|| TestCaseError::fail("no member id"))?;
        let member = DeviceId::new(&member.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        devs.push(Device {
            alias: h.alias.clone(),
            session: Some(Session::new(Replica::new(member.clone()))),
            member,
            stored: None,
            seen: sim.events(i).len(),
            skew: case.skews[i],
        });
    }
    // Every update sent, merged into one replica: what all must converge to.
    let mut oracle =
        Replica::new(DeviceId::new(b"oracle").map_err(|e| TestCaseError::fail(e.to_string()))?);
    let mut edits = 0u64;
    let mut crashes = 0u64;
    for op in &case.ops {
        match *op {
            Op::Edit(d, k, v) => {
                let t = now(&sim, &devs[d]);
                let key = Key::app(KEYS[k]);
                let edit = vec![(key, v.map(|b| vec![b; 1 + usize::from(b % 7)]))];
                if let Some(s) = devs[d].session.as_mut() {
                    let actions = s
                        .edit(t, edit)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    record(&mut oracle, &actions)?;
                    act(&mut sim, d, &mut devs[d], actions);
                    edits += 1;
                }
            }
            Op::EditTwo(d, a, b, v) => {
                if a == b {
                    continue;
                }
                let t = now(&sim, &devs[d]);
                let edit = vec![
                    (Key::app(KEYS[a]), Some(vec![v])),
                    (Key::preference(KEYS[b]), Some(vec![v, v])),
                ];
                if let Some(s) = devs[d].session.as_mut() {
                    let actions = s
                        .edit(t, edit)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    record(&mut oracle, &actions)?;
                    act(&mut sim, d, &mut devs[d], actions);
                    edits += 1;
                }
            }
            Op::Crash(d) => {
                if sim.is_up(d) {
                    drive(&mut sim, &mut devs);
                    sim.crash(d);
                    devs[d].session = None;
                    devs[d].seen = sim.events(d).len();
                    crashes += 1;
                }
            }
            Op::Restart(d) => restart(&mut sim, &mut devs, d)?,
            Op::Run(ms) => {
                let until = sim.now() + ms;
                while sim.now() < until {
                    let step = (until - sim.now()).min(50);
                    sim.run_until(sim.now() + step);
                    drive(&mut sim, &mut devs);
                }
            }
        }
    }
    for d in 0..DEVICES {
        restart(&mut sim, &mut devs, d)?;
    }
    settle(&mut sim, &mut devs);
    let want: Vec<(Key, Entry)> = oracle
        .entries()
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    for (i, dev) in devs.iter().enumerate() {
        let s = dev
            .session
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("down"))?;
        prop_assert_eq!(
            &entries(s),
            &want,
            "seed {}: device {} differs",
            case.seed,
            i
        );
        // And the state it stored is the state it holds.
        if let Some(stored) = &dev.stored {
            let r =
                Replica::decode_state(stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&r, s.replica());
        }
    }
    // A device joins late: it asks for a snapshot and converges.
    let joiner = DEVICES;
    let h = sim
        .invite(&hs[0], joiner)
        .ok_or_else(|| TestCaseError::fail("invite failed"))?;
    let member = sim
        .agent(joiner)
        .and_then(|a| a.member_id(&h.alias))
        .ok_or_else(|| TestCaseError::fail("joiner id"))?;
    let member = DeviceId::new(&member.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
    devs.push(Device {
        alias: h.alias.clone(),
        session: Some(Session::new(Replica::new(member.clone()))),
        member,
        stored: None,
        seen: 0,
        skew: case.skews[joiner],
    });
    // Edits while the new device is being connected: sent before some
    // members are connected to it.
    if case.edit_while_joining {
        // The new device too, before it is connected to all.
        for d in (0..=DEVICES).rev() {
            let t = now(&sim, &devs[d]);
            if let Some(s) = devs[d].session.as_mut() {
                let edit = vec![(
                    Key::app("joining"),
                    Some(vec![u8::try_from(d).unwrap_or(0)]),
                )];
                let actions = s
                    .edit(t, edit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                record(&mut oracle, &actions)?;
                act(&mut sim, d, &mut devs[d], actions);
            }
            sim.run_until(sim.now() + 15);
            drive(&mut sim, &mut devs);
        }
    }
    settle(&mut sim, &mut devs);
    let want: Vec<(Key, Entry)> = oracle
        .entries()
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    for (i, dev) in devs.iter().enumerate() {
        let s = dev
            .session
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("down"))?;
        prop_assert_eq!(
            &entries(s),
            &want,
            "seed {}: device {} differs after the join",
            case.seed,
            i
        );
    }
    let s = devs[joiner]
        .session
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("down"))?;
    prop_assert_eq!(
        &entries(s),
        &want,
        "seed {}: the late joiner differs",
        case.seed
    );
    if !want.is_empty() {
        prop_assert!(s.stats().snapshots_received >= 1);
    }
    let mut t = totals.lock().map_err(|_| TestCaseError::fail("lock"))?;
    t.cases += 1;
    t.edits += edits;
    t.crashes += crashes;
    t.merged += devs
        .iter()
        .filter_map(|d| d.session.as_ref())
        .map(|s| s.stats().merged)
        .sum::<u64>();
    t.snapshots_received += s.stats().snapshots_received;
    Ok(())
}

/// Merges a local edit's update into the oracle.
fn record(oracle: &mut Replica, actions: &[Action]) -> Result<(), TestCaseError> {
    for a in actions {
        if let Action::Send(body) = a {
            oracle
                .apply(0, body)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    Ok(())
}

fn restart(sim: &mut Sim, devs: &mut [Device], d: usize) -> Result<(), TestCaseError> {
    if sim.is_up(d) {
        return Ok(());
    }
    sim.restart(d)
        .map_err(|e| TestCaseError::fail(format!("restart: {e:?}")))?;
    let replica = match &devs[d].stored {
        Some(state) => {
            Replica::decode_state(state).map_err(|e| TestCaseError::fail(e.to_string()))?
        }
        None => Replica::new(devs[d].member.clone()),
    };
    devs[d].session = Some(Session::new(replica));
    Ok(())
}

#[test]
fn replicas_converge_under_random_schedules() {
    let cases = std::env::var("SYNC_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let totals = Mutex::new(Totals::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&case(), |c| check(&c, &totals));
    assert!(
        result.is_ok(),
        "{}",
        result.err().map(|e| e.to_string()).unwrap_or_default()
    );
    let t = totals.into_inner().expect("totals");
    eprintln!("{t:#?}");
    assert_eq!(t.cases, u64::from(cases));
    assert!(t.edits >= t.cases * 3, "too few edits: {t:?}");
    assert!(t.crashes > 0, "no crash in any case: {t:?}");
}

/// One fixed schedule: two devices edit the same key concurrently while the
/// third is down; it comes back, and all hold the later write; the loser's
/// concurrent write to another key survives.
#[test]
fn concurrent_edits_with_a_device_down() {
    let totals = Mutex::new(Totals::default());
    let case = Case {
        seed: 7,
        faults: Faults::default(),
        skews: vec![0, 3, 5, 0],
        ops: vec![
            Op::Crash(2),
            Op::Edit(0, 0, Some(1)),
            Op::Edit(1, 0, Some(2)),
            Op::Edit(1, 1, Some(3)),
            Op::Edit(0, 2, None),
            Op::Run(500),
        ],
        edit_while_joining: true,
    };
    let r = check(&case, &totals);
    assert!(r.is_ok(), "{r:?}");
}
