//! The member's own recent group messages, kept to catch up a member that
//! joined concurrently with us.
//!
//! Two members added at the same time by different introducers can each
//! finish their join without the other (neither introducer knew the other's
//! new member yet). Until they are introduced to each other (`LINTRO`, sent by
//! an introducer that learned of a member only after it started its add), a
//! message one of them sends does not reach the other. The member that gets
//! `LINTRO` therefore starts its chain for the new member at the first message
//! it sent after its own join completed, and queues those messages for it
//! again: the new member receives every message sent while both were in the
//! group, once (the chain drops copies). Messages sent before our own join
//! completed are not kept: no member can be owed them by this race.
//!
//! At most [`HISTORY_MAX_MESSAGES`] messages and [`HISTORY_MAX_BYTES`] bytes
//! are kept per group, one stored record each ([`Key::Sent`]), so that a
//! store write stays proportional to what changed. A catch-up starts at the
//! oldest message kept; when the bounds dropped messages sent since our join,
//! the older ones are not caught up (said at `warn`).

use serde::{Deserialize, Serialize};
use smp_groups_wire::agent::{AMessage, Content, GroupEnvelope};

use crate::agent::Agent;

use crate::state::{AnchorRec, Mid, Note};
use crate::store::Key;

/// Most messages of our own kept per group for catch-up.
pub const HISTORY_MAX_MESSAGES: usize = 64;

/// Most bytes of message content kept per group for catch-up.
pub const HISTORY_MAX_BYTES: usize = 1 << 20;

/// One message we sent, as stored: where our chain stood before it, its
/// content, and when it was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SentRec {
    /// Our chain's anchor just before this message.
    pub(crate) prev: AnchorRec,
    /// The message content.
    #[serde(with = "crate::serde_bytes")]
    pub(crate) content: Vec<u8>,
    /// Our clock when the client sent it (the `sndTs` of its `MSG`); 0 for a
    /// record written before send times were kept.
    pub(crate) snd_ts: u64,
}

/// A [`SentRec`] as written before send times were kept (its fields are the
/// first ones of a [`SentRec`]).
#[derive(Deserialize)]
struct SentRecNoTime {
    prev: AnchorRec,
    #[serde(with = "crate::serde_bytes")]
    content: Vec<u8>,
}

impl SentRec {
    /// Decodes a stored record, of either layout: one written without the
    /// send time ends where the time would start.
    pub(crate) fn from_stored(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes::<Self>(bytes).or_else(|e| {
            let (old, rest) = postcard::take_from_bytes::<SentRecNoTime>(bytes).map_err(|_| e)?;
            if !rest.is_empty() {
                return Err(postcard::Error::DeserializeBadVarint);
            }
            Ok(Self {
                prev: old.prev,
                content: old.content,
                snd_ts: 0,
            })
        })
    }
}

impl Agent {
    /// Keeps our message `ext_msg_id` (sent on top of `prev`) for catch-up,
    /// if our own join is complete; drops the oldest beyond the bounds.
    pub(crate) fn keep_sent(
        &mut self,
        group: &str,
        ext_msg_id: u64,
        prev: AnchorRec,
        snd_ts: u64,
        content: &[u8],
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.join.as_ref().is_some_and(|j| !j.done) {
            return;
        }
        g.history.insert(
            ext_msg_id,
            SentRec {
                prev,
                content: content.to_vec(),
                snd_ts,
            },
        );
        self.dirty.insert(Key::Sent(group.to_owned(), ext_msg_id));
        let mut bytes: usize = g.history.values().map(|r| r.content.len()).sum();
        while g.history.len() > HISTORY_MAX_MESSAGES || bytes > HISTORY_MAX_BYTES {
            let Some((old, rec)) = g.history.pop_first() else {
                break;
            };
            bytes = bytes.saturating_sub(rec.content.len());
            g.history_dropped = true;
            self.dirty.insert(Key::Sent(group.to_owned(), old));
        }
    }

    /// Where our chain starts for a member that joined concurrently with us:
    /// before the oldest message we kept (or where it stands now, if we kept
    /// none).
    pub(crate) fn catch_up_anchor(&self, group: &str) -> Option<AnchorRec> {
        let g = self.groups.get(group)?;
        Some(
            g.history
                .values()
                .next()
                .map_or_else(|| g.integrity.self_anchor().into(), |r| r.prev),
        )
    }

    /// Queues every kept message for member `x` on connection `conn`, whose
    /// chain for it starts at [`Agent::catch_up_anchor`].
    pub(crate) fn replay_sent(&mut self, group: &str, x: Mid, conn: u64) {
        self.replay_range(group, x, conn, u64::MAX);
    }

    /// `LINTRO` for member `x` we already know, from another introduction
    /// that did not catch it up: the anchor we gave it may be later than the
    /// first message we sent since our join. Then `CATCHUP` (our catch-up
    /// anchor) and the kept messages up to that anchor go to it, and that
    /// anchor becomes ours for it (a later `LINTRO` finds nothing to do).
    pub(crate) fn catch_up_known(&mut self, group: &str, x: Mid) {
        let Some(from) = self.catch_up_anchor(group) else {
            return;
        };
        let Some((given, conn)) = self
            .groups
            .get(group)
            .and_then(|g| g.members.get(&x))
            .and_then(|m| Some((m.my_anchor, m.conn?)))
        else {
            return;
        };
        let (from_id, given_id) = (from.msg_id(), given.msg_id());
        if from_id >= given_id {
            return;
        }
        let digest = match from {
            AnchorRec::At(_, d) => d,
            AnchorRec::Genesis => {
                // Our own anchors are always `At` (`self_anchor`).
                tracing::warn!(group, "catch-up from a genesis anchor not sent");
                return;
            }
        };
        let env = GroupEnvelope::CatchUp {
            ext_msg_id: from_id,
            digest: smp_groups_wire::agent::Digest(digest),
        };
        self.enqueue(conn, &AMessage::Group(env), Note::None);
        self.replay_range(group, x, conn, given_id);
        if let Some(m) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(&x))
        {
            m.my_anchor = from;
        }
        self.touch_group(group);
    }

    /// Queues the kept messages with ids up to `upto` for member `x` on `conn`.
    fn replay_range(&mut self, group: &str, x: Mid, conn: u64, upto: u64) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let kept: Vec<(u64, u64, Vec<u8>)> = g
            .history
            .range(..=upto)
            .map(|(id, r)| (*id, r.snd_ts, r.content.clone()))
            .collect();
        if g.history_dropped {
            tracing::warn!(
                group,
                member = %smp_groups_wire::agent::MemberId(x),
                "catch-up starts at the oldest kept message: older ones since our join are not replayed"
            );
        }
        if let Some((first, _, _)) = kept.first() {
            tracing::debug!(
                group,
                member = %smp_groups_wire::agent::MemberId(x),
                from = first,
                count = kept.len(),
                "catching up a member that joined concurrently"
            );
        }
        for (ext_msg_id, snd_ts, body) in kept {
            let content = match Content::new(body) {
                Ok(c) => c,
                Err(e) => {
                    // Kept messages passed the same check when they were sent.
                    tracing::warn!(group, ext_msg_id, "kept message not replayed: {e}");
                    continue;
                }
            };
            let msg = AMessage::Group(GroupEnvelope::Msg {
                ext_msg_id,
                snd_ts,
                content,
            });
            self.enqueue(conn, &msg, Note::None);
        }
    }

    /// Marks every kept message of a group to be deleted from the store (the
    /// group is being forgotten).
    pub(crate) fn forget_sent(&mut self, group: &str) {
        let ids: Vec<u64> = self
            .groups
            .get(group)
            .map(|g| g.history.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.dirty.insert(Key::Sent(group.to_owned(), id));
        }
    }
}
