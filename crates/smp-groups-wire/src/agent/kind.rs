//! The kind of every envelope two agents exchange, and its tag.
//!
//! Each tag is written once, in [`EnvelopeKind::tag`]: encoding takes the tag
//! from the kind of the value, and decoding finds the kind of the tag it reads
//! ([`EnvelopeKind::from_tag`]) before it reads the fields.

use std::fmt;

/// What one envelope carries: one variant per tag, plus the confirmation
/// (agent message `'I'`, which has no tag) so that every envelope a
/// connection sends has a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// The joining side's confirmation (no tag on the wire; named `CONF`).
    Confirmation,
    /// `HELLO`.
    Hello,
    /// `A_MSG`.
    UserMsg,
    /// `A_RCVD`.
    UserReceipts,
    /// `FRAG`.
    Fragment,
    /// `GROUP`.
    Group,
    /// `INTRO`.
    Intro,
    /// `LINTRO`.
    IntroLate,
    /// `INV`.
    Inv,
    /// `FWD`.
    Fwd,
    /// `OINV`.
    OpenInv,
    /// `MEM`.
    Mem,
    /// `LEFT`.
    Left,
    /// `OUT`.
    Out,
    /// `REM`.
    Rem,
    /// `REMT`.
    RemTell,
    /// `REMD`.
    Remd,
    /// `DEL`.
    Del,
    /// `DELD`.
    Deld,
    /// `MSG`.
    Msg,
    /// `CATCHUP`.
    CatchUp,
    /// `RCVD`.
    Rcvd,
    /// `RCVDS`.
    Receipts,
    /// `G_CHECK`.
    Check,
    /// `GINFO`.
    Info,
    /// `PROFILE`.
    Profile,
    /// `SMSG`.
    SignedMsg,
    /// `HIST`.
    History,
    /// `DMSG`.
    DirectMsg,
    /// `DRCVD`.
    DirectRcvd,
    /// `PROOF`.
    Proof,
}

impl EnvelopeKind {
    /// Every kind, in tag order of the grammar.
    pub const ALL: [Self; 31] = [
        Self::Confirmation,
        Self::Hello,
        Self::UserMsg,
        Self::UserReceipts,
        Self::Fragment,
        Self::Group,
        Self::Intro,
        Self::IntroLate,
        Self::Inv,
        Self::Fwd,
        Self::OpenInv,
        Self::Mem,
        Self::Left,
        Self::Out,
        Self::Rem,
        Self::RemTell,
        Self::Remd,
        Self::Del,
        Self::Deld,
        Self::Msg,
        Self::CatchUp,
        Self::Rcvd,
        Self::Receipts,
        Self::Check,
        Self::Info,
        Self::Profile,
        Self::SignedMsg,
        Self::History,
        Self::DirectMsg,
        Self::DirectRcvd,
        Self::Proof,
    ];

    /// The ASCII tag (`CONF` for the confirmation, which has none on the wire).
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Confirmation => "CONF",
            Self::Hello => "HELLO",
            Self::UserMsg => "A_MSG",
            Self::UserReceipts => "A_RCVD",
            Self::Fragment => "FRAG",
            Self::Group => "GROUP",
            Self::Intro => "INTRO",
            Self::IntroLate => "LINTRO",
            Self::Inv => "INV",
            Self::Fwd => "FWD",
            Self::OpenInv => "OINV",
            Self::Mem => "MEM",
            Self::Left => "LEFT",
            Self::Out => "OUT",
            Self::Rem => "REM",
            Self::RemTell => "REMT",
            Self::Remd => "REMD",
            Self::Del => "DEL",
            Self::Deld => "DELD",
            Self::Msg => "MSG",
            Self::CatchUp => "CATCHUP",
            Self::Rcvd => "RCVD",
            Self::Receipts => "RCVDS",
            Self::Check => "G_CHECK",
            Self::Info => "GINFO",
            Self::Profile => "PROFILE",
            Self::SignedMsg => "SMSG",
            Self::History => "HIST",
            Self::DirectMsg => "DMSG",
            Self::DirectRcvd => "DRCVD",
            Self::Proof => "PROOF",
        }
    }

    /// The kind of an envelope tag read from the wire (`CONF` is not one).
    pub fn from_tag(tag: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| *k != Self::Confirmation && k.tag().as_bytes() == tag)
    }

    /// The kind named by [`EnvelopeKind::tag`], `CONF` included.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == name)
    }

    /// True for tags with no fields after them.
    pub const fn is_bare(self) -> bool {
        matches!(
            self,
            Self::Hello | Self::Left | Self::Out | Self::Del | Self::Deld
        )
    }

    /// True for the group envelopes ([`super::GroupEnvelope`]).
    pub const fn is_group(self) -> bool {
        !matches!(
            self,
            Self::Confirmation | Self::Hello | Self::UserMsg | Self::UserReceipts | Self::Fragment
        )
    }
}

impl fmt::Display for EnvelopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_is_unique_and_maps_back() {
        let mut seen = std::collections::BTreeSet::new();
        for k in EnvelopeKind::ALL {
            assert!(seen.insert(k.tag()), "{k:?}: tag {} twice", k.tag());
            assert_eq!(EnvelopeKind::from_name(k.tag()), Some(k));
            let wire = EnvelopeKind::from_tag(k.tag().as_bytes());
            if k == EnvelopeKind::Confirmation {
                assert_eq!(wire, None);
            } else {
                assert_eq!(wire, Some(k));
            }
            assert!(k.tag().len() <= super::super::MAX_TAG_LEN);
        }
        assert_eq!(EnvelopeKind::from_tag(b"NOPE"), None);
        assert_eq!(EnvelopeKind::from_tag(b""), None);
    }
}
