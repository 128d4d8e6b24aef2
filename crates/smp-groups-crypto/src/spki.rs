//! DER SubjectPublicKeyInfo for the 32-byte curve keys SMP sends: a fixed
//! 12-byte prefix naming the algorithm, then the raw key (44 bytes in all).

use crate::error::CryptoError;

/// The SPKI of `raw` after `prefix`.
pub(crate) fn encode(prefix: &[u8; 12], raw: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44);
    v.extend_from_slice(prefix);
    v.extend_from_slice(raw);
    v
}

/// The raw key of an SPKI that starts with `prefix`; `what` names the
/// algorithm and `not_spki` the error when the prefix does not match.
pub(crate) fn decode(
    prefix: &[u8; 12],
    der: &[u8],
    what: &'static str,
    not_spki: &'static str,
) -> Result<[u8; 32], CryptoError> {
    let raw = der
        .strip_prefix(&prefix[..])
        .ok_or(CryptoError::InvalidKey {
            what,
            reason: not_spki,
        })?;
    <[u8; 32]>::try_from(raw).map_err(|_| CryptoError::InvalidKey {
        what,
        reason: "DER key is not 32 bytes",
    })
}

#[cfg(test)]
mod tests {
    use crate::{ed25519, x25519};

    #[test]
    fn keys_round_trip_and_the_wrong_algorithm_or_length_is_refused() {
        let ed = ed25519::PublicKey::from_bytes([7; 32]);
        let x = x25519::PublicKey::from_bytes([7; 32]);
        let (ed_der, x_der) = (ed.to_spki_der(), x.to_spki_der());
        assert_eq!((ed_der.len(), x_der.len()), (44, 44));
        assert_ne!(ed_der, x_der);
        assert_eq!(ed25519::PublicKey::from_spki_der(&ed_der).unwrap(), ed);
        assert_eq!(x25519::PublicKey::from_spki_der(&x_der).unwrap(), x);
        assert!(ed25519::PublicKey::from_spki_der(&x_der).is_err());
        assert!(x25519::PublicKey::from_spki_der(&ed_der).is_err());
        assert!(ed25519::PublicKey::from_spki_der(&ed_der[..43]).is_err());
        let mut long = ed_der.clone();
        long.push(0);
        assert!(ed25519::PublicKey::from_spki_der(&long).is_err());
    }
}
