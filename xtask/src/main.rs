//! `cargo xtask`: the project's automation, so that CI and developers run the
//! same steps. Run `cargo xtask help` for the list.
#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};

mod setup;
mod vectors;

const HELP: &str = "\
cargo xtask <task>

tasks:
  ci            what CI runs: installs what is missing (rustfmt, clippy, the OpenSSL
                headers, cargo-fuzz), then fmt --check, clippy -D warnings, the vectors,
                the library crates' packages, a fuzz smoke run and the tests
  test          the test suite: the detection tests (feature `cheat`), then the
                workspace (cargo nextest when installed, else cargo test)
  vectors FILE  run every known-answer vector of FILE (format smp-vectors/1)
  fuzz [SECS]   every fuzz target for SECS seconds each (default 60), no sanitizer
  bench [ARGS]  every criterion benchmark of the workspace (ARGS go to the benches,
                e.g. `cargo xtask bench relay` runs those whose name contains relay:
                the relay's loopback throughput, and in relay_cpu / relay_clients_cpu
                the CPU time per message of the relay alone and of its clients);
                reports land in target/criterion
  bench-mls [ARGS]
                group operations side by side with OpenMLS and mls-rs, one thread
                (bench/mls-compare; writes its results/costs.csv and costs.svg;
                ARGS go to it, e.g. `--sizes 8,32 --iters-msg 10`)
  help          this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("vectors") => match args.get(1) {
            Some(file) => vectors::run_file(file).and_then(|ok| {
                if ok {
                    Ok(())
                } else {
                    Err("some vectors failed".into())
                }
            }),
            None => Err("usage: cargo xtask vectors FILE".into()),
        },
        Some("fuzz") => fuzz(args.get(1).map_or(Ok(60), |s| s.parse()).unwrap_or(60)),
        Some("bench") => bench(&args[1..]),
        Some("bench-mls") => bench_mls(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Criterion benches of every crate, release profile; `filter` is passed to
/// criterion (a name filter and its options).
fn bench(filter: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--workspace", "--benches"];
    if !filter.is_empty() {
        args.push("--");
        args.extend(filter.iter().map(String::as_str));
    }
    run("cargo", &args)
}

/// The MLS comparison (`bench/mls-compare`, its own workspace and target
/// directory), release profile, on one thread.
fn bench_mls(extra: &[String]) -> Result<(), String> {
    let mut args = vec![
        "run",
        "--release",
        "--manifest-path",
        "bench/mls-compare/Cargo.toml",
        "--",
    ];
    args.extend(extra.iter().map(String::as_str));
    eprintln!("+ RAYON_NUM_THREADS=1 cargo {}", args.join(" "));
    let status = Command::new("cargo")
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .status()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed: {status}", args.join(" ")))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {status}", args.join(" ")))
    }
}

fn has_cargo_subcommand(name: &str) -> bool {
    Command::new("cargo")
        .args([name, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Everything CI checks. The test run comes last so that its summary is the
/// closing line of the output.
fn ci() -> Result<(), String> {
    setup::ensure_ci_tools()?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["xtask", "vectors", "testdata/smp-vectors.json"])?;
    // Each library crate can be taken alone: its package (manifest, README,
    // the files it needs) is complete. `cargo package --workspace --exclude
    // xtask` without `--no-verify` also builds each from its package.
    run(
        "cargo",
        &[
            "package",
            "--workspace",
            "--exclude",
            "xtask",
            "--no-verify",
            "--allow-dirty",
        ],
    )?;
    fuzz(10)?;
    test()
}

fn test() -> Result<(), String> {
    // The detection tests need the `cheat` feature, which no build people use
    // has; they run on their own, before the workspace run.
    run(
        "cargo",
        &[
            "test",
            "-p",
            "smp-groups-core",
            "--features",
            "sim,cheat",
            "--test",
            "cheat",
        ],
    )?;
    run(
        "cargo",
        &[
            "test",
            "-p",
            "smp-groups-agent",
            "--features",
            "cheat",
            "--test",
            "cheat",
        ],
    )?;
    if has_cargo_subcommand("nextest") {
        // nextest does not run doc tests; run them first so nextest's summary closes.
        run("cargo", &["test", "--workspace", "--doc"])?;
        run(
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )
    } else {
        run("cargo", &["test", "--workspace", "--no-fail-fast"])
    }
}

fn fuzz_targets() -> Result<Vec<String>, String> {
    let dir = std::path::Path::new("fuzz/fuzz_targets");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            out.push(stem.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn fuzz(secs: u64) -> Result<(), String> {
    if !std::path::Path::new("fuzz/fuzz_targets").exists() {
        eprintln!("xtask: no fuzz targets yet");
        return Ok(());
    }
    if !has_cargo_subcommand("fuzz") {
        return Err("cargo-fuzz is not installed: cargo install cargo-fuzz --locked".into());
    }
    let time = format!("-max_total_time={secs}");
    for target in fuzz_targets()? {
        // New inputs go to fuzz/corpus/TARGET (ignored by git); the seeds in
        // fuzz/seeds/TARGET (real certificate chains, say) are read too.
        let corpus = format!("fuzz/corpus/{target}");
        let seeds = format!("fuzz/seeds/{target}");
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{corpus}: {e}"))?;
        let mut args = vec!["fuzz", "run", "-s", "none", &target, &corpus];
        if std::path::Path::new(&seeds).is_dir() {
            args.push(&seeds);
        }
        args.extend(["--", &time]);
        run("cargo", &args)?;
    }
    Ok(())
}
