//! The scripted run of `smp-sync demo`: one person's devices keep a profile
//! in sync over a group, on two embedded SMP relays (TLS, on loopback).
//!
//! 1. Devices 0, 1 and 2 (alternating between relays a and b) form the group;
//!    each opens its document.
//! 2. Device 2 is stopped (its document closed, its agent shut down).
//! 3. Devices 0 and 1 edit the profile at the same time (both set the display
//!    name; 0 sets the bio and a preference, 1 the image and an app key,
//!    then 0 deletes the preference).
//! 4. Devices 0 and 1 converge.
//! 5. Device 2 comes back (agent reopened from its database, replica from its
//!    state file), catches up from its queues, and all three converge.
//! 6. Device 3 joins late: it asks for a snapshot, gets it (and the entries
//!    each member wrote, sent when it connected to it), and converges.
//!
//! Every step is printed; the run passes only if every device converged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smp_groups_agent::{Agent, AgentConfig, NetworkRelay};
use smp_groups_core::Config;
use smp_groups_relay::server::{Relay, RelayHandle};
use smp_groups_wire::base64url;
use smp_groups_wire::client::AgentEvent;
use tokio::sync::mpsc;

use crate::doc::{SyncDoc, SyncOptions};
use crate::error::Error;
use crate::key::{Key, ProfileField};
use crate::replica::{Entry, Replica};

/// How long one step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

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

/// What the demo found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Each step and whether it held.
    pub steps: Vec<(String, bool)>,
    /// The final document of every device, as printed.
    pub documents: Vec<String>,
    /// Snapshot parts the late joiner received.
    pub snapshots_received: u64,
}

impl Report {
    /// True if every step held.
    pub fn ok(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|(_, ok)| *ok)
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
}

impl Run {
    fn say(&self, text: &str) {
        if self.print {
            println!("{text}");
        }
    }

    fn step(&mut self, name: &str, ok: bool) {
        if self.print {
            println!(
                "  -> {} ({:.1} s)",
                if ok { "ok" } else { "FAILED" },
                self.started.elapsed().as_secs_f64()
            );
        }
        self.report.steps.push((name.to_owned(), ok));
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

    async fn print_docs(&mut self, devices: &[usize]) {
        for &i in devices {
            if let Ok(d) = self.doc(i) {
                let text = render(&d.entries().await);
                if self.print {
                    println!("    device {i} ({}):", self.devices[i].name);
                    print!("{text}");
                }
                self.report.documents.push(text);
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
    };
    run.say(&format!(
        "smp-sync demo: one person's devices sync a profile over a group, relays {}",
        addresses.join(", ")
    ));

    // 1. The group of three devices.
    run.say("[1/6] laptop creates the group; phone and tablet join; each opens its document");
    for i in 0..4 {
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
    run.step("group of three", ok);

    // 2. The tablet stops.
    run.say("[2/6] tablet stops (document closed, agent shut down)");
    if let Some(doc) = run.devices[2].doc.take() {
        doc.close();
    }
    if let Some(agent) = run.devices[2].agent.take() {
        agent.shutdown().await;
    }
    run.step("tablet stopped", true);

    // 3. Concurrent edits on laptop and phone.
    run.say("[3/6] laptop and phone edit the profile at the same time");
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
    run.step("concurrent edits sent", true);

    // 4. Laptop and phone converge.
    run.say("[4/6] laptop and phone converge");
    let ok = run.converge(&[0, 1]).await;
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
    run.step("laptop and phone agree", ok && reported);

    // 5. The tablet comes back and catches up.
    run.say("[5/6] tablet comes back (agent from its database, replica from its state file)");
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
    run.print_docs(&[2]).await;
    let st = run.doc(2)?.stats().await;
    run.say(&format!(
        "    tablet merged {} queued message(s), {} of them snapshot messages",
        st.merged, st.snapshots_received
    ));
    run.step("all three agree", ok && restored && st.merged > 0);

    // 6. A new phone joins late and gets a snapshot.
    run.say("[6/6] new-phone joins late: asks for a snapshot, then follows updates");
    run.add(3).await?;
    let ok = run.converge(&[0, 1, 2, 3]).await;
    let snaps = run.doc(3)?.stats().await.snapshots_received;
    run.report.snapshots_received = snaps;
    run.print_docs(&[3]).await;
    run.say(&format!(
        "    new-phone received {snaps} snapshot message(s) (the responder's snapshot, \
         and members' own entries sent when they connected to it)"
    ));
    run.step("the new device agrees", ok && snaps > 0);

    let ok = run.report.ok();
    run.say(&format!(
        "{}: {}/{} steps held in {:.1} s",
        if ok {
            "all devices converged"
        } else {
            "SOME STEPS FAILED"
        },
        run.report.steps.iter().filter(|(_, ok)| *ok).count(),
        run.report.steps.len(),
        run.started.elapsed().as_secs_f64()
    ));
    for d in &mut run.devices {
        d.doc = None;
        if let Some(a) = d.agent.take() {
            a.shutdown().await;
        }
    }
    Ok(run.report)
}
