//! Refolding projections from position 1, shared by `mc-ledger rebuild`, `POST
//! /v1/admin/rebuild`, server start-up and the benchmarks; and the diff that tells which
//! ticket views a refold changed (a fold bug or a changed rule).

use std::collections::BTreeSet;

use events::{RecordedEvent, TicketId, Timestamp};
use projections::{Config, Ledger, TicketFilter};
use store::{EventReader, LogError};

const PAGE: usize = 10_000;
/// Decoded pages the reader thread may run ahead of the fold.
const PAGES_AHEAD: usize = 4;

/// Every durable event with a position up to `position`, in order (for folds that need the
/// events themselves: `as_of`, timelines, replay).
pub fn events_up_to(
    reader: &dyn EventReader,
    position: u64,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut out = Vec::new();
    let mut after = 0;
    while after < position {
        let page = reader.read_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        out.extend(page.into_iter().filter(|e| e.position <= position));
    }
    Ok(out)
}

/// Folds every event after the ledger's position into it, page by page; `on_page` sees the
/// position reached (for progress bars).
pub fn catch_up_with(
    ledger: &mut Ledger,
    reader: &dyn EventReader,
    mut on_page: impl FnMut(u64),
) -> Result<(), LogError> {
    loop {
        let page = reader.read_after(ledger.position(), PAGE)?;
        if page.is_empty() {
            return Ok(());
        }
        for e in &page {
            ledger.apply(e);
        }
        on_page(ledger.position());
    }
}

/// Folds the whole log from nothing; `on_page` sees the position reached after each page (the
/// CLI draws a progress bar with it). Reading and decoding (hash checks included) run on a
/// second thread, one page ahead of the fold, so a rebuild costs about the slower of the two
/// rather than their sum.
pub fn fold_all(
    reader: &dyn EventReader,
    mut on_page: impl FnMut(u64),
) -> Result<Ledger, LogError> {
    let ledger = std::thread::scope(|scope| {
        let (pages, received) = std::sync::mpsc::sync_channel::<Vec<RecordedEvent>>(PAGES_AHEAD);
        let decoder = scope.spawn(move || -> Result<(), LogError> {
            let mut after = 0;
            loop {
                let page = reader.read_after(after, PAGE)?;
                let Some(last) = page.last() else {
                    return Ok(());
                };
                after = last.position;
                if pages.send(page).is_err() {
                    return Ok(());
                }
            }
        });
        let mut ledger = Ledger::default();
        for page in received {
            for e in &page {
                ledger.apply(e);
            }
            on_page(ledger.position());
        }
        match decoder.join() {
            Ok(result) => result.map(|()| ledger),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    Ok(ledger)
}

/// The time the views are compared at: the last event's, so live classes agree.
pub fn view_time(reader: &dyn EventReader, position: u64) -> Result<Timestamp, LogError> {
    Ok(reader
        .read_after(position.saturating_sub(1), 1)?
        .first()
        .map_or(Timestamp(0), |e| e.recorded_at))
}

/// Tickets whose view differs between two ledgers at the same position.
pub fn differences(old: &Ledger, new: &Ledger, at: Timestamp, cfg: &Config) -> Vec<TicketId> {
    let all = TicketFilter::default();
    let ids: BTreeSet<TicketId> = old
        .tickets(&all, None, usize::MAX, at, cfg)
        .tickets
        .into_iter()
        .chain(new.tickets(&all, None, usize::MAX, at, cfg).tickets)
        .map(|t| t.id)
        .collect();
    ids.into_iter()
        .filter(|id| old.ticket_view(id, at, cfg) != new.ticket_view(id, at, cfg))
        .collect()
}
