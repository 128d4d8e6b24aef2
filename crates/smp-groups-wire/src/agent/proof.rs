//! `PROOF`: signed receipts a sender re-broadcasts to the other members, so
//! that each of them can see (and show) that a message reached every member.
//!
//! A unit is one signed receipt as its signer sent it (`RCVD` or `RCVDS`):
//! the signer, the messages it covers with the content hash it received, and
//! the one signature over them. The sender is the member the `PROOF` comes
//! from; the signature covers the group, the sender, the signer and the list
//! (`smp_groups_integrity::receipts_payload`), so a unit is verified with the
//! signer's group signing key alone.

use super::group::MAX_GROUP_RECEIPTS;
use super::ids::{Digest, MemberId, read_u64};
use crate::{Decode, Encode, Error, Reader};

/// The most units in one `PROOF` envelope.
pub const MAX_PROOF_UNITS: usize = 64;

/// One signed receipt kept as proof: `signer` received these messages of the
/// sender with these content hashes, and signed the list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedReceipts {
    /// The member that received the messages and signed.
    pub signer: MemberId,
    /// The sender's group-wide message ids and the content hashes the signer
    /// computed; 1 to [`MAX_GROUP_RECEIPTS`].
    pub receipts: Vec<(u64, Digest)>,
    /// The signer's Ed25519 signature.
    pub sig: [u8; 64],
}

impl SignedReceipts {
    /// Encoded size of a unit with `n` receipts.
    pub const fn encoded_len(n: usize) -> usize {
        MemberId::LEN + 2 + n * (8 + Digest::LEN) + 64
    }
}

impl Encode for SignedReceipts {
    fn encode(&self, out: &mut Vec<u8>) {
        self.signer.encode(out);
        // Encoding writes at most MAX_GROUP_RECEIPTS (a u16); callers split.
        let n = self.receipts.len().min(MAX_GROUP_RECEIPTS);
        out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        for (id, digest) in self.receipts.iter().take(n) {
            out.extend_from_slice(&id.to_be_bytes());
            digest.encode(out);
        }
        out.extend_from_slice(&self.sig);
    }
}

impl<'a> Decode<'a> for SignedReceipts {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let signer = MemberId::decode(r)?;
        let n = usize::from(r.u16("receipt count")?);
        if n == 0 || n > MAX_GROUP_RECEIPTS {
            return Err(Error::TooLong {
                what: "proof receipts",
                len: n,
                max: MAX_GROUP_RECEIPTS,
            });
        }
        let mut receipts = Vec::with_capacity(n.min(r.left() / (8 + Digest::LEN)));
        for _ in 0..n {
            receipts.push((read_u64(r, "extMsgId")?, Digest::decode(r)?));
        }
        Ok(Self {
            signer,
            receipts,
            sig: r.array("signature")?,
        })
    }
}

/// Appends `count(2) unit*` (at most [`MAX_PROOF_UNITS`]; callers split).
pub(crate) fn encode_units(units: &[SignedReceipts], out: &mut Vec<u8>) {
    let n = units.len().min(MAX_PROOF_UNITS);
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
    for u in units.iter().take(n) {
        u.encode(out);
    }
}

/// Reads `count(2) unit*`, 1 to [`MAX_PROOF_UNITS`] units.
pub(crate) fn read_units(r: &mut Reader<'_>) -> Result<Vec<SignedReceipts>, Error> {
    let n = usize::from(r.u16("proof unit count")?);
    if n == 0 || n > MAX_PROOF_UNITS {
        return Err(Error::TooLong {
            what: "proof units",
            len: n,
            max: MAX_PROOF_UNITS,
        });
    }
    let mut units = Vec::with_capacity(n.min(r.left() / SignedReceipts::encoded_len(1)));
    for _ in 0..n {
        units.push(SignedReceipts::decode(r)?);
    }
    Ok(units)
}
