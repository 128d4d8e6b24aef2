//! Proof of delivery: the signed receipts of group messages, kept, and
//! re-broadcast by their sender (`PROOF`), so that any member can show that a
//! message reached every member (the RFC's integrity approach 2 and its
//! question 1).
//!
//! Every signed `RCVD`/`RCVDS` is a unit: its signer, the messages it covers
//! with the content hash the signer computed, and one signature over them
//! (`smp_groups_integrity::receipts_payload`). We keep the units we get for
//! our own messages and the ones we sign ourselves; on our check schedule we
//! send the new units for our messages to the other members (each gets the
//! units it did not sign); the members verify them with the signers' keys
//! and keep them too. Kept for the last [`PROOF_WINDOW`] messages of each
//! sender, and at most [`MAX_PROOF_UNITS_KEPT`] units per group, oldest
//! dropped first. Stored apart from the group, one record per unit
//! ([`Key::Proof`]) and per message of ours (its recipients,
//! [`Key::ProofSent`]), each written when it changes: a receipt costs one
//! small write, whatever the number of proofs kept.
//!
//! [`Key::Proof`]: crate::store::Key::Proof
//! [`Key::ProofSent`]: crate::store::Key::ProofSent

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use smp_groups_crypto::ed25519::{PublicKey, Signature};
use smp_groups_wire::agent::{
    AMessage, Digest, GroupEnvelope, GroupId, MAX_PROOF_UNITS, MemberId, SignedReceipts,
};

use crate::Agent;
use crate::api::CommandError;
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{MemberStatus, Mid};
use crate::store::Key;

/// Messages of each sender whose proof is kept: the last this many ids.
pub const PROOF_WINDOW: u64 = 64;

/// The most signed receipts kept per group.
pub const MAX_PROOF_UNITS_KEPT: usize = 4096;

/// The byte budget of one `PROOF` envelope we send (a unit that is larger
/// goes alone; fragments carry it).
const PROOF_ENVELOPE_BUDGET: usize = 12 * 1024;

/// One signed receipt as kept (the stored record of [`Key::Proof`]).
///
/// [`Key::Proof`]: crate::store::Key::Proof
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Unit {
    /// The member whose messages it covers.
    sender: Mid,
    /// The member that signed it.
    signer: Mid,
    /// (extMsgId, content hash).
    receipts: Vec<(u64, [u8; 32])>,
    /// The signature (64 bytes).
    #[serde(with = "crate::serde_bytes")]
    sig: Vec<u8>,
    /// A receipt for our messages not re-broadcast yet.
    unsent: bool,
}

/// The proofs of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProofBook {
    /// Units by local number.
    units: BTreeMap<u64, Unit>,
    /// The next local number.
    next: u64,
    /// (sender, extMsgId) -> signer -> unit.
    by_msg: BTreeMap<(Mid, u64), BTreeMap<Mid, u64>>,
    /// The recipients of each of our messages when we sent it.
    expected: BTreeMap<u64, BTreeSet<Mid>>,
    /// Units for our messages not re-broadcast yet (those whose `unsent`
    /// is set).
    unsent: BTreeSet<u64>,
    /// Differences already reported: (sender, extMsgId, signer). Not stored:
    /// a restart may report one again.
    reported: BTreeSet<(Mid, u64, Mid)>,
    /// Units added, changed or dropped since the last store write.
    changed_units: BTreeSet<u64>,
    /// Our messages whose recipients were noted or dropped since then.
    changed_expected: BTreeSet<u64>,
}

impl ProofBook {
    /// A book from its stored records: the units (by number) and the
    /// recipients of our messages (by extMsgId). A later unit of the same
    /// signer for the same message wins, as when they were added.
    pub(crate) fn restore(
        units: impl IntoIterator<Item = (u64, Unit)>,
        expected: impl IntoIterator<Item = (u64, BTreeSet<Mid>)>,
    ) -> Self {
        let mut b = Self {
            expected: expected.into_iter().collect(),
            ..Self::default()
        };
        let mut units: Vec<(u64, Unit)> = units.into_iter().collect();
        units.sort_by_key(|(n, _)| *n);
        for (n, unit) in units {
            for (id, _) in &unit.receipts {
                b.by_msg
                    .entry((unit.sender, *id))
                    .or_default()
                    .insert(unit.signer, n);
            }
            if unit.unsent {
                b.unsent.insert(n);
            }
            b.next = b.next.max(n.saturating_add(1));
            b.units.insert(n, unit);
        }
        b
    }

    /// The stored unit `n`, if kept.
    pub(crate) fn unit(&self, n: u64) -> Option<&Unit> {
        self.units.get(&n)
    }

    /// The stored recipients of our message `ext_msg_id`, if kept.
    pub(crate) fn recipients(&self, ext_msg_id: u64) -> Option<&BTreeSet<Mid>> {
        self.expected.get(&ext_msg_id)
    }

    /// Every unit, for a full write.
    pub(crate) fn units(&self) -> impl Iterator<Item = (&u64, &Unit)> {
        self.units.iter()
    }

    /// Every noted message of ours, for a full write.
    pub(crate) fn noted(&self) -> impl Iterator<Item = (&u64, &BTreeSet<Mid>)> {
        self.expected.iter()
    }

    /// What changed since the last call: (units, our messages).
    pub(crate) fn take_changed(&mut self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        (
            std::mem::take(&mut self.changed_units),
            std::mem::take(&mut self.changed_expected),
        )
    }

    /// Keeps a verified unit. Returns its number if it covers a message in
    /// the window.
    fn add(&mut self, unit: Unit) -> Option<u64> {
        let newest = unit.receipts.iter().map(|(id, _)| *id).max()?;
        let floor = self.floor(unit.sender, newest);
        let n = self.next;
        let mut used = false;
        for (id, _) in &unit.receipts {
            if *id < floor {
                continue;
            }
            let old = self
                .by_msg
                .entry((unit.sender, *id))
                .or_default()
                .insert(unit.signer, n);
            used = true;
            if let Some(old) = old {
                self.release(old);
            }
        }
        if !used {
            return None;
        }
        self.next = self.next.saturating_add(1);
        let sender = unit.sender;
        if unit.unsent {
            self.unsent.insert(n);
        }
        self.units.insert(n, unit);
        self.changed_units.insert(n);
        self.trim(sender, newest);
        Some(n)
    }

    /// The lowest id kept for `sender` once `newest` is in.
    fn floor(&self, sender: Mid, newest: u64) -> u64 {
        let top = self
            .by_msg
            .range((sender, 0)..=(sender, u64::MAX))
            .next_back()
            .map_or(newest, |((_, id), _)| (*id).max(newest));
        top.saturating_sub(PROOF_WINDOW - 1)
    }

    /// Drops what fell out of `sender`'s window, and the oldest units beyond
    /// the bound.
    fn trim(&mut self, sender: Mid, newest: u64) {
        let floor = self.floor(sender, newest);
        let old: Vec<(Mid, u64)> = self
            .by_msg
            .range((sender, 0)..(sender, floor))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(signers) = self.by_msg.remove(&k) {
                for n in signers.into_values() {
                    self.release(n);
                }
            }
        }
        while self.units.len() > MAX_PROOF_UNITS_KEPT {
            let Some((n, unit)) = self.units.pop_first() else {
                break;
            };
            self.unsent.remove(&n);
            self.changed_units.insert(n);
            for (id, _) in &unit.receipts {
                if let Some(signers) = self.by_msg.get_mut(&(unit.sender, *id)) {
                    if signers.get(&unit.signer) == Some(&n) {
                        signers.remove(&unit.signer);
                    }
                    if signers.is_empty() {
                        self.by_msg.remove(&(unit.sender, *id));
                    }
                }
            }
        }
    }

    /// Drops unit `n` if no message refers to it any more.
    fn release(&mut self, n: u64) {
        let Some(unit) = self.units.get(&n) else {
            return;
        };
        let used = unit.receipts.iter().any(|(id, _)| {
            self.by_msg
                .get(&(unit.sender, *id))
                .is_some_and(|s| s.get(&unit.signer) == Some(&n))
        });
        if !used {
            self.units.remove(&n);
            self.unsent.remove(&n);
            self.changed_units.insert(n);
        }
    }

    /// Where unit `n` and our own receipt name different content hashes for
    /// the same message of another member: (extMsgId, ours, theirs, the
    /// other signer), each once.
    fn differences(&mut self, n: u64, me: Mid) -> Vec<(u64, [u8; 32], [u8; 32], Mid)> {
        let Some(unit) = self.units.get(&n) else {
            return Vec::new();
        };
        if unit.sender == me {
            return Vec::new();
        }
        let hash_of = |book: &Self, signer: Mid, id: u64| -> Option<[u8; 32]> {
            let m = *book.by_msg.get(&(unit.sender, id))?.get(&signer)?;
            let u = book.units.get(&m)?;
            u.receipts.iter().find(|(i, _)| *i == id).map(|(_, h)| *h)
        };
        let mut out = Vec::new();
        for (id, h) in &unit.receipts {
            let others: Vec<(Mid, [u8; 32])> = if unit.signer == me {
                self.by_msg
                    .get(&(unit.sender, *id))
                    .into_iter()
                    .flat_map(|s| s.keys())
                    .filter(|x| **x != me)
                    .filter_map(|x| Some((*x, hash_of(self, *x, *id)?)))
                    .collect()
            } else {
                hash_of(self, me, *id)
                    .map(|ours| vec![(unit.signer, ours)])
                    .unwrap_or_default()
            };
            for (x, other) in others {
                let (ours, theirs) = if unit.signer == me {
                    (*h, other)
                } else {
                    (other, *h)
                };
                if ours != theirs && !self.reported.contains(&(unit.sender, *id, x)) {
                    out.push((*id, ours, theirs, x));
                }
            }
        }
        let sender = unit.sender;
        for (id, _, _, x) in &out {
            self.reported.insert((sender, *id, *x));
        }
        out
    }

    /// Notes the recipients of our message `ext_msg_id`.
    pub(crate) fn expect(&mut self, ext_msg_id: u64, recipients: BTreeSet<Mid>) {
        self.expected.insert(ext_msg_id, recipients);
        self.changed_expected.insert(ext_msg_id);
        let floor = ext_msg_id.saturating_sub(PROOF_WINDOW - 1);
        let kept = self.expected.split_off(&floor);
        self.changed_expected
            .extend(std::mem::replace(&mut self.expected, kept).into_keys());
    }

    /// Marks the units waiting for re-broadcast as sent; returns them.
    fn take_unsent(&mut self) -> Vec<u64> {
        let unsent = std::mem::take(&mut self.unsent);
        for n in &unsent {
            if let Some(u) = self.units.get_mut(n) {
                u.unsent = false;
                self.changed_units.insert(*n);
            }
        }
        unsent.into_iter().collect()
    }
}

/// The proof that a group message reached its members
/// ([`Agent::delivery_proof`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryProof {
    /// The message's sender.
    pub sender: MemberId,
    /// Its group-wide id.
    pub ext_msg_id: u64,
    /// The signed receipts that cover it, one per signer, each exactly as its
    /// signer signed it: [`DeliveryProof::verify`] checks one with the
    /// signer's key alone.
    pub receipts: Vec<SignedReceipts>,
    /// Members that should have it and whose signed receipt we do not hold:
    /// for our own messages, the recipients when it was sent; for another
    /// member's, the members now in the group (ourselves included) but the
    /// sender, so one added after the message is listed too.
    pub missing: Vec<MemberId>,
}

impl DeliveryProof {
    /// True when every member it should reach signed for it.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && !self.receipts.is_empty()
    }

    /// The content hash a signer signed for this message.
    pub fn hash_signed_by(&self, signer: &MemberId) -> Option<Digest> {
        let unit = self.receipts.iter().find(|u| u.signer == *signer)?;
        unit.receipts
            .iter()
            .find(|(id, _)| *id == self.ext_msg_id)
            .map(|(_, d)| *d)
    }

    /// Verifies one of the receipts with its signer's public group signing
    /// key.
    pub fn verify(
        group: &GroupId,
        sender: &MemberId,
        unit: &SignedReceipts,
        key: &PublicKey,
    ) -> bool {
        let payload =
            smp_groups_integrity::receipts_payload(group, sender, &unit.signer, &unit.receipts);
        key.verify(&payload, &Signature::from_bytes(unit.sig))
            .is_ok()
    }
}

impl Unit {
    fn to_wire(&self) -> Option<SignedReceipts> {
        Some(SignedReceipts {
            signer: MemberId(self.signer),
            receipts: self
                .receipts
                .iter()
                .map(|(id, h)| (*id, Digest(*h)))
                .collect(),
            sig: self.sig.as_slice().try_into().ok()?,
        })
    }
}

impl Agent {
    /// Marks the proof records that changed for the next store write.
    fn touch_proofs(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let (units, expected) = g.proofs.take_changed();
        self.mark_proof_records(group, units, expected);
    }

    /// The group is going: every proof record of it goes too.
    pub(crate) fn forget_proofs(&mut self, group: &str) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let units: Vec<u64> = g.proofs.units.keys().copied().collect();
        let expected: Vec<u64> = g.proofs.expected.keys().copied().collect();
        self.mark_proof_records(group, units, expected);
    }

    /// Marks the records of these units and of these messages of ours.
    fn mark_proof_records(
        &mut self,
        group: &str,
        units: impl IntoIterator<Item = u64>,
        expected: impl IntoIterator<Item = u64>,
    ) {
        let units = units.into_iter().map(|n| Key::Proof(group.to_owned(), n));
        let sent = expected
            .into_iter()
            .map(|id| Key::ProofSent(group.to_owned(), id));
        self.dirty.extend(units.chain(sent));
    }

    /// Keeps a signed receipt for messages of `sender`, verified by the
    /// caller; `ours` if the messages are ours (then it is re-broadcast).
    pub(crate) fn keep_receipt(
        &mut self,
        group: &str,
        (sender, signer): (Mid, Mid),
        receipts: &[(u64, Digest)],
        sig: [u8; 64],
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let ours = sender == g.me && signer != g.me;
        let unit = Unit {
            sender,
            signer,
            receipts: receipts.iter().map(|(id, d)| (*id, d.0)).collect(),
            sig: sig.to_vec(),
            unsent: ours,
        };
        let Some(n) = g.proofs.add(unit) else {
            self.touch_proofs(group);
            return;
        };
        let me = g.me;
        let found = g.proofs.differences(n, me);
        self.touch_proofs(group);
        for (msg_id, ours, theirs, reporter) in found {
            // Signed evidence: the sender gave us and the reporter different
            // contents under one id.
            tracing::warn!(
                group,
                sender = %MemberId(sender),
                reporter = %MemberId(reporter),
                msg_id,
                "a signed receipt names another content hash than ours"
            );
            self.event(crate::api::Event::Violation {
                group: group.to_owned(),
                violation: smp_groups_integrity::Violation {
                    sender: MemberId(sender),
                    reporter: MemberId(reporter),
                    kind: smp_groups_integrity::ViolationKind::ReceiptMismatch {
                        msg_id,
                        ours: Digest(ours),
                        theirs: Digest(theirs),
                    },
                },
            });
        }
    }

    /// Notes the recipients of our message `ext_msg_id`.
    pub(crate) fn expect_receipts(&mut self, group: &str, ext_msg_id: u64, to: BTreeSet<Mid>) {
        if let Some(g) = self.groups.get_mut(group) {
            g.proofs.expect(ext_msg_id, to);
            self.touch_proofs(group);
        }
    }

    /// Sends the signed receipts for our messages that came since the last
    /// time to every member connected, each without the ones it signed.
    pub(crate) fn broadcast_proofs(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.proofs.unsent.is_empty() {
            return;
        }
        let unsent = g.proofs.take_unsent();
        let units: Vec<SignedReceipts> = unsent
            .iter()
            .filter_map(|n| g.proofs.units.get(n))
            .filter_map(Unit::to_wire)
            .collect();
        let to: Vec<(Mid, u64)> = g
            .members
            .iter()
            .filter(|(_, m)| m.status != MemberStatus::Pending)
            .filter_map(|(x, m)| Some((*x, m.conn?)))
            .collect();
        self.touch_proofs(group);
        for (x, conn) in to {
            let mine: Vec<&SignedReceipts> = units.iter().filter(|u| u.signer.0 != x).collect();
            for env in pack(&mine) {
                self.enqueue(conn, &AMessage::Group(env), crate::state::Note::None);
            }
        }
    }

    /// `PROOF` from `sender`: keeps each unit that verifies with its
    /// signer's key; counts and logs the others.
    pub(crate) fn on_proof(&mut self, group: &str, sender: Mid, units: &[SignedReceipts]) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let gid = GroupId(g.id);
        let me = g.me;
        let mut good = Vec::new();
        let mut unknown = 0usize;
        let mut bad = 0usize;
        for u in units {
            let key = if u.signer.0 == me {
                Some(*g.signing_key.public_key().as_bytes())
            } else {
                g.members.get(&u.signer.0).and_then(|m| m.signing_key)
            };
            match key {
                Some(k)
                    if u.signer.0 != sender
                        && DeliveryProof::verify(
                            &gid,
                            &MemberId(sender),
                            u,
                            &PublicKey::from_bytes(k),
                        ) =>
                {
                    good.push(u.clone());
                }
                Some(_) => bad += 1,
                None => unknown += 1,
            }
        }
        let at = At::member(group, Some(sender), None);
        if bad > 0 {
            let detail = format!("PROOF: {bad} signed receipt(s) that do not verify");
            self.refuse(FaultSource::Peer, FaultKind::BadSignature, at, &detail);
        }
        if unknown > 0 {
            let detail =
                format!("PROOF: {unknown} signed receipt(s) of members whose key we do not hold");
            self.refuse(FaultSource::Nobody, FaultKind::Stale, at, &detail);
        }
        for u in good {
            self.keep_receipt(group, (sender, u.signer.0), &u.receipts, u.sig);
        }
    }

    /// The public group signing key of `member` (ours if `None`) in
    /// `group`, to verify the receipts of a [`DeliveryProof`] with; `None`
    /// if the group or the member's key is unknown.
    pub fn signing_key(&self, group: &str, member: Option<MemberId>) -> Option<PublicKey> {
        let g = self.groups.get(group)?;
        match member {
            None => Some(g.signing_key.public_key()),
            Some(m) if m.0 == g.me => Some(g.signing_key.public_key()),
            Some(m) => g
                .members
                .get(&m.0)
                .and_then(|x| x.signing_key)
                .map(PublicKey::from_bytes),
        }
    }

    /// The proof we hold that message `ext_msg_id` of `sender` (ours if
    /// `None`) reached its members: the signed receipts covering it and who
    /// is missing.
    ///
    /// # Errors
    ///
    /// [`CommandError::NoGroup`] for an unknown group;
    /// [`CommandError::NoMember`] for a sender we know nothing of;
    /// [`CommandError::NoId`] for one of our messages we keep no proof of
    /// (never sent, or older than the last [`PROOF_WINDOW`]).
    pub fn delivery_proof(
        &self,
        group: &str,
        sender: Option<MemberId>,
        ext_msg_id: u64,
    ) -> Result<DeliveryProof, CommandError> {
        let g = self
            .groups
            .get(group)
            .ok_or_else(|| CommandError::NoGroup(group.to_owned()))?;
        let sender = sender.map_or(g.me, |s| s.0);
        let signers = g.proofs.by_msg.get(&(sender, ext_msg_id));
        let expected: BTreeSet<Mid> = if sender == g.me {
            g.proofs
                .expected
                .get(&ext_msg_id)
                .ok_or(CommandError::NoId(ext_msg_id))?
                .clone()
        } else {
            if signers.is_none() && !g.members.contains_key(&sender) {
                return Err(CommandError::NoMember(MemberId(sender)));
            }
            g.members
                .keys()
                .copied()
                .chain(std::iter::once(g.me))
                .filter(|x| *x != sender)
                .collect()
        };
        let receipts: Vec<SignedReceipts> = signers
            .into_iter()
            .flatten()
            .filter_map(|(_, n)| g.proofs.units.get(n))
            .filter_map(Unit::to_wire)
            .collect();
        let missing = expected
            .iter()
            .filter(|x| !signers.is_some_and(|s| s.contains_key(*x)))
            .map(|x| MemberId(*x))
            .collect();
        Ok(DeliveryProof {
            sender: MemberId(sender),
            ext_msg_id,
            receipts,
            missing,
        })
    }
}

/// Packs units into `PROOF` envelopes of at most [`MAX_PROOF_UNITS`] units
/// and about [`PROOF_ENVELOPE_BUDGET`] bytes.
fn pack(units: &[&SignedReceipts]) -> Vec<GroupEnvelope> {
    let mut out = Vec::new();
    let mut cur: Vec<SignedReceipts> = Vec::new();
    let mut size = 0;
    for u in units {
        let len = SignedReceipts::encoded_len(u.receipts.len());
        if !cur.is_empty() && (cur.len() == MAX_PROOF_UNITS || size + len > PROOF_ENVELOPE_BUDGET) {
            out.push(GroupEnvelope::Proof {
                units: std::mem::take(&mut cur),
            });
            size = 0;
        }
        size += len;
        cur.push((*u).clone());
    }
    if !cur.is_empty() {
        out.push(GroupEnvelope::Proof { units: cur });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `PROOF` with a receipt whose signature does not verify, or whose
    /// signer's key we do not hold, or signed by the sender itself, keeps
    /// nothing and is counted; a good one is kept.
    #[cfg(feature = "sim")]
    #[test]
    fn bad_receipts_in_a_proof_are_refused_and_counted() {
        use crate::sim::{Faults, Sim};
        use crate::{Command, Config};
        let cfg = Config {
            check_interval_ms: None,
            check_every_messages: None,
            ..Config::default()
        };
        let mut sim = Sim::new(3, &cfg, Faults::default(), 5);
        let hs = sim.build_group(3).expect("group");
        sim.command(
            0,
            Command::Send {
                group: hs[0].alias.clone(),
                body: b"hello".to_vec(),
            },
        );
        sim.settle_all();
        sim.ack_all(&hs, &mut BTreeMap::new());
        sim.run_until(sim.now() + 5_000);
        sim.settle_all();
        let id = |i: usize| {
            sim.agent(i)
                .and_then(|a| a.group_statuses().into_iter().next())
                .map(|g| g.me)
                .expect("member")
        };
        let (sender, signer) = (id(0), id(2));
        // Agent 2's real receipt for message 1, as agent 0 holds it.
        let good = sim
            .agent(0)
            .and_then(|a| a.delivery_proof(&hs[0].alias, None, 1).ok())
            .and_then(|p| p.receipts.into_iter().find(|u| u.signer == signer))
            .expect("agent 0 holds agent 2's receipt");
        let alias = hs[1].alias.clone();
        let agent = sim.agent_mut(1).expect("agent 1");
        let held = |a: &Agent| {
            a.delivery_proof(&alias, Some(sender), 1)
                .map_or(0, |p| p.receipts.len())
        };
        let before = held(agent);
        let mut forged = good.clone();
        forged.sig[0] ^= 1;
        let mut unknown = good.clone();
        unknown.signer = MemberId([0x55; 16]);
        let mut by_sender = good.clone();
        by_sender.signer = sender;
        agent.on_proof(&alias, sender.0, &[forged, by_sender]);
        agent.on_proof(&alias, sender.0, &[unknown]);
        assert_eq!(held(agent), before, "nothing bad is kept");
        let r = agent.refusals();
        assert_eq!(r.get(FaultSource::Peer, FaultKind::BadSignature), 1);
        assert_eq!(r.get(FaultSource::Nobody, FaultKind::Stale), 1);
        agent.on_proof(&alias, sender.0, &[good]);
        assert_eq!(held(agent), before + 1, "the good one is kept");
    }

    fn unit(sender: u8, signer: u8, ids: &[u64]) -> Unit {
        Unit {
            sender: [sender; 16],
            signer: [signer; 16],
            receipts: ids
                .iter()
                .map(|id| (*id, [id.to_be_bytes()[7]; 32]))
                .collect(),
            sig: vec![0; 64],
            unsent: false,
        }
    }

    #[test]
    fn a_newer_unit_from_the_same_signer_replaces_the_older_and_frees_it() {
        let mut b = ProofBook::default();
        let a = b.add(unit(1, 2, &[1])).expect("kept");
        let c = b.add(unit(1, 2, &[1, 2])).expect("kept");
        assert_ne!(a, c);
        assert!(
            !b.units.contains_key(&a),
            "the older unit is no longer used"
        );
        assert_eq!(b.by_msg[&([1; 16], 1)][&[2; 16]], c);
        assert_eq!(b.by_msg[&([1; 16], 2)][&[2; 16]], c);
    }

    #[test]
    fn the_window_keeps_the_last_ids_of_each_sender() {
        let mut b = ProofBook::default();
        for id in 1..=PROOF_WINDOW + 10 {
            b.add(unit(1, 2, &[id])).expect("kept");
        }
        b.add(unit(3, 2, &[1]))
            .expect("another sender has its own window");
        let ids: Vec<u64> = b
            .by_msg
            .range(([1; 16], 0)..=([1; 16], u64::MAX))
            .map(|((_, id), _)| *id)
            .collect();
        assert_eq!(ids.len() as u64, PROOF_WINDOW);
        assert_eq!(ids.first(), Some(&11));
        assert_eq!(b.units.len() as u64, PROOF_WINDOW + 1);
        // A unit only for ids below the window is not kept.
        assert_eq!(b.add(unit(1, 4, &[3])), None);
    }

    #[test]
    fn units_are_bounded_per_group() {
        let mut b = ProofBook::default();
        for s in 0..=255u8 {
            for id in 1..=20 {
                b.add(unit(s, 200, &[id]));
            }
        }
        assert_eq!(b.units.len(), MAX_PROOF_UNITS_KEPT);
        // Every reference points at a kept unit.
        for signers in b.by_msg.values() {
            for n in signers.values() {
                assert!(b.units.contains_key(n));
            }
        }
    }

    #[test]
    fn packing_respects_the_unit_count_and_byte_budget() {
        let small = SignedReceipts {
            signer: MemberId([1; 16]),
            receipts: vec![(1, Digest([0; 32]))],
            sig: [0; 64],
        };
        let many: Vec<&SignedReceipts> = std::iter::repeat_n(&small, 150).collect();
        let envs = pack(&many);
        let counts: Vec<usize> = envs
            .iter()
            .map(|e| match e {
                GroupEnvelope::Proof { units } => units.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 150);
        assert!(counts.iter().all(|n| *n <= MAX_PROOF_UNITS));
        let big = SignedReceipts {
            signer: MemberId([1; 16]),
            receipts: vec![(1, Digest([0; 32])); 256],
            sig: [0; 64],
        };
        let envs = pack(&[&big, &big]);
        assert_eq!(envs.len(), 2, "two units over the budget go apart");
    }
}
