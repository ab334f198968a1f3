//! Time travel and audit replay: the ledger as of a position, and a ticket's timeline with the
//! derived state right after each of its events.

use events::{RecordedEvent, TicketId};
use serde::Serialize;

use crate::class::RuntimeClass;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::rules::{NextAction, TicketState};
use crate::views::class_at;

/// Folds `events` (in position order) up to and including `position`.
pub fn as_of<'a, I: IntoIterator<Item = &'a RecordedEvent>>(events: I, position: u64) -> Ledger {
    let mut ledger = Ledger::default();
    for e in events {
        if e.position > position {
            break;
        }
        ledger.apply(e);
    }
    ledger
}

/// One row of an audit replay (`GET /v1/tickets/{id}/timeline`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub event: RecordedEvent,
    pub state: TicketState,
    pub next_action: NextAction,
    pub failure_reason: Option<String>,
    /// Class of the runtime the event is about, or of the ticket's current runtime for a
    /// ticket event; evaluated at the event's own `recorded_at`.
    pub runtime_class: Option<RuntimeClass>,
}

/// The timeline of `ticket`: folds the *global* log (a ticket's state depends on others: a
/// blocker closing turns `wait` into `resume`) and records one entry per event of `ticket`.
pub fn timeline<'a, I: IntoIterator<Item = &'a RecordedEvent>>(
    events: I,
    ticket: &TicketId,
    cfg: &Config,
) -> Vec<TimelineEntry> {
    let mut ledger = Ledger::default();
    let mut out = Vec::new();
    for e in events {
        ledger.apply(e);
        if e.ticket != *ticket {
            continue;
        }
        let Some(t) = ledger.tickets.get(ticket) else {
            continue;
        };
        let status = ledger.derive(t);
        let runtime = e
            .data
            .runtime_id()
            .and_then(|id| ledger.runtimes.get(id))
            .or_else(|| ledger.current_runtime(t));
        out.push(TimelineEntry {
            event: e.clone(),
            state: status.state,
            next_action: status.next_action,
            failure_reason: status.failure_reason,
            runtime_class: runtime.map(|r| class_at(r, e.recorded_at, cfg)),
        });
    }
    out
}
