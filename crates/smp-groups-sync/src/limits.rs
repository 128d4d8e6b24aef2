//! Every bound the crate enforces. Per-entry bounds are checked on every
//! entry, local or received, the same way on every device, so that all
//! replicas keep the same entries (see `docs/sync.md`).

/// Longest device id (the agent's member id is 16 bytes).
pub const MAX_DEVICE_LEN: usize = 32;
/// Longest key name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest value of any key but the profile image.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest display name (UTF-8 bytes).
pub const MAX_DISPLAY_NAME_LEN: usize = 256;
/// Longest bio (UTF-8 bytes).
pub const MAX_BIO_LEN: usize = 4096;
/// Largest profile image: a quarter of the snapshot bound, so that a full
/// profile and other keys fit one group message.
pub const MAX_IMAGE_LEN: usize = 256 * 1024;
/// Largest document (sum of the encoded entries, tombstones included) that
/// local edits may make: a snapshot of it fits one group message of the
/// agent's default `max_message_len` (1 MiB) with room for the envelope.
pub const MAX_DOCUMENT_BYTES: usize = 960 * 1024;
/// Most keys (tombstones included) that local edits may make.
pub const MAX_ENTRIES: usize = 4096;
/// Received entries may make the document this many times larger than the
/// local bounds (concurrent edits on several devices each within the
/// bounds); beyond that, a received entry for a new key is dropped.
pub const REMOTE_FACTOR: usize = 4;
/// Longest sync message accepted (the agent's default `max_message_len`).
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// Longest persisted state accepted.
pub const MAX_STATE_LEN: usize = REMOTE_FACTOR * MAX_DOCUMENT_BYTES + (64 << 10);
/// Most parts a snapshot is split into.
pub const MAX_SNAPSHOT_PARTS: u32 = 64;
/// A received stamp more than this far ahead of our clock still wins its key,
/// but our clock does not follow it further than this.
pub const MAX_DRIFT_MS: u64 = 24 * 3600 * 1000;
