//! The flusher: takes the open commit whenever it is idle, applies it with one `apply_batch`,
//! flushes (and `fdatasync`s, see `durable.rs`), publishes the durable head and only then
//! answers the appenders in it.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use store::{Appended, LogError};

use crate::acked::Acked;
use crate::blob::{checkpoint_key, log_key, storage};
use crate::commit::{Commit, Reply, Shared};
use crate::durable::SyncTarget;

/// Applies and flushes commits, publishes the durable head, answers appenders. Several run at
/// once: a flush mostly waits for the device, and while one waits another can write the next
/// commit, so more appenders are in flight per flush time.
pub(crate) struct Flusher {
    /// `None` when sled's own flush is all the configuration asks for.
    pub(crate) sync: Option<Arc<Mutex<SyncTarget>>>,
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) shared: Arc<Shared>,
    pub(crate) committed: Arc<watch::Sender<u64>>,
    /// Where answered commits' positions go to be recorded as the acknowledged head, when
    /// the log keeps one (with `Durability::Fsync`).
    pub(crate) acker: Option<std::sync::mpsc::Sender<u64>>,
    /// Where the heads of durable commits with a checkpoint go, for the indexer to move that
    /// checkpoint's positions to the disk index.
    pub(crate) indexer: Option<std::sync::mpsc::Sender<u64>>,
}

impl Flusher {
    pub(crate) fn run(self) {
        loop {
            // Commits are taken and applied under `apply_order`, so sled receives them in
            // position order: a flush then makes durable every commit applied before it, and a
            // crash keeps a prefix, never a later commit without an earlier one.
            let order = self
                .shared
                .apply_order
                .lock()
                .expect("apply lock is never poisoned: nothing panics while holding it");
            let (commit, blob, flush) = {
                let mut state = self.shared.lock();
                while state.open.is_empty() && !state.closing {
                    state = self
                        .shared
                        .work
                        .wait(state)
                        .expect("commit lock is never poisoned");
                }
                if state.open.is_empty() {
                    // Let the other flushers see `closing` too.
                    self.shared.work.notify_all();
                    return;
                }
                let mut commit = std::mem::take(&mut state.open);
                self.shared.space.notify_all();
                if let Some(message) = &state.failed {
                    let message = message.clone();
                    drop(state);
                    answer_all(commit.replies, &message);
                    continue;
                }
                let blob = (!commit.blob.is_empty())
                    .then(|| sled::IVec::from(std::mem::take(&mut commit.blob)));
                if let Some(blob) = &blob {
                    state.in_flight = Some((commit.blob_first, blob.clone()));
                }
                (commit, blob, state.start_flush())
            };
            let applied = self.apply(&commit, blob);
            self.shared.lock().in_flight = None;
            drop(order);
            // Also flushed when only refusals wait: they were decided against staged records.
            let flushed = applied
                .and_then(|()| self.db.flush().map(|_| ()).map_err(storage))
                .and_then(|()| self.sync_files());
            self.shared.lock().flushing.remove(&flush);
            if let Err(e) = flushed {
                fail(&self.shared, commit.replies, &e.to_string());
                continue;
            }
            publish_and_answer(&self.committed, commit.last, commit.replies);
            if let (Some(indexer), Some(_)) = (&self.indexer, &commit.checkpoint) {
                // Gone only when the indexer stopped (it said why).
                let _ = indexer.send(commit.last);
            }
            if let Some(acker) = &self.acker {
                // Gone only when the log is closing, after its last record.
                let _ = acker.send(commit.last);
            }
        }
    }

    fn sync_files(&self) -> Result<(), LogError> {
        let Some(sync) = &self.sync else {
            return Ok(());
        };
        let mut sync = sync
            .lock()
            .expect("sync lock is never poisoned: nothing panics while holding it");
        sync.sync()
            .map_err(|e| LogError::Storage(format!("fdatasync: {e}")))
    }

    fn apply(&self, commit: &Commit, blob: Option<sled::IVec>) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        let mut keys = 0;
        if let Some(blob) = blob {
            batch.insert(&log_key(commit.blob_first)[..], blob);
            keys += 1;
        }
        if let Some((last, checkpoint)) = &commit.checkpoint {
            batch.insert(&checkpoint_key(*last)[..], checkpoint.as_slice());
            keys += 1;
        }
        if keys > 0 {
            self.tree.apply_batch(batch).map_err(storage)?;
        }
        Ok(())
    }
}

/// Records the acknowledged head (`acked.rs`) for what the flushers made durable and
/// answered, at most every [`ACKED_EVERY`], off the write path: one small `fdatasync` ten
/// times a second instead of one per commit (which cost 17% of `bench append`). So the file
/// lags the log by up to that long (plus its fsync): a loss of only the commits acknowledged
/// in the last moments before a crash is not seen by it; damage at rest to anything older is.
/// When the log closes, it records the last position before the thread ends.
pub(crate) struct Acker {
    pub(crate) acked: Acked,
    pub(crate) queue: std::sync::mpsc::Receiver<u64>,
}

pub(crate) const ACKED_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Acker {
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.queue.recv() {
            let last = self.queue.try_iter().fold(first, u64::max);
            if let Err(e) = self.acked.advance(last) {
                // The flushers meet the same disk and fail the appends themselves.
                tracing::warn!(error = %e, "cannot record the acknowledged head");
            }
            std::thread::sleep(ACKED_EVERY);
        }
    }
}

/// Durable now: publish before answering, so an appender that reads after its answer sees its
/// own write. Readers cap what they show at this value. Another flusher may have published a
/// later head already (its flush covered this commit).
fn publish_and_answer(
    committed: &watch::Sender<u64>,
    last: u64,
    replies: Vec<(Reply, Result<Appended, LogError>)>,
) {
    committed.send_if_modified(|head| {
        let later = last > *head;
        if later {
            *head = last;
        }
        later
    });
    for (reply, answer) in replies {
        let _ = reply.send(answer);
    }
}

/// A write failed: nothing more is written, and these appends are answered 503. A storage
/// failure leaves sled in an unknown state: refuse (503, the outcome of these appends is
/// unknown: a keyed retry lands once), and let a restart recover.
fn fail(shared: &Shared, replies: Vec<(Reply, Result<Appended, LogError>)>, message: &str) {
    {
        let mut state = shared.lock();
        state.failed = Some(message.to_owned());
        shared.space.notify_all();
    }
    answer_all(replies, message);
}

fn answer_all(replies: Vec<(Reply, Result<Appended, LogError>)>, message: &str) {
    for (reply, _) in replies {
        let _ = reply.send(Err(LogError::Unavailable(message.to_owned())));
    }
}
