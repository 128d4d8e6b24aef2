//! `G_CHECK`: the periodic group integrity check, in the group RFC's text syntax.
//!
//! ```text
//! gcheck = "G_CHECK" SP entry *("," entry) [SP members]
//! entry  = memId ":" msgId ":" hash ":" status
//! members = "M=" count ":" hash  ; the sender's member set, ourselves included
//! count  = 1*3DIGIT        ; decimal 1..256, no leading zeros
//! memId  = 22base64url     ; 16-byte member id, unpadded base64url
//! msgId  = 1*20DIGIT       ; the sender's group-wide extMsgId, decimal u64, no leading zeros
//! hash   = 43base64url     ; 32-byte digest, unpadded base64url
//! status = "ok" / "gap" / "bad"
//! ```

use std::fmt;

use super::ids::{Digest, MemberId};
use crate::base64url;
use crate::{Decode, Encode, Error, Reader};

/// The most entries one `G_CHECK` may carry.
pub const MAX_GCHECK_ENTRIES: usize = 256;

/// The prefix of the member set field.
const MEMBERS_PREFIX: &[u8] = b"M=";

/// The envelope tag.
const GCHECK_TAG: &[u8] = super::EnvelopeKind::Check.tag().as_bytes();

/// The longest decimal text of a u64.
const MAX_U64_DIGITS: usize = 20;

/// A member's view of one sender: how far it has received and whether that agrees
/// with what it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GCheckStatus {
    /// Everything up to `msg_id` was received and checks out.
    Ok,
    /// Some messages before `msg_id` are missing.
    Gap,
    /// The reporter found an integrity violation for this sender.
    Bad,
}

impl GCheckStatus {
    /// The text form: `ok`, `gap` or `bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Gap => "gap",
            Self::Bad => "bad",
        }
    }

    fn parse(text: &[u8]) -> Result<Self, Error> {
        match text {
            b"ok" => Ok(Self::Ok),
            b"gap" => Ok(Self::Gap),
            b"bad" => Ok(Self::Bad),
            other => Err(Error::unknown_tag("G_CHECK status", other)),
        }
    }
}

/// One sender as seen by the member sending the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GCheckEntry {
    /// The sender.
    pub member: MemberId,
    /// The sender's group-wide id (`extMsgId`) of the last message received from it.
    pub msg_id: u64,
    /// The digest (hash chain) over everything received from the sender up to `msg_id`.
    pub digest: Digest,
    /// The reporter's verdict.
    pub status: GCheckStatus,
}

/// The member set of the sender of a check, as it sees it at a stable point
/// (no membership change in progress): how many members, itself included,
/// and a digest of their ids (computed by the caller; opaque here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GCheckMembers {
    /// The number of members, 1 to [`MAX_GCHECK_ENTRIES`].
    pub count: u16,
    /// The digest of the member set.
    pub digest: Digest,
}

/// A `G_CHECK` envelope: 1 to [`MAX_GCHECK_ENTRIES`] entries, and optionally
/// the sender's member set.
///
/// The fields are public; [`GCheck::new`] checks the entry count, and encoding a
/// value built directly with 0 or too many entries, or a member count out of
/// range, yields text that decoding rejects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GCheck {
    /// The entries, one per sender.
    pub entries: Vec<GCheckEntry>,
    /// The sender's member set (`None`: not given, e.g. while a membership
    /// change is in progress at the sender).
    pub members: Option<GCheckMembers>,
}

impl GCheck {
    /// A check with `entries`, which must number 1 to [`MAX_GCHECK_ENTRIES`],
    /// and no member set.
    pub fn new(entries: Vec<GCheckEntry>) -> Result<Self, Error> {
        check_count(entries.len())?;
        Ok(Self {
            entries,
            members: None,
        })
    }

    /// This check with the member set `members` (its count must be 1 to
    /// [`MAX_GCHECK_ENTRIES`]).
    pub fn with_members(mut self, members: GCheckMembers) -> Result<Self, Error> {
        check_member_count(u64::from(members.count))?;
        self.members = Some(members);
        Ok(self)
    }

    /// The text, `G_CHECK memId:msgId:hash:status,...`.
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }

    /// Parses the full text, including the `G_CHECK ` prefix.
    pub fn parse(text: &[u8]) -> Result<Self, Error> {
        crate::decode_all(text)
    }

    /// Parses what follows `G_CHECK SP`, up to the end of `text`: the
    /// entries, then optionally `SP` and the member set.
    pub(crate) fn parse_entries(text: &[u8]) -> Result<Self, Error> {
        let mut parts = text.splitn(3, |&b| b == b' ');
        let entries_text = parts.next().unwrap_or_default();
        let members = match parts.next() {
            None => None,
            Some(m) => Some(parse_members(m)?),
        };
        if let Some(extra) = parts.next() {
            return Err(Error::TrailingBytes {
                what: "G_CHECK",
                count: extra.len() + 1,
            });
        }
        let mut check = Self::parse_entry_list(entries_text)?;
        check.members = members;
        Ok(check)
    }

    /// Parses the comma-separated entries.
    fn parse_entry_list(text: &[u8]) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for item in text.split(|&b| b == b',') {
            if entries.len() == MAX_GCHECK_ENTRIES {
                return Err(Error::TooLong {
                    what: "G_CHECK entries",
                    len: text.split(|&b| b == b',').count(),
                    max: MAX_GCHECK_ENTRIES,
                });
            }
            entries.push(parse_entry(item)?);
        }
        Ok(Self {
            entries,
            members: None,
        })
    }
}

fn check_member_count(n: u64) -> Result<(), Error> {
    if n == 0 || n > MAX_GCHECK_ENTRIES as u64 {
        return Err(Error::invalid(
            "G_CHECK member count",
            "must be 1 to 256 (MAX_GCHECK_ENTRIES)",
        ));
    }
    Ok(())
}

fn parse_members(text: &[u8]) -> Result<GCheckMembers, Error> {
    let rest = text
        .strip_prefix(MEMBERS_PREFIX)
        .ok_or_else(|| Error::unknown_tag("G_CHECK field", text))?;
    let mut parts = rest.splitn(2, |&b| b == b':');
    let count_text = parts.next().unwrap_or_default();
    let hash = parts.next().ok_or(Error::Truncated {
        what: "G_CHECK member set hash",
        needed: 1,
        available: 0,
    })?;
    // At most 3 digits are read: the count is at most 256.
    if count_text.len() > 3 {
        return Err(Error::invalid(
            "G_CHECK member count",
            "must be 1 to 256 (MAX_GCHECK_ENTRIES)",
        ));
    }
    let count = parse_u64(count_text, "G_CHECK member count")?;
    check_member_count(count)?;
    let count = u16::try_from(count)
        .map_err(|_| Error::invalid("G_CHECK member count", "must be 1 to 256"))?;
    let digest = Digest::from_base64url(hash)?;
    Ok(GCheckMembers { count, digest })
}

fn check_count(n: usize) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::invalid(
            "G_CHECK entries",
            "at least one entry is required",
        ));
    }
    if n > MAX_GCHECK_ENTRIES {
        return Err(Error::TooLong {
            what: "G_CHECK entries",
            len: n,
            max: MAX_GCHECK_ENTRIES,
        });
    }
    Ok(())
}

fn parse_entry(item: &[u8]) -> Result<GCheckEntry, Error> {
    let mut parts = item.split(|&b| b == b':');
    let mut next = |what: &'static str| {
        parts.next().ok_or(Error::Truncated {
            what,
            needed: 1,
            available: 0,
        })
    };
    let member = MemberId::from_base64url(next("G_CHECK memId")?)?;
    let msg_id = parse_u64(next("G_CHECK msgId")?, "G_CHECK msgId")?;
    let digest = Digest::from_base64url(next("G_CHECK hash")?)?;
    let status = GCheckStatus::parse(next("G_CHECK status")?)?;
    if let Some(extra) = parts.next() {
        return Err(Error::TrailingBytes {
            what: "G_CHECK entry",
            count: extra.len() + 1,
        });
    }
    Ok(GCheckEntry {
        member,
        msg_id,
        digest,
        status,
    })
}

/// Parses a canonical decimal u64: 1 to 20 digits, no sign, no leading zeros.
pub(crate) fn parse_u64(text: &[u8], what: &'static str) -> Result<u64, Error> {
    if text.is_empty() || text.len() > MAX_U64_DIGITS || !text.iter().all(u8::is_ascii_digit) {
        return Err(Error::invalid(what, "expected a decimal number"));
    }
    if text.len() > 1 && text.first() == Some(&b'0') {
        return Err(Error::invalid(what, "leading zeros are not allowed"));
    }
    text.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| Error::invalid(what, "number exceeds 2^64-1"))
    })
}

impl Encode for GCheckEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        base64url::encode_unpadded_into(&self.member.0, out);
        out.push(b':');
        out.extend_from_slice(self.msg_id.to_string().as_bytes());
        out.push(b':');
        base64url::encode_unpadded_into(&self.digest.0, out);
        out.push(b':');
        out.extend_from_slice(self.status.as_str().as_bytes());
    }
}

impl Encode for GCheck {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(GCHECK_TAG);
        out.push(b' ');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            e.encode(out);
        }
        if let Some(m) = &self.members {
            out.push(b' ');
            out.extend_from_slice(MEMBERS_PREFIX);
            out.extend_from_slice(m.count.to_string().as_bytes());
            out.push(b':');
            base64url::encode_unpadded_into(&m.digest.0, out);
        }
    }
}

impl<'a> Decode<'a> for GCheck {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        r.literal(GCHECK_TAG, "envelope tag")?;
        r.literal(b" ", "G_CHECK separator")?;
        Self::parse_entries(r.rest())
    }
}

impl fmt::Display for GCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, msg_id: u64, status: GCheckStatus) -> GCheckEntry {
        GCheckEntry {
            member: MemberId([n; 16]),
            msg_id,
            digest: Digest([n.wrapping_add(1); 32]),
            status,
        }
    }

    #[test]
    fn seed_syntax_known_answer() -> Result<(), Error> {
        let g = GCheck::new(vec![
            entry(0, 7, GCheckStatus::Ok),
            entry(0xff, 0, GCheckStatus::Bad),
        ])?;
        let text = g.to_text();
        assert_eq!(
            text,
            "G_CHECK AAAAAAAAAAAAAAAAAAAAAA:7:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE:ok,\
             _____________________w:0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:bad"
        );
        assert_eq!(GCheck::parse(text.as_bytes()), Ok(g));
        Ok(())
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(parse_u64(b"18446744073709551615", "n"), Ok(u64::MAX));
        assert!(parse_u64(b"18446744073709551616", "n").is_err());
        assert!(parse_u64(b"007", "n").is_err());
        assert!(parse_u64(b"+7", "n").is_err());
        assert!(parse_u64(b"", "n").is_err());
    }

    #[test]
    fn member_set_round_trip_and_bounds() -> Result<(), Error> {
        let members = GCheckMembers {
            count: 3,
            digest: Digest([7; 32]),
        };
        let g = GCheck::new(vec![entry(1, 2, GCheckStatus::Ok)])?.with_members(members)?;
        let text = g.to_text();
        assert_eq!(
            text,
            "G_CHECK AQEBAQEBAQEBAQEBAQEBAQ:2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI:ok \
             M=3:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"
        );
        assert_eq!(GCheck::parse(text.as_bytes()), Ok(g.clone()));
        let max = g.clone().with_members(GCheckMembers {
            count: 256,
            ..members
        })?;
        assert_eq!(GCheck::parse(max.to_text().as_bytes()), Ok(max));
        assert!(
            g.clone()
                .with_members(GCheckMembers {
                    count: 257,
                    ..members
                })
                .is_err()
        );
        let entries =
            "G_CHECK AQEBAQEBAQEBAQEBAQEBAQ:2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI:ok";
        let hash = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
        for bad in [
            format!("{entries} M=0:{hash}"),
            format!("{entries} M=257:{hash}"),
            format!("{entries} M=0003:{hash}"),
            format!("{entries} M=99999999999999999999999:{hash}"),
            format!("{entries} M=3"),
            format!("{entries} M=3:"),
            format!("{entries} M=3:{hash} M=3:{hash}"),
            format!("{entries} X=3:{hash}"),
            format!("{entries} "),
            format!("{entries} M=3:{hash}A"),
        ] {
            assert!(GCheck::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn count_is_bounded() {
        assert!(GCheck::new(vec![]).is_err());
        assert!(matches!(
            GCheck::new(vec![entry(1, 1, GCheckStatus::Gap); MAX_GCHECK_ENTRIES + 1]),
            Err(Error::TooLong { .. })
        ));
    }
}
