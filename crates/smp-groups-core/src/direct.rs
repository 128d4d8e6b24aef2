//! Direct messages to one member of a group (`G:g DSEND C:m msg`).
//!
//! A direct message travels on the hidden pairwise connection the two members
//! already keep for the group, as its own envelope (`DMSG`, answered by
//! `DRCVD` once the receiver's client acknowledged it): `docs/groups.md`,
//! "Direct messages", says why not on a second connection. It is queued,
//! sealed, sent and retried like every envelope on that connection, so it is
//! ordered with the group traffic of the pair and survives a restart with the
//! connection's outbox.
//!
//! Each sender numbers its direct messages to each member 1, 2, 3, ... (the
//! pair's own ordering, `dMsgId`): the receiver reports a gap in those ids as
//! the message's integrity, delivers each id once (a duplicate, from a
//! redelivery or a second connection with the member, is dropped and
//! counted), and its receipt names the id. Direct messages are not group
//! messages: they enter no group chain, no receipt batch and no `G_CHECK`
//! (only one member sees them), and their local ids come from the group's id
//! space, so `G:g ACK` takes both kinds.
//!
//! What is stored, per group, is a [`DirectBook`] ([`Key::Direct`]): the
//! sends waiting for the relay or a receipt, the messages received waiting
//! for the client's `ACK`, and the ids of each pair.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use smp_groups_crypto::sha256;
use smp_groups_wire::agent::{AMessage, Content, Digest, GroupEnvelope, MemberId};

use crate::agent::Agent;
use crate::api::{CommandError, DirectFailure, Event, MsgIntegrity, ReceiptStatus};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{ConnStatus, MemberStatus, Mid, Note};
use crate::store::Key;

/// How many direct ids above a gap a receiver remembers for one member; past
/// that, the oldest gap is given up (what arrives for it later is dropped
/// as stale, counted). Direct messages of one pair travel in order on one
/// connection, so a gap only opens when the pair has two connections (crossed
/// invitations) or the relay lost a message.
pub(crate) const MAX_DIRECT_AHEAD: usize = 1024;

/// The direct messages of one group, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DirectBook {
    /// The last direct id we gave a message to each member.
    out_seq: BTreeMap<Mid, u64>,
    /// What we received from each member, in its direct ids.
    in_seq: BTreeMap<Mid, InSeq>,
    /// Our direct messages not yet confirmed, by local id.
    sends: BTreeMap<u64, DirectSend>,
    /// Direct messages received and not yet acknowledged by the client, by
    /// local id.
    recvs: BTreeMap<u64, DirectRecv>,
}

/// The direct ids received from one member: every id up to `floor`, and the
/// ids in `above` (beyond a gap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct InSeq {
    floor: u64,
    above: BTreeSet<u64>,
}

impl InSeq {
    /// Records `id`: `None` if it was received before (or given up on),
    /// otherwise its integrity (the ids skipped since the highest received).
    fn receive(&mut self, id: u64) -> Option<MsgIntegrity> {
        if id <= self.floor || self.above.contains(&id) {
            return None;
        }
        let highest = self
            .above
            .last()
            .copied()
            .unwrap_or(self.floor)
            .max(self.floor);
        let integrity = if id > highest.saturating_add(1) {
            MsgIntegrity::Skipped {
                from: highest + 1,
                to: id - 1,
            }
        } else {
            MsgIntegrity::Ok
        };
        self.above.insert(id);
        if self.above.len() > MAX_DIRECT_AHEAD
            && let Some(first) = self.above.pop_first()
        {
            // The oldest gap is given up.
            self.floor = first;
        }
        while self.above.first() == Some(&self.floor.saturating_add(1)) {
            self.above.pop_first();
            self.floor += 1;
        }
        Some(integrity)
    }
}

/// One of our direct messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DirectSend {
    member: Mid,
    /// Its direct id (`DMSG` `dMsgId`).
    d_id: u64,
    /// The SHA-256 of its content, which the receipt must name.
    hash: [u8; 32],
    /// The relay took it (`DSENT` was reported); when it fails, also set
    /// if it is still queued to go.
    sent: bool,
}

/// A received direct message waiting for the client's `ACK`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DirectRecv {
    from: Mid,
    d_id: u64,
    hash: [u8; 32],
}

impl DirectBook {
    /// Nothing to store.
    pub(crate) fn is_empty(&self) -> bool {
        self.out_seq.is_empty()
            && self.in_seq.is_empty()
            && self.sends.is_empty()
            && self.recvs.is_empty()
    }

    /// Whether local id `msg_id` is a direct message waiting for `ACK`.
    pub(crate) fn awaits_ack(&self, msg_id: u64) -> bool {
        self.recvs.contains_key(&msg_id)
    }

    /// Our direct messages not confirmed yet, in local id order.
    pub(crate) fn pending(&self) -> Vec<crate::query::PendingDirect> {
        self.sends
            .iter()
            .map(|(id, s)| crate::query::PendingDirect {
                msg_id: *id,
                direct_id: s.d_id,
                member: smp_groups_wire::agent::MemberId(s.member),
                sent: s.sent,
            })
            .collect()
    }
}

impl Agent {
    fn touch_direct(&mut self, group: &str) {
        self.dirty.insert(Key::Direct(group.to_owned()));
        self.touch_group(group);
    }

    /// `Command::DirectSend`.
    pub(crate) fn cmd_direct_send(
        &mut self,
        group: &str,
        member: MemberId,
        body: Vec<u8>,
    ) -> Result<Event, CommandError> {
        if body.len() > self.cfg.max_message_len {
            return Err(CommandError::TooLarge {
                len: body.len(),
                max: self.cfg.max_message_len,
            });
        }
        let content = Content::new(body).map_err(|e| CommandError::Internal(e.to_string()))?;
        let x = member.0;
        let g = self.active_group(group)?;
        if g.gone.contains(&x) {
            return Err(CommandError::MemberGone(member));
        }
        let m = g.members.get(&x).ok_or(CommandError::NoMember(member))?;
        let conn = match (m.status, m.conn) {
            (MemberStatus::Pending, _) | (_, None) => {
                return Err(CommandError::MemberNotReady(member));
            }
            (_, Some(c)) => c,
        };
        match self.conns.get(&conn) {
            None => return Err(CommandError::MemberNotReady(member)),
            Some(c) if c.closing || c.retire_at.is_some() || c.peer_gone_at.is_some() => {
                return Err(CommandError::MemberGone(member));
            }
            Some(c) if c.status != ConnStatus::Ready => {
                return Err(CommandError::MemberNotReady(member));
            }
            Some(_) => {}
        }
        let hash = sha256(content.as_slice());
        let g = self.group_mut(group)?;
        let int_id = g.alloc_msg_id();
        let seq = g.direct.out_seq.entry(x).or_insert(0);
        *seq += 1;
        let d_id = *seq;
        g.direct.sends.insert(
            int_id,
            DirectSend {
                member: x,
                d_id,
                hash,
                sent: false,
            },
        );
        self.touch_direct(group);
        let msg = AMessage::Group(GroupEnvelope::DirectMsg {
            msg_id: d_id,
            snd_ts: self.now,
            content,
        });
        self.enqueue(conn, &msg, Note::Direct { int_id });
        tracing::debug!(group, member = %member, int_id, d_id, "direct message queued");
        Ok(Event::DirectQueued {
            group: group.to_owned(),
            msg_id: int_id,
        })
    }

    /// The last block of our direct message `int_id` reached the relay.
    pub(crate) fn direct_sent(&mut self, group: &str, member: Mid, int_id: u64) {
        let Some(s) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.direct.sends.get_mut(&int_id))
            .filter(|s| s.member == member && !s.sent)
        else {
            // Reported failed (the member went while it was in flight) or
            // already confirmed by its receipt.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                At::member(group, Some(member), None),
                &format!("send of direct message {int_id} that no longer waits"),
            );
            return;
        };
        s.sent = true;
        self.touch_direct(group);
        self.event(Event::DirectSent {
            group: group.to_owned(),
            member: MemberId(member),
            msg_id: int_id,
        });
    }

    /// `DMSG` from member `from` (a member of the group, checked by the caller).
    pub(crate) fn on_direct_msg(
        &mut self,
        conn: u64,
        group: &str,
        from: Mid,
        (d_id, snd_ts): (u64, u64),
        content: &[u8],
    ) {
        let at = At::member(group, Some(from), Some(conn));
        if d_id == 0 {
            self.refuse(FaultSource::Peer, FaultKind::Malformed, at, &"DMSG 0");
            return;
        }
        let Some(g) = self.groups.get_mut(group) else {
            // Internal: our caller found it in this input.
            return;
        };
        let Some(integrity) = g.direct.in_seq.entry(from).or_default().receive(d_id) else {
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Duplicate,
                at,
                &format!("DMSG {d_id} again"),
            );
            return;
        };
        let msg_id = g.alloc_msg_id();
        g.direct.recvs.insert(
            msg_id,
            DirectRecv {
                from,
                d_id,
                hash: sha256(content),
            },
        );
        self.touch_direct(group);
        if let MsgIntegrity::Skipped { from: a, to: b } = integrity {
            // Delivered, but counted: the gap may still fill.
            self.refuse(
                FaultSource::Peer,
                FaultKind::ChainGap,
                at,
                &format!("direct messages {a}..={b} had not arrived"),
            );
        }
        let meta = self.msg_meta(d_id, snd_ts, integrity);
        self.event(Event::DirectMsg {
            group: group.to_owned(),
            member: MemberId(from),
            msg_id,
            meta,
            body: content.to_vec(),
        });
    }

    /// `DRCVD` from member `from` for our direct message `d_id`.
    pub(crate) fn on_direct_rcvd(
        &mut self,
        conn: u64,
        group: &str,
        from: Mid,
        d_id: u64,
        digest: Digest,
    ) {
        let found = self.groups.get(group).and_then(|g| {
            g.direct
                .sends
                .iter()
                .find(|(_, s)| s.member == from && s.d_id == d_id)
                .map(|(id, _)| *id)
        });
        let Some(int_id) = found else {
            self.refuse(
                FaultSource::Peer,
                FaultKind::Unexpected,
                At::member(group, Some(from), Some(conn)),
                &format!("DRCVD {d_id} for no direct message waiting for it"),
            );
            return;
        };
        let Some(s) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.direct.sends.remove(&int_id))
        else {
            return;
        };
        self.touch_direct(group);
        if !s.sent {
            // The relay's answer to our send was lost; the receipt proves it.
            self.event(Event::DirectSent {
                group: group.to_owned(),
                member: MemberId(from),
                msg_id: int_id,
            });
        }
        let status = if digest.0 == s.hash {
            ReceiptStatus::Ok
        } else {
            let detail = format!("DRCVD {d_id} names other content than we sent");
            self.refuse(
                FaultSource::Peer,
                FaultKind::Conflict,
                At::member(group, Some(from), Some(conn)),
                &detail,
            );
            ReceiptStatus::BadHash
        };
        self.event(Event::DirectRcvd {
            group: group.to_owned(),
            member: MemberId(from),
            msg_id: int_id,
            status,
        });
    }

    /// `G:g ACK id` for a direct message: its receipt goes to the sender.
    pub(crate) fn cmd_direct_ack(
        &mut self,
        group: &str,
        msg_id: u64,
    ) -> Result<Event, CommandError> {
        let g = self.group_mut(group)?;
        let r = g
            .direct
            .recvs
            .remove(&msg_id)
            .ok_or(CommandError::NoId(msg_id))?;
        let conn = g.members.get(&r.from).and_then(|m| m.conn);
        self.touch_direct(group);
        match conn {
            Some(c) => self.enqueue(
                c,
                &AMessage::Group(GroupEnvelope::DirectRcvd {
                    msg_id: r.d_id,
                    digest: Digest(r.hash),
                }),
                Note::None,
            ),
            None => {
                tracing::debug!(group, member = %MemberId(r.from), msg_id, "receipt for a direct message of a member that is gone: not sent");
            }
        }
        Ok(Event::Ok {
            alias: group.to_owned(),
        })
    }

    /// Member `x` is gone: our direct messages to it fail (reported), and
    /// its ids are forgotten. What it sent us stays for the client's `ACK`.
    pub(crate) fn direct_member_gone(&mut self, group: &str, x: Mid) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let ids: Vec<u64> = g
            .direct
            .sends
            .iter()
            .filter(|(_, s)| s.member == x)
            .map(|(id, _)| *id)
            .collect();
        let mut failed: Vec<(u64, DirectSend)> = ids
            .into_iter()
            .filter_map(|id| g.direct.sends.remove(&id).map(|s| (id, s)))
            .collect();
        let had = g.direct.out_seq.remove(&x).is_some() | g.direct.in_seq.remove(&x).is_some();
        // What is still in an outbox with the member goes out yet (our own
        // removal sends what was queued before `OUT`; the head in flight
        // stays): it may arrive, it will not be confirmed. What a removal
        // or departure dropped from the outbox never leaves.
        for (int_id, s) in &mut failed {
            s.sent |= self.direct_still_queued(group, Some(x), *int_id);
        }
        if failed.is_empty() && !had {
            return;
        }
        self.touch_direct(group);
        self.report_direct_failed(group, failed);
    }

    /// The group is being dropped (we left, were removed, or it was
    /// deleted): every direct message waiting fails, reported. Called once
    /// the group's connections are closed: what is still in one of their
    /// outboxes goes out yet (it may arrive, it will not be confirmed).
    pub(crate) fn direct_group_dropped(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let book = std::mem::take(&mut g.direct);
        if !book.recvs.is_empty() {
            tracing::debug!(
                group,
                count = book.recvs.len(),
                "direct messages not acknowledged when the group ended: no receipts"
            );
        }
        self.dirty.insert(Key::Direct(group.to_owned()));
        let mut failed: Vec<(u64, DirectSend)> = book.sends.into_iter().collect();
        for (int_id, s) in &mut failed {
            s.sent |= self.direct_still_queued(group, None, *int_id);
        }
        self.report_direct_failed(group, failed);
    }

    /// Whether our direct message `int_id` is still in the outbox of a
    /// connection with a member of `group` (with `member` only, if given):
    /// it will go out yet.
    fn direct_still_queued(&self, group: &str, member: Option<Mid>, int_id: u64) -> bool {
        let note = Note::Direct { int_id };
        self.conns.values().any(|c| {
            matches!(&c.owner, crate::state::Owner::Member { group: g, member: m }
                if g == group && member.is_none_or(|x| x == *m))
                && c.outbox.iter().any(|i| i.note == note)
        })
    }

    fn report_direct_failed(&mut self, group: &str, failed: Vec<(u64, DirectSend)>) {
        for (int_id, s) in failed {
            let reason = if s.sent {
                DirectFailure::Unconfirmed
            } else {
                DirectFailure::Unsent
            };
            tracing::info!(group, member = %MemberId(s.member), int_id, ?reason, "direct message failed: the member or the group is gone");
            self.event(Event::DirectFailed {
                group: group.to_owned(),
                member: MemberId(s.member),
                msg_id: int_id,
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{InSeq, MAX_DIRECT_AHEAD};
    use crate::api::MsgIntegrity;

    #[test]
    fn in_seq_reports_gaps_fills_them_and_drops_duplicates() {
        let mut s = InSeq::default();
        assert_eq!(s.receive(1), Some(MsgIntegrity::Ok));
        assert_eq!(s.receive(1), None);
        assert_eq!(s.receive(4), Some(MsgIntegrity::Skipped { from: 2, to: 3 }));
        assert_eq!(s.receive(3), Some(MsgIntegrity::Ok));
        assert_eq!(s.receive(2), Some(MsgIntegrity::Ok));
        assert_eq!((s.floor, s.above.len()), (4, 0));
        assert_eq!(s.receive(4), None);
        assert_eq!(s.receive(5), Some(MsgIntegrity::Ok));
    }

    #[test]
    fn in_seq_is_bounded() {
        let mut s = InSeq::default();
        for id in 2..(MAX_DIRECT_AHEAD as u64 + 10) {
            assert!(s.receive(id).is_some());
            assert!(s.above.len() <= MAX_DIRECT_AHEAD);
        }
        // The gap at 1 was given up.
        assert_eq!(s.receive(1), None);
    }
}
