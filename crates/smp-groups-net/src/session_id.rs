//! The SMP session id: the `verify_data` of the client's TLS 1.3 Finished message.
//!
//! rustls does not expose Finished messages, so the value is recovered from the bytes the
//! client sent: the client handshake traffic secret (from a `KeyLog`) gives the key and IV
//! of the client's encrypted handshake records, which are decrypted to find the Finished.

use ring::{aead, hkdf};
use rustls::CipherSuite;

use crate::error::SessionIdError;

/// TLS record content types.
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
/// Handshake message types.
const CLIENT_HELLO: u8 = 1;
const FINISHED: u8 = 20;
/// Largest TLS 1.3 ciphertext record (2^14 + 256).
const MAX_CIPHERTEXT: usize = 16_384 + 256;
/// Record header length.
const HEADER: usize = 5;

/// Length type for HKDF output of a given size.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `HKDF-Expand-Label(secret, label, "", out.len())` of TLS 1.3 (RFC 8446 §7.1).
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), SessionIdError> {
    let bad = SessionIdError::Malformed("label length");
    let len = u16::try_from(out.len())
        .map_err(|_| bad.clone())?
        .to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).map_err(|_| bad.clone())?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| bad)
}

/// The decryption key of the client's handshake records.
struct RecordKey {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    hash_len: usize,
}

impl RecordKey {
    fn new(suite: CipherSuite, secret: &[u8]) -> Result<Self, SessionIdError> {
        let (hash, alg, hash_len) = match suite {
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => {
                (hkdf::HKDF_SHA256, &aead::CHACHA20_POLY1305, 32)
            }
            CipherSuite::TLS13_AES_128_GCM_SHA256 => (hkdf::HKDF_SHA256, &aead::AES_128_GCM, 32),
            CipherSuite::TLS13_AES_256_GCM_SHA384 => (hkdf::HKDF_SHA384, &aead::AES_256_GCM, 48),
            _ => return Err(SessionIdError::UnsupportedSuite),
        };
        if secret.len() != hash_len {
            return Err(SessionIdError::NoSecret);
        }
        let prk = hkdf::Prk::new_less_safe(hash, secret);
        let mut key_buf = zeroize::Zeroizing::new([0u8; 32]);
        let key = key_buf
            .get_mut(..alg.key_len())
            .ok_or(SessionIdError::UnsupportedSuite)?;
        expand_label(&prk, b"key", key)?;
        let mut iv = [0u8; 12];
        expand_label(&prk, b"iv", &mut iv)?;
        let unbound =
            aead::UnboundKey::new(alg, key).map_err(|_| SessionIdError::UnsupportedSuite)?;
        Ok(Self {
            key: aead::LessSafeKey::new(unbound),
            iv,
            hash_len,
        })
    }

    /// Decrypts record number `seq`, returning the inner content type and content.
    fn open<'b>(
        &self,
        seq: u64,
        header: &[u8],
        buf: &'b mut [u8],
    ) -> Result<(u8, &'b [u8]), SessionIdError> {
        let mut nonce = self.iv;
        for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(header),
                buf,
            )
            .map_err(|_| SessionIdError::Decrypt)?;
        // TLSInnerPlaintext: content || content type || zero padding.
        let end = plain
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(SessionIdError::Malformed("record without content type"))?;
        let (body, ty) = plain.split_at(end);
        let ty = ty
            .first()
            .copied()
            .ok_or(SessionIdError::Malformed("record"))?;
        Ok((ty, body))
    }
}

/// One record: header, fragment, and the bytes after it.
type Record<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Splits the next complete record off `data`: (header, fragment, rest).
/// `None` when `data` holds no complete record (the last one may be partial).
fn next_record(data: &[u8]) -> Result<Option<Record<'_>>, SessionIdError> {
    let Some(header) = data.get(..HEADER) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([
        header.get(3).copied().unwrap_or_default(),
        header.get(4).copied().unwrap_or_default(),
    ]));
    if len > MAX_CIPHERTEXT {
        return Err(SessionIdError::Malformed("record too long"));
    }
    let Some(fragment) = data.get(HEADER..HEADER + len) else {
        return Ok(None);
    };
    Ok(Some((
        header,
        fragment,
        data.get(HEADER + len..).unwrap_or_default(),
    )))
}

/// The client random of the ClientHello at the start of `recorded`.
pub(crate) fn client_random(recorded: &[u8]) -> Result<&[u8], SessionIdError> {
    let (header, fragment, _) = next_record(recorded)?.ok_or(SessionIdError::NoClientHello)?;
    if header.first() != Some(&HANDSHAKE) || fragment.first() != Some(&CLIENT_HELLO) {
        return Err(SessionIdError::NoClientHello);
    }
    // type(1) length(3) legacy_version(2) random(32)
    fragment.get(6..38).ok_or(SessionIdError::NoClientHello)
}

/// Derives the SMP session id from the bytes a TLS 1.3 client sent during its handshake.
///
/// `recorded` is everything the client sent from its ClientHello on (more may follow the
/// Finished; a partial last record is fine), `suite` the negotiated cipher suite,
/// `client_random` and `secret` the `CLIENT_HANDSHAKE_TRAFFIC_SECRET` key-log entry of the
/// connection. Returns the `verify_data` of the client's Finished message.
pub fn client_finished_from_records(
    recorded: &[u8],
    suite: CipherSuite,
    logged_random: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, SessionIdError> {
    if client_random(recorded)? != logged_random {
        return Err(SessionIdError::RandomMismatch);
    }
    let key = RecordKey::new(suite, secret)?;
    let mut handshake = Vec::new();
    let mut seq = 0u64;
    let mut rest = recorded;
    while let Some((header, fragment, after)) = next_record(rest)? {
        rest = after;
        match header.first().copied() {
            // Plaintext ClientHello(s) and the compatibility ChangeCipherSpec.
            Some(HANDSHAKE | CHANGE_CIPHER_SPEC) if seq == 0 => continue,
            Some(APPLICATION_DATA) => {}
            Some(ALERT) => return Err(SessionIdError::Malformed("alert during handshake")),
            _ => return Err(SessionIdError::Malformed("unexpected record type")),
        }
        let mut buf = fragment.to_vec();
        let (ty, body) = key.open(seq, header, &mut buf)?;
        seq += 1;
        if ty != HANDSHAKE {
            return Err(SessionIdError::Malformed(
                "non-handshake record before Finished",
            ));
        }
        handshake.extend_from_slice(body);
        if let Some(verify_data) = find_finished(&handshake) {
            if verify_data.len() != key.hash_len {
                return Err(SessionIdError::Malformed("Finished of wrong length"));
            }
            return Ok(verify_data.to_vec());
        }
    }
    Err(SessionIdError::NoFinished)
}

/// Walks complete handshake messages and returns the body of the first Finished.
fn find_finished(mut msgs: &[u8]) -> Option<&[u8]> {
    while let Some(head) = msgs.get(..4) {
        let len = head
            .get(1..4)
            .map(|l| l.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
            .unwrap_or_default();
        let body = msgs.get(4..4 + len)?;
        if head.first() == Some(&FINISHED) {
            return Some(body);
        }
        msgs = msgs.get(4 + len..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (simple 1-RTT handshake): the client handshake traffic secret and the
    /// client's handshake key and IV derived from it (TLS_AES_128_GCM_SHA256).
    #[test]
    fn expand_label_matches_rfc8448() {
        let secret = hex_bytes("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21");
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
        let mut key = [0u8; 16];
        expand_label(&prk, b"key", &mut key).unwrap();
        assert_eq!(key.to_vec(), hex_bytes("dbfaa693d1762c5b666af5d950258d01"));
        let mut iv = [0u8; 12];
        expand_label(&prk, b"iv", &mut iv).unwrap();
        assert_eq!(iv.to_vec(), hex_bytes("5bd3c71b836e0b76bb73265f"));
    }

    /// RFC 8448 §3: the client's Finished record, protected with its handshake keys.
    const RFC8448_CLIENT_FINISHED_RECORD: &str = "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546";

    /// RFC 8448 §3: the client's encrypted Finished record decrypts to the Finished
    /// message whose verify_data the RFC lists.
    #[test]
    fn decrypts_rfc8448_client_finished() {
        let secret = hex_bytes("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21");
        let random = [0x11u8; 32];
        let mut recorded = fake_client_hello(&random);
        let mut record = hex_bytes(RFC8448_CLIENT_FINISHED_RECORD);
        // A flipped ciphertext bit must fail authentication rather than yield a value.
        record[10] ^= 1;
        recorded.extend(record);
        assert_eq!(
            client_finished_from_records(
                &recorded,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                &random,
                &secret
            ),
            Err(SessionIdError::Decrypt)
        );
        let mut recorded = fake_client_hello(&random);
        recorded.extend(hex_bytes(RFC8448_CLIENT_FINISHED_RECORD));
        // Anything the client sends after its Finished (here a partial record) is ignored.
        recorded.extend([23, 3, 3, 0, 99, 1]);
        let id = client_finished_from_records(
            &recorded,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            &random,
            &secret,
        )
        .unwrap();
        assert_eq!(
            id,
            hex_bytes("a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
        );

        // After a HelloRetryRequest the client sends a ChangeCipherSpec and a second
        // ClientHello in plaintext before its encrypted records: both are skipped.
        let mut retried = fake_client_hello(&random);
        retried.extend([CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]);
        retried.extend(fake_client_hello(&random));
        retried.extend(hex_bytes(RFC8448_CLIENT_FINISHED_RECORD));
        assert_eq!(
            client_finished_from_records(
                &retried,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                &random,
                &secret,
            ),
            Ok(id)
        );
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        let random = [7u8; 32];
        let secret = [1u8; 32];
        let suite = CipherSuite::TLS13_CHACHA20_POLY1305_SHA256;
        assert_eq!(
            client_finished_from_records(&[], suite, &random, &secret),
            Err(SessionIdError::NoClientHello)
        );
        let hello = fake_client_hello(&random);
        assert_eq!(
            client_finished_from_records(&hello, suite, &[8u8; 32], &secret),
            Err(SessionIdError::RandomMismatch)
        );
        assert_eq!(
            client_finished_from_records(&hello, suite, &random, &secret),
            Err(SessionIdError::NoFinished)
        );
        assert_eq!(
            client_finished_from_records(&hello, suite, &random, &secret[..5]),
            Err(SessionIdError::NoSecret)
        );
        assert_eq!(
            client_finished_from_records(
                &hello,
                CipherSuite::TLS_NULL_WITH_NULL_NULL,
                &random,
                &secret
            ),
            Err(SessionIdError::UnsupportedSuite)
        );
        let mut partial = hello.clone();
        partial.extend([23, 3, 3, 0, 40, 1, 2, 3]);
        assert_eq!(
            client_finished_from_records(&partial, suite, &random, &secret),
            Err(SessionIdError::NoFinished)
        );
        let mut too_long = hello.clone();
        too_long.extend([23, 3, 3, 0xff, 0xff]);
        assert!(client_finished_from_records(&too_long, suite, &random, &secret).is_err());
        let mut garbage = hello.clone();
        garbage.extend([23, 3, 3, 0, 3, 1, 2, 3]);
        assert_eq!(
            client_finished_from_records(&garbage, suite, &random, &secret),
            Err(SessionIdError::Decrypt)
        );
        // Every prefix of a ClientHello record.
        for cut in 0..hello.len() {
            let _ = client_finished_from_records(&hello[..cut], suite, &random, &secret);
        }
    }

    #[test]
    fn finds_finished_among_handshake_messages() {
        let msgs = [11, 0, 0, 2, 9, 9, 20, 0, 0, 3, 1, 2, 3];
        assert_eq!(find_finished(&msgs), Some(&[1u8, 2, 3][..]));
        assert_eq!(find_finished(&msgs[..12]), None);
        assert_eq!(find_finished(&msgs[..6]), None);
        assert_eq!(find_finished(&[]), None);
    }

    /// A plaintext handshake record holding a minimal ClientHello prefix with `random`.
    fn fake_client_hello(random: &[u8; 32]) -> Vec<u8> {
        let mut body = vec![CLIENT_HELLO, 0, 0, 34, 3, 3];
        body.extend_from_slice(random);
        let mut rec = vec![HANDSHAKE, 3, 1, 0, u8::try_from(body.len()).unwrap()];
        rec.extend(body);
        rec
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }
}
