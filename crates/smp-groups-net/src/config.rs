//! rustls configurations for SMP: TLS 1.3 only, TLS_CHACHA20_POLY1305_SHA256, X25519,
//! ALPN `smp/1`, no SNI, no resumption, no tickets, no early data.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, ring as provider};
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};

use crate::error::NetError;
use crate::identity::ServerIdentity;
use crate::verify::KeyHashVerifier;

/// The ALPN protocol name of SMP.
pub const ALPN_SMP: &[u8] = b"smp/1";

/// The ring provider restricted to the one suite and key exchange SMP uses.
fn smp_provider() -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    p.kx_groups = vec![provider::kx_group::X25519];
    Arc::new(p)
}

/// A client configuration that accepts only the relay whose identity certificate hashes
/// to `key_hash` (the key hash of the relay's address).
pub fn client_config(key_hash: [u8; 32]) -> Result<ClientConfig, NetError> {
    let mut config = ClientConfig::builder_with_provider(smp_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(KeyHashVerifier::new(key_hash)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_SMP.to_vec()];
    config.enable_sni = false;
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}

/// A relay configuration presenting the chain `[online, identity]` of `identity`.
pub fn server_config(identity: &ServerIdentity) -> Result<ServerConfig, NetError> {
    let mut config = ServerConfig::builder_with_provider(smp_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain(), identity.online_key())?;
    config.alpn_protocols = vec![ALPN_SMP.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}
