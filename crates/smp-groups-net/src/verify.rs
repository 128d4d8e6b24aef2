//! The client's check of a relay's certificates: the key hash of the address pins the
//! identity certificate, which must have signed the online certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::cert::{Algorithm, Cert};
use crate::error::CertError;

/// Validates a relay's certificate chain `[online, identity, ...]` at time `now` (Unix seconds).
///
/// As SMP clients do: 2 to 4 certificates; the key hash is the SHA-256 of the whole DER
/// of the second one (the identity certificate; in a chain of 2 it is the last); each
/// certificate is signed by the next one, whose subject is its issuer; all certificates
/// are within their validity period. The last certificate is the trust anchor.
pub fn validate_chain(chain: &[&[u8]], key_hash: &[u8; 32], now: i64) -> Result<(), CertError> {
    if !(2..=4).contains(&chain.len()) {
        return Err(CertError::ChainLength(chain.len()));
    }
    let identity = chain.get(1).ok_or(CertError::ChainLength(chain.len()))?;
    if &smp_groups_crypto::sha256(identity) != key_hash {
        return Err(CertError::KeyHashMismatch);
    }
    let certs = chain
        .iter()
        .map(|der| Cert::parse(der))
        .collect::<Result<Vec<_>, _>>()?;
    for cert in &certs {
        cert.check_time(now)?;
    }
    for pair in certs.windows(2) {
        if let [subject, issuer] = pair {
            subject.verify_signed_by(issuer)?;
        }
    }
    Ok(())
}

/// A rustls server certificate verifier for SMP relays, pinned to a key hash.
///
/// It accepts Ed25519 and Ed448 certificates and handshake signatures (rustls cannot
/// verify Ed448 itself).
#[derive(Debug, Clone)]
pub struct KeyHashVerifier {
    key_hash: [u8; 32],
}

impl KeyHashVerifier {
    /// A verifier that accepts the relay whose identity certificate hashes to `key_hash`.
    pub fn new(key_hash: [u8; 32]) -> Self {
        Self { key_hash }
    }
}

/// Wraps a certificate error for rustls.
fn to_rustls(e: CertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for KeyHashVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(AsRef::as_ref))
            .collect();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        validate_chain(&chain, &self.key_hash, now).map_err(to_rustls)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("SMP requires TLS 1.3".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let leaf = Cert::parse(cert.as_ref()).map_err(to_rustls)?;
        let expected = match leaf.key_algorithm {
            Algorithm::Ed25519 => SignatureScheme::ED25519,
            Algorithm::Ed448 => SignatureScheme::ED448,
        };
        if dss.scheme != expected {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        leaf.key_algorithm
            .verify(leaf.public_key, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED448, SignatureScheme::ED25519]
    }
}
