//! The log's in-memory indexes (position → bytes, ticket → positions, event id → position) and
//! the checkpoints that persist them, so that an append writes one key and an open reads a few.
//!
//! The index may run ahead of the durable head (the writer fills it while it stages a commit,
//! before the flush): every reader caps what it shows at the durable head it read first.

use std::collections::{HashMap, VecDeque};

use events::ids::TicketId;
use store::id_index::IdIndex;
use store::LogError;

use crate::disk::Disk;
pub(crate) use crate::layout::{id_hash, Checkpoint, IdHash, Location};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: u32,
    len: u32,
}

/// A stream's positions after the disk index's base, and how many versions it has below.
#[derive(Debug, Default)]
struct Stream {
    /// Versions on disk (at or below `base`).
    before: u64,
    /// Positions of versions `before + 1 ..`, in order.
    positions: Vec<u64>,
    /// Its last position: a stream whose positions all moved to disk stays (its version known
    /// without asking the disk) until it has been idle for a whole checkpoint.
    last: u64,
}

/// Every position's location, every stream's positions and every id's position: those at or
/// below `base` on disk (`disk.rs`, when there is one), the rest in these maps. So what the
/// log holds in memory is bounded by what came since the last checkpoint or two the indexer
/// moved to disk, not by its history.
#[derive(Default)]
pub(crate) struct Index {
    /// Positions at or below this are on disk.
    base: u64,
    disk: Option<Disk>,
    /// First position of every commit blob after `base`, ascending.
    blobs: Vec<u64>,
    /// The bytes of position `p` in its blob, at `spans[p - base - 1]`.
    spans: Vec<Span>,
    /// Streams with a position after `base`.
    streams: HashMap<TicketId, Stream>,
    /// Id hash → position after `base`, one map per checkpoint window from the first position
    /// it holds, oldest first, so a checkpoint's ids leave memory with their map. A later
    /// position with an earlier one's hash (a 128-bit collision) is kept beside it, so that
    /// dedupe stays exact even then.
    ids: VecDeque<(u64, IdIndex<IdHash>)>,
}

impl Index {
    /// An index whose positions up to `base` are on `disk`.
    pub(crate) fn on(disk: Option<Disk>, base: u64) -> Index {
        Index {
            base,
            disk,
            ..Index::default()
        }
    }

    /// Positions at or below this are on disk.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn disk(&self) -> Option<&Disk> {
        self.disk.as_ref()
    }

    /// Positions indexed (durable or staged).
    pub(crate) fn len(&self) -> u64 {
        self.base + count(self.spans.len())
    }

    /// Adds the record at position `len() + 1`, version `version` of its stream; its blob is
    /// started if it is a new one.
    pub(crate) fn push(
        &mut self,
        blob_first: u64,
        ticket: &TicketId,
        version: u64,
        id: IdHash,
        offset: u32,
        len: u32,
    ) {
        if self.blobs.last() != Some(&blob_first) {
            self.blobs.push(blob_first);
        }
        self.spans.push(Span { offset, len });
        let position = self.len();
        match self.streams.get_mut(ticket) {
            Some(stream) => {
                stream.positions.push(position);
                stream.last = position;
            }
            None => {
                self.streams.insert(
                    ticket.clone(),
                    Stream {
                        before: version.saturating_sub(1),
                        positions: vec![position],
                        last: position,
                    },
                );
            }
        }
        if self.ids.is_empty() {
            self.ids.push_back((position, IdIndex::default()));
        }
        if let Some((_, ids)) = self.ids.back_mut() {
            ids.insert(id, position);
        }
    }

    /// A checkpoint starts at `first` (the next position): its ids get a map of their own
    /// (without a disk index nothing leaves memory: one map for all).
    pub(crate) fn start_window(&mut self, first: u64) {
        if self.disk.is_none() && !self.ids.is_empty() {
            return;
        }
        if self.ids.back().is_some_and(|(_, ids)| ids.is_empty()) {
            self.ids.pop_back();
        }
        self.ids.push_back((first, IdIndex::default()));
    }

    pub(crate) fn locate(&self, position: u64) -> Result<Option<Location>, LogError> {
        if position <= self.base {
            return match &self.disk {
                Some(disk) if position > 0 => disk.locate(position),
                _ => Ok(None),
            };
        }
        let Some(span) = usize::try_from(position - self.base - 1)
            .ok()
            .and_then(|i| self.spans.get(i))
        else {
            return Ok(None);
        };
        let Some(blob) = self
            .blobs
            .partition_point(|&first| first <= position)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        Ok(Some(Location {
            blob_first: self.blobs[blob],
            offset: span.offset,
            len: span.len,
        }))
    }

    /// The location of a position that must be indexed.
    pub(crate) fn location(&self, position: u64) -> Result<Location, LogError> {
        self.locate(position)?
            .ok_or_else(|| LogError::corrupt(position, "position missing from the index"))
    }

    /// The positions of the commit blob that starts at `first`, and the tickets they belong
    /// to (sorted): what a blob that cannot be read takes with it. `None` for a blob at or
    /// below `base` (its checkpoint says).
    pub(crate) fn blob_contents(&self, first: u64) -> Option<(u64, u64, Vec<TicketId>)> {
        if first <= self.base {
            return None;
        }
        let next = self.blobs.partition_point(|&f| f <= first);
        let last = self.blobs.get(next).map_or(self.len(), |n| n - 1);
        let mut tickets: Vec<TicketId> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                let at = s.positions.partition_point(|&p| p < first);
                s.positions.get(at).is_some_and(|&p| p <= last)
            })
            .map(|(t, _)| t.clone())
            .collect();
        tickets.sort();
        Some((first, last, tickets))
    }

    /// A stream's version: records indexed in it (durable or staged).
    pub(crate) fn version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        self.version_upto(ticket, u64::MAX)
    }

    /// A stream's version counting only positions at or below `head` (a reader's durable head;
    /// `u64::MAX` for everything indexed, staged records included).
    pub(crate) fn version_upto(&self, ticket: &TicketId, head: u64) -> Result<u64, LogError> {
        match (self.streams.get(ticket), &self.disk) {
            (Some(s), _) => Ok(s.before + count(s.positions.partition_point(|&p| p <= head))),
            // A reader's head may be older than the base the indexer has moved to since.
            (None, Some(disk)) => disk.version(ticket, self.base.min(head)),
            (None, None) => Ok(0),
        }
    }

    /// The positions of versions `from..=to` of a stream (those indexed).
    pub(crate) fn stream(
        &self,
        ticket: &TicketId,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, LogError> {
        let from = from.max(1);
        if from > to {
            return Ok(Vec::new());
        }
        let memory = self.streams.get(ticket);
        let before = memory.map_or(u64::MAX, |s| s.before);
        let mut out = match &self.disk {
            Some(disk) if from <= before => {
                let mut on_disk = disk.stream(ticket, from, to.min(before))?;
                on_disk.retain(|&p| p <= self.base);
                on_disk
            }
            _ => Vec::new(),
        };
        if let Some(s) = memory {
            let skip = usize::try_from(from.saturating_sub(s.before + 1)).unwrap_or(usize::MAX);
            let take = usize::try_from(to.saturating_sub(s.before)).unwrap_or(usize::MAX);
            out.extend(s.positions.iter().take(take).skip(skip));
        }
        Ok(out)
    }

    /// Positions whose id has this hash: usually none or one, oldest first.
    pub(crate) fn id_candidates(&self, id: IdHash) -> Result<Vec<u64>, LogError> {
        let mut out = match &self.disk {
            Some(disk) if self.base > 0 => disk.ids(id, self.base)?,
            _ => Vec::new(),
        };
        for (_, ids) in &self.ids {
            out.extend(ids.candidates(id));
        }
        Ok(out)
    }

    /// Stream entries and id entries at or below `head`, and the tickets with one, for
    /// `verify` to check against the number of records.
    pub(crate) fn entries_upto(&self, head: u64) -> Result<(u64, u64, u64), LogError> {
        let (mut tickets, mut streams, mut ids) = match &self.disk {
            // verify's head may be older than the base the indexer has moved to since.
            Some(disk) if self.base > 0 => disk.entries(self.base.min(head))?,
            _ => (0, 0, 0),
        };
        for s in self.streams.values() {
            let n = count(s.positions.partition_point(|&p| p <= head));
            streams += n;
            // A stream with versions on disk is counted there.
            tickets += u64::from(n > 0 && s.before == 0);
        }
        ids += self
            .ids
            .iter()
            .map(|(_, i)| i.entries_upto(head))
            .sum::<u64>();
        Ok((tickets, streams, ids))
    }

    /// Applies one checkpoint's records (which must start right after what is indexed).
    pub(crate) fn apply(&mut self, checkpoint: &Checkpoint) -> Result<(), LogError> {
        debug_assert_eq!(checkpoint.first, self.len() + 1);
        self.spans.reserve(checkpoint.records.len());
        self.start_window(checkpoint.first);
        for (blob_first, records) in checkpoint.blobs() {
            // Records follow each other from byte 1 of their blob (byte 0 is its format).
            let mut offset = 1u32;
            for r in records {
                let ticket = &checkpoint.tickets[usize::try_from(r.ticket).unwrap_or(usize::MAX)];
                let version = self.version(ticket)? + 1;
                self.push(blob_first, ticket, version, r.id, offset, r.len);
                offset = offset.saturating_add(r.len);
            }
        }
        Ok(())
    }

    /// The versions the checkpoint's tickets (in its order) have at `base`: what the disk
    /// index numbers their next versions from. The checkpoint must follow `base`.
    pub(crate) fn versions_before(&self, checkpoint: &Checkpoint) -> Result<Vec<u64>, LogError> {
        checkpoint
            .tickets
            .iter()
            .map(|t| match self.streams.get(t) {
                Some(s) => Ok(s.before),
                None => Err(LogError::corrupt(
                    checkpoint.first,
                    "a checkpoint names a ticket the index does not hold",
                )),
            })
            .collect()
    }

    /// The checkpoint that follows `base` is on disk now: its positions leave memory. Answers
    /// the id maps it frees, to be dropped after the lock is released.
    pub(crate) fn moved_to_disk(&mut self, checkpoint: &Checkpoint) -> Vec<IdIndex<IdHash>> {
        if checkpoint.first != self.base + 1 {
            return Vec::new();
        }
        let last = checkpoint.last();
        let previous = self.base;
        let n = usize::try_from(checkpoint.count())
            .unwrap_or(usize::MAX)
            .min(self.spans.len());
        self.spans.drain(..n);
        let keep = self.blobs.partition_point(|&f| f <= last);
        self.blobs.drain(..keep);
        // Whole windows go at once; a window that runs past the checkpoint (none, when the
        // writer starts one at every checkpoint) gives up its entries one by one.
        let mut freed = Vec::new();
        while self.ids.get(1).is_some_and(|(next, _)| *next <= last + 1) {
            freed.extend(self.ids.pop_front().map(|(_, ids)| ids));
        }
        if let Some((first, ids)) = self.ids.front_mut() {
            if *first <= last {
                for (k, r) in checkpoint.records.iter().enumerate() {
                    let position = checkpoint.first + count(k);
                    if position >= *first {
                        ids.remove(r.id, position);
                    }
                }
                *first = last + 1;
            }
        }
        for ticket in &checkpoint.tickets {
            let Some(s) = self.streams.get_mut(ticket) else {
                continue;
            };
            let moved = s.positions.partition_point(|&p| p <= last);
            s.positions.drain(..moved);
            s.before += count(moved);
        }
        // Streams idle since before the previous checkpoint leave memory too.
        if self.streams.len() > checkpoint.tickets.len() {
            self.streams
                .retain(|_, s| !s.positions.is_empty() || s.last > previous);
        }
        self.base = last;
        freed
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> TicketId {
        TicketId::parse(s).unwrap()
    }

    #[test]
    fn checkpoint_round_trips_and_rebuilds_the_index() {
        let mut cp = Checkpoint::new(5);
        cp.push(5, &t("MC-1"), id_hash("a"), 100);
        cp.push(5, &t("MC-2"), id_hash("b"), 120);
        cp.push(7, &t("MC-1"), id_hash("c"), 90);
        let bytes = cp.encode();
        let back = Checkpoint::decode(&bytes).unwrap();
        assert_eq!((back.first, back.last()), (5, 7));
        assert_eq!(back.records, cp.records);
        assert_eq!(back.blob_sizes, vec![(5, 2), (7, 1)]);

        let mut index = Index::default();
        for p in 1..5u64 {
            index.push(1, &t("MC-9"), p, id_hash(&format!("x{p}")), 1, 10);
        }
        index.apply(&back).unwrap();
        assert_eq!(index.stream(&t("MC-1"), 1, 9).unwrap(), vec![5, 7]);
        assert_eq!(
            index.locate(6).unwrap(),
            Some(Location {
                blob_first: 5,
                offset: 101,
                len: 120
            })
        );
        assert_eq!(index.id_candidates(id_hash("c")).unwrap(), vec![7]);

        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(Checkpoint::decode(&bad).is_err());
        assert!(Checkpoint::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_hash_collision_keeps_both_positions() {
        let mut index = Index::default();
        index.push(1, &t("MC-1"), 1, 42, 1, 10);
        index.push(1, &t("MC-1"), 2, 42, 11, 10);
        assert_eq!(index.id_candidates(42).unwrap(), vec![1, 2]);
        assert_eq!(index.entries_upto(2).unwrap(), (1, 2, 2));
        assert_eq!(index.entries_upto(1).unwrap(), (1, 1, 1));
    }

    /// One record: its blob (a new one or the current), its ticket, its id hash, its length.
    fn records() -> impl Strategy<Value = Vec<(bool, u8, u8, u32)>> {
        proptest::collection::vec((any::<bool>(), 0u8..6, 0u8..40, 1u32..50), 1..120)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// SPEC §18: an index whose older checkpoints moved to disk answers every question as
        /// the one that holds everything in memory, and holds only what came after in memory.
        #[test]
        fn moving_checkpoints_to_disk_changes_no_answer(
            records in records(),
            every in 1usize..20,
            moved in 0usize..10,
            windows in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let disk = Disk::open(dir.path(), 1 << 20).unwrap();
            let mut memory = Index::default();
            let mut split = Index::on(Some(disk.clone()), 0);
            let mut checkpoints = Vec::new();
            let mut pending = Checkpoint::new(1);
            let mut blob_first = 1;
            let mut offset = 1u32;
            let mut position = 0u64;
            for (k, &(new_blob, ticket, id, len)) in records.iter().enumerate() {
                position += 1;
                // A checkpoint ends only at a blob's end: cut it before a new blob starts.
                let starts = k == 0 || new_blob;
                if starts && k > 0 {
                    if pending.count() >= u64::try_from(every).unwrap() {
                        let next = Checkpoint::new(position);
                        checkpoints.push(std::mem::replace(&mut pending, next));
                        if windows {
                            split.start_window(position);
                            memory.start_window(position);
                        }
                    }
                    blob_first = position;
                    offset = 1;
                }
                let ticket = t(&format!("MC-{ticket}"));
                let version = memory.version(&ticket).unwrap() + 1;
                let id = u128::from(id) << 64 | u128::from(id);
                memory.push(blob_first, &ticket, version, id, offset, len);
                split.push(blob_first, &ticket, version, id, offset, len);
                pending.push(blob_first, &ticket, id, len);
                offset += len;
            }
            for cp in checkpoints.iter().take(moved) {
                let before = split.versions_before(cp).unwrap();
                let never = std::sync::atomic::AtomicBool::new(false);
                assert!(disk.write(cp, &before, events::envelope::Hash::ZERO, &never).unwrap());
                split.moved_to_disk(cp);
            }
            let on_disk: u64 = checkpoints.iter().take(moved).map(Checkpoint::count).sum();
            prop_assert_eq!(split.base(), on_disk);
            prop_assert_eq!(split.len(), memory.len());
            prop_assert_eq!(u64::try_from(split.spans.len()).unwrap(), position - on_disk);
            for p in 0..=position + 1 {
                prop_assert_eq!(split.locate(p).unwrap(), memory.locate(p).unwrap(), "locate {}", p);
            }
            for n in 0..6 {
                let ticket = t(&format!("MC-{n}"));
                let v = memory.version(&ticket).unwrap();
                prop_assert_eq!(split.version(&ticket).unwrap(), v);
                for head in [on_disk, position] {
                    prop_assert_eq!(
                        split.version_upto(&ticket, head).unwrap(),
                        memory.version_upto(&ticket, head).unwrap()
                    );
                }
                for (from, to) in [(1, v), (0, v + 3), (2, 3), (v, v), (v.saturating_sub(1), v)] {
                    prop_assert_eq!(
                        split.stream(&ticket, from, to).unwrap(),
                        memory.stream(&ticket, from, to).unwrap(),
                        "stream {} {}..={}", n, from, to
                    );
                }
            }
            for id in 0..40u128 {
                let id = id << 64 | id;
                prop_assert_eq!(split.id_candidates(id).unwrap(), memory.id_candidates(id).unwrap());
            }
            prop_assert_eq!(split.entries_upto(position).unwrap(), memory.entries_upto(position).unwrap());
        }
    }
}
