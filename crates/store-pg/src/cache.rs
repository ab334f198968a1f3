//! The replica's copy of the committed log: every stream's positions and the records of the
//! tail. Pure bookkeeping, no IO. Event ids are not held here: the database's unique index on
//! them answers (SPEC §18: dedupe without holding the history).

use std::collections::{HashMap, VecDeque};

use events::codec;
use events::{Hash, RecordedEvent, TicketId};
use store::chain::ChainHead;
use store::LogError;

/// What this replica knows of the committed log: every position's ticket stream and the
/// encoded records of the tail.
pub(crate) struct Cache {
    /// The tail's length.
    tail_max: usize,
    /// The last position held and the hash of its record.
    chain: ChainHead,
    pub(crate) streams: HashMap<TicketId, Vec<u64>>,
    /// The last records, oldest first; the last one is at `head`.
    tail: VecDeque<Box<[u8]>>,
}

impl Cache {
    pub(crate) fn new(tail_max: usize) -> Cache {
        Cache {
            tail_max: tail_max.max(1),
            chain: ChainHead::EMPTY,
            streams: HashMap::new(),
            tail: VecDeque::new(),
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
        self.streams
            .entry(event.ticket.clone())
            .or_default()
            .push(position);
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

pub(crate) fn decode_at(position: u64, record: &[u8]) -> Result<RecordedEvent, LogError> {
    codec::decode_record(record)
        .map(|(event, _)| event)
        .map_err(|e| LogError::corrupt(position, e))
}

pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
