//! Proof of delivery: signed receipts re-broadcast by their sender (`PROOF`)
//! on its check schedule. After one check round every member holds, for
//! every message of every member, a signed receipt from each other member,
//! each verifiable with its signer's key alone; before the round a member
//! holds only the receipts it signed itself (and, for its own messages, the
//! ones it got). A member that never acknowledged a message is named as
//! missing; the proofs survive a restart; a changed byte fails verification.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::config;
use smp_groups_core::sim::{Faults, GroupHandle, Sim};
use smp_groups_core::{Command, Event};
use smp_groups_wire::agent::{GroupId, MemberId};

const N: usize = 4;

fn group_id(sim: &Sim, h: &GroupHandle) -> (GroupId, MemberId) {
    let agent = sim.agent(h.agent).expect("agent");
    let s = agent
        .group_statuses()
        .into_iter()
        .find(|g| g.alias == h.alias)
        .expect("group");
    (s.group_id, s.me)
}

/// Builds the group; every member sends one message; every member but
/// `silent` acknowledges what it got, and all settles. Returns the handles
/// and, per sender, the id of its message.
fn setup(silent: Option<usize>, seed: u64) -> (Sim, Vec<GroupHandle>, BTreeMap<MemberId, u64>) {
    let mut sim = Sim::new(N, &config(), Faults::default(), seed);
    // Every input's store writes must leave the store equal to the state.
    sim.set_check_store(true);
    let hs = sim.build_group(N).expect("group");
    for h in &hs {
        sim.command(
            h.agent,
            Command::Send {
                group: h.alias.clone(),
                body: format!("from {}", h.agent).into_bytes(),
            },
        );
    }
    sim.settle_all();
    let acking: Vec<GroupHandle> = hs
        .iter()
        .filter(|h| Some(h.agent) != silent)
        .cloned()
        .collect();
    sim.ack_all(&acking, &mut BTreeMap::new());
    sim.settle_all();
    // Receipts wait up to the policy's delay to be batched.
    sim.run_until(sim.now() + 5_000);
    sim.settle_all();
    let mut ids = BTreeMap::new();
    for h in &hs {
        for e in sim.events(h.agent) {
            if let Event::Msg { member, meta, .. } = &e.event {
                ids.insert(*member, meta.snd_msg_id);
            }
        }
    }
    assert_eq!(ids.len(), N, "every member's message was seen");
    (sim, hs, ids)
}

/// (signers, missing) of the proof agent `h` holds for `sender`'s message.
fn proof_at(
    sim: &Sim,
    h: &GroupHandle,
    sender: MemberId,
    id: u64,
) -> (BTreeSet<MemberId>, BTreeSet<MemberId>) {
    let agent = sim.agent(h.agent).expect("agent");
    let (gid, me) = group_id(sim, h);
    let who = (sender != me).then_some(sender);
    let p = agent
        .delivery_proof(&h.alias, who, id)
        .expect("the message is in the window");
    assert_eq!(p.sender, sender);
    assert_eq!(p.ext_msg_id, id);
    let mut hashes = BTreeSet::new();
    for u in &p.receipts {
        let key = agent
            .signing_key(&h.alias, Some(u.signer))
            .expect("the signer's key is known");
        assert!(
            smp_groups_core::DeliveryProof::verify(&gid, &sender, u, &key),
            "agent {}: the receipt of {} verifies",
            h.agent,
            u.signer
        );
        // A changed byte does not verify.
        let mut forged = u.clone();
        forged.receipts[0].1.0[0] ^= 1;
        assert!(!smp_groups_core::DeliveryProof::verify(
            &gid, &sender, &forged, &key
        ));
        hashes.insert(p.hash_signed_by(&u.signer).expect("covers the message"));
    }
    assert!(
        hashes.len() <= 1,
        "every signer signed the same content hash"
    );
    (
        p.receipts.iter().map(|u| u.signer).collect(),
        p.missing.iter().copied().collect(),
    )
}

fn members(sim: &Sim, hs: &[GroupHandle]) -> Vec<MemberId> {
    hs.iter().map(|h| group_id(sim, h).1).collect()
}

#[test]
fn after_one_check_round_every_member_holds_every_proof() {
    for seed in [1, 2, 3] {
        let (mut sim, hs, ids) = setup(None, seed);
        let all = members(&sim, &hs);
        // Before the round: a member holds its own receipt for another's
        // message, not the others'.
        for h in &hs {
            let me = group_id(&sim, h).1;
            for (sender, id) in &ids {
                let (signers, missing) = proof_at(&sim, h, *sender, *id);
                if *sender == me {
                    assert_eq!(signers.len(), N - 1, "seed {seed}: our own message");
                    assert!(missing.is_empty());
                } else {
                    assert_eq!(signers, BTreeSet::from([me]), "seed {seed}");
                    assert_eq!(missing.len(), N - 2);
                }
            }
        }
        sim.check_all(&hs);
        for h in &hs {
            for (sender, id) in &ids {
                let (signers, missing) = proof_at(&sim, h, *sender, *id);
                let others: BTreeSet<MemberId> =
                    all.iter().copied().filter(|m| m != sender).collect();
                assert_eq!(signers, others, "seed {seed}: agent {}", h.agent);
                assert!(missing.is_empty(), "seed {seed}: agent {}", h.agent);
            }
        }
        // Nothing was refused on the way.
        for h in &hs {
            assert_eq!(sim.refusals(h.agent).total(), 0, "seed {seed}");
        }
    }
}

#[test]
fn a_member_that_did_not_acknowledge_is_named_missing_until_it_does() {
    let silent = 3;
    let (mut sim, hs, ids) = setup(Some(silent), 7);
    let quiet = group_id(&sim, &hs[silent]).1;
    sim.check_all(&hs);
    for h in hs.iter().filter(|h| h.agent != silent) {
        for (sender, id) in &ids {
            if *sender == quiet {
                continue;
            }
            let (signers, missing) = proof_at(&sim, h, *sender, *id);
            assert!(!signers.contains(&quiet));
            assert_eq!(missing, BTreeSet::from([quiet]), "agent {}", h.agent);
        }
    }
    // It acknowledges now; the next round completes every proof.
    sim.ack_all(&hs[silent..=silent], &mut BTreeMap::new());
    sim.run_until(sim.now() + 5_000);
    sim.settle_all();
    sim.check_all(&hs);
    for h in &hs {
        for (sender, id) in &ids {
            let (_, missing) = proof_at(&sim, h, *sender, *id);
            assert!(missing.is_empty(), "agent {}: {missing:?}", h.agent);
        }
    }
}

#[test]
fn proofs_survive_a_restart() {
    let (mut sim, hs, ids) = setup(None, 11);
    sim.check_all(&hs);
    let before: Vec<_> = ids
        .iter()
        .map(|(s, id)| proof_at(&sim, &hs[1], *s, *id))
        .collect();
    sim.crash(1);
    sim.restart(1).expect("restores");
    let after: Vec<_> = ids
        .iter()
        .map(|(s, id)| proof_at(&sim, &hs[1], *s, *id))
        .collect();
    assert_eq!(before, after);
    assert!(after.iter().all(|(_, missing)| missing.is_empty()));
}
