//! Forward compatibility: messages of a "v2" schema, with fields and a
//! namespace this version does not know, still decode and merge; and the
//! bytes of version 1 are what the `.proto` says (hand-built).

use prost::Message;
use smp_groups_sync::{DeviceId, Error, Key, Namespace, Replica, limits};

/// The v2 schema a newer device might speak: every v1 field, plus new ones.
mod v2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Stamp {
        #[prost(uint64, tag = "1")]
        pub(crate) wall_ms: u64,
        #[prost(uint32, tag = "2")]
        pub(crate) counter: u32,
        #[prost(bytes = "vec", tag = "3")]
        pub(crate) device: Vec<u8>,
        /// New in v2.
        #[prost(string, tag = "4")]
        pub(crate) time_zone: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Entry {
        #[prost(int32, tag = "1")]
        pub(crate) namespace: i32,
        #[prost(string, tag = "2")]
        pub(crate) name: String,
        #[prost(message, optional, tag = "3")]
        pub(crate) stamp: Option<Stamp>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub(crate) value: Option<Vec<u8>>,
        /// New in v2.
        #[prost(string, tag = "5")]
        pub(crate) content_type: String,
        /// New in v2.
        #[prost(uint64, repeated, tag = "6")]
        pub(crate) history: Vec<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Update {
        #[prost(message, repeated, tag = "1")]
        pub(crate) entries: Vec<Entry>,
        /// New in v2.
        #[prost(uint64, tag = "7")]
        pub(crate) sequence: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Presence {
        #[prost(string, tag = "1")]
        pub(crate) status: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct SyncMessage {
        #[prost(oneof = "Body", tags = "1, 9")]
        pub(crate) body: Option<Body>,
        /// New in v2, outside the oneof.
        #[prost(string, tag = "10")]
        pub(crate) sender_version: String,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Body {
        #[prost(message, tag = "1")]
        Update(Update),
        /// A new kind of message.
        #[prost(message, tag = "9")]
        Presence(Presence),
    }
}

fn device(b: u8) -> DeviceId {
    DeviceId::new(&[b; 16]).expect("device")
}

fn v2_entry(ns: i32, name: &str, wall: u64, value: Option<&[u8]>) -> v2::Entry {
    v2::Entry {
        namespace: ns,
        name: name.into(),
        stamp: Some(v2::Stamp {
            wall_ms: wall,
            counter: 0,
            device: vec![9; 16],
            time_zone: "Europe/Berlin".into(),
        }),
        value: value.map(<[u8]>::to_vec),
        content_type: "text/plain".into(),
        history: vec![1, 2, 3],
    }
}

#[test]
fn v2_update_with_unknown_fields_and_namespace_merges() {
    let msg = v2::SyncMessage {
        body: Some(v2::Body::Update(v2::Update {
            entries: vec![
                v2_entry(1, "display_name", 1_000, Some(b"Ada")),
                v2_entry(3, "theme", 1_000, Some(b"dark")),
                // A namespace v1 does not know: kept.
                v2_entry(7, "contacts/bob", 1_000, Some(b"x")),
            ],
            sequence: 42,
        })),
        sender_version: "2.0".into(),
    }
    .encode_to_vec();
    let mut a = Replica::new(device(1));
    let applied = a.apply(2_000, &msg).expect("decodes");
    assert_eq!(applied.changes.len(), 3);
    assert_eq!(applied.dropped, 0);
    assert_eq!(a.profile().display_name.as_deref(), Some("Ada"));
    assert_eq!(a.get(&Key::app("theme")), Some(&b"dark"[..]));
    assert_eq!(
        a.get(&Key::new(Namespace::Other(7), "contacts/bob")),
        Some(&b"x"[..])
    );
    // The unknown namespace goes on in snapshots, to another v1 device.
    let b = Replica::from_snapshot(device(2), 2_000, &a.snapshot()).expect("snapshot");
    assert_eq!(
        b.entries().collect::<Vec<_>>(),
        a.entries().collect::<Vec<_>>()
    );
    // A v1 edit after it wins by the clock (which followed the v2 stamp).
    let update = a
        .set(500, Key::app("theme"), b"light".to_vec())
        .expect("set");
    let mut c = b.clone();
    c.apply(500, &msg).expect("again: idempotent");
    c.apply(500, &update).expect("v1 update");
    assert_eq!(c.get(&Key::app("theme")), Some(&b"light"[..]));
}

#[test]
fn v2_message_of_an_unknown_kind_is_refused_cleanly() {
    let msg = v2::SyncMessage {
        body: Some(v2::Body::Presence(v2::Presence {
            status: "away".into(),
        })),
        sender_version: "2.0".into(),
    }
    .encode_to_vec();
    let mut a = Replica::new(device(1));
    assert!(matches!(a.apply(0, &msg), Err(Error::Missing(_))));
    assert!(a.is_empty());
}

/// Hand-built bytes: field numbers and wire types as the .proto gives them.
#[test]
fn hand_built_v1_bytes_decode() {
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(tag << 3) | 2, u8::try_from(body.len()).expect("short")];
        v.extend_from_slice(body);
        v
    }
    // Stamp { wall_ms: 5 (varint), counter: 1, device: 16 x 0xAA }
    let mut stamp = vec![0x08, 5, 0x10, 1];
    stamp.extend(field(3, &[0xaa; 16]));
    // Entry { namespace: APP, name: "k", stamp, value: "v", field 15: "future" }
    let mut entry = vec![0x08, 3];
    entry.extend(field(2, b"k"));
    entry.extend(field(3, &stamp));
    entry.extend(field(4, b"v"));
    entry.extend(field(15, b"future"));
    let update = field(1, &entry);
    let msg = field(1, &update);
    let mut a = Replica::new(device(1));
    a.apply(0, &msg).expect("decodes");
    let (k, e) = a.entries().next().expect("entry");
    assert_eq!(*k, Key::app("k"));
    assert_eq!(e.value.as_deref(), Some(&b"v"[..]));
    assert_eq!(e.stamp.wall_ms, 5);
    assert_eq!(e.stamp.counter, 1);
}

#[test]
fn garbage_and_oversized_input_is_refused() {
    let mut a = Replica::new(device(1));
    assert!(a.apply(0, &[0xff, 0xff, 0xff]).is_err());
    assert!(matches!(
        a.apply(0, &vec![0; limits::MAX_MESSAGE_LEN + 1]),
        Err(Error::TooLarge { .. })
    ));
    assert!(Replica::decode_state(b"\x08\x02").is_err());
    // An image over its bound is refused locally, and dropped when received.
    let big = vec![0; limits::MAX_IMAGE_LEN + 1];
    assert!(
        a.set(
            0,
            Key::profile(smp_groups_sync::ProfileField::Image),
            big.clone()
        )
        .is_err()
    );
    let v2 = v2::SyncMessage {
        body: Some(v2::Body::Update(v2::Update {
            entries: vec![
                v2_entry(1, "image", 1, Some(&big)),
                v2_entry(1, "bio", 1, Some(b"ok")),
            ],
            sequence: 0,
        })),
        sender_version: String::new(),
    }
    .encode_to_vec();
    let applied = a.apply(0, &v2).expect("decodes");
    assert_eq!(applied.dropped, 1);
    assert_eq!(a.profile().bio.as_deref(), Some("ok"));
}
