//! The scripted run of `smp-agent demo`: two embedded SMP relays on loopback
//! (the relay crate's server, over TLS 1.3 and the SMP block transport) and N
//! agents reaching them through the network client, each with its database in
//! a temporary directory (members alternate between the relays) go through create -> invite everyone ->
//! everyone sends -> receipts -> a `G_CHECK` round -> remove one -> one leaves
//! -> delete. Each step prints the agent envelopes it took beside the seed's
//! formula and the exact formula of `docs/costs.md`, and its time; the run
//! passes only if every check held.

#![allow(clippy::many_single_char_names)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smp_groups_core::Config;
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

use crate::agent::{Agent, AgentConfig};
use crate::error::Error;
use crate::events::member_alias;
use crate::network::NetworkRelay;
use smp_groups_relay::server::{Relay, RelayHandle};

/// The number of relays the demo starts.
pub const RELAYS: usize = 2;

/// How long one step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of the demo: its agent and everything it reported.
struct Member {
    agent: Agent,
    log: Arc<Mutex<Vec<AgentEvent>>>,
    group: String,
    id: String,
}

impl Member {
    fn len(&self) -> usize {
        self.log.lock().map_or(0, |l| l.len())
    }

    /// Waits for an event after index `from` matching `f`.
    async fn wait<T>(&self, from: usize, f: impl Fn(&AgentEvent) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Ok(log) = self.log.lock()
                && let Some(found) = log.get(from..).unwrap_or_default().iter().find_map(&f)
            {
                return Some(found);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn count(&self, f: impl Fn(&AgentEvent) -> bool) -> usize {
        self.log
            .lock()
            .map_or(0, |l| l.iter().filter(|e| f(e)).count())
    }
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What the step did.
    pub name: String,
    /// Agent envelopes it took (without `G_CHECK`s, counted in their own step).
    pub envelopes: u64,
    /// The seed's formula and value, if it has one.
    pub seed: Option<(String, u64)>,
    /// The exact formula of `docs/costs.md` and its value.
    pub expected: Option<(String, u64)>,
    /// Whether every check of the step held.
    pub ok: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// The report of a demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every step, in order.
    pub steps: Vec<Step>,
}

impl Report {
    /// True if every step passed.
    pub fn ok(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

/// Where a step starts: its clock, the envelopes sent so far (of `kinds`)
/// and how many events each member had reported.
struct Mark {
    t: Instant,
    kinds: Option<&'static [&'static str]>,
    before: u64,
    events: Vec<usize>,
}

impl Mark {
    async fn take(run: &Run, kinds: Option<&'static [&'static str]>) -> Self {
        Self {
            t: Instant::now(),
            kinds,
            before: envelopes(&run.members, kinds).await,
            events: run.members.iter().map(Member::len).collect(),
        }
    }

    /// Envelopes (of the mark's kinds) sent since the mark.
    async fn taken(&self, members: &[Member]) -> u64 {
        envelopes(members, self.kinds).await - self.before
    }
}

async fn envelopes(members: &[Member], kinds: Option<&[&str]>) -> u64 {
    let mut total = 0;
    for m in members {
        if let Ok(metrics) = m.agent.metrics().await {
            total += metrics
                .envelopes
                .iter()
                .filter(|(k, _)| match kinds {
                    Some(ks) => ks.contains(&k.as_str()),
                    None => k.as_str() != "G_CHECK",
                })
                .map(|(_, v)| *v)
                .sum::<u64>();
        }
    }
    total
}

struct Run {
    members: Vec<Member>,
    /// The relays' addresses.
    relays: Vec<String>,
    report: Report,
    total_steps: usize,
    started: Instant,
    print: bool,
}

impl Run {
    fn begin(&self, name: &str) {
        if self.print {
            print!(
                "[{:>2}/{}] {name:<40} ",
                self.report.steps.len() + 1,
                self.total_steps
            );
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }

    fn end(&mut self, step: Step) {
        if self.print {
            let mut line = format!("{:>4} envelopes", step.envelopes);
            if let Some((f, v)) = &step.expected {
                let _ = write!(line, " | ours {f} = {v}");
            }
            if let Some((f, v)) = &step.seed {
                let _ = write!(line, " | seed {f} = {v}");
            }
            let _ = write!(
                line,
                " | {:>6.1} ms | {}",
                step.elapsed.as_secs_f64() * 1000.0,
                if step.ok { "ok" } else { "FAILED" }
            );
            println!("{line}");
        }
        self.report.steps.push(step);
    }
}

/// `a`, `b`, ... for relay `i`.
fn relay_name(i: usize) -> char {
    char::from(b'a'.saturating_add(u8::try_from(i).unwrap_or(25).min(25)))
}

#[allow(clippy::unnecessary_wraps)] // every use is an `Option` field
fn formula(text: &str, n: u64, f: impl Fn(u64) -> u64) -> Option<(String, u64)> {
    Some((format!("{text} (n={n})"), f(n)))
}

/// Runs the demo with `n` members and `m` messages from each, printing each
/// step when `print` is set.
pub async fn run(n: usize, m: usize, print: bool) -> Result<Report, Error> {
    let dir = std::env::temp_dir().join(format!(
        "smp-agent-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let mut handles = Vec::new();
    let mut result = Ok(Report::default());
    for r in 0..RELAYS {
        match Relay::spawn_local(&dir.join(format!("relay-{r}"))).await {
            Ok(h) => handles.push(h),
            Err(e) => {
                result = Err(Error::Unexpected(format!("cannot start a relay: {e}")));
                break;
            }
        }
    }
    if result.is_ok() {
        result = run_on(&handles, &dir, n, m, print).await;
    }
    for h in handles {
        h.shutdown().await;
    }
    // The demo's relays and agents leave nothing behind.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_on(
    handles: &[RelayHandle],
    dir: &std::path::Path,
    n: usize,
    m: usize,
    print: bool,
) -> Result<Report, Error> {
    let n = n.max(3);
    let addresses: Vec<String> = handles.iter().map(RelayHandle::address).collect();
    let relays = Arc::new(NetworkRelay::new());
    let mut members = Vec::new();
    for i in 0..n {
        let server = addresses[i % addresses.len()].as_str();
        let db = dir.join(format!("member{i}.db"));
        let mut cfg = AgentConfig::new(&format!("member{i}"), server, Some(db));
        cfg.core = Config {
            server: server.to_owned(),
            check_interval_ms: Some(1_000),
            check_every_messages: None,
            check_window: 64,
            ..Config::default()
        };
        let agent = Agent::open(cfg, relays.clone())?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut events = agent.events().await?;
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(d) = events.next().await {
                if let Ok(mut l) = sink.lock() {
                    l.push(d.event);
                }
            }
        });
        members.push(Member {
            agent,
            log,
            group: String::new(),
            id: String::new(),
        });
    }
    let total_steps = 1 + (n - 1) + n * m + 1 + 3;
    let mut run = Run {
        members,
        relays: addresses,
        report: Report::default(),
        total_steps,
        started: Instant::now(),
        print,
    };
    if print {
        println!(
            "smp-agent demo: {n} members on {} embedded relays over TLS, {m} message(s) each",
            run.relays.len(),
        );
        for (i, r) in run.relays.iter().enumerate() {
            println!("  relay {}: {r}", relay_name(i));
        }
        println!(
            "  (agent databases and relay stores in {}, removed at the end)",
            dir.display()
        );
    }
    create(&mut run).await?;
    for i in 1..n {
        add(&mut run, i).await?;
    }
    for round in 0..m {
        for i in 0..n {
            send(&mut run, i, round).await?;
        }
    }
    gcheck(&mut run).await?;
    remove(&mut run, n - 1).await?;
    leave(&mut run, n - 2).await?;
    delete(&mut run, n - 2).await?;
    if print {
        let ok = run.report.ok();
        println!(
            "{}: {}/{} steps passed in {:.1} ms",
            if ok {
                "every check held"
            } else {
                "SOME CHECKS FAILED"
            },
            run.report.steps.iter().filter(|s| s.ok).count(),
            run.report.steps.len(),
            run.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
    // Agents stop before their relays, closing their connections.
    for m in &run.members {
        m.agent.shutdown().await;
    }
    Ok(run.report)
}

async fn create(run: &mut Run) -> Result<(), Error> {
    run.begin("create the group");
    let t = Instant::now();
    let before = envelopes(&run.members, None).await;
    let group = run.members[0]
        .agent
        .create_group(None, b"demo group")
        .await?;
    let id = run.members[0].agent.member_id(&group).await?;
    run.members[0].group = group;
    run.members[0].id = id
        .as_ref()
        .and_then(member_alias)
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let after = envelopes(&run.members, None).await;
    let ok = id.is_some() && after == before;
    run.end(Step {
        name: "create".into(),
        envelopes: after - before,
        seed: None,
        expected: Some(("0".into(), 0)),
        ok,
        elapsed: t.elapsed(),
    });
    Ok(())
}

/// A visible connection between member 0 and member `i` (not counted in the add).
async fn connect(run: &Run, i: usize) -> Option<(String, String)> {
    let (a, b) = (&run.members[0], &run.members[i]);
    let from_a = a.len();
    let conn_a = a.agent.new_connection(None).await.ok()?;
    let inv = a
        .wait(from_a, |e| match e {
            AgentEvent::Inv { conn, invitation } if conn.as_str() == conn_a => {
                Some(invitation.as_str().to_owned())
            }
            _ => None,
        })
        .await?;
    let bytes = base64url::decode_unpadded(&inv, "invitation").ok()?;
    let from_b = b.len();
    let conn_b = b.agent.join_connection(None, bytes).await.ok()?;
    a.wait(from_a, |e| {
        matches!(e, AgentEvent::Con { conn } if conn.as_str() == conn_a).then_some(())
    })
    .await?;
    b.wait(from_b, |e| {
        matches!(e, AgentEvent::Con { conn } if conn.as_str() == conn_b).then_some(())
    })
    .await?;
    Some((conn_a, conn_b))
}

async fn add(run: &mut Run, i: usize) -> Result<(), Error> {
    let size = (i + 1) as u64;
    let name = format!(
        "add member {i} (relay {})",
        relay_name(i % run.relays.len())
    );
    run.begin(&name);
    let Some((conn_a, conn_b)) = connect(run, i).await else {
        run.end(failed(&name));
        return Ok(());
    };
    let mark = Mark::take(run, None).await;
    let group0 = run.members[0].group.clone();
    run.members[0]
        .agent
        .invite(&conn_a, &group0, b"demo group")
        .await?;
    let b = &run.members[i];
    let inv = b
        .wait(mark.events[i], |e| match e {
            AgentEvent::Req {
                conn, invitation, ..
            } if conn.as_str() == conn_b => Some(invitation.as_str().to_owned()),
            _ => None,
        })
        .await;
    let mut ok = false;
    if let Some(inv) = inv {
        let group = b.agent.join(None, &inv).await?;
        let id = b.agent.member_id(&group).await?;
        let id = id
            .as_ref()
            .and_then(member_alias)
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        // Connected to all, and every member knows it.
        ok = b
            .wait(mark.events[i], |e| {
                matches!(e, AgentEvent::GroupMem { member: None, .. }).then_some(())
            })
            .await
            .is_some();
        for (k, m) in run.members.iter().enumerate().take(i) {
            let seen = m
                .wait(mark.events[k], |e| {
                    matches!(e, AgentEvent::GroupMem { member: Some(x), .. } if x.as_str() == id)
                        .then_some(())
                })
                .await;
            ok &= seen.is_some();
        }
        run.members[i].group = group;
        run.members[i].id = id;
    }
    let got = mark.taken(&run.members).await;
    let expected = 6 * size - 7;
    run.end(Step {
        name,
        envelopes: got,
        seed: formula("6n-4", size, |n| 6 * n - 4),
        expected: formula("6n-7", size, |_| expected),
        ok: ok && got == expected,
        elapsed: mark.t.elapsed(),
    });
    Ok(())
}

fn failed(name: &str) -> Step {
    Step {
        name: name.to_owned(),
        envelopes: 0,
        seed: None,
        expected: None,
        ok: false,
        elapsed: Duration::ZERO,
    }
}

async fn send(run: &mut Run, i: usize, round: usize) -> Result<(), Error> {
    let n = run.members.len() as u64;
    let name = format!("member {i} sends, all ack (receipts)");
    run.begin(&name);
    let mark = Mark::take(run, Some(&["MSG", "RCVD"])).await;
    let body = format!("message {round} from member {i}");
    let s = &run.members[i];
    let msg_id = s.agent.send(&s.group, body.as_bytes()).await?;
    let mut ok = true;
    for (k, m) in run.members.iter().enumerate() {
        if k == i {
            continue;
        }
        let got = m
            .wait(mark.events[k], |e| match e {
                AgentEvent::GroupMsg {
                    member,
                    msg_id,
                    body: b,
                    ..
                } if member.as_str() == s.id && b == body.as_bytes() => Some(*msg_id),
                _ => None,
            })
            .await;
        match got {
            Some(id) => m.agent.ack(&m.group, id).await?,
            None => ok = false,
        }
    }
    let rcvd_all = s
        .wait(mark.events[i], |e| {
            matches!(e, AgentEvent::GroupRcvd { member: None, msg_id: id, status, .. }
                if *id == msg_id && *status == smp_groups_wire::client::RcvdStatus::Ok)
            .then_some(())
        })
        .await;
    let sent_all = s
        .wait(mark.events[i], |e| {
            matches!(e, AgentEvent::GroupSent { msg_id: id, .. } if *id == msg_id).then_some(())
        })
        .await;
    ok &= rcvd_all.is_some() && sent_all.is_some();
    let per_member = s.count(
        |e| matches!(e, AgentEvent::GroupRcvd { member: Some(_), msg_id: id, .. } if *id == msg_id),
    );
    ok &= per_member as u64 == n - 1;
    let got = mark.taken(&run.members).await;
    run.end(Step {
        name,
        envelopes: got,
        seed: formula("2n-2", n, |n| 2 * n - 2),
        expected: formula("2n-2", n, |n| 2 * n - 2),
        ok: ok && got == 2 * n - 2,
        elapsed: mark.t.elapsed(),
    });
    Ok(())
}

async fn gcheck(run: &mut Run) -> Result<(), Error> {
    let n = run.members.len() as u64;
    let name = "G_CHECK round (every member checks)".to_owned();
    run.begin(&name);
    let t = Instant::now();
    let mut start = Vec::new();
    for m in &run.members {
        start.push(
            m.agent
                .metrics()
                .await?
                .envelopes
                .get("G_CHECK")
                .copied()
                .unwrap_or(0),
        );
    }
    // Every member sends a check to each other member on its next interval.
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut ok = false;
    let mut got = 0;
    while Instant::now() < deadline {
        got = 0;
        let mut all = true;
        for (m, s) in run.members.iter().zip(&start) {
            let now = m
                .agent
                .metrics()
                .await?
                .envelopes
                .get("G_CHECK")
                .copied()
                .unwrap_or(0);
            all &= now >= s + (n - 1);
            got += (now - s).min(n - 1);
        }
        if all {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let violations: usize = run
        .members
        .iter()
        .map(|m| m.count(|e| matches!(e, AgentEvent::Violation { .. })))
        .sum();
    run.end(Step {
        name,
        envelopes: got,
        seed: None,
        expected: formula("n(n-1)", n, |n| n * (n - 1)),
        ok: ok && violations == 0 && got == n * (n - 1),
        elapsed: t.elapsed(),
    });
    Ok(())
}

async fn remove(run: &mut Run, i: usize) -> Result<(), Error> {
    let n = run.members.len() as u64;
    let name = format!("member 0 removes member {i}");
    run.begin(&name);
    let mark = Mark::take(run, None).await;
    let target = run.members[i].id.clone();
    let member = smp_groups_wire::agent::MemberId::from_base64url(target.as_bytes())
        .map_err(|e| Error::Unexpected(e.to_string()))?;
    let g0 = run.members[0].group.clone();
    run.members[0].agent.remove(&g0, member).await?;
    let mut ok = run.members[0]
        .wait(mark.events[0], |e| {
            matches!(e, AgentEvent::Removed { member, by: None, .. } if member.as_str() == target)
                .then_some(())
        })
        .await
        .is_some();
    ok &= run.members[i]
        .wait(mark.events[i], |e| {
            matches!(e, AgentEvent::Out { .. }).then_some(())
        })
        .await
        .is_some();
    for (k, m) in run.members.iter().enumerate().skip(1) {
        if k == i {
            continue;
        }
        ok &= m
            .wait(mark.events[k], |e| {
                matches!(e, AgentEvent::Removed { member, by: Some(_), .. } if member.as_str() == target)
                    .then_some(())
            })
            .await
            .is_some();
    }
    let got = mark.taken(&run.members).await;
    run.members.remove(i).agent.shutdown().await;
    run.end(Step {
        name,
        envelopes: got,
        seed: formula("2n-1", n, |n| 2 * n - 1),
        expected: formula("2n-3", n, |n| 2 * n - 3),
        ok: ok && got == 2 * n - 3,
        elapsed: mark.t.elapsed(),
    });
    Ok(())
}

async fn leave(run: &mut Run, i: usize) -> Result<(), Error> {
    let n = run.members.len() as u64;
    let name = format!("member {i} leaves");
    run.begin(&name);
    let mark = Mark::take(run, None).await;
    let leaver = run.members[i].id.clone();
    let g = run.members[i].group.clone();
    run.members[i].agent.leave(&g).await?;
    let mut ok = run.members[i]
        .wait(mark.events[i], |e| {
            matches!(e, AgentEvent::Left { member: None, .. }).then_some(())
        })
        .await
        .is_some();
    for (k, m) in run.members.iter().enumerate() {
        if k == i {
            continue;
        }
        ok &= m
            .wait(mark.events[k], |e| {
                matches!(e, AgentEvent::Left { member: Some(x), .. } if x.as_str() == leaver)
                    .then_some(())
            })
            .await
            .is_some();
    }
    let got = mark.taken(&run.members).await;
    // Out of the group, the member's agent stops.
    run.members.remove(i).agent.shutdown().await;
    run.end(Step {
        name,
        envelopes: got,
        seed: formula("n-1", n, |n| n - 1),
        expected: formula("n-1", n, |n| n - 1),
        ok: ok && got == n - 1,
        elapsed: mark.t.elapsed(),
    });
    Ok(())
}

async fn delete(run: &mut Run, _left: usize) -> Result<(), Error> {
    let n = run.members.len() as u64;
    let name = "member 0 deletes the group".to_owned();
    run.begin(&name);
    let mark = Mark::take(run, None).await;
    let g0 = run.members[0].group.clone();
    run.members[0].agent.delete(&g0).await?;
    let mut ok = run.members[0]
        .wait(mark.events[0], |e| {
            matches!(e, AgentEvent::Deleted { by: None, .. }).then_some(())
        })
        .await
        .is_some();
    for (k, m) in run.members.iter().enumerate().skip(1) {
        ok &= m
            .wait(mark.events[k], |e| {
                matches!(e, AgentEvent::Deleted { by: Some(_), .. }).then_some(())
            })
            .await
            .is_some();
    }
    let got = mark.taken(&run.members).await;
    run.end(Step {
        name,
        envelopes: got,
        seed: formula("2n-2", n, |n| 2 * n - 2),
        expected: formula("2n-2", n, |n| 2 * n - 2),
        ok: ok && got == 2 * n - 2,
        elapsed: mark.t.elapsed(),
    });
    Ok(())
}
