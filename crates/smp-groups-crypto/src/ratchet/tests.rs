//! Unit and property tests of the ratchet (inside the crate, so they can see
//! message keys).

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::HashSet;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::rng::seeded;

/// A small configuration so property tests run quickly, turning the DH ratchet
/// at every opportunity (K = 1): the tests written for a DH step per turn of the
/// conversation use it.
fn small(max_skip: u32) -> RatchetConfig {
    small_k(max_skip, 1)
}

/// A small configuration with DH step policy `k`.
fn small_k(max_skip: u32, k: u32) -> RatchetConfig {
    RatchetConfig {
        max_skip,
        body_padded_len: 64,
        dh_step_every: k,
    }
}

/// A fresh session: (initiator, responder, rng).
fn session(seed: u64, config: RatchetConfig) -> (Ratchet, Ratchet, ChaCha20Rng) {
    session_with(seed, config, config)
}

/// A fresh session whose sides have their own configurations (the same message
/// length, possibly different DH step policies).
fn session_with(
    seed: u64,
    alice_config: RatchetConfig,
    bob_config: RatchetConfig,
) -> (Ratchet, Ratchet, ChaCha20Rng) {
    let mut rng = seeded(seed);
    let a = X3dhKeyPairs::generate(&mut rng);
    let b = X3dhKeyPairs::generate(&mut rng);
    let alice = Ratchet::init_initiator(&a, &b.params(), alice_config).unwrap();
    let bob = Ratchet::init_responder(&b, &a.params(), bob_config).unwrap();
    (alice, bob, rng)
}

fn text(side: u8, i: usize) -> Vec<u8> {
    format!("{side}:{i}").into_bytes()
}

#[test]
fn conversation_with_fixed_size_ciphertexts() {
    let config = RatchetConfig::default();
    assert_eq!(config.message_len(), DEFAULT_MESSAGE_LEN);
    assert_eq!(config.max_plaintext(), 15_632);
    let (mut alice, mut bob, mut rng) = session(1, config);
    assert!(!bob.can_send());
    assert_eq!(
        bob.encrypt(&mut rng, b"too early", b"").unwrap_err(),
        CryptoError::NotReady
    );
    for round in 0..4 {
        for i in 0..3 {
            let m = alice.encrypt(&mut rng, &text(round, i), b"ad").unwrap();
            assert_eq!(m.len(), DEFAULT_MESSAGE_LEN);
            assert_eq!(bob.decrypt(&m, b"ad").unwrap(), text(round, i));
        }
        let big = vec![round; config.max_plaintext()];
        let m = bob.encrypt(&mut rng, &big, b"ad").unwrap();
        assert_eq!(m.len(), DEFAULT_MESSAGE_LEN);
        assert_eq!(alice.decrypt(&m, b"ad").unwrap(), big);
        let empty = bob.encrypt(&mut rng, b"", b"ad").unwrap();
        assert_eq!(empty.len(), DEFAULT_MESSAGE_LEN);
        assert_eq!(alice.decrypt(&empty, b"ad").unwrap(), b"");
    }
    let too_long = vec![0; config.max_plaintext() + 1];
    let before = alice.to_bytes().unwrap();
    assert!(matches!(
        alice.encrypt(&mut rng, &too_long, b""),
        Err(CryptoError::TooLong { .. })
    ));
    assert_eq!(alice.to_bytes().unwrap(), before);
}

#[test]
fn replays_are_rejected_and_leave_the_state_unchanged() {
    let (mut alice, mut bob, mut rng) = session(2, small(16));
    let m0 = alice.encrypt(&mut rng, b"m0", b"").unwrap();
    let m1 = alice.encrypt(&mut rng, b"m1", b"").unwrap();
    let m2 = alice.encrypt(&mut rng, b"m2", b"").unwrap();
    bob.decrypt(&m0, b"").unwrap();
    bob.decrypt(&m2, b"").unwrap();
    let state = bob.to_bytes().unwrap();
    // In-order replay in the current chain.
    assert_eq!(
        bob.decrypt(&m0, b"").unwrap_err(),
        CryptoError::Replay { n: 0 }
    );
    assert_eq!(
        bob.decrypt(&m2, b"").unwrap_err(),
        CryptoError::Replay { n: 2 }
    );
    assert_eq!(bob.to_bytes().unwrap(), state);
    // A skipped message decrypts once, then is a replay.
    assert_eq!(bob.decrypt(&m1, b"").unwrap(), b"m1");
    assert_eq!(
        bob.decrypt(&m1, b"").unwrap_err(),
        CryptoError::Replay { n: 1 }
    );
    // After a DH step, a message of the old chain (with a kept key) is still
    // accepted once, and other old messages are rejected.
    let m3 = alice.encrypt(&mut rng, b"m3", b"").unwrap();
    let m4 = alice.encrypt(&mut rng, b"m4", b"").unwrap();
    let r = bob.encrypt(&mut rng, b"r", b"").unwrap();
    alice.decrypt(&r, b"").unwrap();
    let n0 = alice.encrypt(&mut rng, b"n0", b"").unwrap();
    assert_eq!(bob.decrypt(&n0, b"").unwrap(), b"n0");
    assert_eq!(bob.skipped_keys(), 2);
    assert_eq!(bob.decrypt(&m3, b"").unwrap(), b"m3");
    assert_eq!(
        bob.decrypt(&m3, b"").unwrap_err(),
        CryptoError::Replay { n: 3 }
    );
    assert_eq!(
        bob.decrypt(&m0, b"").unwrap_err(),
        CryptoError::Replay { n: 0 }
    );
    assert_eq!(bob.decrypt(&m4, b"").unwrap(), b"m4");
    // No key of the old chain is left, so its header key is gone too: an old
    // message is then indistinguishable from garbage.
    let gone = CryptoError::DecryptFailed {
        what: "ratchet header",
    };
    assert_eq!(bob.decrypt(&m4, b"").unwrap_err(), gone);
    assert_eq!(bob.decrypt(&m0, b"").unwrap_err(), gone);
    assert_eq!(
        bob.decrypt(&n0, b"").unwrap_err(),
        CryptoError::Replay { n: 0 }
    );
    assert_eq!(bob.skipped_keys(), 0);
}

#[test]
fn wrong_length_version_and_ad_are_typed_errors() {
    let (mut alice, mut bob, mut rng) = session(3, small(8));
    let m = alice.encrypt(&mut rng, b"x", b"ad").unwrap();
    assert!(matches!(
        bob.decrypt(&m[1..], b"ad"),
        Err(CryptoError::InvalidLength { .. })
    ));
    assert!(matches!(
        bob.decrypt(&[m.clone(), vec![0]].concat(), b"ad"),
        Err(CryptoError::InvalidLength { .. })
    ));
    let mut v2 = m.clone();
    v2[1] = 2;
    assert_eq!(
        bob.decrypt(&v2, b"ad").unwrap_err(),
        CryptoError::UnsupportedVersion(2)
    );
    assert_eq!(
        bob.decrypt(&m, b"other").unwrap_err(),
        CryptoError::DecryptFailed {
            what: "ratchet header"
        }
    );
    assert_eq!(bob.decrypt(&m, b"ad").unwrap(), b"x");
}

#[test]
fn small_order_keys_are_refused() {
    let mut rng = seeded(4);
    let own = X3dhKeyPairs::generate(&mut rng);
    let good = X3dhKeyPairs::generate(&mut rng).params();
    let zero = X3dhParams {
        k1: PublicKey::from_bytes([0; 32]),
        k2: good.k2,
    };
    assert!(matches!(
        Ratchet::init_initiator(&own, &zero, small(4)),
        Err(CryptoError::InvalidKey { .. })
    ));
    assert!(matches!(
        Ratchet::init_responder(&own, &zero, small(4)),
        Err(CryptoError::InvalidKey { .. })
    ));
}

#[test]
fn config_is_validated() {
    let mut rng = seeded(5);
    let a = X3dhKeyPairs::generate(&mut rng);
    let b = X3dhKeyPairs::generate(&mut rng).params();
    let bad = RatchetConfig {
        max_skip: MAX_SKIP_LIMIT + 1,
        ..small(1)
    };
    assert!(matches!(
        Ratchet::init_initiator(&a, &b, bad),
        Err(CryptoError::BadConfig(_))
    ));
    let bad = RatchetConfig {
        body_padded_len: 1,
        ..small(1)
    };
    assert!(matches!(
        Ratchet::init_initiator(&a, &b, bad),
        Err(CryptoError::BadConfig(_))
    ));
    for k in [0, DH_STEP_EVERY_LIMIT + 1, u32::MAX] {
        assert!(matches!(
            Ratchet::init_responder(&a, &b, small_k(1, k)),
            Err(CryptoError::BadConfig(_))
        ));
    }
    for k in [1, DEFAULT_DH_STEP_EVERY, DH_STEP_EVERY_LIMIT] {
        assert!(Ratchet::init_responder(&a, &b, small_k(1, k)).is_ok());
    }
    assert_eq!(
        RatchetConfig::default().dh_step_every,
        DEFAULT_DH_STEP_EVERY
    );
}

#[test]
fn x3dh_params_round_trip() {
    let mut rng = seeded(6);
    let p = X3dhKeyPairs::generate(&mut rng).params();
    let b = p.to_bytes();
    assert_eq!(&b[..2], &[0, 1]);
    assert_eq!(X3dhParams::from_bytes(&b).unwrap(), p);
    assert!(matches!(
        X3dhParams::from_bytes(&b[..65]),
        Err(CryptoError::InvalidLength { .. })
    ));
    let mut v = b;
    v[0] = 9;
    assert_eq!(
        X3dhParams::from_bytes(&v).unwrap_err(),
        CryptoError::UnsupportedVersion(0x0901)
    );
}

#[test]
fn corrupt_state_is_a_typed_error() {
    let (alice, ..) = session(7, small(4));
    let b = alice.to_bytes().unwrap();
    assert!(matches!(
        Ratchet::from_bytes(&b[..b.len() - 1]),
        Err(CryptoError::State(_))
    ));
    assert!(matches!(
        Ratchet::from_bytes(&[]),
        Err(CryptoError::State(_))
    ));
    // Version is the first field (a one-byte varint).
    let mut v = b.clone();
    v[0] = 7;
    assert_eq!(
        Ratchet::from_bytes(&v).unwrap_err(),
        CryptoError::UnsupportedVersion(7)
    );
    assert_eq!(Ratchet::from_bytes(&b).unwrap(), alice);
    // A stored ratchet key pair whose halves do not match is refused.
    let (_, mut bob, _) = session(7, small(4));
    bob.dhs.as_mut().unwrap().public = PublicKey::from_bytes([9; 32]);
    assert!(matches!(
        Ratchet::from_bytes(&bob.to_bytes().unwrap()),
        Err(CryptoError::State(_))
    ));
}

#[test]
fn default_skip_bound_is_512() {
    let config = RatchetConfig {
        body_padded_len: 64,
        ..RatchetConfig::default()
    };
    assert_eq!(config.max_skip, 512);
    let (mut alice, mut bob, mut rng) = session(8, config);
    let msgs: Vec<_> = (0..514)
        .map(|i| alice.encrypt(&mut rng, &text(0, i), b"").unwrap())
        .collect();
    assert_eq!(
        bob.decrypt(&msgs[513], b"").unwrap_err(),
        CryptoError::TooManySkipped {
            skip: 513,
            max: 512
        }
    );
    assert_eq!(bob.decrypt(&msgs[512], b"").unwrap(), text(0, 512));
    assert_eq!(bob.skipped_keys(), 512);
    assert_eq!(bob.decrypt(&msgs[0], b"").unwrap(), text(0, 0));
    assert_eq!(bob.decrypt(&msgs[513], b"").unwrap(), text(0, 513));
    assert_eq!(bob.skipped_keys(), 511);
}

#[test]
fn kept_keys_are_bounded_in_total_oldest_dropped_first() {
    let (mut alice, mut bob, mut rng) = session(9, small(4));
    // Chain 1: Bob receives only message 4, keeping the keys of 0..4.
    let c1: Vec<_> = (0..5)
        .map(|i| alice.encrypt(&mut rng, &text(0, i), b"").unwrap())
        .collect();
    bob.decrypt(&c1[4], b"").unwrap();
    assert_eq!(bob.skipped_keys(), 4);
    let r = bob.encrypt(&mut rng, b"r", b"").unwrap();
    alice.decrypt(&r, b"").unwrap();
    // Chain 2: Bob receives only message 2, keeping two more keys; the two oldest go.
    let c2: Vec<_> = (0..3)
        .map(|i| alice.encrypt(&mut rng, &text(1, i), b"").unwrap())
        .collect();
    bob.decrypt(&c2[2], b"").unwrap();
    assert_eq!(bob.skipped_keys(), 4);
    // The dropped keys' messages are rejected as replays (their chain is still known).
    for (n, m) in (0u32..).zip(&c1[..2]) {
        assert_eq!(bob.decrypt(m, b"").unwrap_err(), CryptoError::Replay { n });
    }
    assert_eq!(bob.decrypt(&c1[2], b"").unwrap(), text(0, 2));
    assert_eq!(bob.decrypt(&c1[3], b"").unwrap(), text(0, 3));
    assert_eq!(bob.decrypt(&c2[0], b"").unwrap(), text(1, 0));
    assert_eq!(bob.decrypt(&c2[1], b"").unwrap(), text(1, 1));
    assert_eq!(bob.skipped_keys(), 0);
}

/// A ping-pong of `rounds` messages each way (a message, then its reply);
/// returns the DH half-steps of both sides.
fn ping_pong_dh_steps(k: u32, rounds: usize) -> (u64, u64) {
    let (mut alice, mut bob, mut rng) = session(10, small_k(8, k));
    for i in 0..rounds {
        let m = alice.encrypt(&mut rng, &text(0, i), b"").unwrap();
        assert_eq!(bob.decrypt(&m, b"").unwrap(), text(0, i));
        let r = bob.encrypt(&mut rng, &text(1, i), b"").unwrap();
        assert_eq!(alice.decrypt(&r, b"").unwrap(), text(1, i));
    }
    (alice.dh_steps(), bob.dh_steps())
}

#[test]
fn the_policy_saves_dh_steps_in_a_ping_pong() {
    // K = 1: every message starts a new chain, so each side makes a key pair and
    // agrees once with the peer's new key per round.
    assert_eq!(ping_pong_dh_steps(1, 100), (200, 200));
    // K = 64: a side turns once 64 messages (32 rounds) went through it, at
    // rounds 0, 32, 64 and 96.
    let (a, b) = ping_pong_dh_steps(64, 100);
    assert_eq!((a, b), (8, 8));
    assert!((a + b) * 20 < 400, "{a} + {b}");
    // In general a side turns every ceil(K / 2) rounds (a round is 2 messages):
    // 2 * 100 / ceil(K / 2) half-steps per side.
    for k in [2u32, 5, 16] {
        let (a, b) = ping_pong_dh_steps(k, 100);
        let expected = 200_u64.div_ceil(u64::from(k.div_ceil(2)));
        assert!(
            a.abs_diff(expected) <= 2 && b.abs_diff(expected) <= 2,
            "K={k}: {a}, {b}"
        );
    }
}

/// Reads, with a copy of Alice's state taken at some point, the messages Alice
/// sends: the copy's sending chain turned into a receiving chain. (The copy
/// itself reads what Bob sends.)
fn eavesdropper_of_sent(spy: &Ratchet) -> Ratchet {
    let mut e = spy.clone();
    e.recv.clone_from(&spy.send);
    e.nhkr = spy.nhks.clone();
    e.skipped = Skipped::default();
    e
}

/// The numbers of messages after a compromise of Alice that the attacker still
/// reads, Alice's and Bob's, in a conversation of `rounds` more rounds of
/// `burst` messages from Alice and one reply from Bob. Alice's state is copied
/// after `at` rounds, or, when `mid`, in the middle of round `at` (after her
/// messages, before Bob's reply). Fails if a message is read after one was not,
/// or if the ratchet has not healed both ways by the end.
fn readable_after_compromise(
    k: u32,
    burst: usize,
    at: usize,
    mid: bool,
    rounds: usize,
) -> (usize, usize) {
    fn follow(e: &mut Ratchet, m: &[u8], expected: &[u8], read: &mut usize, healed: &mut bool) {
        match e.decrypt(m, b"") {
            Ok(plain) => {
                assert!(!*healed, "read after healing");
                assert_eq!(plain, expected);
                *read += 1;
            }
            Err(_) => *healed = true,
        }
    }
    let (mut alice, mut bob, mut rng) = session(11, small_k(8, k));
    let mut spy: Option<(Ratchet, Ratchet)> = None;
    let mut read = [0usize; 2];
    let mut healed = [false; 2];
    for i in 0..at + rounds {
        if i == at && !mid {
            spy = Some((alice.clone(), eavesdropper_of_sent(&alice)));
        }
        for j in 0..burst {
            let plain = text(0, i * burst + j);
            let m = alice.encrypt(&mut rng, &plain, b"").unwrap();
            if let Some((_, e)) = spy.as_mut() {
                follow(e, &m, &plain, &mut read[0], &mut healed[0]);
            }
            bob.decrypt(&m, b"").unwrap();
        }
        if i == at && mid {
            spy = Some((alice.clone(), eavesdropper_of_sent(&alice)));
        }
        let r = bob.encrypt(&mut rng, &text(1, i), b"").unwrap();
        if let Some((s, _)) = spy.as_mut() {
            follow(s, &r, &text(1, i), &mut read[1], &mut healed[1]);
        }
        alice.decrypt(&r, b"").unwrap();
    }
    assert!(healed[0] && healed[1], "K={k}: not healed");
    (read[0], read[1])
}

#[test]
fn a_compromised_state_stops_reading_after_k_messages() {
    for k in [1u32, 2, 5, 16, 64] {
        let k_usize = usize::try_from(k).unwrap();
        // In a ping-pong a message and its reply count 2 for each side, so a
        // side turns every ceil(K / 2) rounds.
        let cycle = k_usize.div_ceil(2);
        let mut most = [0, 0];
        for at in 1..=k_usize + 2 {
            for mid in [false, true] {
                // K + 10 rounds after the compromise, all healed (checked in
                // the helper); here, how many were read before.
                let (a, b) = readable_after_compromise(k, 1, at, mid, k_usize + 10);
                assert!(a < cycle && b <= cycle, "K={k}, at {at}, {mid}: {a}, {b}");
                most = [most[0].max(a), most[1].max(b)];
            }
        }
        // The bound is reached: the attacker's copy works until the ratchet heals.
        assert_eq!(most, [cycle - 1, cycle], "K={k}");
    }
}

/// With one-sided traffic (bursts of 10 messages per reply), received messages
/// count towards a turn too, so the quiet side does not hold healing back: a side
/// turns every ceil(K / 11) rounds, and the attacker reads fewer than K of the
/// busy side's messages and at most one turn cycle of replies.
#[test]
fn one_sided_traffic_heals_too() {
    for (k, expected) in [(5u32, [0, 1]), (64, [57, 7])] {
        let k_usize = usize::try_from(k).unwrap();
        let cycle = k_usize.div_ceil(11);
        let mut most = [0, 0];
        for at in 1..=2 * cycle + 1 {
            for mid in [false, true] {
                let (a, b) = readable_after_compromise(k, 10, at, mid, cycle + 4);
                assert!(
                    a < k_usize && b <= cycle + 1,
                    "K={k}, at {at}, {mid}: {a}, {b}"
                );
                most = [most[0].max(a), most[1].max(b)];
            }
        }
        assert_eq!(most, expected, "K={k}");
    }
}

#[test]
fn a_turn_waits_for_the_policy_and_failures_change_nothing() {
    let (mut alice, mut bob, mut rng) = session(12, small_k(16, 4));
    // Alice's first message starts her first chain (a turn: no chain yet).
    let a0 = alice.encrypt(&mut rng, b"a0", b"").unwrap();
    assert_eq!(alice.dh_steps(), 1);
    bob.decrypt(&a0, b"").unwrap();
    // Bob has no sending chain: his first reply turns.
    let b0 = bob.encrypt(&mut rng, b"b0", b"").unwrap();
    assert_eq!(bob.dh_steps(), 2);
    let alice_key = alice.dhs.clone();
    let alice_send = alice.send.clone();
    // A tampered first message of Bob's new chain: nothing changes, not even the
    // pending turn.
    let before = alice.to_bytes().unwrap();
    for pos in [20, PREFIX_LEN + 3, b0.len() - 1] {
        let mut bad = b0.clone();
        bad[pos] ^= 0x10;
        assert!(alice.decrypt(&bad, b"").is_err());
        assert_eq!(alice.to_bytes().unwrap(), before);
    }
    assert!(!alice.turn_pending);
    alice.decrypt(&b0, b"").unwrap();
    // Alice has Bob's new key but keeps her key pair and chain: 2 messages went
    // through her since her turn, fewer than 4.
    assert!(alice.turn_pending);
    assert_eq!(alice.dh_steps(), 2);
    assert_eq!(alice.dhs, alice_key);
    assert_eq!(alice.send, alice_send);
    let a1 = alice.encrypt(&mut rng, b"a1", b"").unwrap();
    let a2 = alice.encrypt(&mut rng, b"a2", b"").unwrap();
    assert_eq!(alice.dh_steps(), 2);
    assert_eq!(alice.dhs, alice_key);
    // Now 4 went through: the next send turns, counting a1 and a2 in `pn`.
    let a3 = alice.encrypt(&mut rng, b"a3", b"").unwrap();
    assert_eq!(alice.dh_steps(), 3);
    assert_ne!(alice.dhs, alice_key);
    assert_eq!(alice.pn, 3);
    assert!(!alice.turn_pending);
    // Bob gets the new chain first: a1 and a2 are kept as skipped, and a bad
    // message or a replay in between changes nothing.
    let before = bob.to_bytes().unwrap();
    let mut bad = a3.clone();
    bad[PREFIX_LEN + 1] ^= 1;
    assert!(bob.decrypt(&bad, b"").is_err());
    assert_eq!(bob.to_bytes().unwrap(), before);
    assert_eq!(bob.decrypt(&a3, b"").unwrap(), b"a3");
    assert_eq!(bob.skipped_keys(), 2);
    assert_eq!(bob.dh_steps(), 3);
    let before = bob.to_bytes().unwrap();
    assert_eq!(
        bob.decrypt(&a3, b"").unwrap_err(),
        CryptoError::Replay { n: 0 }
    );
    assert_eq!(
        bob.decrypt(&a0, b"").unwrap_err(),
        CryptoError::Replay { n: 0 }
    );
    assert_eq!(bob.to_bytes().unwrap(), before);
    assert_eq!(bob.decrypt(&a2, b"").unwrap(), b"a2");
    assert_eq!(bob.decrypt(&a1, b"").unwrap(), b"a1");
    assert_eq!(bob.skipped_keys(), 0);
    // Bob's chain has carried 1 message and 4 arrived since his turn: his next
    // reply turns, agreeing with Alice's new key; she follows.
    let b1 = bob.encrypt(&mut rng, b"b1", b"").unwrap();
    assert_eq!(bob.dh_steps(), 4);
    assert_eq!(alice.decrypt(&b1, b"").unwrap(), b"b1");
    assert_eq!(alice.dh_steps(), 4);
}

#[test]
fn saved_state_keeps_the_policy_state() {
    let (mut alice, mut bob, mut rng) = session(13, small_k(8, 3));
    let m = alice.encrypt(&mut rng, b"m", b"").unwrap();
    bob.decrypt(&m, b"").unwrap();
    let r = bob.encrypt(&mut rng, b"r", b"").unwrap();
    alice.decrypt(&r, b"").unwrap();
    let restored = Ratchet::from_bytes(&alice.to_bytes().unwrap()).unwrap();
    assert_eq!(restored, alice);
    assert!(restored.turn_pending);
    assert_eq!(restored.dh_steps(), 2);
    // A pending turn without a peer key, or a chain without a key pair, is refused.
    let mut bad = alice.clone();
    bad.dhr = None;
    assert!(matches!(
        Ratchet::from_bytes(&bad.to_bytes().unwrap()),
        Err(CryptoError::State(_))
    ));
    let mut bad = alice.clone();
    bad.dhs = None;
    assert!(matches!(
        Ratchet::from_bytes(&bad.to_bytes().unwrap()),
        Err(CryptoError::State(_))
    ));
}

#[test]
fn the_skip_bound_counts_both_chains() {
    let (mut alice, mut bob, mut rng) = session(14, small(4));
    let m = alice.encrypt(&mut rng, b"m", b"").unwrap();
    bob.decrypt(&m, b"").unwrap();
    let r = bob.encrypt(&mut rng, b"r", b"").unwrap();
    alice.decrypt(&r, b"").unwrap();
    // Two more of Bob's messages in his chain, then three in his next one: the
    // third skips 2 + 2 = 4 keys, one more would be 5.
    let old: Vec<_> = (0..2)
        .map(|i| bob.encrypt(&mut rng, &text(1, i), b"").unwrap())
        .collect();
    let m = alice.encrypt(&mut rng, b"m2", b"").unwrap();
    bob.decrypt(&m, b"").unwrap();
    let new: Vec<_> = (2..6)
        .map(|i| bob.encrypt(&mut rng, &text(1, i), b"").unwrap())
        .collect();
    let before = alice.to_bytes().unwrap();
    assert_eq!(
        alice.decrypt(&new[3], b"").unwrap_err(),
        CryptoError::TooManySkipped { skip: 5, max: 4 }
    );
    assert_eq!(alice.to_bytes().unwrap(), before);
    assert_eq!(alice.decrypt(&new[2], b"").unwrap(), text(1, 4));
    assert_eq!(alice.skipped_keys(), 4);
    for (i, m) in (0..).zip(old.iter().chain(&new[..2])) {
        assert_eq!(alice.decrypt(m, b"").unwrap(), text(1, i));
    }
    assert_eq!(alice.decrypt(&new[3], b"").unwrap(), text(1, 5));
}

/// One step of a randomly scheduled conversation.
#[derive(Clone, Debug)]
enum Step {
    /// The side sends a new message.
    Send(bool),
    /// The side receives the in-flight message at this index (modulo their count).
    Deliver(bool, usize),
    /// The in-flight message to the side at this index is lost.
    Drop(bool, usize),
    /// The side receives again a message it already decrypted (refused, and the
    /// state does not change).
    Replay(bool, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(Step::Send),
        (any::<bool>(), any::<usize>()).prop_map(|(s, i)| Step::Deliver(s, i))
    ]
}

/// Steps with losses and replays too.
fn lossy_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(Step::Send),
        4 => (any::<bool>(), any::<usize>()).prop_map(|(s, i)| Step::Deliver(s, i)),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(s, i)| Step::Drop(s, i)),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(s, i)| Step::Replay(s, i)),
    ]
}

/// The DH step policies the property tests try.
fn policy() -> impl Strategy<Value = u32> {
    prop_oneof![Just(1u32), Just(2), Just(5), Just(64)]
}

/// Two parties, their in-flight messages, and what each has received.
struct Conversation {
    sides: [Ratchet; 2],
    rng: ChaCha20Rng,
    /// Per receiving side: (plaintext, ciphertext) not yet delivered.
    in_flight: [Vec<(Vec<u8>, Vec<u8>)>; 2],
    delivered: [Vec<(Vec<u8>, Vec<u8>)>; 2],
    sent: usize,
    dropped: usize,
}

impl Conversation {
    fn new(seed: u64, config: RatchetConfig) -> Self {
        Self::with(seed, config, config)
    }

    fn with(seed: u64, alice: RatchetConfig, bob: RatchetConfig) -> Self {
        let (a, b, rng) = session_with(seed, alice, bob);
        Self {
            sides: [a, b],
            rng,
            in_flight: [vec![], vec![]],
            delivered: [vec![], vec![]],
            sent: 0,
            dropped: 0,
        }
    }

    fn apply(&mut self, s: &Step) {
        match *s {
            Step::Send(bob) => {
                let from = usize::from(bob);
                if !self.sides[from].can_send() {
                    return;
                }
                let plain = text(u8::from(bob), self.sent);
                self.sent += 1;
                let c = self.sides[from]
                    .encrypt(&mut self.rng, &plain, b"conv")
                    .unwrap();
                self.in_flight[1 - from].push((plain, c));
            }
            Step::Deliver(bob, i) => {
                let to = usize::from(bob);
                if self.in_flight[to].is_empty() {
                    return;
                }
                let (plain, c) = self.in_flight[to].remove(i % self.in_flight[to].len());
                assert_eq!(self.sides[to].decrypt(&c, b"conv").unwrap(), plain);
                self.delivered[to].push((plain, c));
            }
            Step::Drop(bob, i) => {
                let to = usize::from(bob);
                if !self.in_flight[to].is_empty() {
                    self.in_flight[to].remove(i % self.in_flight[to].len());
                    self.dropped += 1;
                }
            }
            Step::Replay(bob, i) => {
                let to = usize::from(bob);
                if self.delivered[to].is_empty() {
                    return;
                }
                let c = &self.delivered[to][i % self.delivered[to].len()].1;
                let before = self.sides[to].to_bytes().unwrap();
                assert!(self.sides[to].decrypt(c, b"conv").is_err());
                assert_eq!(self.sides[to].to_bytes().unwrap(), before);
            }
        }
    }

    /// Delivers every message still in flight, in an order chosen by `order`.
    fn deliver_all(&mut self, mut order: u64) {
        for to in 0..2 {
            while !self.in_flight[to].is_empty() {
                let i = usize::try_from(order % 7).unwrap();
                order = order.rotate_left(3) ^ 0x9e37;
                self.apply(&Step::Deliver(to == 1, i));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any interleaving of sends and deliveries (each side's messages in any order),
    /// with fewer messages than the skip bound: every message decrypts exactly once.
    #[test]
    fn any_order_within_the_bound_decrypts_each_message_once(
        seed in any::<u64>(),
        k in policy(),
        steps in prop::collection::vec(step(), 0..80),
        tail in any::<u64>(),
    ) {
        let mut c = Conversation::new(seed, small_k(80, k));
        for s in &steps {
            c.apply(s);
        }
        // Deliver the rest, in an order chosen by `tail`.
        let mut order = tail;
        for to in 0..2 {
            while !c.in_flight[to].is_empty() {
                let i = usize::try_from(order % 7).unwrap();
                order = order.rotate_left(3) ^ 0x9e37;
                c.apply(&Step::Deliver(to == 1, i));
            }
        }
        for to in 0..2 {
            for (_, m) in c.delivered[to].clone() {
                let before = c.sides[to].to_bytes().unwrap();
                prop_assert!(c.sides[to].decrypt(&m, b"conv").is_err());
                prop_assert_eq!(c.sides[to].to_bytes().unwrap(), before);
            }
        }
        prop_assert_eq!(c.delivered[0].len() + c.delivered[1].len(), c.sent);
    }

    /// A message that would skip more than the bound fails without changing the
    /// state; the earlier messages, and then that one, still decrypt.
    #[test]
    fn skipping_past_the_bound_fails_cleanly(
        seed in any::<u64>(),
        max_skip in 0u32..12,
        extra in 1usize..4,
        new_chain in any::<bool>(),
    ) {
        let (mut alice, mut bob, mut rng) = session(seed, small(max_skip));
        if new_chain {
            // Give Bob a receiving chain first, so the skip crosses a DH step (pn).
            let m = alice.encrypt(&mut rng, b"first", b"").unwrap();
            bob.decrypt(&m, b"").unwrap();
            let r = bob.encrypt(&mut rng, b"reply", b"").unwrap();
            alice.decrypt(&r, b"").unwrap();
        }
        let count = usize::try_from(max_skip).unwrap() + extra + 1;
        let msgs: Vec<_> = (0..count).map(|i| alice.encrypt(&mut rng, &text(0, i), b"").unwrap()).collect();
        let before = bob.to_bytes().unwrap();
        let last = count - 1;
        let err = bob.decrypt(&msgs[last], b"").unwrap_err();
        prop_assert!(matches!(err, CryptoError::TooManySkipped { max, .. } if max == max_skip), "{err:?}");
        prop_assert_eq!(bob.to_bytes().unwrap(), before);
        for (i, m) in msgs.iter().enumerate() {
            prop_assert_eq!(bob.decrypt(m, b"").unwrap(), text(0, i));
        }
        // The session continues both ways.
        let r = bob.encrypt(&mut rng, b"after", b"").unwrap();
        prop_assert_eq!(alice.decrypt(&r, b"").unwrap(), b"after".to_vec());
    }

    /// A flipped bit anywhere in the message, or in the associated data, is
    /// rejected; the state is unchanged and the genuine message still decrypts.
    #[test]
    fn flipped_bits_are_rejected(
        seed in any::<u64>(),
        k in policy(),
        rounds in 0usize..4,
        pos in any::<usize>(),
        bit in 0u8..8,
        in_ad in any::<bool>(),
    ) {
        let (mut alice, mut bob, mut rng) = session(seed, small_k(8, k));
        for i in 0..rounds {
            let m = alice.encrypt(&mut rng, &text(0, i), b"").unwrap();
            bob.decrypt(&m, b"").unwrap();
            let r = bob.encrypt(&mut rng, &text(1, i), b"").unwrap();
            alice.decrypt(&r, b"").unwrap();
        }
        let ad = b"associated".to_vec();
        let m = alice.encrypt(&mut rng, b"payload", &ad).unwrap();
        let (mut bad_m, mut bad_ad) = (m.clone(), ad.clone());
        if in_ad {
            let i = pos % bad_ad.len();
            bad_ad[i] ^= 1 << bit;
        } else {
            let i = pos % bad_m.len();
            bad_m[i] ^= 1 << bit;
        }
        let before = bob.to_bytes().unwrap();
        prop_assert!(bob.decrypt(&bad_m, &bad_ad).is_err());
        prop_assert_eq!(bob.to_bytes().unwrap(), before);
        prop_assert_eq!(bob.decrypt(&m, &ad).unwrap(), b"payload".to_vec());
    }

    /// A state saved mid-conversation restores byte-identically and continues
    /// exactly as the original would.
    #[test]
    fn saved_state_continues_the_conversation(
        seed in any::<u64>(),
        k in policy(),
        before in prop::collection::vec(lossy_step(), 0..40),
        after in prop::collection::vec(lossy_step(), 0..40),
    ) {
        let mut c = Conversation::new(seed, small_k(64, k));
        for s in &before {
            c.apply(s);
        }
        let saved = [c.sides[0].to_bytes().unwrap(), c.sides[1].to_bytes().unwrap()];
        let restored = [Ratchet::from_bytes(&saved[0]).unwrap(), Ratchet::from_bytes(&saved[1]).unwrap()];
        prop_assert_eq!(&restored[0].to_bytes().unwrap(), &saved[0]);
        prop_assert_eq!(&restored[1].to_bytes().unwrap(), &saved[1]);
        let mut twin = Conversation {
            sides: restored,
            rng: c.rng.clone(),
            in_flight: c.in_flight.clone(),
            delivered: c.delivered.clone(),
            sent: c.sent,
            dropped: c.dropped,
        };
        for s in &after {
            c.apply(s);
            twin.apply(s);
        }
        prop_assert_eq!(&c.in_flight, &twin.in_flight);
        prop_assert_eq!(c.sides[0].to_bytes().unwrap(), twin.sides[0].to_bytes().unwrap());
        prop_assert_eq!(c.sides[1].to_bytes().unwrap(), twin.sides[1].to_bytes().unwrap());
    }

    /// Message keys are never shared between two sessions (nor repeated within
    /// one), and both sides of a session derive the same key for each message.
    #[test]
    fn sessions_never_share_a_message_key(
        seed in any::<u64>(),
        k in policy(),
        pattern in prop::collection::vec(0u8..3, 1..30),
    ) {
        let mut all = HashSet::new();
        for s in [seed, seed.wrapping_add(1)] {
            let (mut alice, mut bob, mut rng) = session(s, small_k(8, k));
            let mut alice_turn = true;
            for &burst in &pattern {
                for _ in 0..=burst {
                    let (sender, receiver) = if alice_turn { (&mut alice, &mut bob) } else { (&mut bob, &mut alice) };
                    let (m, sent_key) = sender.encrypt_keyed(&mut rng, b"k", b"").unwrap();
                    let (_, got_key) = receiver.decrypt_keyed(&m, b"").unwrap();
                    prop_assert!(sent_key == got_key);
                    prop_assert!(all.insert(sent_key.key.0), "message key repeated");
                }
                alice_turn = !alice_turn;
            }
        }
    }

    /// Random traffic both ways under every DH step policy (each side its own),
    /// with reordering, losses and replays: every delivered message decrypts
    /// exactly once, replays are refused without changing the state, and the
    /// sides keep agreeing after any number of turns.
    #[test]
    fn lossy_reordered_traffic_under_any_policy(
        seed in any::<u64>(),
        k_alice in policy(),
        k_bob in policy(),
        steps in prop::collection::vec(lossy_step(), 0..160),
        tail in any::<u64>(),
    ) {
        let mut c = Conversation::with(seed, small_k(200, k_alice), small_k(200, k_bob));
        for s in &steps {
            c.apply(s);
        }
        c.deliver_all(tail);
        for to in 0..2 {
            for (_, m) in c.delivered[to].clone() {
                let before = c.sides[to].to_bytes().unwrap();
                prop_assert!(c.sides[to].decrypt(&m, b"conv").is_err());
                prop_assert_eq!(c.sides[to].to_bytes().unwrap(), before);
            }
        }
        prop_assert_eq!(c.delivered[0].len() + c.delivered[1].len() + c.dropped, c.sent);
        // The session still works both ways.
        for (from, to) in [(0, 1), (1, 0), (0, 1)] {
            if c.sides[from].can_send() {
                let m = c.sides[from].encrypt(&mut c.rng, b"end", b"conv").unwrap();
                prop_assert_eq!(c.sides[to].decrypt(&m, b"conv").unwrap(), b"end".to_vec());
            }
        }
    }
}

/// A fixed conversation (bursts both ways, some deliveries out of order) from a
/// seeded RNG; returns SHA-256 of all its ciphertexts in sending order.
fn transcript_digest(config: RatchetConfig) -> [u8; 32] {
    let (mut alice, mut bob, mut rng) = session(0x5eed, config);
    let mut all = Vec::new();
    // (sender is Alice, burst length, delivery order)
    let bursts: [(bool, &[usize]); 8] = [
        (true, &[0, 1, 2]),
        (false, &[1, 0]),
        (true, &[0]),
        (false, &[2, 0, 3, 1]),
        (true, &[1, 0, 2, 3, 4]),
        (true, &[0, 1]),
        (false, &[0]),
        (false, &[1, 0]),
    ];
    for (i, (from_alice, order)) in bursts.iter().enumerate() {
        let (sender, receiver) = if *from_alice {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        let msgs: Vec<_> = (0..order.len())
            .map(|j| {
                sender
                    .encrypt(&mut rng, &text(u8::from(*from_alice), i * 10 + j), b"kat")
                    .unwrap()
            })
            .collect();
        for &j in *order {
            assert_eq!(
                receiver.decrypt(&msgs[j], b"kat").unwrap(),
                text(u8::from(*from_alice), i * 10 + j)
            );
        }
        for m in msgs {
            all.extend_from_slice(&m);
        }
    }
    crate::sha256(&all)
}

/// Pins the ciphertexts of a DH step at every turn (K = 1) to those of the
/// ratchet before the step policy existed (the digests were computed with it),
/// and those of the default policy.
#[test]
fn transcript_known_answers() {
    assert_eq!(
        hex::encode(transcript_digest(small_k(16, 1))),
        "da09560b5ae495a1c33c9ec8a7ce4490dc7e4ad047b52ef7ed4f83b276848be0"
    );
    let full = RatchetConfig {
        max_skip: 16,
        dh_step_every: 1,
        ..RatchetConfig::default()
    };
    assert_eq!(
        hex::encode(transcript_digest(full)),
        "03fddce856348fe5e0be293b1d54cc6736ee46427c01d9a8e4920d5944043587"
    );
    // The default policy: only the first message of each side starts a chain
    // in so short a conversation.
    assert_eq!(
        hex::encode(transcript_digest(small_k(16, DEFAULT_DH_STEP_EVERY))),
        "dec80640e028975007427d7506ed591adcd82fd5ec03ab4acddb9928a9746207"
    );
    let full = RatchetConfig {
        max_skip: 16,
        ..RatchetConfig::default()
    };
    assert_eq!(
        hex::encode(transcript_digest(full)),
        "68b51d36c7e199fcc6592afe42a25e26b3f7871096be41f3de0427d8de0f9955"
    );
}
