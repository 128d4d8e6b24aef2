//! A store on a thread of its own: [`Writer`] runs every [`Store::apply`]
//! (and its `fsync`) there, so the caller's thread (an async runtime's
//! worker) never waits for the disk, and the commits of several stores in one
//! process run side by side.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::error::StoreError;
use crate::store::Store;
use crate::txn::{Applied, Transaction};

/// What is called with the outcome of a commit, on the writer's thread.
type Done = Box<dyn FnOnce(Result<Applied, StoreError>) + Send>;

enum Job {
    Apply(Transaction, Done),
    Close(Box<dyn FnOnce() + Send>),
}

/// The handle of a store's writer thread.
///
/// Transactions are committed one at a time, in the order submitted; the
/// callback given with each one is called with its outcome (on the writer's
/// thread, so it should only hand the result on, e.g. through a channel). At
/// most `depth` jobs wait; [`Writer::submit`] refuses more
/// ([`StoreError::WriterBusy`]) instead of blocking its caller.
///
/// Dropping the handle lets the thread finish the jobs already submitted,
/// then close the store; [`Writer::close`] does the same and reports when the
/// store is closed.
///
/// ```
/// # fn main() -> Result<(), smp_groups_store::StoreError> {
/// use smp_groups_store::{Store, Transaction, Writer};
/// let writer = Writer::spawn(Store::open_in_memory()?, "doc", 2)?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let mut t = Transaction::new();
/// t.events_add.push(b"hello".to_vec());
/// writer.submit(t, move |r| drop(tx.send(r)))?;
/// let applied = rx.recv().expect("the writer answers")?;
/// assert_eq!(applied.event_seqs, vec![1]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Writer {
    jobs: SyncSender<Job>,
    depth: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Apply(t, _) => f.debug_tuple("Apply").field(&t.item_count()).finish(),
            Job::Close(_) => f.write_str("Close"),
        }
    }
}

impl Writer {
    /// Moves `store` to a new thread named `store-NAME` that commits what is
    /// submitted; at most `depth` (at least 1) jobs wait.
    pub fn spawn(store: Store, name: &str, depth: usize) -> Result<Self, StoreError> {
        let depth = depth.max(1);
        let (jobs, rx) = sync_channel(depth);
        std::thread::Builder::new()
            .name(format!("store-{}", name.replace('\0', "")))
            .spawn(move || serve(store, &rx))
            .map_err(StoreError::Thread)?;
        Ok(Self { jobs, depth })
    }

    /// Queues `txn` for commit; `done` is called with the outcome, which is
    /// exactly what [`Store::apply`] returns. Refused without waiting if
    /// `depth` jobs are already queued, or if the thread is gone.
    pub fn submit(
        &self,
        txn: Transaction,
        done: impl FnOnce(Result<Applied, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        self.send(Job::Apply(txn, Box::new(done)))
    }

    /// Closes the store once the jobs submitted before are done; `done` is
    /// called (on the writer's thread) when it is closed. Jobs submitted
    /// afterwards are refused, or dropped without their callback being
    /// called if they were queued before the thread ended.
    pub fn close(&self, done: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
        self.send(Job::Close(Box::new(done)))
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::WriterBusy { depth: self.depth },
            TrySendError::Disconnected(_) => StoreError::WriterStopped,
        })
    }
}

fn serve(mut store: Store, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Apply(txn, done) => done(store.apply(&txn)),
            Job::Close(done) => {
                drop(store);
                done();
                return;
            }
        }
    }
}
