//! The append-only log on sled: one staging writer, one group-committing flusher, and
//! in-memory indexes persisted as periodic checkpoints (format: `docs/log-format.md`).
//!
//! ```text
//! 'L' first_position:u64be  -> blob: 0x01 record*         (a whole commit batch)
//! 'C' last_position:u64be   -> checkpoint of the indexes   (see `index.rs`)
//! ```
//!
//! The hot path writes one key per commit: the blob. The stream index (ticket → positions) and
//! the id dedupe index (id hash → position) live in memory ([`Index`]) and are rebuilt on open
//! from the checkpoints plus the few blobs after the last one. A checkpoint is written in the
//! same atomic batch as the blob it ends with, so after a crash the checkpoints never claim a
//! record that is not there.
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

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use crate::durable::{Durability, SyncTarget};
use crate::index::{id_hash, Checkpoint, IdHash, Index, Location};
use events::codec;
use events::envelope::{Hash, RecordedEvent};
use events::ids::{is_event_id, TicketId};
use store::chain::{place, ChainCheck};
use store::classify::{classify, Classified};
use store::LogError;
use store::{
    validate, AppendRequest, Appended, BoxFuture, EventReader, EventStore, ReadsThrough,
    VerifyReport,
};

const BLOB_FORMAT_V1: u8 = 1;
const TAG_LOG: u8 = b'L';
const TAG_CHECKPOINT: u8 = b'C';

/// Tuning of the writer; the defaults suit a 2-core machine with 64 concurrent appenders.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Appends waiting for the writer; beyond this, appenders wait (back-pressure).
    pub queue_appends_max: usize,
    /// Appends packed into one commit (one flush).
    pub batch_appends_max: usize,
    /// Bytes of records packed into one commit.
    pub batch_bytes_max: usize,
    /// sled page cache.
    pub cache_bytes: u64,
    /// Records between two index checkpoints; an open reads at most this many records (plus
    /// one commit) after the last checkpoint. Close always writes one.
    pub checkpoint_events: u64,
    /// Threads that apply and flush commits. More than one overlaps flushes (see `Flusher`);
    /// on the shared 2-core machine that was not measurably faster, so the default is one.
    pub flushers: usize,
    /// What a flush guarantees before appends are acknowledged (see `durable.rs`).
    pub durability: Durability,
}

/// sled's page cache unless configured (`serve --cache-mib`).
pub const DEFAULT_CACHE_MIB: u64 = 256;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            queue_appends_max: 4096,
            batch_appends_max: 1024,
            batch_bytes_max: 4 * 1024 * 1024,
            cache_bytes: DEFAULT_CACHE_MIB * 1024 * 1024,
            checkpoint_events: 65_536,
            flushers: 1,
            durability: Durability::Fsync,
        }
    }
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

struct Request {
    append: AppendRequest,
    reply: Reply,
}

fn log_key(position: u64) -> [u8; 9] {
    tagged_key(TAG_LOG, position)
}

fn checkpoint_key(last: u64) -> [u8; 9] {
    tagged_key(TAG_CHECKPOINT, last)
}

fn tagged_key(tag: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

fn storage(e: sled::Error) -> LogError {
    LogError::Storage(e.to_string())
}

fn position_of_key(key: &[u8]) -> Result<u64, LogError> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LogError::corrupt(0, "malformed log key"))?;
    Ok(u64::from_be_bytes(bytes))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The read side: the sled tree, the shared index and the durable head. It cannot append.
#[derive(Clone)]
pub struct LogReader {
    tree: sled::Tree,
    index: Arc<RwLock<Index>>,
    committed: watch::Receiver<u64>,
}

/// The durable log: the read side plus the writer's queue.
pub struct Log {
    reader: LogReader,
    db: sled::Db,
    dir: std::path::PathBuf,
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Log {
    /// Opens (or creates) the log in `dir`. One process owns a directory: a second open
    /// fails with [`LogError::Locked`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
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
        let (position, hash) = recover_head(&tree)?;
        let (index, pending) = load_index(&tree, position)?;
        let index = Arc::new(RwLock::new(index));
        let (committed_tx, committed_rx) = watch::channel(position);
        let (tx, rx) = mpsc::channel(config.queue_appends_max.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(Commits::default()),
            work: Condvar::new(),
            space: Condvar::new(),
            apply_order: Mutex::new(()),
        });
        let committed_tx = Arc::new(committed_tx);
        let sync = match config.durability {
            Durability::Fsync => Some(Arc::new(Mutex::new(
                SyncTarget::open(dir).map_err(|e| LogError::Storage(e.to_string()))?,
            ))),
            Durability::SledFlush => None,
        };
        let mut flushers = Vec::new();
        for n in 0..config.flushers.max(1) {
            let flusher = Flusher {
                sync: sync.clone(),
                db: db.clone(),
                tree: tree.clone(),
                shared: shared.clone(),
                committed: committed_tx.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("mc-ledger-flush-{n}"))
                .spawn(move || flusher.run())
                .map_err(|e| LogError::Storage(format!("cannot start a flusher thread: {e}")))?;
            flushers.push(handle);
        }
        let writer = Writer {
            tree: tree.clone(),
            index: index.clone(),
            shared,
            position,
            hash,
            pending,
            config,
        };
        let handle = std::thread::Builder::new()
            .name("mc-ledger-writer".into())
            .spawn(move || writer.run(rx, flushers))
            .map_err(|e| LogError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Log {
            reader: LogReader {
                tree,
                index,
                committed: committed_rx,
            },
            db,
            dir: dir.to_owned(),
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
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
        answer.await.map_err(|_| LogError::Closed)?
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
        drop(self.queue.lock().expect("queue lock").take());
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
        self.db.flush().map_err(storage)?;
        if let Ok(mut target) = SyncTarget::open(self.dir.as_path()) {
            target
                .sync()
                .map_err(|e| LogError::Storage(format!("fdatasync: {e}")))?;
        }
        Ok(())
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

/// The position and hash of the last record: the last blob's last record.
fn recover_head(tree: &sled::Tree) -> Result<(u64, Hash), LogError> {
    let last = tree
        .range(log_key(0)..=log_key(u64::MAX))
        .next_back()
        .transpose()
        .map_err(storage)?;
    let Some((key, blob)) = last else {
        return Ok((0, Hash::ZERO));
    };
    let first = position_of_key(&key)?;
    let mut last = None;
    for record in BlobRecords::new(first, &blob)? {
        last = Some(record?.0);
    }
    let last = last.ok_or_else(|| LogError::corrupt(first, "empty commit blob"))?;
    Ok((last.position, last.hash))
}

/// Rebuilds the index: checkpoints first, then the records after the last one. Returns the
/// index and the records not yet checkpointed (the next checkpoint's start).
///
/// Checkpoints are derived data and the records stay the source of truth: if a checkpoint is
/// unreadable or does not fit the records, every checkpoint is dropped and the whole index is
/// rebuilt from the records (slow once; the next checkpoint repairs it).
fn load_index(tree: &sled::Tree, head: u64) -> Result<(Index, Checkpoint), LogError> {
    match load_with_checkpoints(tree, head) {
        Ok(loaded) => Ok(loaded),
        Err(_) => {
            for key in tree.scan_prefix([TAG_CHECKPOINT]).keys() {
                tree.remove(key.map_err(storage)?).map_err(storage)?;
            }
            let mut index = Index::default();
            let mut pending = Checkpoint::new(1);
            index_records_after(tree, &mut index, &mut pending, head)?;
            Ok((index, pending))
        }
    }
}

fn load_with_checkpoints(tree: &sled::Tree, head: u64) -> Result<(Index, Checkpoint), LogError> {
    let mut index = Index::default();
    for entry in tree.scan_prefix([TAG_CHECKPOINT]) {
        let (key, value) = entry.map_err(storage)?;
        let next = index.len() + 1;
        let checkpoint = Checkpoint::decode(&value)
            .map_err(|e| LogError::corrupt(next, format!("checkpoint: {e}")))?;
        if checkpoint.first != next
            || checkpoint.last() > head
            || position_of_key(&key)? != checkpoint.last()
        {
            return Err(LogError::corrupt(next, "checkpoint does not follow on"));
        }
        index.apply(&checkpoint);
    }
    let mut pending = Checkpoint::new(index.len() + 1);
    index_records_after(tree, &mut index, &mut pending, head)?;
    Ok((index, pending))
}

/// Indexes every record after what `index` holds, reading the blobs; they must follow on.
fn index_records_after(
    tree: &sled::Tree,
    index: &mut Index,
    pending: &mut Checkpoint,
    head: u64,
) -> Result<(), LogError> {
    for entry in tree.range(log_key(index.len() + 1)..=log_key(u64::MAX)) {
        let (key, blob) = entry.map_err(storage)?;
        let first = position_of_key(&key)?;
        let next = index.len() + 1;
        if first != next {
            return Err(LogError::corrupt(
                next,
                format!("next commit blob starts at {first}: a gap or overlap"),
            ));
        }
        for record in BlobRecords::new(first, &blob)? {
            let (event, offset, len) = record?;
            let id = id_hash(&event.id);
            index.push(first, &event.ticket, id, offset, len);
            pending.push(first, &event.ticket, id, len);
            if count(index.stream(&event.ticket).len()) != event.version {
                return Err(LogError::corrupt(
                    event.position,
                    "stream version out of order",
                ));
            }
        }
    }
    if index.len() != head {
        return Err(LogError::corrupt(
            index.len() + 1,
            "records end before the head",
        ));
    }
    Ok(())
}

/// Iterates the records of one blob, checking framing, hashes and that positions follow on.
struct BlobRecords<'a> {
    bytes: &'a [u8],
    offset: usize,
    next_position: u64,
}

impl<'a> BlobRecords<'a> {
    fn new(first: u64, blob: &'a [u8]) -> Result<BlobRecords<'a>, LogError> {
        BlobRecords::at(first, blob, 1)
    }

    /// From the record at `position`, which starts at byte `offset` of the blob.
    fn at(position: u64, blob: &'a [u8], offset: u32) -> Result<BlobRecords<'a>, LogError> {
        match blob.first() {
            Some(&BLOB_FORMAT_V1) => Ok(BlobRecords {
                bytes: blob,
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
                next_position: position,
            }),
            Some(other) => Err(LogError::corrupt(
                position,
                format!("unknown blob format {other}"),
            )),
            None => Err(LogError::corrupt(position, "empty commit blob")),
        }
    }
}

impl Iterator for BlobRecords<'_> {
    /// A record, its byte offset in the blob and its length.
    type Item = Result<(RecordedEvent, u32, u32), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.bytes.len() {
            return None;
        }
        let position = self.next_position;
        let result = codec::decode_record(&self.bytes[self.offset..])
            .map_err(|e| LogError::corrupt(position, e))
            .and_then(|(event, used)| {
                if event.position != position {
                    return Err(LogError::corrupt(
                        position,
                        format!("record says position {}", event.position),
                    ));
                }
                let offset = u32::try_from(self.offset)
                    .map_err(|_| LogError::corrupt(position, "blob too large"))?;
                let len = u32::try_from(used)
                    .map_err(|_| LogError::corrupt(position, "record too large"))?;
                self.offset += used;
                self.next_position += 1;
                Ok((event, offset, len))
            });
        if result.is_err() {
            // Stop after the first bad record: what follows cannot be framed reliably.
            self.offset = self.bytes.len();
        }
        Some(result)
    }
}

/// Decodes the record at `loc` from its blob's bytes.
fn decode_at(blob: &[u8], loc: Location) -> Result<RecordedEvent, LogError> {
    let start = usize::try_from(loc.offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(loc.len).unwrap_or(usize::MAX));
    let bytes = blob
        .get(start..end)
        .ok_or_else(|| LogError::corrupt(loc.blob_first, "index points past its blob"))?;
    let (event, _) =
        codec::decode_record(bytes).map_err(|e| LogError::corrupt(loc.blob_first, e))?;
    Ok(event)
}

impl LogReader {
    fn durable(&self) -> u64 {
        *self.committed.borrow()
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .expect("index lock is never poisoned: nothing panics while holding it")
    }

    fn read_at(
        &self,
        loc: Location,
        cache: &mut Option<(u64, sled::IVec)>,
    ) -> Result<RecordedEvent, LogError> {
        let blob = match cache {
            Some((first, blob)) if *first == loc.blob_first => blob.clone(),
            _ => {
                let blob = self
                    .tree
                    .get(log_key(loc.blob_first))
                    .map_err(storage)?
                    .ok_or_else(|| {
                        LogError::corrupt(loc.blob_first, "index points at a missing blob")
                    })?;
                *cache = Some((loc.blob_first, blob.clone()));
                blob
            }
        };
        decode_at(&blob, loc)
    }

    /// Locations of positions, looked up under one short read lock.
    fn locate_all(&self, positions: impl Iterator<Item = u64>) -> Result<Vec<Location>, LogError> {
        let index = self.index();
        positions
            .map(|p| {
                index
                    .locate(p)
                    .ok_or_else(|| LogError::corrupt(p, "position missing from the index"))
            })
            .collect()
    }

    /// Waits until a position after `after` is durable; returns the durable head.
    pub async fn wait_after(&self, after: u64) -> u64 {
        let mut rx = self.committed.clone();
        let result = rx.wait_for(|p| *p > after).await.map(|p| *p);
        // The sender lives as long as the flusher; if it is gone, report what is durable.
        result.unwrap_or_else(|_| self.durable())
    }
}

impl EventReader for LogReader {
    fn head(&self) -> u64 {
        self.durable()
    }

    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        let durable = self.durable();
        let index = self.index();
        Ok(count(
            index.stream(ticket).partition_point(|&p| p <= durable),
        ))
    }

    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let durable = self.durable();
        let from = from_version.max(1);
        if from > to_version || limit == 0 {
            return Ok(Vec::new());
        }
        let locations = {
            let index = self.index();
            let positions = index.stream(ticket);
            let skip = usize::try_from(from - 1).unwrap_or(usize::MAX);
            let take = usize::try_from(to_version - from)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .min(limit);
            let wanted = positions
                .iter()
                .skip(skip)
                .take(take)
                .copied()
                .take_while(|&p| p <= durable);
            wanted
                .map(|p| {
                    index
                        .locate(p)
                        .ok_or_else(|| LogError::corrupt(p, "position missing from the index"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut cache = None;
        locations
            .into_iter()
            .map(|loc| self.read_at(loc, &mut cache))
            .collect()
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let durable = self.durable();
        if after >= durable || limit == 0 {
            return Ok(Vec::new());
        }
        let start = after + 1;
        let loc = self.locate_all(std::iter::once(start))?[0];
        let wanted = usize::try_from(durable - after)
            .unwrap_or(usize::MAX)
            .min(limit);
        let mut out = Vec::with_capacity(wanted.min(64 * 1024));
        let mut next = start;
        'blobs: for entry in self.tree.range(log_key(loc.blob_first)..=log_key(u64::MAX)) {
            let (key, blob) = entry.map_err(storage)?;
            let first = position_of_key(&key)?;
            let records = if first == loc.blob_first {
                BlobRecords::at(start, &blob, loc.offset)?
            } else if first == next {
                BlobRecords::new(first, &blob)?
            } else {
                return Err(LogError::corrupt(
                    next,
                    format!("next commit blob starts at {first}"),
                ));
            };
            for record in records {
                if out.len() >= wanted {
                    break 'blobs;
                }
                let (event, _, _) = record?;
                out.push(event);
                next += 1;
            }
        }
        Ok(out)
    }

    fn event_by_id(&self, id: &str) -> Result<Option<RecordedEvent>, LogError> {
        if !is_event_id(id) {
            return Ok(None);
        }
        let durable = self.durable();
        let candidates: Vec<u64> = self
            .index()
            .id_candidates(id_hash(id))
            .filter(|&p| p <= durable)
            .collect();
        for loc in self.locate_all(candidates.into_iter())? {
            let event = self.read_at(loc, &mut None)?;
            if event.id == id {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    fn verify(&self) -> Result<VerifyReport, LogError> {
        verify_log(&self.tree, &self.index, self.durable())
    }
}

/// Recomputes the chain from position 1 and checks every record against the in-memory index
/// and against the persisted checkpoints; the first bad position is the error.
fn verify_log(
    tree: &sled::Tree,
    index: &RwLock<Index>,
    durable: u64,
) -> Result<VerifyReport, LogError> {
    let mut checkpoints = Vec::new();
    let mut covered = 0u64;
    for entry in tree.scan_prefix([TAG_CHECKPOINT]) {
        let (key, value) = entry.map_err(storage)?;
        let checkpoint = Checkpoint::decode(&value)
            .map_err(|e| LogError::corrupt(covered + 1, format!("checkpoint: {e}")))?;
        if checkpoint.first != covered + 1 || position_of_key(&key)? != checkpoint.last() {
            return Err(LogError::corrupt(
                covered + 1,
                "checkpoint does not follow on",
            ));
        }
        covered = checkpoint.last();
        checkpoints.push(checkpoint);
    }
    let mut checkpointed = checkpoints.iter().flat_map(|cp| {
        cp.blobs()
            .flat_map(move |(blob_first, records)| records.iter().map(move |r| (cp, blob_first, r)))
    });

    // The chain and every stream's versions, record by record (`store::chain`).
    let mut chain = ChainCheck::new();
    for entry in tree.range(log_key(0)..=log_key(u64::MAX)) {
        let (key, blob) = entry.map_err(storage)?;
        let first = position_of_key(&key)?;
        if first > durable {
            break;
        }
        let expected_position = chain.head().position + 1;
        if first != expected_position {
            return Err(LogError::corrupt(
                expected_position,
                format!("next commit blob starts at {first}: a gap or overlap"),
            ));
        }
        // One short read lock per blob, so that a verify never stalls the writer for long.
        let index = index
            .read()
            .expect("index lock is never poisoned: nothing panics while holding it");
        for record in BlobRecords::new(first, &blob)? {
            let (event, offset, len) = record?;
            let position = event.position;
            chain.push(&event)?;
            let loc = Location {
                blob_first: first,
                offset,
                len,
            };
            if index.locate(position) != Some(loc) {
                return Err(LogError::corrupt(
                    position,
                    "position index entry missing or wrong",
                ));
            }
            let in_stream = usize::try_from(event.version - 1)
                .ok()
                .and_then(|v| index.stream(&event.ticket).get(v).copied());
            if in_stream != Some(position) {
                return Err(LogError::corrupt(
                    position,
                    "stream index entry missing or wrong",
                ));
            }
            let id = id_hash(&event.id);
            if !index.id_candidates(id).any(|p| p == position) {
                return Err(LogError::corrupt(
                    position,
                    "id index entry missing or wrong",
                ));
            }
            if position <= covered {
                let fits = checkpointed.next().is_some_and(|(cp, blob_first, r)| {
                    let ticket = usize::try_from(r.ticket)
                        .ok()
                        .and_then(|t| cp.tickets.get(t));
                    blob_first == first
                        && r.len == len
                        && r.id == id
                        && ticket == Some(&event.ticket)
                });
                if !fits {
                    return Err(LogError::corrupt(
                        position,
                        "checkpoint entry missing or wrong",
                    ));
                }
            }
        }
    }
    let events = chain.head().position;
    if events != durable {
        return Err(LogError::corrupt(
            events + 1,
            format!("records end at {events} but the durable head is {durable}"),
        ));
    }
    let (tickets, streams, ids) = index
        .read()
        .expect("index lock is never poisoned: nothing panics while holding it")
        .entries_upto(durable);
    if streams != events || ids != events || tickets != chain.tickets() {
        return Err(LogError::corrupt(
            events + 1,
            format!("{events} records but {streams} stream and {ids} id index entries"),
        ));
    }
    Ok(chain.report())
}

impl EventStore for Log {
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

/// What the writer and the flusher share: the commit being filled, and the one being written.
struct Shared {
    state: Mutex<Commits>,
    /// The flusher waits here for a commit to write.
    work: Condvar,
    /// The writer waits here while the open commit is full.
    space: Condvar,
    /// Held from taking a commit until sled has it (see [`Flusher::run`]).
    apply_order: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Commits> {
        self.state
            .lock()
            .expect("commit lock is never poisoned: nothing panics while holding it")
    }
}

#[derive(Default)]
struct Commits {
    /// Filled by the writer, taken whole by the flusher.
    open: Commit,
    /// The blob the flusher has taken but not yet applied: the writer may need to read a record
    /// of it (dedupe) before sled has it.
    in_flight: Option<(u64, sled::IVec)>,
    /// The writer is done: the flusher writes what is open and stops.
    closing: bool,
    /// A storage error stopped the flusher; nothing more is written.
    failed: Option<String>,
}

/// One commit: a blob of records (maybe none), maybe a checkpoint, and the answers to send
/// once it is durable. Refusals wait too, because they were decided against staged records.
#[derive(Default)]
struct Commit {
    blob_first: u64,
    /// Empty while it has no record; else the format byte and the records.
    blob: Vec<u8>,
    last: u64,
    checkpoint: Option<(u64, Vec<u8>)>,
    replies: Vec<(Reply, Result<Appended, LogError>)>,
}

impl Commit {
    fn is_empty(&self) -> bool {
        self.blob.is_empty() && self.replies.is_empty() && self.checkpoint.is_none()
    }

    /// No more appends fit. A checkpoint ends its commit: it covers whole blobs.
    fn is_full(&self, config: &LogConfig) -> bool {
        self.checkpoint.is_some()
            || self.replies.len() >= config.batch_appends_max.max(1)
            || self.blob.len() >= config.batch_bytes_max
    }
}

/// Applies and flushes commits, publishes the durable head, answers appenders. Several run at
/// once: a flush mostly waits for the device, and while one waits another can write the next
/// commit, so more appenders are in flight per flush time.
struct Flusher {
    /// `None` when sled's own flush is all the configuration asks for.
    sync: Option<Arc<Mutex<SyncTarget>>>,
    db: sled::Db,
    tree: sled::Tree,
    shared: Arc<Shared>,
    committed: Arc<watch::Sender<u64>>,
}

impl Flusher {
    fn run(self) {
        loop {
            // Commits are taken and applied under `apply_order`, so sled receives them in
            // position order: a flush then makes durable every commit applied before it, and a
            // crash keeps a prefix, never a later commit without an earlier one.
            let order = self
                .shared
                .apply_order
                .lock()
                .expect("apply lock is never poisoned: nothing panics while holding it");
            let (commit, blob) = {
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
                (commit, blob)
            };
            let applied = self.apply(&commit, blob);
            self.shared.lock().in_flight = None;
            drop(order);
            // Also flushed when only refusals wait: they were decided against staged records.
            let flushed = applied
                .and_then(|()| self.db.flush().map(|_| ()).map_err(storage))
                .and_then(|()| self.sync_files());
            if let Err(e) = flushed {
                let message = e.to_string();
                {
                    let mut state = self.shared.lock();
                    state.failed = Some(message.clone());
                    self.shared.space.notify_all();
                }
                answer_all(commit.replies, &message);
                continue;
            }
            // Durable now: publish before answering, so an appender that reads after its
            // answer sees its own write. Readers cap what they show at this value. Another
            // flusher may have published a later head already (its flush covered this commit).
            self.committed.send_if_modified(|head| {
                let later = commit.last > *head;
                if later {
                    *head = commit.last;
                }
                later
            });
            for (reply, answer) in commit.replies {
                let _ = reply.send(answer);
            }
        }
    }

    /// Past sled's flush: the data file and new blob files reach stable storage.
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

/// A storage failure leaves sled in an unknown state: refuse, and let a restart recover.
fn answer_all(replies: Vec<(Reply, Result<Appended, LogError>)>, message: &str) {
    for (reply, _) in replies {
        let _ = reply.send(Err(LogError::Storage(message.to_owned())));
    }
}

/// The single writer: owns the head of the chain and the index, stages appends.
struct Writer {
    tree: sled::Tree,
    index: Arc<RwLock<Index>>,
    shared: Arc<Shared>,
    position: u64,
    hash: Hash,
    /// Records staged since the last checkpoint.
    pending: Checkpoint,
    config: LogConfig,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Request>, flushers: Vec<JoinHandle<()>>) {
        while let Some(request) = queue.blocking_recv() {
            if !self.handle(request) {
                queue.close();
                while let Ok(r) = queue.try_recv() {
                    let _ = r.reply.send(Err(LogError::Closed));
                }
                break;
            }
        }
        self.finish();
        for flusher in flushers {
            let _ = flusher.join();
        }
    }

    /// Checkpoints what is not yet (so the next open reads no record), then lets the flusher
    /// write the rest and stop.
    fn finish(&mut self) {
        let mut state = self.shared.lock();
        while state.open.checkpoint.is_some() && state.failed.is_none() {
            state = self
                .shared
                .space
                .wait(state)
                .expect("commit lock is never poisoned");
        }
        if state.failed.is_none() && self.pending.count() > 0 {
            let pending = std::mem::replace(&mut self.pending, Checkpoint::new(self.position + 1));
            state.open.checkpoint = Some((pending.last(), pending.encode()));
        }
        state.closing = true;
        self.shared.work.notify_all();
    }

    /// Stages one append; false once the flusher has failed.
    fn handle(&mut self, request: Request) -> bool {
        let Request { append, reply } = request;
        let ids: Vec<IdHash> = append.all_events().map(|e| id_hash(&e.id)).collect();
        match self.check(&append, &ids) {
            Ok(Classified::New(currents)) => self.stage(append, &ids, &currents, reply),
            Ok(Classified::Duplicate(events)) => self.answer(
                reply,
                Ok(Appended {
                    events,
                    duplicate: true,
                }),
            ),
            Err(e) => self.answer(reply, Err(e)),
        }
    }

    /// Dedupe and every stream's expected version, against everything indexed (durable or
    /// staged): `store::classify` over the index and the records.
    fn check(&self, append: &AppendRequest, ids: &[IdHash]) -> Result<Classified, LogError> {
        // Every id's candidate records, under one short read lock.
        let hits: Vec<Vec<Location>> = {
            let index = self.index.read().expect("index lock is never poisoned");
            ids.iter()
                .map(|&id| {
                    index
                        .id_candidates(id)
                        .map(|p| {
                            index.locate(p).ok_or_else(|| {
                                LogError::corrupt(p, "position missing from the index")
                            })
                        })
                        .collect()
                })
                .collect::<Result<_, _>>()?
        };
        classify(
            append,
            |i, id| {
                let mut original = None;
                for &loc in &hits[i] {
                    // A hash hit is only a candidate: confirm it on the record itself.
                    let event = self.read_record(loc)?;
                    if event.id == id {
                        original = Some(event);
                    }
                }
                Ok(original)
            },
            |ticket| {
                let index = self.index.read().expect("index lock is never poisoned");
                count(index.stream(ticket).len())
            },
        )
    }

    /// A record that may be staged (open commit), in flight (taken by the flusher) or in sled.
    fn read_record(&self, loc: Location) -> Result<RecordedEvent, LogError> {
        {
            let state = self.shared.lock();
            if !state.open.blob.is_empty() && state.open.blob_first == loc.blob_first {
                return decode_at(&state.open.blob, loc);
            }
            if let Some((first, blob)) = &state.in_flight {
                if *first == loc.blob_first {
                    return decode_at(blob, loc);
                }
            }
        }
        // Not open and not in flight: the flusher has applied it (it clears `in_flight` only
        // after `apply_batch` returns).
        let blob = self
            .tree
            .get(log_key(loc.blob_first))
            .map_err(storage)?
            .ok_or_else(|| LogError::corrupt(loc.blob_first, "index points at a missing blob"))?;
        decode_at(&blob, loc)
    }

    /// Queues an answer behind the open commit's flush; false once the flusher has failed.
    fn answer(&mut self, reply: Reply, answer: Result<Appended, LogError>) -> bool {
        let mut state = self.shared.lock();
        if let Some(message) = &state.failed {
            let _ = reply.send(Err(LogError::Storage(message.clone())));
            return false;
        }
        state.open.replies.push((reply, answer));
        self.shared.work.notify_one();
        true
    }

    /// Encodes, chains and indexes a checked append into the open commit: every stream's part,
    /// in order, in one contiguous range of positions (one commit, so all or nothing on disk).
    fn stage(
        &mut self,
        append: AppendRequest,
        ids: &[IdHash],
        currents: &[u64],
        reply: Reply,
    ) -> bool {
        let mut state = self.shared.lock();
        while state.open.is_full(&self.config) && state.failed.is_none() {
            state = self
                .shared
                .space
                .wait(state)
                .expect("commit lock is never poisoned");
        }
        if let Some(message) = &state.failed {
            let _ = reply.send(Err(LogError::Storage(message.clone())));
            return false;
        }
        let commit = &mut state.open;
        let start_len = commit.blob.len();
        if start_len == 0 {
            // Most commits are tens of kilobytes: skip the first few doublings.
            commit
                .blob
                .reserve(self.config.batch_bytes_max.min(64 * 1024));
            commit.blob.push(BLOB_FORMAT_V1);
            commit.blob_first = self.position + 1;
        }
        let blob_first = commit.blob_first;
        // Each event's stream and version.
        let mut placed: Vec<(TicketId, u64)> = Vec::with_capacity(append.len());
        // Encode every event before indexing any, so a refused event leaves no trace.
        let mut position = self.position;
        let mut hash = self.hash;
        let mut spans = Vec::with_capacity(append.len());
        for event in place(&append, currents, self.position) {
            placed.push((event.ticket.clone(), event.version));
            let offset = commit.blob.len();
            let encoded = event.encode(&mut commit.blob, &hash).and_then(|h| {
                let offset = u32::try_from(offset)
                    .map_err(|_| LogError::Storage("commit blob over 4 GiB".into()))?;
                let len = u32::try_from(commit.blob.len() - usize::try_from(offset).unwrap_or(0))
                    .map_err(|_| LogError::Storage("record over 4 GiB".into()))?;
                Ok((h, offset, len))
            });
            match encoded {
                Ok((h, offset, len)) => {
                    spans.push((hash, h, offset, len));
                    hash = h;
                    position += 1;
                }
                Err(e) => {
                    commit.blob.truncate(start_len);
                    commit.replies.push((reply, Err(e)));
                    self.shared.work.notify_one();
                    return true;
                }
            }
        }
        {
            let mut index = self.index.write().expect("index lock is never poisoned");
            for ((&id, &(_, _, offset, len)), (ticket, _)) in ids.iter().zip(&spans).zip(&placed) {
                index.push(blob_first, ticket, id, offset, len);
                self.pending.push(blob_first, ticket, id, len);
            }
        }
        // The answer owns the events: moved, not cloned.
        let first_position = self.position + 1;
        let AppendRequest { events, also, .. } = append;
        let recorded: Vec<RecordedEvent> = events
            .into_iter()
            .chain(also.into_iter().flat_map(|a| a.events))
            .zip(spans)
            .zip(placed)
            .enumerate()
            .map(
                |(k, ((event, (prev_hash, hash, _, _)), (ticket, version)))| RecordedEvent {
                    position: first_position + count(k),
                    ticket,
                    version,
                    id: event.id,
                    recorded_at: event.recorded_at,
                    actor: event.actor,
                    token_id: event.token_id,
                    data: event.data,
                    prev_hash,
                    hash,
                },
            )
            .collect();
        self.position = position;
        self.hash = hash;
        commit.last = position;
        commit.replies.push((
            reply,
            Ok(Appended {
                events: recorded,
                duplicate: false,
            }),
        ));
        if self.pending.count() >= self.config.checkpoint_events.max(1) {
            let pending = std::mem::replace(&mut self.pending, Checkpoint::new(position + 1));
            commit.checkpoint = Some((pending.last(), pending.encode()));
        }
        self.shared.work.notify_one();
        true
    }
}
