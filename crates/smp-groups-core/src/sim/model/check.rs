//! The checker: runs a [`Case`] to the end, settles it, and checks every
//! property of the model (see the module documentation).

use std::collections::{BTreeMap, BTreeSet};

use smp_groups_wire::agent::MemberId;

use super::run::Run;
use super::{Case, CheckFailure, Op, Stats};
use crate::sim::{GroupHandle, Sim};
use crate::{Config, Event, FaultKind, FaultSource};

/// Runs `case` and checks it; on success `stats` holds what the run did (the
/// counts are left alone when a check fails).
pub fn check(case: &Case, stats: &mut Stats) -> Result<(), CheckFailure> {
    let (n, seed) = (case.n, case.seed);
    let mut sim = Sim::new(n, &config(case), case.faults, seed);
    sim.set_check_store(true);
    for b in 1..n {
        for a in 0..b {
            ensure!(seed, sim.connect(a, b).is_some(), "seed {seed}: connect");
        }
    }
    let Some(first) = sim.create_group(0) else {
        return Err(CheckFailure::new(
            seed,
            format!("seed {seed}: agent 0 could not create the group"),
        ));
    };
    let mut run = Run::new(sim, first);
    for (k, op) in case.ops.iter().enumerate() {
        run.apply(op, k)?;
    }
    // Settle: bring everyone back, answer approvals, acknowledge messages.
    run.restart_all()?;
    let mut acked = BTreeMap::new();
    for _ in 0..8 {
        run.sim.settle_all();
        let hs: Vec<GroupHandle> = run
            .gens
            .iter()
            .flat_map(|g| g.handles.values().cloned())
            .collect();
        run.sim.ack_all(&hs, &mut acked);
        let approved = run.approve_pending();
        run.sim.settle_all();
        if !approved {
            break;
        }
    }
    run.stats.cases = 1;
    for g in 0..run.gens.len() {
        let members: Vec<usize> = run.gens[g].handles.keys().copied().collect();
        for i in members {
            run.id_of(g, i);
        }
    }
    let dump = |run: &Run| {
        if std::env::var_os("CORE_PROP_DUMP").is_some() {
            eprintln!("{case:?}");
            eprintln!("ids: {:?}", run.ids);
            for i in 0..n {
                eprintln!("== agent {i}");
                for e in run.sim.events(i) {
                    if !matches!(e.event, Event::Invitation { .. } | Event::Con { .. }) {
                        eprintln!("   {e:?}");
                    }
                }
            }
        }
    };

    for g in 0..run.gens.len() {
        let in_group: BTreeSet<usize> = run.gens[g]
            .handles
            .keys()
            .copied()
            .filter(|i| run.holds(g, *i))
            .collect();
        if run.gens[g].deleted {
            // A deletion reaches every member that knows the deleter, and
            // through them members added since. One exception: a deleter that
            // was being removed when it deleted may be unknown to every member
            // still holding the group (its removal raced the members' joins and
            // whoever could pass the deletion on has gone). Those members keep
            // the group, and the checks below still require them to agree on
            // exactly themselves (docs/groups.md, "Deletion by a member being
            // removed").
            let unreachable = run.gens[g].deleted_by.is_some_and(|by| {
                run.gens[g].removed.contains(&by)
                    && in_group.iter().all(|i| !connected_to(&run, g, *i, by))
            });
            if !in_group.is_empty() && !unreachable {
                dump(&run);
            }
            ensure!(
                seed,
                in_group.is_empty() || unreachable,
                "seed {seed}: generation {g} was deleted, still held by {in_group:?}"
            );
            if !in_group.is_empty() {
                run.stats.deletes_unreachable += 1;
            }
        }
        // 1. Liveness: every holder finished its join.
        for i in &in_group {
            if !run.complete(g, *i) {
                dump(&run);
            }
            ensure!(
                seed,
                run.complete(g, *i),
                "seed {seed}: agent {i} holds generation {g} and its join never completed"
            );
        }
        // 2. Whoever does not hold it any more was told why.
        let (mut abandoned, mut completed) = (0, 0);
        for (i, h) in &run.gens[g].handles {
            if !in_group.contains(i) {
                if run.sim.events(*i).iter().any(
                    |e| matches!(&e.event, Event::Left { group, member: None } if *group == h.alias),
                ) && !run.complete(g, *i)
                {
                    abandoned += 1;
                }
                ensure!(
                    seed,
                    told_out(&run.sim, *i, &h.alias),
                    "seed {seed}: agent {i} lost generation {g} without LEFT, OUT or DELD"
                );
            }
            if *i != run.gens[g].creator && run.complete(g, *i) {
                completed += 1;
            }
        }
        run.stats.joins_abandoned += abandoned;
        run.stats.adds_completed += completed;
        // 3. Convergence on the expected member set.
        let gen_ = &run.gens[g];
        let expected: BTreeSet<MemberId> = in_group
            .iter()
            .filter_map(|i| run.ids.get(&(g, *i)).copied())
            .collect();
        ensure_eq!(seed, expected.len(), in_group.len(), "seed {seed}: ids");
        for i in &in_group {
            let h = &gen_.handles[i];
            let Some(a) = run.sim.agent(*i) else {
                return Err(CheckFailure::new(
                    seed,
                    format!("seed {seed}: agent {i} holds generation {g} and is down"),
                ));
            };
            let me = a.member_id(&h.alias);
            let connected: BTreeSet<MemberId> = a.members(&h.alias).into_iter().chain(me).collect();
            let known: BTreeSet<MemberId> =
                a.known_members(&h.alias).into_iter().chain(me).collect();
            if connected != expected || known != expected {
                dump(&run);
            }
            ensure_eq!(
                seed,
                connected,
                expected,
                "seed {seed}: agent {i} (generation {g}) sees other members than those in the group"
            );
            ensure_eq!(
                seed,
                known,
                expected,
                "seed {seed}: agent {i} (generation {g}) still knows members not in the group"
            );
        }
        // 4. Exactly once to every member that was in at send time and still is.
        let (mut sender_removed, mut deliveries_checked) = (0, 0);
        for s in run.sent.iter().filter(|s| s.generation == g) {
            let sender_alias = &gen_.handles[&s.sender_agent].alias;
            // Removed, whether it heard of it (`OUT`) or not: a member that
            // removed it drops what it sent that arrives after the removal.
            let removed = run
                .sim
                .events(s.sender_agent)
                .iter()
                .any(|e| matches!(&e.event, Event::Out { group, .. } if group == sender_alias))
                || gen_.handles.iter().any(|(i, h)| {
                    run.sim.events(*i).iter().any(|e| {
                        matches!(&e.event, Event::Removed { group, member, .. }
                            if *group == h.alias && *member == s.sender)
                    })
                });
            if removed {
                sender_removed += 1;
                continue;
            }
            for r in s.to.intersection(&in_group) {
                let alias = &gen_.handles[r].alias;
                let got = run
                    .sim
                    .events(*r)
                    .iter()
                    .filter(|e| matches!(&e.event, Event::Msg { group, member, body, .. } if group == alias && *member == s.sender && *body == s.body))
                    .count();
                deliveries_checked += 1;
                if got != 1 {
                    dump(&run);
                }
                ensure_eq!(
                    seed,
                    got,
                    1,
                    "seed {seed}: {:?} from {} to {r}",
                    String::from_utf8_lossy(&s.body),
                    s.sender_agent
                );
            }
            // The send of a member still in the group completes.
            if in_group.contains(&s.sender_agent)
                && let Some(id) = s.int_id
            {
                let done = run.sim.events(s.sender_agent).iter().any(|e| {
                    matches!(&e.event, Event::Rcvd { group, member: None, msg_id, .. }
                        if group == sender_alias && *msg_id == id)
                });
                if !done {
                    dump(&run);
                }
                ensure!(
                    seed,
                    done,
                    "seed {seed}: send {:?} of agent {} never completed",
                    String::from_utf8_lossy(&s.body),
                    s.sender_agent
                );
            }
        }
        run.stats.sender_removed += sender_removed;
        run.stats.deliveries_checked += deliveries_checked;
        // 4b. A direct message between two members that both stayed in the
        // group (and were never removed) arrives exactly once and is
        // confirmed.
        let mut direct_checked = 0;
        for d in run.direct.iter().filter(|d| d.generation == g) {
            let (s, r) = (d.sender_agent, d.recipient_agent);
            if !in_group.contains(&s) || !in_group.contains(&r) {
                continue;
            }
            let removed_ever = |agent: usize| {
                run.ids.get(&(g, agent)).is_some_and(|id| {
                    gen_.handles.iter().any(|(i, h)| {
                        run.sim.events(*i).iter().any(|e| {
                            matches!(&e.event, Event::Removed { group, member, .. }
                                if *group == h.alias && member == id)
                        })
                    })
                })
            };
            if removed_ever(s) || removed_ever(r) {
                continue;
            }
            let (s_alias, r_alias) = (&gen_.handles[&s].alias, &gen_.handles[&r].alias);
            let got = run
                .sim
                .events(r)
                .iter()
                .filter(|e| {
                    matches!(&e.event, Event::DirectMsg { group, member, body, .. }
                    if group == r_alias && *member == d.sender && *body == d.body)
                })
                .count();
            let confirmed = run.sim.events(s).iter().any(|e| {
                matches!(&e.event, Event::DirectRcvd { group, msg_id, status, .. }
                    if group == s_alias && *msg_id == d.int_id && status.is_ok())
            });
            if got != 1 || !confirmed {
                dump(&run);
            }
            ensure_eq!(
                seed,
                got,
                1,
                "seed {seed}: direct {:?} from {s} to {r}",
                String::from_utf8_lossy(&d.body)
            );
            ensure!(
                seed,
                confirmed,
                "seed {seed}: direct {:?} from {s} to {r} never confirmed",
                String::from_utf8_lossy(&d.body)
            );
            direct_checked += 1;
        }
        run.stats.direct_checked += direct_checked;
    }
    // 5. No duplicates, no violations, no unknown names.
    let known: BTreeSet<MemberId> = run.ids.values().copied().collect();
    for i in 0..n {
        let aliases: BTreeSet<&String> = run
            .gens
            .iter()
            .filter_map(|g| g.handles.get(&i).map(|h| &h.alias))
            .collect();
        let mut bodies = BTreeSet::new();
        for e in run.sim.events(i) {
            if let Event::Msg {
                group,
                member,
                body,
                ..
            } = &e.event
            {
                ensure!(
                    seed,
                    bodies.insert((group.clone(), *member, body.clone())),
                    "seed {seed}: agent {i} got a duplicate"
                );
            }
            if let Event::Violation { .. } = &e.event {
                dump(&run);
            }
            ensure!(
                seed,
                !matches!(e.event, Event::Violation { .. }),
                "seed {seed}: agent {i} reported {:?} in an honest run",
                e.event
            );
            let (group, members) = named(&e.event);
            if let Some(g) = group {
                ensure!(
                    seed,
                    aliases.contains(g),
                    "seed {seed}: agent {i} names group {g}"
                );
            }
            for m in members {
                if !known.contains(&m) {
                    dump(&run);
                }
                ensure!(
                    seed,
                    known.contains(&m),
                    "seed {seed}: agent {i} names unknown member {m}"
                );
            }
        }
    }
    // 6. Refusals: none by a peer or by ourselves in these honest runs.
    let crashed = case.ops.iter().any(|o| matches!(o, Op::Crash(_)));
    let fault_free = case.faults.loss_ppm == 0 && case.faults.duplicate_ppm == 0 && !crashed;
    for i in 0..n {
        let r = run.sim.refusals(i);
        let own = r.of_source(FaultSource::Peer) + r.of_source(FaultSource::Local);
        if own > 0 {
            dump(&run);
        }
        ensure_eq!(
            seed,
            own,
            0,
            "seed {seed}: agent {i} refused inputs as a peer's or its own fault: {r}"
        );
        if fault_free {
            ensure_eq!(
                seed,
                r.get(FaultSource::Relay, FaultKind::Duplicate),
                0,
                "seed {seed}: agent {i} counted duplicates in a run without faults: {r}"
            );
        }
        for e in run.sim.events(i) {
            ensure!(
                seed,
                !matches!(e.event, Event::Fault { .. }),
                "seed {seed}: agent {i} reported {:?} in an honest run",
                e.event
            );
        }
        run.stats.refusals.add(&r);
    }
    *stats = run.stats;
    Ok(())
}

/// The agents' configuration for `case`.
fn config(case: &Case) -> Config {
    Config {
        check_interval_ms: None,
        check_every_messages: Some(4),
        check_window: 64,
        pending_member_ttl_ms: 120_000,
        open_invitations: case.open_invitations,
        approval_threshold: case.approval_threshold,
        ..Config::default()
    }
}

/// Every event's group and members, for the "no unknown entity" check.
fn named(e: &Event) -> (Option<&String>, Vec<MemberId>) {
    match e {
        Event::GroupCon { group, member } | Event::Msg { group, member, .. } => {
            (Some(group), vec![*member])
        }
        Event::Mem { group, member }
        | Event::Left { group, member }
        | Event::Sent { group, member, .. }
        | Event::Rcvd { group, member, .. } => (Some(group), member.iter().copied().collect()),
        Event::Removed { group, member, by } => {
            (Some(group), std::iter::once(*member).chain(*by).collect())
        }
        Event::Out { group, by } => (Some(group), vec![*by]),
        Event::Deleted { group, by } => (Some(group), by.iter().copied().collect()),
        Event::Empty { group }
        | Event::ApprovalRequired { group, .. }
        | Event::Violation { group, .. } => (Some(group), vec![]),
        _ => (None, vec![]),
    }
}

/// Whether agent `i` was ever connected to agent `j` in generation `g` (a
/// `CON` naming `j`'s member id).
fn connected_to(run: &Run, g: usize, i: usize, j: usize) -> bool {
    let (Some(h), Some(id)) = (run.gens[g].handles.get(&i), run.ids.get(&(g, j))) else {
        return false;
    };
    run.sim.events(i).iter().any(|e| {
        matches!(&e.event, Event::GroupCon { group, member } if *group == h.alias && member == id)
    })
}

/// Whether agent `i` was told it is out of the group `alias`.
fn told_out(sim: &Sim, i: usize, alias: &str) -> bool {
    sim.events(i).iter().any(|e| match &e.event {
        Event::Left {
            group,
            member: None,
        }
        | Event::Out { group, .. }
        | Event::Deleted { group, .. } => group == alias,
        _ => false,
    })
}
