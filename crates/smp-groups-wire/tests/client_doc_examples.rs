//! Every example line in docs/protocol-client.md (the `text` blocks and the
//! `transcript` blocks, placeholders replaced by sample values) parses, and
//! re-encodes to exactly the documented bytes. The transcripts are also
//! replayed against live agents by `smp-groups-agent`'s
//! `tests/client_doc_replay.rs`. A documented `ERR SYNTAX` / `ERR UNKNOWN_COMMAND` answer
//! to a command line must be what the parser itself answers.

use smp_groups_wire::client::{
    AgentEvent, ClientCommand, ErrorCode, LineDecoder, LineMessage, Transmission,
};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol-client.md"
));

/// Sample values for the placeholders of the transcripts (`<time>`,
/// `<relay_id>`, ids; any other `<name>` stands for an alias, an invitation
/// or a payload word and becomes `name`; `<len>` is computed by
/// [`fill_lengths`]).
fn sample(name: &str) -> String {
    match name {
        "time" => "1700000000000".to_owned(),
        "relay_id" => "ypeBEsobvcr6wjGzmiPcTaeG7_gUfE5y".to_owned(),
        "len" => "<len>".to_owned(),
        // Ids: `<r1>` (an `R=` id, for `ACK`), `<req1>` (an approval request),
        // `<d1>` (the sender's id of a direct message, in `DSENT`/`DRCVD`).
        n if ["r", "req", "d"].iter().any(|p| {
            n.strip_prefix(p)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
        }) =>
        {
            "7".to_owned()
        }
        other => other.to_owned(),
    }
}

/// `line` with its placeholders (`<name>`, name of `a-z 0-9 _`) replaced.
fn substitute(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('<') {
        let name_end = rest[i + 1..].find('>').map(|e| i + 1 + e);
        let name = name_end.map(|e| &rest[i + 1..e]);
        match (name, name_end) {
            (Some(n), Some(e))
                if !n.is_empty()
                    && n.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') =>
            {
                out.push_str(&rest[..i]);
                out.push_str(&sample(n));
                rest = &rest[e + 1..];
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces each `<len>` that ends a status answer's line by the length of
/// the rows that follow it (the lines whose first word is `key=value`, CRLF
/// between them; an empty line for no rows).
fn fill_lengths(lines: &mut [String]) {
    for i in 0..lines.len() {
        let Some(head) = lines[i].strip_suffix(" <len>") else {
            continue;
        };
        let head = head.to_owned();
        let rows: Vec<&String> = lines[i + 1..]
            .iter()
            .take_while(|l| l.split(' ').next().is_some_and(|w| w.contains('=')))
            .collect();
        let len = if rows.is_empty() {
            0
        } else {
            rows.iter().map(|r| r.len()).sum::<usize>() + 2 * (rows.len() - 1)
        };
        lines[i] = format!("{head} {len}");
    }
}

/// The lines of the `text` blocks and of the `transcript` blocks (whose
/// lines are `name> ` and `name< `), as (direction, line) pairs, the
/// transcripts' placeholders replaced by sample values.
fn example_lines() -> Vec<(char, String)> {
    let mut out = Vec::new();
    // Inside a block: `Some(true)` a transcript, `Some(false)` a `text`
    // block; other blocks (`abnf`) are skipped.
    let mut block: Option<Option<bool>> = None;
    for line in DOC.lines() {
        if let Some(info) = line.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None if info == "text" => Some(Some(false)),
                None if info.starts_with("transcript ") => Some(Some(true)),
                None => Some(None),
            };
            continue;
        }
        let Some(Some(transcript)) = block else {
            continue;
        };
        let (dir, rest) = if transcript {
            let i = line.find(['>', '<']);
            assert!(i.is_some(), "transcript line without direction: {line:?}");
            let i = i.unwrap_or(0);
            let rest = &line[i + 1..];
            // `<~`: a line that may come before the ones above it.
            let rest = rest.strip_prefix('~').unwrap_or(rest);
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            (
                line.as_bytes()[i] as char,
                // `\n`: sent with a bare LF (kept as the line's last byte).
                match rest.strip_suffix("\\n") {
                    Some(r) => substitute(r) + "\n",
                    None => substitute(rest),
                },
            )
        } else {
            let (dir, rest) = line.split_at(2);
            assert!(
                dir == "> " || dir == "< ",
                "example line without direction: {line:?}"
            );
            (dir.chars().next().unwrap_or(' '), rest.to_owned())
        };
        out.push((dir, rest));
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
        if !l.ends_with('\n') {
            d.push(b"\r\n");
        }
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
    let mut events: Vec<String> = lines
        .iter()
        .filter(|(d, _)| *d == '<')
        .map(|(_, l)| l.clone())
        .collect();
    fill_lengths(&mut events);

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
