//! The single writer: takes appends from the bounded queue, checks them against the index
//! (dedupe, expected versions), encodes and chains them into the open commit and indexes them.
//! It never touches the disk; the flusher does.

use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use events::envelope::{Hash, RecordedEvent};
use events::ids::TicketId;
use store::chain::place;
use store::classify::{classify, Classified};
use store::{AppendRequest, Appended, LogError};

use crate::blob::{count, decode_at, log_key, storage, BLOB_FORMAT_V1};
use crate::commit::{Reply, Request, Shared};
use crate::config::LogConfig;
use crate::index::{id_hash, Checkpoint, IdHash, Index, Location};
use crate::indexer::{apply_moves, Moves};

/// The single writer: owns the head of the chain and the index, stages appends.
pub(crate) struct Writer {
    tree: sled::Tree,
    index: Arc<RwLock<Index>>,
    shared: Arc<Shared>,
    position: u64,
    hash: Hash,
    /// Records staged since the last checkpoint.
    pending: Checkpoint,
    /// Checkpoints the indexer has put on disk, to drop from memory.
    moves: Moves,
    config: LogConfig,
}

impl Writer {
    /// The writer of a log whose chain ends at `head` (position, hash) and whose records
    /// after the last checkpoint are `pending`.
    pub(crate) fn new(
        tree: sled::Tree,
        index: Arc<RwLock<Index>>,
        shared: Arc<Shared>,
        head: (u64, Hash),
        pending: Checkpoint,
        config: LogConfig,
        moves: Moves,
    ) -> Writer {
        let (position, hash) = head;
        Writer {
            tree,
            index,
            shared,
            position,
            hash,
            pending,
            config,
            moves,
        }
    }

    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Request>, flushers: Vec<JoinHandle<()>>) {
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
        apply_moves(&self.index, &self.moves);
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
                        .id_candidates(id)?
                        .into_iter()
                        .map(|p| index.location(p))
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
                index.version(ticket)
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
            let _ = reply.send(Err(LogError::Unavailable(message.clone())));
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
            let _ = reply.send(Err(LogError::Unavailable(message.clone())));
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
            for ((&id, &(_, _, offset, len)), (ticket, version)) in
                ids.iter().zip(&spans).zip(&placed)
            {
                index.push(blob_first, ticket, *version, id, offset, len);
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
                |(k, ((event, (prev_hash, hash, _, _)), (ticket, version)))| {
                    RecordedEvent::placed(
                        event,
                        first_position + count(k),
                        ticket,
                        version,
                        prev_hash,
                        hash,
                    )
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
            self.index
                .write()
                .expect("index lock is never poisoned")
                .start_window(position + 1);
        }
        self.shared.work.notify_one();
        true
    }
}
