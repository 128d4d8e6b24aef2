//! Client protocol streams from arbitrary bytes, fed in arbitrary chunks: framing
//! and parsing never panic, the decoder keeps its buffer bounded, and every
//! transmission that parses re-encodes to bytes that parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smp_groups_wire::client::{
    AgentEvent, ClientCommand, FrameLimits, LineDecoder, LineMessage, Transmission,
};

const LIMITS: FrameLimits = FrameLimits {
    max_line: 512,
    max_payload: 1024,
};

fn run<T: LineMessage + PartialEq + std::fmt::Debug>(data: &[u8]) {
    // The first byte picks the chunk size, so splits are explored too.
    let (chunk, stream) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 32) + 1, rest),
        None => return,
    };
    let mut d = LineDecoder::<T>::new(LIMITS);
    for piece in stream.chunks(chunk) {
        d.push(piece);
        while let Some(r) = d.next() {
            if let Ok(t) = r {
                let bytes = t.to_bytes();
                let mut again = LineDecoder::<T>::new(FrameLimits::default());
                again.push(&bytes);
                assert_eq!(again.next(), Some(Ok(t)));
                assert!(again.next().is_none());
            }
        }
        assert!(d.buffered() <= LIMITS.max_line + LIMITS.max_payload + 2 + 32);
    }
}

fuzz_target!(|data: &[u8]| {
    run::<ClientCommand>(data);
    run::<AgentEvent>(data);
    let _ = Transmission::<ClientCommand>::parse(data, None);
});
