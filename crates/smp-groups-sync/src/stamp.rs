//! Hybrid logical clock stamps.

use std::fmt;

use crate::error::Error;
use crate::limits::{MAX_DEVICE_LEN, MAX_DRIFT_MS};

/// A device's id: 1 to [`MAX_DEVICE_LEN`] bytes, unique in the group (the
/// agent's member id in the group is used).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(Vec<u8>);

impl DeviceId {
    /// A device id of `bytes`.
    pub fn new(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() > MAX_DEVICE_LEN {
            return Err(Error::Invalid("device id length"));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// When and by whom a key was written. Stamps are totally ordered:
/// by wall time, then counter, then device id (bytewise).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, as the writer's hybrid clock read.
    pub wall_ms: u64,
    /// Orders writes within one millisecond.
    pub counter: u32,
    /// The writer.
    pub device: DeviceId,
}

/// A hybrid logical clock: never behind the physical time passed in, never
/// behind a stamp it has seen (up to [`MAX_DRIFT_MS`] ahead of the time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Clock {
    /// Its wall part.
    pub wall_ms: u64,
    /// Its counter.
    pub counter: u32,
}

impl Clock {
    /// Advances for a local write at physical time `now` and returns the
    /// reading: greater than every reading before it.
    pub fn tick(&mut self, now: u64) -> Self {
        if now > self.wall_ms {
            self.wall_ms = now;
            self.counter = 0;
        } else if self.counter == u32::MAX {
            self.wall_ms = self.wall_ms.saturating_add(1);
            self.counter = 0;
        } else {
            self.counter += 1;
        }
        *self
    }

    /// Moves past a stamp seen at physical time `now` (not further than
    /// [`MAX_DRIFT_MS`] ahead of `now`).
    pub fn observe(&mut self, stamp: &Stamp, now: u64) {
        let cap = now.saturating_add(MAX_DRIFT_MS);
        let seen = if stamp.wall_ms > cap {
            Self {
                wall_ms: cap,
                counter: 0,
            }
        } else {
            Self {
                wall_ms: stamp.wall_ms,
                counter: stamp.counter,
            }
        };
        if seen > *self {
            *self = seen;
        }
    }
}
