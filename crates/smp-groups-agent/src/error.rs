//! Errors of the agent runtime.

use smp_groups_core::CommandError;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened, read or written.
    #[error("store: {0}")]
    Store(#[from] smp_groups_store::StoreError),
    /// The stored agent could not be restored.
    #[error("restore: {0}")]
    Restore(#[from] smp_groups_core::RestoreError),
    /// The agent refused the command.
    #[error("{0}")]
    Command(CommandError),
    /// The agent answered with an event the call did not expect.
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// The agent's task has stopped (shut down).
    #[error("the agent has stopped")]
    Stopped,
    /// A store failure stopped the agent's task (a full disk, say): nothing
    /// it accepted before is lost, nothing more is accepted; `smp-agent`
    /// exits non-zero so that a supervisor restarts it.
    #[error("the agent has stopped: store failed: {0}")]
    StoreFailed(String),
}
