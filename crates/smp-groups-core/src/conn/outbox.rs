//! The per-connection outbox: messages queued for a connection, sealed
//! (chain header + double ratchet) one at a time when they reach its head,
//! handed to the relay, and moved or dropped when a member's connection
//! changes.

use smp_groups_crypto::ratchet::Ratchet;
use smp_groups_wire::Encode;
use smp_groups_wire::agent::{AGENT_VERSION, AMessage, AgentEnvelope, Encrypted, Fragment};

use super::RATCHET_AD;
use crate::Agent;
use crate::api::Event;
use crate::fault::{At, FaultKind, FaultSource};
use crate::relay::{RelayOp, SendKind};
use crate::state::{ConnStatus, Mid, Note, OutItem, Owner, Payload, Purpose};

impl Agent {
    /// Queues an agent message on a connection (fragmented if larger than a block).
    pub(crate) fn enqueue(&mut self, id: u64, msg: &AMessage, note: Note) {
        let kind = msg.kind();
        let bytes = msg.to_bytes();
        let block = self.cfg.block_payload();
        let chunk = self.cfg.fragment_chunk();
        let limits = self.limits();
        let Some(conn) = self.conns.get_mut(&id) else {
            // Internal: callers pass connections they just found.
            return;
        };
        if conn.closing || conn.peer_gone_at.is_some() {
            tracing::debug!(
                conn = id,
                %kind,
                "not queued: the connection is closing or its peer is gone"
            );
            return;
        }
        if bytes.len() <= block {
            conn.outbox.push_back(OutItem {
                payload: Payload::Plain(bytes),
                note,
                kind: SendKind::whole(kind),
            });
        } else {
            let frag_id = conn.next_frag_id;
            let parts = match Fragment::split(frag_id, &bytes, chunk, limits.max_fragments) {
                Ok(parts) => parts,
                Err(e) => {
                    let detail = format!("{kind} of {} bytes not queued: {e}", bytes.len());
                    self.refuse(
                        FaultSource::Local,
                        FaultKind::Internal,
                        At::conn(id),
                        &detail,
                    );
                    return;
                }
            };
            conn.next_frag_id += 1;
            let last = parts.len().saturating_sub(1);
            for (i, f) in parts.into_iter().enumerate() {
                conn.outbox.push_back(OutItem {
                    payload: Payload::Plain(AMessage::Fragment(f).to_bytes()),
                    note: if i == last { note.clone() } else { Note::None },
                    kind: SendKind::fragment_of(kind),
                });
            }
        }
        self.touch_conn(id);
    }

    /// Moves every kicked connection's outbox: seals its head and sends it.
    pub(crate) fn pump(&mut self) {
        for id in std::mem::take(&mut self.kick) {
            self.pump_conn(id);
        }
    }

    pub(super) fn pump_conn(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.in_flight.is_some() || conn.securing || conn.held() {
            return;
        }
        if conn.outbox.is_empty() {
            if conn.closing {
                self.drop_conn(id);
            }
            return;
        }
        if conn.peer_gone_at.is_some() {
            conn.outbox.clear();
            if conn.closing {
                self.drop_conn(id);
            }
            return;
        }
        // An inviter has no queue to send to before the confirmation.
        let Some(snd) = conn.snd.clone() else { return };
        let Some(head) = conn.outbox.front_mut() else {
            return;
        };
        if let Payload::Plain(body) = &head.payload {
            if conn.status != ConnStatus::Ready {
                // It waits for the connection to be established.
                return;
            }
            #[cfg(feature = "cheat")]
            let fork = self.fork_next.remove(&id);
            #[cfg(not(feature = "cheat"))]
            let fork = false;
            match seal(
                &mut conn.chain,
                conn.ratchet.as_mut(),
                &mut self.rng,
                body,
                fork,
            ) {
                Ok((snd_msg_id, sealed)) => {
                    if let Note::ConnMsg { msg_id } = head.note {
                        // Bounded: the oldest unacknowledged ones are forgotten first.
                        if conn.sent_ids.len() >= 1024 {
                            conn.sent_ids.pop_first();
                        }
                        conn.sent_ids.insert(snd_msg_id, msg_id);
                    }
                    head.payload = Payload::Sealed(sealed);
                }
                Err(e) => {
                    // The outbox cannot move past this message.
                    let detail = format!("cannot seal {}: {e}", head.kind);
                    self.report(
                        FaultSource::Local,
                        FaultKind::Internal,
                        At::conn(id),
                        &detail,
                    );
                    return;
                }
            }
        }
        let (Payload::Sealed(body) | Payload::Plain(body)) = &head.payload;
        let body = body.clone();
        let kind = head.kind;
        let op = self.alloc_op();
        tracing::trace!(conn = id, %kind, op = op.0, "sending");
        if let Some(c) = self.conns.get_mut(&id) {
            c.in_flight = Some(op);
        }
        self.touch_conn(id);
        self.kick.remove(&id);
        self.issue(
            RelayOp::Send {
                op,
                server: snd.server,
                snd_id: snd.snd_id,
                auth: snd.secured.then_some(snd.auth),
                kind,
                body,
            },
            Purpose::Send(id),
        );
    }

    pub(crate) fn on_send_done(&mut self, id: u64, op: crate::relay::OpId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::conn(id),
                &"send result for a connection that is gone",
            );
            return;
        };
        if conn.in_flight != Some(op) {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::UnknownOp,
                At::conn(id),
                &format!("send result for operation {} not in flight", op.0),
            );
            return;
        }
        conn.in_flight = None;
        if let Some(snd) = conn.snd.as_mut() {
            snd.secured = true;
        }
        self.send_refused.remove(&id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let item = conn.outbox.pop_front();
        let owner = conn.owner.clone();
        self.touch_conn(id);
        let Some(item) = item else { return };
        match (item.note, owner) {
            (Note::GroupMsg { int_id, member }, Owner::Member { group, .. }) => {
                self.group_msg_sent(&group, int_id, member);
            }
            (Note::ConnMsg { msg_id }, Owner::Visible(alias)) => {
                self.event(Event::ConnSent { alias, msg_id });
            }
            (Note::Direct { int_id }, Owner::Member { group, member }) => {
                self.direct_sent(&group, member, int_id);
            }
            _ => {}
        }
    }

    /// The peer's queue is gone: drop what cannot be delivered.
    pub(crate) fn on_send_dead(&mut self, id: u64) {
        self.send_refused.remove(&id);
        let Some(conn) = self.conns.get(&id) else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::conn(id),
                &"send refused on a connection that is gone",
            );
            return;
        };
        let detail = format!("the peer's queue is gone (connection {:?})", conn.status);
        if matches!(conn.owner, Owner::Visible(_)) {
            // The peer deleted the connection: nothing can be sent on it.
            self.report(
                FaultSource::Peer,
                FaultKind::PeerQueueGone,
                At::conn(id),
                &detail,
            );
        } else {
            // How a member's departure (or a refused attempt) shows; what it
            // means for the group is decided below and reported as `LEFT`.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::PeerQueueGone,
                At::conn(id),
                &detail,
            );
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.in_flight = None;
        conn.outbox.clear();
        let owner = conn.owner.clone();
        self.touch_conn(id);
        // A member's queue is gone: it left, was removed, or dropped us
        // before connecting. It is no longer a member for us.
        if let Owner::Member { group, member } = owner {
            let status = self
                .groups
                .get(&group)
                .and_then(|g| g.members.get(&member))
                .filter(|m| m.conn == Some(id))
                .map(|m| m.status);
            if status.is_none() {
                // Not the member's current connection: another attempt with it
                // (crossing invitations) carries on. This one is still read
                // within the removal grace, then closed: the member may send
                // on it (its current connection may be this one), and what
                // it sent before it deleted its queue (a `LEFT`) is still in
                // ours.
                if let Some(c) = self.conns.get_mut(&id)
                    && c.peer_gone_at.is_none()
                {
                    c.peer_gone_at = Some(self.now);
                }
                return;
            }
            match status {
                None => {}
                Some(crate::state::MemberStatus::Pending) => {
                    // Another attempt to connect with it may still succeed.
                    if let Some(other) = self.other_attempt(&group, member, id) {
                        tracing::debug!(group, conn = id, other, "attempt failed, another goes on");
                        if let Some(m) = self
                            .groups
                            .get_mut(&group)
                            .and_then(|g| g.members.get_mut(&member))
                        {
                            m.conn = Some(other);
                        }
                        self.touch_group(&group);
                        self.move_outbox(id, other);
                        self.close_conn(id);
                        return;
                    }
                    // While we join, every member our introducer put us in
                    // touch with must be reached: one that refuses us (its
                    // invitation is gone: it removed our introducer, say)
                    // means our join cannot complete, so we leave rather than
                    // end up in a group of our own.
                    if self
                        .groups
                        .get(&group)
                        .is_some_and(crate::state::Group::joining)
                    {
                        tracing::warn!(group, member = %smp_groups_wire::agent::MemberId(member), "a member refused our connection while we join: leaving");
                        self.leave_group(&group);
                        return;
                    }
                    self.close_member(&group, member);
                    self.member_gone(&group, member);
                }
                Some(_) => {
                    // It left, removed us or deleted the group: what it sent
                    // before (its `LEFT`, `OUT` or `DEL`, and the messages
                    // before them) is still in our queue and is still read as
                    // from a member. Nothing more is sent to it; if no word
                    // comes within the removal grace, it counts as left.
                    if let Some(c) = self.conns.get_mut(&id)
                        && c.peer_gone_at.is_none()
                    {
                        c.peer_gone_at = Some(self.now);
                    }
                    self.forget_in_sends(&group, member);
                }
            }
        }
    }

    /// Every connection with member `x` of `group` (crossing invitations can
    /// make more than one), closing ones excluded.
    pub(crate) fn attempts(&self, group: &str, x: Mid) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| {
                !c.closing
                    && c.retire_at.is_none()
                    && matches!(&c.owner, Owner::Member { group: g, member } if g == group && *member == x)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Moves what waits to be sent on attempt `from` (never sealed: it is not
    /// established) to attempt `to`, the one now used with the same member.
    pub(crate) fn move_outbox(&mut self, from: u64, to: u64) {
        if from == to {
            return;
        }
        let Some(old) = self.conns.get_mut(&from) else {
            return;
        };
        let (plain, sealed): (Vec<OutItem>, Vec<OutItem>) = std::mem::take(&mut old.outbox)
            .into_iter()
            .partition(|i| matches!(i.payload, Payload::Plain(_)));
        old.outbox = sealed.into();
        self.touch_conn(from);
        if let Some(new) = self.conns.get_mut(&to) {
            new.outbox.extend(plain);
            self.touch_conn(to);
        }
    }

    /// Our receive queue of connection `id` is secured (or will never be):
    /// what waited for it can go.
    pub(crate) fn on_secured(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.securing = false;
            self.touch_conn(id);
        }
    }

    /// Another live connection attempt with member `x` than `id`.
    pub(super) fn other_attempt(&self, group: &str, x: Mid, id: u64) -> Option<u64> {
        self.attempts(group, x).into_iter().find(|c| *c != id)
    }
}

/// Seals one agent message for sending: the connection's next header, then
/// the ratchet. The chain records it only once the ratchet sealed it (the
/// fixed-size ciphertext always fits an envelope, so nothing fails after the
/// ratchet advanced).
fn seal(
    chain: &mut smp_groups_integrity::ConnectionChain,
    ratchet: Option<&mut Ratchet>,
    rng: &mut rand_chacha::ChaCha20Rng,
    body: &[u8],
    fork: bool,
) -> Result<(u64, Vec<u8>), String> {
    let ratchet = ratchet.ok_or_else(|| "no ratchet".to_owned())?;
    let header = chain.next_header().map_err(|e| e.to_string())?;
    let mut plain = Vec::new();
    smp_groups_wire::agent::AgentMessage::encode_message(&header, body, &mut plain);
    let ct = ratchet
        .encrypt(rng, &plain, RATCHET_AD)
        .map_err(|e| e.to_string())?;
    let enc = Encrypted::new(ct).map_err(|e| e.to_string())?;
    // `fork` (tests of detection only): our chain goes on from other bytes
    // than those sent.
    let recorded: &[u8] = if fork { b"a forked history" } else { &plain };
    chain
        .record_sent(&header, recorded)
        .map_err(|e| e.to_string())?;
    let sealed = AgentEnvelope::Message {
        agent_version: AGENT_VERSION,
        enc_agent_message: enc,
    }
    .to_bytes();
    Ok((header.snd_msg_id, sealed))
}
