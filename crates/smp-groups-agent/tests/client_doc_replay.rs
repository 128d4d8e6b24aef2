//! Docs that cannot drift: every example in docs/protocol-client.md (the
//! fenced blocks after "## Examples") is a `transcript` block, replayed here
//! against live agents, each served on a loopback TCP port over relays in the
//! test's process (real relays, reached by the agents' network client over
//! in-memory pipes); the agents' actual lines must be the document's, line by
//! line.
//!
//! Markup (also described in the document): a block opens with
//! ```` ```transcript alice bob ```` naming its agents (alice and carol on
//! `smp://relay-a.test`, every other one on `smp://relay-b.test`; a name
//! followed by `:approval=N` runs with that approval threshold). Each line is
//! `name> line` (sent by name's client, with CRLF; a line ending in `\n` is
//! sent with a bare LF instead) or `name< line` (the next line name's agent
//! sends, CRLF not shown). Lines are replayed in document order: a `<` line
//! waits for that line. `<name>` stands for a value that varies from run to
//! run: bound to what the agent sent on first sight, then compared exactly
//! on later uses and substituted in client lines; `<len>` (the length of a
//! status answer's rows, which follow and are compared exactly), `<time>`
//! and `<relay_id>` are never bound: each use may differ. After a block, nothing else may arrive on any session.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, Endpoint, RELAY_A, RELAY_B, relays};
use smp_groups_agent::{Agent, AgentConfig};
use smp_groups_wire::client::Transmission;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol-client.md");
    std::fs::read_to_string(path).unwrap()
}

/// One step of a transcript.
#[derive(Clone, Debug)]
enum Step {
    /// A client line (`bare_lf`: sent with LF only).
    Send {
        who: String,
        text: String,
        bare_lf: bool,
    },
    /// A line the agent must send (`any_order`: marked `<~`, it may come
    /// before the lines of the same session just above it).
    Expect {
        who: String,
        pattern: String,
        any_order: bool,
    },
}

#[derive(Clone, Debug)]
struct Block {
    /// The line of the opening fence (1-based).
    line: usize,
    /// The agents, with their approval threshold if given.
    agents: Vec<(String, Option<usize>)>,
    steps: Vec<(usize, Step)>,
}

/// The fenced blocks of the Examples section: transcripts, and the opening
/// lines of blocks that are not transcripts.
fn blocks(doc: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let start = doc
        .lines()
        .position(|l| l == "## Examples")
        .expect("an Examples section");
    let mut out = Vec::new();
    let mut others = Vec::new();
    let mut cur: Option<Block> = None;
    let mut in_other = false;
    for (i, line) in doc.lines().enumerate().skip(start + 1) {
        let n = i + 1;
        if line.starts_with("## ") {
            break;
        }
        if let Some(info) = line.strip_prefix("```") {
            if let Some(b) = cur.take() {
                out.push(b);
                continue;
            }
            if in_other {
                in_other = false;
                continue;
            }
            if let Some(names) = info.strip_prefix("transcript ") {
                let agents = names
                    .split_whitespace()
                    .map(|spec| match spec.split_once(":approval=") {
                        Some((name, t)) => (name.to_owned(), Some(t.parse().unwrap())),
                        None => (spec.to_owned(), None),
                    })
                    .collect();
                cur = Some(Block {
                    line: n,
                    agents,
                    steps: Vec::new(),
                });
            } else {
                others.push((n, line.to_owned()));
                in_other = true;
            }
            continue;
        }
        let Some(b) = cur.as_mut() else { continue };
        let split = line
            .find(['>', '<'])
            .unwrap_or_else(|| panic!("line {n}: no direction: {line:?}"));
        let who = &line[..split];
        assert!(
            b.agents.iter().any(|(a, _)| a == who),
            "line {n}: {who:?} is not an agent of the block"
        );
        let rest = &line[split + 1..];
        let text = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
        let step = if line.as_bytes()[split] == b'>' {
            match text.strip_suffix("\\n") {
                Some(t) => Step::Send {
                    who: who.to_owned(),
                    text: t.to_owned(),
                    bare_lf: true,
                },
                None => Step::Send {
                    who: who.to_owned(),
                    text,
                    bare_lf: false,
                },
            }
        } else {
            let (any_order, text) = match rest.strip_prefix('~') {
                Some(r) => (true, r.strip_prefix(' ').unwrap_or(r).to_owned()),
                None => (false, text),
            };
            Step::Expect {
                who: who.to_owned(),
                pattern: text,
                any_order,
            }
        };
        b.steps.push((n, step));
    }
    assert!(cur.is_none(), "an unterminated transcript");
    (out, others)
}

/// Placeholders that are never bound: each use may differ (a status
/// answer's rows length, a timestamp, a relay's message id).
const FREE: [&str; 3] = ["len", "time", "relay_id"];

/// A pattern's pieces: literal text and placeholder names.
enum Piece<'a> {
    Lit(&'a str),
    Var(&'a str),
}

fn pieces(pattern: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = pattern;
    let mut lit_start = 0;
    let mut i = 0;
    while i < rest.len() {
        if rest.as_bytes()[i] == b'<' {
            if let Some(end) = rest[i + 1..].find('>') {
                let name = &rest[i + 1..i + 1 + end];
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
                if ok {
                    if lit_start < i {
                        out.push(Piece::Lit(&rest[lit_start..i]));
                    }
                    out.push(Piece::Var(name));
                    rest = &rest[i + 2 + end..];
                    i = 0;
                    lit_start = 0;
                    continue;
                }
            }
        }
        i += 1;
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest));
    }
    out
}

/// Matches `actual` against `pattern`, binding new placeholders in `vars`
/// (only when the whole line matches).
fn matches(pattern: &str, actual: &str, vars: &mut HashMap<String, String>) -> bool {
    let ps = pieces(pattern);
    let mut new = HashMap::new();
    let mut at = 0;
    for (k, p) in ps.iter().enumerate() {
        match p {
            Piece::Lit(l) => {
                if !actual[at..].starts_with(l) {
                    return false;
                }
                at += l.len();
            }
            Piece::Var(name) => {
                let known = vars.get(*name).or_else(|| new.get(*name));
                if let Some(v) = known.filter(|_| !FREE.contains(name)) {
                    if !actual[at..].starts_with(v.as_str()) {
                        return false;
                    }
                    at += v.len();
                    continue;
                }
                let end = match ps.get(k + 1) {
                    Some(Piece::Lit(l)) => match actual[at..].find(l) {
                        Some(e) => at + e,
                        None => return false,
                    },
                    Some(Piece::Var(_)) => panic!("two placeholders in a row in {pattern:?}"),
                    None => actual.len(),
                };
                let v = &actual[at..end];
                if v.is_empty() || v.contains(' ') {
                    return false;
                }
                if !FREE.contains(name) {
                    new.insert((*name).to_owned(), v.to_owned());
                }
                at = end;
            }
        }
    }
    if at != actual.len() {
        return false;
    }
    vars.extend(new);
    true
}

/// `text` with its placeholders replaced by their values; `None` if one is
/// not bound yet.
fn substitute(text: &str, vars: &HashMap<String, String>) -> Option<String> {
    pieces(text)
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => Some((*l).to_owned()),
            Piece::Var(name) => vars.get(*name).cloned(),
        })
        .collect()
}

/// A client session and the lines its agent sent, as the agent wrote them.
struct Session {
    client: Client,
    /// How many of `client.seen` are split into `lines`.
    split: usize,
    lines: Vec<String>,
    /// How many of `lines` the transcript accounted for.
    used: usize,
}

impl Session {
    fn split_new(&mut self) {
        for t in &self.client.seen[self.split..] {
            let bytes = Transmission::new(t.corr_id.clone(), t.msg.clone()).to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let text = text.strip_suffix("\r\n").unwrap_or(&text);
            self.lines.extend(text.split("\r\n").map(str::to_owned));
        }
        self.split = self.client.seen.len();
    }

    /// The next unused line, waiting for it up to `wait`; `None` if none came.
    async fn next_line(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.split_new();
            if let Some(l) = self.lines.get(self.used) {
                self.used += 1;
                return Some(l.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            let step = tokio::time::Instant::now() + Duration::from_millis(50);
            if !self.client.pump_until(step).await {
                return None;
            }
        }
    }
}

/// An agent named `name` on `relay` served on a loopback port.
async fn serve(
    relays: &Arc<smp_groups_agent::testing::MemoryRelays>,
    name: &str,
    relay: &str,
    approval: Option<usize>,
) -> (Agent, Endpoint) {
    let mut cfg = AgentConfig::new(name, relay, None);
    if let Some(t) = approval {
        cfg.core.approval_threshold = t;
    }
    let connector: Arc<dyn smp_groups_agent::RelayConnector> = relays.clone();
    common::serve_config(connector, cfg).await
}

/// Replays `block`; panics listing every difference, with each session's
/// actual lines.
async fn replay(block: &Block) {
    let relays = relays().await;
    let mut agents = Vec::new();
    let mut sessions: Vec<(String, Session)> = Vec::new();
    for (name, approval) in &block.agents {
        let relay = if name == "alice" || name == "carol" {
            RELAY_A
        } else {
            RELAY_B
        };
        let (agent, ep) = serve(&relays, name, relay, *approval).await;
        agents.push(agent);
        let client = Client::connect(&ep, "session").await;
        sessions.push((
            name.clone(),
            Session {
                client,
                split: 0,
                lines: Vec::new(),
                used: 0,
            },
        ));
    }
    let mut vars = HashMap::new();
    let mut errors = Vec::new();
    // `REPLAY_PRINT=1` prints the agents' real lines (for documentation).
    let print = std::env::var_os("REPLAY_PRINT").is_some();
    // After a line that never came, wait less for the next ones.
    let mut wait = common::WAIT;
    let mut k = 0;
    while k < block.steps.len() {
        let (n, step) = &block.steps[k];
        k += 1;
        let who = match step {
            Step::Send { who, .. } | Step::Expect { who, .. } => who,
        };
        let s = &mut sessions.iter_mut().find(|(a, _)| a == who).unwrap().1;
        match step {
            Step::Send { text, bare_lf, .. } => {
                let Some(line) = substitute(text, &vars) else {
                    errors.push(format!(
                        "line {n}: a placeholder is used before it is bound"
                    ));
                    continue;
                };
                let end = if *bare_lf { "\n" } else { "\r\n" };
                if print {
                    eprintln!("{who}> {line}");
                }
                s.client.send_raw(format!("{line}{end}").as_bytes()).await;
            }
            Step::Expect { pattern, .. } => {
                // This line and the `<~` lines of the same session right
                // after it arrive in any order.
                let mut run = vec![(*n, pattern.clone())];
                while let Some((
                    m,
                    Step::Expect {
                        who: w,
                        pattern: p,
                        any_order: true,
                    },
                )) = block.steps.get(k)
                {
                    if w != who {
                        break;
                    }
                    run.push((*m, p.clone()));
                    k += 1;
                }
                for _ in 0..run.len() {
                    let Some(actual) = s.next_line(wait).await else {
                        errors.push(format!("line {n}: {who} got nothing, expected {run:?}"));
                        wait = Duration::from_secs(2);
                        break;
                    };
                    if print {
                        eprintln!("{who}< {actual}");
                    }
                    match run.iter().position(|(_, p)| matches(p, &actual, &mut vars)) {
                        Some(i) => {
                            run.remove(i);
                        }
                        None => errors.push(format!(
                            "line {n}: {who} got {actual:?}, expected one of {run:?}"
                        )),
                    }
                }
            }
        }
    }
    // Nothing more: every line the agents sent is in the document.
    let quiet = tokio::time::Instant::now() + Duration::from_millis(700);
    for (name, s) in &mut sessions {
        s.client.pump_until(quiet).await;
        s.split_new();
        if s.used < s.lines.len() {
            errors.push(format!(
                "{name}'s agent sent lines the document does not show: {:?}",
                &s.lines[s.used..]
            ));
        }
    }
    if !errors.is_empty() {
        let mut report = format!(
            "the transcript at docs/protocol-client.md line {} differs from the agents:\n",
            block.line
        );
        for e in &errors {
            let _ = writeln!(report, "  {e}");
        }
        for (name, s) in &sessions {
            let _ = writeln!(report, "{name}'s agent sent:");
            for l in &s.lines {
                let _ = writeln!(report, "  {name}< {l}");
            }
        }
        panic!("{report}");
    }
    drop(agents);
}

#[test]
fn placeholders_bind_once_and_compare_after() {
    let mut vars = HashMap::new();
    assert!(matches("1 C:bob INV <inv>", "1 C:bob INV abc#d", &mut vars));
    assert_eq!(vars.get("inv").map(String::as_str), Some("abc#d"));
    assert!(!matches("2 JOIN <inv>", "2 JOIN abc#e", &mut vars));
    assert!(matches("2 JOIN <inv>", "2 JOIN abc#d", &mut vars));
    assert!(matches(
        "MSG ok R=1,<t1> S=<s>,<t2> :x",
        "MSG ok R=1,17 S=2,18 :x",
        &mut vars
    ));
    assert_eq!(vars.get("s").map(String::as_str), Some("2"));
    assert!(!matches("R=1,<t3>", "R=2,17", &mut vars));
    assert!(!vars.contains_key("t3"), "no binding from a failed match");
    assert!(
        !matches("a <x>", "a b c", &mut vars),
        "no spaces in a value"
    );
    assert!(matches("L <len>", "L 10", &mut vars));
    assert!(matches("L <len>", "L 12", &mut vars));
    assert!(matches("R=<time> B=<time>", "R=1 B=2", &mut vars));
    assert!(!vars.contains_key("time"));
    assert_eq!(
        substitute("J <inv> <s>", &vars).as_deref(),
        Some("J abc#d 2")
    );
    assert_eq!(substitute("J <unbound>", &vars), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_replayed_against_live_agents() {
    let doc = doc();
    let (blocks, others) = blocks(&doc);
    assert!(
        others.is_empty(),
        "examples that are not transcripts (not replayed): {others:?}"
    );
    assert!(blocks.len() >= 4, "found {} transcripts", blocks.len());
    for b in &blocks {
        assert!(!b.steps.is_empty(), "empty transcript at line {}", b.line);
        replay(b).await;
    }
}
