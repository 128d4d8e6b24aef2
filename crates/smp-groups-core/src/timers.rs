//! The agent's timers, in one table.
//!
//! Every deadline the agent keeps is derived here from the state that arms
//! it ([`Agent::timers_of`]): each kind's rule is written once, and both
//! [`Agent::poll_timeout`] (the earliest deadline) and the timeout handler
//! (the timers that are due, kind by kind) read it. Nothing else scans the
//! state for deadlines.

use smp_groups_integrity::Timestamp;

use crate::Agent;
use crate::relay::OpId;
use crate::state::{Group, GroupStatus, MemberStatus, Mid};

/// One armed timer: what happens when it fires.
///
/// The variants are in firing order: when several kinds are due at once,
/// the earlier kind fires first, and each kind reads the table again after
/// the kinds before it have fired.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A relay operation that failed for a while is issued again.
    Retry(OpId),
    /// The group's next time-triggered `G_CHECK` round.
    Check(String),
    /// A member invited or introduced that never connected is dropped.
    Pending(String, Mid),
    /// Our own join that did not complete is abandoned.
    Join(String),
    /// Our deletion stops waiting for `DELD`.
    Deletion(String),
    /// A member's batched receipts go out.
    Receipts(String, Mid),
    /// A retired member connection's grace ended: it is closed.
    Retire(u64),
    /// A closing connection stops waiting for `HELLO`.
    Linger(u64),
    /// A member whose queue is gone and that sent no word counts as left.
    PeerGone(u64),
}

/// The kinds of [`Timer`], in firing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// [`Timer::Retry`].
    Retry,
    /// [`Timer::Check`].
    Check,
    /// [`Timer::Pending`].
    Pending,
    /// [`Timer::Join`].
    Join,
    /// [`Timer::Deletion`].
    Deletion,
    /// [`Timer::Receipts`].
    Receipts,
    /// [`Timer::Retire`].
    Retire,
    /// [`Timer::Linger`].
    Linger,
    /// [`Timer::PeerGone`].
    PeerGone,
}

impl TimerKind {
    /// Every kind, in firing order.
    pub(crate) const ALL: [Self; 9] = [
        Self::Retry,
        Self::Check,
        Self::Pending,
        Self::Join,
        Self::Deletion,
        Self::Receipts,
        Self::Retire,
        Self::Linger,
        Self::PeerGone,
    ];
}

/// A group sends `G_CHECK`s: it is active, it has members whose chains we
/// follow, and something was sent or received since its last check (an idle
/// group's check would say nothing new).
fn checks_on(g: &Group) -> bool {
    g.status == GroupStatus::Active && g.integrity.members().next().is_some() && !g.integrity.idle()
}

type Entries<'a> = Box<dyn Iterator<Item = (Timer, u64)> + 'a>;

impl Agent {
    /// The armed timers of `kind` and their deadlines (milliseconds): the one
    /// place where each kind's deadline rule is written.
    pub(crate) fn timers_of(&self, kind: TimerKind) -> Entries<'_> {
        match kind {
            TimerKind::Retry => Box::new(
                self.ops
                    .iter()
                    .filter_map(|(id, p)| Some((Timer::Retry(*id), p.retry_at?))),
            ),
            TimerKind::Check => Box::new(self.groups.iter().filter_map(|(a, g)| {
                let at = g.integrity.next_check_at().filter(|_| checks_on(g))?;
                Some((Timer::Check(a.clone()), at.as_millis()))
            })),
            TimerKind::Pending => {
                // Counted from when it was added or from our restart,
                // whichever is later: what it sent while we were down waits
                // in our queues ([`Agent::up_since`]).
                let Some(up) = self.up_since else {
                    return Box::new(std::iter::empty());
                };
                let ttl = self.cfg.pending_member_ttl_ms;
                Box::new(self.groups.iter().flat_map(move |(a, g)| {
                    g.members
                        .iter()
                        .filter(|(_, m)| m.status == MemberStatus::Pending)
                        .map(move |(x, m)| {
                            let at = m.since.max(up).saturating_add(ttl);
                            (Timer::Pending(a.clone(), *x), at)
                        })
                }))
            }
            TimerKind::Join => Box::new(self.groups.iter().filter_map(|(a, g)| {
                let j = g.join.as_ref().filter(|j| !j.done)?;
                Some((Timer::Join(a.clone()), j.deadline))
            })),
            TimerKind::Deletion => {
                Box::new(self.groups.iter().filter_map(|(a, g)| match g.status {
                    GroupStatus::Deleting { until, .. } => {
                        Some((Timer::Deletion(a.clone()), until))
                    }
                    GroupStatus::Active => None,
                }))
            }
            TimerKind::Receipts => Box::new(self.groups.iter().flat_map(|(a, g)| {
                g.members.iter().filter_map(move |(x, m)| {
                    Some((Timer::Receipts(a.clone(), *x), m.receipts_due?))
                })
            })),
            TimerKind::Retire => Box::new(
                self.conns
                    .iter()
                    .filter_map(|(id, c)| Some((Timer::Retire(*id), c.retire_at?))),
            ),
            TimerKind::Linger => Box::new(
                self.conns
                    .iter()
                    .filter_map(|(id, c)| Some((Timer::Linger(*id), c.linger_until?))),
            ),
            TimerKind::PeerGone => {
                let grace = self.cfg.removal_grace_ms;
                Box::new(self.conns.iter().filter_map(move |(id, c)| {
                    let at = c.peer_gone_at?.saturating_add(grace);
                    Some((Timer::PeerGone(*id), at))
                }))
            }
        }
    }

    /// Every armed timer, kind by kind in firing order.
    pub(crate) fn timers(&self) -> impl Iterator<Item = (Timer, u64)> + '_ {
        TimerKind::ALL.into_iter().flat_map(|k| self.timers_of(k))
    }

    /// The earliest deadline of the table (milliseconds), if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers().map(|(_, at)| at).min()
    }

    /// The timers of `kind` due now, in the table's order.
    ///
    /// A group's `G_CHECK` is also due once enough messages were counted
    /// since its last one (`Config::check_every_messages`): that trigger is
    /// no deadline (it is looked at after every input, `Agent::handle`), so
    /// it comes from the group's integrity state rather than from the table.
    pub(crate) fn due(&self, kind: TimerKind) -> Vec<Timer> {
        let now = self.now;
        if kind == TimerKind::Check {
            let at = Timestamp::from_millis(now);
            return self
                .groups
                .iter()
                .filter(|(_, g)| checks_on(g) && g.integrity.due(at))
                .map(|(a, _)| Timer::Check(a.clone()))
                .collect();
        }
        self.timers_of(kind)
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| t)
            .collect()
    }

    /// Fires every due timer, kind by kind in firing order (`Input::Timeout`).
    pub(crate) fn on_timeout(&mut self) {
        for kind in TimerKind::ALL {
            self.fire_due(kind);
        }
    }

    /// Fires the timers of `kind` that are due now.
    pub(crate) fn fire_due(&mut self, kind: TimerKind) {
        for t in self.due(kind) {
            self.fire(t);
        }
    }

    /// What timer `t` does when it fires; it is disarmed by its action.
    fn fire(&mut self, t: Timer) {
        match t {
            Timer::Retry(id) => self.retry_op(id),
            Timer::Check(group) => self.send_check(&group),
            Timer::Pending(group, x) => {
                self.close_member(&group, x);
                self.member_gone(&group, x);
            }
            Timer::Join(group) => {
                tracing::warn!(group, "our join did not complete in time: leaving");
                self.leave_group(&group);
            }
            Timer::Deletion(group) => self.check_delete_done(&group),
            Timer::Receipts(group, x) => self.send_receipts(&group, x),
            Timer::Retire(c) => {
                if let Some(cs) = self.conns.get_mut(&c) {
                    cs.retire_at = None;
                }
                self.close_conn(c);
            }
            Timer::Linger(c) => self.end_lingering(c),
            Timer::PeerGone(c) => self.expire_gone_peer(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use smp_groups_integrity::Anchor;
    use smp_groups_wire::agent::MemberId;

    use super::{Timer, TimerKind};
    use crate::state::{
        Conn, ConnStatus, GroupStatus, JoinTrack, Member, MemberStatus, Mid, Owner, PendingOp,
        Purpose,
    };
    use crate::{Agent, Config, Input, RelayOp, Timestamp};

    const T0: u64 = 1_000_000;

    fn agent(cfg: Config) -> Agent {
        let mut a = Agent::new(cfg);
        while a.poll().is_some() {}
        a
    }

    /// An agent with one group `g` (no members yet), at time `T0`.
    fn with_group(cfg: Config) -> Agent {
        crate::group::testing::new_group(cfg, T0)
    }

    fn member(status: MemberStatus, since: u64) -> Member {
        crate::group::testing::member(None, status, since)
    }

    fn add_member(a: &mut Agent, x: Mid, m: Member) {
        if let Some(g) = a.groups.get_mut("g") {
            g.members.insert(x, m);
        }
    }

    fn due_at(a: &mut Agent, kind: TimerKind, now: u64) -> Vec<Timer> {
        a.now = now;
        a.due(kind)
    }

    #[test]
    fn an_idle_agent_arms_no_timer() {
        let a = with_group(Config::default());
        // A group without members sends no checks, however its schedule runs.
        assert_eq!(a.timers().count(), 0);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_retry_is_due_at_its_time_and_disarmed_when_fired() {
        let mut a = with_group(Config::default());
        let id = a.alloc_op();
        let op = RelayOp::Delete {
            op: id,
            server: "s".into(),
            rcv_id: vec![1],
        };
        a.ops.insert(
            id,
            PendingOp {
                op,
                purpose: Purpose::Plain,
                attempts: 1,
                retry_at: Some(T0 + 500),
            },
        );
        assert_eq!(a.poll_timeout(), Some(Timestamp::from_millis(T0 + 500)));
        assert!(due_at(&mut a, TimerKind::Retry, T0 + 499).is_empty());
        assert_eq!(
            due_at(&mut a, TimerKind::Retry, T0 + 500),
            vec![Timer::Retry(id)]
        );
        a.handle(
            Input::Timeout,
            Timestamp::from_millis(T0 + 500),
            &mut smp_groups_crypto::rng::seeded(2),
        );
        // Issued again, and no longer armed.
        let outs: Vec<_> = std::iter::from_fn(|| a.poll()).collect();
        assert!(outs.iter().any(|o| matches!(
            o,
            crate::Output::Relay(RelayOp::Delete { op, .. }) if *op == id
        )));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_pending_member_expires_a_ttl_after_it_was_added_or_we_restarted() {
        let cfg = Config {
            pending_member_ttl_ms: 1_000,
            ..Config::default()
        };
        let mut a = with_group(cfg);
        add_member(&mut a, [1; 16], member(MemberStatus::Pending, T0));
        // Connected members have no such timer.
        add_member(&mut a, [2; 16], member(MemberStatus::Connected, T0 - 5_000));
        assert_eq!(a.next_deadline(), Some(T0 + 1_000));
        // Restarted later than it was added: counted from the restart.
        a.up_since = Some(T0 + 300);
        assert_eq!(a.next_deadline(), Some(T0 + 1_300));
        assert!(due_at(&mut a, TimerKind::Pending, T0 + 1_299).is_empty());
        assert_eq!(
            due_at(&mut a, TimerKind::Pending, T0 + 1_300),
            vec![Timer::Pending("g".into(), [1; 16])]
        );
        // Restored and no input yet: not counting.
        a.up_since = None;
        assert_eq!(a.next_deadline(), None);
        // Fired: the member is gone, and so is its timer.
        a.up_since = Some(T0);
        a.handle(
            Input::Timeout,
            Timestamp::from_millis(T0 + 1_000),
            &mut smp_groups_crypto::rng::seeded(3),
        );
        let g = &a.groups["g"];
        assert!(!g.members.contains_key(&[1; 16]));
        assert!(g.gone.contains(&[1; 16]));
        assert!(a.timers_of(TimerKind::Pending).next().is_none());
    }

    #[test]
    fn the_earliest_deadline_of_every_kind_is_the_next_timeout() {
        let mut a = with_group(Config::default());
        let mut m = member(MemberStatus::Full, T0);
        m.receipts_due = Some(T0 + 40);
        add_member(&mut a, [1; 16], m);
        if let Some(g) = a.groups.get_mut("g") {
            g.join = Some(JoinTrack {
                introducer: [1; 16],
                intros_done: false,
                done: false,
                deadline: T0 + 30,
            });
        }
        let mut c = Conn::new(Owner::Visible("c".into()), ConnStatus::Ready, T0);
        c.retire_at = Some(T0 + 20);
        a.conns.insert(77, c);
        let all: Vec<(Timer, u64)> = a.timers().collect();
        assert_eq!(
            all,
            vec![
                (Timer::Join("g".into()), T0 + 30),
                (Timer::Receipts("g".into(), [1; 16]), T0 + 40),
                (Timer::Retire(77), T0 + 20),
            ]
        );
        assert_eq!(a.poll_timeout(), Some(Timestamp::from_millis(T0 + 20)));
        // A join that completed no longer has a deadline.
        if let Some(j) = a.groups.get_mut("g").and_then(|g| g.join.as_mut()) {
            j.done = true;
        }
        assert!(a.timers_of(TimerKind::Join).next().is_none());
    }

    #[test]
    fn a_deletion_stops_waiting_at_its_time() {
        let mut a = with_group(Config::default());
        if let Some(g) = a.groups.get_mut("g") {
            g.status = GroupStatus::Deleting {
                waiting: [[9; 16]].into_iter().collect(),
                until: T0 + 10,
            };
        }
        assert_eq!(a.next_deadline(), Some(T0 + 10));
        assert!(due_at(&mut a, TimerKind::Deletion, T0 + 9).is_empty());
        a.handle(
            Input::Timeout,
            Timestamp::from_millis(T0 + 10),
            &mut smp_groups_crypto::rng::seeded(4),
        );
        // The deletion completed without the missing answer.
        assert!(!a.groups.contains_key("g"));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn checks_are_armed_only_for_an_active_group_with_members_and_news() {
        let cfg = Config {
            check_interval_ms: Some(1_000),
            check_every_messages: None,
            ..Config::default()
        };
        let mut a = with_group(cfg);
        let Some(g) = a.groups.get_mut("g") else {
            panic!("no group");
        };
        // Members whose chains we follow, but nothing new: no check.
        let _ = g
            .integrity
            .add_member(MemberId([1; 16]), Anchor::Genesis, None);
        g.members.insert([1; 16], member(MemberStatus::Full, T0));
        assert!(a.timers_of(TimerKind::Check).next().is_none());
        // Something sent since the last check: due one interval after it.
        let Some(g) = a.groups.get_mut("g") else {
            panic!("no group");
        };
        assert!(g.integrity.on_sent(b"hello").is_ok());
        assert_eq!(
            a.timers_of(TimerKind::Check).collect::<Vec<_>>(),
            vec![(Timer::Check("g".into()), T0 + 1_000)]
        );
        assert!(due_at(&mut a, TimerKind::Check, T0 + 999).is_empty());
        assert_eq!(
            due_at(&mut a, TimerKind::Check, T0 + 1_000),
            vec![Timer::Check("g".into())]
        );
        // Fired: the round restarts the schedule, and the group is idle.
        a.fire_due(TimerKind::Check);
        assert!(a.timers_of(TimerKind::Check).next().is_none());
        // A deleting group sends no checks.
        let Some(g) = a.groups.get_mut("g") else {
            panic!("no group");
        };
        assert!(g.integrity.on_sent(b"again").is_ok());
        g.status = GroupStatus::Deleting {
            waiting: std::collections::BTreeSet::default(),
            until: T0 + 1_000_000,
        };
        assert!(a.timers_of(TimerKind::Check).next().is_none());
    }

    #[test]
    fn a_check_due_by_count_needs_no_deadline() {
        let cfg = Config {
            check_interval_ms: None,
            check_every_messages: Some(2),
            ..Config::default()
        };
        let mut a = with_group(cfg);
        let Some(g) = a.groups.get_mut("g") else {
            panic!("no group");
        };
        let _ = g
            .integrity
            .add_member(MemberId([1; 16]), Anchor::Genesis, None);
        assert!(g.integrity.on_sent(b"1").is_ok());
        assert!(a.due(TimerKind::Check).is_empty());
        let Some(g) = a.groups.get_mut("g") else {
            panic!("no group");
        };
        assert!(g.integrity.on_sent(b"2").is_ok());
        // Due at once, without waking the agent up for it.
        assert_eq!(a.due(TimerKind::Check), vec![Timer::Check("g".into())]);
        assert_eq!(a.next_deadline(), None);
    }

    /// The connection timers (a closing connection's linger, a gone peer's
    /// grace) fire when the table says, and are disarmed by firing.
    #[test]
    fn connection_timers_fire_when_the_table_says() {
        let cfg = Config {
            removal_grace_ms: 100,
            ..Config::default()
        };
        let mut a = agent(cfg);
        let mut c = Conn::new(Owner::Visible("a".into()), ConnStatus::Joined, T0);
        c.closing = true;
        c.linger_until = Some(T0 + 50);
        a.conns.insert(5, c);
        let mut c = Conn::new(Owner::Visible("b".into()), ConnStatus::Ready, T0);
        c.peer_gone_at = Some(T0 + 10);
        a.conns.insert(6, c);
        assert_eq!(
            a.timers().collect::<Vec<_>>(),
            vec![(Timer::Linger(5), T0 + 50), (Timer::PeerGone(6), T0 + 110)]
        );
        for (now, linger, gone) in [
            (T0 + 49, false, false),
            (T0 + 50, true, false),
            (T0 + 109, false, false),
            (T0 + 110, false, true),
        ] {
            a.now = now;
            assert_eq!(a.due(TimerKind::Linger) == vec![Timer::Linger(5)], linger);
            assert_eq!(a.due(TimerKind::PeerGone) == vec![Timer::PeerGone(6)], gone);
            a.on_timeout();
            // Fired exactly when due: disarmed then, armed before.
            let armed = |k| a.timers_of(k).next().is_some();
            if linger {
                assert!(!armed(TimerKind::Linger));
            }
            if now < T0 + 50 {
                assert!(armed(TimerKind::Linger));
            }
            if now < T0 + 110 {
                assert!(armed(TimerKind::PeerGone));
            }
        }
        assert!(a.timers().next().is_none());
    }
}
