//! Client protocol: every command and event round-trips, known lines parse to the
//! expected values, and malformed lines give the exact error.

#[path = "client_strategies.rs"]
mod strategies;

use proptest::prelude::*;
use smp_groups_wire::client::{
    AgentEvent, Alias, ClientCommand, CorrId, Entity, ErrorCode, LineDecoder, LineError,
    MsgIntegrity, MsgMeta, Row, RowsKind, Transmission,
};

fn alias(s: &str) -> Alias {
    Alias::new(s).expect("valid alias")
}

/// Decodes one complete transmission from `bytes` with a fresh decoder.
fn decode<T: smp_groups_wire::client::LineMessage>(
    bytes: &[u8],
) -> Result<Transmission<T>, LineError> {
    let mut d = LineDecoder::<T>::default();
    d.push(bytes);
    let r = d.next().expect("a complete transmission");
    assert!(d.next().is_none(), "exactly one transmission");
    r
}

fn cmd(line: &str) -> Result<ClientCommand, LineError> {
    decode::<ClientCommand>(line.as_bytes()).map(|t| t.msg)
}

fn err(line: &str) -> (ErrorCode, String) {
    let e = decode::<ClientCommand>(line.as_bytes()).expect_err("rejected");
    (e.code, e.detail)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn command_round_trip(t in strategies::command_tx()) {
        let bytes = t.to_bytes();
        prop_assert!(bytes.ends_with(b"\r\n"));
        prop_assert_eq!(decode::<ClientCommand>(&bytes), Ok(t));
    }

    #[test]
    fn event_round_trip(t in strategies::event_tx()) {
        prop_assert_eq!(decode::<AgentEvent>(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Transmission::<ClientCommand>::parse(&line, None);
        let _ = Transmission::<AgentEvent>::parse(&line, Some(&line));
        if let Ok(t) = Transmission::<ClientCommand>::parse(&line, None) {
            prop_assert_eq!(decode::<ClientCommand>(&t.to_bytes()), Ok(t));
        }
    }

    #[test]
    fn mutated_lines_never_panic(t in strategies::command_tx(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = t.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = b;
        let mut d = LineDecoder::<ClientCommand>::default();
        d.push(&bytes);
        while let Some(r) = d.next() {
            if let Ok(t) = r {
                prop_assert_eq!(decode::<ClientCommand>(&t.to_bytes()), Ok(t));
            }
        }
    }
}

#[test]
fn seed_commands_parse() {
    assert_eq!(
        cmd("1 C:bob NEW\r\n"),
        Ok(ClientCommand::NewConn {
            conn: Some(alias("bob"))
        })
    );
    assert_eq!(
        cmd("1 C: NEW\r\n"),
        Ok(ClientCommand::NewConn { conn: None })
    );
    assert_eq!(
        cmd("2 G: NEW :team chat\r\n"),
        Ok(ClientCommand::NewGroup {
            group: None,
            info: b"team chat".to_vec()
        })
    );
    assert_eq!(
        cmd("3 C:bob INTRO G:team 5\r\nhello\r\n"),
        Ok(ClientCommand::Intro {
            conn: alias("bob"),
            group: alias("team"),
            info: b"hello".to_vec()
        })
    );
    assert_eq!(
        cmd("4 G:team JOIN g:inv1\r\n"),
        Ok(ClientCommand::JoinGroup {
            group: Some(alias("team")),
            invitation: alias("inv1")
        })
    );
    assert_eq!(
        cmd("4 g:inv1 RJCT\r\n"),
        Ok(ClientCommand::Reject {
            invitation: alias("inv1")
        })
    );
    assert!(cmd("4 g:inv1 JOIN\r\n").is_err());
    assert_eq!(
        cmd("5 G:team SEND :hi all\r\n"),
        Ok(ClientCommand::GroupSend {
            group: alias("team"),
            body: b"hi all".to_vec()
        })
    );
    assert_eq!(
        cmd("6 G:team REM C:bob\r\n"),
        Ok(ClientCommand::Remove {
            group: alias("team"),
            member: alias("bob")
        })
    );
    assert_eq!(
        cmd("7 G:team ALLOW 12\r\n"),
        Ok(ClientCommand::Allow {
            group: alias("team"),
            req_id: 12
        })
    );
}

/// Metadata with fixed ids and times: relay id 01 02 03, relay time
/// 1700000000000, sender id 7 at 1700000000123, received at 1700000000250.
fn meta(integrity: MsgIntegrity) -> MsgMeta {
    MsgMeta {
        integrity,
        rcv_ts: 1_700_000_000_250,
        relay_msg_id: vec![1, 2, 3],
        relay_ts: 1_700_000_000_000,
        snd_msg_id: 7,
        snd_ts: 1_700_000_000_123,
    }
}

/// Every `MSG` form parses back from its exact text, whatever its number of
/// integrity tokens, inline or with a block.
#[test]
fn msg_metadata_parses() {
    let ev = |line: &str| decode::<AgentEvent>(line.as_bytes()).map(|t| t.msg);
    assert_eq!(
        ev(" G:team MSG C:bob err skipped 2 4 R=9,10 B=,11 S=5,12 2\r\nhi\r\n"),
        Ok(AgentEvent::GroupMsg {
            group: alias("team"),
            member: alias("bob"),
            msg_id: 9,
            meta: MsgMeta {
                integrity: MsgIntegrity::Skipped { from: 2, to: 4 },
                rcv_ts: 10,
                relay_msg_id: Vec::new(),
                relay_ts: 11,
                snd_msg_id: 5,
                snd_ts: 12,
            },
            body: b"hi".to_vec(),
        })
    );
    assert_eq!(
        ev(
            " C:bob MSG err bad_hash R=2,1700000000250 B=AQID,1700000000000 S=7,1700000000123 2\r\n12\r\n"
        ),
        Ok(AgentEvent::Msg {
            conn: alias("bob"),
            msg_id: 2,
            meta: meta(MsgIntegrity::BadHash),
            body: b"12".to_vec(),
        })
    );
    assert_eq!(
        ev(" C:bob MSG ok R=1,2 B=AQID,3 S=4,5 :x y\r\n"),
        Ok(AgentEvent::Msg {
            conn: alias("bob"),
            msg_id: 1,
            meta: MsgMeta {
                integrity: MsgIntegrity::Ok,
                rcv_ts: 2,
                relay_msg_id: vec![1, 2, 3],
                relay_ts: 3,
                snd_msg_id: 4,
                snd_ts: 5,
            },
            body: b"x y".to_vec(),
        })
    );
}

/// Malformed metadata is refused with the exact reason.
#[test]
fn msg_metadata_errors() {
    let bad = |line: &str| {
        decode::<AgentEvent>(line.as_bytes())
            .map(|t| t.msg)
            .expect_err("refused")
            .detail
    };
    assert_eq!(
        bad(" C:b MSG fine R=1,2 B=AQID,3 S=4,5 :x\r\n"),
        "integrity must be ok, history or err"
    );
    assert_eq!(
        bad(" C:b MSG err gone R=1,2 B=AQID,3 S=4,5 :x\r\n"),
        "integrity error must be skipped or bad_hash"
    );
    assert_eq!(
        bad(" C:b MSG err skipped 4 3 R=1,2 B=AQID,3 S=4,5 :x\r\n"),
        "skipped ids must be a range from 1 up"
    );
    assert_eq!(
        bad(" C:b MSG err skipped 0 3 R=1,2 B=AQID,3 S=4,5 :x\r\n"),
        "skipped ids must be a range from 1 up"
    );
    assert_eq!(
        bad(" C:b MSG ok 1 B=AQID,3 S=4,5 :x\r\n"),
        "recipient metadata must be R=id,time"
    );
    assert_eq!(
        bad(" C:b MSG ok R=1,2 S=4,5 B=AQID,3 :x\r\n"),
        "relay metadata must be B=id,time"
    );
    assert_eq!(
        bad(" C:b MSG ok R=1,2 B=A+/,3 S=4,5 :x\r\n"),
        "bad base64 in relay message id"
    );
    assert_eq!(
        bad(" G:g MSG C:b ok R=1,2 B=AQID,3 S=4 :x\r\n"),
        "sender metadata must be S=id,time"
    );
    assert_eq!(
        bad(" G:g MSG C:b ok R=1,2 B=AQID,3 S=4,05 :x\r\n"),
        "invalid timestamp: leading zeros are not allowed"
    );
    assert_eq!(
        bad(" G:g MSG C:b ok R=1,2 B=AQID,3 S=4, :x\r\n"),
        "empty timestamp"
    );
    let long = smp_groups_wire::base64url::encode_unpadded(&[7; 256]);
    assert_eq!(
        bad(&format!(" C:b MSG ok R=1,2 B={long},3 S=4,5 :x\r\n")),
        "relay message id too long"
    );
    assert_eq!(
        bad(" C:b MSG 1 :x\r\n"),
        "integrity must be ok, history or err"
    );
}

#[test]
fn events_known_lines() {
    let e = |t: Transmission<AgentEvent>| String::from_utf8(t.to_bytes()).expect("ASCII");
    let ev = |msg| Transmission::new(CorrId::empty(), msg);
    assert_eq!(
        e(ev(AgentEvent::GroupMsg {
            group: alias("team"),
            member: alias("bob"),
            msg_id: 3,
            meta: meta(MsgIntegrity::Ok),
            body: b"hi".to_vec()
        })),
        " G:team MSG C:bob ok R=3,1700000000250 B=AQID,1700000000000 S=7,1700000000123 :hi\r\n"
    );
    assert_eq!(
        e(ev(AgentEvent::GroupSent {
            group: alias("team"),
            msg_id: 3
        })),
        " G:team SENT 3\r\n"
    );
    assert_eq!(
        e(ev(AgentEvent::Removed {
            group: alias("team"),
            member: alias("bob"),
            by: Some(alias("alice"))
        })),
        " G:team REMD C:bob C:alice\r\n"
    );
    assert_eq!(
        e(ev(AgentEvent::Msg {
            conn: alias("bob"),
            msg_id: 1,
            meta: meta(MsgIntegrity::Skipped { from: 5, to: 6 }),
            body: b"a\nb".to_vec()
        })),
        " C:bob MSG err skipped 5 6 R=1,1700000000250 B=AQID,1700000000000 S=7,1700000000123 3\r\na\nb\r\n"
    );
    assert_eq!(
        e(ev(AgentEvent::Msg {
            conn: alias("bob"),
            msg_id: 2,
            meta: meta(MsgIntegrity::BadHash),
            body: b"12".to_vec()
        })),
        " C:bob MSG err bad_hash R=2,1700000000250 B=AQID,1700000000000 S=7,1700000000123 :12\r\n"
    );
    assert_eq!(
        e(Transmission::new(
            CorrId::new("9").expect("valid"),
            AgentEvent::Error {
                entity: Entity::Conn(Some(alias("x"))),
                code: ErrorCode::UnknownEntity,
                detail: Some("no such\r\nconnection".into())
            }
        )),
        "9 C:x ERR UNKNOWN_ENTITY no such??connection\r\n"
    );
}

#[test]
fn error_codes() {
    assert_eq!(err("1 C:a FLY\r\n").0, ErrorCode::UnknownCommand);
    assert_eq!(err("1 g:inv SEND :x\r\n").0, ErrorCode::UnknownCommand);
    assert_eq!(err("1 C:a LEAVE\r\n").0, ErrorCode::UnknownCommand);
    assert_eq!(err("1 X:a NEW\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("1 C:a ACK 01\r\n").0, ErrorCode::Syntax);
    assert_eq!(
        err("1 C:a ACK 18446744073709551616\r\n").0,
        ErrorCode::Syntax
    );
    assert_eq!(
        err("1 C:a ACK\r\n"),
        (ErrorCode::Syntax, "missing message id".into())
    );
    assert_eq!(
        err("1 C:a DEL now\r\n"),
        (ErrorCode::Syntax, "unexpected 3 trailing bytes".into())
    );
    assert_eq!(err("1 C: SEND :x\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("1 C:a SEND x\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("1 C:a\r\n").0, ErrorCode::UnknownCommand);
    assert_eq!(err("justone\r\n").0, ErrorCode::Syntax);
    let long_alias = format!("1 C:{} NEW\r\n", "a".repeat(65));
    assert_eq!(err(&long_alias).0, ErrorCode::Large);
    let long_corr = format!("{} C:a NEW\r\n", "c".repeat(33));
    assert_eq!(err(&long_corr).0, ErrorCode::Large);
}

#[test]
fn errors_carry_corr_id_and_entity() {
    let e = decode::<ClientCommand>(b"42 G:team FLY\r\n").expect_err("unknown");
    assert_eq!(e.corr_id, CorrId::new("42").expect("valid"));
    assert_eq!(e.entity, Entity::Group(Some(alias("team"))));
    let reply = Transmission::<AgentEvent>::from(e);
    assert_eq!(
        reply.to_bytes(),
        b"42 G:team ERR UNKNOWN_COMMAND FLY is not a command for a group\r\n".to_vec()
    );
}

#[test]
fn status_queries_parse_and_answer_in_rows() {
    assert_eq!(cmd("1 G: LIST\r\n"), Ok(ClientCommand::ListGroups));
    assert_eq!(cmd("2 C: LIST\r\n"), Ok(ClientCommand::ListConns));
    assert_eq!(cmd("3 G: PENDING\r\n"), Ok(ClientCommand::Pending));
    assert_eq!(
        cmd("4 G:club MEMBERS\r\n"),
        Ok(ClientCommand::Members {
            group: alias("club")
        })
    );
    assert_eq!(
        cmd("5 G:club STATUS\r\n"),
        Ok(ClientCommand::Status {
            group: alias("club")
        })
    );
    assert_eq!(
        cmd("6 G:club CHECK\r\n"),
        Ok(ClientCommand::Check {
            group: alias("club")
        })
    );
    assert_eq!(err("7 G:club LIST\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("7 C:bob LIST\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("8 G: MEMBERS\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("8 G: CHECK\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("9 G:club STATUS now\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("9 C:bob MEMBERS\r\n").0, ErrorCode::UnknownCommand);

    // Rows: CRLF between them, none after the last; the block's CRLF ends it.
    let rows = vec![
        Row::new()
            .with("group", "G:club")
            .and_then(|r| r.with("members", 2))
            .expect("row"),
        Row::new().with("group", "G:team").expect("row"),
    ];
    let t = Transmission::new(
        CorrId::new("1").expect("valid"),
        AgentEvent::Rows {
            entity: Entity::Group(None),
            kind: RowsKind::List,
            rows,
        },
    );
    let bytes = t.to_bytes();
    assert_eq!(
        bytes,
        b"1 G: LIST 36\r\ngroup=G:club members=2\r\ngroup=G:team\r\n".to_vec()
    );
    assert_eq!(decode::<AgentEvent>(&bytes), Ok(t));
    // No rows: an empty block.
    let empty = Transmission::new(
        CorrId::new("2").expect("valid"),
        AgentEvent::Rows {
            entity: Entity::Conn(None),
            kind: RowsKind::List,
            rows: Vec::new(),
        },
    );
    assert_eq!(empty.to_bytes(), b"2 C: LIST 0\r\n\r\n".to_vec());
    assert_eq!(decode::<AgentEvent>(&empty.to_bytes()), Ok(empty));
    // Malformed answers are typed errors.
    for bad in [
        &b"1 G: LIST 5\r\na=1\nb\r\n"[..],
        b"1 G:club LIST 3\r\na=1\r\n",
        b"1 C: MEMBERS 3\r\na=1\r\n",
        b"1 G:club STATUS 5\r\na=1 b\r\n",
        b"1 G: PENDING 5\r\na=1\r\n\r\n",
    ] {
        let mut d = LineDecoder::<AgentEvent>::default();
        d.push(bad);
        let r = d.next();
        assert!(matches!(r, Some(Err(_)) | None), "{bad:?}: {r:?}");
    }
}

/// Direct messages: `DSEND` parses (inline and block payloads), each direct
/// event has its exact text and parses back, and malformed lines are refused.
#[test]
fn direct_message_lines() {
    use smp_groups_wire::client::{DirectFailure, RcvdStatus};
    assert_eq!(
        cmd("8 G:team DSEND C:bob :just you\r\n"),
        Ok(ClientCommand::DirectSend {
            group: alias("team"),
            member: alias("bob"),
            body: b"just you".to_vec()
        })
    );
    assert_eq!(
        cmd("8 G:team DSEND C:bob 3\r\na\nb\r\n"),
        Ok(ClientCommand::DirectSend {
            group: alias("team"),
            member: alias("bob"),
            body: b"a\nb".to_vec()
        })
    );
    assert_eq!(err("8 G:team DSEND :no member\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("8 G:team DSEND C:bob\r\n").0, ErrorCode::Syntax);
    assert_eq!(err("8 G:team DSEND bob :x\r\n").0, ErrorCode::Syntax);
    assert_eq!(
        err("8 C:bob DSEND C:bob :x\r\n").0,
        ErrorCode::UnknownCommand
    );
    assert_eq!(err("8 G: DSEND C:bob :x\r\n").0, ErrorCode::Syntax);

    let text = |corr: &str, msg: AgentEvent| {
        let corr = if corr.is_empty() {
            CorrId::empty()
        } else {
            CorrId::new(corr).expect("valid")
        };
        String::from_utf8(Transmission::new(corr, msg).to_bytes()).expect("ASCII")
    };
    let cases = [
        (
            "8",
            AgentEvent::DirectSent {
                group: alias("team"),
                member: None,
                msg_id: 5,
            },
            "8 G:team DSENT 5\r\n",
        ),
        (
            "",
            AgentEvent::DirectSent {
                group: alias("team"),
                member: Some(alias("bob")),
                msg_id: 5,
            },
            " G:team DSENT C:bob 5\r\n",
        ),
        (
            "",
            AgentEvent::DirectMsg {
                group: alias("team"),
                member: alias("bob"),
                msg_id: 3,
                meta: meta(MsgIntegrity::Ok),
                body: b"hi".to_vec(),
            },
            " G:team DMSG C:bob ok R=3,1700000000250 B=AQID,1700000000000 S=7,1700000000123 :hi\r\n",
        ),
        (
            "",
            AgentEvent::DirectMsg {
                group: alias("team"),
                member: alias("bob"),
                msg_id: 4,
                meta: meta(MsgIntegrity::Skipped { from: 5, to: 6 }),
                body: b"a\r\nb".to_vec(),
            },
            " G:team DMSG C:bob err skipped 5 6 R=4,1700000000250 B=AQID,1700000000000 S=7,1700000000123 4\r\na\r\nb\r\n",
        ),
        (
            "",
            AgentEvent::DirectRcvd {
                group: alias("team"),
                member: alias("bob"),
                msg_id: 5,
                status: RcvdStatus::Ok,
            },
            " G:team DRCVD C:bob 5 ok\r\n",
        ),
        (
            "",
            AgentEvent::DirectFailed {
                group: alias("team"),
                member: alias("bob"),
                msg_id: 5,
                reason: DirectFailure::Unsent,
            },
            " G:team DFAIL C:bob 5 unsent\r\n",
        ),
        (
            "",
            AgentEvent::DirectFailed {
                group: alias("team"),
                member: alias("bob"),
                msg_id: 6,
                reason: DirectFailure::Unconfirmed,
            },
            " G:team DFAIL C:bob 6 unconfirmed\r\n",
        ),
    ];
    for (corr, event, line) in cases {
        assert_eq!(text(corr, event.clone()), line);
        assert_eq!(
            decode::<AgentEvent>(line.as_bytes()).map(|t| t.msg),
            Ok(event),
            "{line:?}"
        );
    }
    let bad = |line: &str| decode::<AgentEvent>(line.as_bytes()).is_err();
    assert!(bad(" G:team DFAIL C:bob 5 lost\r\n"));
    assert!(bad(" G:team DRCVD 5 ok\r\n"));
    assert!(bad(" G:team DMSG C:bob R=1,2 :x\r\n"));
    assert!(bad(" C:bob DMSG ok R=1,2 B=,3 S=4,5 :x\r\n"));
}
