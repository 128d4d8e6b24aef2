//! Unit and property tests of the ratchet (inside the crate, so they can see
//! message keys).

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::HashSet;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::rng::seeded;

/// A small configuration so property tests run quickly.
fn small(max_skip: u32) -> RatchetConfig {
    RatchetConfig {
        max_skip,
        body_padded_len: 64,
    }
}

/// A fresh session: (initiator, responder, rng).
fn session(seed: u64, config: RatchetConfig) -> (Ratchet, Ratchet, ChaCha20Rng) {
    let mut rng = seeded(seed);
    let a = X3dhKeyPairs::generate(&mut rng);
    let b = X3dhKeyPairs::generate(&mut rng);
    let alice = Ratchet::init_initiator(&a, &b.params(), config).unwrap();
    let bob = Ratchet::init_responder(&b, &a.params(), config).unwrap();
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
        body_padded_len: 64,
    };
    assert!(matches!(
        Ratchet::init_initiator(&a, &b, bad),
        Err(CryptoError::BadConfig(_))
    ));
    let bad = RatchetConfig {
        max_skip: 1,
        body_padded_len: 1,
    };
    assert!(matches!(
        Ratchet::init_initiator(&a, &b, bad),
        Err(CryptoError::BadConfig(_))
    ));
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

/// One step of a randomly scheduled conversation.
#[derive(Clone, Debug)]
enum Step {
    /// The side sends a new message.
    Send(bool),
    /// The side receives the in-flight message at this index (modulo their count).
    Deliver(bool, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(Step::Send),
        (any::<bool>(), any::<usize>()).prop_map(|(s, i)| Step::Deliver(s, i))
    ]
}

/// Two parties, their in-flight messages, and what each has received.
struct Conversation {
    sides: [Ratchet; 2],
    rng: ChaCha20Rng,
    /// Per receiving side: (plaintext, ciphertext) not yet delivered.
    in_flight: [Vec<(Vec<u8>, Vec<u8>)>; 2],
    delivered: [Vec<(Vec<u8>, Vec<u8>)>; 2],
    sent: usize,
}

impl Conversation {
    fn new(seed: u64, config: RatchetConfig) -> Self {
        let (a, b, rng) = session(seed, config);
        Self {
            sides: [a, b],
            rng,
            in_flight: [vec![], vec![]],
            delivered: [vec![], vec![]],
            sent: 0,
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
        steps in prop::collection::vec(step(), 0..80),
        tail in any::<u64>(),
    ) {
        let mut c = Conversation::new(seed, small(80));
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
        rounds in 0usize..4,
        pos in any::<usize>(),
        bit in 0u8..8,
        in_ad in any::<bool>(),
    ) {
        let (mut alice, mut bob, mut rng) = session(seed, small(8));
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
        before in prop::collection::vec(step(), 0..40),
        after in prop::collection::vec(step(), 0..40),
    ) {
        let mut c = Conversation::new(seed, small(64));
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
    fn sessions_never_share_a_message_key(seed in any::<u64>(), pattern in prop::collection::vec(0u8..3, 1..30)) {
        let mut all = HashSet::new();
        for s in [seed, seed.wrapping_add(1)] {
            let (mut alice, mut bob, mut rng) = session(s, small(8));
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
}
