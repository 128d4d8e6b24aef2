//! A minimal bounds-checked DER reader (definite lengths, single-byte tags).

use crate::error::CertError;

/// DER tag of SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// DER tag of INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// DER tag of BIT STRING.
pub(crate) const BIT_STRING: u8 = 0x03;
/// DER tag of OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;
/// DER tag of UTCTime.
pub(crate) const UTC_TIME: u8 = 0x17;
/// DER tag of GeneralizedTime.
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
/// DER tag of the explicit `[0]` version field of a certificate.
pub(crate) const CONTEXT_0: u8 = 0xa0;

/// One element: its tag, its content, and the whole encoding (header and content).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) content: &'a [u8],
    pub(crate) whole: &'a [u8],
}

/// A cursor over DER elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Der<'a> {
    buf: &'a [u8],
}

impl<'a> Der<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The tag of the next element, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// Reads the next element.
    pub(crate) fn next(&mut self) -> Result<Tlv<'a>, CertError> {
        let (&tag, rest) = self
            .buf
            .split_first()
            .ok_or(CertError::Malformed("truncated element"))?;
        if tag & 0x1f == 0x1f {
            return Err(CertError::Malformed("multi-byte tag"));
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or(CertError::Malformed("truncated length"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return Err(CertError::Malformed("unsupported length form"));
            }
            let bytes = rest
                .get(..n)
                .ok_or(CertError::Malformed("truncated length"))?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 || bytes.first() == Some(&0) {
                return Err(CertError::Malformed("non-minimal length"));
            }
            (len, rest.get(n..).unwrap_or_default())
        };
        let content = rest
            .get(..len)
            .ok_or(CertError::Malformed("truncated content"))?;
        let header_len = self.buf.len() - rest.len();
        let whole = self
            .buf
            .get(..header_len + len)
            .ok_or(CertError::Malformed("truncated content"))?;
        self.buf = rest.get(len..).unwrap_or_default();
        Ok(Tlv {
            tag,
            content,
            whole,
        })
    }

    /// Reads the next element and checks its tag.
    pub(crate) fn next_tagged(&mut self, tag: u8) -> Result<Tlv<'a>, CertError> {
        let tlv = self.next()?;
        if tlv.tag == tag {
            Ok(tlv)
        } else {
            Err(CertError::Malformed("unexpected tag"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let mut d = Der::new(&long);
        let t = d.next().unwrap();
        assert_eq!(t.tag, 0x04);
        assert_eq!(t.content.len(), 0x80);
        assert_eq!(t.whole.len(), 0x83);
        assert!(d.is_empty());

        let mut d = Der::new(&[0x02, 0x01, 0x05, 0x30, 0x00]);
        assert_eq!(d.next_tagged(INTEGER).unwrap().content, &[5]);
        assert_eq!(d.peek_tag(), Some(SEQUENCE));
        assert!(d.next_tagged(SEQUENCE).unwrap().content.is_empty());
    }

    #[test]
    fn rejects_bad_encodings() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x80],
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0],
            &[0x30, 0x84, 0, 0, 0, 1, 0],
            &[0x1f, 0x01, 0x00],
            &[0x30, 0x82, 0xff, 0xff],
        ] {
            assert!(Der::new(bad).next().is_err(), "{bad:?}");
        }
        assert!(Der::new(&[0x02, 0x00]).next_tagged(SEQUENCE).is_err());
    }
}
