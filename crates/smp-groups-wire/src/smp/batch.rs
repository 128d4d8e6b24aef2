//! Batches: `count:1 || (Word16 length || transmission)*`, 1 to 255 of them,
//! in one block (unpadded here; padding or block encryption is the transport's).

use super::transmission::{TransmissionAuth, encode_auth};
use super::version::{Version, limits};
use crate::{Error, Reader};

/// Encodes a batch of already-encoded transmissions.
pub fn encode_batch<T: AsRef<[u8]>>(transmissions: &[T]) -> Result<Vec<u8>, Error> {
    let n = transmissions.len();
    if n == 0 {
        return Err(Error::invalid("batch", "no transmissions"));
    }
    let count = u8::try_from(n).map_err(|_| Error::TooLong {
        what: "batch",
        len: n,
        max: limits::MAX_BATCH_TRANSMISSIONS,
    })?;
    let mut out = Vec::with_capacity(
        1 + transmissions
            .iter()
            .map(|t| t.as_ref().len() + 2)
            .sum::<usize>(),
    );
    out.push(count);
    for t in transmissions {
        crate::put_large(&mut out, t.as_ref(), "transmission")?;
    }
    Ok(out)
}

/// Decodes a batch into its transmissions (borrowed). The batch must use up
/// `bytes`; the count must be 1 to 255.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<&[u8]>, Error> {
    let mut r = Reader::new(bytes);
    let n = usize::from(r.u8("batch count")?);
    if n == 0 {
        return Err(Error::invalid("batch", "no transmissions"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.large_bytes("transmission")?);
    }
    r.expect_end("batch")?;
    Ok(out)
}

/// A batch of one transmission whose authorization is `auth` (and
/// `service_sig`) and whose remaining bytes are `to_send` (vector kind
/// `smp.batch1`).
pub fn encode_batch1(
    v: Version,
    auth: &TransmissionAuth,
    service_sig: Option<&[u8; 64]>,
    to_send: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut t = Vec::with_capacity(to_send.len() + 83);
    encode_auth(v, auth, service_sig, &mut t)?;
    t.extend_from_slice(to_send);
    encode_batch(&[t])
}

/// Packs encoded transmissions, in order, into as few batches as fit in blocks
/// of `block_size`: each batch holds at most 255 and its transmissions (with
/// their 2-byte lengths) fit in `block_size - 19`, as the reference packs them.
/// Fails with [`Error::TooLong`] when one transmission alone does not fit.
pub fn pack_batches<T: AsRef<[u8]>>(
    transmissions: &[T],
    block_size: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    let room = block_size.saturating_sub(limits::BATCH_OVERHEAD);
    let mut batches = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, t) in transmissions.iter().enumerate() {
        let len = t.as_ref().len() + 2;
        if len > room {
            return Err(Error::TooLong {
                what: "transmission in a block",
                len,
                max: room,
            });
        }
        if used + len > room || i - start == limits::MAX_BATCH_TRANSMISSIONS {
            batches.push(encode_batch(&transmissions[start..i])?);
            start = i;
            used = 0;
        }
        used += len;
    }
    if start < transmissions.len() {
        batches.push(encode_batch(&transmissions[start..])?);
    }
    Ok(batches)
}
