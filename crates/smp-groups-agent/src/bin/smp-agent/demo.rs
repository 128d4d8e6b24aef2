//! The scripted run of `smp-agent demo`: two embedded SMP relays on loopback
//! (the relay crate's server, over TLS 1.3 and the SMP block transport) and N
//! agents reaching them through the network client, each with its database in
//! a temporary directory (members alternate between the relays) go through create -> invite everyone ->
//! everyone sends -> receipts -> a `G_CHECK` round -> remove one -> one leaves
//! -> delete. Each step prints the agent envelopes its agents really sent
//! (relay `SEND`s, first attempts, counted until every agent is idle again)
//! beside the seed's formula and the exact formula of `docs/costs.md`, and its
//! time; the run passes only if every check held. The summary compares the
//! time per envelope of the last add with that of the add at n = 8.

#![allow(clippy::many_single_char_names)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smp_groups_core::Config;
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;

use smp_groups_agent::{Agent, AgentConfig, Error, Metrics, NetworkRelay};
use smp_groups_relay::{Relay, RelayHandle};
use smp_groups_wire::agent::MemberId;
use smp_groups_wire::client::Alias;

/// The number of relays the demo starts.
pub(crate) const RELAYS: usize = 2;

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

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Op {
    /// Member 0 creates the group.
    Create,
    /// Member 0 adds a member.
    Add,
    /// A member sends a message; every other member acknowledges it.
    Send,
    /// Every member sends a `G_CHECK` to every other member.
    Check,
    /// Member 0 removes a member.
    Remove,
    /// A member leaves.
    Leave,
    /// Member 0 deletes the group.
    Delete,
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// What the step did.
    pub(crate) name: String,
    /// Its kind.
    pub(crate) op: Op,
    /// The group size `n` its formulas use (after the add for an add,
    /// before the change otherwise).
    pub(crate) n: u64,
    /// Agent envelopes its agents sent, from its start until every agent was
    /// idle again (without `G_CHECK`s, counted in their own step).
    pub(crate) envelopes: u64,
    /// The seed's formula and value, if it has one.
    pub(crate) seed: Option<(String, u64)>,
    /// The exact formula of `docs/costs.md` and its value.
    pub(crate) expected: Option<(String, u64)>,
    /// Whether every check of the step held.
    pub(crate) ok: bool,
    /// How long it took (until its checks held; for the `G_CHECK` round,
    /// until every agent was idle again).
    pub(crate) elapsed: Duration,
}

impl Step {
    /// Its time per envelope (`None` if it sent none).
    pub(crate) fn per_envelope(&self) -> Option<Duration> {
        let n = u32::try_from(self.envelopes).ok().filter(|n| *n > 0)?;
        Some(self.elapsed / n)
    }
}

/// How the time per envelope of an add grows with the group: the add at
/// n = 8 (or the last add, in a smaller group) against the last add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddScaling {
    /// The add at n = 8.
    pub(crate) reference: Step,
    /// The last add.
    pub(crate) last: Step,
}

impl AddScaling {
    /// The last add's time per envelope over the reference's.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let r = self.reference.per_envelope()?.as_secs_f64();
        let l = self.last.per_envelope()?.as_secs_f64();
        (r > 0.0).then(|| l / r)
    }
}

/// The report of a demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Every step, in order.
    pub(crate) steps: Vec<Step>,
}

/// The add whose time per envelope the summary takes as reference.
pub(crate) const REFERENCE_ADD: u64 = 8;

impl Report {
    /// True if every step passed.
    pub(crate) fn ok(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }

    /// The add at n = [`REFERENCE_ADD`] (the last add if the group stayed
    /// smaller) against the last add; `None` without an add.
    pub(crate) fn add_scaling(&self) -> Option<AddScaling> {
        let adds: Vec<&Step> = self.steps.iter().filter(|s| s.op == Op::Add).collect();
        let last = (*adds.last()?).clone();
        let reference = adds
            .iter()
            .find(|s| s.n == REFERENCE_ADD)
            .map_or_else(|| last.clone(), |s| (*s).clone());
        Some(AddScaling { reference, last })
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
        envelopes(members, self.kinds)
            .await
            .saturating_sub(self.before)
    }
}

/// Envelopes sent by the members, of `kinds` (all but `G_CHECK` if `None`).
async fn envelopes(members: &[Member], kinds: Option<&[&str]>) -> u64 {
    let mut total = 0;
    for m in members {
        if let Ok(metrics) = m.agent.metrics().await {
            total += count_kinds(&metrics, kinds);
        }
    }
    total
}

fn count_kinds(metrics: &Metrics, kinds: Option<&[&str]>) -> u64 {
    metrics
        .envelopes
        .iter()
        .filter(|(k, _)| match kinds {
            Some(ks) => ks.contains(&k.as_str()),
            None => k.as_str() != "G_CHECK",
        })
        .map(|(_, v)| *v)
        .sum()
}

/// How often [`settle`] looks at the agents.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// Waits until every agent is idle: no relay operation unanswered, nothing
/// uncommitted, and no input handled between two looks [`IDLE_POLL`] apart
/// (a message on its way between relay and agent shows as an input). False
/// if that did not happen within [`STEP_TIMEOUT`].
async fn settle(members: &[Member]) -> bool {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = None;
    loop {
        let mut inputs = 0;
        let mut busy = false;
        for m in members {
            // A stopped agent is idle.
            if let Ok(x) = m.agent.metrics().await {
                inputs += x.inputs;
                busy |= x.in_flight > 0;
            }
        }
        if !busy && last == Some(inputs) {
            return true;
        }
        last = (!busy).then_some(inputs);
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(IDLE_POLL).await;
    }
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
                let mark = if *v == step.envelopes {
                    ""
                } else {
                    " (differs)"
                };
                let _ = write!(line, " | ours {f} = {v}{mark}");
            }
            if let Some((f, v)) = &step.seed {
                let _ = write!(line, " | seed {f} = {v}");
            }
            let _ = write!(line, " | {:>7.1} ms", step.elapsed.as_secs_f64() * 1000.0);
            if let Some(per) = step.per_envelope() {
                let _ = write!(line, " ({:.2} ms/env)", per.as_secs_f64() * 1000.0);
            }
            let _ = write!(line, " | {}", if step.ok { "ok" } else { "FAILED" });
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
pub(crate) async fn run(n: usize, m: usize, print: bool) -> Result<Report, Error> {
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
            // No scheduled checks: the `G_CHECK` step asks every member for
            // a round (a time trigger would be n(n-1) envelopes per interval,
            // a count trigger would mix checks into the message steps).
            check_interval_ms: None,
            check_every_messages: None,
            check_window: 64,
            // Receipts are grouped (the default), but the demo sends one
            // message at a time and waits for its receipts: each member's
            // receipt goes out alone once the delay has passed, so a short
            // delay keeps the steps quick (the count stays 2n-2).
            receipts: smp_groups_core::ReceiptPolicy {
                max_delay_ms: 50,
                ..smp_groups_core::ReceiptPolicy::default()
            },
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
        print_summary(&run);
    }
    // Agents stop before their relays, closing their connections.
    for m in &run.members {
        m.agent.shutdown().await;
    }
    Ok(run.report)
}

fn print_summary(run: &Run) {
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
    let Some(scaling) = run.report.add_scaling() else {
        return;
    };
    let describe = |s: &Step| {
        format!(
            "{:.2} ms per envelope at n={} ({} envelopes in {:.1} ms)",
            s.per_envelope().unwrap_or_default().as_secs_f64() * 1000.0,
            s.n,
            s.envelopes,
            s.elapsed.as_secs_f64() * 1000.0
        )
    };
    println!("add, reference: {}", describe(&scaling.reference));
    println!("add, last:      {}", describe(&scaling.last));
    if let Some(r) = scaling.ratio() {
        println!("add, last / reference: {r:.2} (the goal is at most 2)");
    }
}

async fn create(run: &mut Run) -> Result<(), Error> {
    run.begin("create the group");
    let mark = Mark::take(run, None).await;
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
    let elapsed = mark.t.elapsed();
    let settled = settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    run.end(Step {
        name: "create".into(),
        op: Op::Create,
        n: 1,
        envelopes: got,
        seed: None,
        expected: Some(("0".into(), 0)),
        ok: id.is_some() && settled && got == 0,
        elapsed,
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
    // The handshake's last envelopes are counted before the add starts.
    settle(&run.members).await.then_some((conn_a, conn_b))
}

async fn add(run: &mut Run, i: usize) -> Result<(), Error> {
    let size = (i + 1) as u64;
    let name = format!(
        "add member {i} (relay {})",
        relay_name(i % run.relays.len())
    );
    run.begin(&name);
    let Some((conn_a, conn_b)) = connect(run, i).await else {
        run.end(failed(&name, Op::Add, size));
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
    let elapsed = mark.t.elapsed();
    ok &= settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    let expected = 6 * size - 7;
    run.end(Step {
        name,
        op: Op::Add,
        n: size,
        envelopes: got,
        seed: formula("6n-4", size, |n| 6 * n - 4),
        expected: formula("6n-7", size, |_| expected),
        ok: ok && got == expected,
        elapsed,
    });
    Ok(())
}

fn failed(name: &str, op: Op, n: u64) -> Step {
    Step {
        name: name.to_owned(),
        op,
        n,
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
    let mark = Mark::take(run, None).await;
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
    let elapsed = mark.t.elapsed();
    ok &= settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    run.end(Step {
        name,
        op: Op::Send,
        n,
        envelopes: got,
        seed: formula("2n-2", n, |n| 2 * n - 2),
        expected: formula("2n-2", n, |n| 2 * n - 2),
        ok: ok && got == 2 * n - 2,
        elapsed,
    });
    Ok(())
}

/// Every member's agent runs its timers: each has had group messages since
/// its last check, so each sends one `G_CHECK` on each of its connections.
/// The step counts every `G_CHECK` the agents sent until all were idle again
/// (the receivers reconcile them meanwhile), and the `PROOF`s that go with
/// them: every member re-broadcasts the signed receipts its messages got to
/// each other member (the ones that member did not sign, so none in a group
/// of two). The seed promises no cost for checks: a count other than that is
/// shown, and fails the step only if some member sent fewer than `n-1`
/// `G_CHECK`s (it did not check everyone).
async fn gcheck(run: &mut Run) -> Result<(), Error> {
    const CHECK: &[&str] = &["G_CHECK"];
    const CHECK_AND_PROOF: &[&str] = &["G_CHECK", "PROOF"];
    let n = run.members.len() as u64;
    let name = "G_CHECK round, with PROOF".to_owned();
    run.begin(&name);
    let mark = Mark::take(run, Some(CHECK_AND_PROOF)).await;
    let mut start = Vec::new();
    for m in &run.members {
        start.push(count_kinds(&m.agent.metrics().await?, Some(CHECK)));
    }
    for m in &run.members {
        m.agent
            .command(smp_groups_core::Command::Check {
                group: m.group.clone(),
            })
            .await?;
    }
    let mut ok = settle(&run.members).await;
    let elapsed = mark.t.elapsed();
    for (m, s) in run.members.iter().zip(&start) {
        let sent = count_kinds(&m.agent.metrics().await?, Some(CHECK)).saturating_sub(*s);
        ok &= sent >= n - 1;
    }
    let got = mark.taken(&run.members).await;
    let violations: usize = run
        .members
        .iter()
        .map(|m| m.count(|e| matches!(e, AgentEvent::Violation { .. })))
        .sum();
    run.end(Step {
        name,
        op: Op::Check,
        n,
        envelopes: got,
        seed: None,
        expected: formula("2n(n-1)", n, |n| {
            if n >= 3 { 2 * n * (n - 1) } else { n * (n - 1) }
        }),
        ok: ok && violations == 0,
        elapsed,
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
    let elapsed = mark.t.elapsed();
    ok &= settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    run.members.remove(i).agent.shutdown().await;
    run.end(Step {
        name,
        op: Op::Remove,
        n,
        envelopes: got,
        seed: formula("2n-1", n, |n| 2 * n - 1),
        expected: formula("2n-3", n, |n| 2 * n - 3),
        ok: ok && got == 2 * n - 3,
        elapsed,
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
    let elapsed = mark.t.elapsed();
    ok &= settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    // Out of the group, the member's agent stops.
    run.members.remove(i).agent.shutdown().await;
    run.end(Step {
        name,
        op: Op::Leave,
        n,
        envelopes: got,
        seed: formula("n-1", n, |n| n - 1),
        expected: formula("n-1", n, |n| n - 1),
        ok: ok && got == n - 1,
        elapsed,
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
    let elapsed = mark.t.elapsed();
    ok &= settle(&run.members).await;
    let got = mark.taken(&run.members).await;
    run.end(Step {
        name,
        op: Op::Delete,
        n,
        envelopes: got,
        seed: formula("2n-2", n, |n| 2 * n - 2),
        expected: formula("2n-2", n, |n| 2 * n - 2),
        ok: ok && got == 2 * n - 2,
        elapsed,
    });
    Ok(())
}

/// The alias a member has in client events.
fn member_alias(member: &MemberId) -> Option<Alias> {
    Alias::new(member.to_base64url()).ok()
}
