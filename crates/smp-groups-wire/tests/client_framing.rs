//! Client protocol framing: arbitrary chunk splits, and recovery after bad lines.

#[path = "client_strategies.rs"]
mod strategies;

use proptest::prelude::*;
use smp_groups_wire::client::{
    AgentEvent, ClientCommand, CorrId, Entity, ErrorCode, FrameLimits, LineDecoder, LineError,
    Transmission,
};

fn drain<T: smp_groups_wire::client::LineMessage>(
    d: &mut LineDecoder<T>,
) -> Vec<Result<Transmission<T>, LineError>> {
    std::iter::from_fn(|| d.next()).collect()
}

fn small() -> FrameLimits {
    FrameLimits {
        max_line: 64,
        max_payload: 16,
    }
}

fn codes(rs: &[Result<Transmission<ClientCommand>, LineError>]) -> Vec<Result<String, ErrorCode>> {
    rs.iter()
        .map(|r| match r {
            Ok(t) => Ok(t.corr_id.as_str().to_owned()),
            Err(e) => Err(e.code),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_chunking_yields_the_same_transmissions(
        txs in proptest::collection::vec(strategies::command_tx(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream: Vec<u8> = txs.iter().flat_map(Transmission::to_bytes).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut d = LineDecoder::<ClientCommand>::default();
        let mut got = Vec::new();
        for w in points.windows(2) {
            d.push(&stream[w[0]..w[1]]);
            got.extend(drain(&mut d));
        }
        prop_assert!(d.is_idle());
        let got: Vec<_> = got.into_iter().collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, txs);
    }

    #[test]
    fn events_byte_by_byte(txs in proptest::collection::vec(strategies::event_tx(), 1..6)) {
        let stream: Vec<u8> = txs.iter().flat_map(Transmission::to_bytes).collect();
        let mut d = LineDecoder::<AgentEvent>::default();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            got.extend(drain(&mut d));
        }
        let got: Vec<_> = got.into_iter().collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, txs);
    }

    #[test]
    fn garbage_never_panics_and_buffer_stays_bounded(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..100), 0..20)) {
        let mut d = LineDecoder::<ClientCommand>::new(small());
        for c in &chunks {
            d.push(c);
            let _ = drain(&mut d);
            // Unless waiting for a block (at most max_payload + 2), no more than a
            // line's worth stays buffered.
            prop_assert!(d.buffered() <= 64 + 2 + 100);
        }
    }
}

#[test]
fn incomplete_line_waits_then_completes() {
    let mut d = LineDecoder::<ClientCommand>::default();
    d.push(b"1 C:a NEW");
    assert!(d.next().is_none());
    d.push(b"\r");
    assert!(d.next().is_none());
    d.push(b"\n");
    assert!(matches!(d.next(), Some(Ok(_))));
    // A block that has not fully arrived.
    d.push(b"2 C:a SEND 5\r\nhel");
    assert!(d.next().is_none());
    d.push(b"lo\r");
    assert!(d.next().is_none());
    d.push(b"\n");
    assert_eq!(
        d.next(),
        Some(Ok(Transmission::new(
            CorrId::new("2").expect("valid"),
            ClientCommand::Send {
                conn: "a".parse().expect("alias"),
                body: b"hello".to_vec()
            }
        )))
    );
    assert!(d.is_idle());
}

#[test]
fn bare_lf_is_rejected_and_the_next_line_works() {
    let mut d = LineDecoder::<ClientCommand>::default();
    d.push(b"1 C:a NEW\n2 C:b NEW\r\n");
    let rs = drain(&mut d);
    assert_eq!(rs.len(), 2);
    let e = rs[0].as_ref().expect_err("bare LF");
    assert_eq!(
        (e.code, e.detail.as_str(), e.corr_id.as_str()),
        (ErrorCode::Syntax, "line must end with CRLF", "1")
    );
    assert_eq!(rs[1].as_ref().map(|t| t.corr_id.as_str()), Ok("2"));
}

#[test]
fn empty_lines_are_skipped() {
    let mut d = LineDecoder::<ClientCommand>::default();
    d.push(b"\r\n\r\n1 C:a NEW\r\n");
    assert_eq!(codes(&drain(&mut d)), vec![Ok("1".into())]);
}

#[test]
fn over_long_line_is_large_and_resynchronises() {
    let mut d = LineDecoder::<ClientCommand>::new(small());
    let long = format!("7 C:a SEND :{}\r\n", "x".repeat(100));
    // Arrives in pieces: the error comes as soon as the limit is passed.
    d.push(&long.as_bytes()[..40]);
    assert!(d.next().is_none());
    d.push(&long.as_bytes()[40..80]);
    let e = d.next().expect("error").expect_err("too long");
    assert_eq!((e.code, e.corr_id.as_str()), (ErrorCode::Large, "7"));
    assert_eq!(e.entity, Entity::Conn(Some("a".parse().expect("alias"))));
    d.push(&long.as_bytes()[80..]);
    d.push(b"8 C:a NEW\r\n");
    assert_eq!(codes(&drain(&mut d)), vec![Ok("8".into())]);
    // A line of exactly the maximum is accepted.
    let exact = format!("9 C:a SEND :{}\r\n", "y".repeat(64 - 12));
    assert_eq!(exact.len(), 64 + 2);
    d.push(exact.as_bytes());
    assert_eq!(codes(&drain(&mut d)), vec![Ok("9".into())]);
}

#[test]
fn over_large_payload_is_skipped() {
    let mut d = LineDecoder::<ClientCommand>::new(small());
    d.push(b"1 C:a SEND 17\r\n");
    let e = d.next().expect("error").expect_err("too large");
    assert_eq!((e.code, e.corr_id.as_str()), (ErrorCode::Large, "1"));
    d.push(b"0123456789abcdefg\r\n2 C:a SEND 16\r\n0123456789abcdef\r\n");
    assert_eq!(codes(&drain(&mut d)), vec![Ok("2".into())]);
}

#[test]
fn block_without_crlf_is_rejected_and_resynchronises() {
    let mut d = LineDecoder::<ClientCommand>::default();
    d.push(b"1 C:a SEND 3\r\nabcXY junk\r\n2 C:a NEW\r\n");
    let rs = drain(&mut d);
    assert_eq!(codes(&rs), vec![Err(ErrorCode::Syntax), Ok("2".into())]);
    assert_eq!(
        rs[0].as_ref().expect_err("bad").detail,
        "payload block must end with CRLF"
    );
}

#[test]
fn length_mismatch_and_payload_forms() {
    // An inline payload may contain spaces and digits; only a bare number announces
    // a block.
    let mut d = LineDecoder::<ClientCommand>::default();
    d.push(b"1 C:a SEND :call me at 5\r\n2 G:g NEW 0\r\n\r\n");
    let rs = drain(&mut d);
    assert_eq!(codes(&rs), vec![Ok("1".into()), Ok("2".into())]);
    // ACK's number is not a payload length.
    d.push(b"3 C:a ACK 5\r\n");
    assert_eq!(codes(&drain(&mut d)), vec![Ok("3".into())]);
}

#[test]
fn untrusted_huge_length_resumes_at_the_next_line() {
    // A length above MAX_SKIP is not skipped: the next line is read at once.
    let mut d = LineDecoder::<ClientCommand>::new(small());
    d.push(b"1 C:a SEND 99999999999\r\n2 C:a NEW\r\n");
    assert_eq!(
        codes(&drain(&mut d)),
        vec![Err(ErrorCode::Large), Ok("2".into())]
    );
    // A length just at MAX_SKIP is skipped (the decoder waits for the bytes).
    let mut d = LineDecoder::<ClientCommand>::new(small());
    let line = format!("1 C:a SEND {}\r\n", smp_groups_wire::client::MAX_SKIP);
    d.push(line.as_bytes());
    d.push(b"2 C:a NEW\r\n");
    assert_eq!(codes(&drain(&mut d)), vec![Err(ErrorCode::Large)]);
    assert!(!d.is_idle());
}
