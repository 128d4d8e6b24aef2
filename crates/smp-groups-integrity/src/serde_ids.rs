//! Serde helpers for the wire crate's identifier types, which carry no serde
//! implementations of their own: they are stored as their raw byte arrays.

use std::collections::BTreeMap;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smp_groups_wire::agent::{Digest, GroupId, MemberId};

/// A fixed byte array written as one byte string: serde's derive would
/// serialize it one call per byte, and these arrays are in every record the
/// agent writes after each input. Text formats still read it (as a sequence).
pub(crate) struct Bytes<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Serialize for Bytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct BytesVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for BytesVisitor<N> {
    type Value = Bytes<N>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{N} bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        <[u8; N]>::try_from(v)
            .map(Bytes)
            .map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<u8>()?.is_some() {
            return Err(serde::de::Error::invalid_length(N + 1, &self));
        }
        Ok(Bytes(out))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(BytesVisitor::<N>)
    }
}

/// `#[serde(with = "digest")]` for a [`Digest`] field.
pub(crate) mod digest {
    use super::{Bytes, Deserialize, Deserializer, Digest, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        Bytes(d.0).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        Bytes::<32>::deserialize(d).map(|b| Digest(b.0))
    }
}

/// `#[serde(with = "member")]` for a [`MemberId`] field.
pub(crate) mod member {
    use super::{Bytes, Deserialize, Deserializer, MemberId, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(m: &MemberId, s: S) -> Result<S::Ok, S::Error> {
        Bytes(m.0).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MemberId, D::Error> {
        Bytes::<16>::deserialize(d).map(|b| MemberId(b.0))
    }
}

/// `#[serde(with = "member_map")]` for a `BTreeMap<MemberId, V>`, stored as a
/// sequence of `(id bytes, value)` pairs so that text formats (JSON) work too.
pub(crate) mod member_map {
    use super::{BTreeMap, Bytes, Deserialize, Deserializer, MemberId, Serialize, Serializer};

    pub(crate) fn serialize<V: Serialize, S: Serializer>(
        m: &BTreeMap<MemberId, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(k, v)| (Bytes(k.0), v)))
    }

    pub(crate) fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<MemberId, V>, D::Error> {
        let pairs = Vec::<(Bytes<16>, V)>::deserialize(d)?;
        Ok(pairs.into_iter().map(|(k, v)| (MemberId(k.0), v)).collect())
    }
}

/// `#[serde(with = "group")]` for a [`GroupId`] field.
pub(crate) mod group {
    use super::{Bytes, Deserialize, Deserializer, GroupId, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(g: &GroupId, s: S) -> Result<S::Ok, S::Error> {
        Bytes(g.0).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GroupId, D::Error> {
        Bytes::<16>::deserialize(d).map(|b| GroupId(b.0))
    }
}
