//! Injected randomness.
//!
//! Every function that needs randomness takes `rng: &mut (impl RngCore + CryptoRng)`.
//! Production code passes [`system`]; tests and simulations pass [`seeded`] so runs
//! are reproducible.

pub use rand_chacha::ChaCha20Rng;
pub use rand_core::OsRng;
use rand_core::SeedableRng;

/// A deterministic ChaCha20 generator seeded from `seed` (tests and simulation only).
pub fn seeded(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The operating system's generator, for production.
pub fn system() -> OsRng {
    OsRng
}
