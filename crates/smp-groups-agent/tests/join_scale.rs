//! A group of eight, grown one member at a time, with real processes: two
//! `smp-relay` and eight `smp-agent serve`, each agent's queues on one of the
//! relays, all driven over TCP with the client text protocol.
//!
//! Each join goes through a visible connection (`C: NEW` / `C: JOIN`), then
//! `INTRO` / `REQ` / `G: JOIN`, and is complete when the new member got its
//! `MEM`, every earlier member got `CON` and `MEM` for it, and it got `CON`
//! for every earlier member. A join that is not complete within [`JOIN_WAIT`]
//! fails the run with the list of the pairs still missing a `CON` or `MEM`
//! and where the logs are. Then every member sends one message; every other
//! member must get it exactly once (and acknowledges it), and every sender
//! must get `RCVD` from everyone.
//!
//! The seed (`JOIN_SEED=n`, else random; printed) chooses which relay each
//! agent uses, the order of the joins and who introduces each new member
//! (any member whose own join is complete). Run `k` of a test uses seed
//! `n + k`. Each run has fresh databases in a temporary directory (kept, with
//! the logs, when the run fails); its processes are killed when it ends,
//! failed or not. `SMP_TEST_LOG` sets the processes' log level.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::procs::{self, Proc};
use common::temp_db;
use smp_groups_wire::client::{AgentEvent, FrameLimits, LineDecoder, RcvdStatus, Transmission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

/// Members, the creator included (`JOIN_MEMBERS=n` changes it for the
/// ignored test).
const MEMBERS: usize = 8;
/// How long one join may take.
const JOIN_WAIT: Duration = Duration::from_secs(60);
/// How long the visible connection and the invitation of a join may take.
const STEP_WAIT: Duration = Duration::from_secs(30);
/// How long the message round may take.
const SEND_WAIT: Duration = Duration::from_secs(60);
/// The group's alias at every member.
const GROUP: &str = "club";

/// splitmix64: a small deterministic generator for the run's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

type Seen = Arc<Mutex<Vec<(Instant, Transmission<AgentEvent>)>>>;

/// One agent process and its text client.
struct Member {
    name: String,
    relay: char,
    log: PathBuf,
    writer: OwnedWriteHalf,
    /// Everything the agent wrote to this client, with when it was read.
    seen: Seen,
    reader: tokio::task::JoinHandle<()>,
    next_corr: u64,
    /// Its member id, as the others name it (`C:id`), once known.
    id: Option<String>,
    /// `seen` up to here was scanned for `MSG`s to acknowledge.
    acked_upto: usize,
    /// The corrIds of the `ACK`s sent.
    acks: Vec<String>,
    _proc: Proc,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Member {
    async fn start(index: usize, relay: (char, &str), dir: &Path) -> Self {
        let name = format!("m{index}");
        let db = dir.join(format!("{name}.db"));
        let (proc_, addr) = procs::agent(&name, relay.1, &db);
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
                while let Some(t) = decoder.next() {
                    let t = t.unwrap_or_else(|e| panic!("{who}: a line that does not decode: {e}"));
                    sink.lock().unwrap().push((Instant::now(), t));
                }
            }
        });
        Self {
            name,
            relay: relay.0,
            log: db.with_extension("log"),
            writer,
            seen,
            reader,
            next_corr: 0,
            id: None,
            acked_upto: 0,
            acks: Vec::new(),
            _proc: proc_,
        }
    }

    async fn line(&mut self, line: &str) -> String {
        self.next_corr += 1;
        let corr = format!("{}", self.next_corr);
        self.writer
            .write_all(format!("{corr} {line}\r\n").as_bytes())
            .await
            .unwrap();
        corr
    }

    /// Sends a command and waits for its response.
    async fn call(&mut self, line: &str) -> Result<AgentEvent, String> {
        let corr = self.line(line).await;
        let seen = Arc::clone(&self.seen);
        wait(Instant::now() + STEP_WAIT, || {
            seen.lock()
                .unwrap()
                .iter()
                .find(|(_, t)| t.corr_id.as_str() == corr)
                .map(|(_, t)| t.msg.clone())
        })
        .await
        .ok_or_else(|| format!("{}: no answer to {line:?} in {STEP_WAIT:?}", self.name))
    }

    /// The first event (empty corrId) for which `f` gives something.
    fn find<T>(&self, f: impl Fn(&AgentEvent) -> Option<T>) -> Option<T> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.corr_id.is_empty())
            .find_map(|(_, t)| f(&t.msg))
    }

    fn count(&self, f: impl Fn(&AgentEvent) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.corr_id.is_empty() && f(&t.msg))
            .count()
    }

    /// The members it got `CON` for.
    fn cons(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (_, t) in self.seen.lock().unwrap().iter() {
            if let AgentEvent::GroupCon { group, member } = &t.msg
                && group.as_str() == GROUP
            {
                v.push(member.as_str().to_owned());
            }
        }
        v
    }

    fn has_con(&self, id: &str) -> bool {
        self.count(|e| {
            matches!(e, AgentEvent::GroupCon { group, member }
                if group.as_str() == GROUP && member.as_str() == id)
        }) > 0
    }

    fn has_mem(&self, id: Option<&str>) -> bool {
        self.count(|e| {
            matches!(e, AgentEvent::GroupMem { group, member }
                if group.as_str() == GROUP && member.as_ref().map(smp_groups_wire::client::Alias::as_str) == id)
        }) > 0
    }

    /// Answers every group `MSG` not answered yet with `ACK`.
    async fn ack_new(&mut self) {
        let new: Vec<u64> = {
            let seen = self.seen.lock().unwrap();
            let ids = seen[self.acked_upto..]
                .iter()
                .filter_map(|(_, t)| match &t.msg {
                    AgentEvent::GroupMsg { group, msg_id, .. } if group.as_str() == GROUP => {
                        Some(*msg_id)
                    }
                    _ => None,
                })
                .collect();
            self.acked_upto = seen.len();
            ids
        };
        for id in new {
            let corr = self.line(&format!("G:{GROUP} ACK {id}")).await;
            self.acks.push(corr);
        }
    }

    /// The last `n` lines it got, for a failure report.
    fn tail(&self, n: usize, since: Instant) -> String {
        let seen = self.seen.lock().unwrap();
        let mut s = String::new();
        for (at, t) in seen.iter().rev().take(n).rev() {
            let line = String::from_utf8_lossy(&t.to_bytes()).trim_end().to_owned();
            let short: String = line.chars().take(120).collect();
            let _ = writeln!(
                s,
                "    +{:>6.2}s {}",
                at.saturating_duration_since(since).as_secs_f64(),
                short
            );
        }
        s
    }
}

/// Polls `f` every 20 ms until it gives something or `deadline` passes.
async fn wait<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
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

/// One run's processes and clients.
struct Run {
    seed: u64,
    dir: PathBuf,
    started: Instant,
    members: Vec<Member>,
    _relays: Vec<Proc>,
}

impl Run {
    fn name(&self, i: usize) -> String {
        let m = &self.members[i];
        format!("{} (relay {})", m.name, m.relay)
    }

    fn logs(&self) -> String {
        format!(
            "logs: {} (mK.log per agent, relay-a.log, relay-b.log; SMP_TEST_LOG=debug for more; JOIN_SEED={} repeats this run)",
            self.dir.display(),
            self.seed
        )
    }

    /// A visible connection: `a` invites (`C:m{b} NEW`), `b` joins.
    async fn connect(&mut self, a: usize, b: usize) -> Result<(), String> {
        let (na, nb) = (self.members[a].name.clone(), self.members[b].name.clone());
        let r = self.members[a].call(&format!("C:{nb} NEW")).await?;
        if !matches!(r, AgentEvent::Ok { .. }) {
            return Err(format!("{na}: C:{nb} NEW answered {r:?}"));
        }
        let deadline = Instant::now() + STEP_WAIT;
        let inv = wait(deadline, || {
            self.members[a].find(|e| match e {
                AgentEvent::Inv { conn, invitation } if conn.as_str() == nb => {
                    Some(invitation.as_str().to_owned())
                }
                _ => None,
            })
        })
        .await
        .ok_or_else(|| format!("{na}: no INV for C:{nb}; {}", self.logs()))?;
        let r = self.members[b].call(&format!("C:{na} JOIN {inv}")).await?;
        if !matches!(r, AgentEvent::Ok { .. }) {
            return Err(format!("{nb}: C:{na} JOIN answered {r:?}"));
        }
        for (x, alias) in [(a, &nb), (b, &na)] {
            let ok = wait(deadline, || {
                (self.members[x].count(
                    |e| matches!(e, AgentEvent::Con { conn } if conn.as_str() == alias.as_str()),
                ) > 0)
                    .then_some(())
            })
            .await;
            if ok.is_none() {
                return Err(format!(
                    "visible connection {na} - {nb}: {} has no CON for C:{alias} after {STEP_WAIT:?}; {}",
                    self.members[x].name,
                    self.logs()
                ));
            }
        }
        Ok(())
    }

    /// `intro` adds `new` to the group; returns when the join is complete.
    async fn join(&mut self, intro: usize, new: usize, before: &[usize]) -> Result<(), String> {
        let t0 = Instant::now();
        self.connect(intro, new).await?;
        let (ni, nn) = (
            self.members[intro].name.clone(),
            self.members[new].name.clone(),
        );
        let from = self.members[new].seen.lock().unwrap().len();
        let r = self.members[intro]
            .call(&format!("C:{nn} INTRO G:{GROUP} :welcome {nn}"))
            .await?;
        if !matches!(r, AgentEvent::Ok { .. }) {
            return Err(format!("{ni}: INTRO answered {r:?}"));
        }
        let seen = Arc::clone(&self.members[new].seen);
        let inv = wait(Instant::now() + STEP_WAIT, || {
            seen.lock().unwrap()[from..]
                .iter()
                .find_map(|(_, t)| match &t.msg {
                    AgentEvent::Req {
                        conn, invitation, ..
                    } if conn.as_str() == ni => Some(invitation.as_str().to_owned()),
                    _ => None,
                })
        })
        .await
        .ok_or_else(|| format!("{nn}: no REQ from {ni}; {}", self.logs()))?;
        let r = self.members[new]
            .call(&format!("G:{GROUP} JOIN g:{inv}"))
            .await?;
        if !matches!(r, AgentEvent::Ok { .. }) {
            return Err(format!("{nn}: G:{GROUP} JOIN answered {r:?}"));
        }

        let deadline = t0 + JOIN_WAIT;
        let complete = wait(deadline, || {
            self.join_missing(intro, new, before)
                .is_empty()
                .then_some(())
        })
        .await;
        if complete.is_none() {
            let missing = self.join_missing(intro, new, before);
            let mut s = format!(
                "join of {} introduced by {} (with {} earlier members) incomplete after {JOIN_WAIT:?}:\n",
                self.name(new),
                self.name(intro),
                before.len()
            );
            for m in &missing {
                let _ = writeln!(s, "  - {m}");
            }
            let mut involved: BTreeSet<usize> = BTreeSet::from([intro, new]);
            for &m in before {
                if missing
                    .iter()
                    .any(|x| x.contains(&format!("{} ", self.members[m].name)))
                {
                    involved.insert(m);
                }
            }
            for i in involved {
                let _ = write!(
                    s,
                    "  last lines of {} (seconds since the run started; log {}):\n{}",
                    self.name(i),
                    self.members[i].log.display(),
                    self.members[i].tail(12, self.started)
                );
            }
            let _ = write!(s, "  {}", self.logs());
            return Err(s);
        }
        let id = self
            .new_member_id(intro, before)
            .expect("complete joins have ids");
        self.members[new].id = Some(id);
        // Each CON and MEM of this join came once.
        for &m in before {
            let idm = self.members[m].id.clone().unwrap();
            let idn = self.members[new].id.clone().unwrap();
            let cons = self.members[m].cons().iter().filter(|c| **c == idn).count();
            assert_eq!(
                cons, 1,
                "{}: CON for {nn} {cons} times",
                self.members[m].name
            );
            let cons = self.members[new]
                .cons()
                .iter()
                .filter(|c| **c == idm)
                .count();
            assert_eq!(
                cons, 1,
                "{nn}: CON for {} {cons} times",
                self.members[m].name
            );
            let mems = self.members[m].count(
                |e| matches!(e, AgentEvent::GroupMem { member: Some(x), .. } if x.as_str() == idn),
            );
            assert_eq!(
                mems, 1,
                "{}: MEM for {nn} {mems} times",
                self.members[m].name
            );
        }
        assert_eq!(
            self.members[new].count(|e| matches!(e, AgentEvent::GroupMem { member: None, .. })),
            1,
            "{nn}: its own MEM once"
        );
        assert_eq!(
            self.members[new].cons().len(),
            before.len(),
            "{nn}: one CON per earlier member, no other"
        );
        eprintln!(
            "  {nn} (relay {}) joined through {ni} in {:.2}s",
            self.members[new].relay,
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The new member's id: the member the introducer got `CON` for that is
    /// none of the earlier members.
    fn new_member_id(&self, intro: usize, before: &[usize]) -> Option<String> {
        let known: BTreeSet<String> = before
            .iter()
            .filter_map(|&m| self.members[m].id.clone())
            .collect();
        self.members[intro]
            .cons()
            .into_iter()
            .find(|c| !known.contains(c))
    }

    /// What the join of `new` still lacks, one line per missing event. On the
    /// first join the creator's id is learnt here, from the new member's `CON`.
    fn join_missing(&mut self, intro: usize, new: usize, before: &[usize]) -> Vec<String> {
        let nn = self.members[new].name.clone();
        let mut missing = Vec::new();
        if before.len() == 1 && self.members[before[0]].id.is_none() {
            self.members[before[0]].id = self.members[new].cons().first().cloned();
        }
        if !self.members[new].has_mem(None) {
            missing.push(format!("{nn} has no MEM (its own join)"));
        }
        let idn = self.new_member_id(intro, before);
        for &m in before {
            let nm = self.name(m);
            match &idn {
                Some(idn) => {
                    if !self.members[m].has_con(idn) {
                        missing.push(format!("{nm} has no CON for {nn} ({idn})"));
                    }
                    if !self.members[m].has_mem(Some(idn)) {
                        missing.push(format!("{nm} has no MEM for {nn} ({idn})"));
                    }
                }
                None => missing.push(format!(
                    "{nm} has no CON/MEM for {nn} (its id is unknown: the introducer has no CON for it)"
                )),
            }
            match self.members[m].id.clone() {
                Some(idm) if !self.members[new].has_con(&idm) => {
                    missing.push(format!(
                        "{} has no CON for {} ({idm})",
                        self.name(new),
                        self.members[m].name
                    ));
                }
                Some(_) => {}
                None => missing.push(format!(
                    "{} has no CON for {} (its id is not known yet)",
                    self.name(new),
                    self.members[m].name
                )),
            }
        }
        missing
    }

    /// Every member sends one message; everyone else gets it once and
    /// acknowledges it; every sender gets `RCVD` from everyone.
    async fn send_round(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for k in 0..self.members.len() {
            let body = format!("from {}", self.members[k].name);
            let r = self.members[k]
                .call(&format!("G:{GROUP} SEND :{body}"))
                .await?;
            let AgentEvent::GroupSent { msg_id, .. } = r else {
                return Err(format!("{}: SEND answered {r:?}", self.members[k].name));
            };
            sent.push((msg_id, body));
        }
        let deadline = t0 + SEND_WAIT;
        loop {
            for m in &mut self.members {
                m.ack_new().await;
            }
            let missing = self.send_missing(&sent);
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let mut s = format!("message round incomplete after {SEND_WAIT:?}:\n");
                for m in &missing {
                    let _ = writeln!(s, "  - {m}");
                }
                let _ = write!(s, "  {}", self.logs());
                return Err(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Exactly once, from the right member, and every ACK accepted.
        for (k, (_, body)) in sent.iter().enumerate() {
            let idk = self.members[k].id.clone().unwrap();
            for (j, m) in self.members.iter().enumerate() {
                let got: Vec<String> = m
                    .seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|(_, t)| match &t.msg {
                        AgentEvent::GroupMsg {
                            member, body: b, ..
                        } if b == body.as_bytes() => Some(member.as_str().to_owned()),
                        _ => None,
                    })
                    .collect();
                let want = if j == k { vec![] } else { vec![idk.clone()] };
                assert_eq!(got, want, "{}: {body:?} from {:?}", m.name, got);
            }
        }
        for m in &self.members {
            assert_eq!(
                m.acks.len(),
                self.members.len() - 1,
                "{}: one ACK per message",
                m.name
            );
            for corr in &m.acks {
                let seen = m.seen.clone();
                let r = wait(Instant::now() + STEP_WAIT, || {
                    seen.lock()
                        .unwrap()
                        .iter()
                        .find(|(_, t)| t.corr_id.as_str() == corr)
                        .map(|(_, t)| t.msg.clone())
                })
                .await;
                assert!(
                    matches!(r, Some(AgentEvent::Ok { .. })),
                    "{}: ACK {corr} answered {r:?}",
                    m.name
                );
            }
        }
        eprintln!(
            "  {} messages delivered and receipted in {:.2}s",
            self.members.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// What the message round still lacks.
    fn send_missing(&self, sent: &[(u64, String)]) -> Vec<String> {
        let mut missing = Vec::new();
        for (k, (msg_id, body)) in sent.iter().enumerate() {
            let sender = &self.members[k];
            for (j, m) in self.members.iter().enumerate() {
                if j == k {
                    continue;
                }
                let idj = m.id.as_deref().unwrap_or("?");
                let got = m.count(
                    |e| matches!(e, AgentEvent::GroupMsg { body: b, .. } if b == body.as_bytes()),
                );
                if got == 0 {
                    missing.push(format!("{} has no MSG from {}", self.name(j), self.name(k)));
                }
                let sent_to = sender.count(|e| {
                    matches!(e, AgentEvent::GroupSentTo { member, msg_id: x, .. }
                        if member.as_str() == idj && x == msg_id)
                });
                if sent_to == 0 {
                    missing.push(format!(
                        "{} has no SENT to {} for message {msg_id}",
                        self.name(k),
                        m.name
                    ));
                }
                let rcvd = sender.count(|e| {
                    matches!(e, AgentEvent::GroupRcvd { member: Some(x), msg_id: y, status: RcvdStatus::Ok, .. }
                        if x.as_str() == idj && y == msg_id)
                });
                if rcvd == 0 {
                    missing.push(format!(
                        "{} has no RCVD from {} for message {msg_id}",
                        self.name(k),
                        m.name
                    ));
                }
            }
            if sender.count(|e| {
                matches!(e, AgentEvent::GroupRcvd { member: None, msg_id: y, status: RcvdStatus::Ok, .. } if y == msg_id)
            }) == 0
            {
                missing.push(format!("{} has no RCVD {msg_id} ok from all", self.name(k)));
            }
            if sender.count(|e| matches!(e, AgentEvent::GroupSent { msg_id: y, .. } if y == msg_id))
                == 0
            {
                missing.push(format!("{} has no SENT {msg_id} for all", self.name(k)));
            }
        }
        missing
    }
}

/// One run: start everything, grow the group, send; the processes are killed
/// when this returns (or unwinds).
async fn run(seed: u64, n: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let dir = temp_db(&format!("join-scale-{seed}")).with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let (relay_a, ra) = procs::relay("127.0.0.1:0", &dir.join("relay-a"));
    let (relay_b, rb) = procs::relay("127.0.0.1:0", &dir.join("relay-b"));
    // Each agent on a random relay, both relays used.
    let mut on_b: Vec<bool> = (0..n).map(|_| rng.below(2) == 1).collect();
    if on_b.iter().all(|b| *b) || on_b.iter().all(|b| !*b) {
        let i = rng.below(n);
        on_b[i] = !on_b[i];
    }
    let mut members = Vec::with_capacity(n);
    for (i, b) in on_b.iter().enumerate() {
        let relay = if *b {
            ('b', rb.as_str())
        } else {
            ('a', ra.as_str())
        };
        members.push(Member::start(i, relay, &dir).await);
    }
    let mut run = Run {
        seed,
        dir: dir.clone(),
        started,
        members,
        _relays: vec![relay_a, relay_b],
    };
    let r = run.members[0]
        .call(&format!("G:{GROUP} NEW :join scale"))
        .await?;
    if !matches!(r, AgentEvent::Ok { .. }) {
        return Err(format!("m0: G:{GROUP} NEW answered {r:?}"));
    }
    let mut order: Vec<usize> = (1..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut joined = vec![0];
    for new in order {
        let intro = joined[rng.below(joined.len())];
        run.join(intro, new, &joined.clone()).await?;
        joined.push(new);
    }
    run.send_round().await?;
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(started.elapsed())
}

fn base_seed() -> u64 {
    std::env::var("JOIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::try_from(t.as_nanos() % u128::from(u64::MAX)).unwrap()
                ^ u64::from(std::process::id())
        })
}

/// `runs` runs with seeds `JOIN_SEED + k`; every run is made, then the test
/// fails if any stalled, with every stall's report.
fn runs(runs: u64, n: usize) {
    procs::relay_bin();
    let base = base_seed();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut times = Vec::new();
    let mut stalls = Vec::new();
    for k in 0..runs {
        let seed = base.wrapping_add(k);
        eprintln!("run {}/{runs}: {n} members, JOIN_SEED={seed}", k + 1);
        match rt.block_on(run(seed, n)) {
            Ok(t) => {
                eprintln!("run {}/{runs}: complete in {:.2}s", k + 1, t.as_secs_f64());
                times.push(t);
            }
            Err(e) => {
                eprintln!("run {}/{runs} (JOIN_SEED={seed}) STALLED: {e}", k + 1);
                stalls.push(format!("JOIN_SEED={seed}: {e}"));
            }
        }
    }
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    let (min, max) = secs
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    eprintln!(
        "{runs} runs, {} stalls; complete runs took {:.2}s to {:.2}s (mean {:.2}s)",
        stalls.len(),
        if secs.is_empty() { 0.0 } else { min },
        max,
        (times.iter().sum::<Duration>() / u32::try_from(times.len().max(1)).unwrap()).as_secs_f64()
    );
    assert!(
        stalls.is_empty(),
        "{} of {runs} runs stalled:\n{}",
        stalls.len(),
        stalls.join("\n")
    );
}

#[test]
fn joins_8_members_3_runs() {
    runs(3, MEMBERS);
}

#[test]
#[ignore = "long: 20 runs (cargo test -p smp-groups-agent --test join_scale -- --ignored; JOIN_RUNS and JOIN_MEMBERS change them)"]
fn joins_8_members_20_runs() {
    let n = std::env::var("JOIN_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let members = std::env::var("JOIN_MEMBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MEMBERS);
    runs(n, members);
}
