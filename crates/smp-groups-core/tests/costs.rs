//! Protocol costs, counted in agent envelopes sent over SMP, asserted exactly
//! for n = 2..=16 against the formulas derived in `docs/costs.md`.

use std::collections::BTreeMap;

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Config, Event};

fn config(open: bool) -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 16,
        open_invitations: open,
        ..Config::default()
    }
}

/// Envelopes sent between two snapshots, by type.
fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn total(d: &BTreeMap<String, u64>, skip: &[&str]) -> u64 {
    d.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(_, v)| *v)
        .sum()
}

/// A group of n-1 members, then the cost of adding the n-th (its visible
/// connection with the introducer made beforehand, not counted).
fn add_cost(n: usize, open: bool) -> (Sim, Vec<GroupHandle>, BTreeMap<String, u64>) {
    let mut sim = Sim::new(n, &config(open), Faults::default(), n as u64);
    let mut hs = sim.build_group(n - 1).expect("group");
    sim.connect(0, n - 1).expect("connected");
    let before = sim.counts().clone();
    let h = sim.invite(&hs[0], n - 1).expect("invited");
    sim.settle_all();
    hs.push(h);
    let d = diff(&before, sim.counts());
    for h in &hs {
        assert_eq!(
            sim.agent(h.agent).expect("up").members(&h.alias).len(),
            n - 1,
            "n={n}"
        );
    }
    (sim, hs, d)
}

#[test]
fn add_costs_6n_minus_7() {
    for n in 2..=16usize {
        let (_, _, d) = add_cost(n, false);
        let n64 = n as u64;
        assert_eq!(total(&d, &[]), 6 * n64 - 7, "n={n}: {d:?}");
        // The parts: GROUP 1, INTRO/INV/FWD n-2 each, CONF+HELLO n-1 each,
        // MEM (n-2) + 2.
        assert_eq!(d.get("GROUP"), Some(&1));
        assert_eq!(d.get("CONF"), Some(&(n64 - 1)));
        assert_eq!(d.get("HELLO"), Some(&(n64 - 1)));
        assert_eq!(d.get("MEM"), Some(&n64));
        assert_eq!(d.get("INTRO").copied().unwrap_or(0), n64 - 2);
        assert_eq!(d.get("INV").copied().unwrap_or(0), n64 - 2);
        assert_eq!(d.get("FWD").copied().unwrap_or(0), n64 - 2);
    }
}

#[test]
fn add_costs_with_open_invitations() {
    for n in 2..=16usize {
        let (_, _, d) = add_cost(n, true);
        let n64 = n as u64;
        // The add itself: 4n-3 (no INTRO/INV); OINV replenishment counted apart.
        assert_eq!(total(&d, &["OINV"]), 4 * n64 - 3, "n={n}: {d:?}");
        assert_eq!(d.get("INTRO"), None, "n={n}");
        assert_eq!(
            d.get("OINV").copied().unwrap_or(0),
            3 * n64 - 4,
            "n={n}: {d:?}"
        );
    }
}

#[test]
fn send_leave_remove_delete_costs() {
    for n in 2..=16usize {
        let n64 = n as u64;
        let mut sim = Sim::new(n, &config(false), Faults::default(), 100 + n as u64);
        let hs = sim.build_group(n).expect("group");
        let mut seen = BTreeMap::new();
        sim.ack_all(&hs, &mut seen);
        sim.settle_all();

        // send: MSG n-1 + RCVD n-1
        let before = sim.counts().clone();
        sim.command(
            n - 1,
            Command::Send {
                group: hs[n - 1].alias.clone(),
                body: b"m".to_vec(),
            },
        );
        sim.settle_all();
        sim.ack_all(&hs, &mut seen);
        sim.settle_all();
        let d = diff(&before, sim.counts());
        assert_eq!(total(&d, &[]), 2 * n64 - 2, "send n={n}: {d:?}");

        if n < 3 {
            continue;
        }
        // remove (by 0, of the last member): OUT 1 + REM (n-2) + REMD (n-2) = 2n-3
        let before = sim.counts().clone();
        let last = sim
            .agent(n - 1)
            .and_then(|a| a.member_id(&hs[n - 1].alias))
            .expect("id");
        sim.command(
            0,
            Command::Remove {
                group: hs[0].alias.clone(),
                member: last,
            },
        );
        sim.settle_all();
        let d = diff(&before, sim.counts());
        assert_eq!(total(&d, &[]), 2 * n64 - 3, "remove n={n}: {d:?}");
        let m = n - 1; // group size now

        // leave (member 1): LEFT m-1
        let before = sim.counts().clone();
        sim.command(
            1,
            Command::Leave {
                group: hs[1].alias.clone(),
            },
        );
        sim.settle_all();
        let d = diff(&before, sim.counts());
        assert_eq!(total(&d, &[]), m as u64 - 1, "leave n={n}: {d:?}");
        let m = m - 1;

        // delete (by 0): DEL m-1 + DELD m-1
        let before = sim.counts().clone();
        sim.command(
            0,
            Command::Delete {
                group: hs[0].alias.clone(),
            },
        );
        sim.settle_all();
        let d = diff(&before, sim.counts());
        assert_eq!(total(&d, &[]), 2 * m as u64 - 2, "delete n={n}: {d:?}");
    }
}

/// What [`burst`] gives: the simulation and the group after it, the
/// envelopes sent by type, and the sender's `RCVD` events (member, ok).
type Burst = (
    Sim,
    Vec<GroupHandle>,
    BTreeMap<String, u64>,
    Vec<(bool, bool)>,
);

/// `k` messages from one sender, then every member acknowledges them all.
fn burst(n: usize, k: usize, cfg: &Config) -> Burst {
    let mut sim = Sim::new(n, cfg, Faults::default(), 7 + n as u64);
    let hs = sim.build_group(n).expect("group");
    let mut seen = BTreeMap::new();
    sim.ack_all(&hs, &mut seen);
    sim.settle_all();
    let before = sim.counts().clone();
    let start = sim.events(0).len();
    for i in 0..k {
        sim.command(
            0,
            Command::Send {
                group: hs[0].alias.clone(),
                body: format!("m{i}").into_bytes(),
            },
        );
    }
    sim.settle_all();
    sim.ack_all(&hs, &mut seen);
    sim.settle_all();
    let rcvd = sim.events(0)[start..]
        .iter()
        .filter_map(|e| match &e.event {
            Event::Rcvd { member, status, .. } => Some((member.is_some(), status.is_ok())),
            _ => None,
        })
        .collect();
    let d = diff(&before, sim.counts());
    (sim, hs, d, rcvd)
}

#[test]
fn receipts_of_a_burst_share_one_envelope_per_member() {
    let (n, k) = (6usize, 10usize);
    let (_, _, d, rcvd) = burst(n, k, &config(false));
    let (n64, k64) = (n as u64, k as u64);
    assert_eq!(d.get("MSG"), Some(&(k64 * (n64 - 1))), "{d:?}");
    // Default policy: every member's ten receipts in one signed RCVDS.
    assert_eq!(d.get("RCVDS"), Some(&(n64 - 1)), "{d:?}");
    assert_eq!(d.get("RCVD"), None, "{d:?}");
    // Every receipt checked (signature, hash) and reported per member, and
    // one summary per message.
    assert_eq!(rcvd.iter().filter(|(m, ok)| *m && *ok).count(), k * (n - 1));
    assert_eq!(rcvd.iter().filter(|(m, ok)| !*m && *ok).count(), k);
    assert!(rcvd.iter().all(|(_, ok)| *ok));
}

#[test]
fn receipts_each_signed_policy_sends_one_per_message() {
    let (n, k) = (5usize, 4usize);
    let cfg = Config {
        receipts: smp_groups_core::ReceiptPolicy::EACH_SIGNED,
        ..config(false)
    };
    let (_, _, d, rcvd) = burst(n, k, &cfg);
    let (n64, k64) = (n as u64, k as u64);
    assert_eq!(d.get("RCVD"), Some(&(k64 * (n64 - 1))), "{d:?}");
    assert_eq!(d.get("RCVDS"), None, "{d:?}");
    assert_eq!(rcvd.iter().filter(|(m, ok)| *m && *ok).count(), k * (n - 1));
}

#[test]
fn receipts_batches_are_split_at_the_policy_size() {
    let (n, k) = (3usize, 7usize);
    let cfg = Config {
        receipts: smp_groups_core::ReceiptPolicy {
            sign: false,
            batch: 3,
            max_delay_ms: 60_000,
        },
        ..config(false)
    };
    let (_, _, d, rcvd) = burst(n, k, &cfg);
    // 7 receipts per member: two full batches of 3 at once, the last one
    // alone when the delay runs out (a single receipt travels as RCVD).
    assert_eq!(d.get("RCVDS"), Some(&(2 * (n as u64 - 1))), "{d:?}");
    assert_eq!(d.get("RCVD"), Some(&(n as u64 - 1)), "{d:?}");
    assert_eq!(rcvd.iter().filter(|(m, ok)| *m && *ok).count(), k * (n - 1));
}

/// A check round after a burst: the sender's `G_CHECK` to each member, plus
/// one `PROOF` to each carrying the other members' signed receipts (never
/// the receiver's own); a second round with no new receipt sends none.
#[test]
fn a_check_round_re_broadcasts_receipts_in_one_envelope_per_member() {
    let n = 6usize;
    let (mut sim, hs, _, _) = burst(n, 10, &config(false));
    let n64 = n as u64;
    for (round, proofs) in [(1, n64 - 1), (2, 0)] {
        let before = sim.counts().clone();
        sim.command(
            0,
            Command::Check {
                group: hs[0].alias.clone(),
            },
        );
        sim.settle_all();
        let d = diff(&before, sim.counts());
        assert_eq!(d.get("G_CHECK"), Some(&(n64 - 1)), "round {round}: {d:?}");
        assert_eq!(
            d.get("PROOF").copied().unwrap_or(0),
            proofs,
            "round {round}: {d:?}"
        );
        assert_eq!(total(&d, &["G_CHECK", "PROOF"]), 0, "round {round}: {d:?}");
    }
}
