//! Agent configuration.

use serde::{Deserialize, Serialize};
use smp_groups_crypto::ratchet::RatchetConfig;

/// Settings of one agent. Stored with the agent's state, so a restarted agent keeps
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The relay (server address) on which this agent creates its receive queues.
    pub server: String,
    /// Membership changes (another member adding or removing someone) are applied
    /// without asking the client while the group has at most this many members;
    /// above it the agent asks ([`crate::Event::ApprovalRequired`]).
    pub approval_threshold: usize,
    /// Use the "open invitations" variant: members hand each other invitations up
    /// front, so adding a member needs no `INTRO`/`INV` round.
    pub open_invitations: bool,
    /// The longest group or pairwise message accepted from the client (bytes).
    pub max_message_len: usize,
    /// The double ratchet's settings (fixed ciphertext size, skipped keys).
    pub ratchet: RatchetConfig,
    /// `G_CHECK` every this many milliseconds (`None`: no time trigger).
    pub check_interval_ms: Option<u64>,
    /// `G_CHECK` after this many group messages (`None`: no count trigger).
    pub check_every_messages: Option<u64>,
    /// How many recent chain points per sender `G_CHECK` reconciliation keeps
    /// (and how many held messages past a gap); each point is stored with the
    /// group, so this bounds the group record's size.
    pub check_window: usize,
    /// First delay before a failed relay operation is retried; doubled per attempt.
    pub retry_ms: u64,
    /// Longest delay between retries.
    pub max_retry_ms: u64,
    /// How long the connection with a removed member is still read for the
    /// `OUT`, `REM` and `DEL` it sent before learning of its removal
    /// (concurrent removals, see `docs/groups.md`).
    pub removal_grace_ms: u64,
    /// A member that was invited but did not connect within this time is
    /// dropped (counted from the agent's restart if that is later).
    pub pending_member_ttl_ms: u64,
    /// How receipts for group messages go back to their senders.
    pub receipts: ReceiptPolicy,
    /// History for new members (`crate::HistoryShare`, off by default). Not
    /// in the stored record: given again at every start through
    /// [`Settings`], as `smp-agent serve` does.
    #[serde(skip)]
    pub history: HistoryShare,
}

/// History for new members: the member that adds someone hands it the last
/// group messages it holds, each with its original sender's signature
/// (`docs/groups.md`, "History for new members"). With `messages` 0 (the
/// default) it is off: messages go unsigned (`MSG`) and nothing is kept or
/// handed on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryShare {
    /// The most messages kept per group and handed to a new member; at most
    /// [`crate::HISTORY_SHARE_MAX_MESSAGES`].
    pub messages: u16,
    /// The most content bytes kept per group; at most
    /// [`crate::HISTORY_SHARE_MAX_BYTES`].
    pub bytes: u32,
}

impl HistoryShare {
    /// Whether sharing is on.
    pub fn is_on(&self) -> bool {
        self.messages > 0 && self.bytes > 0
    }

    /// The bounds, each capped at its maximum.
    pub(crate) fn bounds(self) -> (usize, usize) {
        (
            usize::from(self.messages).min(crate::HISTORY_SHARE_MAX_MESSAGES),
            usize::try_from(self.bytes)
                .unwrap_or(usize::MAX)
                .min(crate::HISTORY_SHARE_MAX_BYTES),
        )
    }
}

/// How the receipts for acknowledged group messages are sent (see
/// `docs/groups.md`, "Receipts").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPolicy {
    /// Sign receipts with our group signing key (one signature per envelope).
    pub sign: bool,
    /// Receipts for up to this many acknowledged messages of one sender go in
    /// one envelope (`RCVDS`); 1 sends one `RCVD` per message. At most
    /// 256; 0 counts as 1.
    pub batch: u16,
    /// A receipt waits at most this long for others to share its envelope.
    pub max_delay_ms: u64,
}

impl Default for ReceiptPolicy {
    fn default() -> Self {
        Self {
            sign: true,
            batch: 64,
            max_delay_ms: 2_000,
        }
    }
}

impl ReceiptPolicy {
    /// One signed `RCVD` per message, sent when the client acknowledges it.
    pub const EACH_SIGNED: Self = Self {
        sign: true,
        batch: 1,
        max_delay_ms: 0,
    };

    /// The batch size in use: between 1 and the wire's maximum.
    pub(crate) fn batch_len(&self) -> usize {
        usize::from(self.batch).clamp(1, smp_groups_wire::agent::MAX_GROUP_RECEIPTS)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: "smp://relay.invalid".to_owned(),
            approval_threshold: 64,
            open_invitations: false,
            max_message_len: 1 << 20,
            ratchet: RatchetConfig::default(),
            check_interval_ms: Some(60_000),
            check_every_messages: Some(100),
            check_window: 256,
            retry_ms: 1_000,
            max_retry_ms: 60_000,
            removal_grace_ms: 600_000,
            pending_member_ttl_ms: 24 * 3_600_000,
            receipts: ReceiptPolicy::default(),
            history: HistoryShare::default(),
        }
    }
}

impl Config {
    /// The longest encoded agent message body (`AMessage`) that fits in one
    /// ratchet ciphertext: the plaintext bound minus the message header.
    pub(crate) fn block_payload(&self) -> usize {
        self.ratchet
            .max_plaintext()
            .saturating_sub(smp_groups_wire::agent::AgentMessage::MESSAGE_OVERHEAD)
    }

    /// The fragment size: one block minus the `FRAG` envelope's own fields.
    pub(crate) fn fragment_chunk(&self) -> usize {
        self.block_payload()
            .saturating_sub(smp_groups_wire::agent::Fragment::OVERHEAD)
            .clamp(1, smp_groups_wire::agent::MAX_FRAGMENT_LEN)
    }
}

/// The settings a running or restored agent may change: they apply from the
/// next input on and are stored with the agent. The others ([`Config`]'s
/// relay, open invitations, sizes, ratchet) stay as the agent was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// See [`Config::approval_threshold`].
    pub approval_threshold: usize,
    /// See [`Config::check_interval_ms`].
    pub check_interval_ms: Option<u64>,
    /// See [`Config::check_every_messages`].
    pub check_every_messages: Option<u64>,
    /// See [`Config::receipts`].
    pub receipts: ReceiptPolicy,
    /// See [`Config::history`].
    pub history: HistoryShare,
}

impl Settings {
    /// The settings `config` holds.
    pub fn of(config: &Config) -> Self {
        Self {
            approval_threshold: config.approval_threshold,
            check_interval_ms: config.check_interval_ms,
            check_every_messages: config.check_every_messages,
            receipts: config.receipts,
            history: config.history,
        }
    }

    /// Writes these settings into `config`.
    pub fn apply_to(&self, config: &mut Config) {
        config.approval_threshold = self.approval_threshold;
        config.check_interval_ms = self.check_interval_ms;
        config.check_every_messages = self.check_every_messages;
        config.receipts = self.receipts;
        config.history = self.history;
    }
}
