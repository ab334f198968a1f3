//! The append-only log on sled: one staging writer, one group-committing flusher, and
//! in-memory indexes persisted as periodic checkpoints (format: `docs/log-format.md`).
//!
//! ```text
//! 'L' first_position:u64be  -> blob: 0x01 record*         (a whole commit batch)
//! 'C' last_position:u64be   -> checkpoint of the indexes   (see `index.rs`)
//! ```
//!
//! The hot path writes one key per commit: the blob. The stream index (ticket → positions) and
//! the id dedupe index (id hash → position) are in `index.rs`: the older positions on disk
//! (`disk.rs`, moved there checkpoint by checkpoint by `indexer.rs`), the rest in memory,
//! rebuilt on open from the checkpoints after the disk index's base plus the few blobs after
//! the last one. A checkpoint is written in the same atomic batch as the blob it ends with,
//! so after a crash the checkpoints never claim a record that is not there.
//!
//! Two threads share the work so that CPU and IO overlap. The writer takes appends from a
//! bounded queue, checks them against the index, encodes and chains them into the open commit
//! and indexes them. The flusher takes the open commit whenever it is idle, applies it with
//! one `apply_batch`, flushes, publishes the durable head and only then answers the appenders
//! in it: an acknowledged event is durable, and no partial append is ever visible because sled
//! applies a batch atomically. While the flusher waits for the disk, the next commit fills up.
//!
//! The index runs ahead of the durable head (it holds staged records): every reader first reads
//! the durable head and shows nothing above it.
//!
//! The parts, each a module of this crate, in layers: a module names (`crate::x`) only
//! modules in the layers below it, so none names one that names it back.
//!
//! ```text
//! 5  log       → writer flusher reader recover indexer commit config blob disk durable
//! 4  writer    → commit config blob index indexer  the single writer: check, encode, stage
//!    flusher   → commit blob durable           apply, flush, publish the head, answer
//!    reader    → commit verify blob index      LogReader: the EventReader reads
//!    indexer   → blob index                    durable checkpoints from memory to disk
//! 3  commit    → config                        Request, Reply, the shared open commit
//!    verify    → blob index                    verify: the chain, the index, checkpoints
//!    recover   → blob disk index               open: the head and the index
//! 2  blob      → index errors                  keys, blob framing, the hash at a position
//!    config    → durable                       LogConfig
//!    index     → disk layout                   the index: recent in memory, older on disk
//! 1  disk      → layout errors                 the disk index (fjall)
//! 0  layout, errors, durable
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use store::{
    validate, AppendRequest, Appended, BoxFuture, EventReader, EventStore, LogError, ReadsThrough,
};

use crate::acked::Acked;
use crate::blob::storage;
use crate::commit::{Request, Shared};
use crate::disk::Disk;
use crate::durable::{Durability, SyncTarget};
use crate::flusher::{Acker, Flusher};
use crate::indexer::{Indexer, Moves};
use crate::recover::{load_index, recover_head};
use crate::writer::Writer;

pub use crate::config::{LogConfig, DEFAULT_CACHE_MIB};
pub use crate::reader::LogReader;

/// The durable log: the read side plus the writer's queue.
pub struct Log {
    reader: LogReader,
    db: sled::Db,
    /// The index of older positions (`disk.rs`), when it could be opened.
    disk: Option<Disk>,
    stop_indexer: Arc<AtomicBool>,
    /// Not joined by the writer: a slow disk index must not hold up a close.
    indexer: Mutex<Option<JoinHandle<()>>>,
    /// Subscriptions' checkpoints (SPEC §15), beside the log in the same database.
    checkpoints: sled::Tree,
    dir: std::path::PathBuf,
    /// This process's hold on the log's files (`preserve`): no other opener copies them while
    /// this one has them open.
    _owner: Option<std::fs::File>,
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer's and flushers' state: whether a write has failed.
    shared: Arc<Shared>,
}

/// An append not confirmed durable within this is answered `Unavailable` (503): the disk is
/// stalled or full, and its outcome is unknown (a retry with the same key lands once). It
/// also bounds how long SIGTERM waits for an in-flight write.
pub const CONFIRM_WITHIN: Duration = crate::commit::STALLED_AFTER;
/// `close` waits this long for the writer and flushers, then leaves them (a disk that does
/// not answer must not keep the process from ending).
const CLOSE_WITHIN: Duration = Duration::from_secs(3);
/// How long `close` waits for the indexer to stop.
const INDEXER_STOP_WITHIN: Duration = Duration::from_secs(1);
/// The disk index's own page cache (at most the log's).
const INDEX_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl Log {
    /// Opens (or creates) the log in `dir`. One process owns a directory: a second open
    /// fails with [`LogError::Locked`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        let started = std::time::Instant::now();
        let owner = crate::preserve::before_open(dir);
        let kept_s = started.elapsed().as_secs_f64();
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    LogError::Locked(io.to_string())
                }
                other => storage(other),
            })?;
        let tree = db.open_tree("ledger").map_err(storage)?;
        let checkpoints = db.open_tree("checkpoints").map_err(storage)?;
        let (position, hash) = recover_head(&tree)?;
        // Derived data: without it (it cannot be opened) the whole index stays in memory.
        let disk = Disk::open(&dir.join("index"), INDEX_CACHE_BYTES.min(config.cache_bytes))
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot open the disk index (log/index); the log's index stays in memory")
            })
            .ok();
        let sled_s = started.elapsed().as_secs_f64() - kept_s;
        let (index, pending) = load_index(&tree, position, disk.clone())?;
        tracing::debug!(
            kept_s,
            sled_s,
            index_s = started.elapsed().as_secs_f64() - kept_s - sled_s,
            position,
            "opened the log"
        );
        let index = Arc::new(RwLock::new(index));
        let stop_indexer = Arc::new(AtomicBool::new(false));
        let (indexer_tx, indexer_queue) = std::sync::mpsc::channel();
        let moves = Moves::default();
        let indexer = Indexer {
            tree: tree.clone(),
            index: index.clone(),
            moves: moves.clone(),
            queue: indexer_queue,
            stop: stop_indexer.clone(),
        };
        let indexer_thread = std::thread::Builder::new()
            .name("mc-ledger-index".into())
            .spawn(move || indexer.run())
            .map_err(|e| LogError::Storage(format!("cannot start the indexer thread: {e}")))?;
        // Checkpoints written before (an older log, or a crash before the indexer caught up).
        let _ = indexer_tx.send(position);
        let (committed_tx, committed_rx) = watch::channel(position);
        let (tx, rx) = mpsc::channel(config.queue_appends_max.max(1));
        let shared = Arc::new(Shared::new());
        let shared_for_reader = shared.clone();
        let committed_tx = Arc::new(committed_tx);
        let (sync, acked) = match config.durability {
            Durability::Fsync => {
                // Created before the directory's entries are synced, so it survives a power cut.
                // Without it (a full disk cannot create it) the log runs as one written before
                // it existed: the open's check falls back to the snapshot.
                let acked = Acked::open(dir)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "cannot open log/acked; the acknowledged head is not kept")
                    })
                    .ok();
                let sync = SyncTarget::open(dir).map_err(|e| LogError::Storage(e.to_string()))?;
                (Some(Arc::new(Mutex::new(sync))), acked)
            }
            Durability::SledFlush => (None, None),
        };
        let mut acker_thread = None;
        let acker = match acked {
            None => None,
            Some(acked) => {
                let (tx, queue) = std::sync::mpsc::channel();
                let acker = Acker { acked, queue };
                let handle = std::thread::Builder::new()
                    .name("mc-ledger-acked".into())
                    .spawn(move || acker.run())
                    .map_err(|e| {
                        LogError::Storage(format!("cannot start the acked thread: {e}"))
                    })?;
                acker_thread = Some(handle);
                Some(tx)
            }
        };
        let mut flushers = Vec::new();
        for n in 0..config.flushers.max(1) {
            let flusher = Flusher {
                sync: sync.clone(),
                db: db.clone(),
                tree: tree.clone(),
                shared: shared.clone(),
                committed: committed_tx.clone(),
                acker: acker.clone(),
                indexer: disk.is_some().then(|| indexer_tx.clone()),
            };
            let handle = std::thread::Builder::new()
                .name(format!("mc-ledger-flush-{n}"))
                .spawn(move || flusher.run())
                .map_err(|e| LogError::Storage(format!("cannot start a flusher thread: {e}")))?;
            flushers.push(handle);
        }
        // Joined after the flushers: they end when the last of them has handed them their
        // commits.
        drop(acker);
        drop(indexer_tx);
        flushers.extend(acker_thread);
        let writer = Writer::new(
            tree.clone(),
            index.clone(),
            shared,
            (position, hash),
            pending,
            config,
            moves,
        );
        let handle = std::thread::Builder::new()
            .name("mc-ledger-writer".into())
            .spawn(move || writer.run(rx, flushers))
            .map_err(|e| LogError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Log {
            reader: LogReader::new(tree, index, committed_rx, shared_for_reader.clone()),
            db,
            disk,
            stop_indexer,
            indexer: Mutex::new(Some(indexer_thread)),
            checkpoints,
            dir: dir.to_owned(),
            _owner: owner,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            shared: shared_for_reader,
        })
    }

    pub fn read_handle(&self) -> LogReader {
        self.reader.clone()
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, LogError> {
        self.queue
            .lock()
            .expect("queue lock is never poisoned: nothing panics while holding it")
            .clone()
            .ok_or(LogError::Closed)
    }

    /// Appends and waits for durability (async callers).
    pub async fn append_async(&self, append: AppendRequest) -> Result<Appended, LogError> {
        let queue = self.sender()?;
        // Checked on the caller's thread: the single writer is the log's bottleneck.
        validate(&append)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { append, reply })
            .await
            .map_err(|_| LogError::Closed)?;
        match tokio::time::timeout(CONFIRM_WITHIN, answer).await {
            Ok(answer) => answer.map_err(|_| LogError::Closed)?,
            Err(_) => Err(LogError::Unavailable(format!(
                "the disk has not confirmed this write within {} s; its outcome is unknown \
                 (a retry with the same Idempotency-Key is recorded once)",
                CONFIRM_WITHIN.as_secs()
            ))),
        }
    }

    /// Appends and waits for durability (blocking callers; not from inside an async task).
    pub fn append_blocking(&self, append: AppendRequest) -> Result<Appended, LogError> {
        let queue = self.sender()?;
        validate(&append)?;
        let (reply, answer) = oneshot::channel();
        queue
            .blocking_send(Request { append, reply })
            .map_err(|_| LogError::Closed)?;
        answer.blocking_recv().map_err(|_| LogError::Closed)?
    }

    /// Stops the writer after it has answered every queued append, checkpoints the index,
    /// and flushes.
    pub fn close(&self) -> Result<(), LogError> {
        self.stop_indexer.store(true, Ordering::Relaxed);
        drop(self.queue.lock().expect("queue lock").take());
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let deadline = Instant::now() + CLOSE_WITHIN;
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !handle.is_finished() {
                return Err(LogError::Unavailable(format!(
                    "the writer did not stop within {} s: the disk is not answering",
                    CLOSE_WITHIN.as_secs()
                )));
            }
            let _ = handle.join();
        }
        if let Some(why) = self.shared.lock().failed.clone() {
            // sled is in an unknown state after a failed write: a flush may never return.
            return Err(LogError::Unavailable(why));
        }
        self.db.flush().map_err(storage)?;
        if let Some(handle) = self.indexer.lock().expect("indexer lock").take() {
            // It stops between two batches; derived data, so it is left behind if it lags.
            let deadline = Instant::now() + INDEXER_STOP_WITHIN;
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        if let Some(disk) = &self.disk {
            // Derived data: a failure here only means the next open rebuilds some of it.
            let _ = disk.flush();
        }
        if let Ok(mut target) = SyncTarget::open(self.dir.as_path()) {
            target
                .sync()
                .map_err(|e| LogError::Storage(format!("fdatasync: {e}")))?;
        }
        Ok(())
    }

    /// The last position the disk index holds (`log/index/`): every position up to it has
    /// left memory (SPEC §18). For tests and benchmarks.
    pub fn indexed_on_disk(&self) -> u64 {
        self.reader.indexed_on_disk()
    }

    /// Bytes sled keeps on disk for this log.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl EventStore for Log {
    fn checkpoints(&self) -> Arc<dyn store::Checkpoints> {
        Arc::new(crate::checkpoints::SledCheckpoints {
            tree: self.checkpoints.clone(),
        })
    }

    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, LogError>> {
        Box::pin(self.append_async(request))
    }

    fn reader(&self) -> Arc<dyn EventReader> {
        Arc::new(self.reader.clone())
    }

    fn close(&self) -> Result<(), LogError> {
        Log::close(self)
    }
}

impl ReadsThrough for Log {
    type Reader = LogReader;
    fn read_side(&self) -> &LogReader {
        &self.reader
    }
}
