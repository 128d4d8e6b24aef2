//! Building and reconciling a `G_CHECK` for groups of 8 and 64 members.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use smp_groups_integrity::{Anchor, Config, GroupIntegrity, Timestamp};
use smp_groups_wire::Encode;
use smp_groups_wire::agent::{GCheck, GroupId, MemberId};

fn id(i: usize) -> MemberId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    MemberId(b)
}

/// `n` members that each sent `per_sender` messages, all delivered: returns the
/// state of member 0 and of member 1.
fn group(n: usize, per_sender: u64) -> (GroupIntegrity, GroupIntegrity) {
    let mut config = Config::new(GroupId([3; 16]));
    config.max_members = n;
    let mut states: Vec<_> = (0..2)
        .map(|me| {
            let mut s = GroupIntegrity::new(config.clone(), id(me), Timestamp(0));
            for j in (0..n).filter(|&j| j != me) {
                s.add_member(id(j), Anchor::Genesis, None).unwrap();
            }
            s
        })
        .collect();
    for (me, s) in states.iter_mut().enumerate() {
        for sender in 0..n {
            for k in 1..=per_sender {
                let content = format!("message {k} of {sender}");
                if sender == me {
                    s.on_sent(content.as_bytes()).unwrap();
                } else {
                    s.on_received(id(sender), k, content.as_bytes()).unwrap();
                }
            }
        }
    }
    let b = states.pop().unwrap();
    let a = states.pop().unwrap();
    (a, b)
}

fn bench(c: &mut Criterion) {
    for n in [8usize, 64] {
        let (mut a, b) = group(n, 20);
        let now = Timestamp(60_000);
        let check = b.clone().build_check(now);
        let text = check.to_bytes();
        eprintln!(
            "G_CHECK for n = {n}: {} entries, {} bytes",
            check.entries.len(),
            text.len()
        );

        c.bench_function(&format!("build_check/n={n}"), |bch| {
            bch.iter(|| black_box(a.build_check(black_box(now))));
        });
        c.bench_function(&format!("build_and_encode/n={n}"), |bch| {
            bch.iter(|| black_box(a.build_check(black_box(now)).to_bytes()));
        });
        c.bench_function(&format!("parse/n={n}"), |bch| {
            bch.iter(|| black_box(GCheck::parse(black_box(&text)).unwrap()));
        });
        c.bench_function(&format!("on_check/n={n}"), |bch| {
            bch.iter_batched(
                || a.clone(),
                |mut s| {
                    let v = s.on_check(id(1), 1, black_box(&check), now).unwrap();
                    assert!(v.is_empty());
                    s
                },
                BatchSize::SmallInput,
            );
        });
        c.bench_function(&format!("clone_state/n={n}"), |bch| {
            bch.iter_batched(|| (), |()| black_box(a.clone()), BatchSize::SmallInput);
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
