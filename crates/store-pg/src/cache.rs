//! The replica's copy of the committed log: an index of every position and the records of
//! the tail. Pure bookkeeping, no IO.

use std::collections::{HashMap, VecDeque};

use events::codec;
use events::{Hash, RecordedEvent, TicketId};
use store::LogError;

/// What this replica knows of the committed log: an index of every position (its ticket stream
/// and its event id's hash) and the encoded records of the tail.
pub(crate) struct Cache {
    /// The tail's length.
    tail_max: usize,
    head: u64,
    /// The hash of the record at `head`.
    pub(crate) hash: Hash,
    pub(crate) streams: HashMap<TicketId, Vec<u64>>,
    /// 64 bits of blake3 of each event id → its position; the rare second id with the same
    /// hash goes to `id_overflow`. A hit is a candidate, confirmed on the record.
    ids: HashMap<u64, u64>,
    id_overflow: Vec<(u64, u64)>,
    /// The last records, oldest first; the last one is at `head`.
    tail: VecDeque<Box<[u8]>>,
}

fn id_hash(id: &str) -> u64 {
    let bytes = blake3::hash(id.as_bytes());
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

impl Cache {
    pub(crate) fn new(tail_max: usize) -> Cache {
        Cache {
            tail_max: tail_max.max(1),
            head: 0,
            hash: Hash::ZERO,
            streams: HashMap::new(),
            ids: HashMap::new(),
            id_overflow: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Adds the record at `position` if it is the next one (records already held are
    /// skipped); answers the decoded event when it was added.
    pub(crate) fn push(
        &mut self,
        position: u64,
        record: &[u8],
    ) -> Result<Option<RecordedEvent>, LogError> {
        if position <= self.head {
            return Ok(None);
        }
        if position != self.head + 1 {
            return Err(LogError::corrupt(
                self.head + 1,
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
        if position <= self.head {
            return Ok(());
        }
        if position != self.head + 1 || event.prev_hash != self.hash {
            return Err(LogError::corrupt(
                position,
                "hash chain broken: prev_hash differs",
            ));
        }
        self.head = position;
        self.hash = event.hash;
        self.streams
            .entry(event.ticket.clone())
            .or_default()
            .push(position);
        let key = id_hash(&event.id);
        if let Some(older) = self.ids.insert(key, position) {
            // Two ids with the same 64-bit hash: the map keeps the newer, the overflow the older.
            self.id_overflow.push((key, older));
        }
        if self.tail.len() == self.tail_max {
            self.tail.pop_front();
        }
        self.tail.push_back(record.into());
        Ok(())
    }

    /// The record at `position` if it is in the tail.
    pub(crate) fn tail_record(&self, position: u64) -> Option<&[u8]> {
        let first = self.head + 1 - count(self.tail.len());
        let index = usize::try_from(position.checked_sub(first)?).ok()?;
        self.tail.get(index).map(|r| &r[..])
    }

    /// Positions whose event id may be `id`.
    pub(crate) fn id_candidates(&self, id: &str) -> Vec<u64> {
        let key = id_hash(id);
        self.ids
            .get(&key)
            .copied()
            .into_iter()
            .chain(
                self.id_overflow
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, p)| *p),
            )
            .collect()
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
