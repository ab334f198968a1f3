//! The replica's copy of the committed log: its head, the records of the tail and the versions
//! of the streams written lately. Pure bookkeeping, no IO. Neither event ids nor every
//! stream's positions are held here: the database's unique indexes on `id` and on
//! `(ticket, version)` answer (SPEC §18: memory bound by open work, not by history).

use std::collections::{HashMap, VecDeque};

use events::codec;
use events::{Hash, RecordedEvent, TicketId};
use store::chain::ChainHead;
use store::LogError;

/// Streams whose versions a replica remembers, at most (about 100 bytes each); a stream
/// not among them costs one indexed query.
const VERSIONS_MAX: usize = 65_536;

/// What this replica knows of the committed log: its head, the versions of the streams written
/// lately and the encoded records of the tail.
pub(crate) struct Cache {
    /// The tail's length.
    tail_max: usize,
    /// The last position held and the hash of its record.
    chain: ChainHead,
    versions: Versions,
    /// The last records, oldest first; the last one is at `head`.
    tail: VecDeque<Box<[u8]>>,
}

impl Cache {
    pub(crate) fn new(tail_max: usize) -> Cache {
        Cache {
            tail_max: tail_max.max(1),
            chain: ChainHead::EMPTY,
            versions: Versions::default(),
            tail: VecDeque::new(),
        }
    }

    /// The tail's length at most.
    pub(crate) fn tail_max(&self) -> usize {
        self.tail_max
    }

    /// Starts an empty copy just before `first`, the first record it will hold: the log below
    /// it stays in the database (a replica's open reads the tail, not the history).
    pub(crate) fn start_before(&mut self, first: &RecordedEvent) {
        if self.head() == 0 && first.position > 0 {
            self.chain = ChainHead {
                position: first.position - 1,
                hash: first.prev_hash,
            };
        }
    }

    /// The version of `ticket`'s stream at `head`, if this copy remembers it.
    pub(crate) fn version(&self, ticket: &TicketId) -> Option<u64> {
        self.versions.get(ticket)
    }

    /// Remembers that `ticket`'s stream was at `version` at position `at` (the database said
    /// so): only while that is still the head, and never over a newer answer.
    pub(crate) fn learn(&mut self, ticket: &TicketId, version: u64, at: u64) {
        if at == self.head() && self.versions.get(ticket).is_none() {
            self.versions.set(ticket, version);
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.chain.position
    }

    /// The hash of the record at `head` (zero when empty).
    pub(crate) fn hash(&self) -> Hash {
        self.chain.hash
    }

    /// Adds the record at `position` if it is the next one (records already held are
    /// skipped); answers the decoded event when it was added.
    pub(crate) fn push(
        &mut self,
        position: u64,
        record: &[u8],
    ) -> Result<Option<RecordedEvent>, LogError> {
        if position <= self.head() {
            return Ok(None);
        }
        if position != self.head() + 1 {
            return Err(LogError::corrupt(
                self.head() + 1,
                format!("the database skipped to position {position}"),
            ));
        }
        let (event, _) =
            codec::decode_record(record).map_err(|e| LogError::corrupt(position, e))?;
        if event.position != position {
            return Err(LogError::corrupt(
                position,
                "the record names another position",
            ));
        }
        self.push_decoded(&event, record)?;
        Ok(Some(event))
    }

    /// [`Cache::push`] of a record whose event is already known (the writer's own rows, which
    /// it has just encoded): no second decode.
    pub(crate) fn push_decoded(
        &mut self,
        event: &RecordedEvent,
        record: &[u8],
    ) -> Result<(), LogError> {
        let position = event.position;
        if position <= self.head() {
            return Ok(());
        }
        self.chain.check_next(event)?;
        self.chain.advance(event);
        self.versions.set(&event.ticket, event.version);
        if self.tail.len() == self.tail_max {
            self.tail.pop_front();
        }
        self.tail.push_back(record.into());
        Ok(())
    }

    /// The record at `position` if it is in the tail.
    pub(crate) fn tail_record(&self, position: u64) -> Option<&[u8]> {
        let first = self.head() + 1 - count(self.tail.len());
        let index = usize::try_from(position.checked_sub(first)?).ok()?;
        self.tail.get(index).map(|r| &r[..])
    }
}

/// A bounded map of stream versions in two generations: when the newer one is full it becomes
/// the older (the older is dropped), so what was written lately stays and memory is bounded.
#[derive(Default)]
struct Versions {
    newer: HashMap<TicketId, u64>,
    older: HashMap<TicketId, u64>,
}

impl Versions {
    fn get(&self, ticket: &TicketId) -> Option<u64> {
        self.newer
            .get(ticket)
            .or_else(|| self.older.get(ticket))
            .copied()
    }

    fn set(&mut self, ticket: &TicketId, version: u64) {
        if let Some(v) = self.newer.get_mut(ticket) {
            *v = version;
            return;
        }
        if self.newer.len() >= VERSIONS_MAX / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(ticket.clone(), version);
    }
}

pub(crate) fn decode_at(position: u64, record: &[u8]) -> Result<RecordedEvent, LogError> {
    codec::decode_record(record)
        .map(|(event, _)| event)
        .map_err(|e| LogError::corrupt(position, e))
}

pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: usize) -> TicketId {
        TicketId::parse(&format!("MC-{n}")).unwrap()
    }

    #[test]
    fn versions_keep_what_was_written_lately_within_their_bound() {
        let mut v = Versions::default();
        // Given a stream written first,
        v.set(&t(0), 7);
        // when half the bound of other streams is written after it, then it is still known
        // (in the older generation), and a later write of it lands in the newer one;
        for n in 1..VERSIONS_MAX / 2 {
            v.set(&t(n), 1);
        }
        assert_eq!(v.get(&t(0)), Some(7));
        v.set(&t(VERSIONS_MAX), 1);
        assert_eq!(v.get(&t(0)), Some(7), "rotated into the older generation");
        v.set(&t(0), 8);
        assert_eq!(v.get(&t(0)), Some(8));
        // when a stream is not written for two generations, then it is forgotten (the
        // database answers), and memory never holds more than the bound.
        for n in VERSIONS_MAX + 1..VERSIONS_MAX * 2 {
            v.set(&t(n), 1);
        }
        assert_eq!(v.get(&t(1)), None);
        assert!(v.newer.len() + v.older.len() <= VERSIONS_MAX);
    }

    #[test]
    fn a_version_learned_from_the_database_never_overrides_a_newer_one() {
        let mut cache = Cache::new(4);
        // Given a copy at head 0, when the database's answer is for another head, then it is
        // not kept; when it is for this head, it is;
        cache.learn(&t(1), 3, 5);
        assert_eq!(cache.version(&t(1)), None);
        cache.learn(&t(1), 3, 0);
        assert_eq!(cache.version(&t(1)), Some(3));
        // and an answer never replaces what the copy already knows.
        cache.learn(&t(1), 2, 0);
        assert_eq!(cache.version(&t(1)), Some(3));
    }
}
