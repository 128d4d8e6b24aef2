//! Stored records, each with its own layout version.
//!
//! Every value the core stores is one byte, the layout version of its kind of
//! record ([`layout`]), then the record (postcard; [`encode`]). [`crate::Agent::restore`]
//! reads each value through [`open`]: a record of an older layout is brought
//! to the current one by [`migrate`], one step per version, and a record of a
//! layout this code does not know is refused, never guessed at.
//!
//! Stores of schema 4 hold the same records without the version byte, all at
//! layout 1: they are read as such, migrated, and rewritten whole in the
//! first batch after the restore (schema 5).
//!
//! Layouts:
//!
//! | record | layout | change |
//! |---|---|---|
//! | every kind | 1 | the layout of schema 4 |
//! | `Conn` | 2 | the join information and the invitations in queued envelopes in the wire encoding (`smp_groups_wire::agent::{JoinInfo, ConnInvitation}`), no longer postcard |
//! | `Group` | 2 | the open invitations held and an open add's join information in the wire encoding |
//! | `Invitation` | 2 | the invitation inside the stored `GROUP` envelope in the wire encoding |

use serde::Deserialize;
use smp_groups_wire::agent::{
    AMessage, Bounded, ChainAnchor, ConnInvitation, GroupEnvelope, Invitation, JoinInfo, Limits,
    MemberId, MemberInfo, QueueAddress,
};
use smp_groups_wire::{DecodeWith, Encode, Reader};

use crate::state::{AnchorRec, ChangeRec, Conn, Group, Mid, Payload, RecvInvitation};
use crate::store::Key;

/// The first store schema whose records carry their layout version.
pub(crate) const VERSIONED_SCHEMA: u32 = 5;
/// The store schema before records were versioned: every record at layout 1.
pub(crate) const UNVERSIONED_SCHEMA: u32 = 4;

/// The layout version this code writes for `key`'s kind of record.
pub const fn layout(key: &Key) -> u8 {
    match key {
        Key::Conn(_) | Key::Group(_) | Key::Invitation(_) => 2,
        Key::Meta
        | Key::Op(_)
        | Key::Member(..)
        | Key::Sent(..)
        | Key::Direct(_)
        | Key::Profiles(_)
        | Key::Shared(..)
        | Key::Proof(..)
        | Key::ProofSent(..) => 1,
    }
}

/// `value` as stored under `key`: its layout version, then the record, in
/// one buffer. Serialization of these plain records cannot fail; if it ever
/// did, the record is written as absent rather than as garbage.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(key: &Key, value: &T) -> Option<Vec<u8>> {
    postcard::to_extend(value, vec![layout(key)]).ok()
}

/// Why a stored value could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The value is empty, or names layout 0.
    NoLayout,
    /// A layout newer than this code writes.
    Newer(u8),
    /// A migration step failed.
    Migration { from: u8, reason: String },
}

/// The record stored under `key`, at the current layout, and whether it was
/// migrated (so must be written again). `schema` is the store's.
pub(crate) fn open(key: &Key, value: &[u8], schema: u32) -> Result<(Vec<u8>, bool), OpenError> {
    let (version, body) = if schema == UNVERSIONED_SCHEMA {
        (1, value)
    } else {
        match value.split_first() {
            Some((&v, rest)) if v > 0 => (v, rest),
            _ => return Err(OpenError::NoLayout),
        }
    };
    let current = layout(key);
    if version > current {
        return Err(OpenError::Newer(version));
    }
    if version == current {
        return Ok((body.to_vec(), schema == UNVERSIONED_SCHEMA));
    }
    let mut body = body.to_vec();
    for from in version..current {
        body = migrate(key, from, &body).map_err(|reason| OpenError::Migration { from, reason })?;
    }
    Ok((body, true))
}

/// The migration hook: brings one record of `key`'s kind from layout `from`
/// to `from + 1`.
pub(crate) fn migrate(key: &Key, from: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    let reencode = |e: postcard::Error| format!("re-encoding: {e}");
    match (key, from) {
        (Key::Conn(_), 1) => {
            let mut conn: Conn = postcard::from_bytes(body).map_err(|e| e.to_string())?;
            if !conn.join_info.is_empty() {
                conn.join_info = join_v1_to_wire(&conn.join_info)?.to_bytes();
            }
            for item in &mut conn.outbox {
                if let Payload::Plain(bytes) = &mut item.payload {
                    *bytes = envelope_v1_to_wire(bytes)?;
                }
            }
            postcard::to_allocvec(&conn).map_err(reencode)
        }
        (Key::Group(_), 1) => {
            let mut g: Group = postcard::from_bytes(body).map_err(|e| e.to_string())?;
            for inv in g.open_invs.values_mut() {
                *inv = invitation_v1_to_wire(inv)?.to_bytes();
            }
            for a in g.approvals.values_mut() {
                if matches!(a.change, ChangeRec::OpenAdd { .. }) {
                    let old: Option<JoinV1> =
                        postcard::from_bytes(&a.envelope).map_err(|e| format!("open add: {e}"))?;
                    a.envelope = old.map(JoinV1::into_wire).transpose()?.to_bytes();
                }
            }
            postcard::to_allocvec(&g).map_err(reencode)
        }
        (Key::Invitation(_), 1) => {
            let mut inv: RecvInvitation = postcard::from_bytes(body).map_err(|e| e.to_string())?;
            inv.envelope = envelope_v1_to_wire(&inv.envelope)?;
            postcard::to_allocvec(&inv).map_err(reencode)
        }
        _ => Err(format!("no migration of {key:?} from layout {from}")),
    }
}

/// A connection invitation as layout 1 stored it (postcard; the tests write
/// it too).
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Deserialize)]
struct InviteV1 {
    server: String,
    snd_id: Vec<u8>,
    params: Vec<u8>,
    anchor: Option<AnchorRec>,
}

/// Join information as layout 1 stored it (postcard; the tests write it
/// too).
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Deserialize)]
struct JoinV1 {
    sender_key: [u8; 32],
    reply_auth: [u8; 32],
    member: Option<(Mid, [u8; 32], Vec<u8>)>,
    anchor: Option<AnchorRec>,
    info: Vec<u8>,
}

impl JoinV1 {
    fn into_wire(self) -> Result<JoinInfo, String> {
        let member = match self.member {
            Some((id, signing_key, profile)) => Some(MemberInfo {
                member_id: MemberId(id),
                signing_key,
                profile: Bounded::new(profile).map_err(|e| format!("profile: {e}"))?,
            }),
            None => None,
        };
        Ok(JoinInfo {
            sender_key: self.sender_key,
            reply_key_seed: self.reply_auth,
            member,
            anchor: self.anchor.map(ChainAnchor::from),
            info: Bounded::new(self.info).map_err(|e| format!("client info: {e}"))?,
        })
    }
}

fn join_v1_to_wire(bytes: &[u8]) -> Result<JoinInfo, String> {
    postcard::from_bytes::<JoinV1>(bytes)
        .map_err(|e| format!("join information: {e}"))?
        .into_wire()
}

fn invitation_v1_to_wire(bytes: &[u8]) -> Result<ConnInvitation, String> {
    let old: InviteV1 = postcard::from_bytes(bytes).map_err(|e| format!("invitation: {e}"))?;
    Ok(ConnInvitation {
        queue: QueueAddress::new(&old.server, &old.snd_id).map_err(|e| e.to_string())?,
        e2e_params: Bounded::new(old.params).map_err(|e| format!("e2e params: {e}"))?,
        anchor: old.anchor.map(ChainAnchor::from),
    })
}

fn wire_invitation(old: &Invitation) -> Result<Invitation, String> {
    let new = invitation_v1_to_wire(old.as_slice())?;
    Bounded::new(new.to_bytes()).map_err(|e| e.to_string())
}

/// A queued plaintext envelope (`AMessage`) with its invitation, if it
/// carries one, in the wire encoding; other envelopes as they are.
fn envelope_v1_to_wire(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let limits = Limits::default();
    let mut r = Reader::new(bytes);
    let Ok(msg) = AMessage::decode_with(&mut r, limits) else {
        // Not an envelope this code reads: left for the receiver to refuse.
        return Ok(bytes.to_vec());
    };
    let msg = match msg {
        AMessage::Group(GroupEnvelope::Group(mut gi)) => {
            gi.invitation = wire_invitation(&gi.invitation)?;
            AMessage::Group(GroupEnvelope::Group(gi))
        }
        AMessage::Group(GroupEnvelope::Inv {
            member_id,
            invitation,
        }) => AMessage::Group(GroupEnvelope::Inv {
            member_id,
            invitation: wire_invitation(&invitation)?,
        }),
        AMessage::Group(GroupEnvelope::Fwd { member, invitation }) => {
            AMessage::Group(GroupEnvelope::Fwd {
                member,
                invitation: wire_invitation(&invitation)?,
            })
        }
        AMessage::Group(GroupEnvelope::OpenInv { invitation }) => {
            AMessage::Group(GroupEnvelope::OpenInv {
                invitation: wire_invitation(&invitation)?,
            })
        }
        _ => return Ok(bytes.to_vec()),
    };
    Ok(msg.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smp_groups_wire::decode_all;

    fn invite_v1() -> Vec<u8> {
        postcard::to_allocvec(&InviteV1 {
            server: "smp://k@relay.test".to_owned(),
            snd_id: vec![5; 24],
            params: vec![1, 2, 3],
            anchor: Some(AnchorRec::At(4, [6; 32])),
        })
        .expect("encodes")
    }

    fn join_v1() -> JoinV1 {
        JoinV1 {
            sender_key: [1; 32],
            reply_auth: [2; 32],
            member: Some(([3; 16], [4; 32], b"me".to_vec())),
            anchor: Some(AnchorRec::Genesis),
            info: b"hi".to_vec(),
        }
    }

    #[test]
    fn every_value_starts_with_its_layout() {
        let key = Key::Conn(1);
        assert_eq!(encode(&key, &[9u8, 9]), Some(vec![2, 9, 9]));
        assert_eq!(encode(&Key::Meta, &()), Some(vec![1]));
        let (body, migrated) = open(&key, &[2, 9, 9], VERSIONED_SCHEMA).expect("opens");
        assert_eq!((body, migrated), (vec![9, 9], false));
    }

    #[test]
    fn unknown_and_missing_layouts_are_refused() {
        assert!(matches!(
            open(&Key::Meta, &[2, 0], VERSIONED_SCHEMA),
            Err(OpenError::Newer(2))
        ));
        assert!(matches!(
            open(&Key::Meta, &[0, 0], VERSIONED_SCHEMA),
            Err(OpenError::NoLayout)
        ));
        assert!(matches!(
            open(&Key::Meta, &[], VERSIONED_SCHEMA),
            Err(OpenError::NoLayout)
        ));
    }

    #[test]
    fn unversioned_records_are_layout_one_and_marked_for_rewriting() {
        let (body, migrated) = open(&Key::Op(3), &[7, 7], UNVERSIONED_SCHEMA).expect("opens");
        assert_eq!((body, migrated), (vec![7, 7], true));
    }

    #[test]
    fn an_invitation_of_layout_one_becomes_the_wire_encoding() {
        let new = invitation_v1_to_wire(&invite_v1()).expect("converts");
        assert_eq!(new.queue.relay(), "smp://k@relay.test");
        assert_eq!(new.queue.queue_id.as_slice(), &[5; 24]);
        assert_eq!(new.e2e_params.as_slice(), &[1, 2, 3]);
        assert_eq!(
            new.anchor.map(AnchorRec::from),
            Some(AnchorRec::At(4, [6; 32]))
        );
        assert!(invitation_v1_to_wire(&invite_v1()[..5]).is_err());
    }

    #[test]
    fn join_information_of_layout_one_becomes_the_wire_encoding() {
        let bytes = postcard::to_allocvec(&join_v1()).expect("encodes");
        let new = join_v1_to_wire(&bytes).expect("converts");
        assert_eq!(new.reply_key_seed, [2; 32]);
        let m = new.member.expect("member");
        assert_eq!((m.member_id.0, m.profile.as_slice()), ([3; 16], &b"me"[..]));
        assert_eq!(new.anchor, Some(ChainAnchor::Genesis));
        assert_eq!(new.info.as_slice(), b"hi");
    }

    #[test]
    fn queued_envelopes_carry_their_invitation_in_the_wire_encoding() {
        let old = AMessage::Group(GroupEnvelope::OpenInv {
            invitation: Bounded::new(invite_v1()).expect("fits"),
        })
        .to_bytes();
        let new = envelope_v1_to_wire(&old).expect("converts");
        let mut r = Reader::new(&new);
        let Ok(AMessage::Group(GroupEnvelope::OpenInv { invitation })) =
            AMessage::decode_with(&mut r, Limits::default())
        else {
            panic!("an OINV");
        };
        let inv = decode_all::<ConnInvitation>(invitation.as_slice()).expect("wire encoding");
        assert_eq!(inv.queue.relay(), "smp://k@relay.test");
        // Envelopes without an invitation are left as they are.
        let hello = AMessage::Hello.to_bytes();
        assert_eq!(envelope_v1_to_wire(&hello), Ok(hello));
    }

    #[test]
    fn a_connection_of_layout_one_is_migrated() {
        let mut conn = Conn::new(
            crate::state::Owner::Visible("c".into()),
            crate::state::ConnStatus::JoinQueue,
            0,
        );
        conn.join_info = postcard::to_allocvec(&join_v1()).expect("encodes");
        let old = postcard::to_allocvec(&conn).expect("encodes");
        let (body, migrated) = open(&Key::Conn(1), &old, UNVERSIONED_SCHEMA).expect("migrates");
        assert!(migrated);
        let new: Conn = postcard::from_bytes(&body).expect("a connection");
        let join = decode_all::<JoinInfo>(&new.join_info).expect("wire join information");
        assert_eq!(join.sender_key, [1; 32]);
        // The same record at layout 1 in a versioned store migrates the same.
        let mut versioned = vec![1];
        versioned.extend_from_slice(&old);
        let (again, _) = open(&Key::Conn(1), &versioned, VERSIONED_SCHEMA).expect("migrates");
        assert_eq!(again, body);
        // A broken one is refused with the step that failed.
        let mut bad = Conn::new(
            crate::state::Owner::Visible("c".into()),
            crate::state::ConnStatus::JoinQueue,
            0,
        );
        bad.join_info = vec![1, 2, 3];
        let bad = postcard::to_allocvec(&bad).expect("encodes");
        assert!(matches!(
            open(&Key::Conn(1), &bad, UNVERSIONED_SCHEMA),
            Err(OpenError::Migration { from: 1, .. })
        ));
    }
}
