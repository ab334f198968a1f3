//! What an append is, against what a store already holds: the one rule both stores' writers
//! apply (sled against its index, PostgreSQL against its copy under the head-row lock).
//!
//! In order:
//! 1. **Duplicate.** Every event id is stored already, each on the stream this append puts it
//!    on: a retry of an applied append. It is answered with the originals (in position order)
//!    and appends nothing, whatever the expected versions say now. Only ids and streams are
//!    compared, not the events' other fields.
//! 2. **Id conflict.** Every id is stored but one of them on another stream (the first such
//!    original names the conflict), or only some ids are stored (the first such event of the
//!    append names it).
//! 3. **Version conflict.** A stream's expected version is not its current one (the first
//!    such stream, in the order of the parts).
//! 4. **New**, with every stream's current version, in the order of the parts.

use events::{NewEvent, RecordedEvent, TicketId};

use crate::{AppendRequest, LogError, Part};

/// An append that may be written, or a retry of one that was.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// Not seen before; each stream's current version, in the order of the parts.
    New(Vec<u64>),
    /// Every id was appended already: the originals, in position order.
    Duplicate(Vec<RecordedEvent>),
}

/// Classifies `append` (already [`crate::validate`]d) against what the store knows:
/// `original(i, id)` is the stored event with exactly the id of the append's `i`-th event (in
/// [`AppendRequest::all_events`] order), if any: a store's id index gives candidates, the store
/// confirms them on the record. `version(ticket)` is the stream's current version, counting
/// everything an append would follow (staged events included). `original` is asked for every
/// event, in order, before anything is decided; its first error is the answer.
pub fn classify(
    append: &AppendRequest,
    mut original: impl FnMut(usize, &str) -> Result<Option<RecordedEvent>, LogError>,
    mut version: impl FnMut(&TicketId) -> Result<u64, LogError>,
) -> Result<Classified, LogError> {
    let parts: Vec<Part<'_>> = append.parts().collect();
    let events: Vec<(&TicketId, &NewEvent)> = parts
        .iter()
        .flat_map(|p| p.events.iter().map(move |e| (p.ticket, e)))
        .collect();
    let originals = events
        .iter()
        .enumerate()
        .map(|(i, (_, e))| original(i, &e.id))
        .collect::<Result<Vec<Option<RecordedEvent>>, LogError>>()?;
    // Dedupe first: a retry of an applied append must not be refused for its version.
    let existing = originals.iter().filter(|o| o.is_some()).count();
    if existing > 0 && existing == events.len() {
        for (original, (ticket, _)) in originals.iter().flatten().zip(&events) {
            if original.ticket != **ticket {
                return Err(LogError::IdConflict {
                    id: original.id.clone(),
                });
            }
        }
        let mut all: Vec<RecordedEvent> = originals.into_iter().flatten().collect();
        all.sort_by_key(|e| e.position);
        return Ok(Classified::Duplicate(all));
    }
    if let Some(i) = originals.iter().position(Option::is_some) {
        return Err(LogError::IdConflict {
            id: events[i].1.id.clone(),
        });
    }
    let currents: Vec<u64> = parts
        .iter()
        .map(|p| version(p.ticket))
        .collect::<Result<_, _>>()?;
    for (part, &current) in parts.iter().zip(&currents) {
        if let Some(expected) = part.expected_version {
            if expected != current {
                return Err(LogError::VersionConflict {
                    ticket: part.ticket.to_string(),
                    expected,
                    actual: current,
                });
            }
        }
    }
    Ok(Classified::New(currents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{place, ChainHead};
    use crate::test_support::{new_event as event, t};
    use crate::StreamAppend;

    /// `(ticket, expected, ids)` for the first stream, then the `also` streams.
    fn request(parts: &[(&str, Option<u64>, &[&str])]) -> AppendRequest {
        let mut streams = parts.iter().map(|(ticket, expected, ids)| StreamAppend {
            ticket: t(ticket),
            expected_version: *expected,
            events: ids.iter().map(|id| event(id)).collect(),
        });
        let first = streams.next().expect("a part");
        AppendRequest {
            ticket: first.ticket,
            expected_version: first.expected_version,
            events: first.events,
            also: streams.collect(),
        }
    }

    /// A store in miniature: what the given appends left (each applied as `classify` says).
    #[derive(Default)]
    struct Known {
        log: Vec<RecordedEvent>,
    }

    impl Known {
        fn original(&self, id: &str) -> Result<Option<RecordedEvent>, LogError> {
            Ok(self.log.iter().find(|e| e.id == id).cloned())
        }
        fn version(&self, ticket: &TicketId) -> u64 {
            u64::try_from(self.log.iter().filter(|e| &e.ticket == ticket).count()).unwrap()
        }
        fn classify(&self, append: &AppendRequest) -> Result<Classified, LogError> {
            classify(append, |_, id| self.original(id), |t| Ok(self.version(t)))
        }
        fn apply(&mut self, append: &AppendRequest) {
            let Ok(Classified::New(currents)) = self.classify(append) else {
                panic!("given appends must be new");
            };
            let mut head = self.log.last().map_or(ChainHead::EMPTY, |e| ChainHead {
                position: e.position,
                hash: e.hash,
            });
            let placed: Vec<_> = place(append, &currents, head.position).collect();
            for p in placed {
                let hash = p.encode(&mut Vec::new(), &head.hash).unwrap();
                let recorded = p.recorded(head.hash, hash);
                head.advance(&recorded);
                self.log.push(recorded);
            }
        }
    }

    /// What a row expects: new with these currents, a duplicate of these positions, or an
    /// error with this code naming this id or ticket.
    #[derive(Debug, PartialEq)]
    enum Then {
        New(Vec<u64>),
        Duplicate(Vec<u64>),
        Refused(&'static str, String),
    }

    fn then_of(got: Result<Classified, LogError>) -> Then {
        match got {
            Ok(Classified::New(currents)) => Then::New(currents),
            Ok(Classified::Duplicate(events)) => {
                Then::Duplicate(events.iter().map(|e| e.position).collect())
            }
            Err(e) => {
                let named = match &e {
                    LogError::IdConflict { id } => id.clone(),
                    LogError::VersionConflict {
                        ticket,
                        expected,
                        actual,
                    } => format!("{ticket} {expected}/{actual}"),
                    other => other.to_string(),
                };
                Then::Refused(e.code(), named)
            }
        }
    }

    type Parts = &'static [(&'static str, Option<u64>, &'static [&'static str])];

    #[test]
    fn classify_table() {
        let refused = |code, named: &str| Then::Refused(code, named.to_owned());
        let rows: Vec<(&str, Vec<Parts>, Parts, Then)> = vec![
            (
                "a new stream",
                vec![],
                &[("MC-1", None, &["a"])],
                Then::New(vec![0]),
            ),
            (
                "expected 0 on a new stream",
                vec![],
                &[("MC-1", Some(0), &["a"])],
                Then::New(vec![0]),
            ),
            (
                "expected version matches",
                vec![&[("MC-1", None, &["a", "b"])]],
                &[("MC-1", Some(2), &["c"])],
                Then::New(vec![2]),
            ),
            (
                "expected version behind",
                vec![&[("MC-1", None, &["a", "b"])]],
                &[("MC-1", Some(1), &["c"])],
                refused("version_conflict", "MC-1 1/2"),
            ),
            (
                "same ids again: the originals",
                vec![&[("MC-1", None, &["a", "b"])]],
                &[("MC-1", None, &["a", "b"])],
                Then::Duplicate(vec![1, 2]),
            ),
            (
                "the originals come in position order",
                vec![&[("MC-1", None, &["a", "b"])]],
                &[("MC-1", None, &["b", "a"])],
                Then::Duplicate(vec![1, 2]),
            ),
            (
                "ids of two earlier appends together: a duplicate too",
                vec![&[("MC-1", None, &["a"])], &[("MC-1", None, &["b"])]],
                &[("MC-1", None, &["a", "b"])],
                Then::Duplicate(vec![1, 2]),
            ),
            (
                "a duplicate wins over a stale expected version",
                vec![&[("MC-1", Some(0), &["a"])], &[("MC-1", None, &["b"])]],
                &[("MC-1", Some(0), &["a"])],
                Then::Duplicate(vec![1]),
            ),
            (
                "some ids exist, some not: the first existing one",
                vec![&[("MC-1", None, &["b"])]],
                &[("MC-1", None, &["z", "b"])],
                refused("event_id_conflict", "b"),
            ),
            (
                "an id of another ticket",
                vec![&[("MC-1", None, &["a"])]],
                &[("MC-2", None, &["a"])],
                refused("event_id_conflict", "a"),
            ),
            (
                "an id conflict wins over a version conflict",
                vec![&[("MC-1", None, &["a"])]],
                &[("MC-1", Some(5), &["a", "b"])],
                refused("event_id_conflict", "a"),
            ),
            (
                "two streams: a current version each",
                vec![&[("MC-1", None, &["a"])]],
                &[("MC-1", Some(1), &["b"]), ("MC-2", Some(0), &["c", "d"])],
                Then::New(vec![1, 0]),
            ),
            (
                "two streams, the second's version wrong",
                vec![&[("MC-2", None, &["a"])]],
                &[("MC-1", Some(0), &["b"]), ("MC-2", Some(0), &["c"])],
                refused("version_conflict", "MC-2 0/1"),
            ),
            (
                "two streams, both wrong: the first named",
                vec![&[("MC-1", None, &["a"])], &[("MC-2", None, &["b"])]],
                &[("MC-1", Some(0), &["c"]), ("MC-2", Some(0), &["d"])],
                refused("version_conflict", "MC-1 0/1"),
            ),
            (
                "a two-stream append again: the originals",
                vec![&[("MC-1", None, &["a"]), ("MC-2", None, &["b"])]],
                &[("MC-1", Some(0), &["a"]), ("MC-2", Some(0), &["b"])],
                Then::Duplicate(vec![1, 2]),
            ),
            (
                "a two-stream append's ids swapped: the first misplaced original",
                vec![&[("MC-1", None, &["a"]), ("MC-2", None, &["b"])]],
                &[("MC-1", None, &["b"]), ("MC-2", None, &["a"])],
                refused("event_id_conflict", "b"),
            ),
        ];
        for (name, given, when, then) in rows {
            let mut known = Known::default();
            for g in given {
                known.apply(&request(g));
            }
            let got = then_of(known.classify(&request(when)));
            assert_eq!(got, then, "{name}");
        }
    }

    #[test]
    fn every_original_is_looked_up_and_its_error_is_the_answer() {
        let mut asked = Vec::new();
        let got = classify(
            &request(&[("MC-1", Some(9), &["a", "b"])]),
            |i, id| {
                asked.push((i, id.to_owned()));
                if id == "b" {
                    Err(LogError::corrupt(7, "unreadable"))
                } else {
                    Ok(None)
                }
            },
            |_| Ok(0),
        );
        assert_eq!(asked, vec![(0, "a".to_owned()), (1, "b".to_owned())]);
        assert!(matches!(got, Err(LogError::Corruption { position: 7, .. })));
        // Versions are only asked once no id is known.
        let mut versions = 0;
        let _ = classify(
            &request(&[("MC-1", None, &["a"])]),
            |_, _| Ok(Some(sample())),
            |_| {
                versions += 1;
                Ok(0)
            },
        );
        assert_eq!(versions, 0);
    }

    fn sample() -> RecordedEvent {
        let mut known = Known::default();
        known.apply(&request(&[("MC-1", None, &["a"])]));
        known.log.remove(0)
    }
}
