//! The indexer: moves each durable checkpoint's positions from the in-memory index to the
//! disk index (`disk.rs`), one checkpoint at a time and off the write path. The flushers hand
//! it the head whenever a commit with a checkpoint is durable; the open hands it the head when
//! checkpoints wait to be moved (a log written before the disk index, or a crash before the
//! indexer caught up).
//!
//! If the disk index cannot be written (a full disk, an I/O error), the indexer stops, the
//! positions stay in memory, and the log reports itself not ready (`LogReader::ready`): fjall
//! keeps a failed write as a poisoned keyspace, so the server reopens the log once the disk
//! takes writes again (SPEC §17). Nothing is lost: the checkpoints hold what the index does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use events::envelope::Hash;
use store::LogError;

use crate::blob::{checkpoint_key, hash_at, position_of_key, storage};
use crate::index::{Checkpoint, Index};

/// Checkpoints on disk whose positions have not left memory yet, oldest first.
pub(crate) type Moves = Arc<Mutex<Vec<Checkpoint>>>;

/// Drops the moved checkpoints' positions from memory, under the index's write lock. The
/// writer calls it before each append (at its normal priority, so a busy log never waits for
/// the idle-priority indexer to be scheduled while it holds the lock); the indexer calls it
/// when the writer has not within [`HAND_OVER`] (the log is idle).
pub(crate) fn apply_moves(index: &RwLock<Index>, moves: &Mutex<Vec<Checkpoint>>) {
    let moved = std::mem::take(&mut *moves.lock().expect("moves lock is never poisoned"));
    if moved.is_empty() {
        return;
    }
    let freed: Vec<_> = {
        let mut index = index.write().expect("index lock is never poisoned");
        moved
            .iter()
            .flat_map(|cp| index.moved_to_disk(cp))
            .collect()
    };
    // Freed outside the lock: the writer and readers wait for none of it.
    drop(freed);
}

/// How long the indexer leaves a moved checkpoint to the writer.
const HAND_OVER: Duration = Duration::from_millis(100);

pub(crate) struct Indexer {
    pub(crate) tree: sled::Tree,
    pub(crate) index: Arc<RwLock<Index>>,
    pub(crate) moves: Moves,
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
            // Read with the base under one lock: the versions the checkpoint's tickets have at
            // its start (a move the writer applied meanwhile changes them: then again).
            let before = {
                let index = self.index.read().expect("index lock is never poisoned");
                if index.base() != base {
                    continue;
                }
                index.versions_before(&checkpoint)?
            };
            let hash = last_hash(&self.tree, &checkpoint)?;
            if !disk.write(&checkpoint, &before, hash, &self.stop)? {
                return Ok(());
            }
            let last = checkpoint.last();
            self.moves
                .lock()
                .expect("moves lock is never poisoned")
                .push(checkpoint);
            let deadline = Instant::now() + HAND_OVER;
            while self.base() < last && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            apply_moves(&self.index, &self.moves);
        }
        Ok(())
    }
}

impl Indexer {
    fn base(&self) -> u64 {
        self.index
            .read()
            .expect("index lock is never poisoned")
            .base()
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
