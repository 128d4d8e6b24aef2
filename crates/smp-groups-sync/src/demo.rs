//! The scripted run of `smp-sync demo`: one person's devices keep a profile
//! in sync over a group, on two embedded SMP relays (TLS, on loopback).
//!
//! 1. Devices 0, 1 and 2 (laptop, phone, tablet; their queues alternate
//!    between relays a and b) form the group; each opens its document.
//! 2. The tablet is stopped (its document closed, its agent shut down).
//! 3. Laptop and phone edit the profile at the same time (both set the
//!    display name; the laptop the bio and a preference, the phone the image
//!    and an app key; then the laptop deletes the preference) and converge.
//! 4. The tablet comes back (agent reopened from its database, replica from
//!    its state file), catches up from its queues; all three print the same
//!    document.
//! 5. Device 3 (new-phone) joins late: it asks for a snapshot, gets it (and
//!    the entries each member wrote, sent when it connected to it), and
//!    converges.
//! 6. Three single updates in the group of four, each measured: the bytes
//!    of its body and the envelopes all devices sent for it.
//!
//! Every step is printed with the agent envelopes the devices sent during it
//! (the agents' own counts, by kind), after the agents are idle again. The
//! run passes only if every step held: every device converged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smp_groups_agent::{Agent, AgentConfig, NetworkRelay};
use smp_groups_core::Config;
use smp_groups_relay::{Relay, RelayHandle};
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;
use tokio::sync::mpsc;

use crate::doc::{SyncDoc, SyncOptions};
use crate::error::Error;
use crate::key::{Key, ProfileField};
use crate::replica::{Entry, Replica};

/// How long one step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the agents must have handled nothing for a step to be over
/// (longer than the demo's receipt delay of 50 ms).
const QUIET: Duration = Duration::from_millis(250);

/// Bytes of one SMP transport block: every agent envelope is padded to one.
const BLOCK_BYTES: u64 = 16 * 1024;

/// One device.
struct Device {
    name: String,
    server: String,
    db: PathBuf,
    state: PathBuf,
    agent: Option<Agent>,
    doc: Option<SyncDoc>,
    /// The document's events of other entities.
    others: Option<mpsc::Receiver<AgentEvent>>,
    /// Its alias of the group.
    group: String,
}

/// One step of the demo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// What it did.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Agent envelopes the devices sent during the step (relay `SEND`s,
    /// counted by the agents), by kind.
    pub envelopes: BTreeMap<String, u64>,
}

impl Step {
    /// Envelopes of every kind.
    pub fn total_envelopes(&self) -> u64 {
        self.envelopes.values().sum()
    }
}

/// The measured cost of one update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// What was written.
    pub what: String,
    /// Devices in the group (the writer included).
    pub members: usize,
    /// Bytes of the update's body (the protobuf `SyncMessage`).
    pub body_bytes: u64,
    /// Agent envelopes all devices sent for it (the update and the receipts),
    /// by kind.
    pub envelopes: BTreeMap<String, u64>,
}

impl Cost {
    /// Envelopes of every kind.
    pub fn total_envelopes(&self) -> u64 {
        self.envelopes.values().sum()
    }
}

/// What the demo found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Each step, whether it held and what it cost.
    pub steps: Vec<Step>,
    /// The final document of every device (its name and the document as
    /// printed), read after the last step.
    pub documents: Vec<(String, String)>,
    /// Snapshot parts the late joiner received.
    pub snapshots_received: u64,
    /// Queued messages the stopped device merged when it came back.
    pub caught_up: u64,
    /// The measured cost of single updates in the group of four.
    pub costs: Vec<Cost>,
}

impl Report {
    /// True if every step held.
    pub fn ok(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

fn agent_config(name: &str, server: &str, db: &Path) -> AgentConfig {
    let mut cfg = AgentConfig::new(name, server, Some(db.to_path_buf()));
    cfg.core = Config {
        server: server.to_owned(),
        check_interval_ms: None,
        check_every_messages: None,
        receipts: smp_groups_core::ReceiptPolicy {
            max_delay_ms: 50,
            ..smp_groups_core::ReceiptPolicy::default()
        },
        ..Config::default()
    };
    cfg
}

fn unexpected(what: &str) -> Error {
    Error::Agent(smp_groups_agent::Error::Unexpected(what.to_owned()))
}

/// Reads `agent`'s events (confirming them) until `f` matches one.
async fn wait_agent<T>(agent: &Agent, f: impl Fn(&AgentEvent) -> Option<T>) -> Result<T, Error> {
    let mut events = agent.events().await?;
    let found = tokio::time::timeout(STEP_TIMEOUT, async {
        while let Some(d) = events.next().await {
            if let Some(t) = f(&d.event) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .ok_or_else(|| unexpected("event not seen"))
}

/// Reads a document's other events until `f` matches one.
async fn wait_others<T>(
    rx: &mut mpsc::Receiver<AgentEvent>,
    f: impl Fn(&AgentEvent) -> Option<T>,
) -> Result<T, Error> {
    let found = tokio::time::timeout(STEP_TIMEOUT, async {
        while let Some(e) = rx.recv().await {
            if let Some(t) = f(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .ok_or_else(|| unexpected("event not seen"))
}

fn short(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if v.len() <= 40 => format!("{s:?}"),
        _ => format!("<{} bytes>", v.len()),
    }
}

/// A document as one line per key.
fn render(entries: &[(Key, Entry)]) -> String {
    let mut out = String::new();
    for (k, e) in entries {
        let v = e
            .value
            .as_deref()
            .map_or_else(|| "(deleted)".to_owned(), short);
        let _ = writeln!(
            out,
            "      {k} = {v}  [{}.{} by {}]",
            e.stamp.wall_ms, e.stamp.counter, e.stamp.device
        );
    }
    out
}

struct Run {
    devices: Vec<Device>,
    report: Report,
    print: bool,
    started: Instant,
    /// Envelopes sent by agent runs that have stopped (an agent's metrics
    /// count from its start).
    retired: BTreeMap<String, u64>,
    /// Envelopes sent when the current step started.
    mark: BTreeMap<String, u64>,
}

/// `after - before`, by kind, without the kinds that did not grow.
fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// `12 envelopes (HELLO 4, MSG 8)`.
fn show_envelopes(by_kind: &BTreeMap<String, u64>) -> String {
    let total: u64 = by_kind.values().sum();
    let kinds: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if kinds.is_empty() {
        format!("{total} envelopes")
    } else {
        format!("{total} envelopes ({})", kinds.join(", "))
    }
}

impl Run {
    fn say(&self, text: &str) {
        if self.print {
            println!("{text}");
        }
    }

    /// Envelopes sent so far by every device, by kind.
    async fn envelopes(&self) -> BTreeMap<String, u64> {
        let mut out = self.retired.clone();
        for d in &self.devices {
            if let Some(a) = &d.agent
                && let Ok(m) = a.metrics().await
            {
                for (k, v) in m.envelopes {
                    *out.entry(k).or_default() += v;
                }
            }
        }
        out
    }

    /// Waits until every running agent is idle: no relay operation
    /// unanswered, nothing uncommitted, and no input handled for
    /// [`QUIET`] (longer than the receipt delay, so grouped receipts have
    /// gone out). False if that did not happen within [`STEP_TIMEOUT`].
    async fn settle(&self) -> bool {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut last = None;
        let mut quiet_since = Instant::now();
        loop {
            let mut inputs = 0;
            let mut busy = false;
            for d in &self.devices {
                if let Some(a) = &d.agent
                    && let Ok(m) = a.metrics().await
                {
                    inputs += m.inputs;
                    busy |= m.in_flight > 0;
                }
            }
            if busy || last != Some(inputs) {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return true;
            }
            last = Some(inputs);
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a step: prints its title, marks the envelope count.
    async fn begin(&mut self, title: &str) {
        self.say(title);
        self.mark = self.envelopes().await;
    }

    /// Ends a step: lets the agents settle, prints and records whether it
    /// held and the envelopes sent since [`Run::begin`].
    async fn step(&mut self, name: &str, ok: bool) {
        let settled = self.settle().await;
        let envelopes = delta(&self.envelopes().await, &self.mark);
        let ok = ok && settled;
        if self.print {
            println!(
                "  -> {}: {}{} ({:.1} s)",
                if ok { "ok" } else { "FAILED" },
                show_envelopes(&envelopes),
                if settled { "" } else { ", agents NOT idle" },
                self.started.elapsed().as_secs_f64()
            );
        }
        self.report.steps.push(Step {
            name: name.to_owned(),
            ok,
            envelopes,
        });
    }

    fn doc(&self, i: usize) -> Result<&SyncDoc, Error> {
        self.devices
            .get(i)
            .and_then(|d| d.doc.as_ref())
            .ok_or(Error::Stopped)
    }

    fn agent(&self, i: usize) -> Result<&Agent, Error> {
        self.devices
            .get(i)
            .and_then(|d| d.agent.as_ref())
            .ok_or(Error::Stopped)
    }

    /// Waits until the documents of `devices` hold the same entries.
    async fn converge(&self, devices: &[usize]) -> bool {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let mut docs = Vec::new();
            for &i in devices {
                if let Ok(d) = self.doc(i) {
                    docs.push(d.entries().await);
                }
            }
            if docs.len() == devices.len() && docs.windows(2).all(|w| w[0] == w[1]) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Prints the documents of `devices`, each in full.
    async fn print_docs(&self, devices: &[usize]) {
        for &i in devices {
            if let Ok(d) = self.doc(i) {
                let text = render(&d.entries().await);
                self.say(&format!("    device {i} ({}):", self.devices[i].name));
                if self.print {
                    print!("{text}");
                }
            }
        }
    }

    /// Opens device `i`'s agent.
    fn open_agent(&mut self, i: usize, relays: &Arc<NetworkRelay>) -> Result<(), Error> {
        let d = &mut self.devices[i];
        let agent = Agent::open(agent_config(&d.name, &d.server, &d.db), relays.clone())?;
        d.agent = Some(agent);
        Ok(())
    }

    /// Stops device `i`: closes its document, shuts its agent down (its
    /// envelopes are kept in the totals).
    async fn stop(&mut self, i: usize) {
        if let Some(doc) = self.devices[i].doc.take() {
            doc.close();
        }
        self.devices[i].others = None;
        if let Some(agent) = self.devices[i].agent.take() {
            if let Ok(m) = agent.metrics().await {
                for (k, v) in m.envelopes {
                    *self.retired.entry(k).or_default() += v;
                }
            }
            agent.shutdown().await;
        }
    }

    /// Opens device `i`'s document on `group`.
    async fn open_doc(&mut self, i: usize, group: &str) -> Result<(), Error> {
        let agent = self.agent(i)?.clone();
        let doc = SyncDoc::open(
            agent,
            group,
            SyncOptions {
                state_path: Some(self.devices[i].state.clone()),
            },
        )
        .await?;
        self.devices[i].others = doc.other_events();
        group.clone_into(&mut self.devices[i].group);
        self.devices[i].doc = Some(doc);
        Ok(())
    }

    /// Device 0 invites device `i` (over a new pairwise connection); `i`
    /// joins and opens its document. Returns `i`'s group alias.
    async fn add(&mut self, i: usize) -> Result<String, Error> {
        let a = self.agent(0)?.clone();
        let b = self.agent(i)?.clone();
        let group0 = self.doc(0)?.group().to_owned();
        let mut others = self.devices[0].others.take().ok_or(Error::Stopped)?;
        let result = async {
            let conn_a = a.new_connection(None).await?;
            let inv = wait_others(&mut others, |e| match e {
                AgentEvent::Inv { conn, invitation } if conn.as_str() == conn_a => {
                    Some(invitation.as_str().to_owned())
                }
                _ => None,
            })
            .await?;
            let bytes = base64url::decode_unpadded(&inv, "invitation")
                .map_err(|_| unexpected("invitation"))?;
            let conn_b = b.join_connection(None, bytes).await?;
            wait_others(&mut others, |e| {
                matches!(e, AgentEvent::Con { conn } if conn.as_str() == conn_a).then_some(())
            })
            .await?;
            wait_agent(&b, |e| {
                matches!(e, AgentEvent::Con { conn } if conn.as_str() == conn_b).then_some(())
            })
            .await?;
            a.invite(&conn_a, &group0, b"my devices").await?;
            let inv = wait_agent(&b, |e| match e {
                AgentEvent::Req {
                    conn, invitation, ..
                } if conn.as_str() == conn_b => Some(invitation.as_str().to_owned()),
                _ => None,
            })
            .await?;
            Ok::<_, Error>(b.join(None, &inv).await?)
        }
        .await;
        self.devices[0].others = Some(others);
        let group = result?;
        self.open_doc(i, &group).await?;
        Ok(group)
    }

    /// Device `writer` makes `edits` as one update while every device is
    /// running; measures the update's body and the envelopes all devices
    /// send for it until they are idle again. False if the devices did not
    /// converge.
    async fn measure(
        &mut self,
        what: &str,
        writer: usize,
        edits: Vec<(Key, Option<Vec<u8>>)>,
    ) -> Result<bool, Error> {
        let all: Vec<usize> = (0..self.devices.len()).collect();
        let settled = self.settle().await;
        let before = self.envelopes().await;
        let bytes_before = self.doc(writer)?.stats().await.bytes_sent;
        self.doc(writer)?.edit(edits).await?;
        let ok = self.converge(&all).await && self.settle().await && settled;
        let envelopes = delta(&self.envelopes().await, &before);
        let body_bytes = self
            .doc(writer)?
            .stats()
            .await
            .bytes_sent
            .saturating_sub(bytes_before);
        let n = self.devices.len();
        let cost = Cost {
            what: what.to_owned(),
            members: n,
            body_bytes,
            envelopes,
        };
        // docs/costs.md, "Send": a message of f blocks costs f(n-1) envelopes
        // and one receipt from each other member.
        let frags: u64 = cost
            .envelopes
            .iter()
            .filter(|(k, _)| k.ends_with("/FRAG"))
            .map(|(_, v)| *v)
            .sum();
        let others = n as u64 - 1;
        let f = if frags > 0 { frags / others } else { 1 };
        self.say(&format!(
            "    {} by {}: body {} B; {} = {} KiB of padded 16 KiB blocks sent to the relays \
             (docs/costs.md: f(n-1) + (n-1) = {} with f = {f}){}",
            what,
            self.devices[writer].name,
            cost.body_bytes,
            show_envelopes(&cost.envelopes),
            cost.total_envelopes() * BLOCK_BYTES / 1024,
            (f + 1) * others,
            if ok { "" } else { "; NOT converged" }
        ));
        self.report.costs.push(cost);
        Ok(ok)
    }
}

/// Runs the demo on two embedded relays; prints each step if `print`.
pub async fn run(print: bool) -> Result<Report, Error> {
    let dir = std::env::temp_dir().join(format!(
        "smp-sync-demo-{}-{}",
        std::process::id(),
        SystemTimeNanos::now()
    ));
    let mut handles: Vec<RelayHandle> = Vec::new();
    let mut result = Ok(Report::default());
    for r in 0..2 {
        match Relay::spawn_local(&dir.join(format!("relay-{r}"))).await {
            Ok(h) => handles.push(h),
            Err(e) => {
                result = Err(unexpected(&format!("cannot start a relay: {e}")));
                break;
            }
        }
    }
    if result.is_ok() {
        result = run_on(&handles, &dir, print).await;
    }
    for h in handles {
        h.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Nanoseconds since the epoch, for a unique directory name.
struct SystemTimeNanos;

impl SystemTimeNanos {
    fn now() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }
}

async fn run_on(handles: &[RelayHandle], dir: &Path, print: bool) -> Result<Report, Error> {
    let addresses: Vec<String> = handles.iter().map(RelayHandle::address).collect();
    let relays = Arc::new(NetworkRelay::new());
    std::fs::create_dir_all(dir)?;
    let names = ["laptop", "phone", "tablet", "new-phone"];
    let mut run = Run {
        devices: names
            .iter()
            .enumerate()
            .map(|(i, n)| Device {
                name: (*n).to_owned(),
                server: addresses[i % addresses.len()].clone(),
                db: dir.join(format!("{n}.db")),
                state: dir.join(format!("{n}.sync")),
                agent: None,
                doc: None,
                others: None,
                group: String::new(),
            })
            .collect(),
        report: Report::default(),
        print,
        started: Instant::now(),
        retired: BTreeMap::new(),
        mark: BTreeMap::new(),
    };
    run.say("smp-sync demo: one person's devices sync a profile over a group, on two relays");
    for (d, _) in run.devices.iter().zip(0..3) {
        run.say(&format!("  {:<9} queues on {}", d.name, d.server));
    }
    run.say(&format!(
        "  {:<9} queues on {} (joins in step 5)",
        run.devices[3].name, run.devices[3].server
    ));
    run.say("  (envelopes: agent envelopes all devices sent in the step, relay SENDs, by kind)");

    // 1. The group of three devices.
    run.begin("[1/6] laptop creates the group; phone and tablet join; each opens its document")
        .await;
    for i in 0..3 {
        run.open_agent(i, &relays)?;
    }
    let group = run.agent(0)?.create_group(None, b"my devices").await?;
    run.open_doc(0, &group).await?;
    run.add(1).await?;
    run.add(2).await?;
    run.say("    tablet sets pref.language = fr (its stored replica is not empty when it stops)");
    run.doc(2)?
        .set(Key::preference("language"), b"fr".to_vec())
        .await?;
    let ok = run.converge(&[0, 1, 2]).await;
    run.step("group of three", ok).await;

    // 2. The tablet stops.
    run.begin("[2/6] tablet stops (document closed, agent shut down)")
        .await;
    run.stop(2).await;
    let ok = run.devices[2].agent.is_none();
    run.step("tablet stopped", ok).await;

    // 3. Concurrent edits on laptop and phone.
    run.begin("[3/6] laptop and phone edit the profile at the same time, tablet stopped")
        .await;
    run.say("    laptop: display_name = \"Ada (laptop)\", bio, pref.theme = dark");
    run.say("    phone:  display_name = \"Ada (phone)\", a 48 KiB image, app.notes/last-opened");
    run.say("    then laptop deletes pref.theme, phone sets pref.language = en");
    let mut phone_changes = run.doc(1)?.changes();
    let (d0, d1) = (run.doc(0)?, run.doc(1)?);
    let image: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (r0, r1) = tokio::join!(
        d0.edit(vec![
            (
                Key::profile(ProfileField::DisplayName),
                Some(b"Ada (laptop)".to_vec())
            ),
            (
                Key::profile(ProfileField::Bio),
                Some(b"Counting engines".to_vec())
            ),
            (Key::preference("theme"), Some(b"dark".to_vec())),
        ]),
        d1.edit(vec![
            (
                Key::profile(ProfileField::DisplayName),
                Some(b"Ada (phone)".to_vec())
            ),
            (Key::profile(ProfileField::Image), Some(image)),
            (Key::app("notes/last-opened"), Some(b"2024-05-01".to_vec())),
        ]),
    );
    r0?;
    r1?;
    run.doc(0)?.delete(Key::preference("theme")).await?;
    run.doc(1)?
        .set(Key::preference("language"), b"en".to_vec())
        .await?;
    let ok = run.converge(&[0, 1]).await;
    run.say("    laptop and phone:");
    run.print_docs(&[0, 1]).await;
    // The phone's change stream reported the laptop's bio.
    let mut seen = Vec::new();
    while let Ok(c) = phone_changes.try_recv() {
        seen.push(c);
    }
    let bio = Key::profile(ProfileField::Bio);
    let reported = seen.iter().any(|c| c.key == bio && !c.local);
    run.say(&format!(
        "    phone's change stream: {} changes ({} local), the laptop's bio {}",
        seen.len(),
        seen.iter().filter(|c| c.local).count(),
        if reported { "among them" } else { "MISSING" }
    ));
    run.step("laptop and phone agree", ok && reported).await;

    // 4. The tablet comes back and catches up.
    run.begin(
        "[4/6] tablet comes back (agent from its database, replica from its state file) \
         and catches up from its queues",
    )
    .await;
    run.open_agent(2, &relays)?;
    let stored = std::fs::read(&run.devices[2].state)
        .ok()
        .and_then(|b| Replica::decode_state(&b).ok());
    let restored = stored
        .as_ref()
        .is_some_and(|r| r.get(&Key::preference("language")) == Some(&b"fr"[..]));
    run.say(&format!(
        "    tablet's stored replica: {} key(s), pref.language = fr: {}",
        stored.as_ref().map_or(0, Replica::len),
        if restored { "yes" } else { "NO" }
    ));
    let tablet_group = run.devices[2].group.clone();
    run.open_doc(2, &tablet_group).await?;
    let ok = run.converge(&[0, 1, 2]).await;
    run.say("    all three print:");
    run.print_docs(&[0, 1, 2]).await;
    let st = run.doc(2)?.stats().await;
    run.report.caught_up = st.merged;
    run.say(&format!(
        "    tablet merged {} queued message(s), {} of them snapshot messages",
        st.merged, st.snapshots_received
    ));
    run.step("all three agree", ok && restored && st.merged > 0)
        .await;

    // 5. A new phone joins late and gets a snapshot.
    run.begin("[5/6] new-phone joins late: asks for a snapshot, then follows updates")
        .await;
    run.open_agent(3, &relays)?;
    run.add(3).await?;
    let ok = run.converge(&[0, 1, 2, 3]).await;
    let snaps = run.doc(3)?.stats().await.snapshots_received;
    run.report.snapshots_received = snaps;
    run.print_docs(&[3]).await;
    run.say(&format!(
        "    new-phone received {snaps} snapshot message(s) (the responder's snapshot, \
         and members' own entries sent when they connected to it)"
    ));
    run.step("the new device agrees", ok && snaps > 0).await;

    // 6. What one update costs in the group of four.
    run.begin("[6/6] one update at a time in the group of four (n = 4), measured")
        .await;
    let mut ok = run
        .measure(
            "profile.display_name = \"Ada\" (1 entry)",
            0,
            vec![(
                Key::profile(ProfileField::DisplayName),
                Some(b"Ada".to_vec()),
            )],
        )
        .await?;
    ok &= run
        .measure(
            "app.notes/last-opened deleted (1 tombstone)",
            2,
            vec![(Key::app("notes/last-opened"), None)],
        )
        .await?;
    let image: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 241) as u8).collect();
    ok &= run
        .measure(
            "profile.image = 48 KiB",
            3,
            vec![(Key::profile(ProfileField::Image), Some(image))],
        )
        .await?;
    let ok = ok && run.converge(&[0, 1, 2, 3]).await;
    let mut first: Option<Vec<(Key, Entry)>> = None;
    for i in 0..run.devices.len() {
        let entries = run.doc(i)?.entries().await;
        let same = first.as_ref().is_none_or(|f| *f == entries);
        run.say(&format!(
            "    device {i} ({}): {} keys{}",
            run.devices[i].name,
            entries.len(),
            match (&first, same) {
                (None, _) => String::new(),
                (Some(_), true) => ", the same entries as laptop".to_owned(),
                (Some(_), false) => ", DIFFERENT from laptop".to_owned(),
            }
        ));
        run.report
            .documents
            .push((run.devices[i].name.clone(), render(&entries)));
        first.get_or_insert(entries);
    }
    run.say("    the document all four hold:");
    if let Some((_, text)) = run.report.documents.first()
        && print
    {
        print!("{text}");
    }
    run.step("single updates reach every device", ok).await;

    let ok = run.report.ok();
    let total: u64 = run.report.steps.iter().map(Step::total_envelopes).sum();
    run.say(&format!(
        "{}: {}/{} steps held, {} envelopes in all, {:.1} s",
        if ok {
            "all devices converged"
        } else {
            "SOME STEPS FAILED"
        },
        run.report.steps.iter().filter(|s| s.ok).count(),
        run.report.steps.len(),
        total,
        run.started.elapsed().as_secs_f64()
    ));
    for i in 0..run.devices.len() {
        run.stop(i).await;
    }
    Ok(run.report)
}
