//! The index of the log's older positions on disk (SPEC §18: memory bound by open work, not by
//! history): position → bytes, ticket → positions and event id → position for every position
//! up to its `base`, in an LSM tree of its own (`log/index/`, fjall: writes are appends to a
//! journal and sorted runs, a lookup of an id that is not there stops at a bloom filter, and
//! its memory is a bounded cache). The in-memory index (`index.rs`) holds only the positions
//! after `base`, at most a checkpoint or two.
//!
//! It is derived data, written by the indexer (`indexer.rs`) one durable checkpoint at a time,
//! each in one atomic batch with the new `base` and the hash of the record at `base`. Nothing
//! here is needed for durability: when it is missing, behind, ahead of the log or from another
//! log (the hash at `base` differs), the open clears it and the checkpoints rebuild it.
//!
//! ```text
//! ids        id_hash:u128be                -> position:u64be+     (more than one: a collision)
//! streams    len:u8 ticket version:u64be   -> position:u64be
//! positions  position:u64be                -> blob_first:u64be offset:u32be len:u32be
//! meta       "base"                        -> base:u64be hash_at_base:[u8;32]
//! ```

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use events::envelope::Hash;
use events::ids::TicketId;
use store::LogError;

use crate::layout::{Checkpoint, IdHash, Location};

const BASE_KEY: &[u8] = b"base";
const PARTITIONS: [&str; 4] = ["ids", "streams", "positions", "meta"];
/// Records per batch when a checkpoint is written (a checkpoint of every record, after the
/// checkpoints were dropped, would otherwise be one batch of the whole log in memory).
const BATCH_RECORDS: usize = 50_000;

/// The on-disk part of the index: a handle on its own keyspace.
#[derive(Clone)]
pub(crate) struct Disk {
    /// Set by the first error: the index cannot be trusted to answer until the log is opened
    /// again (fjall keeps a failed write as a poisoned keyspace, as sled keeps its own).
    broken: Arc<AtomicBool>,
    keyspace: Keyspace,
    ids: PartitionHandle,
    streams: PartitionHandle,
    positions: PartitionHandle,
    meta: PartitionHandle,
}

/// The disk index's errors are the disk's: 503, retry later (a restart reopens it).
fn failed(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("the disk index (log/index) failed: {e}"))
}

fn stream_prefix(ticket: &TicketId) -> Vec<u8> {
    let bytes = ticket.as_str().as_bytes();
    let mut k = Vec::with_capacity(1 + bytes.len() + 8);
    k.push(u8::try_from(bytes.len()).expect("ticket ids are at most 26 bytes"));
    k.extend_from_slice(bytes);
    k
}

fn stream_key(ticket: &TicketId, version: u64) -> Vec<u8> {
    let mut k = stream_prefix(ticket);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `N` bytes of an entry from `at`.
fn bytes_at<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], LogError> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| failed("a malformed entry"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, LogError> {
    bytes_at(bytes, at).map(u64::from_be_bytes)
}

impl Disk {
    /// Whether an error has been met since it was opened.
    pub(crate) fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// A fjall error: the index broke (every later answer is suspect until a reopen).
    fn failed(&self, e: impl std::fmt::Display) -> LogError {
        self.broken.store(true, Ordering::Relaxed);
        failed(e)
    }

    /// Opens (or creates) the index in `dir` with a block cache of `cache_bytes`.
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<Disk, LogError> {
        let keyspace = fjall::Config::new(dir)
            .cache_size(cache_bytes)
            .max_write_buffer_size(32 * 1024 * 1024)
            .max_journaling_size(64 * 1024 * 1024)
            .flush_workers(1)
            .compaction_workers(1)
            // Derived data: durable when the log closes (`flush`), else rebuilt.
            .fsync_ms(None)
            .open()
            .map_err(failed)?;
        let open = |name: &str| {
            keyspace
                .open_partition(
                    name,
                    PartitionCreateOptions::default().max_memtable_size(8 * 1024 * 1024),
                )
                .map_err(failed)
        };
        Ok(Disk {
            broken: Arc::default(),
            ids: open(PARTITIONS[0])?,
            streams: open(PARTITIONS[1])?,
            positions: open(PARTITIONS[2])?,
            meta: open(PARTITIONS[3])?,
            keyspace,
        })
    }

    /// The last position indexed here and the hash of its record (`(0, ZERO)`: nothing).
    pub(crate) fn base(&self) -> Result<(u64, Hash), LogError> {
        match self.meta.get(BASE_KEY).map_err(|e| self.failed(e))? {
            None => Ok((0, Hash::ZERO)),
            Some(v) => Ok((u64_at(&v, 0)?, Hash(bytes_at(&v, 8)?))),
        }
    }

    /// Forgets everything (the index does not fit the log; the checkpoints rebuild it).
    pub(crate) fn clear(&self) -> Result<(), LogError> {
        // The base first, persisted: a clear cut short leaves an empty index, not a base over
        // missing entries.
        self.meta.remove(BASE_KEY).map_err(|e| self.failed(e))?;
        self.flush()?;
        for partition in [&self.ids, &self.streams, &self.positions, &self.meta] {
            let mut batch = self.keyspace.batch();
            let mut n = 0;
            for key in partition.keys() {
                batch.remove(partition, key.map_err(|e| self.failed(e))?);
                n += 1;
                if n % 100_000 == 0 {
                    std::mem::replace(&mut batch, self.keyspace.batch())
                        .commit()
                        .map_err(|e| self.failed(e))?;
                }
            }
            batch.commit().map_err(|e| self.failed(e))?;
        }
        self.flush()
    }

    /// The highest position with an entry (0: none). Entries above the base are only left by
    /// an indexer stopped mid-checkpoint; above the log's head they mean the log lost a tail.
    pub(crate) fn last_position(&self) -> Result<u64, LogError> {
        match self.positions.iter().next_back() {
            None => Ok(0),
            Some(kv) => u64_at(&kv.map_err(|e| self.failed(e))?.0, 0),
        }
    }

    pub(crate) fn locate(&self, position: u64) -> Result<Option<Location>, LogError> {
        let Some(v) = self
            .positions
            .get(position.to_be_bytes())
            .map_err(|e| self.failed(e))?
        else {
            return Ok(None);
        };
        Ok(Some(Location {
            blob_first: u64_at(&v, 0)?,
            offset: u32::from_be_bytes(bytes_at(&v, 8)?),
            len: u32::from_be_bytes(bytes_at(&v, 12)?),
        }))
    }

    /// The stream's last version at or below position `upto` (0: none). Entries above the
    /// base are left by an indexer stopped in the middle of a checkpoint: not yet true.
    pub(crate) fn version(&self, ticket: &TicketId, upto: u64) -> Result<u64, LogError> {
        let prefix = stream_prefix(ticket);
        for kv in self.streams.prefix(&prefix).rev() {
            let (key, value) = kv.map_err(|e| self.failed(e))?;
            if u64_at(&value, 0)? <= upto {
                return u64_at(&key, prefix.len());
            }
        }
        Ok(0)
    }

    /// The positions of versions `from..=to` of a stream, as far as indexed here.
    pub(crate) fn stream(
        &self,
        ticket: &TicketId,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, LogError> {
        self.streams
            .range(stream_key(ticket, from)..=stream_key(ticket, to))
            .map(|kv| u64_at(&kv.map_err(|e| self.failed(e))?.1, 0))
            .collect()
    }

    /// Positions at or below `upto` whose id has this hash, oldest first.
    pub(crate) fn ids(&self, id: IdHash, upto: u64) -> Result<Vec<u64>, LogError> {
        let Some(v) = self.ids.get(id.to_be_bytes()).map_err(|e| self.failed(e))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(1);
        for k in 0..v.len() / 8 {
            let p = u64_at(&v, k * 8)?;
            if p <= upto {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Indexes a checkpoint that follows on from the base, whose last record hashes to `hash`;
    /// `before[t]` is the version of the checkpoint's `t`-th ticket at the base. Written in
    /// batches of [`BATCH_RECORDS`], the new base and hash with the last: an indexer stopped in
    /// between leaves entries above the base, which every read here ignores and the next try
    /// writes again.
    /// Answers false, with the base unchanged, when `stop` was set between two batches.
    pub(crate) fn write(
        &self,
        checkpoint: &Checkpoint,
        before: &[u64],
        hash: Hash,
        stop: &AtomicBool,
    ) -> Result<bool, LogError> {
        let mut versions = before.to_vec();
        let mut ids: HashMap<IdHash, Vec<u8>> = HashMap::new();
        let mut batch = self.keyspace.batch();
        let mut position = checkpoint.first;
        for (blob_first, records) in checkpoint.blobs() {
            // Records follow each other from byte 1 of their blob (byte 0 is its format).
            let mut offset = 1u32;
            for r in records {
                let t = usize::try_from(r.ticket).unwrap_or(usize::MAX);
                let (Some(ticket), Some(version)) =
                    (checkpoint.tickets.get(t), versions.get_mut(t))
                else {
                    return Err(LogError::corrupt(
                        position,
                        "checkpoint names an unknown ticket",
                    ));
                };
                *version += 1;
                batch.insert(
                    &self.streams,
                    stream_key(ticket, *version),
                    position.to_be_bytes(),
                );
                let mut loc = [0u8; 16];
                loc[..8].copy_from_slice(&blob_first.to_be_bytes());
                loc[8..12].copy_from_slice(&offset.to_be_bytes());
                loc[12..].copy_from_slice(&r.len.to_be_bytes());
                batch.insert(&self.positions, position.to_be_bytes(), loc);
                let held = match ids.entry(r.id) {
                    Entry::Occupied(at) => at.into_mut(),
                    // Usually nothing; a 128-bit collision with an older id keeps both.
                    Entry::Vacant(at) => at.insert(
                        self.ids
                            .get(r.id.to_be_bytes())
                            .map_err(|e| self.failed(e))?
                            .map_or_else(Vec::new, |v| v.to_vec()),
                    ),
                };
                if !held.chunks(8).any(|p| p == position.to_be_bytes()) {
                    held.extend_from_slice(&position.to_be_bytes());
                }
                offset = offset.saturating_add(r.len);
                position += 1;
                if batch.len() >= 2 * BATCH_RECORDS {
                    for (id, positions) in ids.drain() {
                        batch.insert(&self.ids, id.to_be_bytes(), positions);
                    }
                    std::mem::replace(&mut batch, self.keyspace.batch())
                        .commit()
                        .map_err(|e| self.failed(e))?;
                    if stop.load(Ordering::Relaxed) {
                        return Ok(false);
                    }
                }
            }
        }
        for (id, positions) in ids {
            batch.insert(&self.ids, id.to_be_bytes(), positions);
        }
        let mut base = [0u8; 40];
        base[..8].copy_from_slice(&checkpoint.last().to_be_bytes());
        base[8..].copy_from_slice(&hash.0);
        batch.insert(&self.meta, BASE_KEY, base);
        batch.commit().map_err(|e| self.failed(e))?;
        Ok(true)
    }

    /// Stream entries, the distinct tickets they name and id entries at or below `upto` (for
    /// `verify`, which checks them against the records).
    pub(crate) fn entries(&self, upto: u64) -> Result<(u64, u64, u64), LogError> {
        let mut tickets = 0u64;
        let mut streams = 0u64;
        let mut last: Option<Vec<u8>> = None;
        for kv in self.streams.iter() {
            let (key, value) = kv.map_err(|e| self.failed(e))?;
            if u64_at(&value, 0)? > upto {
                continue;
            }
            let prefix = key[..key.len().saturating_sub(8)].to_vec();
            if last.as_ref() != Some(&prefix) {
                tickets += 1;
                last = Some(prefix);
            }
            streams += 1;
        }
        let mut ids = 0u64;
        for value in self.ids.values() {
            let value = value.map_err(|e| self.failed(e))?;
            for k in 0..value.len() / 8 {
                ids += u64::from(u64_at(&value, k * 8)? <= upto);
            }
        }
        Ok((tickets, streams, ids))
    }

    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.keyspace
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.failed(e))
    }
}
