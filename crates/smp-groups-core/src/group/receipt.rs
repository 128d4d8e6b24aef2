//! Receipts (`RCVD`, `RCVDS`): sent when the client acknowledges a message (per
//! `ReceiptPolicy`), checked and counted when they come back.

use smp_groups_crypto::ed25519::PublicKey;
use smp_groups_wire::agent::{AMessage, Digest, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{Mid, Note};

impl Agent {
    pub(crate) fn cmd_ack(&mut self, group: &str, msg_id: u64) -> Result<Event, CommandError> {
        let policy = self.cfg.receipts;
        let now = self.now;
        let g = self.group_mut(group)?;
        let r = g.recvs.remove(&msg_id).ok_or(CommandError::NoId(msg_id))?;
        // A member that is gone gets no receipt.
        let full = g.members.get_mut(&r.from).is_some_and(|m| {
            m.receipts.push((r.ext_msg_id, r.content_hash));
            m.receipts_due
                .get_or_insert(now.saturating_add(policy.max_delay_ms));
            m.receipts.len() >= policy.batch_len() || policy.max_delay_ms == 0
        });
        self.touch_group(group);
        if full {
            self.send_receipts(group, r.from);
        }
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// Sends the receipts waiting for member `x`: one `RCVD` for a single
    /// message, otherwise `RCVDS` envelopes of up to the policy's batch size,
    /// each with one signature.
    pub(crate) fn send_receipts(&mut self, group: &str, x: Mid) {
        let policy = self.cfg.receipts;
        let Some(g) = self.edit_group(group) else {
            return;
        };
        let (gid, me) = (smp_groups_wire::agent::GroupId(g.id), MemberId(g.me));
        let Some(m) = g.members.get_mut(&x) else {
            return;
        };
        let pending = std::mem::take(&mut m.receipts);
        m.receipts_due = None;
        let Some(conn) = m.conn else {
            tracing::debug!(group, member = %MemberId(x), count = pending.len(), "receipts for a member not connected: dropped");
            return;
        };
        let mut envs = Vec::new();
        let mut signed = Vec::new();
        for chunk in pending.chunks(policy.batch_len()) {
            let list: Vec<(u64, Digest)> = chunk.iter().map(|(id, h)| (*id, Digest(*h))).collect();
            // RCVD and RCVDS sign the same bytes: the list form.
            let sig = policy.sign.then(|| {
                let payload =
                    smp_groups_integrity::receipts_payload(&gid, &MemberId(x), &me, &list);
                g.signing_key.sign(&payload).to_bytes()
            });
            if let Some(sig) = sig {
                signed.push((list.clone(), sig));
            }
            let env = match list.as_slice() {
                [(id, digest)] => GroupEnvelope::Rcvd {
                    ext_msg_id: *id,
                    digest: *digest,
                    sig,
                },
                _ => GroupEnvelope::Receipts {
                    sig,
                    receipts: list,
                },
            };
            envs.push(env);
        }
        for (list, sig) in signed {
            // Our own signed receipts are part of the proof we can show.
            self.keep_receipt(group, (x, me.0), &list, sig);
        }
        for env in envs {
            self.enqueue(conn, &AMessage::Group(env), Note::None);
        }
    }

    pub(crate) fn on_rcvd(
        &mut self,
        group: &str,
        from: Mid,
        ext_msg_id: u64,
        digest: smp_groups_wire::agent::Digest,
        sig: Option<[u8; 64]>,
    ) {
        self.on_receipts(group, from, &[(ext_msg_id, digest)], sig, |gid, me| {
            smp_groups_integrity::receipts_payload(
                &smp_groups_wire::agent::GroupId(gid),
                &MemberId(me),
                &MemberId(from),
                &[(ext_msg_id, digest)],
            )
        });
    }

    /// Receipts of `from` for our messages (`RCVD`: one, `RCVDS`: several)
    /// under one signature over `payload(group id, our id)`. The signature is
    /// checked once, and only if one of them is still awaited.
    pub(crate) fn on_receipts(
        &mut self,
        group: &str,
        from: Mid,
        receipts: &[(u64, smp_groups_wire::agent::Digest)],
        sig: Option<[u8; 64]>,
        payload: impl FnOnce([u8; 16], Mid) -> Vec<u8>,
    ) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let awaited = receipts.iter().any(|(id, _)| {
            g.ext_to_int
                .get(id)
                .and_then(|int_id| g.sends.get(int_id))
                .is_some_and(|t| t.rcvd_pending.contains(&from))
        });
        if !awaited {
            return;
        }
        let required = self.cfg.receipts.sign;
        let refused = match receipt_sig(g, from, sig, payload) {
            Sig::Valid => None,
            Sig::Missing if !required => None,
            Sig::Missing => {
                Some("unsigned or from a member whose key is unknown, while signed receipts are on")
            }
            Sig::Bad => Some("with a bad signature"),
        };
        if let Some(why) = refused {
            let detail = format!("{} receipt(s) {why}", receipts.len());
            self.refuse(
                FaultSource::Peer,
                FaultKind::BadSignature,
                At::member(group, Some(from), None),
                &detail,
            );
        }
        let sig_ok = refused.is_none();
        if let (Some(sig), true) = (sig, sig_ok) {
            // Signed and valid: kept as proof, and re-broadcast.
            let me = self.groups.get(group).map(|g| g.me);
            if let Some(me) = me {
                self.keep_receipt(group, (me, from), receipts, sig);
            }
        }
        for (id, digest) in receipts {
            self.apply_receipt(group, from, *id, *digest, sig_ok);
        }
    }

    /// One receipt of `from` for our message `ext_msg_id`, its signature
    /// already checked.
    fn apply_receipt(
        &mut self,
        group: &str,
        from: Mid,
        ext_msg_id: u64,
        digest: smp_groups_wire::agent::Digest,
        sig_ok: bool,
    ) {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.edit_group(group) else {
            // Internal: found by our caller in this input.
            return;
        };
        let Some(t) = g
            .ext_to_int
            .get(&ext_msg_id)
            .copied()
            .and_then(|int_id| Some((int_id, g.sends.get_mut(&int_id)?)))
        else {
            // The send is complete (everyone else answered, or stopped
            // waiting for this member).
            let detail = format!("receipt for {ext_msg_id}, a send no longer tracked");
            self.refuse(FaultSource::Nobody, FaultKind::Stale, at, &detail);
            return;
        };
        let (int_id, t) = t;
        if !t.rcvd_pending.remove(&from) {
            let detail = format!("receipt for {ext_msg_id} again");
            self.refuse(FaultSource::Nobody, FaultKind::Duplicate, at, &detail);
            return;
        }
        let status = if !sig_ok {
            crate::ReceiptStatus::BadSig
        } else if digest.0 == t.content_hash {
            crate::ReceiptStatus::Ok
        } else {
            crate::ReceiptStatus::BadHash
        };
        t.status = t.status.worst(status);
        self.event(Event::Rcvd {
            group: group.to_owned(),
            member: Some(MemberId(from)),
            msg_id: int_id,
            status,
        });
        self.finish_send_track(group, int_id);
    }
}

/// What a receipt's signature shows.
enum Sig {
    /// It verifies with the member's key.
    Valid,
    /// It does not verify.
    Bad,
    /// There is none, or the member's key is unknown: valid only while
    /// signed receipts are off.
    Missing,
}

/// Checks a receipt signature by `from` over `payload(group id, our id)`.
fn receipt_sig(
    g: &crate::state::Group,
    from: Mid,
    sig: Option<[u8; 64]>,
    payload: impl FnOnce([u8; 16], Mid) -> Vec<u8>,
) -> Sig {
    let key = g.members.get(&from).and_then(|m| m.signing_key);
    match (sig, key) {
        (Some(s), Some(k)) => {
            let ok = PublicKey::from_bytes(k)
                .verify(
                    &payload(g.id, g.me),
                    &smp_groups_crypto::ed25519::Signature::from_bytes(s),
                )
                .is_ok();
            if ok { Sig::Valid } else { Sig::Bad }
        }
        _ => Sig::Missing,
    }
}
