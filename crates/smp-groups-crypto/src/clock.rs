//! Injected wall-clock time.
//!
//! The core takes the time as an argument; the long-running components around
//! it (the agent runtime, the relay) read it from a [`Clock`] they are given,
//! so a test can fix or move time without waiting and a run can be reproduced.
//! Timers still sleep on the async runtime's clock: a [`ManualClock`] moved
//! ahead takes effect at the next wake-up.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn unix_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn unix_secs(&self) -> u64 {
        self.unix_millis() / 1000
    }
}

/// The system's clock (0 if it reads before the epoch).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `unix_millis`.
    pub fn new(unix_millis: u64) -> Self {
        Self(AtomicU64::new(unix_millis))
    }

    /// Sets the time.
    pub fn set(&self, unix_millis: u64) {
        self.0.store(unix_millis, Ordering::SeqCst);
    }

    /// Moves the time ahead by `millis` (saturating).
    pub fn advance(&self, millis: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(millis))
            });
    }
}

impl Clock for ManualClock {
    fn unix_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_700_000_000_123);
        assert_eq!(c.unix_millis(), 1_700_000_000_123);
        assert_eq!(c.unix_secs(), 1_700_000_000);
        c.advance(877);
        assert_eq!(c.unix_millis(), 1_700_000_001_000);
        c.advance(u64::MAX);
        assert_eq!(c.unix_millis(), u64::MAX);
        c.set(5);
        assert_eq!(c.unix_millis(), 5);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.unix_secs() > 1_577_836_800);
    }
}
