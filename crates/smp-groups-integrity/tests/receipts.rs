//! Signed receipts: signing, third-party verification, batches, tampering.
#![allow(clippy::unwrap_used, clippy::panic, clippy::many_single_char_names)]

use proptest::prelude::*;
use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_integrity::{
    Anchor, Config, GroupIntegrity, MAX_BATCH_RECEIPTS, RECEIPT_LEN, Receipt, ReceiptBatch,
    ReceiptError, Timestamp, ViolationKind, receipt_payload,
};
use smp_groups_wire::agent::{Digest, GroupId, MemberId};
use smp_groups_wire::{Encode, Error as WireError, decode_all};

const A: MemberId = MemberId([1; 16]);
const B: MemberId = MemberId([2; 16]);
const S: MemberId = MemberId([3; 16]);
const G: GroupId = GroupId([9; 16]);

fn key(m: MemberId) -> SigningKey {
    SigningKey::from_seed([m.0[0]; 32])
}

/// A, B, S all know each other's keys; S sent 3 messages that A and B received
/// (B got a different message 3 if `fork`).
fn setup(fork: bool) -> [GroupIntegrity; 3] {
    let mut out = [A, B, S].map(|me| {
        let mut g = GroupIntegrity::new(Config::new(G), me, Timestamp(0));
        g.set_own_signing_key(key(me).public_key());
        for m in [A, B, S] {
            if m != me {
                g.add_member(m, Anchor::Genesis, Some(key(m).public_key()))
                    .unwrap();
            }
        }
        g
    });
    for i in 1..=3u64 {
        let m = format!("s{i}");
        out[2].on_sent(m.as_bytes()).unwrap();
        out[0].on_received(S, i, m.as_bytes()).unwrap();
        let mb = if fork && i == 3 {
            "forked".to_string()
        } else {
            m
        };
        out[1].on_received(S, i, mb.as_bytes()).unwrap();
    }
    out
}

#[test]
fn signed_bytes_are_the_documented_ones() {
    let p = receipt_payload(&G, &S, &A, 7, &Digest([5; 32]));
    let mut expected = b"smp-groups receipt v1".to_vec();
    expected.extend_from_slice(&[9; 16]);
    expected.extend_from_slice(&[3; 16]);
    expected.extend_from_slice(&[1; 16]);
    expected.extend_from_slice(&7u64.to_be_bytes());
    expected.extend_from_slice(&[5; 32]);
    assert_eq!(p, expected);
    let r = Receipt::sign(&key(A), &G, S, A, 7, Digest([5; 32]));
    key(A).public_key().verify(&p, &r.sig).unwrap();
    // Another group's id does not verify.
    assert_eq!(
        r.verify(&GroupId([8; 16]), &key(A).public_key()),
        Err(ReceiptError::BadSignature { signer: A })
    );
}

#[test]
fn receipts_prove_delivery_to_the_sender_and_to_third_parties() {
    let [mut a, b, mut s] = setup(false);
    let ra = a.receipt_for(S, 3, &key(A)).unwrap();
    let rb = b.receipt_for(S, 3, &key(B)).unwrap();
    assert!(s.on_receipt(&ra).unwrap().is_empty());
    assert_eq!(s.delivered_to_all(), 0, "B has not confirmed yet");
    assert!(s.on_receipt(&rb).unwrap().is_empty());
    assert_eq!(s.delivered_to_all(), 3);
    // S re-broadcasts the batch; A verifies B's receipt (and its own).
    let batch = ReceiptBatch {
        receipts: vec![ra, rb],
    };
    let bytes = batch.to_bytes();
    assert_eq!(bytes.len(), 2 + 2 * RECEIPT_LEN);
    let back: ReceiptBatch = decode_all(&bytes).unwrap();
    assert_eq!(back, batch);
    let o = a.on_receipt_batch(&back);
    assert_eq!(
        (o.accepted, o.rejected.len(), o.violations.len()),
        (2, 0, 0)
    );
    assert_eq!(a.confirmed(S, B), Some(3));
    // A receipt can only be made for a chained message.
    assert!(matches!(
        a.receipt_for(S, 4, &key(A)),
        Err(ReceiptError::NoDigest { msg_id: 4, .. })
    ));
    assert_eq!(
        a.receipt_for(A, 1, &key(A)),
        Err(ReceiptError::UnknownSender(A))
    );
}

#[test]
fn a_receipt_over_a_different_chain_reveals_equivocation() {
    let [mut a, b, mut s] = setup(true);
    let rb = b.receipt_for(S, 3, &key(B)).unwrap();
    let v = s.on_receipt(&rb).unwrap();
    assert!(matches!(
        v[..],
        [smp_groups_integrity::Violation {
            sender: S,
            reporter: B,
            kind: ViolationKind::ReceiptMismatch { msg_id: 3, .. }
        }]
    ));
    // Re-broadcast to A: A sees it too, as a third party.
    let o = a.on_receipt_batch(&ReceiptBatch { receipts: vec![rb] });
    assert_eq!(o.accepted, 1);
    assert!(matches!(
        o.violations[..],
        [smp_groups_integrity::Violation {
            reporter: B,
            kind: ViolationKind::ReceiptMismatch { .. },
            ..
        }]
    ));
    // Receipts for messages beyond what S sent.
    let fake = Receipt::sign(&key(B), &G, S, B, 9, Digest([1; 32]));
    let v = s.on_receipt(&fake).unwrap();
    assert!(matches!(
        v[..],
        [smp_groups_integrity::Violation {
            kind: ViolationKind::UnsentClaimed {
                claimed: 9,
                sent: 3
            },
            ..
        }]
    ));
}

#[test]
fn bad_receipts_are_rejected_without_effect() {
    let [a, b, mut s] = setup(false);
    let good = a.receipt_for(S, 2, &key(A)).unwrap();
    let before = serde_json::to_string(&s).unwrap();
    // Signed with another member's key.
    let wrong_key = Receipt::sign(&key(B), &G, S, A, 2, good.digest);
    assert_eq!(
        s.on_receipt(&wrong_key),
        Err(ReceiptError::BadSignature { signer: A })
    );
    // Digest altered after signing.
    let altered = Receipt {
        digest: Digest([0; 32]),
        ..good
    };
    assert_eq!(
        s.on_receipt(&altered),
        Err(ReceiptError::BadSignature { signer: A })
    );
    // Id altered.
    let moved = Receipt {
        ext_msg_id: 3,
        ..good
    };
    assert_eq!(
        s.on_receipt(&moved),
        Err(ReceiptError::BadSignature { signer: A })
    );
    let stranger = MemberId([7; 16]);
    let by_stranger = Receipt {
        signer: stranger,
        ..good
    };
    assert_eq!(
        s.on_receipt(&by_stranger),
        Err(ReceiptError::UnknownSigner(stranger))
    );
    let about_stranger = Receipt {
        sender: stranger,
        ..good
    };
    assert_eq!(
        s.on_receipt(&about_stranger),
        Err(ReceiptError::UnknownSender(stranger))
    );
    assert_eq!(serde_json::to_string(&s).unwrap(), before);
    // A member without a key.
    let mut nokey = GroupIntegrity::new(Config::new(G), B, Timestamp(0));
    nokey.add_member(A, Anchor::Genesis, None).unwrap();
    nokey.add_member(S, Anchor::Genesis, None).unwrap();
    assert_eq!(nokey.on_receipt(&good), Err(ReceiptError::NoKey(A)));
    // In a batch, the bad one is rejected by index and the rest accepted.
    let rb = b.receipt_for(S, 2, &key(B)).unwrap();
    let o = s.on_receipt_batch(&ReceiptBatch {
        receipts: vec![rb, altered, good],
    });
    assert_eq!(o.accepted, 2);
    assert_eq!(
        o.rejected,
        vec![(1, ReceiptError::BadSignature { signer: A })]
    );
    assert!(o.violations.is_empty());
}

#[test]
fn batch_decoding_is_bounded() {
    let mut too_many = u16::try_from(MAX_BATCH_RECEIPTS + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    too_many.extend_from_slice(&[0; 64]);
    assert!(matches!(
        decode_all::<ReceiptBatch>(&too_many),
        Err(WireError::TooLong { .. })
    ));
    // Claims 3 receipts, carries 1.
    let r = Receipt::sign(&key(A), &G, S, A, 1, Digest([1; 32]));
    let mut short = 3u16.to_be_bytes().to_vec();
    r.encode(&mut short);
    assert!(matches!(
        decode_all::<ReceiptBatch>(&short),
        Err(WireError::Truncated { .. })
    ));
}

proptest! {
    /// Flipping any bit of an encoded receipt makes it fail: it no longer
    /// decodes to the same receipt, or its signature does not verify.
    #[test]
    fn any_bit_flip_is_caught(bit in 0usize..RECEIPT_LEN * 8, id in any::<u64>(), d in any::<[u8; 32]>()) {
        let r = Receipt::sign(&key(A), &G, S, A, id, Digest(d));
        let mut bytes = r.to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let flipped: Receipt = decode_all(&bytes).unwrap();
        prop_assert!(flipped != r);
        prop_assert!(flipped.verify(&G, &key(A).public_key()).is_err());
    }
}
