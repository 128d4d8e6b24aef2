//! Pairwise connections, by part:
//!
//! * [`handshake`]: invitation, join, confirmation, `HELLO`;
//! * [`outbox`]: queued messages, sealing, sends to the relay;
//! * [`Reassembly`]: fragmented messages put back together;
//! * [`visible`]: the client's commands on its pairwise connections;
//!
//! and here: received envelopes up to their dispatch, closing a connection.

mod handshake;
mod outbox;
mod reassembly;
mod visible;

pub(crate) use reassembly::Reassembly;

use smp_groups_crypto::sha256;
use smp_groups_integrity::ConnVerdict;
use smp_groups_wire::agent::{AMessage, AgentEnvelope, AgentMessage, Fragment, Limits, MsgHeader};
use smp_groups_wire::{DecodeWith, Reader, decode_all_with};

use crate::Agent;
use crate::api::Event;
use crate::fault::{At, FaultKind, FaultSource};
use crate::relay::RelayOp;
use crate::state::{Conn, ConnStatus, Owner, Payload, Purpose};

/// Associated data bound into every ratchet message.
const RATCHET_AD: &[u8] = b"smp-groups/conn/1";

impl Agent {
    pub(crate) fn limits(&self) -> Limits {
        let chunk = self.cfg.fragment_chunk().max(1);
        let n = self.cfg.max_message_len.div_ceil(chunk).saturating_add(1);
        Limits {
            max_fragments: u16::try_from(n).unwrap_or(u16::MAX),
        }
    }

    fn random32(&mut self) -> [u8; 32] {
        use rand_core::RngCore;
        let mut b = [0u8; 32];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// Deletes the receive queue and drops the connection once its outbox is sent.
    pub(crate) fn close_conn(&mut self, id: u64) {
        if self.conns.get(&id).is_some_and(Conn::held) {
            // A member joined this open invitation and waits for our `HELLO`:
            // it is told we will not connect.
            self.release_held(id);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.closing = true;
        tracing::debug!(conn = id, owner = ?conn.owner, status = ?conn.status, "closing");
        // Our confirmation is out but `HELLO` has not come: the peer counts us
        // as connected, so what we queued (a `LEFT`) must still reach it. Keep
        // the receive queue until `HELLO` arrives (bounded by the removal grace).
        let waits_for_hello = conn.status == ConnStatus::Joined
            && conn
                .outbox
                .iter()
                .any(|i| matches!(i.payload, Payload::Plain(_)));
        if waits_for_hello {
            if conn.linger_until.is_none() {
                conn.linger_until = Some(self.now.saturating_add(self.cfg.removal_grace_ms));
            }
            self.touch_conn(id);
            return;
        }
        conn.linger_until = None;
        self.delete_rcv_queue(id);
        // Nothing can be sent on a connection that never became ready.
        if let Some(conn) = self.conns.get_mut(&id)
            && conn.status != ConnStatus::Ready
            && conn.in_flight.is_none()
        {
            conn.outbox.clear();
        }
        self.touch_conn(id);
    }

    /// Deletes connection `id`'s receive queue at its relay, if it has one.
    fn delete_rcv_queue(&mut self, id: u64) {
        let Some(q) = self.conns.get_mut(&id).and_then(|c| c.rcv.take()) else {
            return;
        };
        self.rcv_index.remove(&(q.server.clone(), q.rcv_id.clone()));
        self.forget_queue(q.server.clone(), q.rcv_id.clone());
        let op = self.alloc_op();
        self.issue(
            RelayOp::Delete {
                op,
                server: q.server,
                rcv_id: q.rcv_id,
            },
            Purpose::Plain,
        );
    }

    /// A member connection whose peer's queue went away and that sent no
    /// word within the removal grace (`Timer::PeerGone`): the member counts
    /// as left.
    pub(crate) fn expire_gone_peer(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.peer_gone_at = None;
        let owner = c.owner.clone();
        self.close_conn(id);
        let Owner::Member { group, member } = owner else {
            return;
        };
        let current = self
            .groups
            .get(&group)
            .and_then(|g| g.members.get(&member))
            .is_some_and(|m| m.conn == Some(id));
        if current {
            tracing::warn!(group, member = %smp_groups_wire::agent::MemberId(member), "no word from a member whose queue is gone: it counts as left");
            self.member_gone(&group, member);
            self.event(Event::Left {
                group: group.clone(),
                member: Some(smp_groups_wire::agent::MemberId(member)),
            });
            self.check_empty(&group);
        }
    }

    /// A closing connection that waited in vain for `HELLO`
    /// (`Timer::Linger`): drop what it holds.
    pub(crate) fn end_lingering(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.linger_until = None;
            let keep = usize::from(c.in_flight.is_some());
            c.outbox.truncate(keep);
        }
        self.delete_rcv_queue(id);
        self.touch_conn(id);
    }

    fn drop_conn(&mut self, id: u64) {
        self.delete_rcv_queue(id);
        self.conns.remove(&id);
        self.mark_conn(id);
    }

    /// A message arrived on connection `id`'s receive queue.
    pub(crate) fn on_message(&mut self, id: u64, body: &[u8]) {
        let env = match smp_groups_wire::decode_all::<AgentEnvelope>(body) {
            Ok(env) => env,
            Err(e) => {
                let detail = format!("envelope: {e}");
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Malformed,
                    At::conn(id),
                    &detail,
                );
                return;
            }
        };
        match env {
            AgentEnvelope::Confirmation {
                e2e_params,
                enc_conn_info,
                ..
            } => self.on_confirmation(id, e2e_params.as_slice(), enc_conn_info.as_slice()),
            AgentEnvelope::Message {
                enc_agent_message, ..
            } => self.on_sealed(id, enc_agent_message.as_slice()),
        }
    }

    /// A ratchet-encrypted agent message on connection `id`.
    fn on_sealed(&mut self, id: u64, enc: &[u8]) {
        let limits = self.limits();
        let Some(conn) = self.conns.get_mut(&id) else {
            // Internal: the receive index names live connections only.
            return;
        };
        let Some(ratchet) = conn.ratchet.as_mut() else {
            // An inviter waiting for the confirmation has no ratchet yet.
            let detail = format!("a message before the handshake ({:?})", conn.status);
            self.refuse(
                FaultSource::Peer,
                FaultKind::Unexpected,
                At::conn(id),
                &detail,
            );
            return;
        };
        // A replay or a forgery fails here and leaves the state unchanged.
        let plain = match ratchet.decrypt(enc, RATCHET_AD) {
            Ok(plain) => plain,
            Err(smp_groups_crypto::CryptoError::Replay { n }) => {
                // Delivery is at least once: the relay redelivers what was
                // not acknowledged, and a send whose answer was lost is sent
                // again. (A peer that sends an old ciphertext again is
                // counted here too; it has no effect.)
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::Duplicate,
                    At::conn(id),
                    &format!("a message the ratchet already decrypted ({n})"),
                );
                return;
            }
            Err(e) => {
                self.undecryptable(id, &e);
                return;
            }
        };
        // The ratchet advanced: the connection is stored with this input,
        // whatever becomes of the message.
        self.undecryptable.remove(&id);
        self.touch_conn(id);
        let (header, body) = match decode_all_with::<AgentMessage, _>(&plain, limits) {
            Ok(AgentMessage::Message { header, body }) => (header, body),
            Ok(AgentMessage::ConnInfo(_)) => {
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Unexpected,
                    At::conn(id),
                    &"connection info after the handshake",
                );
                return;
            }
            Err(e) => {
                let detail = format!("agent message: {e}");
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Malformed,
                    At::conn(id),
                    &detail,
                );
                return;
            }
        };
        let Some(verdict) = self
            .conns
            .get_mut(&id)
            .map(|c| c.chain.receive(&header, &plain))
        else {
            return;
        };
        if let Some(inbound) = self.inbound.as_mut() {
            inbound.verdict = Some(verdict);
        }
        match verdict {
            ConnVerdict::Ok => {}
            ConnVerdict::BadId { id: got, last } => {
                let detail = format!("message id {got} after {last}");
                self.refuse(FaultSource::Peer, FaultKind::ChainId, At::conn(id), &detail);
                return;
            }
            ConnVerdict::Duplicate { id: got } => {
                let detail = format!("message id {got} again");
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::Duplicate,
                    At::conn(id),
                    &detail,
                );
                return;
            }
            // Taken, but counted: messages were lost or the histories differ.
            ConnVerdict::Skipped { from, to } => {
                let detail = format!("messages {from}..={to} never arrived");
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::ChainGap,
                    At::conn(id),
                    &detail,
                );
            }
            ConnVerdict::BadHash { id: got } => {
                let detail = format!("message {got} follows another history");
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::ChainFork,
                    At::conn(id),
                    &detail,
                );
            }
        }
        self.dispatch(id, header, body, true);
    }

    /// Acts on one accepted agent message. `top` is false for a message
    /// reassembled from fragments (which cannot itself be a fragment).
    fn dispatch(&mut self, id: u64, header: MsgHeader, body: AMessage, top: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            // Internal: our caller found it in this input.
            return;
        };
        let unexpected = |what: &str| {
            format!(
                "{what} on a connection {:?} of {:?}",
                conn.status, conn.owner
            )
        };
        match body {
            AMessage::Hello => {
                if conn.status == ConnStatus::Joined {
                    conn.status = ConnStatus::Ready;
                    self.touch_conn(id);
                    self.on_connected(id, None);
                } else {
                    let detail = unexpected("HELLO");
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        At::conn(id),
                        &detail,
                    );
                }
            }
            AMessage::UserMsg { snd_ts, content } => {
                if let Owner::Visible(alias) = conn.owner.clone() {
                    let msg_id = conn.next_msg_id;
                    conn.next_msg_id += 1;
                    let digest = sha256(content.as_slice());
                    conn.unacked.insert(msg_id, (header.snd_msg_id, digest));
                    self.mark_conn(id);
                    let verdict = self.inbound.as_ref().and_then(|i| i.verdict);
                    let integrity = match verdict {
                        Some(ConnVerdict::Skipped { from, to }) => {
                            crate::MsgIntegrity::Skipped { from, to }
                        }
                        Some(ConnVerdict::BadHash { .. }) => crate::MsgIntegrity::BadHash,
                        // Ok; the others are never dispatched.
                        _ => crate::MsgIntegrity::Ok,
                    };
                    let meta = self.msg_meta(header.snd_msg_id, snd_ts, integrity);
                    self.event(Event::ConnMsg {
                        alias,
                        msg_id,
                        meta,
                        body: content.into_vec(),
                    });
                } else {
                    let detail = unexpected("a pairwise message");
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        At::conn(id),
                        &detail,
                    );
                }
            }
            AMessage::Receipts(receipts) => {
                let Owner::Visible(alias) = conn.owner.clone() else {
                    let detail = unexpected("pairwise receipts");
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        At::conn(id),
                        &detail,
                    );
                    return;
                };
                let total = receipts.len();
                let ids: Vec<u64> = receipts
                    .iter()
                    .filter_map(|r| conn.sent_ids.remove(&r.msg_id))
                    .collect();
                self.mark_conn(id);
                if ids.len() < total {
                    // Receipts for messages we never sent, or sent so long
                    // ago that we forgot them (we keep the last 1,024).
                    let detail = format!("{} receipts for no message we know", total - ids.len());
                    self.refuse(
                        FaultSource::Peer,
                        FaultKind::Unexpected,
                        At::conn(id),
                        &detail,
                    );
                }
                for msg_id in ids {
                    self.event(Event::ConnRcvd {
                        alias: alias.clone(),
                        msg_id,
                    });
                }
            }
            AMessage::Fragment(f) if top => match self.on_fragment(id, f) {
                Ok(Some(inner)) => self.dispatch(id, header, inner, false),
                Ok(None) => {}
                Err((kind, detail)) => {
                    self.refuse(FaultSource::Peer, kind, At::conn(id), &detail);
                }
            },
            AMessage::Fragment(_) => {
                self.refuse(
                    FaultSource::Peer,
                    FaultKind::Malformed,
                    At::conn(id),
                    &"a fragment inside a fragmented message",
                );
            }
            AMessage::Group(env) => {
                let owner = conn.owner.clone();
                if matches!(owner, Owner::Open { .. }) {
                    // A slot whose confirmation we refused (it is closing).
                    self.refuse(
                        FaultSource::Nobody,
                        FaultKind::Stale,
                        At::conn(id),
                        &"group envelope on an open invitation nobody took",
                    );
                } else {
                    self.on_group_envelope(id, &owner, header.snd_msg_id, env);
                }
            }
        }
    }

    /// One fragment of a message on connection `id`: the whole message once
    /// every part is in, `None` while parts are missing.
    fn on_fragment(
        &mut self,
        id: u64,
        f: Fragment,
    ) -> Result<Option<AMessage>, (FaultKind, String)> {
        let max_len = self.cfg.max_message_len.saturating_add(64);
        let limits = self.limits();
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(None);
        };
        let added = conn.frags.add(f, max_len)?;
        self.mark_conn(id);
        if let Some(m) = added.evicted {
            // Our sender never interleaves fragmented messages.
            let detail = format!(
                "more than {} partial messages: {m} dropped",
                Reassembly::MAX_PARTIAL
            );
            self.refuse(
                FaultSource::Peer,
                FaultKind::OverLimit,
                At::conn(id),
                &detail,
            );
        }
        let Some(whole) = added.whole? else {
            return Ok(None);
        };
        let bad = |e: &dyn std::fmt::Display| (FaultKind::Malformed, format!("fragments: {e}"));
        let mut r = Reader::new(&whole);
        let inner = AMessage::decode_with(&mut r, limits).map_err(|e| bad(&e))?;
        r.expect_end("message").map_err(|e| bad(&e))?;
        Ok(Some(inner))
    }
}
