//! Setting up a pairwise connection: invitation, join, confirmation,
//! `HELLO`.
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
use smp_groups_wire::agent::{
    AGENT_VERSION, AMessage, AgentEnvelope, AgentMessage, Bounded, ConnInfo, ConnInvitation,
    Encrypted, EnvelopeKind, JoinInfo, MemberId, MemberInfo, QueueAddress,
};
use smp_groups_wire::{Encode, decode_all, decode_all_with};

use super::RATCHET_AD;
use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::relay::{RelayOp, SendKind};
use crate::state::{
    AnchorRec, Conn, ConnStatus, Mid, Note, OutItem, Owner, Payload, Purpose, RcvQueue, SndQueue,
};

impl Agent {
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
        self.rcv_index.insert((server.clone(), rcv_id.clone()), id);
        self.mark_conn(id);
        self.kick.insert(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.rcv = Some(RcvQueue {
            server: server.clone(),
            rcv_id: rcv_id.clone(),
            snd_id: snd_id.to_vec(),
        });
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
    pub(super) fn send_confirmation(&mut self, id: u64, server: &str, snd_id: &[u8]) {
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

    pub(super) fn confirmation_ready(
        &mut self,
        id: u64,
        server: &str,
        env: &AgentEnvelope,
        join: &JoinInfo,
    ) {
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

    pub(super) fn on_confirmation(&mut self, id: u64, params: &[u8], enc: &[u8]) {
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

    pub(super) fn on_connected(&mut self, id: u64, join: Option<JoinInfo>) {
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
