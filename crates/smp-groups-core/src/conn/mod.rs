//! Pairwise connections: invitation, join, confirmation, `HELLO`; sealing
//! (chain header + double ratchet) and the per-connection outbox; received
//! envelopes up to their dispatch; fragments.
//!
//! Handshake (inviter I, joiner J):
//!
//! 1. I creates its receive queue and hands out a [`ConnInvitation`]: the
//!    queue's address and I's two X3DH public keys.
//! 2. J creates its reply queue, secures it for I, and sends the confirmation
//!    to I's queue: J's X3DH keys in the clear, and, ratchet-encrypted, the reply
//!    queue address and a [`JoinInfo`] (the key I secures its queue with, the key
//!    I sends to J's queue with, J's member info and chain anchor).
//! 3. I starts its ratchet, secures its queue and sends `HELLO`: I is connected.
//! 4. J receives `HELLO`: J is connected.
//!
//! Cost: two agent envelopes per connection.

use smp_groups_crypto::ed25519::SigningKey;
use smp_groups_crypto::ratchet::{Ratchet, X3dhKeyPairs, X3dhParams};
use smp_groups_crypto::sha256;
use smp_groups_integrity::ConnVerdict;
use smp_groups_wire::agent::{
    AGENT_VERSION, AMessage, AgentEnvelope, AgentMessage, Bounded, ConnInfo, ConnInvitation,
    Content, Encrypted, EnvelopeKind, Fragment, JoinInfo, Limits, MemberId, MemberInfo, MsgHeader,
    QueueAddress, Receipt,
};
use smp_groups_wire::{DecodeWith, Encode, Reader, decode_all, decode_all_with};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::relay::{RelayOp, SendKind};
use crate::state::{
    AnchorRec, Conn, ConnStatus, Mid, Note, OutItem, Owner, Payload, Purpose, RcvQueue, SndQueue,
};

/// Associated data bound into every ratchet message.
const RATCHET_AD: &[u8] = b"smp-groups/conn/1";
/// At most this many partly received fragmented messages per connection.
const MAX_PARTIAL: usize = 4;

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

    /// Starts a connection as inviter: creates its receive queue. The invitation
    /// is ready in [`Self::on_queue_created`].
    pub(crate) fn new_inviter_conn(&mut self, owner: Owner) -> u64 {
        let id = self.alloc_id();
        let mut conn = Conn::new(owner, ConnStatus::NewQueue, self.now);
        conn.keys = Some(X3dhKeyPairs::generate(&mut self.rng));
        self.conns.insert(id, conn);
        self.touch_conn(id);
        let op = self.alloc_op();
        let server = self.cfg.server.clone();
        self.issue(RelayOp::CreateQueue { op, server }, Purpose::RcvQueue(id));
        id
    }

    /// Starts a connection as joiner of `invite`.
    pub(crate) fn new_joiner_conn(
        &mut self,
        owner: Owner,
        invite: &ConnInvitation,
        member: Option<(Mid, [u8; 32], Vec<u8>)>,
        anchor: Option<AnchorRec>,
        info: Vec<u8>,
    ) -> Result<u64, CommandError> {
        let params = X3dhParams::from_bytes(invite.e2e_params.as_slice())
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        let member = match member {
            Some((id, signing_key, profile)) => Some(MemberInfo {
                member_id: MemberId(id),
                signing_key,
                profile: Bounded::new(profile)
                    .map_err(|e| CommandError::Internal(format!("our profile: {e}")))?,
            }),
            None => None,
        };
        let len = info.len();
        let info = Bounded::new(info).map_err(|_| CommandError::TooLarge {
            len,
            max: smp_groups_wire::agent::MAX_CLIENT_INFO_LEN,
        })?;
        let id = self.alloc_id();
        let auth = self.random32();
        let reply_key_seed = self.random32();
        let join = JoinInfo {
            sender_key: *SigningKey::from_seed(auth).public_key().as_bytes(),
            reply_key_seed,
            member,
            anchor: anchor.map(Into::into),
            info,
        };
        let mut conn = Conn::new(owner, ConnStatus::JoinQueue, self.now);
        conn.keys = Some(X3dhKeyPairs::generate(&mut self.rng));
        conn.peer_params = Some(params);
        conn.snd = Some(SndQueue {
            server: invite.queue.relay().to_owned(),
            snd_id: invite.queue.queue_id.as_slice().to_vec(),
            auth,
            secured: false,
        });
        conn.join_info = join.to_bytes();
        self.conns.insert(id, conn);
        self.touch_conn(id);
        let op = self.alloc_op();
        let server = self.cfg.server.clone();
        self.issue(RelayOp::CreateQueue { op, server }, Purpose::RcvQueue(id));
        Ok(id)
    }

    pub(crate) fn on_queue_created(
        &mut self,
        id: u64,
        server: String,
        rcv_id: Vec<u8>,
        snd_id: &[u8],
    ) {
        let waits = self
            .conns
            .get(&id)
            .map(|c| matches!(c.status, ConnStatus::NewQueue | ConnStatus::JoinQueue));
        if waits != Some(true) {
            // Not a refusal when the connection was dropped meanwhile (a
            // race); a connection that has its queue already asked for no
            // other. Either way the new queue is deleted.
            if waits.is_some() {
                self.refuse(
                    FaultSource::Relay,
                    FaultKind::ResultMismatch,
                    At::conn(id),
                    &"a second queue for a connection that has one",
                );
            }
            let op = self.alloc_op();
            self.issue(RelayOp::Delete { op, server, rcv_id }, Purpose::Plain);
            return;
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.rcv = Some(RcvQueue {
            server: server.clone(),
            rcv_id: rcv_id.clone(),
            snd_id: snd_id.to_vec(),
        });
        self.rcv_index.insert((server.clone(), rcv_id.clone()), id);
        self.dirty.insert(crate::store::Key::Conn(id));
        self.kick.insert(id);
        match conn.status {
            ConnStatus::NewQueue => {
                conn.status = ConnStatus::Invited;
                let params = conn
                    .keys
                    .as_ref()
                    .map(|k| k.params().to_bytes().to_vec())
                    .unwrap_or_default();
                let owner = conn.owner.clone();
                let anchor = match &owner {
                    Owner::Member { group, member } => self
                        .groups
                        .get(group)
                        .and_then(|g| g.members.get(member))
                        .map(|m| m.my_anchor),
                    Owner::Open { group, .. } => self
                        .groups
                        .get(group)
                        .map(|g| AnchorRec::from(g.integrity.self_anchor())),
                    Owner::Visible(_) => None,
                };
                let invite = QueueAddress::new(&server, snd_id).and_then(|queue| {
                    Ok(ConnInvitation {
                        queue,
                        e2e_params: Bounded::new(params)?,
                        anchor: anchor.map(Into::into),
                    })
                });
                let bytes = match invite {
                    Ok(invite) => invite.to_bytes(),
                    Err(e) => {
                        let detail = format!("our invitation: {e}");
                        self.report(
                            FaultSource::Local,
                            FaultKind::Internal,
                            At::conn(id),
                            &detail,
                        );
                        return;
                    }
                };
                match owner {
                    Owner::Visible(alias) => self.event(Event::Invitation {
                        alias,
                        invitation: bytes,
                    }),
                    Owner::Member { group, member } => {
                        self.on_invitation_ready(&group, member, id, bytes);
                    }
                    Owner::Open { group, holder } => {
                        self.send_open_invitation(&group, holder, bytes);
                    }
                }
            }
            ConnStatus::JoinQueue => self.send_confirmation(id, &server, snd_id),
            // Checked above.
            _ => {}
        }
    }

    /// As joiner, once our reply queue exists: the confirmation to the
    /// inviter's queue, and the `KEY` that secures our queue for it. Every
    /// step that can fail comes before the connection changes: on a failure
    /// it keeps its keys and the client is told.
    fn send_confirmation(&mut self, id: u64, server: &str, snd_id: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            // Internal: our caller found it in this input.
            return;
        };
        match confirmation(conn, &mut self.rng, self.cfg.ratchet, server, snd_id) {
            Ok((env, ratchet, join)) => {
                conn.keys = None;
                conn.peer_params = None;
                conn.ratchet = Some(ratchet);
                conn.status = ConnStatus::Joined;
                self.confirmation_ready(id, server, &env, &join);
            }
            Err(e) => self.report(
                FaultSource::Local,
                FaultKind::Internal,
                At::conn(id),
                &format!("our confirmation could not be built: {e}"),
            ),
        }
    }

    fn confirmation_ready(&mut self, id: u64, server: &str, env: &AgentEnvelope, join: &JoinInfo) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.outbox.push_front(OutItem {
            payload: Payload::Sealed(env.to_bytes()),
            note: Note::None,
            kind: SendKind::whole(EnvelopeKind::Confirmation),
        });
        // Secure our reply queue for the inviter.
        let rcv_id = conn
            .rcv
            .as_ref()
            .map(|q| q.rcv_id.clone())
            .unwrap_or_default();
        let sender_key = *SigningKey::from_seed(join.reply_key_seed)
            .public_key()
            .as_bytes();
        self.touch_conn(id);
        let op = self.alloc_op();
        self.issue(
            RelayOp::Secure {
                op,
                server: server.to_owned(),
                rcv_id,
                sender_key,
            },
            Purpose::Secure(id),
        );
        // `CONF` waits for the `KEY`: the inviter answers with a signed
        // `HELLO`, which the relay refuses on a queue not yet secured.
        if let Some(c) = self.conns.get_mut(&id) {
            c.securing = true;
        }
    }

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

    fn pump_conn(&mut self, id: u64) {
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
                        self.abandon_join(&group);
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
    fn other_attempt(&self, group: &str, x: Mid, id: u64) -> Option<u64> {
        self.attempts(group, x).into_iter().find(|c| *c != id)
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
        self.dirty.insert(crate::store::Key::Conn(id));
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

    fn on_confirmation(&mut self, id: u64, params: &[u8], enc: &[u8]) {
        let limits = self.limits();
        let Some(conn) = self.conns.get_mut(&id) else {
            // Internal: the receive index names live connections only.
            return;
        };
        tracing::debug!(conn = id, owner = ?conn.owner, status = ?conn.status, "confirmation");
        if conn.status != ConnStatus::Invited {
            // An inviter already confirmed: the same confirmation again (or a
            // second use of the invitation, which we cannot tell apart).
            // A joiner is never sent a confirmation.
            let inviter = conn.keys.is_none() && conn.peer_params.is_none();
            let (source, kind) = if inviter && conn.status == ConnStatus::Ready {
                (FaultSource::Relay, FaultKind::Duplicate)
            } else {
                (FaultSource::Peer, FaultKind::Unexpected)
            };
            let detail = format!("confirmation on a connection {:?}", conn.status);
            self.refuse(source, kind, At::conn(id), &detail);
            return;
        }
        let Some(keys) = conn.keys.as_ref() else {
            self.report(
                FaultSource::Local,
                FaultKind::Internal,
                At::conn(id),
                &"an invitation without its keys",
            );
            return;
        };
        let parsed = (|| {
            let peer = X3dhParams::from_bytes(params).map_err(|e| format!("keys: {e}"))?;
            let mut ratchet = Ratchet::init_responder(keys, &peer, self.cfg.ratchet)
                .map_err(|e| format!("ratchet: {e}"))?;
            let plain = ratchet
                .decrypt(enc, RATCHET_AD)
                .map_err(|e| format!("connection info: {e}"))?;
            let ci = match decode_all_with::<AgentMessage, _>(&plain, limits) {
                Ok(AgentMessage::ConnInfo(ci)) => ci,
                Ok(AgentMessage::Message { .. }) => {
                    return Err("a message instead of connection info".to_owned());
                }
                Err(e) => return Err(format!("connection info: {e}")),
            };
            let reply = ci.reply_queue.ok_or_else(|| "no reply queue".to_owned())?;
            let addr = decode_all::<QueueAddress>(reply.as_slice())
                .map_err(|e| format!("reply queue: {e}"))?;
            let join = decode_all::<JoinInfo>(ci.info.as_slice())
                .map_err(|e| format!("join info: {e}"))?;
            Ok::<_, String>((ratchet, addr, join))
        })();
        let (ratchet, addr, join) = match parsed {
            Ok(p) => p,
            Err(e) => {
                // The invitation stays open: a good confirmation may follow.
                self.report(
                    FaultSource::Peer,
                    FaultKind::BadConfirmation,
                    At::conn(id),
                    &e,
                );
                return;
            }
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.ratchet = Some(ratchet);
        conn.keys = None;
        conn.status = ConnStatus::Ready;
        conn.peer_info = join.info.as_slice().to_vec();
        conn.snd = Some(SndQueue {
            server: addr.relay().to_owned(),
            snd_id: addr.queue_id.into_vec(),
            auth: join.reply_key_seed,
            secured: true,
        });
        conn.outbox.push_front(OutItem {
            payload: Payload::Plain(AMessage::Hello.to_bytes()),
            note: Note::None,
            kind: SendKind::whole(EnvelopeKind::Hello),
        });
        let rcv = conn.rcv.clone();
        self.touch_conn(id);
        if let Some(q) = rcv {
            let op = self.alloc_op();
            self.issue(
                RelayOp::Secure {
                    op,
                    server: q.server,
                    rcv_id: q.rcv_id,
                    sender_key: join.sender_key,
                },
                Purpose::Secure(id),
            );
            // `HELLO` waits for the `KEY`: the joiner then sends signed.
            if let Some(c) = self.conns.get_mut(&id) {
                c.securing = true;
            }
        }
        self.on_connected(id, Some(join));
    }

    fn on_connected(&mut self, id: u64, join: Option<JoinInfo>) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        match conn.owner.clone() {
            Owner::Visible(alias) => {
                let info = join.map(|j| j.info.into_vec()).unwrap_or_default();
                self.event(Event::Con { alias, info });
            }
            Owner::Member { group, member } => self.member_connected(id, &group, member, join),
            Owner::Open { group, holder } => self.open_invitation_used(id, &group, holder, join),
        }
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
                    self.dirty.insert(crate::store::Key::Conn(id));
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
                self.dirty.insert(crate::store::Key::Conn(id));
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
        let count = usize::from(f.count);
        if conn
            .frags
            .get(&f.msg_id)
            .is_some_and(|parts| parts.iter().any(|(i, _, _)| *i == f.index))
        {
            return Err((
                FaultKind::Malformed,
                format!("fragment {} of message {} again", f.index, f.msg_id),
            ));
        }
        let evicted = if !conn.frags.contains_key(&f.msg_id) && conn.frags.len() >= MAX_PARTIAL {
            conn.frags.pop_first().map(|(m, _)| m)
        } else {
            None
        };
        let parts = conn.frags.entry(f.msg_id).or_default();
        parts.push((f.index, f.count, f.bytes.into_vec()));
        let complete = parts.len() >= count;
        self.dirty.insert(crate::store::Key::Conn(id));
        if let Some(m) = evicted {
            // Our sender never interleaves fragmented messages.
            let detail = format!("more than {MAX_PARTIAL} partial messages: {m} dropped");
            self.refuse(
                FaultSource::Peer,
                FaultKind::OverLimit,
                At::conn(id),
                &detail,
            );
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(None);
        };
        if !complete {
            return Ok(None);
        }
        let parts = conn.frags.remove(&f.msg_id).unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| (FaultKind::Malformed, format!("fragments: {e}"));
        let mut frags = Vec::with_capacity(parts.len());
        for (index, count, bytes) in parts {
            let bytes = smp_groups_wire::agent::FragmentBytes::new(bytes).map_err(|e| bad(&e))?;
            frags.push(Fragment {
                msg_id: f.msg_id,
                index,
                count,
                bytes,
            });
        }
        let whole = Fragment::join(&frags).map_err(|e| bad(&e))?;
        if whole.len() > max_len {
            return Err((
                FaultKind::OverLimit,
                format!("a message of {} bytes", whole.len()),
            ));
        }
        let mut r = Reader::new(&whole);
        let inner = AMessage::decode_with(&mut r, limits).map_err(|e| bad(&e))?;
        r.expect_end("message").map_err(|e| bad(&e))?;
        Ok(Some(inner))
    }

    // --- client commands on visible connections ---

    pub(crate) fn cmd_new_conn(&mut self, alias: Option<String>) -> Result<Event, CommandError> {
        let alias = self.take_alias(alias, "c")?;
        self.new_inviter_conn(Owner::Visible(alias.clone()));
        Ok(Event::Ok { alias })
    }

    pub(crate) fn cmd_join_conn(
        &mut self,
        alias: Option<String>,
        invitation: &[u8],
        info: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let invite = decode_all::<ConnInvitation>(invitation)
            .map_err(|e| CommandError::BadInvitation(e.to_string()))?;
        let alias = self.take_alias(alias, "c")?;
        self.new_joiner_conn(Owner::Visible(alias.clone()), &invite, None, None, info)?;
        Ok(Event::Ok { alias })
    }

    pub(crate) fn take_alias(
        &mut self,
        alias: Option<String>,
        prefix: &str,
    ) -> Result<String, CommandError> {
        match alias {
            Some(a) if a.is_empty() => Ok(self.fresh_alias(prefix)),
            Some(a) => {
                if let Err(e) = smp_groups_wire::client::Alias::new(&a) {
                    return Err(CommandError::BadAlias {
                        alias: a,
                        reason: e.to_string(),
                    });
                }
                if self.alias_taken(&a) {
                    return Err(CommandError::Duplicate(a));
                }
                Ok(a)
            }
            None => Ok(self.fresh_alias(prefix)),
        }
    }

    pub(crate) fn visible_conn(&self, alias: &str) -> Result<u64, CommandError> {
        self.conns
            .iter()
            .find(|(_, c)| matches!(&c.owner, Owner::Visible(a) if a == alias) && !c.closing)
            .map(|(id, _)| *id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))
    }

    pub(crate) fn cmd_send_conn(
        &mut self,
        alias: &str,
        body: Vec<u8>,
    ) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        if body.len() > self.cfg.max_message_len {
            return Err(CommandError::TooLarge {
                len: body.len(),
                max: self.cfg.max_message_len,
            });
        }
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))?;
        let content = Content::new(body).map_err(|e| CommandError::Internal(e.to_string()))?;
        let msg_id = conn.next_msg_id;
        conn.next_msg_id += 1;
        let msg = AMessage::UserMsg {
            snd_ts: self.now,
            content,
        };
        self.enqueue(id, &msg, Note::ConnMsg { msg_id });
        Ok(Event::Queued {
            alias: alias.to_owned(),
            msg_id,
        })
    }

    pub(crate) fn cmd_ack_conn(&mut self, alias: &str, msg_id: u64) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| CommandError::NoConn(alias.to_owned()))?;
        let (peer_id, digest) = conn
            .unacked
            .remove(&msg_id)
            .ok_or(CommandError::NoId(msg_id))?;
        let receipt = Receipt {
            msg_id: peer_id,
            digest: smp_groups_wire::agent::Digest(digest),
        };
        self.enqueue(id, &AMessage::Receipts(vec![receipt]), Note::None);
        Ok(Event::Ok {
            alias: alias.to_owned(),
        })
    }

    pub(crate) fn cmd_del_conn(&mut self, alias: &str) -> Result<Event, CommandError> {
        let id = self.visible_conn(alias)?;
        if let Some(c) = self.conns.get_mut(&id) {
            c.outbox.retain(|_| false);
        }
        self.close_conn(id);
        Ok(Event::Ok {
            alias: alias.to_owned(),
        })
    }
}

/// The joiner's confirmation for `conn` (keys and peer parameters from its
/// invitation), with the ratchet it starts and what we tell the inviter. The
/// connection is not changed: the caller applies the result.
fn confirmation(
    conn: &Conn,
    rng: &mut rand_chacha::ChaCha20Rng,
    config: smp_groups_crypto::ratchet::RatchetConfig,
    server: &str,
    snd_id: &[u8],
) -> Result<(AgentEnvelope, Ratchet, JoinInfo), String> {
    let (Some(keys), Some(peer)) = (conn.keys.as_ref(), conn.peer_params.as_ref()) else {
        return Err("no keys".to_owned());
    };
    let join = decode_all::<JoinInfo>(&conn.join_info).map_err(|e| e.to_string())?;
    let mut ratchet = Ratchet::init_initiator(keys, peer, config).map_err(|e| e.to_string())?;
    let reply = QueueAddress::new(server, snd_id).map_err(|e| e.to_string())?;
    let plain = AgentMessage::ConnInfo(ConnInfo::of_joiner(&reply, &join)).to_bytes();
    let ct = ratchet
        .encrypt(rng, &plain, RATCHET_AD)
        .map_err(|e| e.to_string())?;
    let e2e_params = Bounded::new(keys.params().to_bytes().to_vec()).map_err(|e| e.to_string())?;
    let enc_conn_info = Encrypted::new(ct).map_err(|e| e.to_string())?;
    let env = AgentEnvelope::Confirmation {
        agent_version: AGENT_VERSION,
        e2e_params,
        enc_conn_info,
    };
    Ok((env, ratchet, join))
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
