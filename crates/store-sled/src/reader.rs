//! The read side: [`LogReader`] serves the [`EventReader`] reads from the sled tree and the
//! shared index, and shows nothing above the durable head the flusher publishes.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use tokio::sync::watch;

use events::envelope::RecordedEvent;
use events::ids::{is_event_id, TicketId};
use store::{EventReader, LogError, VerifyReport};

use crate::blob::{decode_at, log_key, position_of_key, unreadable, BlobRecords};
use crate::commit::Shared;
use crate::disk::Disk;
use crate::index::{id_hash, Index, Location};
use crate::verify::verify_log;

/// The read side: the sled tree, the shared index and the durable head. It cannot append.
#[derive(Clone)]
pub struct LogReader {
    tree: sled::Tree,
    index: Arc<RwLock<Index>>,
    committed: watch::Receiver<u64>,
    /// The writer's state: whether appends can commit (`ready`).
    shared: Arc<Shared>,
}

impl LogReader {
    /// The read side of a log opened over `tree`, whose flusher publishes into `committed`.
    pub(crate) fn new(
        tree: sled::Tree,
        index: Arc<RwLock<Index>>,
        committed: watch::Receiver<u64>,
        shared: Arc<Shared>,
    ) -> LogReader {
        LogReader {
            tree,
            index,
            committed,
            shared,
        }
    }

    /// The last position the disk index holds.
    pub(crate) fn indexed_on_disk(&self) -> u64 {
        self.index().base()
    }

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
                    .map_err(|e| unreadable(e, loc.blob_first, &self.index(), &self.tree))?
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
        positions.map(|p| index.location(p)).collect()
    }
}

impl EventReader for LogReader {
    fn head(&self) -> u64 {
        self.durable()
    }

    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        let durable = self.durable();
        self.index().version_upto(ticket, durable)
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
        let to = to_version.min(from.saturating_add(u64::try_from(limit - 1).unwrap_or(u64::MAX)));
        let locations = {
            let index = self.index();
            index
                .stream(ticket, from, to)?
                .into_iter()
                .take_while(|&p| p <= durable)
                .map(|p| index.location(p))
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
            let (key, blob) = entry.map_err(|e| unreadable(e, next, &self.index(), &self.tree))?;
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
            .id_candidates(id_hash(id))?
            .into_iter()
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

    /// Not ready while a write has failed or is stalled, or the disk index has failed:
    /// appends cannot commit (`/readyz` 503; the server reopens the log once the disk takes
    /// writes again).
    fn ready(&self) -> Result<(), LogError> {
        if let Some(why) = self.shared.lock().unavailable() {
            return Err(LogError::Unavailable(why));
        }
        if self.index().disk().is_some_and(Disk::broken) {
            return Err(LogError::Unavailable(
                "the disk index (log/index) failed; the log is reopened when the disk takes \
                 writes again"
                    .into(),
            ));
        }
        Ok(())
    }

    fn verify(&self) -> Result<VerifyReport, LogError> {
        verify_log(&self.tree, &self.index, self.durable())
    }
}
