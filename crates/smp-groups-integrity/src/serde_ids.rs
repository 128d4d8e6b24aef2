//! Serde helpers for the wire crate's identifier types, which carry no serde
//! implementations of their own: they are stored as their raw byte arrays.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smp_groups_wire::agent::{Digest, GroupId, MemberId};

/// `#[serde(with = "digest")]` for a [`Digest`] field.
pub(crate) mod digest {
    use super::{Deserialize, Deserializer, Digest, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        d.0.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        <[u8; 32]>::deserialize(d).map(Digest)
    }
}

/// `#[serde(with = "member")]` for a [`MemberId`] field.
pub(crate) mod member {
    use super::{Deserialize, Deserializer, MemberId, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(m: &MemberId, s: S) -> Result<S::Ok, S::Error> {
        m.0.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MemberId, D::Error> {
        <[u8; 16]>::deserialize(d).map(MemberId)
    }
}

/// `#[serde(with = "member_map")]` for a `BTreeMap<MemberId, V>`, stored as a
/// sequence of `(id bytes, value)` pairs so that text formats (JSON) work too.
pub(crate) mod member_map {
    use super::{BTreeMap, Deserialize, Deserializer, MemberId, Serialize, Serializer};

    pub(crate) fn serialize<V: Serialize, S: Serializer>(
        m: &BTreeMap<MemberId, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(k, v)| (k.0, v)))
    }

    pub(crate) fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<MemberId, V>, D::Error> {
        let pairs = Vec::<([u8; 16], V)>::deserialize(d)?;
        Ok(pairs.into_iter().map(|(k, v)| (MemberId(k), v)).collect())
    }
}

/// `#[serde(with = "group")]` for a [`GroupId`] field.
pub(crate) mod group {
    use super::{Deserialize, Deserializer, GroupId, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(g: &GroupId, s: S) -> Result<S::Ok, S::Error> {
        g.0.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GroupId, D::Error> {
        <[u8; 16]>::deserialize(d).map(GroupId)
    }
}
