//! The async API: [`Agent::open`] starts the runtime task; the returned handle
//! sends it commands and reads its events.

use std::path::PathBuf;
use std::sync::Arc;

use smp_groups_core::{
    Agent as CoreAgent, Command, CommandError, Config, ConnStatus, DeliveryProof, Event,
    GroupStatus, IntegrityStatus, MemberStatus, PendingApproval, PendingInvitation, PendingSend,
    Settings,
};
use smp_groups_crypto::clock::{Clock, SystemClock};
use smp_groups_crypto::rng::{RandomSource, SystemRandom};
use smp_groups_store::Store;
use smp_groups_wire::agent::MemberId;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::relay_client::{RelayConnector, RelayContext};
use crate::runtime::{Delivery, Metrics, Request, Runtime, Shared};

/// How to open an agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The database file (`None`: in memory, lost when the agent stops).
    pub db: Option<PathBuf>,
    /// The agent's name at its relays (stable across restarts).
    pub identity: String,
    /// Core settings for a new agent (`server` is the relay its queues are
    /// created on). A restored agent keeps the settings it was created with,
    /// except those of [`AgentConfig::settings`].
    pub core: Config,
    /// Settings applied to a restored agent too (approvals, the check
    /// schedule, receipts), so that the ones a daemon is started with hold
    /// whenever it was created; `None`: a restored agent keeps its own.
    pub settings: Option<Settings>,
    /// The wall clock (the system's by default; a test may fix or move it).
    pub clock: Arc<dyn Clock>,
    /// Where keys, nonces and ids come from (the system's generator by
    /// default; a test may pass a seeded one).
    pub random: Arc<dyn RandomSource>,
    /// Make the agent cheat in its group sends (`cheat` feature, tests of
    /// integrity detection only; see `smp_groups_core::Cheat`).
    #[cfg(feature = "cheat")]
    pub cheat: Option<smp_groups_core::Cheat>,
}

impl AgentConfig {
    /// An agent named `identity` creating its queues on relay `server`.
    pub fn new(identity: &str, server: &str, db: Option<PathBuf>) -> Self {
        Self {
            db,
            identity: identity.to_owned(),
            core: Config {
                server: server.to_owned(),
                ..Config::default()
            },
            settings: None,
            clock: Arc::new(SystemClock),
            random: Arc::new(SystemRandom),
            #[cfg(feature = "cheat")]
            cheat: None,
        }
    }
}

/// A running agent. Cloning gives another handle to the same agent; the agent
/// stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct Agent {
    tx: mpsc::Sender<Request>,
    shared: Shared,
}

/// The client events of an agent, in order ([`Agent::events`]): responses are
/// returned by the commands, these are the events the agent sends on its own,
/// in the client protocol's terms ([`smp_groups_wire::client::AgentEvent`]).
/// A stream reads the agent's log of unconfirmed events at its own pace:
/// nothing is queued for it, so one that is not read costs the agent nothing.
///
/// Among them, `FAULT` ([`AgentEvent::Fault`] on a connection,
/// [`AgentEvent::GroupFault`] on a group) says that a connection can no longer
/// make progress because the agent refused an input (the peer's queue is gone,
/// our queue was refused or lost at the relay, a confirmation could not be
/// processed, messages could not be decrypted several times in a row, one of
/// our own steps failed); every refused input, reported or not, is counted in
/// [`Metrics::refusals`](crate::Metrics::refusals). See `docs/faults.md`.
///
/// [`AgentEvent::Fault`]: smp_groups_wire::client::AgentEvent::Fault
/// [`AgentEvent::GroupFault`]: smp_groups_wire::client::AgentEvent::GroupFault
#[derive(Debug)]
pub struct EventStream {
    agent: Agent,
    /// The next sequence number to return.
    next: u64,
    auto_confirm: bool,
}

impl EventStream {
    /// The next event; `None` once the agent has stopped. Unless made with
    /// [`Agent::events_unconfirmed`], the event is confirmed as delivered
    /// when it is returned.
    pub async fn next(&mut self) -> Option<Delivery> {
        let d = loop {
            let mut latest = self.agent.shared.latest.clone();
            latest.borrow_and_update();
            if let Some(d) = self.agent.shared.log.first_from(self.next) {
                break d;
            }
            latest.changed().await.ok()?;
        };
        self.next = d.seq + 1;
        if self.auto_confirm {
            self.agent.confirm(d.seq).await;
        }
        Some(d)
    }
}

impl Agent {
    /// Opens (or creates) the agent in `config.db` and starts its task on the
    /// current tokio runtime, with relay access through `relays`.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use smp_groups_agent::{Agent, AgentConfig, NetworkRelay};
    /// use smp_groups_relay::Relay;
    ///
    /// let dir = std::env::temp_dir().join(format!("smp-doc-open-{}", std::process::id()));
    /// let relay = Relay::spawn_local(&dir).await?;
    /// let alice = Agent::open(
    ///     AgentConfig::new("alice", &relay.address(), None),
    ///     std::sync::Arc::new(NetworkRelay::new()),
    /// )?;
    /// let group = alice.create_group(None, b"Book club").await?;
    /// assert!(!group.is_empty());
    /// relay.shutdown().await;
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    #[allow(clippy::needless_pass_by_value)] // handles are made from owned settings
    pub fn open(config: AgentConfig, relays: Arc<dyn RelayConnector>) -> Result<Self, Error> {
        let mut store = match &config.db {
            Some(path) => Store::open(path)?,
            None => Store::open_in_memory()?,
        };
        let stored = crate::records::load_core(&store)?;
        let mut core = if stored.records.is_empty() {
            let _ = &mut store;
            CoreAgent::new(config.core.clone())
        } else {
            CoreAgent::restore(stored.records, stored.schema)?
        };
        if let Some(settings) = &config.settings {
            core.apply_settings(settings);
        }
        #[cfg(feature = "cheat")]
        core.set_cheat(config.cheat);
        let (tx, requests) = mpsc::channel(64);
        let (relay_tx, relay_events) = mpsc::unbounded_channel();
        let relay = relays.connect(RelayContext {
            identity: config.identity.clone(),
            events: relay_tx,
            keys: store.queue_keys()?,
            random: Arc::clone(&config.random),
        })?;
        let runtime = Runtime::new(core, store, relay, requests, relay_events, &config)?;
        let shared = runtime.shared();
        let span = tracing::info_span!("agent", identity = %config.identity);
        tokio::spawn(tracing::Instrument::instrument(runtime.run(), span));
        Ok(Self { tx, shared })
    }

    /// Why the agent has stopped: [`Error::StoreFailed`] with the cause if a
    /// store failure stopped it, else [`Error::Stopped`].
    pub fn stopped_error(&self) -> Error {
        match self.shared.failure.borrow().clone() {
            Some(cause) => Error::StoreFailed(cause),
            None => Error::Stopped,
        }
    }

    /// Waits until the agent's runtime has stopped (shut down, or stopped by
    /// a store failure) and returns why ([`Agent::stopped_error`]).
    pub async fn stopped(&self) -> Error {
        let mut failure = self.shared.failure.clone();
        while failure.changed().await.is_ok() {}
        self.stopped_error()
    }

    /// Runs a core command and returns its response.
    pub async fn command(&self, command: Command) -> Result<Event, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command { command, reply })
            .await
            .map_err(|_| self.stopped_error())?;
        rx.await.map_err(|_| self.stopped_error())
    }

    async fn expect_ok(&self, command: Command) -> Result<String, Error> {
        match self.command(command).await? {
            Event::Ok { alias } => Ok(alias),
            Event::Err(e) => Err(Error::Command(e)),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    async fn expect_queued(&self, command: Command) -> Result<u64, Error> {
        match self.command(command).await? {
            Event::Queued { msg_id, .. } => Ok(msg_id),
            Event::Err(e) => Err(Error::Command(e)),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Subscribes to the agent's events: first those not yet confirmed (also
    /// from before a restart), then new ones. Each is confirmed when returned.
    #[allow(clippy::unused_async)] // kept async: callers await it, as when it asked the runtime
    pub async fn events(&self) -> Result<EventStream, Error> {
        self.subscribe(true)
    }

    /// Like [`events`](Self::events), but the caller confirms with
    /// [`confirm`](Self::confirm) once it has handled an event.
    #[allow(clippy::unused_async)] // kept async: callers await it, as when it asked the runtime
    pub async fn events_unconfirmed(&self) -> Result<EventStream, Error> {
        self.subscribe(false)
    }

    fn subscribe(&self, auto_confirm: bool) -> Result<EventStream, Error> {
        if self.tx.is_closed() {
            return Err(self.stopped_error());
        }
        Ok(EventStream {
            agent: self.clone(),
            next: 0,
            auto_confirm,
        })
    }

    /// Marks every event up to `seq` delivered: they are never delivered again.
    pub async fn confirm(&self, seq: u64) {
        let _ = self.tx.send(Request::Confirm(seq)).await;
    }

    /// Envelopes and operations sent so far by this run of the agent.
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Metrics(tx))
            .await
            .map_err(|_| self.stopped_error())?;
        rx.await.map_err(|_| self.stopped_error())
    }

    /// The other members of `group` this agent is connected with.
    pub async fn members(&self, group: &str) -> Result<Vec<MemberId>, Error> {
        let group = group.to_owned();
        self.query(move |core| core.members(&group)).await
    }

    /// This agent's member id in `group`.
    pub async fn member_id(&self, group: &str) -> Result<Option<MemberId>, Error> {
        let group = group.to_owned();
        self.query(move |core| core.member_id(&group)).await
    }

    /// Runs a read-only query on the core state: answered after what was
    /// handled before it is committed, so the answer never shows state that
    /// could still be lost.
    pub(crate) async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&CoreAgent) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let q: crate::runtime::QueryFn = Box::new(move |core| {
            let v = f(core);
            Box::new(move || {
                let _ = tx.send(v);
            })
        });
        self.tx
            .send(Request::Query(q))
            .await
            .map_err(|_| self.stopped_error())?;
        rx.await.map_err(|_| self.stopped_error())
    }

    /// Every group: alias, ids, member counts, state.
    pub async fn group_statuses(&self) -> Result<Vec<GroupStatus>, Error> {
        self.query(CoreAgent::group_statuses).await
    }

    /// The other members of `group` (pending, connected, full, left): state,
    /// relays, last message ids each way, integrity point.
    pub async fn member_statuses(&self, group: &str) -> Result<Vec<MemberStatus>, Error> {
        let group = group.to_owned();
        self.query(move |c| c.member_statuses(&group))
            .await?
            .map_err(Error::Command)
    }

    /// The client-visible pairwise connections.
    pub async fn conn_statuses(&self) -> Result<Vec<ConnStatus>, Error> {
        self.query(CoreAgent::conn_statuses).await
    }

    /// Group invitations received and waiting for [`Agent::join`].
    pub async fn pending_invitations(&self) -> Result<Vec<PendingInvitation>, Error> {
        self.query(CoreAgent::pending_invitations).await
    }

    /// Membership changes waiting for the client's decision.
    pub async fn pending_approvals(&self) -> Result<Vec<PendingApproval>, Error> {
        self.query(CoreAgent::pending_approvals).await
    }

    /// Our messages in `group` not yet sent to or received by every member.
    pub async fn pending_sends(&self, group: &str) -> Result<Vec<PendingSend>, Error> {
        let group = group.to_owned();
        self.query(move |c| c.pending_sends(&group))
            .await?
            .map_err(Error::Command)
    }

    /// The signed receipts we hold for message `ext_msg_id` of `sender` in
    /// `group` (ours if `None`), and the members missing from them.
    pub async fn delivery_proof(
        &self,
        group: &str,
        sender: Option<MemberId>,
        ext_msg_id: u64,
    ) -> Result<DeliveryProof, Error> {
        let group = group.to_owned();
        self.query(move |c| c.delivery_proof(&group, sender, ext_msg_id))
            .await?
            .map_err(Error::Command)
    }

    /// The integrity state of `group`: check schedule, each member's last
    /// check and chain, violations not resolved.
    pub async fn integrity_status(&self, group: &str) -> Result<IntegrityStatus, Error> {
        let group = group.to_owned();
        self.query(move |c| c.integrity_status(&group))
            .await?
            .map_err(Error::Command)
    }

    /// Sends our `G_CHECK` to every connected member of `group` now.
    pub async fn check(&self, group: &str) -> Result<(), Error> {
        self.expect_ok(Command::Check {
            group: group.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Runs the agent's timers now, as if the next one had expired: retries
    /// and expiries that are due, and `G_CHECK`s that are due by time or by
    /// message count (the core looks at the count only when a timer runs).
    /// Returns once what they did is committed.
    pub async fn run_timers(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::RunTimers(tx))
            .await
            .map_err(|_| self.stopped_error())?;
        rx.await.map_err(|_| self.stopped_error())
    }

    /// Stops the agent between two inputs (the inputs it has handled are
    /// committed and acted on first, as when they are handled one by one; no
    /// input is taken after this), and waits until its store is closed.
    /// Other handles then fail with [`Error::Stopped`].
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Creates a pairwise connection; its invitation arrives as an `INV` event.
    /// Returns the connection's alias.
    pub async fn new_connection(&self, alias: Option<&str>) -> Result<String, Error> {
        self.expect_ok(Command::NewConn {
            alias: alias.map(str::to_owned),
        })
        .await
    }

    /// Joins a pairwise connection with an invitation (as `INV` gave it,
    /// decoded). Returns the connection's alias.
    pub async fn join_connection(
        &self,
        alias: Option<&str>,
        invitation: Vec<u8>,
    ) -> Result<String, Error> {
        self.expect_ok(Command::JoinConn {
            alias: alias.map(str::to_owned),
            invitation,
            info: Vec::new(),
        })
        .await
    }

    /// Creates a group; returns its alias.
    pub async fn create_group(&self, alias: Option<&str>, info: &[u8]) -> Result<String, Error> {
        self.expect_ok(Command::NewGroup {
            alias: alias.map(str::to_owned),
            info: info.to_vec(),
        })
        .await
    }

    /// Invites the peer of connection `conn` to `group`.
    pub async fn invite(&self, conn: &str, group: &str, info: &[u8]) -> Result<(), Error> {
        self.expect_ok(Command::Intro {
            conn: conn.to_owned(),
            group: group.to_owned(),
            info: info.to_vec(),
        })
        .await
        .map(drop)
    }

    /// Accepts a group invitation (the id from a `REQ` event); returns the
    /// group's alias.
    pub async fn join(&self, alias: Option<&str>, invitation: &str) -> Result<String, Error> {
        self.expect_ok(Command::JoinGroup {
            alias: alias.map(str::to_owned),
            invitation: invitation.to_owned(),
        })
        .await
    }

    /// Refuses a group invitation (the id from a `REQ` event): it is
    /// forgotten (`RJCT`).
    pub async fn reject(&self, invitation: &str) -> Result<(), Error> {
        self.expect_ok(Command::RejectInvitation {
            invitation: invitation.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Sends a message to the group; returns its local id (named by the
    /// `SENT` and `RCVD` events).
    pub async fn send(&self, group: &str, body: &[u8]) -> Result<u64, Error> {
        self.expect_queued(Command::Send {
            group: group.to_owned(),
            body: body.to_vec(),
        })
        .await
    }

    /// Sends a direct message to one member of the group, on the hidden
    /// connection with it (not a group message: no other member sees it);
    /// returns its local id, named by the `DirectSent`, `DirectRcvd` and
    /// `DirectFailed` events. Refused ([`Error::Command`]) for a member we do
    /// not know, one not connected yet, or one that left.
    pub async fn send_direct(
        &self,
        group: &str,
        member: MemberId,
        body: &[u8],
    ) -> Result<u64, Error> {
        match self
            .command(Command::DirectSend {
                group: group.to_owned(),
                member,
                body: body.to_vec(),
            })
            .await?
        {
            Event::DirectQueued { msg_id, .. } => Ok(msg_id),
            Event::Err(e) => Err(Error::Command(e)),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Acknowledges a received group or direct message (sends the receipt).
    pub async fn ack(&self, group: &str, msg_id: u64) -> Result<(), Error> {
        self.expect_ok(Command::Ack {
            group: group.to_owned(),
            msg_id,
        })
        .await
        .map(drop)
    }

    /// Leaves the group.
    pub async fn leave(&self, group: &str) -> Result<(), Error> {
        self.expect_ok(Command::Leave {
            group: group.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Removes a member from the group.
    pub async fn remove(&self, group: &str, member: MemberId) -> Result<(), Error> {
        self.expect_ok(Command::Remove {
            group: group.to_owned(),
            member,
        })
        .await
        .map(drop)
    }

    /// Deletes the group.
    pub async fn delete(&self, group: &str) -> Result<(), Error> {
        self.expect_ok(Command::Delete {
            group: group.to_owned(),
        })
        .await
        .map(drop)
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Self::Command(e)
    }
}
