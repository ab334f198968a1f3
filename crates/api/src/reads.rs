//! Read handlers. They hold a [`ReadState`] only: projections and a log reader, nothing that
//! appends.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::{EventData, RecordedEvent, TicketId};
use projections::{RuntimeFilter, TicketFilter, TicketState};
use serde::Deserialize;
use serde_json::json;

use crate::error::AppError;
use crate::extract::{ticket_id, Query};
use crate::state::{now, ReadState};

pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1000;
/// `as_of` and timelines fold a ticket's related streams from their start; beyond this many
/// events they refuse rather than pin a core for seconds (an operator can use `mc-ledger replay`).
const FOLD_EVENTS_MAX: u64 = 2_000_000;

fn page(limit: Option<usize>) -> Result<usize, AppError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(0) => Err(AppError::bad_request("limit must be at least 1")),
        Some(n) => Ok(n.min(PAGE_MAX)),
    }
}

/// Brings the projections up to the durable head, so a read after a write sees it. This folds
/// into memory; it never appends.
fn fresh(r: &ReadState) -> Result<(), AppError> {
    r.shared.catch_up()?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsQuery {
    state: Option<String>,
    owner: Option<String>,
    umbrella: Option<bool>,
    parent: Option<String>,
    failing: Option<bool>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list_tickets(
    State(r): State<ReadState>,
    Query(q): Query<TicketsQuery>,
) -> Result<Response, AppError> {
    fresh(&r)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            TicketState::parse(s)
                .ok_or_else(|| AppError::bad_request(format!("unknown state {s:?}")))?,
        ),
    };
    let filter = TicketFilter {
        state,
        owner: q.owner,
        umbrella: q.umbrella,
        parent: q.parent.as_deref().map(ticket_id).transpose()?,
        failing: q.failing,
    };
    let after = q.cursor.as_deref().map(ticket_id).transpose()?;
    let limit = page(q.limit)?;
    let page = r
        .shared
        .read(|l| l.tickets(&filter, after.as_ref(), limit, now(), &r.shared.config));
    Ok(Json(page).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    as_of: Option<u64>,
}

/// The events, up to `position`, of the streams that decide `ticket`'s status (itself and
/// every ticket a link or park tied to it: `Ledger::sources`), in position order. Folding them
/// gives the ticket what a fold of the whole log would, at a cost that grows with the ticket's
/// own history rather than with the log.
fn related_events(
    r: &ReadState,
    ticket: &TicketId,
    position: u64,
) -> Result<Vec<RecordedEvent>, AppError> {
    let reader = r.shared.reader.as_ref();
    let sources = r.shared.read(|l| l.sources(ticket));
    let mut total = 0u64;
    for s in &sources {
        total = total.saturating_add(reader.stream_version(s)?);
    }
    if total > FOLD_EVENTS_MAX {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_expensive",
            format!("folding {total} events on request is refused; use `mc-ledger replay`"),
        ));
    }
    let mut out = Vec::new();
    for s in &sources {
        let mut from = 1;
        'stream: loop {
            let batch = reader.read_stream(s, from, u64::MAX, PAGE_MAX)?;
            let Some(last) = batch.last() else { break };
            from = last.version + 1;
            for e in batch {
                if e.position > position {
                    break 'stream;
                }
                out.push(e);
            }
        }
    }
    out.sort_unstable_by_key(|e| e.position);
    Ok(out)
}

pub async fn get_ticket(
    State(r): State<ReadState>,
    Path(id): Path<String>,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    fresh(&r)?;
    let cfg = &r.shared.config;
    let view = match q.as_of {
        None => r.shared.read(|l| l.ticket_view(&ticket, now(), cfg)),
        Some(p) => {
            let head = r.shared.reader.head();
            if p > head {
                return Err(AppError::invalid(format!(
                    "as_of {p} is past the log head {head}"
                )));
            }
            let reader = r.shared.reader.as_ref();
            let events = related_events(&r, &ticket, p)?;
            // "now" of a past view is the time of the event at `as_of`, so live classes are
            // as they were then.
            let at = match p.checked_sub(1) {
                Some(before) => reader.read_after(before, 1)?.first().map(|e| e.recorded_at),
                None => None,
            };
            projections::as_of(&events, p).ticket_view(&ticket, at.unwrap_or_else(now), cfg)
        }
    };
    match view {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(not_found_ticket(&ticket)),
    }
}

fn not_found_ticket(t: &TicketId) -> AppError {
    AppError::not_found("ticket_not_found", format!("ticket {t} not found"))
}

fn require_ticket(r: &ReadState, t: &TicketId) -> Result<u64, AppError> {
    r.shared
        .read(|l| l.ticket_version(t))
        .ok_or_else(|| not_found_ticket(t))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Stream version to start after (exclusive).
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn ticket_events(
    State(r): State<ReadState>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    fresh(&r)?;
    require_ticket(&r, &ticket)?;
    let limit = page(q.limit)?;
    let from = q.after.unwrap_or(0).saturating_add(1);
    let events = r
        .shared
        .reader
        .read_stream(&ticket, from, u64::MAX, limit + 1)?;
    Ok(Json(stream_page(events, limit)).into_response())
}

fn stream_page(mut events: Vec<RecordedEvent>, limit: usize) -> serde_json::Value {
    let more = events.len() > limit;
    events.truncate(limit);
    let next = more.then(|| events.last().map(|e| e.version)).flatten();
    json!({"events": events, "next_cursor": next})
}

pub async fn ticket_comments(
    State(r): State<ReadState>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    fresh(&r)?;
    let version = require_ticket(&r, &ticket)?;
    let limit = page(q.limit)?;
    let mut comments = Vec::new();
    let mut next = None;
    let mut from = q.after.unwrap_or(0).saturating_add(1);
    'scan: while from <= version {
        let batch = r.shared.reader.read_stream(&ticket, from, version, 1000)?;
        let Some(last) = batch.last() else { break };
        from = last.version + 1;
        for e in batch {
            if let EventData::TicketCommented(c) = &e.data {
                if comments.len() == limit {
                    next = comments
                        .last()
                        .map(|c: &serde_json::Value| c["version"].clone());
                    break 'scan;
                }
                comments.push(json!({
                    "position": e.position, "version": e.version, "id": e.id,
                    "actor": e.actor, "recorded_at": e.recorded_at, "body": c.body,
                }));
            }
        }
    }
    Ok(Json(json!({"comments": comments, "next_cursor": next})).into_response())
}

pub async fn ticket_timeline(
    State(r): State<ReadState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    fresh(&r)?;
    require_ticket(&r, &ticket)?;
    let head = r.shared.reader.head();
    let events = related_events(&r, &ticket, head)?;
    let timeline = projections::timeline(&events, &ticket, &r.shared.config);
    Ok(Json(json!({"timeline": timeline})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimesQuery {
    ticket: Option<String>,
    live: Option<bool>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list_runtimes(
    State(r): State<ReadState>,
    Query(q): Query<RuntimesQuery>,
) -> Result<Response, AppError> {
    fresh(&r)?;
    let filter = RuntimeFilter {
        ticket: q.ticket.as_deref().map(ticket_id).transpose()?,
        live: q.live,
    };
    let limit = page(q.limit)?;
    let page = r
        .shared
        .read(|l| l.runtimes(&filter, q.cursor.as_deref(), limit, now(), &r.shared.config));
    Ok(Json(page).into_response())
}

pub async fn get_runtime(
    State(r): State<ReadState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    fresh(&r)?;
    r.shared
        .read(|l| l.runtime_view(&id, now(), &r.shared.config))
        .map(|v| Json(v).into_response())
        .ok_or_else(|| {
            AppError::not_found("runtime_not_found", format!("runtime {id:.64} not found"))
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    closed_limit: Option<u64>,
}

pub async fn board(
    State(r): State<ReadState>,
    Query(q): Query<BoardQuery>,
) -> Result<Response, AppError> {
    fresh(&r)?;
    let closed_limit = q
        .closed_limit
        .map_or(projections::BOARD_CLOSED_DEFAULT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let board = r
        .shared
        .read(|l| l.board(now(), &r.shared.config, closed_limit));
    Ok(Json(board).into_response())
}

pub async fn alerts(State(r): State<ReadState>) -> Result<Response, AppError> {
    fresh(&r)?;
    let alerts = r.shared.read(|l| l.alerts(now(), &r.shared.config));
    Ok(Json(json!({"alerts": alerts, "next_cursor": null})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn list_events(
    State(r): State<ReadState>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, AppError> {
    let limit = page(q.limit)?;
    let mut events = r
        .shared
        .reader
        .read_after(q.after.unwrap_or(0), limit + 1)?;
    let more = events.len() > limit;
    events.truncate(limit);
    let next = more.then(|| events.last().map(|e| e.position)).flatten();
    Ok(Json(json!({"events": events, "next_cursor": next})).into_response())
}

pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub async fn readyz(State(r): State<ReadState>) -> Result<Response, AppError> {
    let head = r.shared.reader.head();
    let projected = fresh(&r).map(|_| r.shared.read(|l| l.position()))?;
    Ok(Json(json!({"status": "ready", "head": head, "projected": projected})).into_response())
}

pub async fn metrics(State(r): State<ReadState>) -> Response {
    let head = r.shared.reader.head();
    let projected = r.shared.read(|l| l.position());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        r.shared.metrics.render(head, projected),
    )
        .into_response()
}

pub async fn verify(State(r): State<ReadState>) -> Result<Response, AppError> {
    match r.shared.reader.verify() {
        Ok(report) => Ok(Json(json!({
            "ok": true, "events": report.events, "tickets": report.tickets,
            "head_hash": report.head_hash,
        }))
        .into_response()),
        Err(events::LogError::Corruption { position, detail }) => Ok((
            StatusCode::OK,
            Json(json!({"ok": false, "first_bad_position": position, "detail": detail})),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}
