//! The per-connection double ratchet with header encryption.
//!
//! Signal's double ratchet with encrypted headers over X25519, HKDF-SHA512 and
//! AES-256-GCM, started by an X3DH-style agreement of two key pairs per side
//! ([`x3dh`]). Every ciphertext of a session has the same length
//! ([`RatchetConfig::message_len`]), so a relay learns nothing from sizes.
//! Messages may arrive out of order: keys of skipped messages are kept, at most
//! [`RatchetConfig::max_skip`] of them. Replayed messages are rejected. A failed
//! decryption leaves the state exactly as it was.
//!
//! The state is serde-serializable; [`Ratchet::to_bytes`] / [`Ratchet::from_bytes`]
//! use postcard and round-trip byte-identically. See `docs/crypto.md` for the
//! construction.

mod header;
mod kdf;
mod skipped;
pub mod x3dh;

use std::mem;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use header::{ENC_HEADER_LEN, HEADER_LEN, HEADER_PADDED, MESSAGE_VERSION, PREFIX_LEN};
pub use kdf::{CHAIN_INFO, ROOT_INFO, X3DH_INFO};
pub use x3dh::{X3dhKeyPairs, X3dhParams};

use self::header::Header;
use self::kdf::{Key32, MessageKey, kdf_chain, kdf_root};
use self::skipped::Skipped;
use crate::x25519::{PublicKey, SecretKey};
use crate::{CryptoError, CryptoRng, RngCore, aead};

/// The default bound on kept skipped message keys (as in the reference agent).
pub const DEFAULT_MAX_SKIP: u32 = 512;
/// The largest configurable bound on skipped message keys.
pub const MAX_SKIP_LIMIT: u32 = 65_536;
/// The default length of every ratchet ciphertext: 16000 (the SMP end-to-end
/// padded size) minus 256 bytes left for the SMP private header and the agent
/// envelope (a confirmation adds its keys in the clear).
pub const DEFAULT_MESSAGE_LEN: usize = 15_744;
/// The default padded body length: [`DEFAULT_MESSAGE_LEN`] minus the prefix (94)
/// and the body tag (16).
pub const DEFAULT_BODY_PADDED: u16 = 15_634;

/// Settings fixed for the life of a session (stored with the state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatchetConfig {
    /// At most this many skipped message keys are kept, and one message may skip
    /// at most this many.
    pub max_skip: u32,
    /// Every body is padded to this length before encryption.
    pub body_padded_len: u16,
}

impl Default for RatchetConfig {
    fn default() -> Self {
        Self {
            max_skip: DEFAULT_MAX_SKIP,
            body_padded_len: DEFAULT_BODY_PADDED,
        }
    }
}

impl RatchetConfig {
    /// The length of every ciphertext.
    pub fn message_len(&self) -> usize {
        PREFIX_LEN + usize::from(self.body_padded_len) + aead::TAG_LEN
    }

    /// The longest plaintext that fits.
    pub fn max_plaintext(&self) -> usize {
        usize::from(self.body_padded_len).saturating_sub(2)
    }

    /// Checks the values are in range.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if self.max_skip > MAX_SKIP_LIMIT {
            return Err(CryptoError::BadConfig("max_skip exceeds 65536"));
        }
        if self.body_padded_len < 2 {
            return Err(CryptoError::BadConfig("body_padded_len must be at least 2"));
        }
        Ok(())
    }

    fn max_skip_usize(self) -> usize {
        usize::try_from(self.max_skip).unwrap_or(usize::MAX)
    }
}

/// A ratchet key pair with its public key computed once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl KeyPair {
    fn new(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }
}

/// One symmetric chain: its key, its header key, the next message number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Chain {
    ck: Key32,
    hk: Key32,
    n: u32,
}

/// The state of one side of a session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratchet {
    version: u16,
    config: RatchetConfig,
    /// Associated data from the initial agreement, bound into every message.
    #[serde(with = "crate::serde_bytes")]
    assoc: [u8; 64],
    root: Key32,
    /// Our current ratchet key pair; `None` between receiving a new peer key and
    /// our next send (which creates a fresh pair).
    dhs: Option<KeyPair>,
    /// The peer's current ratchet public key.
    dhr: Option<PublicKey>,
    /// The sending chain; `None` until the next send performs the DH step.
    send: Option<Chain>,
    recv: Option<Chain>,
    /// Messages in our previous sending chain.
    pn: u32,
    nhks: Key32,
    nhkr: Key32,
    skipped: Skipped,
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ratchet")
            .field("config", &self.config)
            .field("sent", &self.send.as_ref().map(|c| c.n))
            .field("received", &self.recv.as_ref().map(|c| c.n))
            .field("pn", &self.pn)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

impl Ratchet {
    /// The side that joins (answers the invitation) and sends first: own key
    /// pairs, the responder's published keys.
    pub fn init_initiator(
        own: &X3dhKeyPairs,
        peer: &X3dhParams,
        config: RatchetConfig,
    ) -> Result<Self, CryptoError> {
        config.validate()?;
        let a = x3dh::initiator(own, peer)?;
        Ok(Self {
            version: MESSAGE_VERSION,
            config,
            assoc: a.ad,
            root: a.out.root.clone(),
            dhs: None,
            dhr: Some(peer.k2),
            send: None,
            recv: None,
            pn: 0,
            // The first send step makes this the sending header key.
            nhks: a.out.hk.clone(),
            nhkr: a.out.nhk.clone(),
            skipped: Skipped::default(),
        })
    }

    /// The side that published its keys: own key pairs (whose second pair starts
    /// the DH ratchet), the initiator's keys from its confirmation. It can send
    /// only after the first message from the initiator has been decrypted.
    pub fn init_responder(
        own: &X3dhKeyPairs,
        peer: &X3dhParams,
        config: RatchetConfig,
    ) -> Result<Self, CryptoError> {
        config.validate()?;
        let a = x3dh::responder(own, peer)?;
        Ok(Self {
            version: MESSAGE_VERSION,
            config,
            assoc: a.ad,
            root: a.out.root.clone(),
            dhs: Some(KeyPair::new(own.k2.clone())),
            dhr: None,
            send: None,
            recv: None,
            pn: 0,
            nhks: a.out.nhk.clone(),
            nhkr: a.out.hk.clone(),
            skipped: Skipped::default(),
        })
    }

    /// The session's configuration.
    pub fn config(&self) -> &RatchetConfig {
        &self.config
    }

    /// Whether [`encrypt`](Self::encrypt) can be called (false for a responder
    /// that has not yet received a message).
    pub fn can_send(&self) -> bool {
        self.send.is_some() || self.dhr.is_some()
    }

    /// How many skipped message keys are kept.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts `plaintext` bound to the caller's associated data `ad`. The result
    /// always has [`RatchetConfig::message_len`] bytes.
    pub fn encrypt(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        plaintext: &[u8],
        ad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_keyed(rng, plaintext, ad).map(|(msg, _)| msg)
    }

    fn encrypt_keyed(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
        plaintext: &[u8],
        ad: &[u8],
    ) -> Result<(Vec<u8>, MessageKey), CryptoError> {
        // Every check comes before any change to the state.
        let body = Zeroizing::new(
            smp_groups_wire::pad::pad(plaintext, usize::from(self.config.body_padded_len))
                .map_err(|_| CryptoError::TooLong {
                    len: plaintext.len(),
                    max: self.config.max_plaintext(),
                })?,
        );
        if self.send.as_ref().is_some_and(|c| c.n == u32::MAX) {
            return Err(CryptoError::CounterExhausted);
        }
        if self.send.is_none() {
            self.send_step(rng)?;
        }
        let (Some(send), Some(dhs)) = (self.send.as_mut(), self.dhs.as_ref()) else {
            return Err(CryptoError::NotReady);
        };
        let (ck, mk, header_nonce) = kdf_chain(&send.ck);
        let header = Header {
            dh: dhs.public,
            pn: self.pn,
            n: send.n,
        };
        let padded_header = Zeroizing::new(
            smp_groups_wire::pad::pad(&header.encode(), HEADER_PADDED)
                .map_err(|_| CryptoError::BadConfig("header does not fit"))?,
        );
        let version = self.version.to_be_bytes();
        let header_ad = [&self.assoc[..], &version, ad].concat();
        let enc_header = aead::encrypt(&send.hk.0, &header_nonce, &header_ad, &padded_header);
        let mut msg = Vec::with_capacity(self.config.message_len());
        msg.extend_from_slice(&version);
        msg.extend_from_slice(&header_nonce);
        msg.extend_from_slice(&enc_header);
        let body_ad = [&self.assoc[..], &msg, ad].concat();
        msg.extend_from_slice(&aead::encrypt(&mk.key.0, &mk.nonce, &body_ad, &body));
        send.ck = ck;
        send.n += 1;
        Ok((msg, mk))
    }

    /// The sending half of the DH ratchet step, done lazily at the first send after
    /// a new peer key arrived (so decryption needs no randomness).
    fn send_step(&mut self, rng: &mut (impl RngCore + CryptoRng)) -> Result<(), CryptoError> {
        let dhr = self.dhr.ok_or(CryptoError::NotReady)?;
        let dhs = KeyPair::new(SecretKey::generate(rng));
        let dh = dhs.secret.diffie_hellman_checked(&dhr)?;
        let (root, ck, nhks) = kdf_root(&self.root, dh.as_bytes());
        let hk = mem::replace(&mut self.nhks, nhks);
        self.root = root;
        self.send = Some(Chain { ck, hk, n: 0 });
        self.dhs = Some(dhs);
        Ok(())
    }

    /// Decrypts a message made by the peer's [`encrypt`](Self::encrypt) with the
    /// same `ad`. On any error the state is unchanged.
    pub fn decrypt(&mut self, msg: &[u8], ad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.decrypt_keyed(msg, ad).map(|(plain, _)| plain)
    }

    fn decrypt_keyed(
        &mut self,
        msg: &[u8],
        ad: &[u8],
    ) -> Result<(Vec<u8>, MessageKey), CryptoError> {
        if msg.len() != self.config.message_len() {
            return Err(CryptoError::InvalidLength {
                what: "ratchet message",
                len: msg.len(),
                expected: "the session's message length",
            });
        }
        let (prefix, body) = msg.split_at(PREFIX_LEN);
        let Some((version, rest)) = prefix.split_first_chunk::<2>() else {
            unreachable!("the length was checked")
        };
        let Some((nonce, enc_header)) = rest.split_first_chunk::<{ aead::NONCE_LEN }>() else {
            unreachable!("the length was checked")
        };
        let version_n = u16::from_be_bytes(*version);
        if version_n != self.version {
            return Err(CryptoError::UnsupportedVersion(version_n));
        }
        let header_ad = [&self.assoc[..], version, ad].concat();
        let input = Incoming {
            nonce,
            enc_header,
            header_ad: &header_ad,
            body,
            body_ad: &[&self.assoc[..], prefix, ad].concat(),
        };
        let mut next = self.clone();
        let out = next.decrypt_on(&input)?;
        *self = next;
        Ok(out)
    }

    fn decrypt_on(&mut self, m: &Incoming<'_>) -> Result<(Vec<u8>, MessageKey), CryptoError> {
        // 1. The current receiving chain (in order, ahead, or a kept skipped key).
        if let Some(recv) = &self.recv {
            let hk = recv.hk.clone();
            if let Some(h) = m.open_header(&hk)? {
                if let Some(mk) = self.skipped.take(&hk, h.n) {
                    return m.open_body(mk);
                }
                self.skip_to(h.n)?;
                let mk = self.next_recv_key()?;
                return m.open_body(mk);
            }
        }
        // 2. The next header key: the peer has a new ratchet key.
        let nhkr = self.nhkr.clone();
        if let Some(h) = m.open_header(&nhkr)? {
            if self.recv.is_some() {
                self.skip_to(h.pn)?;
            }
            self.receive_step(&h)?;
            self.skip_to(h.n)?;
            let mk = self.next_recv_key()?;
            return m.open_body(mk);
        }
        // 3. Kept keys of earlier chains.
        for hk in self.skipped.header_keys() {
            if let Some(h) = m.open_header(&hk)? {
                return match self.skipped.take(&hk, h.n) {
                    Some(mk) => m.open_body(mk),
                    None => Err(CryptoError::Replay { n: h.n }),
                };
            }
        }
        Err(CryptoError::DecryptFailed {
            what: "ratchet header",
        })
    }

    /// The receiving half of the DH ratchet step.
    fn receive_step(&mut self, h: &Header) -> Result<(), CryptoError> {
        let dhs = self.dhs.as_ref().ok_or(CryptoError::DecryptFailed {
            what: "ratchet header",
        })?;
        let dh = dhs.secret.diffie_hellman_checked(&h.dh)?;
        let (root, ck, nhkr) = kdf_root(&self.root, dh.as_bytes());
        if let Some(send) = &self.send {
            self.pn = send.n;
        }
        let hk = mem::replace(&mut self.nhkr, nhkr);
        self.root = root;
        self.recv = Some(Chain { ck, hk, n: 0 });
        self.dhr = Some(h.dh);
        // Our old pair is no longer needed; the next send makes a fresh one.
        self.dhs = None;
        self.send = None;
        Ok(())
    }

    /// Keeps the keys of messages `recv.n .. until` of the receiving chain.
    fn skip_to(&mut self, until: u32) -> Result<(), CryptoError> {
        let max = self.config.max_skip;
        let max_usize = self.config.max_skip_usize();
        let Some(recv) = self.recv.as_mut() else {
            return Err(CryptoError::DecryptFailed {
                what: "ratchet header",
            });
        };
        if until < recv.n {
            return Err(CryptoError::Replay { n: until });
        }
        let skip = u64::from(until - recv.n);
        if skip > u64::from(max) {
            return Err(CryptoError::TooManySkipped { skip, max });
        }
        while recv.n < until {
            let (ck, mk, _) = kdf_chain(&recv.ck);
            self.skipped.push(&recv.hk, recv.n, mk, max_usize);
            recv.ck = ck;
            recv.n += 1;
        }
        Ok(())
    }

    /// The key of the next in-order message of the receiving chain.
    fn next_recv_key(&mut self) -> Result<MessageKey, CryptoError> {
        let Some(recv) = self.recv.as_mut() else {
            return Err(CryptoError::DecryptFailed {
                what: "ratchet header",
            });
        };
        let next_n = recv.n.checked_add(1).ok_or(CryptoError::CounterExhausted)?;
        let (ck, mk, _) = kdf_chain(&recv.ck);
        recv.ck = ck;
        recv.n = next_n;
        Ok(mk)
    }

    /// The state as postcard bytes (for storage).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CryptoError> {
        postcard::to_allocvec(self).map_err(|e| CryptoError::State(e.to_string()))
    }

    /// Restores a state saved by [`to_bytes`](Self::to_bytes); checks the version,
    /// the configuration and the skipped-key bound.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let s: Self = postcard::from_bytes(b).map_err(|e| CryptoError::State(e.to_string()))?;
        if s.version != MESSAGE_VERSION {
            return Err(CryptoError::UnsupportedVersion(s.version));
        }
        s.config.validate()?;
        if s.dhs
            .as_ref()
            .is_some_and(|k| k.secret.public_key() != k.public)
        {
            return Err(CryptoError::State(
                "ratchet public key does not match its secret".into(),
            ));
        }
        if s.skipped.len() > s.config.max_skip_usize() {
            return Err(CryptoError::State(
                "more skipped keys than the configured bound".into(),
            ));
        }
        Ok(s)
    }
}

/// The parts of a received message.
struct Incoming<'a> {
    nonce: &'a [u8; aead::NONCE_LEN],
    enc_header: &'a [u8],
    header_ad: &'a [u8],
    body: &'a [u8],
    body_ad: &'a [u8],
}

impl Incoming<'_> {
    /// `Ok(None)` when `hk` is not the header's key; an error when it is but the
    /// authenticated header is malformed.
    fn open_header(&self, hk: &Key32) -> Result<Option<Header>, CryptoError> {
        let Ok(padded) = aead::decrypt(&hk.0, self.nonce, self.header_ad, self.enc_header) else {
            return Ok(None);
        };
        let padded = Zeroizing::new(padded);
        let raw = smp_groups_wire::pad::unpad(&padded).map_err(|_| CryptoError::BadPadding {
            what: "ratchet header",
        })?;
        Header::decode(raw).map(Some)
    }

    fn open_body(&self, mk: MessageKey) -> Result<(Vec<u8>, MessageKey), CryptoError> {
        let padded = Zeroizing::new(
            aead::decrypt(&mk.key.0, &mk.nonce, self.body_ad, self.body).map_err(|_| {
                CryptoError::DecryptFailed {
                    what: "ratchet body",
                }
            })?,
        );
        let plain = smp_groups_wire::pad::unpad(&padded).map_err(|_| CryptoError::BadPadding {
            what: "ratchet body",
        })?;
        Ok((plain.to_vec(), mk))
    }
}

#[cfg(test)]
mod tests;
