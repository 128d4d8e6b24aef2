//! Apply of a typical input's transaction on a file in WAL mode: 5 record
//! puts (600 bytes each), 1 client event (300 bytes) and the processed mark
//! of the received message. (Until store version 4 it also held an outbox
//! item, a 16 KiB relay block, and the removal of the previous one; relay
//! operations now live only in the core's records, among the puts.)

#![allow(clippy::unwrap_used, clippy::panic)] // benches fail by panicking

use criterion::{Criterion, criterion_group, criterion_main};
use smp_groups_store::{Durability, Options, Store, Transaction};

fn typical(i: u64) -> Transaction {
    let mut t = Transaction::new();
    t.record_schema = Some(1);
    for k in 0..5u8 {
        t.puts.push((vec![1, k], vec![k; 600]));
    }
    t.events_add.push(vec![9; 300]);
    t.processed = vec![(b"queue".to_vec(), i.to_be_bytes().to_vec())];
    t
}

fn bench_mode(c: &mut Criterion, name: &str, durability: Durability, mark_every: u64) {
    let dir = std::env::temp_dir().join(format!("smp-groups-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = Options::default();
    opts.durability = durability;
    let mut store = Store::open_with(dir.join("bench.sqlite3"), opts).expect("open");
    let mut i = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            let applied = store.apply(&typical(i)).expect("apply");
            if i % mark_every == 0 {
                store.mark_delivered(applied.event_seqs[0]).expect("mark");
            }
        });
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn benches(c: &mut Criterion) {
    bench_mode(
        c,
        "apply typical, WAL, synchronous=FULL",
        Durability::Full,
        256,
    );
    bench_mode(
        c,
        "apply typical, WAL, synchronous=NORMAL",
        Durability::Process,
        256,
    );
    bench_mode(
        c,
        "apply typical + mark_delivered, WAL, FULL",
        Durability::Full,
        1,
    );
}

criterion_group!(store, benches);
criterion_main!(store);
