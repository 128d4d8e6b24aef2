//! Group envelopes: the group RFC's `GROUP`, `MEM`, `LEFT`, `OUT`, `REM`, `REMD`,
//! `DEL`, `DELD`, the group message `MSG`, its receipt `RCVD`, the introduction
//! envelopes `INTRO` / `INV` / `FWD`, open invitations `OINV`, `G_CHECK`, the
//! updates of the group information and member profiles `GINFO` / `PROFILE`,
//! signed messages `SMSG`, history for new members `HIST`, the direct
//! message to one member `DMSG` with its receipt `DRCVD`, and the re-broadcast
//! signed receipts `PROOF`.
//!
//! They travel as the body of an agent message on a group connection (the visible
//! connection for `GROUP`, hidden per-member connections for the rest); see
//! [`super::AMessage`] for the tag framing.

use super::bounded::{Bounded, Tail};
use super::gcheck::GCheck;
use super::ids::{Digest, GroupId, MemberId, read_u64};
use super::kind::EnvelopeKind;
use super::proof::{SignedReceipts, encode_units, read_units};
use crate::{Decode, Encode, Error, Reader};

/// The longest invitation to a connection (opaque to this layer).
pub const MAX_INVITATION_LEN: usize = 2048;
/// The longest group information (opaque to the agent, set by the client).
pub const MAX_GROUP_INFO_LEN: usize = 8192;
/// The longest member profile (opaque to the agent).
pub const MAX_PROFILE_LEN: usize = 4096;
/// The longest message content, after reassembly of fragments.
pub const MAX_CONTENT_LEN: usize = 1 << 20;
/// The most receipts in one `RCVDS` envelope.
pub const MAX_GROUP_RECEIPTS: usize = 256;

/// An invitation to a (hidden) connection, opaque here: the connection layer
/// encodes and parses it.
pub type Invitation = Bounded<MAX_INVITATION_LEN>;
/// Group information, opaque to the agent.
pub type GroupInfo = Bounded<MAX_GROUP_INFO_LEN>;
/// A member profile, opaque to the agent.
pub type Profile = Bounded<MAX_PROFILE_LEN>;
/// Message content (the rest of the envelope).
pub type Content = Tail<MAX_CONTENT_LEN>;

/// What members learn about a member when it is introduced: its member id, its
/// group signing key and its profile.
///
/// ```text
/// memberInfo = memberId signingKey profile
/// memberId   = 16OCTET
/// signingKey = 32OCTET      ; Ed25519 public key for receipt signatures
/// profile    = Large        ; at most MAX_PROFILE_LEN
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    /// The member's group-scoped id.
    pub member_id: MemberId,
    /// The member's group signing key (Ed25519 public key).
    pub signing_key: [u8; 32],
    /// The member's profile, opaque to the agent.
    pub profile: Profile,
}

impl Encode for MemberInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        self.member_id.encode(out);
        out.extend_from_slice(&self.signing_key);
        self.profile.encode(out);
    }
}

impl<'a> Decode<'a> for MemberInfo {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Self {
            member_id: MemberId::decode(r)?,
            signing_key: r.array("signing key")?,
            profile: Profile::read(r, "profile")?,
        })
    }
}

/// `GROUP`: an invitation to join a group, sent by the introducer over the
/// connection it has with the invitee.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupInvitation {
    /// The group.
    pub group_id: GroupId,
    /// The member id the introducer assigned to the invitee (`midB`).
    pub member_id: MemberId,
    /// The introducer: its member id, signing key and profile.
    pub introducer: MemberInfo,
    /// The invitation to the hidden connection with the introducer (`g:inv`).
    pub invitation: Invitation,
    /// The group information (`gInfo`).
    pub group_info: GroupInfo,
}

/// A group envelope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupEnvelope {
    /// `GROUP`: invitation to join the group.
    Group(GroupInvitation),
    /// `INTRO`: the introducer tells an existing member about a new member.
    Intro(MemberInfo),
    /// `LINTRO`: a late introduction. The introducer learned of the receiver
    /// only after it had started adding the new member, so the two joined
    /// concurrently and each may have sent group messages the other never
    /// got: the receiver answers as for `INTRO` and also replays to the new
    /// member the messages it sent since its own join completed.
    IntroLate(MemberInfo),
    /// `INV`: an existing member answers `INTRO` with an invitation for the new member.
    Inv {
        /// The new member the invitation is for.
        member_id: MemberId,
        /// The invitation to a hidden connection with the existing member.
        invitation: Invitation,
    },
    /// `FWD`: the introducer forwards an existing member's invitation to the new member.
    Fwd {
        /// The existing member who made the invitation.
        member: MemberInfo,
        /// Its invitation.
        invitation: Invitation,
    },
    /// `OINV`: an open invitation, handed out up front, that the receiver may give
    /// to one member it adds later (the cheaper "open invitations" variant).
    OpenInv {
        /// The invitation.
        invitation: Invitation,
    },
    /// `MEM`: the member is connected to all members.
    Mem(MemberId),
    /// `LEFT`: the sender left the group.
    Left,
    /// `OUT`: the receiver is removed from the group.
    Out,
    /// `REM`: remove the member from the group.
    Rem(MemberId),
    /// `REMT`: as `REM`, from a remover whose own connection with the member
    /// is not established (its `OUT` may never reach it): the receiver also
    /// tells the member `OUT`.
    RemTell(MemberId),
    /// `REMD`: the member is removed.
    Remd(MemberId),
    /// `DEL`: the group is deleted.
    Del,
    /// `DELD`: the group deletion is confirmed.
    Deld,
    /// `MSG`: a group message.
    Msg {
        /// The sender's group-wide message id, the same for every member.
        ext_msg_id: u64,
        /// The sender's clock when its client sent the message, in
        /// milliseconds (the agent counts from the Unix epoch); the same for
        /// every member. Not part of the group chain (which hashes the
        /// content): each connection's chain covers it.
        snd_ts: u64,
        /// The message.
        content: Content,
    },
    /// `CATCHUP`: the sender's messages after `ext_msg_id` (whose chain digest
    /// is `digest`), up to the chain anchor it gave the receiver first, follow
    /// on this connection: a member that joined concurrently catches up.
    CatchUp {
        /// The last of the sender's ids before the first message that follows.
        ext_msg_id: u64,
        /// The sender's chain digest at `ext_msg_id`.
        digest: Digest,
    },
    /// `RCVD`: receipt for a group message.
    Rcvd {
        /// The sender's group-wide id of the received message.
        ext_msg_id: u64,
        /// The hash the receiver computed.
        digest: Digest,
        /// Optional Ed25519 signature by the receiver's group signing key.
        sig: Option<[u8; 64]>,
    },
    /// `RCVDS`: receipts for several group messages of one sender, with one
    /// signature over all of them.
    Receipts {
        /// The receipted messages: the sender's group-wide id and the hash the
        /// receiver computed; 1 to [`MAX_GROUP_RECEIPTS`] of them.
        receipts: Vec<(u64, Digest)>,
        /// Optional Ed25519 signature by the receiver's group signing key.
        sig: Option<[u8; 64]>,
    },
    /// `G_CHECK`: the group integrity check, in the RFC's text syntax.
    Check(GCheck),
    /// `DMSG`: a direct message to this one member (not a group message: it
    /// is in no group chain and no `G_CHECK`).
    DirectMsg {
        /// The sender's id of the message, 1, 2, 3, ... for each member it
        /// sends direct messages to (the pair's own ordering).
        msg_id: u64,
        /// The sender's clock when its client sent the message, in
        /// milliseconds since the Unix epoch.
        snd_ts: u64,
        /// The message.
        content: Content,
    },
    /// `DRCVD`: the receipt for a direct message.
    DirectRcvd {
        /// The sender's id of the received message (`DMSG` `msg_id`).
        msg_id: u64,
        /// The hash of the content the receiver got.
        digest: Digest,
    },
    /// `GINFO`: the group information (`gInfo`) as set by `author` at
    /// `ts`. Sent by the author to every member; sent again by an existing
    /// member to a member that newly connected to it, so that a member who
    /// joins later gets the current value. Receivers keep the value with the
    /// greatest `(ts, author)` (last writer wins).
    Info {
        /// The author's clock when it set the value, in milliseconds.
        ts: u64,
        /// The member who set it.
        author: MemberId,
        /// The group information.
        info: GroupInfo,
    },
    /// `PROFILE`: the sender's own member profile, as it set it at `ts`.
    /// Receivers keep the profile with the greatest `ts` (ties: the greater
    /// bytes).
    Profile {
        /// The sender's clock when it set the profile, in milliseconds.
        ts: u64,
        /// The profile, opaque to the agent.
        profile: Profile,
    },
    /// `SMSG`: a group message signed by its sender's group signing key,
    /// so that a member may later hand it to a member it adds (`HIST`) and
    /// the new member can check who wrote it. Otherwise as `MSG`.
    SignedMsg {
        /// The sender's group-wide message id.
        ext_msg_id: u64,
        /// The sender's clock when its client sent the message.
        snd_ts: u64,
        /// The sender's Ed25519 signature (see `smp_groups_core` history
        /// sharing for the signed bytes).
        sig: [u8; 64],
        /// The message.
        content: Content,
    },
    /// `HIST`: a group message sent before the receiver joined, handed to it
    /// by the member that added it, with its original sender's signature.
    /// It is history: it enters no chain and gets no receipt.
    History {
        /// The original sender.
        sender: MemberId,
        /// The sender's group-wide message id.
        ext_msg_id: u64,
        /// The sender's clock when its client sent the message.
        snd_ts: u64,
        /// The original sender's signature.
        sig: [u8; 64],
        /// The message.
        content: Content,
    },
    /// `PROOF`: signed receipts for the sender's messages, as their signers
    /// sent them, re-broadcast by the sender to the other members (1 to
    /// [`super::MAX_PROOF_UNITS`]).
    Proof {
        /// The signed receipts.
        units: Vec<SignedReceipts>,
    },
}

impl GroupEnvelope {
    /// The kind of this envelope.
    pub fn kind(&self) -> EnvelopeKind {
        match self {
            Self::Group(_) => EnvelopeKind::Group,
            Self::Intro(_) => EnvelopeKind::Intro,
            Self::IntroLate(_) => EnvelopeKind::IntroLate,
            Self::Inv { .. } => EnvelopeKind::Inv,
            Self::Fwd { .. } => EnvelopeKind::Fwd,
            Self::OpenInv { .. } => EnvelopeKind::OpenInv,
            Self::Mem(_) => EnvelopeKind::Mem,
            Self::Left => EnvelopeKind::Left,
            Self::Out => EnvelopeKind::Out,
            Self::Rem(_) => EnvelopeKind::Rem,
            Self::RemTell(_) => EnvelopeKind::RemTell,
            Self::Remd(_) => EnvelopeKind::Remd,
            Self::Del => EnvelopeKind::Del,
            Self::Deld => EnvelopeKind::Deld,
            Self::Msg { .. } => EnvelopeKind::Msg,
            Self::CatchUp { .. } => EnvelopeKind::CatchUp,
            Self::Rcvd { .. } => EnvelopeKind::Rcvd,
            Self::Receipts { .. } => EnvelopeKind::Receipts,
            Self::Check(_) => EnvelopeKind::Check,
            Self::DirectMsg { .. } => EnvelopeKind::DirectMsg,
            Self::DirectRcvd { .. } => EnvelopeKind::DirectRcvd,
            Self::Info { .. } => EnvelopeKind::Info,
            Self::Profile { .. } => EnvelopeKind::Profile,
            Self::SignedMsg { .. } => EnvelopeKind::SignedMsg,
            Self::History { .. } => EnvelopeKind::History,
            Self::Proof { .. } => EnvelopeKind::Proof,
        }
    }

    /// The ASCII tag.
    pub fn tag(&self) -> &'static [u8] {
        self.kind().tag().as_bytes()
    }

    /// Appends the fields that follow `tag SP` (nothing for bare tags).
    pub(crate) fn encode_fields(&self, out: &mut Vec<u8>) {
        match self {
            Self::Group(g) => {
                g.group_id.encode(out);
                g.member_id.encode(out);
                g.introducer.encode(out);
                g.invitation.encode(out);
                g.group_info.encode(out);
            }
            Self::Intro(info) | Self::IntroLate(info) => info.encode(out),
            Self::Inv {
                member_id,
                invitation,
            } => {
                member_id.encode(out);
                invitation.encode(out);
            }
            Self::Fwd { member, invitation } => {
                member.encode(out);
                invitation.encode(out);
            }
            Self::OpenInv { invitation } => invitation.encode(out),
            Self::Mem(m) | Self::Rem(m) | Self::RemTell(m) | Self::Remd(m) => m.encode(out),
            Self::Left | Self::Out | Self::Del | Self::Deld => {}
            Self::Msg {
                ext_msg_id,
                snd_ts,
                content,
            } => {
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                out.extend_from_slice(&snd_ts.to_be_bytes());
                content.encode(out);
            }
            Self::CatchUp { ext_msg_id, digest } => {
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                digest.encode(out);
            }
            Self::Rcvd {
                ext_msg_id,
                digest,
                sig,
            } => {
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                digest.encode(out);
                encode_signature(sig.as_ref(), out);
            }
            Self::Receipts { receipts, sig } => {
                // Encoding writes at most MAX_GROUP_RECEIPTS (a u16); callers split.
                let n = receipts.len().min(MAX_GROUP_RECEIPTS);
                out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
                for (id, digest) in receipts.iter().take(n) {
                    out.extend_from_slice(&id.to_be_bytes());
                    digest.encode(out);
                }
                encode_signature(sig.as_ref(), out);
            }
            Self::DirectMsg {
                msg_id,
                snd_ts,
                content,
            } => {
                out.extend_from_slice(&msg_id.to_be_bytes());
                out.extend_from_slice(&snd_ts.to_be_bytes());
                content.encode(out);
            }
            Self::DirectRcvd { msg_id, digest } => {
                out.extend_from_slice(&msg_id.to_be_bytes());
                digest.encode(out);
            }
            Self::Proof { units } => encode_units(units, out),
            Self::Info { ts, author, info } => {
                out.extend_from_slice(&ts.to_be_bytes());
                author.encode(out);
                info.encode(out);
            }
            Self::Profile { ts, profile } => {
                out.extend_from_slice(&ts.to_be_bytes());
                profile.encode(out);
            }
            Self::SignedMsg {
                ext_msg_id,
                snd_ts,
                sig,
                content,
            } => {
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                out.extend_from_slice(&snd_ts.to_be_bytes());
                out.extend_from_slice(sig);
                content.encode(out);
            }
            Self::History {
                sender,
                ext_msg_id,
                snd_ts,
                sig,
                content,
            } => {
                sender.encode(out);
                out.extend_from_slice(&ext_msg_id.to_be_bytes());
                out.extend_from_slice(&snd_ts.to_be_bytes());
                out.extend_from_slice(sig);
                content.encode(out);
            }
            Self::Check(c) => {
                // G_CHECK is text: the tag and SP are written by the caller.
                let text = c.to_bytes();
                out.extend_from_slice(text.get(GCHECK_PREFIX_LEN..).unwrap_or(&[]));
            }
        }
    }

    /// Reads the fields after `tag SP` of an envelope of group kind `kind`;
    /// `None` if `kind` is not a group envelope's.
    pub(crate) fn read_fields(
        kind: EnvelopeKind,
        r: &mut Reader<'_>,
    ) -> Option<Result<Self, Error>> {
        let read = |r: &mut Reader<'_>| -> Result<Option<Self>, Error> {
            Ok(Some(match kind {
                EnvelopeKind::Group => Self::Group(GroupInvitation {
                    group_id: GroupId::decode(r)?,
                    member_id: MemberId::decode(r)?,
                    introducer: MemberInfo::decode(r)?,
                    invitation: Invitation::read(r, "invitation")?,
                    group_info: GroupInfo::read(r, "group info")?,
                }),
                EnvelopeKind::Intro => Self::Intro(MemberInfo::decode(r)?),
                EnvelopeKind::IntroLate => Self::IntroLate(MemberInfo::decode(r)?),
                EnvelopeKind::Inv => Self::Inv {
                    member_id: MemberId::decode(r)?,
                    invitation: Invitation::read(r, "invitation")?,
                },
                EnvelopeKind::Fwd => Self::Fwd {
                    member: MemberInfo::decode(r)?,
                    invitation: Invitation::read(r, "invitation")?,
                },
                EnvelopeKind::OpenInv => Self::OpenInv {
                    invitation: Invitation::read(r, "invitation")?,
                },
                EnvelopeKind::Mem => Self::Mem(MemberId::decode(r)?),
                EnvelopeKind::Rem => Self::Rem(MemberId::decode(r)?),
                EnvelopeKind::RemTell => Self::RemTell(MemberId::decode(r)?),
                EnvelopeKind::Remd => Self::Remd(MemberId::decode(r)?),
                EnvelopeKind::Left => Self::Left,
                EnvelopeKind::Out => Self::Out,
                EnvelopeKind::Del => Self::Del,
                EnvelopeKind::Deld => Self::Deld,
                EnvelopeKind::Msg => Self::Msg {
                    ext_msg_id: read_u64(r, "extMsgId")?,
                    snd_ts: read_u64(r, "sndTs")?,
                    content: Content::read(r, "message content")?,
                },
                EnvelopeKind::CatchUp => Self::CatchUp {
                    ext_msg_id: read_u64(r, "extMsgId")?,
                    digest: Digest::decode(r)?,
                },
                EnvelopeKind::Rcvd => Self::Rcvd {
                    ext_msg_id: read_u64(r, "extMsgId")?,
                    digest: Digest::decode(r)?,
                    sig: r.maybe("signature", |r| r.array("signature"))?,
                },
                EnvelopeKind::Receipts => {
                    let n = usize::from(r.u16("receipt count")?);
                    if n == 0 || n > MAX_GROUP_RECEIPTS {
                        return Err(Error::TooLong {
                            what: "receipts",
                            len: n,
                            max: MAX_GROUP_RECEIPTS,
                        });
                    }
                    let mut receipts = Vec::with_capacity(n);
                    for _ in 0..n {
                        receipts.push((read_u64(r, "extMsgId")?, Digest::decode(r)?));
                    }
                    Self::Receipts {
                        receipts,
                        sig: r.maybe("signature", |r| r.array("signature"))?,
                    }
                }
                EnvelopeKind::Proof => Self::Proof {
                    units: read_units(r)?,
                },
                EnvelopeKind::DirectMsg => Self::DirectMsg {
                    msg_id: read_u64(r, "direct msgId")?,
                    snd_ts: read_u64(r, "sndTs")?,
                    content: Content::read(r, "message content")?,
                },
                EnvelopeKind::DirectRcvd => Self::DirectRcvd {
                    msg_id: read_u64(r, "direct msgId")?,
                    digest: Digest::decode(r)?,
                },
                EnvelopeKind::Info => Self::Info {
                    ts: read_u64(r, "ts")?,
                    author: MemberId::decode(r)?,
                    info: GroupInfo::read(r, "group info")?,
                },
                EnvelopeKind::Profile => Self::Profile {
                    ts: read_u64(r, "ts")?,
                    profile: Profile::read(r, "profile")?,
                },
                EnvelopeKind::SignedMsg => Self::SignedMsg {
                    ext_msg_id: read_u64(r, "extMsgId")?,
                    snd_ts: read_u64(r, "sndTs")?,
                    sig: r.array("signature")?,
                    content: Content::read(r, "message content")?,
                },
                EnvelopeKind::History => Self::History {
                    sender: MemberId::decode(r)?,
                    ext_msg_id: read_u64(r, "extMsgId")?,
                    snd_ts: read_u64(r, "sndTs")?,
                    sig: r.array("signature")?,
                    content: Content::read(r, "message content")?,
                },
                EnvelopeKind::Check => Self::Check(GCheck::parse_entries(r.rest())?),
                _ => return Ok(None),
            }))
        };
        read(r).transpose()
    }
}

/// `signature = "0" / "1" 64OCTET`: an optional Ed25519 signature.
fn encode_signature(sig: Option<&[u8; 64]>, out: &mut Vec<u8>) {
    match sig {
        None => out.push(b'0'),
        Some(s) => {
            out.push(b'1');
            out.extend_from_slice(s);
        }
    }
}

/// `G_CHECK` plus the separating space.
const GCHECK_PREFIX_LEN: usize = 8;
