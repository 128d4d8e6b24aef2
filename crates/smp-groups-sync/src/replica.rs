//! The replicated document: a sans-IO replica that turns local edits into
//! update messages and merges received messages, whatever their order.
//!
//! Merge rule: every key holds the write with the greatest
//! `(stamp, value)`; stamps are hybrid logical clock readings with the
//! writing device as tie-break ([`Stamp`]), a deletion is a write of no
//! value (a tombstone, kept). Taking the maximum is commutative,
//! associative and idempotent, so replicas that have merged the same set of
//! writes hold the same document, in any order and with any duplicates.

use std::collections::BTreeMap;

use prost::Message as _;

use crate::error::Error;
use crate::key::{Key, Namespace, ProfileField};
use crate::limits::{
    MAX_DOCUMENT_BYTES, MAX_ENTRIES, MAX_MESSAGE_LEN, MAX_SNAPSHOT_PARTS, MAX_STATE_LEN,
    REMOTE_FACTOR,
};
use crate::proto;
use crate::stamp::{Clock, DeviceId, Stamp};

/// The format version of [`Replica::encode_state`].
pub const STATE_VERSION: u32 = 1;

/// One key's latest write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When and by whom.
    pub stamp: Stamp,
    /// The value; `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

impl Entry {
    /// True if `self` wins over `other` by the merge rule.
    fn beats(&self, other: &Self) -> bool {
        (&self.stamp, &self.value) > (&other.stamp, &other.value)
    }
}

/// A change of a key's visible value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Key,
    /// Its new value; `None`: deleted.
    pub value: Option<Vec<u8>>,
    /// Whether a local edit made it.
    pub local: bool,
}

/// What a received message was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Keys whose visible value changed.
    pub changes: Vec<Change>,
    /// Entries dropped: outside their bounds, or for a new key in a document
    /// beyond the remote bounds.
    pub dropped: usize,
    /// Entries that replaced the one held (or were new): the replica's state
    /// changed, visibly or not (a newer tombstone over a tombstone).
    pub merged: usize,
    /// It was a snapshot (part `.0` of `.1`).
    pub snapshot: Option<(u32, u32)>,
    /// It was a request for a snapshot from the device named here.
    pub snapshot_request: Option<Vec<u8>>,
}

/// The visible profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// The display name.
    pub display_name: Option<String>,
    /// The bio.
    pub bio: Option<String>,
    /// The image bytes.
    pub image: Option<Vec<u8>>,
    /// Preferences.
    pub preferences: BTreeMap<String, Vec<u8>>,
}

/// One device's copy of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    device: DeviceId,
    clock: Clock,
    entries: BTreeMap<Key, Entry>,
    /// Sum of the encoded lengths of the entries.
    bytes: usize,
}

fn entry_to_proto(key: &Key, e: &Entry) -> proto::Entry {
    proto::Entry {
        namespace: key.namespace.to_i32(),
        name: key.name.clone(),
        stamp: Some(stamp_to_proto(&e.stamp)),
        value: e.value.clone(),
    }
}

fn stamp_to_proto(s: &Stamp) -> proto::Stamp {
    proto::Stamp {
        wall_ms: s.wall_ms,
        counter: s.counter,
        device: s.device.as_bytes().to_vec(),
    }
}

/// A received entry, checked: its key, value and stamp within bounds.
fn entry_from_proto(e: proto::Entry) -> Result<(Key, Entry), Error> {
    let namespace = Namespace::from_i32(e.namespace).ok_or(Error::Invalid("namespace"))?;
    let stamp = e.stamp.ok_or(Error::Missing("entry stamp"))?;
    let key = Key {
        namespace,
        name: e.name,
    };
    key.check(e.value.as_deref())?;
    let entry = Entry {
        stamp: Stamp {
            wall_ms: stamp.wall_ms,
            counter: stamp.counter,
            device: DeviceId::new(&stamp.device)?,
        },
        value: e.value,
    };
    Ok((key, entry))
}

fn encoded_len(key: &Key, e: &Entry) -> usize {
    entry_to_proto(key, e).encoded_len()
}

fn encode(body: proto::sync_message::Body) -> Vec<u8> {
    proto::SyncMessage { body: Some(body) }.encode_to_vec()
}

impl Replica {
    /// An empty document on device `device`.
    pub fn new(device: DeviceId) -> Self {
        Self {
            device,
            clock: Clock::default(),
            entries: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// A replica on `device` that starts from a snapshot message
    /// ([`Replica::snapshot`]) received at time `now`.
    pub fn from_snapshot(device: DeviceId, now: u64, snapshot: &[u8]) -> Result<Self, Error> {
        let mut r = Self::new(device);
        r.apply(now, snapshot)?;
        Ok(r)
    }

    /// This replica's device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The clock's reading.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The visible value of `key`.
    pub fn get(&self, key: &Key) -> Option<&[u8]> {
        self.entries.get(key).and_then(|e| e.value.as_deref())
    }

    /// Every key's latest write, tombstones included, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter()
    }

    /// The visible document: every key with a value.
    pub fn document(&self) -> BTreeMap<Key, Vec<u8>> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// The visible profile.
    pub fn profile(&self) -> Profile {
        let text = |f: ProfileField| {
            self.get(&Key::profile(f))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        Profile {
            display_name: text(ProfileField::DisplayName),
            bio: text(ProfileField::Bio),
            image: self
                .get(&Key::profile(ProfileField::Image))
                .map(<[u8]>::to_vec),
            preferences: self
                .entries
                .iter()
                .filter(|(k, _)| k.namespace == Namespace::Preference)
                .filter_map(|(k, e)| e.value.clone().map(|v| (k.name.clone(), v)))
                .collect(),
        }
    }

    /// Keys held, tombstones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The document's size: the encoded entries, tombstones included.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Merges one checked entry: `None` if the entry held wins, else the
    /// change of the visible value, if any; `Err` if it is for a new key in a
    /// document beyond the remote bounds.
    #[allow(clippy::option_option)] // lost / merged without / with a visible change
    fn merge(
        &mut self,
        key: Key,
        incoming: Entry,
        remote: bool,
    ) -> Result<Option<Option<Change>>, ()> {
        let added = encoded_len(&key, &incoming);
        let (removed, old_value) = match self.entries.get(&key) {
            Some(cur) if !incoming.beats(cur) => return Ok(None),
            Some(cur) => (encoded_len(&key, cur), cur.value.clone()),
            None => {
                if remote
                    && (self.entries.len() >= REMOTE_FACTOR * MAX_ENTRIES
                        || self.bytes + added > REMOTE_FACTOR * MAX_DOCUMENT_BYTES)
                {
                    return Err(());
                }
                (0, None)
            }
        };
        self.bytes = self.bytes + added - removed;
        let changed = old_value != incoming.value;
        let value = incoming.value.clone();
        self.entries.insert(key.clone(), incoming);
        Ok(Some(changed.then_some(Change {
            key,
            value,
            local: !remote,
        })))
    }

    /// Writes `edits` (a value, or `None` to delete) at physical time `now`
    /// (ms since the Unix epoch) as one update. Returns the update message to
    /// send to the group and the visible changes. Refused, and nothing
    /// changed, if a key or value is out of bounds or the document would
    /// exceed its bounds.
    pub fn edit(
        &mut self,
        now: u64,
        edits: Vec<(Key, Option<Vec<u8>>)>,
    ) -> Result<(Vec<u8>, Vec<Change>), Error> {
        if edits.is_empty() {
            return Err(Error::Invalid("an update without edits"));
        }
        for (k, v) in &edits {
            k.check(v.as_deref())?;
        }
        let at = self.clock.tick(now);
        let stamp = Stamp {
            wall_ms: at.wall_ms,
            counter: at.counter,
            device: self.device.clone(),
        };
        // Bounds of the document after the edit.
        let mut size = self.bytes;
        let mut count = self.entries.len();
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in &edits {
            if !seen.insert(k) {
                return Err(Error::Invalid("a key twice in one update"));
            }
            let e = Entry {
                stamp: stamp.clone(),
                value: v.clone(),
            };
            size += encoded_len(k, &e);
            match self.entries.get(k) {
                Some(cur) => size -= encoded_len(k, cur),
                None => count += 1,
            }
        }
        if size > MAX_DOCUMENT_BYTES && size > self.bytes {
            return Err(Error::DocumentFull("bytes"));
        }
        if count > MAX_ENTRIES && count > self.entries.len() {
            return Err(Error::DocumentFull("keys"));
        }
        let mut changes = Vec::new();
        let mut out = Vec::with_capacity(edits.len());
        for (k, v) in edits {
            let e = Entry {
                stamp: stamp.clone(),
                value: v,
            };
            out.push(entry_to_proto(&k, &e));
            if let Ok(Some(Some(c))) = self.merge(k, e, false) {
                changes.push(c);
            }
        }
        let msg = encode(proto::sync_message::Body::Update(proto::Update {
            entries: out,
        }));
        Ok((msg, changes))
    }

    /// Sets `key` to `value` at time `now`; see [`Replica::edit`].
    pub fn set(&mut self, now: u64, key: Key, value: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.edit(now, vec![(key, Some(value))]).map(|(m, _)| m)
    }

    /// Deletes `key` at time `now`; see [`Replica::edit`].
    pub fn delete(&mut self, now: u64, key: Key) -> Result<Vec<u8>, Error> {
        self.edit(now, vec![(key, None)]).map(|(m, _)| m)
    }

    /// Merges a received message (an update or a snapshot part), at physical
    /// time `now`. Entries out of bounds are dropped (counted in
    /// [`Applied::dropped`]); the rest merge. Fields and namespaces this
    /// version does not know are ignored, resp. kept.
    pub fn apply(&mut self, now: u64, message: &[u8]) -> Result<Applied, Error> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(Error::TooLarge {
                what: "sync message",
                len: message.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let msg = proto::SyncMessage::decode(message).map_err(|source| Error::Decode {
            what: "sync message",
            source,
        })?;
        let mut applied = Applied::default();
        let entries = match msg.body.ok_or(Error::Missing("sync message body"))? {
            proto::sync_message::Body::Update(u) => u.entries,
            proto::sync_message::Body::Snapshot(s) => {
                applied.snapshot = Some((s.part, s.parts));
                s.entries
            }
            proto::sync_message::Body::SnapshotRequest(r) => {
                applied.snapshot_request = Some(r.responder);
                Vec::new()
            }
        };
        for e in entries {
            let Ok((key, entry)) = entry_from_proto(e) else {
                applied.dropped += 1;
                continue;
            };
            self.clock.observe(&entry.stamp, now);
            match self.merge(key, entry, true) {
                Ok(Some(change)) => {
                    applied.merged += 1;
                    applied.changes.extend(change);
                }
                Ok(None) => {}
                Err(()) => applied.dropped += 1,
            }
        }
        Ok(applied)
    }

    /// The whole document (tombstones included) as one snapshot message.
    pub fn snapshot(&self) -> Vec<u8> {
        encode(proto::sync_message::Body::Snapshot(proto::Snapshot {
            entries: self
                .entries
                .iter()
                .map(|(k, e)| entry_to_proto(k, e))
                .collect(),
            part: 0,
            parts: 1,
        }))
    }

    /// The snapshot split into messages of at most about `max_len` bytes
    /// each (an entry is never split: one larger than `max_len` goes alone),
    /// at most [`MAX_SNAPSHOT_PARTS`] of them (the last takes the rest).
    pub fn snapshot_parts(&self, max_len: usize) -> Vec<Vec<u8>> {
        self.parts(max_len, false)
    }

    /// Like [`Replica::snapshot_parts`], of the entries this device wrote
    /// (those it holds: its writes that no newer one replaced); none if it
    /// holds none.
    pub fn own_parts(&self, max_len: usize) -> Vec<Vec<u8>> {
        if self.entries.values().all(|e| e.stamp.device != self.device) {
            return Vec::new();
        }
        self.parts(max_len, true)
    }

    fn parts(&self, max_len: usize, own: bool) -> Vec<Vec<u8>> {
        let mut groups: Vec<Vec<proto::Entry>> = vec![Vec::new()];
        let mut len = 0;
        let max_parts = MAX_SNAPSHOT_PARTS as usize;
        for (k, e) in &self.entries {
            if own && e.stamp.device != self.device {
                continue;
            }
            let p = entry_to_proto(k, e);
            // Entry tag, length prefix and the entry itself.
            let n = p.encoded_len() + 8;
            if len + n > max_len && len > 0 && groups.len() < max_parts {
                groups.push(Vec::new());
                len = 0;
            }
            len += n;
            if let Some(g) = groups.last_mut() {
                g.push(p);
            }
        }
        let parts = u32::try_from(groups.len()).unwrap_or(MAX_SNAPSHOT_PARTS);
        groups
            .into_iter()
            .zip(0..)
            .map(|(entries, part)| {
                encode(proto::sync_message::Body::Snapshot(proto::Snapshot {
                    entries,
                    part,
                    parts,
                }))
            })
            .collect()
    }

    /// A message asking device `responder` for a snapshot.
    pub fn snapshot_request(responder: &DeviceId) -> Vec<u8> {
        encode(proto::sync_message::Body::SnapshotRequest(
            proto::SnapshotRequest {
                responder: responder.as_bytes().to_vec(),
            },
        ))
    }

    /// The replica's state for its device's storage.
    pub fn encode_state(&self) -> Vec<u8> {
        proto::ReplicaState {
            version: STATE_VERSION,
            device: self.device.as_bytes().to_vec(),
            clock: Some(proto::Stamp {
                wall_ms: self.clock.wall_ms,
                counter: self.clock.counter,
                device: Vec::new(),
            }),
            entries: self
                .entries
                .iter()
                .map(|(k, e)| entry_to_proto(k, e))
                .collect(),
        }
        .encode_to_vec()
    }

    /// A replica restored from [`Replica::encode_state`].
    pub fn decode_state(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_STATE_LEN {
            return Err(Error::TooLarge {
                what: "replica state",
                len: bytes.len(),
                max: MAX_STATE_LEN,
            });
        }
        let s = proto::ReplicaState::decode(bytes).map_err(|source| Error::Decode {
            what: "replica state",
            source,
        })?;
        if s.version != STATE_VERSION {
            return Err(Error::StateVersion(s.version));
        }
        let clock = s.clock.ok_or(Error::Missing("replica clock"))?;
        let mut r = Self::new(DeviceId::new(&s.device)?);
        r.clock = Clock {
            wall_ms: clock.wall_ms,
            counter: clock.counter,
        };
        for e in s.entries {
            let (key, entry) = entry_from_proto(e)?;
            let len = encoded_len(&key, &entry);
            if r.entries.insert(key, entry).is_some() {
                // `encode_state` writes each key once; the size count would
                // be wrong.
                return Err(Error::Invalid("a key twice in the stored state"));
            }
            r.bytes += len;
        }
        Ok(r)
    }
}
