//! The hex examples in docs/protocol-agent.md, checked: each value encodes to the
//! documented bytes, the bytes decode back to the value, and every example has
//! a value here.

use smp_groups_wire::agent::{
    AMessage, AgentEnvelope, AgentMessage, Bounded, ChainAnchor, ConnInfo, ConnInvitation, Digest,
    Fragment, GCheck, GCheckEntry, GCheckMembers, GCheckStatus, GroupEnvelope, GroupId,
    GroupInvitation, JoinInfo, MemberId, MemberInfo, MsgHeader, QueueAddress, Receipt,
    SignedReceipts, Tail,
};
use smp_groups_wire::{Encode, decode_all};

fn b<const N: usize>(s: &[u8]) -> Bounded<N> {
    Bounded::new(s.to_vec()).expect("short")
}

fn t<const N: usize>(s: &[u8]) -> Tail<N> {
    Tail::new(s.to_vec()).expect("short")
}

const M1: MemberId = MemberId([0x11; 16]);
const D4: Digest = Digest([0x44; 32]);

fn info() -> MemberInfo {
    MemberInfo {
        member_id: M1,
        signing_key: [0x33; 32],
        profile: b(b"al"),
    }
}

fn g(e: GroupEnvelope) -> AMessage {
    AMessage::Group(e)
}

enum Example {
    Body(AMessage),
    Message(AgentMessage),
    Envelope(AgentEnvelope),
    Invitation(ConnInvitation),
    Queue(QueueAddress),
    Join(JoinInfo),
}

impl Example {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Body(b) => b.to_bytes(),
            Self::Message(m) => m.to_bytes(),
            Self::Envelope(e) => e.to_bytes(),
            Self::Invitation(i) => i.to_bytes(),
            Self::Queue(q) => q.to_bytes(),
            Self::Join(j) => j.to_bytes(),
        }
    }

    fn decodes_back(&self, bytes: &[u8]) -> bool {
        match self {
            Self::Body(b) => decode_all::<AMessage>(bytes).as_ref() == Ok(b),
            Self::Message(m) => decode_all::<AgentMessage>(bytes).as_ref() == Ok(m),
            Self::Envelope(e) => decode_all::<AgentEnvelope>(bytes).as_ref() == Ok(e),
            Self::Invitation(i) => decode_all::<ConnInvitation>(bytes).as_ref() == Ok(i),
            Self::Queue(q) => decode_all::<QueueAddress>(bytes).as_ref() == Ok(q),
            Self::Join(j) => decode_all::<JoinInfo>(bytes).as_ref() == Ok(j),
        }
    }
}

fn examples() -> Vec<(&'static str, Example)> {
    use Example::{Body, Envelope, Invitation, Join, Message, Queue};
    let queue = QueueAddress::new("smp://k@r", &[0x77; 4]).expect("short");
    vec![
        (
            "connInvitation",
            Invitation(ConnInvitation {
                queue: queue.clone(),
                e2e_params: b(b"pp"),
                anchor: Some(ChainAnchor::At {
                    ext_msg_id: 3,
                    digest: D4,
                }),
            }),
        ),
        ("queueAddress", Queue(queue)),
        (
            "joinInfo",
            Join(JoinInfo {
                sender_key: [0x33; 32],
                reply_key_seed: [0x55; 32],
                member: Some(info()),
                anchor: Some(ChainAnchor::Genesis),
                info: b(b""),
            }),
        ),
        ("HELLO", Body(AMessage::Hello)),
        (
            "A_MSG",
            Body(AMessage::UserMsg {
                snd_ts: 1_700_000_000_123,
                content: t(b"hi"),
            }),
        ),
        (
            "A_RCVD",
            Body(AMessage::Receipts(vec![Receipt {
                msg_id: 5,
                digest: D4,
            }])),
        ),
        (
            "FRAG",
            Body(AMessage::Fragment(Fragment {
                msg_id: 9,
                index: 1,
                count: 2,
                bytes: b(b"ab"),
            })),
        ),
        (
            "GROUP",
            Body(g(GroupEnvelope::Group(GroupInvitation {
                group_id: GroupId([0x22; 16]),
                member_id: MemberId([0x55; 16]),
                introducer: info(),
                invitation: b(b"inv"),
                group_info: b(b"gi"),
            }))),
        ),
        ("INTRO", Body(g(GroupEnvelope::Intro(info())))),
        ("LINTRO", Body(g(GroupEnvelope::IntroLate(info())))),
        (
            "INV",
            Body(g(GroupEnvelope::Inv {
                member_id: M1,
                invitation: b(b"inv"),
            })),
        ),
        (
            "FWD",
            Body(g(GroupEnvelope::Fwd {
                member: info(),
                invitation: b(b"inv"),
            })),
        ),
        (
            "OINV",
            Body(g(GroupEnvelope::OpenInv {
                invitation: b(b"inv"),
            })),
        ),
        ("MEM", Body(g(GroupEnvelope::Mem(M1)))),
        (
            "GINFO",
            Body(g(GroupEnvelope::Info {
                ts: 1_700_000_000_123,
                author: M1,
                info: b(b"gi"),
            })),
        ),
        (
            "SMSG",
            Body(g(GroupEnvelope::SignedMsg {
                ext_msg_id: 7,
                snd_ts: 1_700_000_000_123,
                sig: [0x66; 64],
                content: t(b"hi"),
            })),
        ),
        (
            "HIST",
            Body(g(GroupEnvelope::History {
                sender: M1,
                ext_msg_id: 7,
                snd_ts: 1_700_000_000_123,
                sig: [0x66; 64],
                content: t(b"hi"),
            })),
        ),
        (
            "PROFILE",
            Body(g(GroupEnvelope::Profile {
                ts: 1_700_000_000_123,
                profile: b(b"al"),
            })),
        ),
        ("LEFT", Body(g(GroupEnvelope::Left))),
        ("OUT", Body(g(GroupEnvelope::Out))),
        ("REM", Body(g(GroupEnvelope::Rem(M1)))),
        ("REMT", Body(g(GroupEnvelope::RemTell(M1)))),
        ("REMD", Body(g(GroupEnvelope::Remd(M1)))),
        ("DEL", Body(g(GroupEnvelope::Del))),
        ("DELD", Body(g(GroupEnvelope::Deld))),
        (
            "MSG",
            Body(g(GroupEnvelope::Msg {
                ext_msg_id: 7,
                snd_ts: 1_700_000_000_123,
                content: t(b"hi"),
            })),
        ),
        (
            "CATCHUP",
            Body(g(GroupEnvelope::CatchUp {
                ext_msg_id: 7,
                digest: D4,
            })),
        ),
        (
            "RCVD",
            Body(g(GroupEnvelope::Rcvd {
                ext_msg_id: 7,
                digest: D4,
                sig: None,
            })),
        ),
        (
            "RCVD+sig",
            Body(g(GroupEnvelope::Rcvd {
                ext_msg_id: 7,
                digest: D4,
                sig: Some([0x66; 64]),
            })),
        ),
        (
            "RCVDS",
            Body(g(GroupEnvelope::Receipts {
                receipts: vec![(7, D4), (8, Digest([0x55; 32]))],
                sig: Some([0x66; 64]),
            })),
        ),
        (
            "DMSG",
            Body(g(GroupEnvelope::DirectMsg {
                msg_id: 3,
                snd_ts: 1_700_000_000_123,
                content: t(b"hi"),
            })),
        ),
        (
            "DRCVD",
            Body(g(GroupEnvelope::DirectRcvd {
                msg_id: 3,
                digest: D4,
            })),
        ),
        (
            "PROOF",
            Body(g(GroupEnvelope::Proof {
                units: vec![
                    SignedReceipts {
                        signer: MemberId([0x11; 16]),
                        receipts: vec![(7, D4)],
                        sig: [0x66; 64],
                    },
                    SignedReceipts {
                        signer: MemberId([0x22; 16]),
                        receipts: vec![(7, D4), (8, Digest([0x55; 32]))],
                        sig: [0x77; 64],
                    },
                ],
            })),
        ),
        (
            "G_CHECK",
            Body(g(GroupEnvelope::Check(GCheck {
                entries: vec![
                    GCheckEntry {
                        member: M1,
                        msg_id: 7,
                        digest: D4,
                        status: GCheckStatus::Ok,
                    },
                    GCheckEntry {
                        member: MemberId([0x55; 16]),
                        msg_id: 3,
                        digest: D4,
                        status: GCheckStatus::Gap,
                    },
                ],
                members: None,
            }))),
        ),
        (
            "G_CHECK+members",
            Body(g(GroupEnvelope::Check(GCheck {
                entries: vec![GCheckEntry {
                    member: M1,
                    msg_id: 7,
                    digest: D4,
                    status: GCheckStatus::Ok,
                }],
                members: Some(GCheckMembers {
                    count: 3,
                    digest: Digest([0x77; 32]),
                }),
            }))),
        ),
        (
            "ConnInfo",
            Message(AgentMessage::ConnInfo(ConnInfo {
                reply_queue: Some(b(b"q")),
                info: b(b"hi"),
            })),
        ),
        (
            "Message HELLO",
            Message(AgentMessage::Message {
                header: MsgHeader {
                    snd_msg_id: 1,
                    prev_msg_hash: Digest::ZERO,
                },
                body: AMessage::Hello,
            }),
        ),
        (
            "Confirmation",
            Envelope(AgentEnvelope::Confirmation {
                agent_version: 1,
                e2e_params: b(b"keys"),
                enc_conn_info: t(&[0xc0, 0xc1]),
            }),
        ),
        (
            "Message envelope",
            Envelope(AgentEnvelope::Message {
                agent_version: 1,
                enc_agent_message: t(&[0xe0, 0xe1]),
            }),
        ),
    ]
}

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol-agent.md"
));

/// (name, hex without spaces) of every `#### example: NAME` section of the doc.
fn documented() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in DOC.split("#### example: ").skip(1) {
        let name = section.lines().next().unwrap_or_default().trim().to_owned();
        let hex = section
            .split("```hex\n")
            .nth(1)
            .and_then(|h| h.split("```").next())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<String>();
        out.push((name, hex));
    }
    out
}

#[test]
fn documented_examples_match_the_encoder() {
    let docs = documented();
    let examples = examples();
    assert_eq!(
        docs.len(),
        examples.len(),
        "one documented example per value"
    );
    for (name, example) in examples {
        let found = docs.iter().find(|(n, _)| n == name);
        assert!(found.is_some(), "{name} is not documented");
        let hex = found.map(|(_, h)| h.clone()).unwrap_or_default();
        let bytes = hex::decode(&hex);
        assert!(bytes.is_ok(), "{name}: bad hex in doc: {bytes:?}");
        let bytes = bytes.unwrap_or_default();
        assert_eq!(hex::encode(example.bytes()), hex, "{name}");
        assert!(example.decodes_back(&bytes), "{name} does not decode back");
    }
}

#[test]
fn gcheck_example_text_is_the_seed_syntax() {
    let text = "G_CHECK EREREREREREREREREREREQ:7:REREREREREREREREREREREREREREREREREREREREREQ:ok,\
                VVVVVVVVVVVVVVVVVVVVVQ:3:REREREREREREREREREREREREREREREREREREREREREQ:gap";
    assert!(DOC.contains(text));
    let parsed = GCheck::parse(text.as_bytes()).expect("documented text parses");
    assert_eq!(parsed.entries[0].member, M1);
    assert_eq!(parsed.entries[1].status, GCheckStatus::Gap);
    assert_eq!(parsed.to_text(), text);
}
