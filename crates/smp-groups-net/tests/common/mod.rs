//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smp-groups-net-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Counts the plaintext ClientHello records in bytes a TLS client sent.
pub fn count_client_hellos(mut sent: &[u8]) -> usize {
    let mut n = 0;
    while sent.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([sent[3], sent[4]]));
        let Some(fragment) = sent.get(5..5 + len) else {
            break;
        };
        if sent[0] == 22 && fragment.first() == Some(&1) {
            n += 1;
        }
        sent = &sent[5 + len..];
    }
    n
}
