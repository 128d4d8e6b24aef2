//! Which written events a session may confirm.
//!
//! Confirmation is cumulative (an event sequence number confirms every event
//! before it). A message event (`MSG`) is confirmed only once the client has
//! answered it with `ACK`: bytes written to a socket are not yet read by the
//! client, and a crash of the agent can discard them. Every other event is
//! confirmed once written, unless a message before it is still unanswered.

use std::collections::VecDeque;

use smp_groups_wire::client::{AgentEvent, ClientCommand};

/// The most early answers remembered (an `ACK` read before its event was
/// recorded as written); more are dropped, oldest first.
const MAX_EARLY: usize = 1024;

/// A message event's key: its entity (`C:a`, `G:g`) and message id.
pub(crate) type MsgKey = (String, u64);

/// The message key of an event, if it is a message.
pub(crate) fn event_key(event: &AgentEvent) -> Option<MsgKey> {
    match event {
        AgentEvent::Msg { msg_id, .. } | AgentEvent::GroupMsg { msg_id, .. } => {
            Some((event.entity().to_string(), *msg_id))
        }
        _ => None,
    }
}

/// The message key a command answers, if it is an `ACK`.
pub(crate) fn ack_key(command: &ClientCommand) -> Option<MsgKey> {
    match command {
        ClientCommand::Ack { msg_id, .. } | ClientCommand::GroupAck { msg_id, .. } => {
            Some((command.entity().to_string(), *msg_id))
        }
        _ => None,
    }
}

/// Events written to one session and not yet confirmed, in order.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// (sequence number, the message still waiting for its `ACK`).
    written: VecDeque<(u64, Option<MsgKey>)>,
    early: VecDeque<MsgKey>,
}

impl Held {
    /// Records event `seq` as written; returns the sequence number to confirm
    /// now, if any.
    pub(crate) fn written(&mut self, seq: u64, key: Option<MsgKey>) -> Option<u64> {
        let key = key.filter(|k| {
            let early = self.early.iter().position(|e| e == k);
            early.map(|i| self.early.remove(i)).is_none()
        });
        self.written.push_back((seq, key));
        self.release()
    }

    /// The client answered message `key`; returns the sequence number to
    /// confirm now, if any.
    pub(crate) fn answered(&mut self, key: &MsgKey) -> Option<u64> {
        if let Some(entry) = self
            .written
            .iter_mut()
            .find(|(_, k)| k.as_ref() == Some(key))
        {
            entry.1 = None;
        } else {
            if self.early.len() == MAX_EARLY {
                self.early.pop_front();
            }
            self.early.push_back(key.clone());
        }
        self.release()
    }

    fn release(&mut self) -> Option<u64> {
        let mut last = None;
        while let Some(&(seq, None)) = self.written.front() {
            last = Some(seq);
            self.written.pop_front();
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> MsgKey {
        ("G:g".to_owned(), id)
    }

    #[test]
    fn events_after_an_unanswered_message_wait_for_its_ack() {
        let mut h = Held::default();
        assert_eq!(h.written(1, None), Some(1));
        assert_eq!(h.written(2, Some(key(7))), None);
        assert_eq!(h.written(3, None), None);
        assert_eq!(h.written(4, Some(key(8))), None);
        assert_eq!(h.answered(&("G:g".to_owned(), 8)), None);
        assert_eq!(h.answered(&("G:other".to_owned(), 7)), None);
        assert_eq!(h.answered(&("G:g".to_owned(), 7)), Some(4));
        assert_eq!(h.written(5, None), Some(5));
    }

    #[test]
    fn an_ack_read_before_its_event_was_recorded_still_counts() {
        let mut h = Held::default();
        assert_eq!(h.answered(&("C:a".to_owned(), 3)), None);
        assert_eq!(h.written(9, Some(("C:a".to_owned(), 3))), Some(9));
        // Used once: the same key again waits.
        assert_eq!(h.written(10, Some(("C:a".to_owned(), 3))), None);
    }
}
