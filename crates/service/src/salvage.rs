//! What a damaged ledger still holds and what it lost (SPEC §17): `mc-ledger salvage` keeps the
//! events, `mc-ledger verify --all` prints the losses.
//!
//! A sled log is read without opening sled ([`store_sled::carve`]): sled ends a log at a
//! damaged commit and drops every later one, and its recovery rewrites what it dropped. A
//! PostgreSQL log is read from its rows without opening the store (which refuses a damaged
//! row), each row's record found as in a file.
//! The losses are the positions up to the last one known (the highest record found, or the
//! position the projections' snapshot was saved at, if higher) that no whole record holds,
//! grouped into ranges, each with what can be told of it: the tickets (from damaged records
//! that still decode, from gaps in a ticket's versions, from the snapshot's versions), the
//! event types of damaged records, and the times of the events on either side.

use std::collections::{BTreeMap, BTreeSet};

use events::ids::TicketId;
use events::NewEvent;
use events::{RecordedEvent, Timestamp};
use serde::Serialize;
use store::{AppendRequest, EventStore};

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
            // The snapshot counts only if it was taken of this log: the record at its
            // position, where one is whole, must be its anchor.
            let snapshot = crate::snapshot::load(&Home::Dir(dir.clone()))
                .ok()
                .filter(|s| {
                    carved
                        .records
                        .get(&s.ledger.position())
                        .is_none_or(|copies| copies.iter().any(|e| e.hash == s.anchor))
                });
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
        StoreUrl::Postgres(pg) => {
            // Row by row, without opening the store (it refuses a log with a damaged record):
            // each row holds one framed record, read as the sled files are.
            let (rows, head) = store_pg::PgStore::raw_records(pg)?;
            (progress.start)(u64::try_from(rows.len())?, "records");
            let mut carved = store_sled::carve::Carved::default();
            for (n, (_, record)) in rows.iter().enumerate() {
                store_sled::carve::carve_bytes(record, &mut carved);
                (progress.advance)(u64::try_from(n + 1)?);
            }
            Ok(assemble(
                url.describe(),
                carved.records,
                carved.damaged,
                head,
                &BTreeMap::new(),
            ))
        }
    }
}

/// How far past the last whole record a damaged one still counts as written.
const DAMAGED_REACH: u64 = 65_536;

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
    // A damaged record past the last whole one was written too (a plausible distance on: its
    // position is read from bytes that failed their hash).
    let last_damaged = damaged
        .keys()
        .copied()
        .filter(|p| *p <= last_found.saturating_add(DAMAGED_REACH))
        .max()
        .unwrap_or(0);
    let expected = known_head.max(last_found).max(last_damaged);
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
                    "missing: the log ends before them".to_owned()
                } else {
                    "missing: no whole record holds them".to_owned()
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

/// Runs an append from blocking code: the command line, or an open that may itself run
/// inside the server's runtime (where blocking on another runtime panics), so on a thread and
/// a runtime of its own.
pub fn block_on<T: Send>(future: impl std::future::Future<Output = T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            Ok(tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(future))
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Appends one run of a ticket's recorded events to `to` and checks they landed where they
/// stood, with the same hashes (`copy`, and the repair of a lost tail): `to` must hold exactly
/// the events before them.
pub fn append_as_recorded(to: &dyn EventStore, group: Vec<RecordedEvent>) -> anyhow::Result<u64> {
    let Some(first) = group.first() else {
        return Ok(0);
    };
    let ticket = first.ticket.clone();
    let expected: Vec<(u64, events::Hash)> = group.iter().map(|e| (e.position, e.hash)).collect();
    let events = group.into_iter().map(NewEvent::from).collect();
    let appended = block_on(to.append(AppendRequest {
        also: Vec::new(),
        ticket,
        expected_version: None,
        events,
    }))??;
    let got: Vec<(u64, events::Hash)> = appended
        .events
        .iter()
        .map(|e| (e.position, e.hash))
        .collect();
    anyhow::ensure!(
        got == expected,
        "copied events landed at {:?}, not where they stood ({:?}): is another writer using the target?",
        got.first(),
        expected.first()
    );
    Ok(u64::try_from(got.len())?)
}

/// What [`restore_lost_tail`] put back.
pub struct PutBack {
    pub events: u64,
    /// The files hold records past what was put back that do not continue it (writes cut off
    /// before they were acknowledged, or damage).
    pub past: bool,
}

/// Puts back a tail sled dropped when it opened the log (SPEC §17), when the log's files (with
/// the copy kept before the open, `store_sled::preserve`) still hold it whole: every record
/// past the head, each continuing the chain, at least up to the position the projections
/// were saved at. They are appended again in order and land at the same positions with the
/// same hashes (checked), so the log is as it was acknowledged. Answers how many were put
/// back (0: the files hold nothing past the head), or (nothing written) the tickets of the
/// records the files hold past the head, whole or damaged, when a record past the head is
/// missing, damaged or off the chain: then only salvage helps. When
/// `saved_at` is `exact` (the log's `acked` file), records past it were never acknowledged:
/// the chain is put back as far as it goes whole, and what lies past it is not a loss.
pub fn restore_lost_tail(
    store: &dyn EventStore,
    log_dir: &std::path::Path,
    saved_at: u64,
    exact: bool,
) -> anyhow::Result<Result<PutBack, Vec<TicketId>>> {
    let head = store.head();
    let carved = store_sled::carve::carve(log_dir, &mut |_| {})?;
    let seen = || -> Vec<TicketId> {
        let whole = carved.records.range(head + 1..).flat_map(|(_, c)| c);
        let damaged = carved.damaged.range(head + 1..).map(|(_, e)| e);
        let tickets: std::collections::BTreeSet<TicketId> =
            whole.chain(damaged).map(|e| e.ticket.clone()).collect();
        tickets.into_iter().collect()
    };
    let mut prev = match head {
        0 => events::Hash::ZERO,
        _ => match store.read_after(head - 1, 1)?.first() {
            Some(e) => e.hash,
            None => return Ok(Err(seen())),
        },
    };
    let mut tail: Vec<RecordedEvent> = Vec::new();
    for (position, copies) in carved.records.range(head + 1..) {
        let next = head + 1 + u64::try_from(tail.len())?;
        let Some(record) = copies.iter().find(|e| e.prev_hash == prev) else {
            break;
        };
        if *position != next {
            break;
        }
        prev = record.hash;
        tail.push(record.clone());
    }
    let reaches = head + u64::try_from(tail.len())?;
    // All or nothing: a tail short of the snapshot, or any record past what would be put back
    // (whole but off the chain, or damaged), means something acknowledged cannot come back.
    let beyond = carved.records.range(reaches + 1..).next().is_some()
        || carved.damaged.range(reaches + 1..).next().is_some();
    if reaches < saved_at || (beyond && !exact) {
        return Ok(Err(seen()));
    }
    // With `exact`, what lies past is not a loss, but it is still damage or cut-off writes
    // (the acked file lags by up to 0.1 s): the caller keeps the files for salvage.
    let past = beyond;
    let mut put_back = 0u64;
    let mut group: Vec<RecordedEvent> = Vec::new();
    for event in tail {
        if group.first().is_some_and(|g| g.ticket != event.ticket) || group.len() == 64 {
            put_back += append_as_recorded(store, std::mem::take(&mut group))?;
        }
        group.push(event);
    }
    put_back += append_as_recorded(store, group)?;
    Ok(Ok(PutBack {
        events: put_back,
        past,
    }))
}
