//! Agent envelopes: round trips of every envelope, known answers, and the exact
//! errors for malformed input.

use proptest::collection::vec;
use proptest::prelude::*;
use smp_groups_wire::agent::{
    AGENT_VERSION, AMessage, AgentEnvelope, AgentMessage, Bounded, ConnInfo, Digest, Fragment,
    GCheck, GCheckEntry, GCheckStatus, GroupEnvelope, GroupId, GroupInvitation, Limits,
    MAX_GCHECK_ENTRIES, MAX_INVITATION_LEN, MemberId, MemberInfo, MsgHeader, Receipt,
    SignedReceipts, Tail,
};
use smp_groups_wire::{Decode, Encode, Error, Reader, decode_all};

fn bounded<const MAX: usize>(max_len: usize) -> impl Strategy<Value = Bounded<MAX>> {
    vec(any::<u8>(), 0..=max_len.min(MAX)).prop_map(|v| Bounded::new(v).expect("within MAX"))
}

fn tail<const MAX: usize>(max_len: usize) -> impl Strategy<Value = Tail<MAX>> {
    vec(any::<u8>(), 0..=max_len.min(MAX)).prop_map(|v| Tail::new(v).expect("within MAX"))
}

fn member_id() -> impl Strategy<Value = MemberId> {
    any::<[u8; 16]>().prop_map(MemberId)
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn member_info() -> impl Strategy<Value = MemberInfo> {
    (member_id(), any::<[u8; 32]>(), bounded(300)).prop_map(|(member_id, signing_key, profile)| {
        MemberInfo {
            member_id,
            signing_key,
            profile,
        }
    })
}

fn gcheck_status() -> impl Strategy<Value = GCheckStatus> {
    prop_oneof![
        Just(GCheckStatus::Ok),
        Just(GCheckStatus::Gap),
        Just(GCheckStatus::Bad)
    ]
}

fn gcheck() -> impl Strategy<Value = GCheck> {
    vec(
        (member_id(), any::<u64>(), digest(), gcheck_status()).prop_map(
            |(member, msg_id, digest, status)| GCheckEntry {
                member,
                msg_id,
                digest,
                status,
            },
        ),
        1..=MAX_GCHECK_ENTRIES,
    )
    .prop_map(|entries| GCheck::new(entries).expect("1..=MAX entries"))
}

fn fragment() -> impl Strategy<Value = Fragment> {
    (any::<u64>(), 1..=64u16, bounded(200)).prop_flat_map(|(msg_id, count, bytes)| {
        (0..count).prop_map(move |index| Fragment {
            msg_id,
            index,
            count,
            bytes: bytes.clone(),
        })
    })
}

fn sig() -> impl Strategy<Value = Option<[u8; 64]>> {
    prop_oneof![
        Just(None),
        vec(any::<u8>(), 64).prop_map(|v| {
            let mut s = [0u8; 64];
            s.copy_from_slice(&v);
            Some(s)
        })
    ]
}

fn group_envelope() -> impl Strategy<Value = GroupEnvelope> {
    prop_oneof![
        (
            any::<[u8; 16]>(),
            member_id(),
            member_info(),
            bounded(300),
            bounded(300)
        )
            .prop_map(|(g, member_id, introducer, invitation, group_info)| {
                GroupEnvelope::Group(GroupInvitation {
                    group_id: GroupId(g),
                    member_id,
                    introducer,
                    invitation,
                    group_info,
                })
            }),
        member_info().prop_map(GroupEnvelope::Intro),
        member_info().prop_map(GroupEnvelope::IntroLate),
        (member_id(), bounded(300)).prop_map(|(member_id, invitation)| GroupEnvelope::Inv {
            member_id,
            invitation
        }),
        (member_info(), bounded(300))
            .prop_map(|(member, invitation)| GroupEnvelope::Fwd { member, invitation }),
        bounded(300).prop_map(|invitation| GroupEnvelope::OpenInv { invitation }),
        member_id().prop_map(GroupEnvelope::Mem),
        Just(GroupEnvelope::Left),
        Just(GroupEnvelope::Out),
        member_id().prop_map(GroupEnvelope::Rem),
        member_id().prop_map(GroupEnvelope::RemTell),
        member_id().prop_map(GroupEnvelope::Remd),
        Just(GroupEnvelope::Del),
        Just(GroupEnvelope::Deld),
        (any::<u64>(), any::<u64>(), tail(500)).prop_map(|(ext_msg_id, snd_ts, content)| {
            GroupEnvelope::Msg {
                ext_msg_id,
                snd_ts,
                content,
            }
        }),
        (any::<u64>(), digest())
            .prop_map(|(ext_msg_id, digest)| GroupEnvelope::CatchUp { ext_msg_id, digest }),
        (any::<u64>(), digest(), sig()).prop_map(|(ext_msg_id, digest, sig)| GroupEnvelope::Rcvd {
            ext_msg_id,
            digest,
            sig
        }),
        (vec((any::<u64>(), digest()), 1..20), sig())
            .prop_map(|(receipts, sig)| GroupEnvelope::Receipts { receipts, sig }),
        gcheck().prop_map(GroupEnvelope::Check),
        (any::<u64>(), any::<u64>(), tail(500)).prop_map(|(msg_id, snd_ts, content)| {
            GroupEnvelope::DirectMsg {
                msg_id,
                snd_ts,
                content,
            }
        }),
        (any::<u64>(), digest())
            .prop_map(|(msg_id, digest)| GroupEnvelope::DirectRcvd { msg_id, digest }),
        vec(
            (
                member_id(),
                vec((any::<u64>(), digest()), 1..6),
                any::<[u8; 32]>()
            ),
            1..5
        )
        .prop_map(|units| GroupEnvelope::Proof {
            units: units
                .into_iter()
                .map(|(signer, receipts, half)| {
                    let mut sig = [0; 64];
                    sig[..32].copy_from_slice(&half);
                    SignedReceipts {
                        signer,
                        receipts,
                        sig,
                    }
                })
                .collect(),
        }),
        (any::<u64>(), member_id(), bounded(300))
            .prop_map(|(ts, author, info)| GroupEnvelope::Info { ts, author, info }),
        (any::<u64>(), bounded(300))
            .prop_map(|(ts, profile)| GroupEnvelope::Profile { ts, profile }),
    ]
}

fn a_message() -> impl Strategy<Value = AMessage> {
    prop_oneof![
        Just(AMessage::Hello),
        (any::<u64>(), tail(500))
            .prop_map(|(snd_ts, content)| AMessage::UserMsg { snd_ts, content }),
        vec(
            (any::<u64>(), digest()).prop_map(|(msg_id, digest)| Receipt { msg_id, digest }),
            1..=16
        )
        .prop_map(AMessage::Receipts),
        fragment().prop_map(AMessage::Fragment),
        group_envelope().prop_map(AMessage::Group),
    ]
}

fn agent_message() -> impl Strategy<Value = AgentMessage> {
    prop_oneof![
        (proptest::option::of(bounded(300)), bounded(300))
            .prop_map(|(reply_queue, info)| AgentMessage::ConnInfo(ConnInfo { reply_queue, info })),
        (any::<u64>(), digest(), a_message()).prop_map(|(snd_msg_id, prev_msg_hash, body)| {
            AgentMessage::Message {
                header: MsgHeader {
                    snd_msg_id,
                    prev_msg_hash,
                },
                body,
            }
        }),
    ]
}

fn agent_envelope() -> impl Strategy<Value = AgentEnvelope> {
    prop_oneof![
        (any::<u16>(), bounded(300), tail(500)).prop_map(
            |(agent_version, e2e_params, enc_conn_info)| {
                AgentEnvelope::Confirmation {
                    agent_version,
                    e2e_params,
                    enc_conn_info,
                }
            }
        ),
        (any::<u16>(), tail(500)).prop_map(|(agent_version, enc_agent_message)| {
            AgentEnvelope::Message {
                agent_version,
                enc_agent_message,
            }
        }),
    ]
}

fn msg(body: AMessage) -> AgentMessage {
    AgentMessage::Message {
        header: MsgHeader {
            snd_msg_id: 1,
            prev_msg_hash: Digest::ZERO,
        },
        body,
    }
}

fn header_bytes(id: u8) -> Vec<u8> {
    let mut v = vec![b'M', 0, 0, 0, 0, 0, 0, 0, id];
    v.extend_from_slice(&[0; 32]);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agent_message_round_trip(m in agent_message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(decode_all::<AgentMessage>(&bytes), Ok(m));
    }

    #[test]
    fn agent_envelope_round_trip(e in agent_envelope()) {
        prop_assert_eq!(decode_all::<AgentEnvelope>(&e.to_bytes()), Ok(e));
    }

    #[test]
    fn gcheck_text_round_trip(g in gcheck()) {
        let text = g.to_text();
        prop_assert!(text.starts_with("G_CHECK "));
        prop_assert!(text.is_ascii());
        prop_assert_eq!(GCheck::parse(text.as_bytes()), Ok(g.clone()));
        // As a group envelope body, the bytes after the header are that same text.
        let m = msg(AMessage::Group(GroupEnvelope::Check(g)));
        let bytes = m.to_bytes();
        prop_assert_eq!(&bytes[41..], text.as_bytes());
    }

    #[test]
    fn trailing_bytes_are_rejected(m in agent_message(), extra in vec(any::<u8>(), 1..8)) {
        // Bodies that end in a tail or text absorb the extra bytes; every other
        // message must reject them.
        let absorbs = matches!(
            &m,
            AgentMessage::Message { body: AMessage::UserMsg { .. }, .. }
                | AgentMessage::Message { body: AMessage::Group(GroupEnvelope::Msg { .. } | GroupEnvelope::DirectMsg { .. } | GroupEnvelope::Check(_)), .. }
        );
        let mut bytes = m.to_bytes();
        bytes.extend_from_slice(&extra);
        let r = decode_all::<AgentMessage>(&bytes);
        if !absorbs {
            // The bytes may spell another message exactly (a bare tag that is a
            // prefix of another: `DEL` + `D` is `DELD`); then nothing was ignored.
            // What must never happen is a decode that drops bytes.
            if let Ok(other) = r {
                prop_assert_ne!(&other, &m, "trailing bytes were ignored");
                prop_assert_eq!(other.to_bytes(), bytes, "decoded {:?} but not from all bytes", other);
            }
        }
    }

    #[test]
    fn truncation_is_an_error(m in agent_message(), cut in any::<prop::sample::Index>()) {
        let bytes = m.to_bytes();
        let n = cut.index(bytes.len());
        // Cutting a tail or G_CHECK text may leave a valid shorter message; the rest
        // must fail.
        let r = decode_all::<AgentMessage>(&bytes[..n]);
        if let Ok(short) = r {
            prop_assert_ne!(short, m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = decode_all::<AgentEnvelope>(&bytes);
        let _ = decode_all::<AgentMessage>(&bytes);
        let _ = GCheck::parse(&bytes);
        if let Ok(m) = smp_groups_wire::decode_all_with::<AgentMessage, _>(&bytes, Limits { max_fragments: 4 }) {
            prop_assert_eq!(decode_all::<AgentMessage>(&m.to_bytes()), Ok(m));
        }
    }

    #[test]
    fn tagged_arbitrary_bodies_never_panic(tag in prop::sample::select(&[
        "HELLO", "A_MSG", "A_RCVD", "FRAG", "GROUP", "INTRO", "INV", "FWD", "OINV", "MEM", "LEFT",
        "OUT", "REM", "REMD", "DEL", "DELD", "MSG", "RCVD", "G_CHECK", "GINFO", "PROFILE", "SMSG", "HIST",
    ][..]), body in vec(any::<u8>(), 0..300)) {
        let mut bytes = header_bytes(1);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(&body);
        if let Ok(m) = decode_all::<AgentMessage>(&bytes) {
            prop_assert_eq!(m.to_bytes(), bytes);
        }
    }
}

#[test]
fn known_answer_hello_and_group_msg() {
    let hello = msg(AMessage::Hello);
    let mut expected = header_bytes(1);
    expected.extend_from_slice(b"HELLO");
    assert_eq!(hello.to_bytes(), expected);

    let m = msg(AMessage::Group(GroupEnvelope::Msg {
        ext_msg_id: 258,
        snd_ts: 0x0102_0304,
        content: Tail::new(b"hi".to_vec()).expect("short"),
    }));
    let mut expected = header_bytes(1);
    expected.extend_from_slice(
        b"MSG \x00\x00\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x01\x02\x03\x04hi",
    );
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(decode_all::<AgentMessage>(&expected), Ok(m));
}

#[test]
fn known_answer_envelope() {
    let e = AgentEnvelope::Message {
        agent_version: AGENT_VERSION,
        enc_agent_message: Tail::new(vec![0xaa, 0xbb]).expect("short"),
    };
    assert_eq!(e.to_bytes(), [0, 1, b'M', 0xaa, 0xbb]);
}

#[test]
fn unknown_tags() {
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"NOPE x");
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::UnknownTag {
            what: "envelope tag",
            tag: "NOPE".into()
        })
    );
    assert_eq!(
        decode_all::<AgentMessage>(b"X"),
        Err(Error::UnknownTag {
            what: "agent message tag",
            tag: "X".into()
        })
    );
    assert_eq!(
        decode_all::<AgentEnvelope>(&[0, 1, b'Q']),
        Err(Error::UnknownTag {
            what: "agent envelope tag",
            tag: "Q".into()
        })
    );
    // A tag longer than any known one is rejected without scanning further.
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"ABCDEFGHIJKLMNOP");
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::UnknownTag {
            what: "envelope tag",
            tag: "ABCDEFGHI".into()
        })
    );
}

#[test]
fn truncated_input() {
    // Header cut inside the previous-message hash.
    assert_eq!(
        decode_all::<AgentMessage>(&header_bytes(1)[..20]),
        Err(Error::Truncated {
            what: "digest",
            needed: 32,
            available: 11
        })
    );
    // MEM with half a member id.
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"MEM ");
    bytes.extend_from_slice(&[7; 8]);
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::Truncated {
            what: "member id",
            needed: 16,
            available: 8
        })
    );
    // A tag that needs fields but has none.
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"MEM");
    assert!(matches!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn length_beyond_declared_maximum() {
    // OINV declaring an invitation one byte longer than MAX_INVITATION_LEN.
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"OINV ");
    let len = u16::try_from(MAX_INVITATION_LEN + 1).expect("fits");
    bytes.extend_from_slice(&len.to_be_bytes());
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::TooLong {
            what: "invitation",
            len: MAX_INVITATION_LEN + 1,
            max: MAX_INVITATION_LEN
        })
    );
    // A fragment count above the receiver's limit.
    let f = Fragment::split(5, &[1; 100], 10, 10).expect("10 fragments");
    let m = msg(AMessage::Fragment(f[0].clone()));
    let bytes = m.to_bytes();
    assert_eq!(
        smp_groups_wire::decode_all_with::<AgentMessage, _>(&bytes, Limits { max_fragments: 10 }),
        Ok(m)
    );
    assert_eq!(
        smp_groups_wire::decode_all_with::<AgentMessage, _>(&bytes, Limits { max_fragments: 9 }),
        Err(Error::TooLong {
            what: "fragment count",
            len: 10,
            max: 9
        })
    );
    // More receipts than allowed.
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"A_RCVD ");
    bytes.push(17);
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::TooLong {
            what: "receipts",
            len: 17,
            max: 16
        })
    );
}

#[test]
fn trailing_bytes_after_bare_and_fixed_envelopes() {
    let mut bytes = header_bytes(1);
    bytes.extend_from_slice(b"LEFT xy");
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::TrailingBytes {
            what: "envelope",
            count: 3
        })
    );
    let mut bytes = msg(AMessage::Group(GroupEnvelope::Mem(MemberId([1; 16])))).to_bytes();
    bytes.push(0);
    assert_eq!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::TrailingBytes {
            what: "AgentMessage",
            count: 1
        })
    );
}

/// Found by a fresh seed in CI: `DEL` followed by the byte `D` is the whole
/// tag `DELD`, a different, valid envelope; `DEL` followed by anything else
/// is refused.
#[test]
fn regression_bare_tag_that_prefixes_another() {
    let del = msg(AMessage::Group(GroupEnvelope::Del));
    let mut bytes = del.to_bytes();
    bytes.push(b'D');
    let deld = msg(AMessage::Group(GroupEnvelope::Deld));
    assert_eq!(decode_all::<AgentMessage>(&bytes), Ok(deld.clone()));
    assert_eq!(deld.to_bytes(), bytes);
    let mut bytes = del.to_bytes();
    bytes.push(b'X');
    assert!(matches!(
        decode_all::<AgentMessage>(&bytes),
        Err(Error::UnknownTag { .. })
    ));
}

#[test]
fn gcheck_errors() {
    let ok = "G_CHECK AAAAAAAAAAAAAAAAAAAAAA:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:ok";
    assert!(GCheck::parse(ok.as_bytes()).is_ok());
    // Bad base64: '*' is not in the alphabet; padding is not allowed.
    let bad = ok.replacen("AAAA", "AA*A", 1);
    assert_eq!(
        GCheck::parse(bad.as_bytes()),
        Err(Error::BadBase64 { what: "member id" })
    );
    let padded =
        "G_CHECK AAAAAAAAAAAAAAAAAAAAAA==:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:ok";
    assert_eq!(
        GCheck::parse(padded.as_bytes()),
        Err(Error::BadBase64 { what: "member id" })
    );
    let short_hash = "G_CHECK AAAAAAAAAAAAAAAAAAAAAA:1:AAAA:ok";
    assert_eq!(
        GCheck::parse(short_hash.as_bytes()),
        Err(Error::BadBase64 { what: "digest" })
    );
    // Unknown status.
    let status = ok.replace(":ok", ":fine");
    assert_eq!(
        GCheck::parse(status.as_bytes()),
        Err(Error::UnknownTag {
            what: "G_CHECK status",
            tag: "fine".into()
        })
    );
    // Missing field, extra field, bad number.
    assert!(matches!(
        GCheck::parse(b"G_CHECK AAAAAAAAAAAAAAAAAAAAAA:1"),
        Err(Error::Truncated {
            what: "G_CHECK hash",
            ..
        })
    ));
    let extra = format!("{ok}:x");
    assert!(matches!(
        GCheck::parse(extra.as_bytes()),
        Err(Error::TrailingBytes { .. })
    ));
    let neg = ok.replace(":1:", ":-1:");
    assert!(matches!(
        GCheck::parse(neg.as_bytes()),
        Err(Error::InvalidValue {
            what: "G_CHECK msgId",
            ..
        })
    ));
    // Too many entries.
    let many = format!(
        "G_CHECK {}",
        vec![&ok[8..]; MAX_GCHECK_ENTRIES + 1].join(",")
    );
    assert_eq!(
        GCheck::parse(many.as_bytes()),
        Err(Error::TooLong {
            what: "G_CHECK entries",
            len: MAX_GCHECK_ENTRIES + 1,
            max: MAX_GCHECK_ENTRIES
        })
    );
    let exact = format!("G_CHECK {}", vec![&ok[8..]; MAX_GCHECK_ENTRIES].join(","));
    assert_eq!(
        GCheck::parse(exact.as_bytes()).map(|g| g.entries.len()),
        Ok(MAX_GCHECK_ENTRIES)
    );
}

#[test]
fn member_info_and_reader_position() {
    let info = MemberInfo {
        member_id: MemberId([3; 16]),
        signing_key: [4; 32],
        profile: Bounded::new(b"alice".to_vec()).expect("short"),
    };
    let bytes = info.to_bytes();
    assert_eq!(bytes.len(), 16 + 32 + 2 + 5);
    let mut r = Reader::new(&bytes);
    assert_eq!(MemberInfo::decode(&mut r), Ok(info));
    assert!(r.is_empty());
}

#[test]
fn large_message_through_fragments() {
    // A group message larger than a block: encode the body, split it, send each
    // piece as a FRAG message, then join and decode on the other side.
    let content: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let body = AMessage::Group(GroupEnvelope::Msg {
        ext_msg_id: 77,
        snd_ts: 5,
        content: Tail::new(content).expect("under 1 MiB"),
    });
    let encoded = body.to_bytes();
    let pieces = Fragment::split(3, &encoded, 16_000, 8).expect("3 fragments");
    assert_eq!(pieces.len(), 3);
    let received: Vec<Fragment> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let wire = AgentMessage::Message {
                header: MsgHeader {
                    snd_msg_id: 10 + i as u64,
                    prev_msg_hash: Digest::ZERO,
                },
                body: AMessage::Fragment(f),
            }
            .to_bytes();
            match smp_groups_wire::decode_all_with::<AgentMessage, _>(
                &wire,
                Limits { max_fragments: 8 },
            ) {
                Ok(AgentMessage::Message {
                    body: AMessage::Fragment(f),
                    ..
                }) => f,
                other => panic!("not a fragment: {other:?}"),
            }
        })
        .collect();
    let joined = Fragment::join(&received).expect("complete set");
    assert_eq!(decode_all::<AMessage>(&joined), Ok(body));
}
