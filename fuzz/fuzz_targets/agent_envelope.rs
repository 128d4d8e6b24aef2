//! Agent envelopes, agent messages and `G_CHECK` text from arbitrary bytes: decoding
//! never panics, and whatever decodes re-encodes to bytes that decode to the same
//! value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smp_groups_wire::agent::{AgentEnvelope, AgentMessage, GCheck, Limits};
use smp_groups_wire::{Encode, decode_all};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = decode_all::<AgentEnvelope>(data) {
        let bytes = e.to_bytes();
        assert_eq!(bytes, data, "envelope encoding is canonical");
        assert_eq!(decode_all::<AgentEnvelope>(&bytes), Ok(e));
    }
    let limits = Limits { max_fragments: 8 };
    if let Ok(m) = smp_groups_wire::decode_all_with::<AgentMessage, _>(data, limits) {
        let bytes = m.to_bytes();
        assert_eq!(bytes, data, "agent message encoding is canonical");
        assert_eq!(smp_groups_wire::decode_all_with::<AgentMessage, _>(&bytes, limits), Ok(m));
    }
    if let Ok(g) = GCheck::parse(data) {
        let text = g.to_text();
        assert_eq!(text.as_bytes(), data, "G_CHECK text is canonical");
        assert_eq!(GCheck::parse(text.as_bytes()), Ok(g));
    }
});
