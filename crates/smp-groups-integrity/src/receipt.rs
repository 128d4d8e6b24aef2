//! Signed receipts (the group RFC's integrity approach 2 and its question 1).
//!
//! Every member has a group signing key (Ed25519), announced when it is
//! introduced (`MemberInfo.signing_key`). When a member's chain for a sender
//! reaches message `n`, it can sign a receipt over the **chain digest** at `n`:
//!
//! ```text
//! signed = "smp-groups receipt v1" || groupId(16) || senderMemberId(16)
//!          || signerMemberId(16) || BE64(extMsgId) || chainDigest(32)
//! ```
//!
//! Because the digest is the hash chain, one receipt proves delivery of the
//! sender's messages `1..=n` exactly as the sender sent them, so receipts can be
//! batched ([`ReceiptBatch`], 136 bytes each) and re-broadcast, and any member
//! holding the signer's public key can verify them.
//!
//! The `RCVD extMsgId hash sig` envelope carries `(extMsgId, chainDigest, sig)`;
//! sender and signer are known from the connection it arrives on.

use smp_groups_crypto::ed25519::{PublicKey, Signature, SigningKey};
use smp_groups_wire::agent::{Digest, GroupId, MemberId};
use smp_groups_wire::{Decode, Encode, Error as WireError, Reader};

use crate::chain::Lookup;
use crate::error::ReceiptError;
use crate::group::{GroupIntegrity, flag};
use crate::violation::{Violation, ViolationKind};

/// Domain-separation label of receipt signatures.
pub const RECEIPT_LABEL: &[u8] = b"smp-groups receipt v1";

/// The most receipts in one [`ReceiptBatch`].
pub const MAX_BATCH_RECEIPTS: usize = 1024;

/// Encoded size of one receipt in a batch.
pub const RECEIPT_LEN: usize = 16 + 16 + 8 + 32 + 64;

/// The bytes a receipt signature covers.
pub fn receipt_payload(
    group: &GroupId,
    sender: &MemberId,
    signer: &MemberId,
    ext_msg_id: u64,
    digest: &Digest,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECEIPT_LABEL.len() + 88);
    b.extend_from_slice(RECEIPT_LABEL);
    b.extend_from_slice(&group.0);
    b.extend_from_slice(&sender.0);
    b.extend_from_slice(&signer.0);
    b.extend_from_slice(&ext_msg_id.to_be_bytes());
    b.extend_from_slice(&digest.0);
    b
}

/// Domain-separation label of the signature over an `RCVDS` envelope.
pub const RECEIPTS_LABEL: &[u8] = b"smp-groups receipts v1";

/// The bytes the one signature of an `RCVDS` envelope covers: `signer`
/// received these messages of `sender` with these content hashes.
///
/// ```text
/// signed = "smp-groups receipts v1" || groupId(16) || senderMemberId(16)
///          || signerMemberId(16) || BE16(count) || (BE64(extMsgId) || hash(32))*
/// ```
pub fn receipts_payload(
    group: &GroupId,
    sender: &MemberId,
    signer: &MemberId,
    receipts: &[(u64, Digest)],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECEIPTS_LABEL.len() + 50 + 40 * receipts.len());
    b.extend_from_slice(RECEIPTS_LABEL);
    b.extend_from_slice(&group.0);
    b.extend_from_slice(&sender.0);
    b.extend_from_slice(&signer.0);
    let n = u16::try_from(receipts.len()).unwrap_or(u16::MAX);
    b.extend_from_slice(&n.to_be_bytes());
    for (id, d) in receipts.iter().take(usize::from(n)) {
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&d.0);
    }
    b
}

/// A signed statement by `signer`: "my chain for `sender` at `ext_msg_id` is
/// `digest`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The member whose message is receipted.
    pub sender: MemberId,
    /// The member that received it and signs.
    pub signer: MemberId,
    /// The sender's group-wide message id.
    pub ext_msg_id: u64,
    /// The signer's chain digest for `sender` at `ext_msg_id`.
    pub digest: Digest,
    /// Ed25519 signature over [`receipt_payload`].
    pub sig: Signature,
}

impl Receipt {
    /// Signs a receipt with the signer's group signing key.
    pub fn sign(
        key: &SigningKey,
        group: &GroupId,
        sender: MemberId,
        signer: MemberId,
        ext_msg_id: u64,
        digest: Digest,
    ) -> Self {
        let sig = key.sign(&receipt_payload(
            group, &sender, &signer, ext_msg_id, &digest,
        ));
        Self {
            sender,
            signer,
            ext_msg_id,
            digest,
            sig,
        }
    }

    /// Verifies the signature with the signer's public key.
    pub fn verify(&self, group: &GroupId, key: &PublicKey) -> Result<(), ReceiptError> {
        let payload = receipt_payload(
            group,
            &self.sender,
            &self.signer,
            self.ext_msg_id,
            &self.digest,
        );
        key.verify(&payload, &self.sig)
            .map_err(|_| ReceiptError::BadSignature {
                signer: self.signer,
            })
    }
}

impl Encode for Receipt {
    fn encode(&self, out: &mut Vec<u8>) {
        self.sender.encode(out);
        self.signer.encode(out);
        out.extend_from_slice(&self.ext_msg_id.to_be_bytes());
        self.digest.encode(out);
        out.extend_from_slice(&self.sig.to_bytes());
    }
}

impl<'a> Decode<'a> for Receipt {
    fn decode(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(Self {
            sender: MemberId::decode(r)?,
            signer: MemberId::decode(r)?,
            ext_msg_id: u64::from_be_bytes(r.array("receipt msg id")?),
            digest: Digest::decode(r)?,
            sig: Signature::from_bytes(r.array("receipt signature")?),
        })
    }
}

/// Receipts batched for re-broadcast: `count(Word16) receipt*`, each receipt
/// `sender(16) signer(16) extMsgId(BE64) digest(32) sig(64)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiptBatch {
    /// The receipts, at most [`MAX_BATCH_RECEIPTS`] (encoding writes only the
    /// first [`MAX_BATCH_RECEIPTS`]; split larger sets into several batches).
    pub receipts: Vec<Receipt>,
}

impl Encode for ReceiptBatch {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = self.receipts.len().min(MAX_BATCH_RECEIPTS);
        // n <= 1024 fits in a u16.
        out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        for r in self.receipts.iter().take(n) {
            r.encode(out);
        }
    }
}

impl<'a> Decode<'a> for ReceiptBatch {
    fn decode(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let n = usize::from(r.u16("receipt count")?);
        if n > MAX_BATCH_RECEIPTS {
            return Err(WireError::TooLong {
                what: "receipt batch",
                len: n,
                max: MAX_BATCH_RECEIPTS,
            });
        }
        let mut receipts = Vec::with_capacity(n.min(r.left() / RECEIPT_LEN));
        for _ in 0..n {
            receipts.push(Receipt::decode(r)?);
        }
        Ok(Self { receipts })
    }
}

/// The result of [`GroupIntegrity::on_receipt_batch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Receipts that verified.
    pub accepted: usize,
    /// Violations the verified receipts reveal.
    pub violations: Vec<Violation>,
    /// Receipts rejected, by index in the batch.
    pub rejected: Vec<(usize, ReceiptError)>,
}

impl GroupIntegrity {
    /// Our receipt for message `ext_msg_id` of `sender`, signed with our group
    /// signing key. The message must be chained (see
    /// [`Delivery::Chained`](crate::Delivery)) and within the window.
    pub fn receipt_for(
        &self,
        sender: MemberId,
        ext_msg_id: u64,
        key: &SigningKey,
    ) -> Result<Receipt, ReceiptError> {
        if sender == self.me {
            return Err(ReceiptError::UnknownSender(sender));
        }
        let chain = self
            .chain(sender)
            .ok_or(ReceiptError::UnknownSender(sender))?;
        let Lookup::At(digest) = chain.digest_at(ext_msg_id) else {
            return Err(ReceiptError::NoDigest {
                sender,
                msg_id: ext_msg_id,
            });
        };
        Ok(Receipt::sign(
            key,
            &self.config.group_id,
            sender,
            self.me,
            ext_msg_id,
            digest,
        ))
    }

    /// Verifies a receipt (ours or re-broadcast by anyone) and compares it with
    /// our chain for its sender. A receipt for our own message that we can
    /// compare and that matches counts towards [`delivered_to_all`](Self::delivered_to_all).
    pub fn on_receipt(&mut self, receipt: &Receipt) -> Result<Vec<Violation>, ReceiptError> {
        let signer = receipt.signer;
        let key = if signer == self.me {
            self.own_key.ok_or(ReceiptError::NoKey(signer))?
        } else {
            let m = self
                .members
                .get(&signer)
                .ok_or(ReceiptError::UnknownSigner(signer))?;
            m.key.ok_or(ReceiptError::NoKey(signer))?
        };
        let chain = self
            .chain(receipt.sender)
            .ok_or(ReceiptError::UnknownSender(receipt.sender))?;
        receipt.verify(&self.config.group_id, &key)?;
        let (lookup, head_id) = (chain.digest_at(receipt.ext_msg_id), chain.head_id());
        let sender_is_me = receipt.sender == self.me;
        let mut out = Vec::new();
        let Some(view) = self
            .member_mut(signer)
            .map(|m| m.views.entry(receipt.sender).or_default())
        else {
            // Our own receipt: nothing to compare against but ourselves.
            return Ok(out);
        };
        match lookup {
            Lookup::At(ours) if ours == receipt.digest => {
                view.confirmed = view.confirmed.max(receipt.ext_msg_id);
            }
            Lookup::At(ours) => {
                if view.raise(flag::RECEIPT) {
                    out.push(Violation {
                        sender: receipt.sender,
                        reporter: signer,
                        kind: ViolationKind::ReceiptMismatch {
                            msg_id: receipt.ext_msg_id,
                            ours,
                            theirs: receipt.digest,
                        },
                    });
                }
            }
            Lookup::Ahead if sender_is_me => {
                if view.raise(flag::UNSENT) {
                    out.push(Violation {
                        sender: receipt.sender,
                        reporter: signer,
                        kind: ViolationKind::UnsentClaimed {
                            claimed: receipt.ext_msg_id,
                            sent: head_id,
                        },
                    });
                }
            }
            Lookup::Ahead | Lookup::Unverifiable => {}
        }
        Ok(out)
    }

    /// [`on_receipt`](Self::on_receipt) for each receipt of a batch.
    pub fn on_receipt_batch(&mut self, batch: &ReceiptBatch) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for (i, r) in batch.receipts.iter().enumerate() {
            match self.on_receipt(r) {
                Ok(v) => {
                    outcome.accepted += 1;
                    outcome.violations.extend(v);
                }
                Err(e) => outcome.rejected.push((i, e)),
            }
        }
        outcome
    }
}
