//! The parts of an X.509 certificate that SMP identity checks need.

use crate::der::{
    BIT_STRING, CONTEXT_0, Der, GENERALIZED_TIME, INTEGER, OID, SEQUENCE, Tlv, UTC_TIME,
};
use crate::error::CertError;

/// DER content of the OID 1.3.101.112 (Ed25519).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// DER content of the OID 1.3.101.113 (Ed448).
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// A signature algorithm (and key type) that SMP certificates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// Ed25519 (RFC 8410).
    Ed25519,
    /// Ed448 (RFC 8410).
    Ed448,
}

impl Algorithm {
    /// Parses an AlgorithmIdentifier (EdDSA ones have no parameters).
    fn from_identifier(tlv: Tlv<'_>) -> Result<Self, CertError> {
        let mut d = Der::new(tlv.content);
        let oid = d.next_tagged(OID)?;
        if !d.is_empty() {
            return Err(CertError::UnsupportedAlgorithm);
        }
        match oid.content {
            OID_ED25519 => Ok(Self::Ed25519),
            OID_ED448 => Ok(Self::Ed448),
            _ => Err(CertError::UnsupportedAlgorithm),
        }
    }

    /// Verifies `signature` over `message` with the raw public `key`.
    pub(crate) fn verify(
        self,
        key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CertError> {
        match self {
            Self::Ed25519 => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                    .verify(message, signature)
                    .map_err(|_| CertError::BadSignature)
            }
            Self::Ed448 => {
                let key: &[u8; 57] = key.try_into().map_err(|_| CertError::BadSignature)?;
                let sig: &[u8; 114] = signature.try_into().map_err(|_| CertError::BadSignature)?;
                let key = ed448_goldilocks_plus::VerifyingKey::from_bytes(key)
                    .map_err(|_| CertError::BadSignature)?;
                let sig = ed448_goldilocks_plus::Signature::from_bytes(sig)
                    .map_err(|_| CertError::BadSignature)?;
                key.verify_raw(&sig, message)
                    .map_err(|_| CertError::BadSignature)
            }
        }
    }
}

/// A parsed certificate, borrowing from its DER encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cert<'a> {
    /// The signed part (the whole TBSCertificate element).
    pub(crate) tbs: &'a [u8],
    /// The algorithm the issuer signed with.
    pub(crate) signature_algorithm: Algorithm,
    /// The issuer's signature over `tbs`.
    pub(crate) signature: &'a [u8],
    /// The issuer name (whole DER element).
    pub(crate) issuer: &'a [u8],
    /// The subject name (whole DER element).
    pub(crate) subject: &'a [u8],
    /// Start of validity, seconds since the Unix epoch.
    pub(crate) not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The subject key's algorithm.
    pub(crate) key_algorithm: Algorithm,
    /// The raw subject public key.
    pub(crate) public_key: &'a [u8],
}

impl<'a> Cert<'a> {
    /// Parses a DER certificate.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, CertError> {
        let mut outer = Der::new(der);
        let cert = outer.next_tagged(SEQUENCE)?;
        if !outer.is_empty() {
            return Err(CertError::Malformed("trailing bytes"));
        }
        let mut c = Der::new(cert.content);
        let tbs = c.next_tagged(SEQUENCE)?;
        let signature_algorithm = Algorithm::from_identifier(c.next_tagged(SEQUENCE)?)?;
        let signature = bit_string(c.next_tagged(BIT_STRING)?)?;
        if !c.is_empty() {
            return Err(CertError::Malformed("trailing certificate fields"));
        }

        let mut t = Der::new(tbs.content);
        if t.peek_tag() == Some(CONTEXT_0) {
            t.next()?;
        }
        t.next_tagged(INTEGER)?;
        if Algorithm::from_identifier(t.next_tagged(SEQUENCE)?)? != signature_algorithm {
            return Err(CertError::Malformed(
                "inner and outer signature algorithms differ",
            ));
        }
        let issuer = t.next_tagged(SEQUENCE)?.whole;
        let mut validity = Der::new(t.next_tagged(SEQUENCE)?.content);
        let not_before = time(validity.next()?)?;
        let not_after = time(validity.next()?)?;
        let subject = t.next_tagged(SEQUENCE)?.whole;
        let mut spki = Der::new(t.next_tagged(SEQUENCE)?.content);
        let key_algorithm = Algorithm::from_identifier(spki.next_tagged(SEQUENCE)?)?;
        let public_key = bit_string(spki.next_tagged(BIT_STRING)?)?;
        Ok(Self {
            tbs: tbs.whole,
            signature_algorithm,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            key_algorithm,
            public_key,
        })
    }

    /// Checks that `issuer` signed this certificate.
    pub(crate) fn verify_signed_by(&self, issuer: &Cert<'_>) -> Result<(), CertError> {
        if self.issuer != issuer.subject {
            return Err(CertError::IssuerMismatch);
        }
        if issuer.key_algorithm != self.signature_algorithm {
            return Err(CertError::BadSignature);
        }
        issuer
            .key_algorithm
            .verify(issuer.public_key, self.tbs, self.signature)
    }

    /// Checks the validity period against `now` (seconds since the Unix epoch).
    pub(crate) fn check_time(&self, now: i64) -> Result<(), CertError> {
        if self.not_before <= now && now <= self.not_after {
            Ok(())
        } else {
            Err(CertError::NotValidNow)
        }
    }
}

/// The content of a BIT STRING with no unused bits.
fn bit_string(tlv: Tlv<'_>) -> Result<&[u8], CertError> {
    match tlv.content.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(CertError::Malformed("bit string with unused bits")),
    }
}

/// Parses a UTCTime or GeneralizedTime (`...Z` form, seconds precision) to Unix seconds.
fn time(tlv: Tlv<'_>) -> Result<i64, CertError> {
    let bad = CertError::Malformed("bad time");
    let (year, rest) = match tlv.tag {
        UTC_TIME => {
            let yy = digits(tlv.content.get(..2).ok_or(bad.clone())?)?;
            (
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                tlv.content.get(2..),
            )
        }
        GENERALIZED_TIME => (
            digits(tlv.content.get(..4).ok_or(bad.clone())?)?,
            tlv.content.get(4..),
        ),
        _ => return Err(bad),
    };
    let rest = rest.ok_or(bad.clone())?;
    if rest.len() != 11 || rest.get(10) != Some(&b'Z') {
        return Err(bad);
    }
    let field = |i: usize| rest.get(i..i + 2).ok_or(bad.clone()).and_then(digits);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Decimal value of ASCII digits.
fn digits(s: &[u8]) -> Result<i64, CertError> {
    s.iter().try_fold(0i64, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + i64::from(b - b'0'))
        } else {
            Err(CertError::Malformed("bad time"))
        }
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn parses_times() {
        let utc = Tlv {
            tag: UTC_TIME,
            content: b"000301000001Z",
            whole: &[],
        };
        assert_eq!(time(utc).unwrap(), 11_017 * 86_400 + 1);
        let generalized = Tlv {
            tag: GENERALIZED_TIME,
            content: b"40960101000000Z",
            whole: &[],
        };
        assert_eq!(
            time(generalized).unwrap(),
            days_from_civil(4096, 1, 1) * 86_400
        );
        let bad = Tlv {
            tag: UTC_TIME,
            content: b"001301000000Z",
            whole: &[],
        };
        assert!(time(bad).is_err());
        let short = Tlv {
            tag: UTC_TIME,
            content: b"0003010000Z",
            whole: &[],
        };
        assert!(time(short).is_err());
    }
}
