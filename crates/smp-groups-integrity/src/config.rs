//! Configuration: the `G_CHECK` schedule and the memory bounds.

use serde::{Deserialize, Serialize};
use smp_groups_wire::agent::{GroupId, MAX_GCHECK_ENTRIES};

use crate::serde_ids;

/// The most members a group can have: one `G_CHECK` entry each, ourselves included.
pub const MAX_MEMBERS: usize = MAX_GCHECK_ENTRIES;

/// Integrity settings of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The group id (the same for every member); part of every chain's genesis and
    /// of every receipt signature.
    #[serde(with = "serde_ids::group")]
    pub group_id: GroupId,
    /// Send a `G_CHECK` this many milliseconds after the previous one (`None`: no
    /// time trigger).
    pub check_interval_ms: Option<u64>,
    /// Send a `G_CHECK` once this many group messages were sent or received since
    /// the previous one (`None`: no count trigger).
    pub check_every_messages: Option<u64>,
    /// How long, in milliseconds, a member that is behind another's check is given
    /// to catch up before it is a violation. Must be at least twice the largest
    /// delivery delay tolerated, and at most the check interval minus that delay
    /// for detection within two rounds (see `docs/integrity.md`).
    pub lag_grace_ms: u64,
    /// How many recent chain points are kept per sender to compare `G_CHECK`
    /// entries and receipts against (memory: 72 bytes a point).
    pub window: usize,
    /// How many messages past a gap are held per sender, waiting for the gap to
    /// fill (memory: 40 bytes each); further ones are refused.
    pub max_held: usize,
    /// The most members (ourselves included), at most [`MAX_MEMBERS`].
    pub max_members: usize,
}

impl Config {
    /// Defaults: a check every 60 s or every 100 messages, 60 s grace, a window
    /// of 256 points and 256 held messages per sender, 64 members.
    pub fn new(group_id: GroupId) -> Self {
        Self {
            group_id,
            check_interval_ms: Some(60_000),
            check_every_messages: Some(100),
            lag_grace_ms: 60_000,
            window: 256,
            max_held: 256,
            max_members: 64,
        }
    }
}
