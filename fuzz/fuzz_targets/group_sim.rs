//! Stateful fuzzing of the group state machine: the fuzzer's input is mapped
//! onto a [`Case`] of the shared scenario model (`smp_groups_core::sim::model`,
//! the one the core property test `tests/properties.rs` uses), within the
//! ranges of that test's strategy: 3 to 8 agents, up to 39 operations (adds,
//! sends, leaves, removals, crashes, runs, deletes, settles), loss and
//! duplicates below 3 %, random delays below 300 ms, open invitations or not,
//! approval threshold 64 or 2 to 5, any seed.
//!
//! [`check`] asserts everything the property test asserts: after the run
//! settles, every holder finished its join and sees exactly the agents that
//! hold the group; whoever lost it was told why and a deleted group is held by
//! nobody; every message reaches exactly once every member that was in when it
//! was sent (and still is), and every send of a member still in completes; no
//! `VIOLATION`, no `FAULT`, no unknown member or group in any event; no input
//! refused as a peer's or the agent's own fault. A failed check panics with its
//! message (it names the seed); the case is printed first.
//! `CORE_PROP_DUMP=1` also prints every agent's events when it fails.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use smp_groups_core::sim::Faults;
use smp_groups_core::sim::model::{Case, Op, Stats, check};

/// One operation; agent numbers are taken modulo the number of agents (the
/// model resolves them against the state when they are applied).
#[derive(Arbitrary, Debug)]
enum FuzzOp {
    Add { by: u8, who: u8 },
    Send { by: u8 },
    DirectSend { by: u8, to: u8 },
    Leave(u8),
    Remove { by: u8, who: u8 },
    Crash(u8),
    Run(u16),
    Delete { by: u8 },
    Settle,
}

#[derive(Arbitrary, Debug)]
struct Input {
    agents: u8,
    loss: u16,
    duplicate: u16,
    delay: u16,
    seed: u64,
    open_invitations: bool,
    /// `None`: 64 (no approvals in groups of up to 8); `Some(t)`: 2 + t % 4.
    approval: Option<u8>,
    ops: Vec<FuzzOp>,
}

/// As the property test's strategy: `vec(op(n), 1..40)`.
const MAX_OPS: usize = 39;

impl Input {
    fn case(&self) -> Case {
        let n = 3 + usize::from(self.agents % 6);
        let a = |i: u8| usize::from(i) % n;
        let ops = self
            .ops
            .iter()
            .take(MAX_OPS)
            .map(|op| match *op {
                FuzzOp::Add { by, who } => Op::Add {
                    by: a(by),
                    who: a(who),
                },
                FuzzOp::Send { by } => Op::Send { by: a(by) },
                FuzzOp::DirectSend { by, to } => Op::DirectSend {
                    by: a(by),
                    to: a(to),
                },
                FuzzOp::Leave(i) => Op::Leave(a(i)),
                FuzzOp::Remove { by, who } => Op::Remove {
                    by: a(by),
                    who: a(who),
                },
                FuzzOp::Crash(i) => Op::Crash(a(i)),
                FuzzOp::Run(ms) => Op::Run(ms % 3000),
                FuzzOp::Delete { by } => Op::Delete { by: a(by) },
                FuzzOp::Settle => Op::Settle,
            })
            .collect();
        Case {
            n,
            ops,
            faults: Faults {
                loss_ppm: u32::from(self.loss) % 30_000,
                duplicate_ppm: u32::from(self.duplicate) % 30_000,
                max_delay_ms: u64::from(self.delay % 300),
            },
            seed: self.seed,
            open_invitations: self.open_invitations,
            approval_threshold: self.approval.map_or(64, |t| 2 + usize::from(t % 4)),
        }
    }
}

fuzz_target!(|input: Input| {
    let case = input.case();
    if let Err(failure) = check(&case, &mut Stats::default()) {
        eprintln!("{case:?}");
        panic!("{failure}");
    }
});
