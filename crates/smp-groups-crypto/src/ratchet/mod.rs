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
//! The DH ratchet turns at most once every [`RatchetConfig::dh_step_every`]
//! messages (sent and received) per side, and only after a new ratchet key from
//! the peer, so the two sides' root chains stay identical (see the DH step policy
//! in `docs/crypto.md`).
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
use zeroize::{Zeroize, Zeroizing};

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

/// The default DH step policy ([`RatchetConfig::dh_step_every`]).
pub const DEFAULT_DH_STEP_EVERY: u32 = 64;
/// The largest configurable [`RatchetConfig::dh_step_every`]: beyond it the saved
/// X25519 work is negligible and only the post-compromise window grows.
pub const DH_STEP_EVERY_LIMIT: u32 = 1024;

/// Settings fixed for the life of a session (stored with the state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatchetConfig {
    /// At most this many skipped message keys are kept, and one message may skip
    /// at most this many.
    pub max_skip: u32,
    /// Every body is padded to this length before encryption.
    pub body_padded_len: u16,
    /// The DH step policy, K: once a new ratchet key from the peer has arrived,
    /// this side makes a new key pair (the sending half of a DH step) at its first
    /// send after at least K messages went through it, sent or received, since its
    /// previous new key pair (or when it has no sending chain yet). `1` turns at
    /// every opportunity, as Signal's double ratchet does. From 1 to
    /// [`DH_STEP_EVERY_LIMIT`]; [`DEFAULT_DH_STEP_EVERY`] by default. Only the
    /// sender's choice matters: the two sides of a session may differ.
    pub dh_step_every: u32,
}

impl Default for RatchetConfig {
    fn default() -> Self {
        Self {
            max_skip: DEFAULT_MAX_SKIP,
            body_padded_len: DEFAULT_BODY_PADDED,
            dh_step_every: DEFAULT_DH_STEP_EVERY,
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
        if !(1..=DH_STEP_EVERY_LIMIT).contains(&self.dh_step_every) {
            return Err(CryptoError::BadConfig("dh_step_every must be 1 to 1024"));
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
    /// Our current ratchet key pair; `None` only for an initiator that has not
    /// sent yet. It is kept after a new peer key arrives, until our next turn.
    dhs: Option<KeyPair>,
    /// The peer's current ratchet public key.
    dhr: Option<PublicKey>,
    /// The sending chain; `None` until the first send.
    send: Option<Chain>,
    recv: Option<Chain>,
    /// Messages in our previous sending chain.
    pn: u32,
    nhks: Key32,
    nhkr: Key32,
    skipped: Skipped,
    /// The peer's key `dhr` arrived after our last turn (or is the responder's
    /// initial key): our next send may turn the DH ratchet.
    turn_pending: bool,
    /// Messages received since our last turn.
    received_since_turn: u32,
    /// DH ratchet half-steps done by this side.
    dh_steps: u64,
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ratchet")
            .field("config", &self.config)
            .field("sent", &self.send.as_ref().map(|c| c.n))
            .field("received", &self.recv.as_ref().map(|c| c.n))
            .field("pn", &self.pn)
            .field("skipped", &self.skipped.len())
            .field("turn_pending", &self.turn_pending)
            .field("dh_steps", &self.dh_steps)
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
            // The responder's initial key waits for our first key pair.
            turn_pending: true,
            received_since_turn: 0,
            dh_steps: 0,
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
            turn_pending: false,
            received_since_turn: 0,
            dh_steps: 0,
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

    /// How many DH ratchet half-steps this side has done since the session
    /// started: one X25519 agreement on receiving a new peer key, and a new key
    /// pair plus one agreement at each of its own turns (the initial agreement is
    /// not counted). Saved with the state; for tests and metrics.
    pub fn dh_steps(&self) -> u64 {
        self.dh_steps
    }

    /// Whether the next [`encrypt`](Self::encrypt) turns the DH ratchet (the
    /// policy of [`RatchetConfig::dh_step_every`]).
    fn turn_due(&self) -> bool {
        let k = self.config.dh_step_every;
        self.turn_pending
            && self.send.as_ref().is_none_or(|c| {
                u64::from(c.n) + u64::from(self.received_since_turn) >= u64::from(k)
            })
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
        let turn = self.turn_due();
        if !turn {
            match &self.send {
                None => return Err(CryptoError::NotReady),
                Some(c) if c.n == u32::MAX => return Err(CryptoError::CounterExhausted),
                Some(_) => {}
            }
        }
        // The padded body goes straight into the message and is encrypted there;
        // until then the buffer holds plaintext, so it is zeroized if dropped.
        let mut msg = Zeroizing::new(Vec::with_capacity(self.config.message_len()));
        msg.resize(PREFIX_LEN, 0);
        smp_groups_wire::pad::pad_into(
            plaintext,
            usize::from(self.config.body_padded_len),
            &mut msg,
        )
        .map_err(|_| CryptoError::TooLong {
            len: plaintext.len(),
            max: self.config.max_plaintext(),
        })?;
        if turn {
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
        let (head, body) = msg.split_at_mut(PREFIX_LEN);
        let (version_out, rest) = head.split_at_mut(2);
        let (nonce_out, enc_header) = rest.split_at_mut(aead::NONCE_LEN);
        let (header_out, header_tag) = enc_header.split_at_mut(HEADER_PADDED);
        version_out.copy_from_slice(&version);
        nonce_out.copy_from_slice(&header_nonce);
        header_out.copy_from_slice(&padded_header);
        // One buffer for both associated data: AD || version || ad for the
        // header, then AD || prefix || ad for the body.
        let mut assoc = Vec::with_capacity(self.assoc.len() + PREFIX_LEN + ad.len());
        assoc.extend_from_slice(&self.assoc);
        assoc.extend_from_slice(&version);
        assoc.extend_from_slice(ad);
        header_tag.copy_from_slice(&aead::seal_in_place(
            &send.hk.0,
            &header_nonce,
            &assoc,
            header_out,
        ));
        assoc.truncate(self.assoc.len());
        assoc.extend_from_slice(head);
        assoc.extend_from_slice(ad);
        let tag = aead::seal_in_place(&mk.key.0, &mk.nonce, &assoc, body);
        msg.extend_from_slice(&tag);
        send.ck = ck;
        send.n += 1;
        // The buffer now holds only ciphertext.
        Ok((mem::take(&mut *msg), mk))
    }

    /// The sending half of the DH ratchet step (a turn): a fresh key pair, done
    /// in `encrypt` (so decryption needs no randomness) when [`Self::turn_due`].
    fn send_step(&mut self, rng: &mut (impl RngCore + CryptoRng)) -> Result<(), CryptoError> {
        let dhr = self.dhr.ok_or(CryptoError::NotReady)?;
        let dhs = KeyPair::new(SecretKey::generate(rng));
        let dh = dhs.secret.diffie_hellman_checked(&dhr)?;
        let (root, ck, nhks) = kdf_root(&self.root, dh.as_bytes());
        let hk = mem::replace(&mut self.nhks, nhks);
        self.root = root;
        self.pn = self.send.as_ref().map_or(0, |c| c.n);
        self.send = Some(Chain { ck, hk, n: 0 });
        // The old private key goes: the peer's next key will be agreed with this one.
        self.dhs = Some(dhs);
        self.turn_pending = false;
        self.received_since_turn = 0;
        self.dh_steps = self.dh_steps.saturating_add(1);
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
        let Ok(enc_header) = <&[u8; ENC_HEADER_LEN]>::try_from(enc_header) else {
            unreachable!("the length was checked")
        };
        let version_n = u16::from_be_bytes(*version);
        if version_n != self.version {
            return Err(CryptoError::UnsupportedVersion(version_n));
        }
        // Both associated data in one buffer: AD || version || ad, AD || prefix || ad.
        let mut assoc = Vec::with_capacity(2 * (self.assoc.len() + ad.len()) + 2 + PREFIX_LEN);
        assoc.extend_from_slice(&self.assoc);
        assoc.extend_from_slice(version);
        assoc.extend_from_slice(ad);
        let header_ad_len = assoc.len();
        assoc.extend_from_slice(&self.assoc);
        assoc.extend_from_slice(prefix);
        assoc.extend_from_slice(ad);
        let (header_ad, body_ad) = assoc.split_at(header_ad_len);
        let input = Incoming {
            nonce,
            enc_header,
            header_ad,
            body,
            body_ad,
        };
        // Nothing changes until the body has opened: the update is computed from
        // the current state, then applied.
        let (update, mk) = self.plan(&input)?;
        let plain = input.open_body(&mk)?;
        self.apply(update);
        Ok((plain, mk))
    }

    /// Finds the key of an incoming message and what its use changes, without
    /// changing anything.
    fn plan(&self, m: &Incoming<'_>) -> Result<(Update, MessageKey), CryptoError> {
        // 1. The current receiving chain (in order, ahead, or a kept skipped key).
        if let Some(recv) = &self.recv {
            if let Some(h) = m.open_header(&recv.hk)? {
                if let Some(i) = self.skipped.find(&recv.hk, h.n) {
                    let mk = self.key_at(i)?;
                    return Ok((Update::Used(i), mk));
                }
                if h.n < recv.n {
                    return Err(CryptoError::Replay { n: h.n });
                }
                self.check_skip(u64::from(h.n - recv.n))?;
                let mut keep = Vec::new();
                let (chain, mk) = advance(recv, h.n, &mut keep)?;
                return Ok((
                    Update::Advance {
                        keep,
                        recv: chain,
                        turn: None,
                    },
                    mk,
                ));
            }
        }
        // 2. The next header key: the peer has a new ratchet key (it turned).
        if let Some(h) = m.open_header(&self.nhkr)? {
            let old = match &self.recv {
                Some(recv) if h.pn < recv.n => return Err(CryptoError::Replay { n: h.pn }),
                Some(recv) => Some((recv, h.pn - recv.n)),
                None => None,
            };
            let old_skip = old.as_ref().map_or(0, |(_, skip)| u64::from(*skip));
            self.check_skip(old_skip + u64::from(h.n))?;
            // The receiving half of the DH step, with our *current* key pair: the
            // one the peer's new key was agreed with.
            let dhs = self.dhs.as_ref().ok_or(CryptoError::DecryptFailed {
                what: "ratchet header",
            })?;
            let dh = dhs.secret.diffie_hellman_checked(&h.dh)?;
            let (root, ck, nhkr) = kdf_root(&self.root, dh.as_bytes());
            let mut keep = Vec::new();
            if let Some((recv, _)) = old {
                skip_keys(recv, h.pn, &mut keep);
            }
            let new = Chain {
                ck,
                hk: self.nhkr.clone(),
                n: 0,
            };
            let (chain, mk) = advance(&new, h.n, &mut keep)?;
            return Ok((
                Update::Advance {
                    keep,
                    recv: chain,
                    turn: Some(Box::new(PeerTurn {
                        root,
                        nhkr,
                        dhr: h.dh,
                    })),
                },
                mk,
            ));
        }
        // 3. Kept keys of earlier chains.
        for hk in self.skipped.header_keys() {
            if let Some(h) = m.open_header(hk)? {
                return match self.skipped.find(hk, h.n) {
                    Some(i) => Ok((Update::Used(i), self.key_at(i)?)),
                    None => Err(CryptoError::Replay { n: h.n }),
                };
            }
        }
        Err(CryptoError::DecryptFailed {
            what: "ratchet header",
        })
    }

    fn key_at(&self, i: usize) -> Result<MessageKey, CryptoError> {
        self.skipped
            .key_at(i)
            .cloned()
            .ok_or(CryptoError::DecryptFailed {
                what: "ratchet header",
            })
    }

    /// One message may skip at most `max_skip` keys, counting the rest of the
    /// previous chain and the current one.
    fn check_skip(&self, skip: u64) -> Result<(), CryptoError> {
        let max = self.config.max_skip;
        if skip > u64::from(max) {
            return Err(CryptoError::TooManySkipped { skip, max });
        }
        Ok(())
    }

    /// Applies a planned update after its message opened.
    fn apply(&mut self, update: Update) {
        match update {
            Update::Used(i) => self.skipped.remove(i),
            Update::Advance { keep, recv, turn } => {
                let max = self.config.max_skip_usize();
                for k in keep {
                    self.skipped.push(k.hk, k.n, k.mk, max);
                }
                if let Some(turn) = turn {
                    let PeerTurn { root, nhkr, dhr } = *turn;
                    self.root = root;
                    self.nhkr = nhkr;
                    self.dhr = Some(dhr);
                    // Our key pair and sending chain stay until our next turn.
                    self.turn_pending = true;
                    self.dh_steps = self.dh_steps.saturating_add(1);
                }
                self.recv = Some(recv);
            }
        }
        self.received_since_turn = self.received_since_turn.saturating_add(1);
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
        if s.send.is_some() && s.dhs.is_none() {
            return Err(CryptoError::State(
                "a sending chain without a ratchet key pair".into(),
            ));
        }
        if s.turn_pending && s.dhr.is_none() {
            return Err(CryptoError::State(
                "a pending DH step without a peer ratchet key".into(),
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

/// A skipped message key to keep.
struct Kept {
    hk: Key32,
    n: u32,
    mk: MessageKey,
}

/// The receiving half of a DH step.
struct PeerTurn {
    root: Key32,
    nhkr: Key32,
    dhr: PublicKey,
}

/// What a successful decryption changes.
enum Update {
    /// A kept key (at this index) was used.
    Used(usize),
    /// The receiving chain moved on, keeping the keys it skipped, after a DH step
    /// when the peer's key is new.
    Advance {
        keep: Vec<Kept>,
        recv: Chain,
        turn: Option<Box<PeerTurn>>,
    },
}

/// Adds to `keep` the keys of messages `chain.n .. until` of `chain` (none when
/// `until <= chain.n`); returns the chain key of message `until`.
fn skip_keys(chain: &Chain, until: u32, keep: &mut Vec<Kept>) -> Key32 {
    let mut ck = chain.ck.clone();
    for n in chain.n..until {
        let (next, mk, _) = kdf_chain(&ck);
        keep.push(Kept {
            hk: chain.hk.clone(),
            n,
            mk,
        });
        ck = next;
    }
    ck
}

/// Walks `chain` to message `n`, adding the keys of the messages before `n` to
/// `keep`; returns the chain after message `n` and the key of message `n`.
fn advance(
    chain: &Chain,
    n: u32,
    keep: &mut Vec<Kept>,
) -> Result<(Chain, MessageKey), CryptoError> {
    if n < chain.n {
        return Err(CryptoError::Replay { n });
    }
    let next_n = n.checked_add(1).ok_or(CryptoError::CounterExhausted)?;
    let (ck, mk, _) = kdf_chain(&skip_keys(chain, n, keep));
    Ok((
        Chain {
            ck,
            hk: chain.hk.clone(),
            n: next_n,
        },
        mk,
    ))
}

/// The parts of a received message.
struct Incoming<'a> {
    nonce: &'a [u8; aead::NONCE_LEN],
    enc_header: &'a [u8; ENC_HEADER_LEN],
    header_ad: &'a [u8],
    body: &'a [u8],
    body_ad: &'a [u8],
}

impl Incoming<'_> {
    /// `Ok(None)` when `hk` is not the header's key; an error when it is but the
    /// authenticated header is malformed.
    fn open_header(&self, hk: &Key32) -> Result<Option<Header>, CryptoError> {
        let mut buf = Zeroizing::new(*self.enc_header);
        let Ok(padded) = aead::open_in_place(&hk.0, self.nonce, self.header_ad, &mut buf[..])
        else {
            return Ok(None);
        };
        let raw = smp_groups_wire::pad::unpad(padded).map_err(|_| CryptoError::BadPadding {
            what: "ratchet header",
        })?;
        Header::decode(raw).map(Some)
    }

    fn open_body(&self, mk: &MessageKey) -> Result<Vec<u8>, CryptoError> {
        let mut buf = self.body.to_vec();
        let opened = aead::open_in_place(&mk.key.0, &mk.nonce, self.body_ad, &mut buf);
        let Ok(padded) = opened else {
            return Err(CryptoError::DecryptFailed {
                what: "ratchet body",
            });
        };
        let plain = smp_groups_wire::pad::unpad(padded)
            .map(<[u8]>::to_vec)
            .map_err(|_| CryptoError::BadPadding {
                what: "ratchet body",
            });
        // Only the length and the message itself are secret; the fill is '#'.
        let secret_len = plain.as_ref().map_or(padded.len(), |p| p.len() + 2);
        padded[..secret_len].zeroize();
        plain
    }
}

#[cfg(test)]
mod tests;
