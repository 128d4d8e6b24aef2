//! Our group messages (`MSG`, `SMSG`): sending, receiving, and tracking
//! delivery to every member.

use std::collections::BTreeSet;

use smp_groups_integrity::Delivery;
use smp_groups_wire::agent::{AMessage, Content, Digest, GroupEnvelope, MemberId};

use crate::Agent;
use crate::api::{CommandError, Event};
use crate::fault::{At, FaultKind, FaultSource};
use crate::state::{AnchorRec, Mid, Note, RecvTrack, SendTrack};

impl Agent {
    pub(crate) fn cmd_send(&mut self, group: &str, body: Vec<u8>) -> Result<Event, CommandError> {
        if body.len() > self.cfg.max_message_len {
            return Err(CommandError::TooLarge {
                len: body.len(),
                max: self.cfg.max_message_len,
            });
        }
        // Members whose queue is gone get nothing more.
        let gone: BTreeSet<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer_gone_at.is_some())
            .map(|(id, _)| *id)
            .collect();
        // Everything that can fail before the group changes.
        let content = Content::new(body).map_err(|e| CommandError::Internal(e.to_string()))?;
        #[cfg(feature = "cheat")]
        let cheat = self.cheat;
        let g = self.active_group(group)?;
        let prev: AnchorRec = g.integrity.self_anchor().into();
        let sent = g
            .integrity
            .on_sent(content.as_slice())
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let int_id = g.alloc_msg_id();
        #[cfg_attr(not(feature = "cheat"), allow(unused_mut))]
        let mut targets: Vec<(Mid, u64)> = g
            .members
            .iter()
            .filter_map(|(id, m)| m.conn.map(|c| (*id, c)))
            .filter(|(_, c)| !gone.contains(c))
            .collect();
        // A cheater (tests only) leaves some targets out, or sends them
        // other content, under the same id; its own chain stays honest.
        #[cfg(feature = "cheat")]
        let cheat_plan = cheat.map(|c| {
            let ids: Vec<Mid> = targets.iter().map(|(m, _)| *m).collect();
            c.plan(sent.ext_msg_id, &ids)
        });
        #[cfg(feature = "cheat")]
        if let Some(plan) = &cheat_plan {
            targets.retain(|(m, _)| !plan.withheld.contains(m));
        }
        g.ext_to_int.insert(sent.ext_msg_id, int_id);
        g.sends.insert(
            int_id,
            SendTrack {
                ext_msg_id: sent.ext_msg_id,
                content_hash: sent.content_hash.0,
                sent_pending: targets.iter().map(|(m, _)| *m).collect(),
                rcvd_pending: targets.iter().map(|(m, _)| *m).collect(),
                status: crate::ReceiptStatus::Ok,
                sent_done: false,
            },
        );
        self.touch_group(group);
        self.expect_receipts(
            group,
            sent.ext_msg_id,
            targets.iter().map(|(m, _)| *m).collect(),
        );
        let snd_ts = self.now;
        self.keep_sent(group, sent.ext_msg_id, prev, snd_ts, content.as_slice());
        let env = match self.sign_group_msg(group, sent.ext_msg_id, snd_ts, &content) {
            Some(signed) => signed,
            None => GroupEnvelope::Msg {
                ext_msg_id: sent.ext_msg_id,
                snd_ts,
                content,
            },
        };
        let msg = AMessage::Group(env);
        #[cfg(feature = "cheat")]
        let altered_msg = cheat_plan
            .as_ref()
            .filter(|p| !p.altered.is_empty())
            .and_then(|_| {
                let AMessage::Group(GroupEnvelope::Msg { content, .. }) = &msg else {
                    return None;
                };
                let mut body = content.as_slice().to_vec();
                body.extend_from_slice(crate::cheat::EQUIVOCATION_MARK);
                Some(AMessage::Group(GroupEnvelope::Msg {
                    ext_msg_id: sent.ext_msg_id,
                    snd_ts,
                    content: Content::new(body).ok()?,
                }))
            });
        for (member, conn) in &targets {
            #[cfg(feature = "cheat")]
            let msg = match (&altered_msg, &cheat_plan) {
                (Some(alt), Some(p)) if p.altered.contains(member) => alt,
                _ => &msg,
            };
            #[cfg(not(feature = "cheat"))]
            let msg = &msg;
            self.enqueue(
                *conn,
                msg,
                Note::GroupMsg {
                    int_id,
                    member: *member,
                },
            );
        }
        // Open invitation slots get it too: the member who will use one has
        // the slot's anchor, and reads on from there.
        let slots: Vec<u64> = self
            .groups
            .get(group)
            .map(|g| g.open_offered.values().copied().collect())
            .unwrap_or_default();
        for c in slots {
            self.enqueue(c, &msg, Note::None);
        }
        if targets.is_empty() {
            self.finish_send_track(group, int_id);
        }
        Ok(Event::Queued {
            alias: group.to_owned(),
            msg_id: int_id,
        })
    }

    pub(crate) fn on_group_msg(
        &mut self,
        group: &str,
        from: Mid,
        (ext_msg_id, snd_ts): (u64, u64),
        content: &[u8],
    ) -> bool {
        let at = At::member(group, Some(from), None);
        let Some(g) = self.edit_group(group) else {
            // Internal: found by our caller in this input.
            return false;
        };
        let r = match g.integrity.on_received(MemberId(from), ext_msg_id, content) {
            Ok(r) => r,
            Err(e) => {
                let (source, kind) = match e {
                    // Not connected yet on our side (its first message
                    // overtook the handshake), or gone.
                    smp_groups_integrity::ReceiveError::UnknownSender(_) => {
                        (FaultSource::Nobody, FaultKind::Stale)
                    }
                    smp_groups_integrity::ReceiveError::TooFarAhead { .. } => {
                        (FaultSource::Peer, FaultKind::OverLimit)
                    }
                    _ => (FaultSource::Peer, FaultKind::Unexpected),
                };
                self.refuse(source, kind, at, &format!("MSG {ext_msg_id}: {e}"));
                return false;
            }
        };
        let dropped = match r.delivery {
            Delivery::Chained { .. } | Delivery::Held { .. } | Delivery::Backfilled => None,
            // The same message on two connections with the member (an open
            // invitation slot and another), or again after a restart.
            Delivery::Duplicate => Some((FaultSource::Nobody, FaultKind::Duplicate)),
            // Older than our anchor (sent before we joined) or the window.
            Delivery::Stale => Some((FaultSource::Nobody, FaultKind::Stale)),
            Delivery::Conflict => Some((FaultSource::Peer, FaultKind::Conflict)),
        };
        if let Some((source, kind)) = dropped {
            self.refuse(source, kind, at, &format!("MSG {ext_msg_id}"));
        }
        let Some(g) = self.edit_group(group) else {
            return false;
        };
        let deliver = matches!(
            r.delivery,
            Delivery::Chained { .. } | Delivery::Held { .. } | Delivery::Backfilled
        );
        let mut events = Vec::new();
        if deliver {
            let msg_id = g.alloc_msg_id();
            g.recvs.insert(
                msg_id,
                RecvTrack {
                    from,
                    ext_msg_id,
                    content_hash: smp_groups_integrity::chain::content_hash(content).0,
                },
            );
            // A gap is reported once, by the first message after it.
            let below = g.integrity.received_below(MemberId(from), ext_msg_id);
            let integrity = match (r.delivery, below) {
                (Delivery::Held { .. }, Some(b)) if b.saturating_add(1) < ext_msg_id => {
                    crate::MsgIntegrity::Skipped {
                        from: b + 1,
                        to: ext_msg_id - 1,
                    }
                }
                _ => crate::MsgIntegrity::Ok,
            };
            let meta = self.msg_meta(ext_msg_id, snd_ts, integrity);
            events.push(Event::Msg {
                group: group.to_owned(),
                member: MemberId(from),
                msg_id,
                meta,
                body: content.to_vec(),
            });
        }
        for v in r.violations {
            events.push(Event::Violation {
                group: group.to_owned(),
                violation: v,
            });
        }
        for e in events {
            self.event(e);
        }
        deliver
    }

    /// The last block of our message `int_id` reached the relay for `member`.
    pub(crate) fn group_msg_sent(&mut self, group: &str, int_id: u64, member: Mid) {
        let Some(t) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.sends.get_mut(&int_id))
        else {
            return;
        };
        if !t.sent_pending.remove(&member) {
            return;
        }
        self.touch_group(group);
        self.event(Event::Sent {
            group: group.to_owned(),
            member: Some(MemberId(member)),
            msg_id: int_id,
        });
        self.finish_send_track(group, int_id);
    }

    /// Reports `SENT` / `RCVD` for all once nothing is pending.
    pub(crate) fn finish_send_track(&mut self, group: &str, int_id: u64) {
        let Some(g) = self.edit_group(group) else {
            return;
        };
        let Some(t) = g.sends.get_mut(&int_id) else {
            return;
        };
        let mut events = Vec::new();
        if t.sent_pending.is_empty() && !t.sent_done {
            t.sent_done = true;
            events.push(Event::Sent {
                group: group.to_owned(),
                member: None,
                msg_id: int_id,
            });
        }
        if t.sent_done && t.rcvd_pending.is_empty() {
            events.push(Event::Rcvd {
                group: group.to_owned(),
                member: None,
                msg_id: int_id,
                status: t.status,
            });
            let ext = t.ext_msg_id;
            g.sends.remove(&int_id);
            g.ext_to_int.remove(&ext);
        }
        for e in events {
            self.event(e);
        }
    }

    /// Member `x` will not get or acknowledge our messages: our sends stop
    /// waiting for it.
    pub(crate) fn forget_in_sends(&mut self, group: &str, x: Mid) {
        let Some(g) = self.edit_group(group) else {
            return;
        };
        let sends: Vec<u64> = g
            .sends
            .iter_mut()
            .filter_map(|(id, t)| {
                let a = t.sent_pending.remove(&x);
                let b = t.rcvd_pending.remove(&x);
                (a || b).then_some(*id)
            })
            .collect();
        for id in sends {
            self.finish_send_track(group, id);
        }
    }

    /// `CATCHUP`: member `from` restarts its chain for us after `ext_msg_id`
    /// (what it sent after it reaches us again).
    pub(crate) fn on_catch_up(
        &mut self,
        conn: u64,
        group: &str,
        from: Mid,
        ext_msg_id: u64,
        digest: Digest,
    ) {
        let at = At::member(group, Some(from), Some(conn));
        let anchor = smp_groups_integrity::Anchor::At {
            msg_id: ext_msg_id,
            digest,
        };
        let started = self
            .groups
            .get_mut(group)
            .is_some_and(|g| g.integrity.rewind(MemberId(from), anchor));
        if started {
            tracing::debug!(group, member = %MemberId(from), from = ext_msg_id, "catch-up started");
        } else {
            // Not earlier than the anchor it gave us (the first
            // attempt already carried this one), or one in progress.
            self.refuse(
                FaultSource::Nobody,
                FaultKind::Stale,
                at,
                &format!("CATCHUP from {ext_msg_id}: nothing to catch up"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use smp_groups_wire::agent::MemberId;

    use super::super::testing::{events, group_with, queued};
    use crate::{Config, Event};

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];

    #[test]
    fn a_send_is_sent_for_all_once_every_member_has_it() {
        let mut a = group_with(Config::default(), &[A, B]);
        assert!(a.cmd_send("g", b"hi".to_vec()).is_ok());
        // One envelope per member connection, the same.
        assert_eq!(queued(&a, 10).len(), 1);
        assert_eq!(queued(&a, 10), queued(&a, 11));
        let (&id, t) = a.groups["g"].sends.iter().next().expect("a send track");
        assert_eq!(t.sent_pending, [A, B].into_iter().collect());
        let sent = |x: Option<[u8; 16]>| Event::Sent {
            group: "g".into(),
            member: x.map(MemberId),
            msg_id: id,
        };
        a.group_msg_sent("g", id, A);
        // Reported once per member, however often the relay confirms.
        a.group_msg_sent("g", id, A);
        assert_eq!(events(&mut a), vec![sent(Some(A))]);
        a.group_msg_sent("g", id, B);
        assert_eq!(events(&mut a), vec![sent(Some(B)), sent(None)]);
        // Still waiting for the receipts.
        assert_eq!(
            a.groups["g"].sends[&id].rcvd_pending,
            [A, B].into_iter().collect()
        );
    }

    #[test]
    fn a_send_too_large_is_refused_before_anything_changes() {
        let cfg = Config {
            max_message_len: 4,
            ..Config::default()
        };
        let mut a = group_with(cfg, &[A]);
        assert!(a.cmd_send("g", b"hello".to_vec()).is_err());
        assert!(queued(&a, 10).is_empty());
        assert!(a.groups["g"].sends.is_empty());
        assert!(a.groups["g"].integrity.idle());
    }
}
