//! Client settings.

use std::time::Duration;

use smp_groups_wire::smp::VersionRange;

/// Settings of an [`SmpClient`](super::SmpClient) connection.
#[derive(Debug, Clone)]
pub struct SmpClientConfig {
    /// The SMP versions offered; the highest one the relay shares is used.
    pub versions: VersionRange,
    /// Limit on TCP connect plus the TLS and SMP handshakes.
    pub connect_timeout: Duration,
    /// How long a command waits for its response.
    pub command_timeout: Duration,
    /// Send `PING` after this long without sending anything (`None`: never).
    pub keepalive: Option<Duration>,
    /// Close the connection after this many keep-alive intervals in a row in which a
    /// `PING` stayed unanswered and nothing else arrived.
    pub keepalive_max_missed: u32,
    /// How many commands may wait to be written before callers wait.
    pub command_queue: usize,
}

impl Default for SmpClientConfig {
    fn default() -> Self {
        Self {
            versions: VersionRange::SUPPORTED,
            connect_timeout: Duration::from_secs(20),
            command_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(30)),
            keepalive_max_missed: 3,
            command_queue: 1024,
        }
    }
}

/// Settings of a [`ReconnectingClient`](super::ReconnectingClient).
#[derive(Debug, Clone)]
pub struct ReconnectConfig {
    /// The settings of each connection.
    pub client: SmpClientConfig,
    /// The wait before the first reconnection attempt.
    pub initial_backoff: Duration,
    /// The longest wait between attempts (the wait doubles after each failure).
    pub max_backoff: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            client: SmpClientConfig::default(),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}
