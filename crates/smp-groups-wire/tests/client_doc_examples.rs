//! Every example line in docs/protocol-client.md parses, and re-encodes to exactly
//! the documented bytes. A documented `ERR SYNTAX` / `ERR UNKNOWN_COMMAND` answer
//! to a command line must be what the parser itself answers.

use smp_groups_wire::client::{
    AgentEvent, ClientCommand, ErrorCode, LineDecoder, LineMessage, Transmission,
};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol-client.md"
));

/// The `text` blocks after "## Examples", as (direction, line) pairs.
fn example_lines() -> Vec<(char, String)> {
    let examples = DOC
        .split("## Examples")
        .nth(1)
        .expect("an Examples section");
    let mut out = Vec::new();
    let mut in_block = false;
    for line in examples.lines() {
        if line.starts_with("```") {
            in_block = line == "```text";
            continue;
        }
        if in_block {
            let (dir, rest) = line.split_at(2);
            assert!(
                dir == "> " || dir == "< ",
                "example line without direction: {line:?}"
            );
            out.push((dir.chars().next().unwrap_or(' '), rest.to_owned()));
        }
    }
    out
}

/// Decodes a stream of CRLF-terminated lines, one transmission at a time.
fn decode_stream<T: LineMessage>(
    lines: &[String],
) -> Vec<Result<Transmission<T>, smp_groups_wire::client::LineError>> {
    let mut d = LineDecoder::<T>::default();
    let mut out = Vec::new();
    for l in lines {
        d.push(l.as_bytes());
        d.push(b"\r\n");
        out.extend(std::iter::from_fn(|| d.next()));
    }
    assert!(d.is_idle(), "a block was left incomplete");
    out
}

#[test]
fn documented_examples_parse_and_reencode() {
    let lines = example_lines();
    assert!(lines.len() > 60, "found {} example lines", lines.len());
    let commands: Vec<String> = lines
        .iter()
        .filter(|(d, _)| *d == '>')
        .map(|(_, l)| l.clone())
        .collect();
    let events: Vec<String> = lines
        .iter()
        .filter(|(d, _)| *d == '<')
        .map(|(_, l)| l.clone())
        .collect();

    // Events: a status answer's rows are lines of their own (its block);
    // decode as a stream, and the events re-encode to exactly the lines.
    let parsed_events = decode_stream::<AgentEvent>(&events);
    let mut documented_errors = Vec::new();
    let mut reencoded = Vec::new();
    for ev in &parsed_events {
        assert!(ev.is_ok(), "event {ev:?}");
        let Ok(ev) = ev else { continue };
        reencoded.extend(ev.to_bytes());
        if let AgentEvent::Error { code, .. } = &ev.msg {
            if matches!(code, ErrorCode::Syntax | ErrorCode::UnknownCommand)
                && !ev.corr_id.is_empty()
            {
                documented_errors.push(ev.clone());
            }
        }
    }
    let documented: String = events.iter().map(|l| l.clone() + "\r\n").collect();
    assert_eq!(
        String::from_utf8_lossy(&reencoded),
        documented,
        "events re-encode to the documented lines"
    );

    // Commands: the length-prefixed example spans two lines; decode as a stream.
    let parsed_commands = decode_stream::<ClientCommand>(&commands);
    let mut found_errors = Vec::new();
    for c in parsed_commands {
        match c {
            Ok(t) => {
                let again = decode_stream::<ClientCommand>(&[String::from_utf8(t.to_bytes())
                    .expect("ASCII")
                    .trim_end_matches("\r\n")
                    .to_owned()]);
                // Single-line form only for inline payloads; the rest is checked by the
                // property tests.
                if let [Ok(a)] = again.as_slice() {
                    assert_eq!(a, &t);
                }
            }
            Err(e) => found_errors.push(Transmission::<AgentEvent>::from(e)),
        }
    }
    assert_eq!(found_errors, documented_errors);
}
