//! What two agents exchange to set up a connection, besides the ratchet: the
//! invitation the inviter hands out ([`ConnInvitation`]), the queue the joiner
//! asks to be answered on ([`QueueAddress`], the `replyQueue` of `ConnInfo`)
//! and what the joiner tells the inviter ([`JoinInfo`], the `info` of the
//! joiner's `ConnInfo`).
//!
//! ```text
//! connInvitation = invVersion queueAddress e2eParams maybeAnchor
//! invVersion     = %x01                        ; INVITATION_VERSION
//! queueAddress   = relayAddress queueId
//! relayAddress   = Large                       ; <= 512 bytes, UTF-8, smp://keyHash@host[:port]
//! queueId        = Large                       ; 1..64 bytes, the relay's sender id
//! e2eParams      = Large                       ; <= 1024 bytes, ratchet parameters
//! maybeAnchor    = %s"0" / %s"1" chainAnchor
//! chainAnchor    = %s"G" / %s"A" extMsgId digest
//!                  ; genesis, or the last message before the chain goes on
//! joinInfo       = senderKey replyKeySeed maybeMember maybeAnchor clientInfo
//! senderKey      = 32OCTET                     ; Ed25519 key the inviter secures its queue with
//! replyKeySeed   = 32OCTET                     ; seed of the key the inviter sends to the reply queue with
//! maybeMember    = %s"0" / %s"1" memberInfo    ; the joiner as a group member
//! clientInfo     = Large                       ; <= 3072 bytes, opaque (pairwise connections)
//! ```

use super::envelope::MAX_E2E_PARAMS_LEN;
use super::group::{MAX_INVITATION_LEN, MAX_PROFILE_LEN, MemberInfo};
use super::ids::{Digest, MemberId, read_u64};
use super::message::{MAX_CONN_INFO_LEN, MAX_REPLY_QUEUE_LEN};
use super::{Bounded, ConnInfo};
use crate::{Decode, Encode, Error, Reader};

/// The version byte that starts every [`ConnInvitation`].
pub const INVITATION_VERSION: u8 = 1;
/// The longest relay address in an invitation or a reply queue.
pub const MAX_RELAY_ADDRESS_LEN: usize = 512;
/// The longest queue id in an invitation or a reply queue.
pub const MAX_QUEUE_ID_LEN: usize = 64;
/// The longest client information a joiner can send ([`JoinInfo::info`]).
pub const MAX_CLIENT_INFO_LEN: usize = 3072;

/// Where a queue is: its relay and the id senders address it by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueAddress {
    /// The relay's address, `smp://keyHash@host[:port]` (UTF-8).
    pub relay: Bounded<MAX_RELAY_ADDRESS_LEN>,
    /// The queue's sender id on that relay (1 to [`MAX_QUEUE_ID_LEN`] bytes).
    pub queue_id: Bounded<MAX_QUEUE_ID_LEN>,
}

impl QueueAddress {
    /// The largest encoding.
    pub const MAX_LEN: usize = 2 + MAX_RELAY_ADDRESS_LEN + 2 + MAX_QUEUE_ID_LEN;

    /// A queue address; fails when a field is too long or the id is empty.
    pub fn new(relay: &str, queue_id: &[u8]) -> Result<Self, Error> {
        let relay = bounded("relay address", relay.as_bytes())?;
        let queue_id = bounded("queue id", queue_id)?;
        if queue_id.is_empty() {
            return Err(Error::invalid("queue id", "empty"));
        }
        Ok(Self { relay, queue_id })
    }

    /// The relay's address as text.
    pub fn relay(&self) -> &str {
        // Checked to be UTF-8 when decoded or built.
        std::str::from_utf8(self.relay.as_slice()).unwrap_or("")
    }
}

/// `bytes` as a field of at most `MAX` bytes, named `what` when too long.
pub(crate) fn bounded<const MAX: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<Bounded<MAX>, Error> {
    if bytes.len() > MAX {
        return Err(Error::TooLong {
            what,
            len: bytes.len(),
            max: MAX,
        });
    }
    Bounded::new(bytes)
}

impl Encode for QueueAddress {
    fn encode(&self, out: &mut Vec<u8>) {
        self.relay.encode(out);
        self.queue_id.encode(out);
    }
}

impl<'a> Decode<'a> for QueueAddress {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let relay = Bounded::read(r, "relay address")?;
        if std::str::from_utf8(relay.as_slice()).is_err() {
            return Err(Error::invalid("relay address", "not UTF-8"));
        }
        let queue_id = Bounded::<MAX_QUEUE_ID_LEN>::read(r, "queue id")?;
        if queue_id.is_empty() {
            return Err(Error::invalid("queue id", "empty"));
        }
        Ok(Self { relay, queue_id })
    }
}

/// Where a member's group chain starts for one peer: at the genesis of the
/// group, or after the message `ext_msg_id` whose chain digest is `digest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainAnchor {
    /// The chain starts with the member's first message.
    Genesis,
    /// The chain goes on after this message.
    At {
        /// The last message before the chain goes on.
        ext_msg_id: u64,
        /// The chain digest at that message.
        digest: Digest,
    },
}

impl ChainAnchor {
    /// The largest encoding.
    pub const MAX_LEN: usize = 1 + 8 + Digest::LEN;
}

impl Encode for ChainAnchor {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Genesis => out.push(b'G'),
            Self::At { ext_msg_id, digest } => {
                out.push(b'A');
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                digest.encode(out);
            }
        }
    }
}

impl<'a> Decode<'a> for ChainAnchor {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        match r.u8("chain anchor")? {
            b'G' => Ok(Self::Genesis),
            b'A' => Ok(Self::At {
                ext_msg_id: read_u64(r, "anchor extMsgId")?,
                digest: Digest::decode(r)?,
            }),
            other => Err(Error::unknown_tag("chain anchor", &[other])),
        }
    }
}

/// An invitation to a connection: the inviter's queue, its ratchet
/// parameters and, for a hidden connection of a group, where its chain starts
/// for the joiner. A group envelope carries it in its `invitation` field; a
/// pairwise invitation is given to the client as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnInvitation {
    /// The queue the joiner sends its confirmation to.
    pub queue: QueueAddress,
    /// The inviter's ratchet (X3DH) parameters.
    pub e2e_params: Bounded<MAX_E2E_PARAMS_LEN>,
    /// The inviter's group chain anchor for the joiner (hidden connections).
    pub anchor: Option<ChainAnchor>,
}

impl ConnInvitation {
    /// The largest encoding.
    pub const MAX_LEN: usize =
        1 + QueueAddress::MAX_LEN + 2 + MAX_E2E_PARAMS_LEN + 1 + ChainAnchor::MAX_LEN;
}

const _: () = assert!(ConnInvitation::MAX_LEN <= MAX_INVITATION_LEN);
const _: () = assert!(QueueAddress::MAX_LEN <= MAX_REPLY_QUEUE_LEN);

impl Encode for ConnInvitation {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(INVITATION_VERSION);
        self.queue.encode(out);
        self.e2e_params.encode(out);
        self.anchor.encode(out);
    }
}

impl<'a> Decode<'a> for ConnInvitation {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let version = r.u8("invitation version")?;
        if version != INVITATION_VERSION {
            return Err(Error::invalid(
                "invitation version",
                format!("{version}, this agent reads {INVITATION_VERSION}"),
            ));
        }
        Ok(Self {
            queue: QueueAddress::decode(r)?,
            e2e_params: Bounded::read(r, "e2e params")?,
            anchor: r.maybe("chain anchor", ChainAnchor::decode)?,
        })
    }
}

/// What the joiner of a connection tells the inviter, inside its encrypted
/// `ConnInfo`: the keys of both queues' senders, and who it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JoinInfo {
    /// The Ed25519 public key the inviter secures its queue with (the joiner
    /// sends with its secret).
    pub sender_key: [u8; 32],
    /// The seed of the Ed25519 key the inviter sends to the joiner's reply
    /// queue with.
    pub reply_key_seed: [u8; 32],
    /// The joiner as a group member: its id, signing key and profile (hidden
    /// connections of a group).
    pub member: Option<MemberInfo>,
    /// The joiner's group chain anchor for the inviter.
    pub anchor: Option<ChainAnchor>,
    /// Information for the client (pairwise connections).
    pub info: Bounded<MAX_CLIENT_INFO_LEN>,
}

impl JoinInfo {
    /// The largest encoding.
    pub const MAX_LEN: usize = 32
        + 32
        + 1
        + (MemberId::LEN + 32 + 2 + MAX_PROFILE_LEN)
        + 1
        + ChainAnchor::MAX_LEN
        + 2
        + MAX_CLIENT_INFO_LEN;
}

const _: () = assert!(JoinInfo::MAX_LEN <= MAX_CONN_INFO_LEN);

impl Encode for JoinInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sender_key);
        out.extend_from_slice(&self.reply_key_seed);
        self.member.encode(out);
        self.anchor.encode(out);
        self.info.encode(out);
    }
}

impl<'a> Decode<'a> for JoinInfo {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Self {
            sender_key: r.array("sender key")?,
            reply_key_seed: r.array("reply key seed")?,
            member: r.maybe("member", MemberInfo::decode)?,
            anchor: r.maybe("chain anchor", ChainAnchor::decode)?,
            info: Bounded::read(r, "client info")?,
        })
    }
}

impl ConnInfo {
    /// The `ConnInfo` a joiner sends: where to answer it, and who it is.
    pub fn of_joiner(reply: &QueueAddress, join: &JoinInfo) -> Self {
        Self {
            // Both fit by the assertions above.
            reply_queue: Bounded::new(reply.to_bytes()).ok(),
            info: Bounded::new(join.to_bytes()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Profile;
    use crate::decode_all;

    fn invitation() -> ConnInvitation {
        ConnInvitation {
            queue: QueueAddress::new("smp://a@relay.test", &[7; 24]).expect("fits"),
            e2e_params: Bounded::new(vec![1, 2, 3]).expect("fits"),
            anchor: Some(ChainAnchor::At {
                ext_msg_id: 5,
                digest: Digest([9; 32]),
            }),
        }
    }

    fn join() -> JoinInfo {
        JoinInfo {
            sender_key: [1; 32],
            reply_key_seed: [2; 32],
            member: Some(MemberInfo {
                member_id: MemberId([3; 16]),
                signing_key: [4; 32],
                profile: Profile::new(b"p".to_vec()).expect("fits"),
            }),
            anchor: Some(ChainAnchor::Genesis),
            info: Bounded::new(b"hi".to_vec()).expect("fits"),
        }
    }

    #[test]
    fn invitation_bytes_follow_the_grammar() {
        let bytes = invitation().to_bytes();
        let mut expected = vec![1, 0, 18];
        expected.extend_from_slice(b"smp://a@relay.test");
        expected.extend_from_slice(&[0, 24]);
        expected.extend_from_slice(&[7; 24]);
        expected.extend_from_slice(&[0, 3, 1, 2, 3, b'1', b'A', 0, 0, 0, 0, 0, 0, 0, 5]);
        expected.extend_from_slice(&[9; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(decode_all::<ConnInvitation>(&bytes), Ok(invitation()));
    }

    #[test]
    fn join_info_round_trips_and_refuses_what_is_cut() {
        let bytes = join().to_bytes();
        assert_eq!(&bytes[..64], [[1u8; 32], [2; 32]].concat().as_slice());
        assert_eq!(decode_all::<JoinInfo>(&bytes), Ok(join()));
        for n in 0..bytes.len() {
            assert!(decode_all::<JoinInfo>(&bytes[..n]).is_err(), "cut at {n}");
        }
        let without = JoinInfo {
            member: None,
            anchor: None,
            ..join()
        };
        assert_eq!(decode_all::<JoinInfo>(&without.to_bytes()), Ok(without));
    }

    #[test]
    fn another_invitation_version_is_refused() {
        let mut bytes = invitation().to_bytes();
        bytes[0] = 2;
        assert!(matches!(
            decode_all::<ConnInvitation>(&bytes),
            Err(Error::InvalidValue {
                what: "invitation version",
                ..
            })
        ));
    }

    #[test]
    fn empty_queue_ids_and_bad_relay_text_are_refused() {
        assert!(QueueAddress::new("smp://a@relay.test", &[]).is_err());
        let mut bytes = QueueAddress::new("smp://x", &[1]).expect("fits").to_bytes();
        bytes[2] = 0xff;
        assert!(decode_all::<QueueAddress>(&bytes).is_err());
        let mut empty = vec![0, 1, b'x', 0, 0];
        assert!(decode_all::<QueueAddress>(&empty).is_err());
        empty.truncate(3);
        assert!(decode_all::<QueueAddress>(&empty).is_err());
    }

    #[test]
    fn the_largest_values_fit_their_fields() {
        let long = ConnInvitation {
            queue: QueueAddress::new(&"r".repeat(MAX_RELAY_ADDRESS_LEN), &[1; MAX_QUEUE_ID_LEN])
                .expect("fits"),
            e2e_params: Bounded::new(vec![0; MAX_E2E_PARAMS_LEN]).expect("fits"),
            anchor: Some(ChainAnchor::At {
                ext_msg_id: u64::MAX,
                digest: Digest([0; 32]),
            }),
        };
        assert_eq!(long.to_bytes().len(), ConnInvitation::MAX_LEN);
        let big = JoinInfo {
            member: Some(MemberInfo {
                member_id: MemberId([0; 16]),
                signing_key: [0; 32],
                profile: Profile::new(vec![0; MAX_PROFILE_LEN]).expect("fits"),
            }),
            anchor: Some(ChainAnchor::At {
                ext_msg_id: 1,
                digest: Digest([0; 32]),
            }),
            info: Bounded::new(vec![0; MAX_CLIENT_INFO_LEN]).expect("fits"),
            ..join()
        };
        assert_eq!(big.to_bytes().len(), JoinInfo::MAX_LEN);
        let ci = ConnInfo::of_joiner(&long.queue, &big);
        assert_eq!(ci.info.len(), JoinInfo::MAX_LEN);
        assert!(ci.reply_queue.is_some());
    }
}
