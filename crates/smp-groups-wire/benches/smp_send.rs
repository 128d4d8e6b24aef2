//! Decode and encode of an SMP `SEND` transmission with a full-size body
//! (16048 bytes, the largest at v>=11), at v18.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smp_groups_wire::ShortBytes;
use smp_groups_wire::smp::{
    self, Command, MsgFlags, SenderCommand, SmpEncode, Transmission, TransmissionAuth, Version,
};
use std::hint::black_box;

const V: Version = Version(18);

fn send_transmission() -> Transmission {
    let body: Vec<u8> = (0..=250u8)
        .cycle()
        .take(smp::limits::MAX_MESSAGE_LENGTH)
        .collect();
    let cmd = Command::Sender(SenderCommand::Send {
        flags: MsgFlags { notification: true },
        body,
    });
    Transmission {
        auth: TransmissionAuth::Authenticator([7; 80]),
        service_sig: None,
        session_id: None,
        corr_id: ShortBytes::new(vec![1; 24]).unwrap(),
        entity_id: ShortBytes::new(vec![2; 24]).unwrap(),
        command: cmd.smp_bytes(V).unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let t = send_transmission();
    let wire = t.smp_bytes(V).unwrap();
    let batch = smp::encode_batch(&[&wire]).unwrap();
    let mut g = c.benchmark_group("smp_send_16k");
    g.throughput(Throughput::Bytes(u64::try_from(wire.len()).unwrap()));
    g.bench_function("decode_batch_transmission_command", |b| {
        b.iter(|| {
            let items = smp::decode_batch(black_box(&batch)).unwrap();
            let t = smp_groups_wire::decode_all_with::<Transmission, _>(items[0], V).unwrap();
            smp_groups_wire::decode_all_with::<Command, _>(&t.command, V).unwrap()
        });
    });
    g.bench_function("encode_command_transmission_batch", |b| {
        let body = vec![5u8; smp::limits::MAX_MESSAGE_LENGTH];
        b.iter(|| {
            let cmd = Command::Sender(SenderCommand::Send {
                flags: MsgFlags { notification: true },
                body: black_box(&body).clone(),
            });
            let mut tr = t.clone();
            tr.command = cmd.smp_bytes(V).unwrap();
            smp::encode_batch(&[tr.smp_bytes(V).unwrap()]).unwrap()
        });
    });
    g.bench_function("authorized_bytes", |b| {
        b.iter(|| black_box(&t).for_auth(black_box(&[3u8; 32])).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
