//! Decode and encode of a group `MSG` agent message (header + 1 KiB content).

use criterion::{Criterion, criterion_group, criterion_main};
use smp_groups_wire::agent::{AMessage, AgentMessage, Content, Digest, GroupEnvelope, MsgHeader};
use smp_groups_wire::{Encode, decode_all};

fn group_msg() -> AgentMessage {
    AgentMessage::Message {
        header: MsgHeader {
            snd_msg_id: 42,
            prev_msg_hash: Digest([7; 32]),
        },
        body: AMessage::Group(GroupEnvelope::Msg {
            ext_msg_id: 1_000_000,
            snd_ts: 1_700_000_000_000,
            content: Content::new(vec![0x5a; 1024]).expect("1 KiB fits"),
        }),
    }
}

fn bench(c: &mut Criterion) {
    let msg = group_msg();
    let bytes = msg.to_bytes();
    c.bench_function("agent/group MSG 1KiB encode", |b| {
        b.iter(|| std::hint::black_box(&msg).to_bytes());
    });
    c.bench_function("agent/group MSG 1KiB decode", |b| {
        b.iter(|| decode_all::<AgentMessage>(std::hint::black_box(&bytes)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
