//! The indexer: moves each durable checkpoint's positions from the in-memory index to the
//! disk index (`disk.rs`), one checkpoint at a time and off the write path. The flushers hand
//! it the head whenever a commit with a checkpoint is durable; the open hands it the head when
//! checkpoints wait to be moved (a log written before the disk index, or a crash before the
//! indexer caught up).
//!
//! If the disk index cannot be written (a full disk), the indexer stops and the positions stay
//! in memory, as they were before it existed: nothing is lost, and the next open retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use events::envelope::Hash;
use store::LogError;

use crate::blob::{checkpoint_key, hash_at, position_of_key, storage};
use crate::index::{Checkpoint, Index};

pub(crate) struct Indexer {
    pub(crate) tree: sled::Tree,
    pub(crate) index: Arc<RwLock<Index>>,
    pub(crate) queue: std::sync::mpsc::Receiver<u64>,
    /// Set when the log closes: the indexer stops after the checkpoint it is moving.
    pub(crate) stop: Arc<AtomicBool>,
}

impl Indexer {
    pub(crate) fn run(self) {
        // Moving checkpoints to disk can wait: a saturated CPU goes to appends and reads first,
        // and the positions stay in memory meanwhile.
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        if let Err(e) = thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ) {
            tracing::debug!(error = %e, "cannot lower the indexer's priority");
        }
        while let Ok(first) = self.queue.recv() {
            let head = self.queue.try_iter().fold(first, u64::max);
            if let Err(e) = self.move_upto(head) {
                tracing::warn!(error = %e, "cannot write the disk index; the log's index stays in memory");
                return;
            }
        }
    }

    /// Moves every checkpoint that ends at or below `head` and follows the base.
    fn move_upto(&self, head: u64) -> Result<(), LogError> {
        while !self.stop.load(Ordering::Relaxed) {
            let (base, disk) = {
                let index = self.index.read().expect("index lock is never poisoned");
                match index.disk() {
                    Some(disk) => (index.base(), disk.clone()),
                    None => return Ok(()),
                }
            };
            let next = self
                .tree
                .range(checkpoint_key(base + 1)..=checkpoint_key(head))
                .next()
                .transpose()
                .map_err(storage)?;
            let Some((key, bytes)) = next else {
                return Ok(());
            };
            let checkpoint = Checkpoint::decode(&bytes)
                .map_err(|e| LogError::corrupt(base + 1, format!("checkpoint: {e}")))?;
            if checkpoint.first != base + 1 || position_of_key(&key)? != checkpoint.last() {
                return Err(LogError::corrupt(base + 1, "checkpoint does not follow on"));
            }
            let before = self
                .index
                .read()
                .expect("index lock is never poisoned")
                .versions_before(&checkpoint)?;
            disk.write(&checkpoint, &before, last_hash(&self.tree, &checkpoint)?)?;
            let freed = self
                .index
                .write()
                .expect("index lock is never poisoned")
                .moved_to_disk(&checkpoint);
            // Freed outside the lock: the writer and readers wait for none of it.
            drop(freed);
        }
        Ok(())
    }
}

/// The hash of a checkpoint's last record, read from its last commit blob.
pub(crate) fn last_hash(tree: &sled::Tree, checkpoint: &Checkpoint) -> Result<Hash, LogError> {
    let first = checkpoint
        .blob_sizes
        .last()
        .map_or(checkpoint.first, |&(f, _)| f);
    hash_at(tree, first, checkpoint.last())
}
