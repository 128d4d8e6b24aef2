//! Test helpers for the group rules: an agent holding group `g` with
//! members on connections, fed envelopes directly.

use smp_groups_wire::agent::{EnvelopeKind, GroupEnvelope};

use crate::state::{AnchorRec, Conn, ConnStatus, Member, MemberStatus, Mid, Owner};
use crate::{Agent, Command, Config, Event, Input, Output, Timestamp};

/// The time of the agent's inputs.
pub(crate) const NOW: u64 = 1_000_000;

/// An agent that created group `g` (no members yet) at time `now`, its
/// outputs taken.
pub(crate) fn new_group(cfg: Config, now: u64) -> Agent {
    let mut a = Agent::new(cfg);
    a.handle(
        Input::Command {
            corr: "1".into(),
            command: Command::NewGroup {
                alias: Some("g".into()),
                info: Vec::new(),
            },
        },
        Timestamp::from_millis(now),
        &mut smp_groups_crypto::rng::seeded(1),
    );
    while a.poll().is_some() {}
    a
}

/// An agent holding group `g`, with the members `members` connected (full),
/// member `i` on connection `10 + i`.
pub(crate) fn group_with(cfg: Config, members: &[Mid]) -> Agent {
    let mut a = new_group(cfg, NOW);
    for (i, x) in members.iter().enumerate() {
        let conn = 10 + i as u64;
        let owner = Owner::Member {
            group: "g".into(),
            member: *x,
        };
        a.conns
            .insert(conn, Conn::new(owner, ConnStatus::Ready, NOW));
        let Some(g) = a.groups.get_mut("g") else {
            continue;
        };
        let _ = g.integrity.add_member(
            smp_groups_wire::agent::MemberId(*x),
            smp_groups_integrity::Anchor::Genesis,
            None,
        );
        g.had_members = true;
        g.insert_member(*x, member(Some(conn), MemberStatus::Full, NOW));
    }
    a
}

/// A member as the tests hold it: on connection `conn` if any, in `status`
/// since `since`, with no key or profile, its chain from genesis.
pub(crate) fn member(conn: Option<u64>, status: MemberStatus, since: u64) -> Member {
    Member {
        conn,
        status,
        signing_key: None,
        profile: Vec::new(),
        since,
        introduced_by: None,
        my_anchor: AnchorRec::Genesis,
        peer_anchor: None,
        announced: false,
        receipts: Vec::new(),
        receipts_due: None,
    }
}

/// Member `from` sends `env` on its connection (`10 + i`).
pub(crate) fn from(a: &mut Agent, from: Mid, conn: u64, env: GroupEnvelope) {
    let owner = Owner::Member {
        group: "g".into(),
        member: from,
    };
    a.on_group_envelope(conn, &owner, 1, env);
}

/// The kinds of the envelopes queued on connection `conn`.
pub(crate) fn queued(a: &Agent, conn: u64) -> Vec<EnvelopeKind> {
    a.conns
        .get(&conn)
        .map(|c| c.outbox.iter().map(|i| i.kind.envelope).collect())
        .unwrap_or_default()
}

/// The client events so far (the input's outputs are completed first).
pub(crate) fn events(a: &mut Agent) -> Vec<Event> {
    a.handle(
        Input::Timeout,
        Timestamp::from_millis(NOW),
        &mut smp_groups_crypto::rng::seeded(2),
    );
    std::iter::from_fn(|| a.poll())
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.event),
            _ => None,
        })
        .collect()
}
