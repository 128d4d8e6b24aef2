//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use smp_groups_core::sim::{GroupHandle, Sim};
use smp_groups_core::{ClientEvent, Command, Config, Event};
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

/// Acknowledges every group message not yet acknowledged (`from` keeps the
/// position per agent).
pub(crate) fn ack_all(sim: &mut Sim, hs: &[GroupHandle], from: &mut BTreeMap<usize, usize>) {
    for h in hs {
        if !sim.is_up(h.agent) {
            continue;
        }
        let start = from.get(&h.agent).copied().unwrap_or(0);
        let ids: Vec<(String, u64)> = sim.events(h.agent)[start..]
            .iter()
            .filter_map(|e| match &e.event {
                Event::Msg { group, msg_id, .. } => Some((group.clone(), *msg_id)),
                _ => None,
            })
            .collect();
        from.insert(h.agent, sim.events(h.agent).len());
        for (group, msg_id) in ids {
            sim.command(h.agent, Command::Ack { group, msg_id });
        }
    }
}
