//! Injected randomness.
//!
//! Every function that needs randomness takes `rng: &mut (impl RngCore + CryptoRng)`.
//! Production code passes [`system`]; tests and simulations pass [`seeded`] so runs
//! are reproducible. Long-running components hold a [`RandomSource`] (shared by
//! their tasks) and draw through [`SharedRng`].

pub use rand_chacha::ChaCha20Rng;
pub use rand_core::OsRng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A deterministic ChaCha20 generator seeded from `seed` (tests and simulation only).
pub fn seeded(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The operating system's generator, for production.
pub fn system() -> OsRng {
    OsRng
}

/// Where a long-running component (the agent runtime, the relay) takes its
/// randomness from, shared between its tasks. Production uses
/// [`SystemRandom`]; a test or a reproduction passes [`SeededRandom`].
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&self, dest: &mut [u8]) {
        OsRng.fill_bytes(dest);
    }
}

/// A deterministic ChaCha20 stream from a seed, shared under a lock (tests
/// and reproductions only: every holder draws from the one stream, so the
/// bytes a task gets depend on the order the tasks draw in).
#[derive(Debug)]
pub struct SeededRandom(Mutex<ChaCha20Rng>);

impl SeededRandom {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seeded(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, dest: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(dest);
    }
}

/// A generator drawing from a shared [`RandomSource`], for the functions that
/// take `&mut (impl RngCore + CryptoRng)`.
#[derive(Clone, Debug)]
pub struct SharedRng(pub Arc<dyn RandomSource>);

impl SharedRng {
    /// The system's generator.
    pub fn system() -> Self {
        Self(Arc::new(SystemRandom))
    }
}

impl RngCore for SharedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

/// Only [`SystemRandom`] and [`SeededRandom`] implement [`RandomSource`] here;
/// a caller's own source must be a cryptographic generator too.
impl CryptoRng for SharedRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_source_repeats_its_stream_and_seeds_differ() {
        let draw = |seed| {
            let mut r = SharedRng(Arc::new(SeededRandom::new(seed)));
            let mut b = [0u8; 40];
            r.fill_bytes(&mut b);
            (b, r.next_u64())
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // The shared stream is the plain seeded generator's stream.
        let mut plain = seeded(7);
        let mut b = [0u8; 40];
        plain.fill_bytes(&mut b);
        assert_eq!(draw(7).0, b);
    }

    #[test]
    fn clones_draw_from_one_stream() {
        let mut a = SharedRng(Arc::new(SeededRandom::new(1)));
        let mut b = a.clone();
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
