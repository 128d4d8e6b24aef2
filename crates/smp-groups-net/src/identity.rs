//! The relay's certificates: a long-term identity certificate (self-signed, CA-like) whose
//! hash is the key hash of the relay's address, and an online certificate signed by it that
//! the relay presents in TLS as `[online, identity]`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cert::{Algorithm, Cert};
use crate::error::{CertError, NetError};

/// File of the identity certificate (PEM).
const IDENTITY_CERT: &str = "ca.crt";
/// File of the identity private key (PEM, PKCS#8). Not needed at run time: it may be kept
/// offline once the online certificate is issued.
const IDENTITY_KEY: &str = "ca.key";
/// File of the online certificate (PEM).
const ONLINE_CERT: &str = "server.crt";
/// File of the online private key (PEM, PKCS#8).
const ONLINE_KEY: &str = "server.key";

/// A relay's TLS identity, persisted in a data directory.
pub struct ServerIdentity {
    identity: CertificateDer<'static>,
    online: CertificateDer<'static>,
    online_key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("key_hash", &self.key_hash())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads the identity from `dir`, or creates it (Ed25519 identity and online
    /// certificates) when `dir` holds none of its files. A directory with only some of
    /// them is an error, so that a relay never silently changes its identity.
    pub fn load_or_create(dir: &Path) -> Result<Self, NetError> {
        let path = |name: &str| dir.join(name);
        let present =
            [IDENTITY_CERT, IDENTITY_KEY, ONLINE_CERT, ONLINE_KEY].map(|n| path(n).exists());
        if present.iter().all(|p| !p) {
            fs::create_dir_all(dir)?;
            return Self::generate()?.store(dir);
        }
        for name in [IDENTITY_CERT, ONLINE_CERT, ONLINE_KEY] {
            if !path(name).exists() {
                return Err(file_error(
                    &path(name),
                    "missing (the identity directory is incomplete)",
                ));
            }
        }
        Self::load(dir)
    }

    /// Generates a new identity and online certificate with their keys.
    fn generate() -> Result<GeneratedIdentity, NetError> {
        let identity_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut identity_params = CertificateParams::new(Vec::<String>::new())?;
        identity_params
            .distinguished_name
            .push(DnType::CommonName, "SMP relay identity");
        identity_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        identity_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let identity_cert = identity_params.self_signed(&identity_key)?;

        let online_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut online_params = CertificateParams::new(Vec::<String>::new())?;
        online_params
            .distinguished_name
            .push(DnType::CommonName, "SMP relay");
        online_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer = Issuer::from_params(&identity_params, &identity_key);
        let online_cert = online_params.signed_by(&online_key, &issuer)?;

        Ok(GeneratedIdentity {
            identity: ServerIdentity {
                identity: identity_cert.der().clone(),
                online: online_cert.der().clone(),
                online_key: PrivatePkcs8KeyDer::from(online_key.serialize_der()),
            },
            identity_key_pem: identity_key.serialize_pem(),
            identity_pem: identity_cert.pem(),
            online_pem: online_cert.pem(),
            online_key_pem: online_key.serialize_pem(),
        })
    }

    /// Loads and checks the files in `dir`.
    fn load(dir: &Path) -> Result<Self, NetError> {
        let identity = read_cert(&dir.join(IDENTITY_CERT))?;
        let online = read_cert(&dir.join(ONLINE_CERT))?;
        let key_path = dir.join(ONLINE_KEY);
        let key_pem = fs::read(&key_path)?;
        let online_key = PrivatePkcs8KeyDer::from_pem_slice(&key_pem)
            .map_err(|e| file_error(&key_path, &format!("not a PKCS#8 PEM key: {e}")))?;

        let id_cert = Cert::parse(&identity)?;
        let on_cert = Cert::parse(&online)?;
        on_cert.verify_signed_by(&id_cert)?;
        if on_cert.key_algorithm != Algorithm::Ed25519 {
            return Err(CertError::UnsupportedAlgorithm.into());
        }
        let pair = KeyPair::try_from(&online_key)
            .map_err(|e| file_error(&key_path, &format!("invalid key: {e}")))?;
        if pair.public_key_raw() != on_cert.public_key {
            return Err(file_error(
                &key_path,
                "key does not match the online certificate",
            ));
        }
        Ok(Self {
            identity,
            online,
            online_key,
        })
    }

    /// The key hash of the relay's address: SHA-256 of the DER identity certificate.
    pub fn key_hash(&self) -> [u8; 32] {
        smp_groups_crypto::sha256(&self.identity)
    }

    /// The DER identity certificate.
    pub fn identity_der(&self) -> &[u8] {
        &self.identity
    }

    /// The DER online certificate.
    pub fn online_der(&self) -> &[u8] {
        &self.online
    }

    /// The chain the relay presents: `[online, identity]`.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.online.clone(), self.identity.clone()]
    }

    /// Signs `message` with the online key (Ed25519).
    pub(crate) fn sign_online(&self, message: &[u8]) -> Result<[u8; 64], NetError> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
            self.online_key.secret_pkcs8_der(),
        )
        .map_err(|_| CertError::UnsupportedAlgorithm)?;
        let mut out = [0u8; 64];
        out.copy_from_slice(pair.sign(message).as_ref());
        Ok(out)
    }

    /// The online private key.
    pub fn online_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.online_key.clone_key())
    }
}

/// A freshly generated identity with the PEM texts to store.
struct GeneratedIdentity {
    identity: ServerIdentity,
    identity_key_pem: String,
    identity_pem: String,
    online_pem: String,
    online_key_pem: String,
}

impl GeneratedIdentity {
    /// Writes the four files (keys readable by the owner only) and returns the identity.
    fn store(self, dir: &Path) -> Result<ServerIdentity, NetError> {
        write_file(
            &dir.join(IDENTITY_KEY),
            self.identity_key_pem.as_bytes(),
            true,
        )?;
        write_file(&dir.join(ONLINE_KEY), self.online_key_pem.as_bytes(), true)?;
        write_file(&dir.join(ONLINE_CERT), self.online_pem.as_bytes(), false)?;
        // Written last: its presence marks a complete directory.
        write_file(
            &dir.join(IDENTITY_CERT),
            self.identity_pem.as_bytes(),
            false,
        )?;
        Ok(self.identity)
    }
}

fn file_error(path: &Path, reason: &str) -> NetError {
    NetError::IdentityFile {
        path: PathBuf::from(path),
        reason: reason.to_owned(),
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, NetError> {
    let pem = fs::read(path)?;
    CertificateDer::from_pem_slice(&pem)
        .map_err(|e| file_error(path, &format!("not a PEM certificate: {e}")))
}

/// Writes `data` to a temporary file beside `path`, then renames it into place.
fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
