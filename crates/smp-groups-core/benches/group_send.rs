//! One group message through the simulation: `SEND`, delivery to every member,
//! `ACK` by every member and the receipts back (`2n-2` envelopes, each sealed
//! with the connection's ratchet and chained), for n = 2, 8, 32, 128.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smp_groups_core::sim::{Faults, Sim};
use smp_groups_core::{Command, Config};

fn config() -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: None,
        check_window: 8,
        // Every member applies every add without asking its client.
        approval_threshold: usize::MAX,
        ..Config::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_send");
    group.sample_size(10);
    for n in [2usize, 8, 32, 128] {
        let mut sim = Sim::new(n, &config(), Faults::default(), 42);
        let hs = sim.build_group(n).expect("group");
        for h in &hs {
            let members = sim.agent(h.agent).expect("up").members(&h.alias).len();
            assert_eq!(
                members,
                n - 1,
                "agent {} is not connected to every member",
                h.agent
            );
        }
        let mut from = BTreeMap::new();
        sim.ack_all(&hs, &mut from);
        sim.settle_all();
        let sender = hs[n / 2].clone();
        let before = sim.counts().values().sum::<u64>();
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| {
                sim.command(
                    sender.agent,
                    Command::Send {
                        group: sender.alias.clone(),
                        body: b"benchmark".to_vec(),
                    },
                );
                sim.settle_all();
                sim.ack_all(&hs, &mut from);
                black_box(sim.settle_all())
            });
        });
        let sends = sim.counts().get("MSG").copied().unwrap_or(0);
        let total = sim.counts().values().sum::<u64>() - before;
        eprintln!(
            "n={n}: {total} envelopes over the run, {sends} MSG (2n-2 = {} per send)",
            2 * n - 2
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
