//! The sync protocol over a group, sans IO: what a device does with its own
//! edits and with the group's events. Both the simulation tests and the
//! async [`crate::SyncDoc`] drive this same code; they carry out the
//! returned [`Action`]s in order.
//!
//! * A local edit is stored, then sent to the group as one message.
//! * A received message is merged, the new state stored, then acknowledged
//!   (so a crash before the store makes the agent deliver it again; merging
//!   it twice changes nothing).
//! * A device that has just joined (its agent reports it connected to all
//!   members) asks one member for a snapshot: the member with the smallest
//!   member id among those it is connected to. That member answers with the
//!   snapshot as a group message (every member merges it; for those already
//!   up to date nothing changes).
//! * The agent sends a group message only to the members it has a
//!   connection with when it is sent: a message sent before a new member's
//!   connection existed never reaches it. So whenever a device gets a new
//!   connection in the group (`CON` of a member), it sends the entries it
//!   wrote itself (those still winning in its replica): every key's winning
//!   write was written by some device, which sends it again this way, and
//!   the snapshot covers the writes of devices that have left.

use crate::error::Error;
use crate::key::Key;
use crate::replica::{Change, Replica};
use crate::stamp::DeviceId;

/// Snapshot parts are cut at this length, below the agent's default
/// `max_message_len` (1 MiB) with room for the group envelope.
pub const SNAPSHOT_PART_LEN: usize = 960 * 1024;

/// Something the driver must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store the replica's state (durably, before the actions after it).
    Persist(Vec<u8>),
    /// Send this body to the group.
    Send(Vec<u8>),
    /// Acknowledge the group message with this local id.
    Ack(u64),
    /// Tell the application about a change.
    Changed(Change),
}

/// Counts of what a session saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages merged (updates and snapshot parts).
    pub merged: u64,
    /// Messages that were not sync messages or did not decode (acknowledged
    /// and dropped).
    pub malformed: u64,
    /// Entries dropped (out of bounds).
    pub dropped_entries: u64,
    /// Snapshot parts received.
    pub snapshots_received: u64,
    /// Snapshots sent (on request).
    pub snapshots_sent: u64,
    /// Times this device sent its own entries to a newly connected member.
    pub own_entries_sent: u64,
    /// Group messages this session sent (updates, snapshot requests,
    /// snapshot parts, own entries).
    pub messages_sent: u64,
    /// Bytes of the bodies of those messages (the protobuf `SyncMessage`s).
    pub bytes_sent: u64,
}

/// One device's sync session on one group.
#[derive(Clone, Debug)]
pub struct Session {
    replica: Replica,
    stats: Stats,
    asked: bool,
}

impl Session {
    /// A session over `replica` (new, or restored from its stored state).
    pub fn new(replica: Replica) -> Self {
        Self {
            replica,
            stats: Stats::default(),
            asked: false,
        }
    }

    /// The replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// What it saw so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Counts the messages `actions` send.
    fn count_sends(&mut self, actions: &[Action]) {
        for a in actions {
            if let Action::Send(body) = a {
                self.stats.messages_sent += 1;
                self.stats.bytes_sent += body.len() as u64;
            }
        }
    }

    /// A local edit at time `now`: store, send, report.
    pub fn edit(
        &mut self,
        now: u64,
        edits: Vec<(Key, Option<Vec<u8>>)>,
    ) -> Result<Vec<Action>, Error> {
        let (msg, changes) = self.replica.edit(now, edits)?;
        let mut out = vec![
            Action::Persist(self.replica.encode_state()),
            Action::Send(msg),
        ];
        out.extend(changes.into_iter().map(Action::Changed));
        self.count_sends(&out);
        Ok(out)
    }

    /// A group message `msg_id` with `body` received at time `now`.
    pub fn on_message(&mut self, now: u64, msg_id: u64, body: &[u8]) -> Vec<Action> {
        let clock = self.replica.clock();
        let mut out = Vec::new();
        match self.replica.apply(now, body) {
            Ok(applied) => {
                self.stats.dropped_entries += applied.dropped as u64;
                if applied.snapshot.is_some() {
                    self.stats.snapshots_received += 1;
                }
                if applied.merged > 0 || self.replica.clock() != clock {
                    self.stats.merged += 1;
                    out.push(Action::Persist(self.replica.encode_state()));
                }
                if applied.snapshot_request.as_deref() == Some(self.replica.device().as_bytes()) {
                    self.stats.snapshots_sent += 1;
                    out.extend(
                        self.replica
                            .snapshot_parts(SNAPSHOT_PART_LEN)
                            .into_iter()
                            .map(Action::Send),
                    );
                }
                out.extend(applied.changes.into_iter().map(Action::Changed));
            }
            Err(e) => {
                tracing::debug!("dropped a group message that is not a sync message: {e}");
                self.stats.malformed += 1;
            }
        }
        out.push(Action::Ack(msg_id));
        self.count_sends(&out);
        out
    }

    /// This device is now connected to a member (a new member, or one this
    /// new device connected to): messages sent before the connection existed
    /// did not reach it, so this device sends the entries it wrote (those
    /// that no newer write replaced) to the group, if it holds any.
    pub fn on_member_connected(&mut self) -> Vec<Action> {
        let parts = self.replica.own_parts(SNAPSHOT_PART_LEN);
        self.stats.own_entries_sent += u64::from(!parts.is_empty());
        let out: Vec<Action> = parts.into_iter().map(Action::Send).collect();
        self.count_sends(&out);
        out
    }

    /// This device is connected to every member of the group (it has just
    /// joined); `members` are the other members' ids. Asks the smallest for
    /// a snapshot, once per session.
    pub fn on_joined(&mut self, members: &[DeviceId]) -> Vec<Action> {
        if self.asked {
            return Vec::new();
        }
        let Some(responder) = members.iter().min() else {
            return Vec::new();
        };
        self.asked = true;
        let out = vec![Action::Send(Replica::snapshot_request(responder))];
        self.count_sends(&out);
        out
    }
}
