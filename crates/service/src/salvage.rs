//! What a damaged ledger still holds and what it lost (SPEC §17): `mc-ledger salvage` keeps the
//! events, `mc-ledger verify --all` prints the losses.
//!
//! A sled log is read without opening sled ([`store_sled::carve`]): sled ends a log at a
//! damaged commit and drops every later one, and its recovery rewrites what it dropped. A
//! PostgreSQL log is read through its reader, one row past each record that will not decode.
//! The losses are the positions up to the last one known (the highest record found, or the
//! position the projections' snapshot was saved at, if higher) that no whole record holds,
//! grouped into ranges, each with what can be told of it: the tickets (from damaged records
//! that still decode, from gaps in a ticket's versions, from the snapshot's versions), the
//! event types of damaged records, and the times of the events on either side.

use std::collections::{BTreeMap, BTreeSet};

use events::ids::TicketId;
use events::{RecordedEvent, Timestamp};
use serde::Serialize;
use store::{EventReader, LogError};

use crate::home::{Home, StoreUrl};

/// One run of consecutive positions that no whole record holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LostRange {
    pub first: u64,
    pub last: u64,
    /// The tickets that lost events here, as far as can be told.
    pub tickets: Vec<String>,
    /// Event types of the damaged records here that still decode, with counts.
    pub event_types: BTreeMap<String, u64>,
    /// Positions here whose type cannot be told (no record decodes).
    pub unknown_types: u64,
    /// When the last event before the range was recorded (RFC 3339).
    pub after: Option<String>,
    /// When the first event after the range was recorded (RFC 3339).
    pub before: Option<String>,
    /// In words: damaged (a record is there and fails its hash) or missing.
    pub cause: String,
}

/// The report of a salvage or of `verify --all`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    /// The last position the ledger is known to have reached.
    pub expected_events: u64,
    pub recovered: u64,
    pub lost_events: u64,
    pub lost: Vec<LostRange>,
    /// Positions whose record is whole but does not continue the chain of the one before.
    pub chain_breaks: Vec<u64>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.chain_breaks.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} of {} events are whole; {} lost in {} range{}",
            self.source,
            self.recovered,
            self.expected_events,
            self.lost_events,
            self.lost.len(),
            if self.lost.len() == 1 { "" } else { "s" }
        )?;
        for range in &self.lost {
            let positions = if range.first == range.last {
                format!("position {}", range.first)
            } else {
                format!("positions {} to {}", range.first, range.last)
            };
            let tickets = if range.tickets.is_empty() {
                "tickets unknown".to_owned()
            } else {
                format!("tickets {}", range.tickets.join(", "))
            };
            let mut types: Vec<String> = range
                .event_types
                .iter()
                .map(|(t, n)| format!("{n} {t}"))
                .collect();
            if range.unknown_types > 0 {
                types.push(format!("{} of unknown type", range.unknown_types));
            }
            let when = match (&range.after, &range.before) {
                (Some(a), Some(b)) => format!("recorded between {a} and {b}"),
                (Some(a), None) => format!("recorded after {a}"),
                (None, Some(b)) => format!("recorded before {b}"),
                (None, None) => "recorded at an unknown time".to_owned(),
            };
            writeln!(
                f,
                "  {positions} ({tickets}): {}, {}; {when}",
                range.cause,
                types.join(", ")
            )?;
        }
        for position in &self.chain_breaks {
            writeln!(
                f,
                "  position {position}: whole, but does not continue the chain of the record before it"
            )?;
        }
        Ok(())
    }
}

/// What salvage keeps and what it reports.
pub struct Salvaged {
    /// Every whole record, in position order.
    pub events: Vec<RecordedEvent>,
    pub report: Report,
}

/// How far the work has come, for a progress bar: `(done, total)` in the unit of `what`.
pub struct Progress<'a> {
    pub start: &'a dyn Fn(u64, &'static str),
    pub advance: &'a dyn Fn(u64),
}

/// Reads what `url`'s ledger still holds. A sled data directory is read from its files and
/// never opened; a PostgreSQL schema through its reader.
pub fn analyse(url: &StoreUrl, progress: &Progress<'_>) -> anyhow::Result<Salvaged> {
    match url {
        StoreUrl::Sled(dir) => {
            let log_dir = dir.join("log");
            anyhow::ensure!(
                log_dir.is_dir(),
                "no ledger at {} (is the path right?)",
                dir.display()
            );
            // The log's files and, inside, the copy kept from before an open that found it
            // damaged (`store_sled::preserve`).
            (progress.start)(store_sled::carve::carve_size(&log_dir)?, "bytes");
            let carved = store_sled::carve::carve(&log_dir, &mut |b| (progress.advance)(b))?;
            let snapshot = crate::snapshot::load(&Home::Dir(dir.clone())).ok();
            let snapshot_versions: BTreeMap<TicketId, u64> = snapshot
                .as_ref()
                .map(|s| {
                    s.ledger
                        .ticket_versions()
                        .map(|(t, v)| (t.clone(), v))
                        .collect()
                })
                .unwrap_or_default();
            let known = snapshot.map_or(0, |s| s.ledger.position());
            Ok(assemble(
                url.describe(),
                carved.records,
                carved.damaged,
                known,
                &snapshot_versions,
            ))
        }
        StoreUrl::Postgres(_) => {
            let opened = crate::home::open_store(url, store_sled::LogConfig::default())?;
            let reader = opened.store.reader();
            let (records, head) = read_past_damage(reader.as_ref(), progress)?;
            Ok(assemble(
                url.describe(),
                records,
                BTreeMap::new(),
                head,
                &BTreeMap::new(),
            ))
        }
    }
}

const PAGE: usize = 1000;

/// Every record the reader can give, stepping one position past each it cannot.
fn read_past_damage(
    reader: &dyn EventReader,
    progress: &Progress<'_>,
) -> anyhow::Result<(BTreeMap<u64, Vec<RecordedEvent>>, u64)> {
    let head = reader.head();
    (progress.start)(head, "events");
    let mut records = BTreeMap::new();
    let mut after = 0u64;
    // `after` grows on every turn, so this ends.
    while after < head {
        match reader.read_after(after, PAGE) {
            Ok(page) => {
                let Some(last) = page.last() else { break };
                after = last.position;
                records.extend(page.into_iter().map(|e| (e.position, vec![e])));
            }
            Err(LogError::Corruption { position, .. }) if position > after => {
                // The records before the bad one, then one past it.
                let before = usize::try_from(position - after - 1).map_or(PAGE, |n| n.min(PAGE));
                let page = if before > 0 {
                    reader.read_after(after, before)?
                } else {
                    Vec::new()
                };
                match page.last() {
                    Some(last) if last.position < position => {
                        after = last.position;
                        records.extend(page.into_iter().map(|e| (e.position, vec![e])));
                    }
                    _ => after = position,
                }
            }
            Err(e) => return Err(e.into()),
        }
        (progress.advance)(after);
    }
    Ok((records, head))
}

/// Chooses one record per position (the one continuing the chain, where copies differ) and
/// names every lost range.
pub fn assemble(
    source: String,
    records: BTreeMap<u64, Vec<RecordedEvent>>,
    damaged: BTreeMap<u64, RecordedEvent>,
    known_head: u64,
    snapshot_versions: &BTreeMap<TicketId, u64>,
) -> Salvaged {
    let mut events: Vec<RecordedEvent> = Vec::with_capacity(records.len());
    let mut chain_breaks = Vec::new();
    for (position, mut copies) in records {
        if position == 0 {
            continue;
        }
        let follows = |e: &RecordedEvent| {
            events
                .last()
                .filter(|p| p.position + 1 == position)
                .map(|p| p.hash == e.prev_hash)
        };
        let pick = copies
            .iter()
            .position(|c| follows(c) != Some(false))
            .unwrap_or(0);
        let chosen = copies.swap_remove(pick);
        if follows(&chosen) == Some(false) {
            chain_breaks.push(position);
        }
        events.push(chosen);
    }
    let last_found = events.last().map_or(0, |e| e.position);
    let expected = known_head.max(last_found);
    let damaged: BTreeMap<u64, RecordedEvent> = damaged
        .into_iter()
        .filter(|(p, _)| *p >= 1 && *p <= expected)
        .collect();

    // The runs of missing positions.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut next = 1u64;
    for e in &events {
        if e.position > next {
            ranges.push((next, e.position - 1));
        }
        next = e.position + 1;
    }
    if expected >= next {
        ranges.push((next, expected));
    }

    // Where each ticket's missing versions must lie: between the positions of the versions
    // on either side of a gap (the end of the log for the snapshot's later versions).
    let mut gaps: Vec<(TicketId, u64, u64)> = Vec::new();
    let mut last_seen: BTreeMap<&TicketId, (u64, u64)> = BTreeMap::new();
    for e in &events {
        let (version, position) = last_seen.get(&e.ticket).copied().unwrap_or((0, 0));
        if e.version > version + 1 {
            gaps.push((e.ticket.clone(), position, e.position));
        }
        last_seen.insert(&e.ticket, (e.version, e.position));
    }
    for (ticket, version) in snapshot_versions {
        let (seen, position) = last_seen.get(ticket).copied().unwrap_or((0, 0));
        if *version > seen {
            gaps.push((ticket.clone(), position, expected + 1));
        }
    }

    let at = |position: u64| -> Option<&RecordedEvent> {
        events
            .binary_search_by_key(&position, |e| e.position)
            .ok()
            .map(|i| &events[i])
    };
    let lost: Vec<LostRange> = ranges
        .iter()
        .map(|&(first, last)| {
            let mut tickets: BTreeSet<String> = BTreeSet::new();
            let mut event_types: BTreeMap<String, u64> = BTreeMap::new();
            let mut decoded = 0u64;
            for e in damaged.range(first..=last).map(|(_, e)| e) {
                tickets.insert(e.ticket.to_string());
                *event_types
                    .entry(e.data.type_name().to_owned())
                    .or_default() += 1;
                decoded += 1;
            }
            for (ticket, lo, hi) in &gaps {
                if first < *hi && *lo < last {
                    tickets.insert(ticket.to_string());
                }
            }
            let time = |e: Option<&RecordedEvent>| e.map(|e| Timestamp::to_rfc3339(e.recorded_at));
            LostRange {
                first,
                last,
                tickets: tickets.into_iter().collect(),
                event_types,
                unknown_types: (last - first + 1).saturating_sub(decoded),
                after: time(first.checked_sub(1).and_then(at)),
                before: time(at(last + 1)),
                cause: if decoded > 0 {
                    "damaged (the bytes are there and fail their hash)".to_owned()
                } else if first > last_found {
                    "missing: the log's files end before them".to_owned()
                } else {
                    "missing from the log's files".to_owned()
                },
            }
        })
        .collect();
    let recovered = u64::try_from(events.len()).unwrap_or(u64::MAX);
    Salvaged {
        report: Report {
            source,
            expected_events: expected,
            recovered,
            lost_events: lost.iter().map(|r| r.last - r.first + 1).sum(),
            lost,
            chain_breaks,
        },
        events,
    }
}
