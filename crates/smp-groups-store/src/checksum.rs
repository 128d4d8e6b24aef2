//! The checksum kept next to every stored value, so that damaged or truncated
//! bytes are reported instead of being handed on.

/// FNV-1a (64 bit) of `bytes`, as the signed integer SQLite stores.
///
/// Not a cryptographic hash: it guards against accidental damage (a torn or
/// truncated page, a flipped bit, a hand edit), which is all a local store
/// needs; the stored length catches every truncation on its own.
pub(crate) fn checksum(bytes: &[u8]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    i64::from_le_bytes(h.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn known_values() {
        // FNV-1a 64 reference values.
        assert_eq!(
            checksum(b"").to_le_bytes(),
            0xcbf2_9ce4_8422_2325_u64.to_le_bytes()
        );
        assert_eq!(
            checksum(b"a").to_le_bytes(),
            0xaf63_dc4c_8601_ec8c_u64.to_le_bytes()
        );
        assert_eq!(
            checksum(b"foobar").to_le_bytes(),
            0x8594_4171_f739_67e8_u64.to_le_bytes()
        );
    }

    #[test]
    fn truncation_changes_it() {
        let v = b"some record bytes";
        assert_ne!(checksum(v), checksum(&v[..v.len() - 1]));
    }
}
