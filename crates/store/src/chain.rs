//! The hash chain, as both stores build and check it: placing an append's events after the
//! head (positions, each stream's next version), encoding them as chained records, and
//! checking a log record by record (positions gapless, each `prev_hash` the previous record's
//! hash, versions following per stream). Pure: the stores do the IO.

use std::collections::HashMap;

use events::codec::{self, RecordHead};
use events::{Hash, NewEvent, RecordedEvent, TicketId};

use crate::{AppendRequest, LogError, VerifyReport};

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The end of a chain: the last position and the hash of its record (0 and zero when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub position: u64,
    pub hash: Hash,
}

impl ChainHead {
    /// An empty log's head.
    pub const EMPTY: ChainHead = ChainHead {
        position: 0,
        hash: Hash::ZERO,
    };

    /// Whether `event` is the next link: at the next position, chained to this head's hash.
    pub fn check_next(&self, event: &RecordedEvent) -> Result<(), LogError> {
        if event.position != self.position + 1 || event.prev_hash != self.hash {
            return Err(LogError::corrupt(
                event.position,
                "hash chain broken: prev_hash differs",
            ));
        }
        Ok(())
    }

    /// Moves the head onto `event` (which [`ChainHead::check_next`] accepted).
    pub fn advance(&mut self, event: &RecordedEvent) {
        self.position = event.position;
        self.hash = event.hash;
    }
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead::EMPTY
    }
}

/// `verify`'s walk: fed every record from position 1, it checks the chain and that every
/// stream's versions follow 1, 2, 3…; the first bad record is the error.
#[derive(Debug, Default)]
pub struct ChainCheck {
    head: ChainHead,
    versions: HashMap<TicketId, u64>,
}

impl ChainCheck {
    pub fn new() -> ChainCheck {
        ChainCheck::default()
    }

    /// Checks the next record: the chain, then its stream's version.
    pub fn push(&mut self, event: &RecordedEvent) -> Result<(), LogError> {
        self.head.check_next(event)?;
        let version = match self.versions.get_mut(&event.ticket) {
            Some(v) => {
                *v += 1;
                *v
            }
            None => {
                self.versions.insert(event.ticket.clone(), 1);
                1
            }
        };
        if event.version != version {
            return Err(LogError::corrupt(
                event.position,
                format!(
                    "ticket {} version {} where {version} was due",
                    event.ticket, event.version
                ),
            ));
        }
        self.head.advance(event);
        Ok(())
    }

    /// The last record checked.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Streams seen.
    pub fn tickets(&self) -> u64 {
        count(self.versions.len())
    }

    /// What a sound log of the records checked so far reports.
    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            events: self.head.position,
            tickets: self.tickets(),
            head_hash: self.head.hash,
        }
    }
}

/// One event of an accepted append, placed: its position and its stream's version.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub position: u64,
    pub ticket: &'a TicketId,
    pub version: u64,
    pub event: &'a NewEvent,
}

impl Placed<'_> {
    /// Appends the record to `out`, chained to `prev`; answers the record's hash.
    pub fn encode(&self, out: &mut Vec<u8>, prev: &Hash) -> Result<Hash, LogError> {
        let head = RecordHead {
            position: self.position,
            ticket: self.ticket,
            version: self.version,
            id: &self.event.id,
            recorded_at: self.event.recorded_at,
            actor: &self.event.actor,
            token_id: self.event.token_id.as_deref(),
        };
        Ok(codec::encode_record(out, prev, &head, &self.event.data)?)
    }

    /// The recorded event (a copy of the new event's fields).
    pub fn recorded(&self, prev_hash: Hash, hash: Hash) -> RecordedEvent {
        RecordedEvent::placed(
            self.event.clone(),
            self.position,
            self.ticket.clone(),
            self.version,
            prev_hash,
            hash,
        )
    }
}

/// Places every event of an accepted append after position `after`: one contiguous range, the
/// first stream's events first, each stream's versions following `currents` (one per part, as
/// [`crate::classify::Classified::New`] gives them).
pub fn place<'a>(
    append: &'a AppendRequest,
    currents: &'a [u64],
    after: u64,
) -> impl Iterator<Item = Placed<'a>> + 'a {
    append
        .parts()
        .zip(currents)
        .flat_map(|(part, &current)| {
            part.events
                .iter()
                .enumerate()
                .map(move |(k, event)| (part.ticket, current + count(k) + 1, event))
        })
        .enumerate()
        .map(move |(n, (ticket, version, event))| Placed {
            position: after + count(n) + 1,
            ticket,
            version,
            event,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{new_event, t};
    use crate::StreamAppend;

    /// Records chained the way an append writes them: `(ticket, id)` per record.
    fn log(records: &[(&str, &str)]) -> Vec<RecordedEvent> {
        let mut head = ChainHead::EMPTY;
        let mut versions: HashMap<TicketId, u64> = HashMap::new();
        let mut out = Vec::new();
        for (ticket, id) in records {
            let ticket = t(ticket);
            let version = versions.entry(ticket.clone()).or_default();
            *version += 1;
            let event = new_event(id);
            let placed = Placed {
                position: head.position + 1,
                ticket: &ticket,
                version: *version,
                event: &event,
            };
            let hash = placed.encode(&mut Vec::new(), &head.hash).unwrap();
            let recorded = placed.recorded(head.hash, hash);
            head.advance(&recorded);
            out.push(recorded);
        }
        out
    }

    #[test]
    fn place_gives_one_range_and_a_version_per_stream() {
        let append = AppendRequest {
            also: vec![StreamAppend {
                ticket: t("MC-2"),
                expected_version: None,
                events: vec![new_event("c")],
            }],
            ..AppendRequest::new(t("MC-1"), None, vec![new_event("a"), new_event("b")])
        };
        let got: Vec<(u64, String, u64, String)> = place(&append, &[4, 0], 10)
            .map(|p| {
                (
                    p.position,
                    p.ticket.to_string(),
                    p.version,
                    p.event.id.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (11, "MC-1".into(), 5, "a".into()),
                (12, "MC-1".into(), 6, "b".into()),
                (13, "MC-2".into(), 1, "c".into()),
            ]
        );
    }

    #[test]
    fn encoding_matches_the_codec_and_decodes_back() {
        let events = log(&[("MC-1", "a"), ("MC-2", "b"), ("MC-1", "c")]);
        let event = new_event("c");
        let ticket = t("MC-1");
        let placed = Placed {
            position: 3,
            ticket: &ticket,
            version: 2,
            event: &event,
        };
        let mut bytes = Vec::new();
        let hash = placed.encode(&mut bytes, &events[1].hash).unwrap();
        assert_eq!(hash, events[2].hash);
        let (decoded, used) = codec::decode_record(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decoded, events[2]);
    }

    /// Given a log, when one record is tampered with, then `ChainCheck` names its position.
    #[test]
    fn chain_check_table() {
        type Tamper = fn(&mut Vec<RecordedEvent>);
        /// `(events, tickets)` of a sound log, or the position and words of the error.
        type Then = Result<(u64, u64), (u64, &'static str)>;
        let rows: [(&str, Tamper, Then); 5] = [
            ("a sound log", |_| {}, Ok((4, 2))),
            (
                "a prev_hash that differs",
                |log| log[2].prev_hash = Hash([9; 32]),
                Err((3, "hash chain broken")),
            ),
            (
                "a gap in positions",
                |log| {
                    log.remove(1);
                },
                Err((3, "hash chain broken")),
            ),
            (
                "a version skipped",
                |log| log[2].version = 3,
                Err((3, "ticket MC-1 version 3 where 2 was due")),
            ),
            (
                "a stream starting past 1",
                |log| log[1].version = 2,
                Err((2, "ticket MC-2 version 2 where 1 was due")),
            ),
        ];
        for (name, tamper, then) in rows {
            let mut records = log(&[("MC-1", "a"), ("MC-2", "b"), ("MC-1", "c"), ("MC-2", "d")]);
            tamper(&mut records);
            let mut check = ChainCheck::new();
            let got = records
                .iter()
                .try_for_each(|e| check.push(e))
                .map(|()| (check.report().events, check.report().tickets));
            match (got, then) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want, "{name}");
                    assert_eq!(check.report().head_hash, records[3].hash, "{name}");
                }
                (Err(LogError::Corruption { position, detail }), Err((at, says))) => {
                    assert_eq!(position, at, "{name}");
                    assert!(detail.contains(says), "{name}: {detail}");
                }
                (got, want) => panic!("{name}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
