//! History for new members: the member that adds someone hands it the last
//! group messages it holds, each with its original sender's signature.
//!
//! With [`crate::HistoryShare`] on, an agent sends its group messages as
//! `SMSG`: the `MSG` fields plus an Ed25519 signature by its group signing
//! key (the key every member learns from its `memberInfo`) over
//! [`signed_bytes`]. It keeps the last signed messages it sent or received
//! and checked ([`SharedRec`], one stored record each, [`Key::Shared`]),
//! within the configured count and bytes. When it adds a member it sends it
//! those messages as `HIST`, oldest first, just before `MEM` (by then the new
//! member has every member's `memberInfo`, so it knows their keys).
//!
//! The new member takes a `HIST` only from the member that added it, checks
//! the signature with the original sender's key, and reports the message
//! with the integrity [`crate::MsgIntegrity::History`] and local id 0. A
//! history message enters no chain (the integrity state never sees it), gets
//! no receipt and needs no `ACK`; the same message twice is a duplicate
//! (counted, dropped). A signature that does not verify is refused as
//! [`FaultKind::BadSignature`] (counted, logged, never shown); a message of
//! a sender whose key we do not know (it left before we joined) as
//! [`FaultKind::Stale`].

use serde::{Deserialize, Serialize};
use smp_groups_crypto::ed25519::{PublicKey, Signature};
use smp_groups_wire::agent::{AMessage, Content, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{Event, MsgIntegrity};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{Mid, Note};
use crate::store::Key;

/// The most messages [`crate::HistoryShare`] may keep per group.
pub const HISTORY_SHARE_MAX_MESSAGES: usize = 256;

/// The most content bytes [`crate::HistoryShare`] may keep per group.
pub const HISTORY_SHARE_MAX_BYTES: usize = 4 << 20;

/// What a message signature signs.
const SIG_CONTEXT: &[u8] = b"smp-groups msg v1";

/// The bytes a group message's signature covers: a context, the group, the
/// sender, its ids and time, and the content's SHA-256.
pub(crate) fn signed_bytes(
    group_id: [u8; 16],
    sender: Mid,
    ext_msg_id: u64,
    snd_ts: u64,
    content: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIG_CONTEXT.len() + 16 + 16 + 8 + 8 + 32);
    out.extend_from_slice(SIG_CONTEXT);
    out.extend_from_slice(&group_id);
    out.extend_from_slice(&sender);
    out.extend_from_slice(&ext_msg_id.to_be_bytes());
    out.extend_from_slice(&snd_ts.to_be_bytes());
    out.extend_from_slice(&smp_groups_integrity::chain::content_hash(content).0);
    out
}

/// One signed group message kept to hand to members we add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharedRec {
    /// Its original sender (possibly us).
    pub(crate) sender: Mid,
    /// The sender's group-wide id.
    pub(crate) ext_msg_id: u64,
    /// The sender's send time.
    pub(crate) snd_ts: u64,
    /// The sender's signature (64 bytes).
    #[serde(with = "crate::serde_bytes")]
    pub(crate) sig: Vec<u8>,
    /// The content.
    #[serde(with = "crate::serde_bytes")]
    pub(crate) content: Vec<u8>,
}

impl Agent {
    /// Signs our message `ext_msg_id` if history sharing is on: the `SMSG`
    /// to send instead of `MSG`; the message is kept for new members.
    pub(crate) fn sign_group_msg(
        &mut self,
        group: &str,
        ext_msg_id: u64,
        snd_ts: u64,
        content: &Content,
    ) -> Option<GroupEnvelope> {
        if !self.cfg.history.is_on() {
            return None;
        }
        let g = self.groups.get(group)?;
        let bytes = signed_bytes(g.id, g.me, ext_msg_id, snd_ts, content.as_slice());
        let sig = g.signing_key.sign(&bytes).to_bytes();
        let me = g.me;
        self.keep_shared(
            group,
            SharedRec {
                sender: me,
                ext_msg_id,
                snd_ts,
                sig: sig.to_vec(),
                content: content.as_slice().to_vec(),
            },
        );
        Some(GroupEnvelope::SignedMsg {
            ext_msg_id,
            snd_ts,
            sig,
            content: content.clone(),
        })
    }

    /// A signed message from `from` was delivered: keep it for new members
    /// if its signature verifies (a bad one is counted; the message itself
    /// was taken by its chain like any `MSG`).
    pub(crate) fn keep_received_signed(
        &mut self,
        group: &str,
        from: Mid,
        (ext_msg_id, snd_ts): (u64, u64),
        sig: [u8; 64],
        content: &[u8],
    ) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let bytes = signed_bytes(g.id, from, ext_msg_id, snd_ts, content);
        let ok = g
            .members
            .get(&from)
            .and_then(|m| m.signing_key)
            .is_some_and(|k| {
                PublicKey::from_bytes(k)
                    .verify(&bytes, &Signature::from_bytes(sig))
                    .is_ok()
            });
        if !ok {
            self.refuse(
                FaultSource::Peer,
                FaultKind::BadSignature,
                At::member(group, Some(from), None),
                &format!("SMSG {ext_msg_id}: the signature does not verify; not kept"),
            );
            return;
        }
        if self.cfg.history.is_on() {
            self.keep_shared(
                group,
                SharedRec {
                    sender: from,
                    ext_msg_id,
                    snd_ts,
                    sig: sig.to_vec(),
                    content: content.to_vec(),
                },
            );
        }
    }

    /// Keeps `rec`, dropping the oldest beyond the bounds.
    fn keep_shared(&mut self, group: &str, rec: SharedRec) {
        let (max_n, max_bytes) = self.cfg.history.bounds();
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if rec.content.len() > max_bytes {
            tracing::debug!(group, "message larger than the history bound: not kept");
            return;
        }
        let seq = g.shared.last_key_value().map_or(1, |(k, _)| k + 1);
        g.shared.insert(seq, rec);
        self.dirty.insert(Key::Shared(group.to_owned(), seq));
        let mut bytes: usize = g.shared.values().map(|r| r.content.len()).sum();
        while g.shared.len() > max_n || bytes > max_bytes {
            let Some((old, r)) = g.shared.pop_first() else {
                break;
            };
            bytes = bytes.saturating_sub(r.content.len());
            self.dirty.insert(Key::Shared(group.to_owned(), old));
        }
    }

    /// As the introducer of `x`, just before its `MEM`: hand it the kept
    /// messages, oldest first.
    pub(crate) fn send_history(&mut self, group: &str, x: Mid, conn: u64) {
        if !self.cfg.history.is_on() {
            return;
        }
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let envs: Vec<GroupEnvelope> = g
            .shared
            .values()
            .filter(|r| r.sender != x)
            .filter_map(|r| {
                Some(GroupEnvelope::History {
                    sender: MemberId(r.sender),
                    ext_msg_id: r.ext_msg_id,
                    snd_ts: r.snd_ts,
                    sig: r.sig.as_slice().try_into().ok()?,
                    content: Content::new(r.content.clone()).ok()?,
                })
            })
            .collect();
        tracing::debug!(group, member = %MemberId(x), n = envs.len(), "history handed on");
        for env in envs {
            self.enqueue(conn, &AMessage::Group(env), Note::None);
        }
    }

    /// `HIST` from `by`: report the message as history if `by` added us and
    /// the original sender's signature verifies.
    pub(crate) fn on_history(
        &mut self,
        group: &str,
        by: Mid,
        (sender, ext_msg_id, snd_ts): (Mid, u64, u64),
        sig: [u8; 64],
        content: &[u8],
    ) {
        let at = At::member(group, Some(by), None);
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.join.as_ref().map(|j| j.introducer) != Some(by) {
            self.refuse(
                FaultSource::Peer,
                FaultKind::Unexpected,
                at,
                &format!("HIST {ext_msg_id} from a member that did not add us"),
            );
            return;
        }
        let key = if sender == g.me {
            Some(*g.signing_key.public_key().as_bytes())
        } else {
            g.members.get(&sender).and_then(|m| m.signing_key)
        };
        let Some(key) = key else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &format!(
                    "HIST {ext_msg_id} of {}: its sender's key is unknown",
                    MemberId(sender)
                ),
            );
            return;
        };
        let bytes = signed_bytes(g.id, sender, ext_msg_id, snd_ts, content);
        if PublicKey::from_bytes(key)
            .verify(&bytes, &Signature::from_bytes(sig))
            .is_err()
        {
            self.refuse(
                FaultSource::Peer,
                FaultKind::BadSignature,
                at,
                &format!(
                    "HIST {ext_msg_id} of {}: the signature does not verify",
                    MemberId(sender)
                ),
            );
            return;
        }
        if !g.history_seen.insert((sender, ext_msg_id)) {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Duplicate,
                at,
                &format!("HIST {ext_msg_id} of {} again", MemberId(sender)),
            );
            return;
        }
        let meta = self.msg_meta(ext_msg_id, snd_ts, MsgIntegrity::History);
        self.event(Event::Msg {
            group: group.to_owned(),
            member: MemberId(sender),
            msg_id: 0,
            meta,
            body: content.to_vec(),
        });
    }

    /// Marks every kept message of a group to be deleted from the store.
    pub(crate) fn forget_shared(&mut self, group: &str) {
        let ids: Vec<u64> = self
            .groups
            .get(group)
            .map(|g| g.shared.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.dirty.insert(Key::Shared(group.to_owned(), id));
        }
    }
}

impl Agent {
    /// The kept messages of a group to hand to new members: (sender,
    /// extMsgId), oldest first.
    pub fn shared_history(&self, group: &str) -> Vec<(MemberId, u64)> {
        self.groups.get(group).map_or_else(Vec::new, |g| {
            g.shared
                .values()
                .map(|r| (MemberId(r.sender), r.ext_msg_id))
                .collect()
        })
    }

    /// Simulation only: flips a byte of the content of every kept message
    /// of the group, as a member handing on altered history would.
    #[cfg(feature = "sim")]
    pub fn tamper_shared(&mut self, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            for r in g.shared.values_mut() {
                if let Some(b) = r.content.first_mut() {
                    *b ^= 1;
                }
            }
        }
    }
}
