//! `smp-sync`: device and profile synchronisation over an smp-groups group.
//!
//! `smp-sync demo` runs the scripted demo ([`smp_groups_sync::demo`]): three
//! devices of one person on two embedded relays, concurrent profile edits
//! while one device is stopped, its catch-up, and a late joiner's snapshot.
//! Exits 0 only if every device converged.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("demo") {
        eprintln!("usage: smp-sync demo");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(smp_groups_sync::demo::run(true)) {
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
