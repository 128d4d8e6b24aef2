//! Authorization of commands: Ed25519 signatures and crypto_box authenticators
//! over the authorized bytes, as the reference relay checks them.
//!
//! When there is no queue (or no key) to check against, a dummy key is checked
//! instead and the result thrown away, so that the time taken does not tell an
//! existing queue from a missing one.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use smp_groups_crypto::{ed25519, nacl, x25519};

use crate::types::{
    AuthKey, Authorization, CmdError, ErrorCode, QueueCommand, QueueId, QueueMode, Request,
};

/// What a connection knows for checking authenticators:
/// the relay's X25519 session key (sent in the server hello from v7).
#[derive(Clone, Debug)]
pub struct SessionAuth {
    /// The relay's private X25519 session key, when the session has one.
    pub server_key: Option<x25519::SecretKey>,
}

/// The authenticator nonce from a correlation id: its first 24 bytes, zero-filled
/// when shorter (the reference's `cbNonce`).
pub(crate) fn corr_nonce(corr_id: &[u8]) -> [u8; 24] {
    let mut n = [0u8; 24];
    let len = corr_id.len().min(24);
    n[..len].copy_from_slice(&corr_id[..len]);
    n
}

// Fixed, valid public keys for dummy checks (any valid key will do).
const DUMMY_ED25519: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];
const DUMMY_X25519: [u8; 32] = [9; 32];

/// True when `auth` is a valid authorization of `authorized` by `key`.
pub(crate) fn verify(
    session: &SessionAuth,
    key: &AuthKey,
    auth: &Authorization,
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    match (auth, key) {
        (Authorization::Ed25519(sig), AuthKey::Ed25519(k)) => k.verify(authorized, sig).is_ok(),
        (Authorization::Authenticator(a), AuthKey::X25519(k)) => {
            verify_authenticator(session, k, a, authorized, corr_id)
        }
        _ => {
            let _ = dummy_verify(session, auth, authorized, corr_id);
            false
        }
    }
}

fn verify_authenticator(
    session: &SessionAuth,
    k: &x25519::PublicKey,
    a: &[u8; 80],
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    session.server_key.as_ref().is_some_and(|sk| {
        nacl::verify_cb_authenticator(k, sk, &corr_nonce(corr_id), authorized, a).is_ok()
    })
}

/// Checks `auth` against a dummy key, for constant time when there is nothing
/// to check against; the result means nothing.
pub(crate) fn dummy_verify(
    session: &SessionAuth,
    auth: &Authorization,
    authorized: &[u8],
    corr_id: &[u8],
) -> bool {
    match auth {
        Authorization::Ed25519(sig) => ed25519::PublicKey::from_bytes(DUMMY_ED25519)
            .verify(authorized, sig)
            .is_ok(),
        Authorization::Authenticator(a) => verify_authenticator(
            session,
            &x25519::PublicKey::from_bytes(DUMMY_X25519),
            a,
            authorized,
            corr_id,
        ),
        Authorization::None | Authorization::Unsupported => false,
    }
}

/// What authorizes commands on one queue id, as the connections read it to
/// check a command's authorization before the queue logic sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexEntry {
    /// A recipient id: its key.
    Recipient {
        /// The recipient's key.
        key: AuthKey,
    },
    /// A sender id: the queue's recipient id, its sender key once secured and
    /// its mode.
    Sender {
        /// The recipient id of the queue.
        rid: QueueId,
        /// The sender key (`KEY`/`SKEY`), once secured.
        key: Option<AuthKey>,
        /// The queue's mode.
        mode: Option<QueueMode>,
    },
}

const INDEX_SHARDS: usize = 16;

/// The keys of every queue by recipient and sender id, sharded so that the
/// connections (which check signatures on their own tasks) and the queue
/// logic (which updates it on `NEW`, `KEY`/`SKEY` and `DEL`) seldom meet.
#[derive(Debug, Default)]
pub struct AuthIndex {
    shards: [RwLock<HashMap<QueueId, IndexEntry>>; INDEX_SHARDS],
}

fn shard_of(id: &QueueId) -> usize {
    usize::from(id[0]) % INDEX_SHARDS
}

impl AuthIndex {
    /// The entry of `id`.
    pub fn get(&self, id: &[u8]) -> Option<IndexEntry> {
        let id = QueueId::try_from(id).ok()?;
        let shard = self.shards.get(shard_of(&id))?;
        shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Sets the entry of `id`.
    pub fn insert(&self, id: QueueId, entry: IndexEntry) {
        if let Some(shard) = self.shards.get(shard_of(&id)) {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, entry);
        }
    }

    /// Removes the entry of `id`.
    pub fn remove(&self, id: &QueueId) {
        if let Some(shard) = self.shards.get(shard_of(id)) {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for s in &self.shards {
            s.write().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

/// A request whose credentials and authorization were checked against the
/// index, for the queue logic ([`crate::RelayState::apply`]).
#[derive(Clone, Debug)]
pub struct Verified {
    /// The request.
    pub request: Request,
    /// The recipient id of the queue it is for (none for `NEW`, `PING` and
    /// commands not served).
    pub rid: Option<QueueId>,
    /// For `SEND`: the sender key the authorization was checked against (none:
    /// the queue was not secured and the `SEND` unsigned). The queue logic
    /// refuses the `SEND` if the queue's key has changed since.
    pub sender_key: Option<AuthKey>,
}

/// `checkCredentials`, then `verifyTransmission` against `index`: which
/// queue the request is for and whether its authorization holds. An unknown
/// queue is `AUTH` after a check against a dummy key, so the time does not
/// tell whether it exists.
pub fn verify_request(
    index: &AuthIndex,
    session: &SessionAuth,
    request: Request,
) -> Result<Verified, ErrorCode> {
    if let Err(e) = check_credentials(&request.command, &request.auth, &request.entity_id) {
        return Err(ErrorCode::Cmd(e));
    }
    let check = |key: &AuthKey| {
        verify(
            session,
            key,
            &request.auth,
            &request.authorized,
            &request.corr_id,
        )
    };
    let dummy = || {
        let _ = dummy_verify(
            session,
            &request.auth,
            &request.authorized,
            &request.corr_id,
        );
        ErrorCode::Auth
    };
    let (rid, sender_key) = match &request.command {
        QueueCommand::Ping | QueueCommand::NotServed(_) => (None, None),
        QueueCommand::New(nq) => {
            if !check(&nq.recipient_key) {
                return Err(ErrorCode::Auth);
            }
            (None, None)
        }
        cmd @ (QueueCommand::Send { .. } | QueueCommand::SKey(_)) => {
            let Some(IndexEntry::Sender { rid, key, mode }) = index.get(&request.entity_id) else {
                return Err(dummy());
            };
            let ok = match cmd {
                QueueCommand::SKey(k) => {
                    let allowed =
                        mode == Some(QueueMode::Messaging) && key.is_none_or(|sk| sk == *k);
                    if !allowed {
                        return Err(dummy());
                    }
                    check(k)
                }
                _ => match &key {
                    None => !request.auth.is_present(),
                    Some(k) => check(k),
                },
            };
            if !ok {
                return Err(ErrorCode::Auth);
            }
            (Some(rid), key)
        }
        _ => {
            let Some(IndexEntry::Recipient { key }) = index.get(&request.entity_id) else {
                return Err(dummy());
            };
            if !check(&key) {
                return Err(ErrorCode::Auth);
            }
            (QueueId::try_from(request.entity_id.as_slice()).ok(), None)
        }
    };
    // Checked: the authorized bytes (a copy of the command) are not kept.
    let mut request = request;
    request.authorized = Vec::new();
    Ok(Verified {
        request,
        rid,
        sender_key,
    })
}

/// The `checkCredentials` rules: which commands need an authorization and an
/// entity id, and which must have none.
pub(crate) fn check_credentials(
    cmd: &QueueCommand,
    auth: &Authorization,
    entity: &[u8],
) -> Result<(), CmdError> {
    let has_auth = auth.is_present();
    match cmd {
        QueueCommand::New(_) if !has_auth => Err(CmdError::NoAuth),
        QueueCommand::New(_) if !entity.is_empty() => Err(CmdError::HasAuth),
        QueueCommand::Send { .. } if entity.is_empty() => Err(CmdError::NoEntity),
        QueueCommand::Ping if has_auth || !entity.is_empty() => Err(CmdError::HasAuth),
        QueueCommand::New(_)
        | QueueCommand::Send { .. }
        | QueueCommand::Ping
        | QueueCommand::NotServed(_) => Ok(()),
        _ if !has_auth || entity.is_empty() => Err(CmdError::NoAuth),
        _ => Ok(()),
    }
}

/// Compares a client's basic-auth password with the relay's in constant time
/// (both are hashed first, so neither the contents nor the length show in the
/// time taken).
pub(crate) fn password_matches(given: Option<&[u8]>, expected: &[u8]) -> bool {
    let Some(given) = given else {
        return false;
    };
    smp_groups_crypto::ct_eq(
        &smp_groups_crypto::sha256(given),
        &smp_groups_crypto::sha256(expected),
    )
}
