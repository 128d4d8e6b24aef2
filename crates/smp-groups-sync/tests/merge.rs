//! The merge rule on its own: replicas that receive the same updates in
//! any order, with duplicates, hold the same entries; snapshots and stored
//! state round-trip.

use proptest::prelude::*;
use smp_groups_sync::{DeviceId, Key, ProfileField, Replica};

fn device(b: u8) -> DeviceId {
    DeviceId::new(&[b; 16]).expect("device")
}

#[derive(Clone, Debug)]
struct Edit {
    device: usize,
    at: u64,
    key: u8,
    value: Option<u8>,
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        (
            0usize..3,
            0u64..50,
            0u8..4,
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(device, at, key, value)| Edit {
                device,
                at,
                key,
                value,
            }),
        1..30,
    )
}

proptest! {
    #[test]
    fn any_order_any_duplicates_same_entries(
        edits in edits(),
        orders in proptest::collection::vec(any::<proptest::sample::Index>(), 3 * 60),
    ) {
        // Three devices write; each keeps its own updates.
        let mut writers: Vec<Replica> = (0..3u8).map(|b| Replica::new(device(b + 1))).collect();
        let mut updates = Vec::new();
        for e in &edits {
            let w = &mut writers[e.device];
            let key = Key::app(&format!("k{}", e.key));
            let msg = match e.value {
                Some(v) => w.set(e.at, key, vec![v]).expect("set"),
                None => w.delete(e.at, key).expect("delete"),
            };
            updates.push(msg);
        }
        // Three readers receive every update, in their own order, some twice.
        let mut results = Vec::new();
        for r in 0..3 {
            let mut reader = Replica::new(device(10 + r));
            let mut queue = updates.clone();
            queue.extend(updates.iter().take(r as usize * 3).cloned());
            let picks = &orders[usize::from(r) * 60..];
            let mut n = 0;
            while !queue.is_empty() {
                let i = picks.get(n).map_or(0, |p| p.index(queue.len()));
                n += 1;
                let msg = queue.swap_remove(i);
                reader.apply(0, &msg).expect("apply");
            }
            results.push(reader.entries().map(|(k, e)| (k.clone(), e.clone())).collect::<Vec<_>>());
        }
        prop_assert_eq!(&results[0], &results[1]);
        prop_assert_eq!(&results[1], &results[2]);
        // The writers, once they have each other's updates, agree too.
        for w in &mut writers {
            for m in &updates {
                w.apply(0, m).expect("apply");
            }
            let mine: Vec<_> = w.entries().map(|(k, e)| (k.clone(), e.clone())).collect();
            prop_assert_eq!(&mine, &results[0]);
        }
    }
}

#[test]
fn later_write_wins_and_tie_breaks_on_device() {
    let mut a = Replica::new(device(1));
    let mut b = Replica::new(device(2));
    let key = Key::profile(ProfileField::DisplayName);
    // Same physical time on both: the stamp ties on (wall, counter), the
    // device id decides (2 > 1).
    let ua = a.set(100, key.clone(), b"from a".to_vec()).expect("a");
    let ub = b.set(100, key.clone(), b"from b".to_vec()).expect("b");
    a.apply(100, &ub).expect("apply");
    b.apply(100, &ua).expect("apply");
    assert_eq!(a.get(&key), Some(&b"from b"[..]));
    assert_eq!(b.get(&key), Some(&b"from b"[..]));
    // a, whose clock now saw b's stamp, writes again at an earlier physical
    // time (its clock is behind): the hybrid clock still orders it after.
    let ua2 = a.delete(50, key.clone()).expect("delete");
    b.apply(50, &ua2).expect("apply");
    assert_eq!(a.get(&key), None);
    assert_eq!(b.get(&key), None);
    // The tombstone travels in snapshots and beats the older value.
    let c = Replica::from_snapshot(device(3), 0, &a.snapshot()).expect("snapshot");
    let mut c2 = c.clone();
    c2.apply(0, &ub).expect("old value");
    assert_eq!(c2.get(&key), None);
    assert_eq!(c, c2);
}

#[test]
fn state_and_snapshot_parts_round_trip() {
    let mut a = Replica::new(device(1));
    for i in 0..50u8 {
        a.set(u64::from(i), Key::app(&format!("key{i}")), vec![i; 1000])
            .expect("set");
    }
    a.delete(60, Key::app("key3")).expect("delete");
    let restored = Replica::decode_state(&a.encode_state()).expect("state");
    assert_eq!(restored, a);
    let parts = a.snapshot_parts(10_000);
    assert!(parts.len() > 1, "{} parts", parts.len());
    let mut b = Replica::new(device(2));
    for p in parts.iter().rev() {
        let applied = b.apply(0, p).expect("part");
        assert!(applied.snapshot.is_some());
    }
    assert_eq!(
        b.entries().collect::<Vec<_>>(),
        a.entries().collect::<Vec<_>>()
    );
}

#[test]
fn document_bounds_hold_for_local_edits() {
    let mut a = Replica::new(device(1));
    let big = vec![0u8; smp_groups_sync::limits::MAX_VALUE_LEN];
    let mut refused = false;
    for i in 0..20 {
        if a.set(0, Key::app(&format!("big{i}")), big.clone()).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the document grew past its bound");
    assert!(a.size() <= smp_groups_sync::limits::MAX_DOCUMENT_BYTES);
    // A snapshot of a full document fits one group message.
    assert!(a.snapshot().len() < smp_groups_sync::limits::MAX_MESSAGE_LEN);
}

#[test]
fn clock_ticks_past_counter_overflow_and_caps_drift() {
    use smp_groups_sync::{Clock, Stamp, limits::MAX_DRIFT_MS};
    let mut c = Clock {
        wall_ms: 10,
        counter: u32::MAX,
    };
    let t = c.tick(5);
    assert_eq!((t.wall_ms, t.counter), (11, 0));
    // A stamp far in the future moves the clock only up to the drift bound.
    let far = Stamp {
        wall_ms: u64::MAX,
        counter: 9,
        device: device(7),
    };
    c.observe(&far, 1_000);
    assert_eq!(c.wall_ms, 1_000 + MAX_DRIFT_MS);
    // Its entry still wins the key on every replica.
    let mut a = Replica::new(device(1));
    let mut b = Replica::new(device(2));
    let key = Key::app("k");
    let mine = a.set(1_000, key.clone(), b"mine".to_vec()).expect("set");
    let mut future = Replica::new(device(9));
    let theirs = future
        .set(u64::MAX - 1, key.clone(), b"future".to_vec())
        .expect("set");
    a.apply(1_000, &theirs).expect("apply");
    b.apply(1_000, &theirs).expect("apply");
    b.apply(1_000, &mine).expect("apply");
    assert_eq!(a.get(&key), Some(&b"future"[..]));
    assert_eq!(
        a.entries().collect::<Vec<_>>(),
        b.entries().collect::<Vec<_>>()
    );
}
