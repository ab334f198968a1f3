//! What the writer and the flusher hand each other: an append and where its answer goes
//! ([`Request`], [`Reply`]), the commit being filled and the one being written ([`Shared`]).

use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use store::{AppendRequest, Appended, LogError};

use crate::config::LogConfig;

/// Where an append's answer goes, once its commit is durable.
pub(crate) type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// One append on the writer's queue.
pub(crate) struct Request {
    pub(crate) append: AppendRequest,
    pub(crate) reply: Reply,
}

/// What the writer and the flusher share: the commit being filled, and the one being written.
pub(crate) struct Shared {
    state: Mutex<Commits>,
    /// The flusher waits here for a commit to write.
    pub(crate) work: Condvar,
    /// The writer waits here while the open commit is full.
    pub(crate) space: Condvar,
    /// Held from taking a commit until sled has it (see `Flusher::run`).
    pub(crate) apply_order: Mutex<()>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            state: Mutex::new(Commits::default()),
            work: Condvar::new(),
            space: Condvar::new(),
            apply_order: Mutex::new(()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Commits> {
        self.state
            .lock()
            .expect("commit lock is never poisoned: nothing panics while holding it")
    }
}

#[derive(Default)]
pub(crate) struct Commits {
    /// Filled by the writer, taken whole by the flusher.
    pub(crate) open: Commit,
    /// The blob the flusher has taken but not yet applied: the writer may need to read a record
    /// of it (dedupe) before sled has it.
    pub(crate) in_flight: Option<(u64, sled::IVec)>,
    /// The writer is done: the flusher writes what is open and stops.
    pub(crate) closing: bool,
    /// A storage error stopped the flusher; nothing more is written.
    pub(crate) failed: Option<String>,
    /// When each commit a flusher is writing was taken, by a number of its own: a write the
    /// disk has not confirmed for [`STALLED_AFTER`] means appends cannot commit now.
    pub(crate) flushing: std::collections::BTreeMap<u64, std::time::Instant>,
    next_flush: u64,
}

/// A write unconfirmed this long is stalled: its append is answered 503 and `/readyz` is 503
/// until the disk answers (a full disk can hold sled's flush without an error).
pub(crate) const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

impl Commits {
    /// Notes that a flusher has taken a commit to write; the number to give back when done.
    pub(crate) fn start_flush(&mut self) -> u64 {
        self.next_flush += 1;
        self.flushing
            .insert(self.next_flush, std::time::Instant::now());
        self.next_flush
    }

    /// Why appends cannot commit now, if they cannot: a failed write, or one stalled.
    pub(crate) fn unavailable(&self) -> Option<String> {
        if let Some(why) = &self.failed {
            return Some(why.clone());
        }
        let stalled = self.flushing.values().min()?.elapsed();
        (stalled >= STALLED_AFTER).then(|| {
            format!(
                "the disk has not confirmed a write for {} s (full or failing?)",
                stalled.as_secs()
            )
        })
    }
}

/// One commit: a blob of records (maybe none), maybe a checkpoint, and the answers to send
/// once it is durable. Refusals wait too, because they were decided against staged records.
#[derive(Default)]
pub(crate) struct Commit {
    pub(crate) blob_first: u64,
    /// Empty while it has no record; else the format byte and the records.
    pub(crate) blob: Vec<u8>,
    pub(crate) last: u64,
    pub(crate) checkpoint: Option<(u64, Vec<u8>)>,
    pub(crate) replies: Vec<(Reply, Result<Appended, LogError>)>,
}

impl Commit {
    pub(crate) fn is_empty(&self) -> bool {
        self.blob.is_empty() && self.replies.is_empty() && self.checkpoint.is_none()
    }

    /// No more appends fit. A checkpoint ends its commit: it covers whole blobs.
    pub(crate) fn is_full(&self, config: &LogConfig) -> bool {
        self.checkpoint.is_some()
            || self.replies.len() >= config.batch_appends_max.max(1)
            || self.blob.len() >= config.batch_bytes_max
    }
}
