//! The async API: a [`SyncDoc`] is one device's replica of the document of
//! one group, kept in sync through an [`Agent`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use smp_groups_agent::Agent;
use smp_groups_wire::client::AgentEvent;
use tokio::sync::{Mutex, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::key::Key;
use crate::replica::{Change, Entry, Profile, Replica};
use crate::session::{Action, Session, Stats};
use crate::stamp::DeviceId;

/// How many changes a [`SyncDoc::changes`] receiver may lag behind before
/// it misses some (it then gets `RecvError::Lagged`).
pub const CHANGES_CAPACITY: usize = 1024;
/// How many agent events of other entities wait for
/// [`SyncDoc::other_events`]; more are dropped (counted in
/// [`SyncDoc::dropped_events`]).
pub const OTHER_EVENTS_CAPACITY: usize = 1024;

/// How to open a document.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Where the replica's state is kept (written before each message is
    /// acknowledged, atomically by rename); `None`: in memory only, a
    /// restarted device starts empty and gets the document again only from
    /// updates and snapshots it asks for.
    pub state_path: Option<PathBuf>,
}

struct Inner {
    session: Session,
    state_path: Option<PathBuf>,
}

/// One device's replica of a group's document.
///
/// The document takes over the agent's event stream: it reads every event
/// (from the first one not yet confirmed), handles its group's messages and
/// membership events, confirms each event once handled, and passes every
/// other event on to [`SyncDoc::other_events`]. Open at most one per agent,
/// and read the agent's events nowhere else while it is open.
pub struct SyncDoc {
    agent: Agent,
    group: String,
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    others: std::sync::Mutex<Option<mpsc::Receiver<AgentEvent>>>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SyncDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDoc")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn load(path: &Path) -> Result<Option<Replica>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Replica::decode_state(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn store(path: &Path, state: &[u8]) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(state)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Carries out a session's actions in order (the caller holds the lock, so
/// that stores happen in the order the states were made).
async fn run_actions(
    agent: &Agent,
    group: &str,
    inner: &Inner,
    changes: &broadcast::Sender<Change>,
    actions: Vec<Action>,
) -> Result<(), Error> {
    for a in actions {
        match a {
            Action::Persist(state) => {
                if let Some(p) = &inner.state_path {
                    store(p, &state)?;
                }
            }
            Action::Send(body) => {
                agent.send(group, &body).await?;
            }
            Action::Ack(msg_id) => {
                // A message delivered again after a restart may be acknowledged
                // already: the agent refuses the second ack, nothing is lost.
                if let Err(e) = agent.ack(group, msg_id).await {
                    tracing::debug!("ack {msg_id}: {e}");
                }
            }
            Action::Changed(c) => {
                let _ = changes.send(c);
            }
        }
    }
    Ok(())
}

impl SyncDoc {
    /// Opens the document of `group` (an alias of a group the agent is a
    /// member of) on `agent`, restoring the replica from
    /// `options.state_path` if it exists. The device id is the agent's
    /// member id in the group.
    pub async fn open(agent: Agent, group: &str, options: SyncOptions) -> Result<Self, Error> {
        let member = agent
            .member_id(group)
            .await?
            .ok_or_else(|| Error::NoGroup(group.to_owned()))?;
        let device = DeviceId::new(&member.0)?;
        let replica = match &options.state_path {
            Some(p) => load(p)?.unwrap_or_else(|| Replica::new(device.clone())),
            None => Replica::new(device.clone()),
        };
        if *replica.device() != device {
            return Err(Error::Invalid("the stored replica is of another device"));
        }
        let inner = Arc::new(Mutex::new(Inner {
            session: Session::new(replica),
            state_path: options.state_path,
        }));
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let (others_tx, others_rx) = mpsc::channel(OTHER_EVENTS_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let events = agent.events_unconfirmed().await?;
        let task = tokio::spawn(pump(
            agent.clone(),
            group.to_owned(),
            Arc::clone(&inner),
            changes.clone(),
            others_tx,
            Arc::clone(&dropped),
            events,
        ));
        Ok(Self {
            agent,
            group: group.to_owned(),
            inner,
            changes,
            others: std::sync::Mutex::new(Some(others_rx)),
            dropped,
            task,
        })
    }

    /// The group's alias.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// This device's id (its member id in the group).
    pub async fn device(&self) -> DeviceId {
        self.inner.lock().await.session.replica().device().clone()
    }

    /// The visible value of `key`.
    pub async fn get(&self, key: &Key) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .await
            .session
            .replica()
            .get(key)
            .map(<[u8]>::to_vec)
    }

    /// The visible profile.
    pub async fn profile(&self) -> Profile {
        self.inner.lock().await.session.replica().profile()
    }

    /// The visible document.
    pub async fn document(&self) -> std::collections::BTreeMap<Key, Vec<u8>> {
        self.inner.lock().await.session.replica().document()
    }

    /// Every key's latest write, tombstones included (equal on devices that
    /// have merged the same writes).
    pub async fn entries(&self) -> Vec<(Key, Entry)> {
        self.inner
            .lock()
            .await
            .session
            .replica()
            .entries()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// What the session saw so far.
    pub async fn stats(&self) -> Stats {
        self.inner.lock().await.session.stats()
    }

    /// Sets `key` to `value`: stored, then sent to the group.
    pub async fn set(&self, key: Key, value: Vec<u8>) -> Result<(), Error> {
        self.edit(vec![(key, Some(value))]).await
    }

    /// Deletes `key`: stored, then sent to the group.
    pub async fn delete(&self, key: Key) -> Result<(), Error> {
        self.edit(vec![(key, None)]).await
    }

    /// Several edits as one update (one group message).
    pub async fn edit(&self, edits: Vec<(Key, Option<Vec<u8>>)>) -> Result<(), Error> {
        let mut inner = self.inner.lock().await;
        let actions = inner.session.edit(now_ms(), edits)?;
        run_actions(&self.agent, &self.group, &inner, &self.changes, actions).await
    }

    /// A stream of changes of visible values, local and received.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The agent's events that are not this document's group's (connection
    /// invitations, other groups, ...). The receiver is given once.
    pub fn other_events(&self) -> Option<mpsc::Receiver<AgentEvent>> {
        self.others.lock().ok().and_then(|mut o| o.take())
    }

    /// Events of other entities dropped because nobody read them.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops following the group (the agent keeps running; events not yet
    /// handled stay unconfirmed and are handled by the next open).
    pub fn close(self) {
        self.task.abort();
    }
}

impl Drop for SyncDoc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    agent: Agent,
    group: String,
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    others: mpsc::Sender<AgentEvent>,
    dropped: Arc<AtomicU64>,
    mut events: smp_groups_agent::EventStream,
) {
    while let Some(d) = events.next().await {
        let result = match d.event {
            AgentEvent::GroupMsg {
                group: g,
                msg_id,
                body,
                ..
            } if g.as_str() == group => {
                let mut guard = inner.lock().await;
                let actions = guard.session.on_message(now_ms(), msg_id, &body);
                run_actions(&agent, &group, &guard, &changes, actions).await
            }
            AgentEvent::GroupCon { group: ref g, .. } if g.as_str() == group => {
                let mut guard = inner.lock().await;
                let actions = guard.session.on_member_connected();
                run_actions(&agent, &group, &guard, &changes, actions).await
            }
            AgentEvent::GroupMem {
                group: ref g,
                member: None,
            } if g.as_str() == group => match agent.members(&group).await {
                Ok(members) => {
                    let members: Vec<DeviceId> = members
                        .iter()
                        .filter_map(|m| DeviceId::new(&m.0).ok())
                        .collect();
                    let mut guard = inner.lock().await;
                    let actions = guard.session.on_joined(&members);
                    run_actions(&agent, &group, &guard, &changes, actions).await
                }
                Err(e) => Err(e.into()),
            },
            other => {
                if others.try_send(other).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            // The event stays unconfirmed: the next open handles it again.
            tracing::warn!("sync of group {group} stopped: {e}");
            return;
        }
        agent.confirm(d.seq).await;
    }
}
