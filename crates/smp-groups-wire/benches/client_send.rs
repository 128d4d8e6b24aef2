//! Decode (framing + parsing) and encode of a client `G:g SEND` line, inline and
//! length-prefixed.

use criterion::{Criterion, criterion_group, criterion_main};
use smp_groups_wire::client::{ClientCommand, CorrId, LineDecoder, Transmission};

fn send(body: Vec<u8>) -> Transmission<ClientCommand> {
    Transmission::new(
        CorrId::new("17").expect("valid corrId"),
        ClientCommand::GroupSend {
            group: "team".parse().expect("valid alias"),
            body,
        },
    )
}

fn bench(c: &mut Criterion) {
    for (name, body) in [
        ("inline 100B", b"x".repeat(100)),
        ("block 4KiB", vec![b'\n'; 4096]),
    ] {
        let t = send(body);
        let bytes = t.to_bytes();
        c.bench_function(&format!("client/G SEND {name} encode"), |b| {
            b.iter(|| std::hint::black_box(&t).to_bytes());
        });
        c.bench_function(&format!("client/G SEND {name} decode"), |b| {
            b.iter(|| {
                let mut d = LineDecoder::<ClientCommand>::default();
                d.push(std::hint::black_box(&bytes));
                d.next()
            });
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
