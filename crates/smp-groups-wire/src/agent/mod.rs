//! Agent envelopes (agent <-> agent), carried end to end inside SMP message bodies.
