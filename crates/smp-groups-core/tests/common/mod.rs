//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use smp_groups_core::sim::{GroupHandle, Sim};
use smp_groups_core::{ClientEvent, Config, Event};
use smp_groups_integrity::ViolationKind;
use smp_groups_wire::agent::MemberId;

/// A configuration without time-triggered checks (so runs settle).
pub(crate) fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 16,
        ..Config::default()
    }
}

/// How many events match.
pub(crate) fn count(events: &[ClientEvent], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(&e.event)).count()
}

/// The group messages agent `i` received: (sender, body).
pub(crate) fn received(sim: &Sim, i: usize) -> Vec<(MemberId, Vec<u8>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::Msg { member, body, .. } => Some((*member, body.clone())),
            _ => None,
        })
        .collect()
}

/// One check round: every member sends its `G_CHECK`, all settles, then the
/// clock moves past the integrity grace period (60 s).
pub(crate) fn check_round(sim: &mut Sim, hs: &[GroupHandle]) {
    sim.check_all(hs);
    sim.run_until(sim.now() + 61_000);
}

/// Per agent: the members it reported as holding another member list
/// (`ViolationKind::Members`, always with the member as its own reporter),
/// with (ours, theirs) counts.
pub(crate) fn members_reported(
    sim: &Sim,
    hs: &[GroupHandle],
) -> BTreeMap<usize, BTreeMap<MemberId, (u16, u16)>> {
    hs.iter()
        .map(|h| {
            let r = sim
                .events(h.agent)
                .iter()
                .filter_map(|e| match &e.event {
                    Event::Violation { violation, .. } => match violation.kind {
                        ViolationKind::Members { ours, theirs } => {
                            assert_eq!(violation.sender, violation.reporter);
                            Some((violation.sender, (ours, theirs)))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            (h.agent, r)
        })
        .collect()
}
