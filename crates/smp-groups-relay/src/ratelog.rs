//! Counting refusals and logging them without a storm: the first of a kind is
//! logged at once, later ones at most once per interval with how many there
//! were since the last line.

use std::time::{Duration, Instant};

/// How often a kind of refusal is logged at most.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// One kind of refusal: a running count and when it was last logged.
#[derive(Debug, Default)]
pub(crate) struct RateLog {
    total: u64,
    unlogged: u64,
    last: Option<Instant>,
}

impl RateLog {
    /// Counts one; returns `Some(n)` when a line should be logged now, `n`
    /// being how many happened since the last line (this one included).
    pub(crate) fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    /// [`RateLog::hit`] at time `now`.
    pub(crate) fn hit_at(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        self.unlogged += 1;
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_INTERVAL);
        if due {
            self.last = Some(now);
            let n = self.unlogged;
            self.unlogged = 0;
            Some(n)
        } else {
            None
        }
    }

    /// How many were counted in all.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_the_count() {
        let mut r = RateLog::default();
        let t0 = Instant::now();
        assert_eq!(r.hit_at(t0), Some(1));
        for i in 1..100 {
            assert_eq!(r.hit_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(r.hit_at(t0 + LOG_INTERVAL), Some(100));
        assert_eq!(r.total(), 101);
    }
}
