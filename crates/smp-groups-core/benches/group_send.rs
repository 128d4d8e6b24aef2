//! Placeholder until the group send benchmark lands.
fn main() {}
