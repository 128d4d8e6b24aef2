//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use smp_groups_core::sim::Sim;
use smp_groups_core::{ClientEvent, Config, Event};
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
