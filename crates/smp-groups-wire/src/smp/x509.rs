//! A minimal DER reader for the X.509 `SIGNED` structure the relay uses for its
//! session key:
//!
//! ```text
//! SignedObject ::= SEQUENCE { tbs ANY, algorithm AlgorithmIdentifier, signature BIT STRING }
//! ```
//!
//! Only definite, minimal lengths and single-byte tags are accepted. Nothing here
//! verifies signatures; it only splits the structure so that a verifier can.

use super::keys::X25519PublicKey;
use crate::{Error, Reader};

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const WHAT: &str = "DER signed object";

/// One DER element: its tag, the whole encoding, and its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag byte.
    pub tag: u8,
    /// Tag, length and contents.
    pub whole: &'a [u8],
    /// The contents.
    pub contents: &'a [u8],
}

/// Reads one DER element from `r`.
pub fn read_tlv<'a>(r: &mut Reader<'a>) -> Result<Tlv<'a>, Error> {
    let all = r.peek_rest();
    let start = r.offset();
    let tag = r.u8(WHAT)?;
    if tag & 0x1f == 0x1f {
        return Err(Error::invalid(WHAT, "multi-byte tags are not supported"));
    }
    let first = r.u8(WHAT)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return Err(Error::invalid(WHAT, "indefinite or oversized length"));
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | usize::from(r.u8(WHAT)?);
        }
        if len < 0x80 || len >> (8 * (n - 1)) == 0 {
            return Err(Error::invalid(WHAT, "non-minimal length"));
        }
        len
    };
    let contents = r.take(len, WHAT)?;
    let consumed = r.offset() - start;
    Ok(Tlv {
        tag,
        whole: &all[..consumed],
        contents,
    })
}

/// Reads exactly one element that must use all of `der`, with tag `tag`.
pub fn parse_single(der: &[u8], tag: u8) -> Result<Tlv<'_>, Error> {
    let mut r = Reader::new(der);
    let t = read_tlv(&mut r)?;
    r.expect_end(WHAT)?;
    if t.tag != tag {
        return Err(Error::unknown_tag(WHAT, &[t.tag]));
    }
    Ok(t)
}

/// The signature algorithm of a signed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// Ed25519 (1.3.101.112).
    Ed25519,
    /// Ed448 (1.3.101.113).
    Ed448,
    /// Another algorithm.
    Other,
}

/// The parts of an X.509 signed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedObject<'a> {
    /// The signed data (its whole DER encoding): what the signature covers.
    pub tbs: &'a [u8],
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The signature bytes (the BIT STRING contents after the unused-bits byte).
    pub signature: &'a [u8],
}

impl<'a> SignedObject<'a> {
    /// Splits a DER signed object.
    pub fn parse(der: &'a [u8]) -> Result<Self, Error> {
        let outer = parse_single(der, SEQUENCE)?;
        let mut r = Reader::new(outer.contents);
        let tbs = read_tlv(&mut r)?;
        let alg = read_tlv(&mut r)?;
        let sig = read_tlv(&mut r)?;
        r.expect_end(WHAT)?;
        if alg.tag != SEQUENCE || sig.tag != BIT_STRING {
            return Err(Error::invalid(
                WHAT,
                "expected AlgorithmIdentifier and BIT STRING",
            ));
        }
        let mut ar = Reader::new(alg.contents);
        let oid = read_tlv(&mut ar)?;
        if oid.tag != OID {
            return Err(Error::invalid(WHAT, "AlgorithmIdentifier without an OID"));
        }
        let algorithm = match oid.contents {
            [0x2b, 0x65, 0x70] => SignatureAlgorithm::Ed25519,
            [0x2b, 0x65, 0x71] => SignatureAlgorithm::Ed448,
            _ => SignatureAlgorithm::Other,
        };
        let Some((0, signature)) = sig.contents.split_first() else {
            return Err(Error::invalid(WHAT, "BIT STRING with unused bits"));
        };
        Ok(Self {
            tbs: tbs.whole,
            algorithm,
            signature,
        })
    }

    /// The signed data read as an X25519 SubjectPublicKeyInfo (the relay's
    /// session key).
    pub fn x25519_key(&self) -> Result<X25519PublicKey, Error> {
        X25519PublicKey::from_der(self.tbs)
    }
}

/// Builds a signed object from its parts (Ed25519 algorithm identifier).
pub fn build_ed25519_signed(tbs: &[u8], signature: &[u8; 64]) -> Vec<u8> {
    let mut body = tbs.to_vec();
    body.extend_from_slice(&[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
    body.extend_from_slice(&[BIT_STRING, 65, 0]);
    body.extend_from_slice(signature);
    let mut out = vec![SEQUENCE];
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    #[allow(clippy::cast_possible_truncation)] // each byte is masked
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len < 0x1_0000 {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    } else {
        out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signed_key_round_trip() {
        let key = X25519PublicKey([4; 32]);
        let der = build_ed25519_signed(&key.to_der(), &[9; 64]);
        let so = SignedObject::parse(&der).unwrap();
        assert_eq!(so.algorithm, SignatureAlgorithm::Ed25519);
        assert_eq!(so.signature, &[9; 64]);
        assert_eq!(so.x25519_key(), Ok(key));
        assert!(SignedObject::parse(&der[..der.len() - 1]).is_err());
        let mut extra = der.clone();
        extra.push(0);
        assert!(matches!(
            SignedObject::parse(&extra),
            Err(Error::TrailingBytes { .. })
        ));
    }

    #[test]
    fn rejects_non_minimal_lengths() {
        assert!(parse_single(&[0x30, 0x81, 0x01, 0x00], SEQUENCE).is_err());
        assert!(parse_single(&[0x30, 0x80], SEQUENCE).is_err());
        assert!(parse_single(&[0x30, 0x00], SEQUENCE).is_ok());
    }
}
