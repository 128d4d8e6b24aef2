//! A `KeyLog` that keeps only the client handshake traffic secret of one connection.

use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

/// The NSS key log label of the secret that protects the client's handshake messages.
const LABEL: &str = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";

/// The secret, with the client random it was logged for.
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) client_random: Vec<u8>,
    pub(crate) secret: Zeroizing<Vec<u8>>,
}

/// Holds the client handshake traffic secret of the one connection it is installed on.
#[derive(Debug, Default)]
pub(crate) struct HandshakeSecretLog {
    slot: Mutex<Option<Logged>>,
}

impl HandshakeSecretLog {
    /// Takes the logged secret out.
    pub(crate) fn take(&self) -> Option<Logged> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl rustls::KeyLog for HandshakeSecretLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if label == LABEL {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Logged {
                client_random: client_random.to_vec(),
                secret: Zeroizing::new(secret.to_vec()),
            });
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == LABEL
    }
}
