//! End to end with real processes: two `smp-relay` processes (TLS on
//! loopback) and one `smp-agent serve` process per device. Each device's
//! sync [`Session`] runs in this test process and drives its agent over the
//! agent's text protocol on TCP (`AUTH`, `G:g SEND <len>` with the protobuf
//! body as a block, `G:g MSG`, `G:g ACK`, `G: LIST`, `G:g MEMBERS`), as any
//! client of a served agent would; its stored state is kept here, as the
//! device's own storage.
//!
//! Laptop, phone and tablet form the group; the tablet's agent is killed
//! (`kill -9`); laptop and phone edit the profile at the same time; the
//! tablet's agent restarts on its database, its session restarts from its
//! stored state and catches up from its queues; a fourth device joins late
//! and gets a snapshot. Every step must end with every running device
//! holding the same entries.
//!
//! `short` (one round) runs in CI, in about 3 s once the binaries are built;
//! `long` (`cargo test -p smp-groups-sync --test processes -- --ignored`)
//! repeats the kill / concurrent edits / catch-up round 20 times and has the
//! late joiner send 20 updates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smp_groups_agent::testing::procs::{Proc, build_binaries, spawn_agent, spawn_relay};
use smp_groups_sync::{Action, DeviceId, Entry, Key, ProfileField, Replica, Session};
use smp_groups_wire::base64url;
use smp_groups_wire::client::{AgentEvent, FrameLimits, LineDecoder, Transmission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long one wait may take.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The binaries, and child processes.

/// `smp-relay` and `smp-agent`, built from this workspace's sources once per
/// test process (`testing::procs::build_binaries`).
fn binaries() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let own = Path::new(env!("CARGO_BIN_EXE_smp-sync"));
        let mut bins = build_binaries(
            own,
            &[
                ("smp-groups-relay", "smp-relay"),
                ("smp-groups-agent", "smp-agent"),
            ],
        );
        let agent = bins.remove(1);
        (bins.remove(0), agent)
    })
}

/// `smp-relay --listen 127.0.0.1:0 --data DIR`; returns it and its address.
fn relay(dir: &Path) -> (Proc, String) {
    spawn_relay(&binaries().0, "127.0.0.1:0", dir)
}

/// `smp-agent serve --listen 127.0.0.1:0 --relay RELAY --db DB`; returns it,
/// where it listens and its token.
fn agent(name: &str, relay: &str, db: &Path) -> (Proc, std::net::SocketAddr, String) {
    spawn_agent(&binaries().1, name, relay, db, None, &[])
}

// ---------------------------------------------------------------------------
// A text protocol client.

struct Client {
    stream: TcpStream,
    decoder: LineDecoder<AgentEvent>,
    /// Received and not taken yet, in order.
    queue: VecDeque<Transmission<AgentEvent>>,
    next_corr: u64,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, token: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("AUTH {token}\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = got.iter().position(|&b| b == b'\n') {
                break i;
            }
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
                .await
                .expect("AUTH answered")
                .unwrap();
            assert!(n > 0, "closed before AUTH OK");
            got.extend_from_slice(&buf[..n]);
        };
        assert_eq!(&got[..end], b"AUTH OK\r");
        let mut c = Self {
            stream,
            decoder: LineDecoder::new(FrameLimits::default()),
            queue: VecDeque::new(),
            next_corr: 1,
        };
        c.push(&got[end + 1..]);
        c
    }

    fn push(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
        while let Some(t) = self.decoder.next() {
            self.queue
                .push_back(t.expect("the agent sends valid lines"));
        }
    }

    /// Reads what arrives within `wait` (at least one read).
    async fn fill(&mut self, wait: Duration) {
        let mut buf = vec![0u8; 64 * 1024];
        if let Ok(r) = tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            let n = r.expect("the agent's connection");
            assert!(n > 0, "the agent closed the connection");
            self.push(&buf[..n]);
        }
    }

    /// Sends `ENTITY COMMAND [args]` (and `block` after it, in the length
    /// form) and returns its first response; the other transmissions stay
    /// queued, in order.
    async fn call(&mut self, line: &str, block: Option<&[u8]>) -> AgentEvent {
        let corr = format!("t{}", self.next_corr);
        self.next_corr += 1;
        let mut bytes = format!("{corr} {line}\r\n").into_bytes();
        if let Some(b) = block {
            bytes.extend_from_slice(b);
            bytes.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&bytes).await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.queue.iter().position(|t| t.corr_id.as_str() == corr) {
                return self.queue.remove(i).map(|t| t.msg).unwrap();
            }
            assert!(Instant::now() < deadline, "no answer to {line}");
            self.fill(Duration::from_millis(200)).await;
        }
    }

    /// The events received (transmissions without a corrId), in order;
    /// late responses (a group `SEND`'s per-member `SENT`s) are dropped.
    fn events(&mut self) -> Vec<AgentEvent> {
        self.queue
            .drain(..)
            .filter(|t| t.corr_id.as_str().is_empty())
            .map(|t| t.msg)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// A device: an agent process, its client, and its sync session.

struct Device {
    name: &'static str,
    relay: String,
    db: PathBuf,
    proc: Option<Proc>,
    client: Option<Client>,
    /// Its alias of the group ("" before it has one).
    group: String,
    session: Option<Session>,
    /// The session's stored state (the device's own storage).
    stored: Option<Vec<u8>>,
    /// Events not about the group, kept for the setup steps.
    other: Vec<AgentEvent>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Device {
    fn new(name: &'static str, relay: &str, dir: &Path) -> Self {
        Self {
            name,
            relay: relay.to_owned(),
            db: dir.join(format!("{name}.db")),
            proc: None,
            client: None,
            group: String::new(),
            session: None,
            stored: None,
            other: Vec::new(),
        }
    }

    /// Starts its agent (on its database) and connects to it.
    async fn start(&mut self) {
        let (p, addr, token) = agent(self.name, &self.relay, &self.db);
        self.proc = Some(p);
        self.client = Some(Client::connect(addr, &token).await);
    }

    /// `kill -9` of its agent; its session ends (its stored state stays).
    fn kill(&mut self) {
        self.client = None;
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
        self.session = None;
    }

    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("the device is running")
    }

    /// Opens the session on group `alias`: from the stored state if there
    /// is one, else new, with the member id `G: LIST` reports as ours.
    async fn open(&mut self, alias: &str) {
        alias.clone_into(&mut self.group);
        let replica = if let Some(state) = &self.stored {
            Replica::decode_state(state).expect("stored state")
        } else {
            let rows = match self.client().call("G: LIST", None).await {
                AgentEvent::Rows { rows, .. } => rows,
                other => panic!("G: LIST: {other:?}"),
            };
            let me = rows
                .iter()
                .find(|r| r.get("group") == Some(&format!("G:{alias}")))
                .and_then(|r| r.get("me"))
                .and_then(|m| m.strip_prefix("C:"))
                .expect("our member id")
                .to_owned();
            let id = base64url::decode_unpadded(&me, "member id").unwrap();
            Replica::new(DeviceId::new(&id).unwrap())
        };
        self.session = Some(Session::new(replica));
    }

    /// The other members it is connected with (`G:g MEMBERS`).
    async fn members(&mut self) -> Vec<DeviceId> {
        let line = format!("G:{} MEMBERS", self.group);
        let rows = match self.client().call(&line, None).await {
            AgentEvent::Rows { rows, .. } => rows,
            other => panic!("{line}: {other:?}"),
        };
        rows.iter()
            .filter(|r| matches!(r.get("state"), Some("connected" | "full")))
            .filter_map(|r| r.get("member")?.strip_prefix("C:"))
            .filter_map(|m| base64url::decode_unpadded(m, "member id").ok())
            .filter_map(|id| DeviceId::new(&id).ok())
            .collect()
    }

    /// Carries out a session's actions over the text protocol.
    async fn act(&mut self, actions: Vec<Action>) {
        let group = self.group.clone();
        for a in actions {
            match a {
                Action::Persist(state) => self.stored = Some(state),
                Action::Send(body) => {
                    let line = format!("G:{group} SEND {}", body.len());
                    let r = self.client().call(&line, Some(&body)).await;
                    assert!(
                        matches!(
                            r,
                            AgentEvent::GroupSent { .. } | AgentEvent::GroupSentTo { .. }
                        ),
                        "{}: {line}: {r:?}",
                        self.name
                    );
                }
                Action::Ack(id) => {
                    // After a restart a message may be acknowledged already:
                    // the agent refuses the second ack, nothing is lost.
                    let _ = self
                        .client()
                        .call(&format!("G:{group} ACK {id}"), None)
                        .await;
                }
                Action::Changed(_) => {}
            }
        }
    }

    /// Handles every event received so far; reads for `wait` first.
    async fn pump(&mut self, wait: Duration) {
        if self.client.is_none() {
            return;
        }
        self.client().fill(wait).await;
        loop {
            let events = self.client().events();
            if events.is_empty() {
                return;
            }
            for e in events {
                let ours = |g: &smp_groups_wire::client::Alias| {
                    self.session.is_some() && g.as_str() == self.group
                };
                let actions = match &e {
                    AgentEvent::GroupMsg {
                        group,
                        msg_id,
                        body,
                        ..
                    } if ours(group) => {
                        let s = self.session.as_mut().unwrap();
                        s.on_message(now_ms(), *msg_id, body)
                    }
                    AgentEvent::GroupCon { group, .. } if ours(group) => {
                        self.session.as_mut().unwrap().on_member_connected()
                    }
                    AgentEvent::GroupMem {
                        group,
                        member: None,
                    } if ours(group) => {
                        let members = self.members().await;
                        self.session.as_mut().unwrap().on_joined(&members)
                    }
                    _ => {
                        self.other.push(e);
                        continue;
                    }
                };
                self.act(actions).await;
            }
        }
    }

    /// Handles events until one not about the group matches `f`.
    async fn wait<T>(&mut self, f: impl Fn(&AgentEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.other.iter().position(|e| f(e).is_some()) {
                return f(&self.other.remove(i)).unwrap();
            }
            assert!(Instant::now() < deadline, "{}: event not seen", self.name);
            self.pump(Duration::from_millis(100)).await;
        }
    }

    /// A local edit: stored, then sent.
    async fn edit(&mut self, edits: Vec<(Key, Option<Vec<u8>>)>) {
        let actions = self
            .session
            .as_mut()
            .expect("a session")
            .edit(now_ms(), edits)
            .unwrap();
        self.act(actions).await;
    }

    fn entries(&self) -> Option<Vec<(Key, Entry)>> {
        let s = self.session.as_ref()?;
        Some(
            s.replica()
                .entries()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        )
    }
}

struct World {
    devices: Vec<Device>,
}

impl World {
    /// Device 0 (which has the group open) invites device `i`; `i` joins it
    /// as `G:sync` and opens its session.
    async fn add(&mut self, i: usize) {
        let ab = format!("to-{}", self.devices[i].name);
        let r = self.devices[0]
            .client()
            .call(&format!("C:{ab} NEW"), None)
            .await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
        let inv = self.devices[0]
            .wait(|e| match e {
                AgentEvent::Inv { conn, invitation } if conn.as_str() == ab => {
                    Some(invitation.as_str().to_owned())
                }
                _ => None,
            })
            .await;
        let r = self.devices[i]
            .client()
            .call(&format!("C:owner JOIN {inv}"), None)
            .await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
        self.devices[0]
            .wait(|e| matches!(e, AgentEvent::Con { conn } if conn.as_str() == ab).then_some(()))
            .await;
        self.devices[i]
            .wait(|e| {
                matches!(e, AgentEvent::Con { conn } if conn.as_str() == "owner").then_some(())
            })
            .await;
        let group = self.devices[0].group.clone();
        let r = self.devices[0]
            .client()
            .call(&format!("C:{ab} INTRO G:{group} :my devices"), None)
            .await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
        let inv = self.devices[i]
            .wait(|e| match e {
                AgentEvent::Req {
                    conn, invitation, ..
                } if conn.as_str() == "owner" => Some(invitation.as_str().to_owned()),
                _ => None,
            })
            .await;
        let r = self.devices[i]
            .client()
            .call(&format!("G:sync JOIN g:{inv}"), None)
            .await;
        assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
        self.devices[i].open("sync").await;
    }

    /// Pumps every running device until those in `which` hold the same
    /// entries and nothing arrived for a while; panics after [`WAIT`].
    async fn converge(&mut self, which: &[usize], what: &str) -> Vec<(Key, Entry)> {
        let deadline = Instant::now() + WAIT;
        let mut quiet = 0;
        loop {
            for d in &mut self.devices {
                d.pump(Duration::from_millis(30)).await;
            }
            let docs: Vec<_> = which.iter().map(|&i| self.devices[i].entries()).collect();
            let same = docs.iter().all(Option::is_some) && docs.windows(2).all(|w| w[0] == w[1]);
            quiet = if same { quiet + 1 } else { 0 };
            if quiet >= 5 {
                return docs[0].clone().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: devices {which:?} did not converge: {docs:#?}"
            );
        }
    }
}

fn profile(field: ProfileField) -> Key {
    Key::profile(field)
}

fn value_of<'a>(doc: &'a [(Key, Entry)], key: &Key) -> Option<&'a [u8]> {
    doc.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, e)| e.value.as_deref())
}

async fn scenario(rounds: usize) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("smp-sync-procs-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_ra, relay_a) = relay(&dir.join("relay-a"));
    let (_rb, relay_b) = relay(&dir.join("relay-b"));
    let mut w = World {
        devices: vec![
            Device::new("laptop", &relay_a, &dir),
            Device::new("phone", &relay_b, &dir),
            Device::new("tablet", &relay_a, &dir),
            Device::new("new-phone", &relay_b, &dir),
        ],
    };
    for i in 0..3 {
        w.devices[i].start().await;
    }

    // The group of three.
    let r = w.devices[0]
        .client()
        .call("G:sync NEW :my devices", None)
        .await;
    assert!(matches!(r, AgentEvent::Ok { .. }), "{r:?}");
    w.devices[0].open("sync").await;
    w.add(1).await;
    w.add(2).await;
    w.devices[2]
        .edit(vec![(Key::preference("language"), Some(b"fr".to_vec()))])
        .await;
    w.converge(&[0, 1, 2], "group of three").await;

    let image: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 251) as u8).collect();
    for round in 0..rounds {
        // The tablet's agent is killed; laptop and phone edit at once.
        w.devices[2].kill();
        let laptop = format!("Ada (laptop {round})");
        let phone = format!("Ada (phone {round})");
        let bio = format!("Counting engines, round {round}");
        let (d0, rest) = w.devices.split_at_mut(1);
        tokio::join!(
            d0[0].edit(vec![
                (
                    profile(ProfileField::DisplayName),
                    Some(laptop.clone().into_bytes())
                ),
                (profile(ProfileField::Bio), Some(bio.clone().into_bytes())),
                (Key::preference("theme"), Some(b"dark".to_vec())),
            ]),
            rest[0].edit(vec![
                (
                    profile(ProfileField::DisplayName),
                    Some(phone.clone().into_bytes())
                ),
                (profile(ProfileField::Image), Some(image.clone())),
                (Key::preference("language"), Some(b"en".to_vec())),
            ]),
        );
        w.devices[0]
            .edit(vec![(Key::preference("theme"), None)])
            .await;
        let doc = w.converge(&[0, 1], "laptop and phone").await;
        let name = value_of(&doc, &profile(ProfileField::DisplayName)).unwrap();
        assert!(name == laptop.as_bytes() || name == phone.as_bytes());
        assert_eq!(
            value_of(&doc, &profile(ProfileField::Bio)),
            Some(bio.as_bytes())
        );
        assert_eq!(
            value_of(&doc, &profile(ProfileField::Image)),
            Some(&image[..])
        );
        assert_eq!(value_of(&doc, &Key::preference("theme")), None);

        // The tablet comes back: agent on its database, session from its
        // stored state; it catches up from its queues.
        w.devices[2].start().await;
        w.devices[2].open("sync").await;
        let all = w.converge(&[0, 1, 2], "tablet back").await;
        assert_eq!(all, doc, "the tablet caught up with laptop and phone");
        let st = w.devices[2].session.as_ref().unwrap().stats();
        assert!(st.merged > 0, "the tablet merged queued messages: {st:?}");
    }

    // A fourth device joins late and gets the document.
    w.devices[3].start().await;
    w.add(3).await;
    let all = w.converge(&[0, 1, 2, 3], "late joiner").await;
    let st = w.devices[3].session.as_ref().unwrap().stats();
    assert!(st.snapshots_received >= 1, "{st:?}");
    assert_eq!(
        value_of(&all, &Key::preference("language")),
        Some(&b"en"[..])
    );

    // Updates from the new device reach everyone.
    for k in 0..rounds {
        w.devices[3]
            .edit(vec![(
                Key::app(&format!("k{k}")),
                Some(vec![u8::try_from(k).unwrap(); 10]),
            )])
            .await;
    }
    let all = w
        .converge(&[0, 1, 2, 3], "updates of the late joiner")
        .await;
    assert_eq!(value_of(&all, &Key::app("k0")), Some(&[0u8; 10][..]));
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short() {
    scenario(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 20 rounds, about 20 s; run with --ignored"]
async fn long() {
    scenario(20).await;
}
