//! What `cargo xtask ci` needs besides the Rust toolchain, installed when it
//! is missing: rustfmt and clippy, the OpenSSL headers (the TLS cross-check
//! tests link OpenSSL as an independent peer) and cargo-fuzz. Each step says
//! what it installs; a step that cannot install says what to do instead.

use std::process::Command;

use crate::{has_cargo_subcommand, run};

/// Installs whatever of the CI's tools is missing.
pub(crate) fn ensure_ci_tools() -> Result<(), String> {
    components()?;
    openssl_headers()?;
    if !has_cargo_subcommand("fuzz") {
        eprintln!("xtask: cargo-fuzz is missing; installing it (about 90 s)");
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    Ok(())
}

fn components() -> Result<(), String> {
    if has_cargo_subcommand("fmt") && has_cargo_subcommand("clippy") {
        return Ok(());
    }
    eprintln!("xtask: rustfmt or clippy is missing; adding the components");
    run("rustup", &["component", "add", "rustfmt", "clippy"])
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl_headers() -> Result<(), String> {
    if succeeds("pkg-config", &["--exists", "openssl"]) {
        return Ok(());
    }
    if !succeeds("apt-get", &["--version"]) {
        return Err(
            "the OpenSSL headers and pkg-config are missing and this is not a Debian-like \
             machine: install them (for example libssl-dev and pkg-config) and run again"
                .into(),
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let (program, prefix): (&str, &[&str]) = if root {
        ("apt-get", &[])
    } else if succeeds("sudo", &["-n", "true"]) {
        ("sudo", &["apt-get"])
    } else {
        return Err(
            "the OpenSSL headers are missing: run `sudo apt-get install libssl-dev \
                    pkg-config` and run again"
                .into(),
        );
    };
    eprintln!("xtask: the OpenSSL headers are missing; installing libssl-dev and pkg-config");
    let with = |rest: &[&'static str]| -> Vec<&str> {
        prefix.iter().copied().chain(rest.iter().copied()).collect()
    };
    run(program, &with(&["update", "-qq"]))?;
    run(
        program,
        &with(&["install", "-y", "-qq", "libssl-dev", "pkg-config"]),
    )
}
