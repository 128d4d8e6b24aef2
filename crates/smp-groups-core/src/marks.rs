//! Changing stored state: accessors that mark what must be written.
//!
//! Every input ends with one store batch holding the records it changed
//! (`Agent::flush`), found by their marks in `Agent::dirty`. A change whose
//! record is not marked is lost at the next restart: these accessors hand
//! out the state to change and mark its record in the same step, so that the
//! mark cannot be forgotten.

use crate::Agent;
use crate::relay::OpId;
use crate::state::{Conn, Group, Member, Mid, PendingOp, RecvInvitation};
use crate::store::Key;

impl Agent {
    /// Group `alias`, to change: its record is marked to be written (with
    /// those of its members that changed, found by difference when the group
    /// is written). Nothing is marked when there is no such group.
    pub(crate) fn edit_group(&mut self, alias: &str) -> Option<&mut Group> {
        let g = self.groups.get_mut(alias)?;
        self.dirty.insert(Key::Group(alias.to_owned()));
        Some(g)
    }

    /// Member `x` of group `alias`, to change: the group is marked, which
    /// writes the member's record if it changed. Nothing is marked when there
    /// is no such member.
    pub(crate) fn edit_member(&mut self, alias: &str, x: Mid) -> Option<&mut Member> {
        let m = self.groups.get_mut(alias)?.members.get_mut(&x)?;
        self.dirty.insert(Key::Group(alias.to_owned()));
        Some(m)
    }

    /// Connection `id`, to change: its record is marked to be written and its
    /// outbox is looked at again (as `Agent::touch_conn`). Nothing is marked
    /// when there is no such connection.
    pub(crate) fn edit_conn(&mut self, id: u64) -> Option<&mut Conn> {
        let c = self.conns.get_mut(&id)?;
        self.dirty.insert(Key::Conn(id));
        self.kick.insert(id);
        Some(c)
    }

    /// Marks connection `id`'s record to be written, for a change that
    /// leaves its outbox as it was (nothing more to send because of it).
    pub(crate) fn mark_conn(&mut self, id: u64) {
        self.dirty.insert(Key::Conn(id));
    }

    /// Keeps received group invitation `id` until the client joins or
    /// rejects it; its record is marked to be written.
    pub(crate) fn keep_invitation(&mut self, id: String, invitation: RecvInvitation) {
        self.dirty.insert(Key::Invitation(id.clone()));
        self.invitations.insert(id, invitation);
    }

    /// Takes received group invitation `id` (joined or rejected); its record
    /// is marked to be deleted. Nothing is marked when there is no such
    /// invitation.
    pub(crate) fn take_invitation(&mut self, id: &str) -> Option<RecvInvitation> {
        let inv = self.invitations.remove(id)?;
        self.dirty.insert(Key::Invitation(id.to_owned()));
        Some(inv)
    }

    /// Relay operation `id` in flight, to change: its record is marked to be
    /// written. Nothing is marked when there is no such operation.
    pub(crate) fn edit_op(&mut self, id: OpId) -> Option<&mut PendingOp> {
        let p = self.ops.get_mut(&id)?;
        self.dirty.insert(Key::Op(id.0));
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use crate::state::MemberStatus;
    use crate::store::Key;
    use crate::{Agent, Config, Input, Output, Timestamp};

    /// An agent with group `g` and one member `[1; 16]`, all stored.
    fn agent() -> Agent {
        let mut a = crate::group::testing::new_group(Config::default(), 1_000);
        if let Some(g) = a.groups.get_mut("g") {
            g.members.insert(
                [1; 16],
                crate::group::testing::member(None, MemberStatus::Pending, 1_000),
            );
        }
        a.touch_group("g");
        stored_keys(&mut a);
        a
    }

    /// Runs an input that changes nothing itself, and returns the keys its
    /// batch writes.
    fn stored_keys(a: &mut Agent) -> Vec<Key> {
        a.handle(
            Input::Timeout,
            Timestamp::from_millis(1_000),
            &mut smp_groups_crypto::rng::seeded(2),
        );
        let mut keys = Vec::new();
        while let Some(o) = a.poll() {
            if let Output::Store(b) = o {
                keys.extend(b.puts.into_iter().map(|(k, _)| k));
                keys.extend(b.deletes);
            }
        }
        keys
    }

    #[test]
    fn a_group_changed_through_its_accessor_is_written() {
        let mut a = agent();
        // Changed behind the accessor's back: not written.
        if let Some(g) = a.groups.get_mut("g") {
            g.had_members = true;
        }
        assert!(!stored_keys(&mut a).contains(&Key::Group("g".into())));
        if let Some(g) = a.edit_group("g") {
            g.had_members = false;
        }
        assert!(stored_keys(&mut a).contains(&Key::Group("g".into())));
        // No group, no mark.
        assert!(a.edit_group("h").is_none());
        assert!(!a.dirty.contains(&Key::Group("h".into())));
    }

    #[test]
    fn a_member_changed_through_its_accessor_writes_its_own_record_only() {
        let mut a = agent();
        if let Some(m) = a.edit_member("g", [1; 16]) {
            m.announced = true;
        }
        let keys = stored_keys(&mut a);
        assert!(keys.contains(&Key::Member("g".into(), [1; 16])));
        // Unchanged since: marking again writes the group's shell only.
        let _ = a.edit_member("g", [1; 16]);
        let keys = stored_keys(&mut a);
        assert!(!keys.contains(&Key::Member("g".into(), [1; 16])));
        assert!(a.edit_member("g", [2; 16]).is_none());
    }

    #[test]
    fn a_connection_changed_through_its_accessor_is_written_and_kicked() {
        let mut a = agent();
        a.conns.insert(
            9,
            crate::state::Conn::new(
                crate::state::Owner::Visible("c".into()),
                crate::state::ConnStatus::Ready,
                1_000,
            ),
        );
        a.kick.clear();
        if let Some(c) = a.edit_conn(9) {
            c.closing = false;
        }
        assert!(a.kick.contains(&9));
        assert!(stored_keys(&mut a).contains(&Key::Conn(9)));
        assert!(a.edit_conn(10).is_none());
        assert!(!a.dirty.contains(&Key::Conn(10)));
        assert!(a.edit_op(crate::OpId(4)).is_none());
        assert!(!a.dirty.contains(&Key::Op(4)));
    }
}
