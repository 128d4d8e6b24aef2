//! A cheating member with real processes (`cheat` feature): two `smp-relay`
//! and five `smp-agent serve`, one of them started with `--cheat`, all
//! driven over TCP with the client text protocol.
//!
//! Each run builds a group of five, then plays [`ROUNDS`] rounds: every
//! member sends one group message, the messages are delivered and
//! acknowledged, every member sends its `G_CHECK` (`G:club CHECK`), and the
//! next round starts at least [`ROUND_SPACING`] later (past the integrity
//! grace, which is the check interval, `--check-interval 3`). The cheater
//! equivocates or withholds from its message of round [`CHEAT_ROUND`] on.
//!
//! Asserted: every honest member reports `VIOLATION` naming the cheater, with
//! an id it saw in a `MSG` of the cheater (the member left out: the first id
//! it never got), by the end of round `CHEAT_ROUND + 1` (two check rounds);
//! no `VIOLATION` names an honest member; an honest run of the same length
//! reports no `VIOLATION` at all. Printed: the round and the wall time from
//! the cheater's send to each member's first `VIOLATION`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::procs::{self, Proc};
use common::temp_db;
use smp_groups_wire::client::{AgentEvent, FrameLimits, LineDecoder, Transmission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

const MEMBERS: usize = 5;
const CHEATER: usize = 1;
const ROUNDS: u64 = 4;
/// The cheater's message of this round is the first it cheats with (one
/// message a round: its group-wide id is the round).
const CHEAT_ROUND: u64 = 2;
/// The check interval the agents run with (seconds), also their grace.
const CHECK_INTERVAL: &str = "3";
/// The least time from one round's start to the next's.
const ROUND_SPACING: Duration = Duration::from_secs(5);
/// How long one step (a command's answer, a join, a round's deliveries) may take.
const STEP_WAIT: Duration = Duration::from_secs(60);
const GROUP: &str = "club";

type Seen = Arc<Mutex<Vec<(Instant, Transmission<AgentEvent>)>>>;

struct Member {
    name: String,
    writer: OwnedWriteHalf,
    seen: Seen,
    reader: tokio::task::JoinHandle<()>,
    next_corr: u64,
    acked_upto: usize,
    _proc: Proc,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Member {
    async fn start(name: String, relay: &str, dir: &Path, extra: &[&str]) -> Self {
        let db = dir.join(format!("{name}.db"));
        let mut args = vec!["--check-interval", CHECK_INTERVAL, "--check-every", "0"];
        args.extend_from_slice(extra);
        let (proc_, addr) = procs::agent_with(&name, relay, &db, None, &args);
        let (stream, rest) = common::connect_authenticated(&addr).await;
        let (mut rd, writer) = stream.into_split();
        let seen: Seen = Arc::default();
        let sink = Arc::clone(&seen);
        let who = name.clone();
        let reader = tokio::spawn(async move {
            let mut decoder = LineDecoder::<AgentEvent>::new(FrameLimits::default());
            decoder.push(&rest);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                while let Some(t) = decoder.next() {
                    let t = t.unwrap_or_else(|e| panic!("{who}: a line that does not decode: {e}"));
                    sink.lock().unwrap().push((Instant::now(), t));
                }
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
            }
        });
        Self {
            name,
            writer,
            seen,
            reader,
            next_corr: 0,
            acked_upto: 0,
            _proc: proc_,
        }
    }

    async fn line(&mut self, line: &str) -> String {
        self.next_corr += 1;
        let corr = self.next_corr.to_string();
        self.writer
            .write_all(format!("{corr} {line}\r\n").as_bytes())
            .await
            .unwrap();
        corr
    }

    /// Sends a command, waits for its answer, which must be `OK` or `SENT`.
    async fn call(&mut self, line: &str) {
        let corr = self.line(line).await;
        let seen = Arc::clone(&self.seen);
        let r = wait(STEP_WAIT, || {
            seen.lock()
                .unwrap()
                .iter()
                .find(|(_, t)| t.corr_id.as_str() == corr)
                .map(|(_, t)| t.msg.clone())
        })
        .await
        .unwrap_or_else(|| panic!("{}: no answer to {line:?}", self.name));
        assert!(
            matches!(r, AgentEvent::Ok { .. } | AgentEvent::GroupSent { .. }),
            "{}: {line:?} answered {r:?}",
            self.name
        );
    }

    /// The agent's own events (empty corrId) with when they were read.
    fn events(&self) -> Vec<(Instant, AgentEvent)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.corr_id.is_empty())
            .map(|(at, t)| (*at, t.msg.clone()))
            .collect()
    }

    fn count(&self, f: impl Fn(&AgentEvent) -> bool) -> usize {
        self.events().iter().filter(|(_, e)| f(e)).count()
    }

    /// Acknowledges every group `MSG` not acknowledged yet.
    async fn ack_new(&mut self) {
        let ids: Vec<u64> = {
            let seen = self.seen.lock().unwrap();
            let ids = seen[self.acked_upto..]
                .iter()
                .filter_map(|(_, t)| match &t.msg {
                    AgentEvent::GroupMsg { msg_id, .. } if t.corr_id.is_empty() => Some(*msg_id),
                    _ => None,
                })
                .collect();
            self.acked_upto = seen.len();
            ids
        };
        for id in ids {
            self.call(&format!("G:{GROUP} ACK {id}")).await;
        }
    }
}

/// Polls `f` every 20 ms until it gives something or `within` passes.
async fn wait<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A visible connection between `a` and `b`, then `a` adds `b` to the group;
/// returns once `b` and every earlier member `0..b` saw the join complete.
async fn add(ms: &mut [Member], a: usize, b: usize) {
    let (na, nb) = (ms[a].name.clone(), ms[b].name.clone());
    ms[a].call(&format!("C:{nb} NEW")).await;
    let inv = wait(STEP_WAIT, || {
        ms[a].events().into_iter().find_map(|(_, e)| match e {
            AgentEvent::Inv { conn, invitation } if conn.as_str() == nb => {
                Some(invitation.as_str().to_owned())
            }
            _ => None,
        })
    })
    .await
    .expect("INV");
    ms[b].call(&format!("C:{na} JOIN {inv}")).await;
    for (x, alias) in [(a, nb.clone()), (b, na.clone())] {
        wait(STEP_WAIT, || {
            (ms[x].count(|e| matches!(e, AgentEvent::Con { conn } if conn.as_str() == alias)) > 0)
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{}: no CON for {alias}", ms[x].name));
    }
    ms[a]
        .call(&format!("C:{nb} INTRO G:{GROUP} :welcome"))
        .await;
    let g = wait(STEP_WAIT, || {
        ms[b].events().into_iter().find_map(|(_, e)| match e {
            AgentEvent::Req {
                conn, invitation, ..
            } if conn.as_str() == na => Some(invitation.as_str().to_owned()),
            _ => None,
        })
    })
    .await
    .expect("REQ");
    ms[b].call(&format!("G:{GROUP} JOIN g:{g}")).await;
    // Complete: b has its MEM and a CON for each of 0..b; member j < b has a
    // CON for each other of 0..=b and a MEM for each member added after it.
    let done = wait(STEP_WAIT, || {
        let mut ok = ms[b].count(|e| matches!(e, AgentEvent::GroupMem { member: None, .. })) == 1
            && ms[b].count(|e| matches!(e, AgentEvent::GroupCon { .. })) == b;
        for (j, m) in ms.iter().enumerate().take(b) {
            ok &= m.count(|e| matches!(e, AgentEvent::GroupCon { .. })) == b;
            ok &= m.count(|e| {
                matches!(
                    e,
                    AgentEvent::GroupMem {
                        member: Some(_),
                        ..
                    }
                )
            }) == if j == 0 { b } else { b - j };
        }
        ok.then_some(())
    })
    .await;
    assert!(done.is_some(), "the join of {nb} did not complete");
}

/// What one run saw.
struct Outcome {
    /// The cheater's member id, as the others name it.
    cheater: String,
    /// Per member: its `VIOLATION`s (when read, the round then, the event).
    violations: BTreeMap<usize, Vec<(Instant, u64, AgentEvent)>>,
    /// Per member: the cheater's group-wide ids it saw in `MSG`.
    seen_ids: BTreeMap<usize, BTreeSet<u64>>,
    /// When the cheater sent its first cheating message.
    cheat_sent: Option<Instant>,
}

async fn run(mode: Option<&str>) -> Outcome {
    let label = mode.unwrap_or("honest");
    let dir = temp_db(&format!("cheat-{label}")).with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let (relay_a, ra) = procs::relay("127.0.0.1:0", &dir.join("relay-a"));
    let (relay_b, rb) = procs::relay("127.0.0.1:0", &dir.join("relay-b"));
    let cheat_arg = mode.map(|m| format!("{m}:{CHEAT_ROUND}"));
    let mut ms = Vec::new();
    for i in 0..MEMBERS {
        let relay = if i % 2 == 0 { &ra } else { &rb };
        let extra: Vec<&str> = match (&cheat_arg, i == CHEATER) {
            (Some(c), true) => vec!["--cheat", c.as_str()],
            _ => vec![],
        };
        ms.push(Member::start(format!("m{i}"), relay, &dir, &extra).await);
    }
    let t_setup = Instant::now();
    ms[0].call(&format!("G:{GROUP} NEW :cheat test")).await;
    for b in 1..MEMBERS {
        add(&mut ms, 0, b).await;
    }
    eprintln!(
        "[{label}] group of {MEMBERS} built in {:.1}s",
        t_setup.elapsed().as_secs_f64()
    );
    let mut round_of: Vec<(Instant, u64)> = Vec::new();
    let mut cheat_sent = None;
    for round in 1..=ROUNDS {
        let start = Instant::now();
        round_of.push((start, round));
        for (i, m) in ms.iter_mut().enumerate() {
            if i == CHEATER && round == CHEAT_ROUND {
                cheat_sent = Some(Instant::now());
            }
            m.call(&format!("G:{GROUP} SEND :m{i} r{round}")).await;
        }
        // Deliveries: every member gets the round's messages of the others
        // (but one member, left out by a withholding cheater).
        let expected = (MEMBERS - 1) * usize::try_from(round).unwrap();
        let withheld = if mode == Some("withhold") && round >= CHEAT_ROUND {
            usize::try_from(round - CHEAT_ROUND + 1).unwrap()
        } else {
            0
        };
        let delivered = wait(STEP_WAIT, || {
            let counts: Vec<usize> = ms
                .iter()
                .map(|m| m.count(|e| matches!(e, AgentEvent::GroupMsg { .. })))
                .collect();
            let short = counts.iter().filter(|c| **c < expected).count();
            let all = counts.iter().all(|c| *c + withheld >= expected);
            (all && short <= usize::from(withheld > 0)).then_some(())
        })
        .await;
        assert!(
            delivered.is_some(),
            "[{label}] round {round}: messages not delivered"
        );
        for m in &mut ms {
            m.ack_new().await;
        }
        for m in &mut ms {
            m.call(&format!("G:{GROUP} CHECK")).await;
        }
        let rest = ROUND_SPACING.saturating_sub(start.elapsed());
        tokio::time::sleep(rest.max(Duration::from_millis(1500))).await;
        eprintln!(
            "[{label}] round {round} done in {:.1}s",
            start.elapsed().as_secs_f64()
        );
    }
    let round_at = |at: Instant| {
        round_of
            .iter()
            .rev()
            .find(|(s, _)| *s <= at)
            .map_or(0, |(_, r)| *r)
    };
    let cheater = ms
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != CHEATER)
        .find_map(|(_, m)| {
            m.events().into_iter().find_map(|(_, e)| match e {
                AgentEvent::GroupMsg { member, body, .. } if body.starts_with(b"m1 ") => {
                    Some(member.as_str().to_owned())
                }
                _ => None,
            })
        })
        .expect("the cheater's messages reached someone");
    let mut violations = BTreeMap::new();
    let mut seen_ids = BTreeMap::new();
    for (i, m) in ms.iter().enumerate() {
        let mut v = Vec::new();
        let mut ids = BTreeSet::new();
        for (at, e) in m.events() {
            match &e {
                AgentEvent::Violation { .. } => v.push((at, round_at(at), e.clone())),
                AgentEvent::GroupMsg { member, meta, .. } if member.as_str() == cheater => {
                    ids.insert(meta.snd_msg_id);
                }
                _ => {}
            }
        }
        violations.insert(i, v);
        seen_ids.insert(i, ids);
    }
    drop(ms);
    drop((relay_a, relay_b));
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        cheater,
        violations,
        seen_ids,
        cheat_sent,
    }
}

fn report(label: &str, o: &Outcome) {
    for (m, vs) in &o.violations {
        let first = vs.first().map(|(at, round, e)| {
            let secs = o
                .cheat_sent
                .map(|c| at.saturating_duration_since(c).as_secs_f64());
            format!("round {round} (cheat in round {CHEAT_ROUND}), {secs:?} s after the cheating send: {e:?}")
        });
        eprintln!(
            "[{label}] m{m}: {} VIOLATION(s); first: {}",
            vs.len(),
            first.unwrap_or_else(|| "none".into())
        );
    }
}

fn assert_detected(label: &str, o: &Outcome, left_out: Option<usize>) {
    for m in (0..MEMBERS).filter(|m| *m != CHEATER) {
        let vs = &o.violations[&m];
        let mut about_cheater = 0;
        for (_, round, e) in vs {
            let AgentEvent::Violation {
                member,
                msg_id,
                kind,
                ..
            } = e
            else {
                continue;
            };
            assert_eq!(
                member.as_str(),
                o.cheater,
                "[{label}] m{m}: a VIOLATION names an honest member: {e:?}"
            );
            about_cheater += 1;
            if *round <= CHEAT_ROUND + 1 && kind.as_str() != "sig" {
                if left_out == Some(m) {
                    assert!(
                        !o.seen_ids[&m].contains(msg_id) && *msg_id >= CHEAT_ROUND,
                        "[{label}] m{m}: {e:?}: not an id it missed ({:?})",
                        o.seen_ids[&m]
                    );
                } else {
                    assert!(
                        o.seen_ids[&m].contains(msg_id),
                        "[{label}] m{m}: {e:?}: not an id it saw in MSG ({:?})",
                        o.seen_ids[&m]
                    );
                }
            }
        }
        assert!(about_cheater > 0, "[{label}] m{m}: no VIOLATION");
        let first = vs.first().map(|(_, r, _)| *r);
        assert!(
            first.is_some_and(|r| r <= CHEAT_ROUND + 1),
            "[{label}] m{m}: first VIOLATION in round {first:?}, cheat in round {CHEAT_ROUND}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    procs::relay_bin();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn honest_run_reports_no_violation() {
    let o = runtime().block_on(run(None));
    report("honest", &o);
    for (m, vs) in &o.violations {
        assert!(vs.is_empty(), "[honest] m{m}: {vs:?}");
    }
}

#[test]
fn equivocation_is_reported_within_two_rounds() {
    let o = runtime().block_on(run(Some("equivocate")));
    report("equivocate", &o);
    assert_detected("equivocate", &o, None);
}

#[test]
fn withholding_is_reported_within_two_rounds() {
    let o = runtime().block_on(run(Some("withhold")));
    report("withhold", &o);
    let left_out = (0..MEMBERS)
        .filter(|m| *m != CHEATER)
        .find(|m| !o.seen_ids[m].contains(&CHEAT_ROUND))
        .expect("someone was left out");
    eprintln!("[withhold] left out: m{left_out}");
    assert_detected("withhold", &o, Some(left_out));
}
