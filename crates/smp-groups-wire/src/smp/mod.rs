//! SMP (agent <-> relay), byte-exact with the reference implementation.
