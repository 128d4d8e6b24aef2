//! Group information and member profiles (`GINFO`, `PROFILE`): updates reach
//! every member and show as events, concurrent updates converge (last
//! writer wins on `(time, member id)`), a member who joins later gets the
//! current values, duplicates are counted and dropped, and what is held
//! survives a crash.

mod common;

use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Event, FaultKind, FaultSource, Key};
use smp_groups_wire::agent::MemberId;

use common::{config, count};

fn set_info(sim: &mut Sim, h: &GroupHandle, info: &[u8]) {
    let corr = sim.command(
        h.agent,
        Command::SetInfo {
            group: h.alias.clone(),
            info: info.to_vec(),
        },
    );
    assert!(
        matches!(sim.response(h.agent, &corr), Some(Event::Ok { .. })),
        "INFO accepted: {:?}",
        sim.response(h.agent, &corr)
    );
}

fn set_profile(sim: &mut Sim, h: &GroupHandle, profile: &[u8]) {
    let corr = sim.command(
        h.agent,
        Command::SetProfile {
            group: h.alias.clone(),
            profile: profile.to_vec(),
        },
    );
    assert!(matches!(
        sim.response(h.agent, &corr),
        Some(Event::Ok { .. })
    ));
}

fn info_of(sim: &Sim, h: &GroupHandle) -> Vec<u8> {
    sim.agent(h.agent)
        .and_then(|a| a.group_info(&h.alias))
        .expect("group held")
        .to_vec()
}

fn mid(sim: &Sim, h: &GroupHandle) -> MemberId {
    sim.agent(h.agent)
        .and_then(|a| a.member_id(&h.alias))
        .expect("member id")
}

/// The profile `viewer` holds for `of`'s member.
fn profile_seen(sim: &Sim, viewer: &GroupHandle, of: MemberId) -> Vec<u8> {
    sim.agent(viewer.agent)
        .and_then(|a| a.member_profile(&viewer.alias, of))
        .expect("member held")
        .to_vec()
}

fn info_events(sim: &Sim, i: usize) -> Vec<(MemberId, Vec<u8>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::GroupInfo { member, info, .. } => Some((*member, info.clone())),
            _ => None,
        })
        .collect()
}

fn profile_events(sim: &Sim, i: usize, of: MemberId) -> Vec<Vec<u8>> {
    sim.events(i)
        .iter()
        .filter_map(|e| match &e.event {
            Event::MemberProfile {
                member, profile, ..
            } if *member == of => Some(profile.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn updates_reach_every_member_as_events_and_show_in_members() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 1);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group of 3");
    set_info(&mut sim, &hs[1], b"Book club, Tuesdays");
    set_profile(&mut sim, &hs[2], b"Carol");
    sim.settle_all();
    let author = mid(&sim, &hs[1]);
    let carol = mid(&sim, &hs[2]);
    for h in &hs {
        assert_eq!(info_of(&sim, h), b"Book club, Tuesdays");
    }
    for h in [&hs[0], &hs[2]] {
        assert_eq!(
            info_events(&sim, h.agent),
            vec![(author, b"Book club, Tuesdays".to_vec())]
        );
    }
    assert!(info_events(&sim, 1).is_empty(), "the author is not told");
    for h in [&hs[0], &hs[1]] {
        assert_eq!(profile_seen(&sim, h, carol), b"Carol");
        assert_eq!(
            profile_events(&sim, h.agent, carol),
            vec![b"Carol".to_vec()]
        );
        let rows = sim
            .agent(h.agent)
            .expect("up")
            .member_statuses(&h.alias)
            .expect("group");
        let row = rows.iter().find(|r| r.member == carol).expect("carol");
        assert_eq!(row.profile, b"Carol");
    }
    assert_eq!(
        sim.agent(2).and_then(|a| a.own_profile(&hs[2].alias)),
        Some(&b"Carol"[..])
    );
}

#[test]
fn oversized_updates_are_refused() {
    let mut sim = Sim::new(2, &config(), Faults::default(), 2);
    let hs = sim.build_group(2).expect("group of 2");
    let corr = sim.command(
        0,
        Command::SetProfile {
            group: hs[0].alias.clone(),
            profile: vec![b'x'; smp_groups_wire::agent::MAX_PROFILE_LEN + 1],
        },
    );
    assert!(matches!(
        sim.response(0, &corr),
        Some(Event::Err(smp_groups_core::CommandError::TooLarge { .. }))
    ));
    let corr = sim.command(
        0,
        Command::SetInfo {
            group: "nope".into(),
            info: b"x".to_vec(),
        },
    );
    assert!(matches!(
        sim.response(0, &corr),
        Some(Event::Err(smp_groups_core::CommandError::NoGroup(_)))
    ));
}

/// Two members set the group information at the same time (same clock):
/// the member id breaks the tie, and every member ends with the same value,
/// under loss, duplicates and reordering, for several seeds.
#[test]
fn concurrent_updates_converge_under_faults() {
    let faults = Faults {
        loss_ppm: 50_000,
        duplicate_ppm: 50_000,
        max_delay_ms: 200,
    };
    for seed in 0..6 {
        let mut sim = Sim::new(4, &config(), faults, 100 + seed);
        let hs = sim.build_group(4).expect("group of 4");
        set_info(&mut sim, &hs[1], b"from one");
        set_info(&mut sim, &hs[2], b"from two");
        set_profile(&mut sim, &hs[3], b"first");
        set_profile(&mut sim, &hs[3], b"second");
        sim.settle_all();
        let (m1, m2) = (mid(&sim, &hs[1]), mid(&sim, &hs[2]));
        let want: &[u8] = if m1 > m2 { b"from one" } else { b"from two" };
        for h in &hs {
            assert_eq!(info_of(&sim, h), want, "seed {seed}, agent {}", h.agent);
        }
        let dave = mid(&sim, &hs[3]);
        for h in &hs[..3] {
            assert_eq!(profile_seen(&sim, h, dave), b"second", "seed {seed}");
        }
        // The loser's value was never reported after the winner's.
        for h in &hs {
            if let Some((_, last)) = info_events(&sim, h.agent).last() {
                assert_eq!(last, want);
            }
        }
    }
}

/// An update made after seeing another wins over it even if its maker's
/// stamp would otherwise be lower (the stamp is at least the held one + 1).
#[test]
fn a_later_update_wins_over_the_one_it_saw() {
    let mut sim = Sim::new(3, &config(), Faults::default(), 3);
    let hs = sim.build_group(3).expect("group of 3");
    set_info(&mut sim, &hs[2], b"first");
    sim.settle_all();
    set_info(&mut sim, &hs[0], b"second");
    sim.settle_all();
    for h in &hs {
        assert_eq!(info_of(&sim, h), b"second");
    }
}

/// A member who joins later gets the current information and profiles,
/// though its invitation carried an older information; each existing member
/// sends it what it holds, so the copies beyond the first are counted as
/// duplicates and reported once.
#[test]
fn a_later_member_gets_the_current_values() {
    let mut sim = Sim::new(4, &config(), Faults::default(), 4);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group of 3");
    set_info(&mut sim, &hs[1], b"renamed");
    set_profile(&mut sim, &hs[2], b"Carol");
    set_profile(&mut sim, &hs[0], b"Alice");
    sim.settle_all();
    let d = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    assert_eq!(info_of(&sim, &d), b"renamed");
    assert_eq!(
        info_events(&sim, 3),
        vec![(mid(&sim, &hs[1]), b"renamed".to_vec())]
    );
    assert_eq!(profile_seen(&sim, &d, mid(&sim, &hs[2])), b"Carol");
    assert_eq!(profile_seen(&sim, &d, mid(&sim, &hs[0])), b"Alice");
    // Bob's profile was never set: nothing reported for it.
    assert!(profile_events(&sim, 3, mid(&sim, &hs[1])).is_empty());
    assert_eq!(
        profile_events(&sim, 3, mid(&sim, &hs[2])),
        vec![b"Carol".to_vec()],
        "reported once, with CON"
    );
    // Three members sent GINFO; two copies were duplicates.
    assert_eq!(
        sim.refusals(3)
            .get(FaultSource::Nobody, FaultKind::Duplicate),
        2
    );
    // The new member's own profile reaches the others.
    set_profile(&mut sim, &d, b"Dave");
    sim.settle_all();
    let dave = mid(&sim, &d);
    for h in &hs {
        assert_eq!(profile_seen(&sim, h, dave), b"Dave");
    }
}

/// What is held survives a crash: the information, the stamps (an older
/// update is still refused after the restart) and our own profile, which
/// then travels in the member information of later introductions.
#[test]
fn values_and_stamps_survive_a_crash() {
    let mut sim = Sim::new(4, &config(), Faults::default(), 5);
    sim.set_check_store(true);
    let hs = sim.build_group(3).expect("group of 3");
    set_info(&mut sim, &hs[0], b"v1");
    set_profile(&mut sim, &hs[1], b"Bob");
    sim.settle_all();
    let has_record = |sim: &Sim, i: usize| {
        sim.agent(i)
            .expect("up")
            .records()
            .iter()
            .any(|(k, _)| matches!(k, Key::Profiles(_)))
    };
    assert!(has_record(&sim, 1) && has_record(&sim, 2));
    sim.crash(1);
    sim.crash(2);
    // Updates made while both are down wait in the relay.
    set_info(&mut sim, &hs[0], b"v2");
    sim.restart(1).expect("restores");
    sim.restart(2).expect("restores");
    assert_eq!(info_of(&sim, &hs[2]), b"v1", "restored before v2 arrives");
    assert_eq!(
        sim.agent(1).and_then(|a| a.own_profile(&hs[1].alias)),
        Some(&b"Bob"[..])
    );
    sim.settle_all();
    for h in &hs {
        assert_eq!(info_of(&sim, h), b"v2");
    }
    assert_eq!(profile_seen(&sim, &hs[2], mid(&sim, &hs[1])), b"Bob");
    // A member added now learns Bob's profile and v2.
    let d = sim.invite(&hs[0], 3).expect("invited");
    sim.settle_all();
    assert_eq!(info_of(&sim, &d), b"v2");
    assert_eq!(profile_seen(&sim, &d, mid(&sim, &hs[1])), b"Bob");
    // Leaving forgets the record.
    sim.command(
        1,
        Command::Leave {
            group: hs[1].alias.clone(),
        },
    );
    sim.settle_all();
    assert!(!has_record(&sim, 1));
    assert_eq!(
        count(sim.events(1), |e| matches!(
            e,
            Event::Left { member: None, .. }
        )),
        1
    );
}
