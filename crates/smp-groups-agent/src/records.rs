//! Where the core's records meet the store: [`Key`]s as the store's byte
//! keys, a [`StoreBatch`] as the record part of a [`Transaction`], and the
//! records [`smp_groups_core::Agent::restore`] takes. The store knows
//! nothing of the core's types, and the core nothing of the store; this
//! mapping is the stored layout of an agent's database.

use smp_groups_core::{Key, StoreBatch};
use smp_groups_store::{Store, StoreError, Transaction};

const TAG_META: u8 = 0;
const TAG_CONN: u8 = 1;
const TAG_GROUP: u8 = 2;
const TAG_INVITATION: u8 = 3;
const TAG_OP: u8 = 4;
const TAG_MEMBER: u8 = 5;
const TAG_SENT: u8 = 6;
const TAG_PROFILES: u8 = 7;
const TAG_SHARED: u8 = 8;
const TAG_DIRECT: u8 = 9;
const TAG_PROOF: u8 = 10;
const TAG_PROOF_SENT: u8 = 11;

/// The stored form of a key: a tag byte, then the id (a big-endian `u64`, so
/// that numeric ids sort in order) or the UTF-8 name; a member record has the
/// 16-byte member id, then the group's name; a kept message has its extMsgId
/// (big-endian `u64`), then the group's name.
pub fn encode_key(key: &Key) -> Vec<u8> {
    let (tag, rest): (u8, &[u8]) = match key {
        Key::Meta => (TAG_META, &[]),
        Key::Conn(id) => return tagged_u64(TAG_CONN, *id),
        Key::Group(alias) => (TAG_GROUP, alias.as_bytes()),
        Key::Invitation(id) => (TAG_INVITATION, id.as_bytes()),
        Key::Direct(alias) => (TAG_DIRECT, alias.as_bytes()),
        Key::Profiles(alias) => (TAG_PROFILES, alias.as_bytes()),
        Key::Op(id) => return tagged_u64(TAG_OP, *id),
        Key::Member(alias, member) => {
            // The member id first (fixed length), then the group's name.
            let mut out = Vec::with_capacity(17 + alias.len());
            out.push(TAG_MEMBER);
            out.extend_from_slice(member);
            out.extend_from_slice(alias.as_bytes());
            return out;
        }
        Key::Shared(alias, seq) => {
            // The sequence number first (fixed length), then the group's name.
            let mut out = Vec::with_capacity(9 + alias.len());
            out.push(TAG_SHARED);
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(alias.as_bytes());
            return out;
        }
        Key::Proof(alias, n) => return tagged_u64_name(TAG_PROOF, *n, alias),
        Key::ProofSent(alias, id) => return tagged_u64_name(TAG_PROOF_SENT, *id, alias),
        Key::Sent(alias, ext_msg_id) => {
            // The message id first (fixed length), then the group's name.
            let mut out = Vec::with_capacity(9 + alias.len());
            out.push(TAG_SENT);
            out.extend_from_slice(&ext_msg_id.to_be_bytes());
            out.extend_from_slice(alias.as_bytes());
            return out;
        }
    };
    let mut out = Vec::with_capacity(1 + rest.len());
    out.push(tag);
    out.extend_from_slice(rest);
    out
}

/// A tag, a big-endian `u64` (fixed length), then a group's name.
fn tagged_u64_name(tag: u8, id: u64, alias: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + alias.len());
    out.push(tag);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(alias.as_bytes());
    out
}

fn tagged_u64(tag: u8, id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(tag);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// Parses a stored key; anything but the form [`encode_key`] writes is
/// reported as a damaged row.
pub fn decode_key(bytes: &[u8]) -> Result<Key, StoreError> {
    let bad = |reason: &str| StoreError::CorruptRow {
        table: "records",
        id: hex::encode(bytes),
        reason: format!("key: {reason}"),
    };
    let (tag, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
    let id = || -> Result<u64, StoreError> {
        let arr: [u8; 8] = rest.try_into().map_err(|_| bad("id is not 8 bytes"))?;
        Ok(u64::from_be_bytes(arr))
    };
    let name = || -> Result<String, StoreError> {
        String::from_utf8(rest.to_vec()).map_err(|_| bad("name is not UTF-8"))
    };
    match *tag {
        TAG_META if rest.is_empty() => Ok(Key::Meta),
        TAG_META => Err(bad("trailing bytes")),
        TAG_CONN => Ok(Key::Conn(id()?)),
        TAG_GROUP => Ok(Key::Group(name()?)),
        TAG_INVITATION => Ok(Key::Invitation(name()?)),
        TAG_DIRECT => Ok(Key::Direct(name()?)),
        TAG_PROFILES => Ok(Key::Profiles(name()?)),
        TAG_OP => Ok(Key::Op(id()?)),
        TAG_MEMBER => {
            let (member, alias) = rest
                .split_first_chunk::<16>()
                .ok_or_else(|| bad("member id is not 16 bytes"))?;
            let alias = String::from_utf8(alias.to_vec()).map_err(|_| bad("name is not UTF-8"))?;
            Ok(Key::Member(alias, *member))
        }
        TAG_SENT => {
            let (id, alias) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("message id is not 8 bytes"))?;
            let alias = String::from_utf8(alias.to_vec()).map_err(|_| bad("name is not UTF-8"))?;
            Ok(Key::Sent(alias, u64::from_be_bytes(*id)))
        }
        TAG_PROOF | TAG_PROOF_SENT => {
            let (n, alias) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("number is not 8 bytes"))?;
            let alias = String::from_utf8(alias.to_vec()).map_err(|_| bad("name is not UTF-8"))?;
            let n = u64::from_be_bytes(*n);
            Ok(if *tag == TAG_PROOF {
                Key::Proof(alias, n)
            } else {
                Key::ProofSent(alias, n)
            })
        }
        TAG_SHARED => {
            let (seq, alias) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("sequence number is not 8 bytes"))?;
            let alias = String::from_utf8(alias.to_vec()).map_err(|_| bad("name is not UTF-8"))?;
            Ok(Key::Shared(alias, u64::from_be_bytes(*seq)))
        }
        other => Err(bad(&format!("unknown tag {other}"))),
    }
}

/// The queue id used for processed-message marks of a core receive queue
/// (`server`, `rcv_id` of [`smp_groups_core::RelayEvent::Message`]): the
/// server's length (`u16`, big-endian), the server, the recipient id.
/// `None` if the server name is longer than `u16::MAX` bytes.
pub fn queue_key(server: &str, rcv_id: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(server.len()).ok()?;
    let mut out = Vec::with_capacity(2 + server.len() + rcv_id.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(rcv_id);
    Some(out)
}

/// Adds the core's storage batch to `txn`: its puts, deletes and record
/// schema.
pub fn add_batch(txn: &mut Transaction, batch: StoreBatch) {
    txn.record_schema = Some(batch.schema);
    txn.puts
        .extend(batch.puts.into_iter().map(|(k, v)| (encode_key(&k), v)));
    txn.deletes.extend(batch.deletes.iter().map(encode_key));
}

/// A transaction holding only the core's storage batch.
pub fn from_batch(batch: StoreBatch) -> Transaction {
    let mut t = Transaction::new();
    add_batch(&mut t, batch);
    t
}

/// The core's records as stored, for [`smp_groups_core::Agent::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreRecords {
    /// The records' layout version ([`smp_groups_core::SCHEMA_VERSION`] when
    /// written by this core).
    pub schema: u32,
    /// The records, in key order.
    pub records: Vec<(Key, Vec<u8>)>,
}

/// Every record of `store` as the core's typed keys, checked like
/// [`Store::load_records`].
pub fn load_core(store: &Store) -> Result<CoreRecords, StoreError> {
    let schema = store.record_schema()?;
    let records = store
        .load_records()?
        .into_iter()
        .map(|(k, v)| Ok((decode_key(&k)?, v)))
        .collect::<Result<_, StoreError>>()?;
    Ok(CoreRecords { schema, records })
}
