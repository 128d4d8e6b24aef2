//! Time: a value passed in by the caller, never read from a clock.

pub use smp_groups_integrity::Timestamp;
