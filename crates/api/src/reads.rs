//! Read handlers. They hold a [`ReadState`] only: projections and a log reader, nothing that
//! appends or saves. Reads that may reach the store (events, comments, timelines, `as_of`,
//! verify) run on the blocking pool ([`off_worker`]).
//!
//! Each handler states only what its route reads: [`Fresh`] brings the projections up to the
//! log and answers a view of them, [`TicketRoute`] checks a ticket route's `{id}` and runs the
//! read of that ticket ([`TicketStream`] of a page of its stream), and [`event_page`] cuts a
//! page of events.

use std::fmt::Display;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::{EventData, RecordedEvent, TicketId, Timestamp};
use projections::{Config, Ledger, RuntimeFilter, TicketFilter, TicketState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::extract::{ticket_id, Query, RuntimePath, TicketPath};
use crate::state::{AppState, ReadState};
use service::clock::now;

pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1000;
/// `as_of` and timelines fold a ticket's related streams from their start; beyond this many
/// events they refuse rather than pin a core for seconds (an operator can use `mc-ledger replay`).
const FOLD_EVENTS_MAX: u64 = 2_000_000;

/// What a read answers: its JSON, or a problem.
type Reply<T> = Result<Json<T>, AppError>;

fn page(limit: Option<usize>) -> Result<usize, AppError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(0) => Err(AppError::bad_request("limit must be at least 1")),
        Some(n) => Ok(n.min(PAGE_MAX)),
    }
}

/// Runs a read that may reach the store on the blocking pool: a PostgreSQL replica reads
/// records older than its copy from the database, and an async worker must never wait on that.
async fn off_worker<T: Send + 'static>(
    r: ReadState,
    read: impl FnOnce(&ReadState) -> Result<T, AppError> + Send + 'static,
) -> Reply<T> {
    blocking(move || read(&r).map(Json)).await
}

/// [`off_worker`] for any read that answers a `Result`.
pub(crate) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| AppError::internal("read task", e))?
}

/// Whether the server can take appends and read its log now: what `/readyz` answers and
/// `mc_ledger_store_ready` says (it also brings the projections up to the log).
fn ready(r: &ReadState) -> Result<(), AppError> {
    r.shared.reader.ready()?;
    r.shared.writable()?;
    fresh(r)
}

/// Brings the projections up to the durable head, so a read after a write sees it. This folds
/// into memory; it never appends.
pub(crate) fn fresh(r: &ReadState) -> Result<(), AppError> {
    r.shared.catch_up()?;
    Ok(())
}

/// 404 `code`, which reads `{kind}_not_found`, for the thing of that kind called `name`.
fn missing(code: &'static str, name: &dyn Display) -> AppError {
    let kind = code.strip_suffix("_not_found").unwrap_or(code);
    AppError::not_found(code, format!("{kind} {name:.64} not found"))
}

/// A read of the projections in memory, [`fresh`] once the handler's other extractors have
/// taken the request (so it goes last among them).
pub struct Fresh(ReadState);

impl FromRequestParts<AppState> for Fresh {
    type Rejection = AppError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let r = state.read.clone();
        fresh(&r)?;
        Ok(Fresh(r))
    }
}

impl Fresh {
    /// The projections' answer to `read`, given the time and the config views are made with.
    fn view<T>(&self, read: impl FnOnce(&Ledger, Timestamp, &Config) -> T) -> Json<T> {
        let at = now();
        let shared = &self.0.shared;
        Json(shared.read(|l| read(l, at, &shared.config)))
    }

    /// [`Fresh::view`] of the one thing called `name`; none is 404 `code` ([`missing`]).
    fn find<T>(
        &self,
        code: &'static str,
        name: &str,
        read: impl FnOnce(&Ledger, Timestamp, &Config) -> Option<T>,
    ) -> Reply<T> {
        let Json(found) = self.view(read);
        found.map(Json).ok_or_else(|| missing(code, &name))
    }
}

/// A ticket route's state and `{id}`, which the read checks where it runs: the id is valid
/// (422), the ticket's streams are whole, the projections up to the log.
pub struct TicketRoute {
    r: ReadState,
    id: String,
}

impl FromRequestParts<AppState> for TicketRoute {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(TicketRoute {
            r: state.read.clone(),
            id,
        })
    }
}

impl TicketRoute {
    /// The state and the checked ticket.
    fn checked(self) -> Result<(ReadState, TicketId), AppError> {
        let ticket = ticket_id(&self.id)?;
        self.r.shared.whole(&ticket)?;
        fresh(&self.r)?;
        Ok((self.r, ticket))
    }

    /// Runs `read` of the ticket on the blocking pool ([`off_worker`]) once it is checked and
    /// known (404); `read` gets it and its stream version.
    async fn read<T: Send + 'static>(
        self,
        read: impl FnOnce(&ReadState, TicketId, u64) -> Result<T, AppError> + Send + 'static,
    ) -> Reply<T> {
        blocking(move || {
            let (r, ticket) = self.checked()?;
            let version = r
                .shared
                .read(|l| l.ticket_version(&ticket))
                .ok_or_else(|| missing("ticket_not_found", &ticket))?;
            read(&r, ticket, version).map(Json)
        })
        .await
    }
}

/// A page of at most `limit` events: `read(n)` reads up to `n` events from the page's start,
/// and `cursor` says what the next page starts after.
fn event_page(
    limit: usize,
    read: impl FnOnce(usize) -> Result<Vec<RecordedEvent>, store::LogError>,
    cursor: fn(&RecordedEvent) -> u64,
) -> Result<EventPage, AppError> {
    let mut events = read(limit + 1)?;
    let more = events.len() > limit;
    events.truncate(limit);
    let next_cursor = more.then(|| events.last().map(cursor)).flatten();
    Ok(EventPage {
        events,
        next_cursor,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketsQuery {
    /// Only tickets in this state; an unknown state is 400.
    #[param(value_type = Option<TicketState>)]
    state: Option<String>,
    /// Only tickets with this owner.
    owner: Option<String>,
    /// Only umbrella (true) or only non-umbrella (false) tickets.
    umbrella: Option<bool>,
    /// Only children of this ticket; an invalid id is 422.
    #[param(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    parent: Option<String>,
    /// Only tickets with (true) or without (false) a failure_reason.
    failing: Option<bool>,
    /// The previous page's `next_cursor`; an invalid id is 422.
    #[param(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    cursor: Option<String>,
    /// Page size (default 100); values over 1000 are served as 1000; 0 is 400.
    #[param(minimum = 1)]
    limit: Option<usize>,
}

/// Tickets in natural id order, filtered, with cursor paging.
#[utoipa::path(
    get, path = "/v1/tickets", operation_id = "listTickets", tag = "tickets", params(TicketsQuery),
    responses((status = 200, description = "A page of ticket views.", body = projections::TicketPage))
)]
pub async fn list_tickets(
    Query(q): Query<TicketsQuery>,
    r: Fresh,
) -> Reply<projections::TicketPage> {
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
    Ok(r.view(|l, at, cfg| l.tickets(&filter, after.as_ref(), limit, at, cfg)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The view as of this global position; past the log head is 422.
    as_of: Option<u64>,
}

/// The events, up to `position`, of the streams that decide `ticket`'s status (itself and
/// every ticket a link or park tied to it: `Ledger::sources`), in position order. Folding them
/// gives the ticket what a fold of the whole log would, at a cost that grows with the ticket's
/// own history rather than with the log.
pub(crate) fn related_events(
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

/// A ticket's view, now or `as_of` a global position.
#[utoipa::path(
    get, path = "/v1/tickets/{id}", operation_id = "getTicket", tag = "tickets",
    params(TicketPath, AsOfQuery),
    responses((status = 200, description = "The ticket view.", body = projections::TicketView))
)]
pub async fn get_ticket(
    t: TicketRoute,
    Query(q): Query<AsOfQuery>,
) -> Reply<projections::TicketView> {
    let (r, ticket) = t.checked()?;
    let view = match q.as_of {
        // Now: the projections in memory.
        None => r
            .shared
            .read(|l| l.ticket_view(&ticket, now(), &r.shared.config)),
        // A past view folds the ticket's streams, which may reach the store.
        Some(p) => {
            let of = ticket.clone();
            blocking(move || ticket_as_of(&r, &of, p)).await?
        }
    };
    view.map(Json)
        .ok_or_else(|| missing("ticket_not_found", &ticket))
}

/// A ticket's view as of a position: its related streams folded up to it.
fn ticket_as_of(
    r: &ReadState,
    ticket: &TicketId,
    p: u64,
) -> Result<Option<projections::TicketView>, AppError> {
    let head = r.shared.reader.head();
    if p > head {
        return Err(AppError::invalid(format!(
            "as_of {p} is past the log head {head}"
        )));
    }
    let events = related_events(r, ticket, p)?;
    // "now" of a past view is the time of the event at `as_of`, so live classes are as they
    // were then.
    let at = match p.checked_sub(1) {
        Some(before) => r
            .shared
            .reader
            .read_after(before, 1)?
            .first()
            .map(|e| e.recorded_at),
        None => None,
    };
    Ok(
        projections::as_of(&events, p).ticket_view(
            ticket,
            at.unwrap_or_else(now),
            &r.shared.config,
        ),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this stream version (exclusive); pass the previous `next_cursor`.
    after: Option<u64>,
    /// Page size (default 100); values over 1000 are served as 1000; 0 is 400.
    #[param(minimum = 1)]
    limit: Option<usize>,
}

/// A ticket route that reads a page of the ticket's stream: its `{id}` and its [`StreamQuery`].
pub struct TicketStream(TicketRoute, StreamQuery);

impl FromRequestParts<AppState> for TicketStream {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let t = TicketRoute::from_request_parts(parts, state).await?;
        let Query(q) = Query::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(TicketStream(t, q))
    }
}

impl TicketStream {
    /// [`TicketRoute::read`] of one page: `read` gets the ticket, its stream version, the
    /// version the page starts at and the page size (400 if 0).
    async fn read<T: Send + 'static>(
        self,
        read: impl FnOnce(&ReadState, TicketId, u64, u64, usize) -> Result<T, AppError> + Send + 'static,
    ) -> Reply<T> {
        let TicketStream(t, q) = self;
        let from = q.after.unwrap_or(0).saturating_add(1);
        t.read(move |r, ticket, version| read(r, ticket, version, from, page(q.limit)?))
            .await
    }
}

/// A page of events; `next_cursor` is a stream version (ticket events) or a global position
/// (`/v1/events`), null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<RecordedEvent>,
    pub next_cursor: Option<u64>,
}

/// A ticket's events in stream order.
#[utoipa::path(
    get, path = "/v1/tickets/{id}/events", operation_id = "listTicketEvents", tag = "events",
    params(TicketPath, StreamQuery),
    responses((status = 200, description = "A page of events; `next_cursor` is a stream version.", body = EventPage))
)]
pub async fn ticket_events(t: TicketStream) -> Reply<EventPage> {
    t.read(move |r, ticket, _, from, limit| {
        let read = |n| r.shared.reader.read_stream(&ticket, from, u64::MAX, n);
        event_page(limit, read, |e| e.version)
    })
    .await
}

/// A comment with where it stands in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comment {
    pub position: u64,
    pub version: u64,
    pub id: String,
    pub actor: events::Actor,
    pub recorded_at: events::Timestamp,
    pub body: String,
}

/// A page of comments; `next_cursor` is a stream version, null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentPage {
    pub comments: Vec<Comment>,
    pub next_cursor: Option<u64>,
}

/// A ticket's comments, oldest first.
#[utoipa::path(
    get, path = "/v1/tickets/{id}/comments", operation_id = "listComments", tag = "tickets",
    params(TicketPath, StreamQuery),
    responses((status = 200, description = "A page of comments.", body = CommentPage))
)]
pub async fn ticket_comments(t: TicketStream) -> Reply<CommentPage> {
    t.read(move |r, ticket, version, mut from, limit| {
        let mut comments = Vec::new();
        let mut next = None;
        'scan: while from <= version {
            let batch = r.shared.reader.read_stream(&ticket, from, version, 1000)?;
            let Some(last) = batch.last() else { break };
            from = last.version + 1;
            for e in batch {
                if let EventData::TicketCommented(c) = &e.data {
                    if comments.len() == limit {
                        next = comments.last().map(|c: &Comment| c.version);
                        break 'scan;
                    }
                    comments.push(Comment {
                        position: e.position,
                        version: e.version,
                        id: e.id.clone(),
                        actor: e.actor.clone(),
                        recorded_at: e.recorded_at,
                        body: c.body.clone(),
                    });
                }
            }
        }
        Ok(CommentPage {
            comments,
            next_cursor: next,
        })
    })
    .await
}

/// The audit replay of a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    pub timeline: Vec<projections::TimelineEntry>,
}

/// Audit replay: each of the ticket's events with the derived state right after it.
#[utoipa::path(
    get, path = "/v1/tickets/{id}/timeline", operation_id = "getTimeline", tag = "tickets",
    params(TicketPath),
    responses((status = 200, description = "The timeline.", body = TimelinePage))
)]
pub async fn ticket_timeline(t: TicketRoute) -> Reply<TimelinePage> {
    t.read(move |r, ticket, _| {
        let head = r.shared.reader.head();
        let events = related_events(r, &ticket, head)?;
        let timeline = projections::timeline(&events, &ticket, &r.shared.config);
        Ok(TimelinePage { timeline })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuntimesQuery {
    /// Only runtimes of this ticket; an invalid id is 422.
    #[param(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    ticket: Option<String>,
    /// Only live (true) or only ended (false) runtimes.
    live: Option<bool>,
    /// The previous page's `next_cursor` (a runtime id).
    cursor: Option<String>,
    /// Page size (default 100); values over 1000 are served as 1000; 0 is 400.
    #[param(minimum = 1)]
    limit: Option<usize>,
}

/// Runtimes in dispatch order, filtered, with cursor paging.
#[utoipa::path(
    get, path = "/v1/runtimes", operation_id = "listRuntimes", tag = "runtimes",
    params(RuntimesQuery),
    responses((status = 200, description = "A page of runtime views.", body = projections::RuntimePage))
)]
pub async fn list_runtimes(
    Query(q): Query<RuntimesQuery>,
    r: Fresh,
) -> Reply<projections::RuntimePage> {
    let filter = RuntimeFilter {
        ticket: q.ticket.as_deref().map(ticket_id).transpose()?,
        live: q.live,
    };
    let limit = page(q.limit)?;
    Ok(r.view(|l, at, cfg| l.runtimes(&filter, q.cursor.as_deref(), limit, at, cfg)))
}

/// A runtime's view.
#[utoipa::path(
    get, path = "/v1/runtimes/{id}", operation_id = "getRuntime", tag = "runtimes",
    params(RuntimePath),
    responses((status = 200, description = "The runtime view.", body = projections::RuntimeView))
)]
pub async fn get_runtime(Path(id): Path<String>, r: Fresh) -> Reply<projections::RuntimeView> {
    r.find("runtime_not_found", &id, |l, at, cfg| {
        l.runtime_view(&id, at, cfg)
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// At most this many tickets in each of the `done` and `cancelled` columns, the most
    /// recently closed (default 100); `totals` still counts them all.
    closed_limit: Option<u64>,
}

/// Tickets grouped by state.
#[utoipa::path(
    get, path = "/v1/board", operation_id = "board", tag = "tickets", params(BoardQuery),
    responses((status = 200, description = "The board.", body = projections::Board))
)]
pub async fn board(Query(q): Query<BoardQuery>, r: Fresh) -> Json<projections::Board> {
    let closed_limit = q
        .closed_limit
        .map_or(projections::BOARD_CLOSED_DEFAULT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    r.view(|l, at, cfg| l.board(at, cfg, closed_limit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostsQuery {
    /// `agent` (default), `model`, `owner` or `day` (UTC, the day of each runtime's harvest).
    group_by: Option<projections::CostGroupBy>,
}

/// What the runs cost, in tokens and dollars, grouped (SPEC §13).
#[utoipa::path(
    get, path = "/v1/costs", operation_id = "costs", tag = "runtimes", params(CostsQuery),
    responses((status = 200, description = "Every runtime's spend, grouped, and the total.", body = projections::CostReport))
)]
pub async fn costs(Query(q): Query<CostsQuery>, r: Fresh) -> Json<projections::CostReport> {
    r.view(|l, _, _| l.costs(q.group_by.unwrap_or_default()))
}

/// Every pool with its capacity and holders (SPEC §14), in one page.
#[utoipa::path(
    get, path = "/v1/pools", operation_id = "listPools", tag = "pools",
    responses((status = 200, description = "Every pool, by name.", body = projections::PoolPage))
)]
pub async fn list_pools(r: Fresh) -> Json<projections::PoolPage> {
    r.view(|l, _, _| l.pools())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PoolPath {
    /// The pool's name.
    name: String,
}

/// One pool: capacity, free slots and the live runtimes holding them.
#[utoipa::path(
    get, path = "/v1/pools/{name}", operation_id = "getPool", tag = "pools", params(PoolPath),
    responses((status = 200, description = "The pool.", body = projections::PoolView))
)]
pub async fn get_pool(Path(p): Path<PoolPath>, r: Fresh) -> Reply<projections::PoolView> {
    r.find("pool_not_found", &p.name, |l, _, _| l.pool(&p.name))
}

/// Every budget with what it has spent and reserved now (SPEC §16), in one page.
#[utoipa::path(
    get, path = "/v1/budgets", operation_id = "listBudgets", tag = "budgets",
    responses((status = 200, description = "Every budget, by name.", body = projections::BudgetPage))
)]
pub async fn list_budgets(r: Fresh) -> Json<projections::BudgetPage> {
    r.view(|l, at, _| l.budgets(at))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BudgetPath {
    /// The budget's name.
    name: String,
}

/// One budget: spent, reserved, remaining, and the live runtimes holding reservations.
#[utoipa::path(
    get, path = "/v1/budgets/{name}", operation_id = "getBudget", tag = "budgets",
    params(BudgetPath),
    responses((status = 200, description = "The budget.", body = projections::BudgetView))
)]
pub async fn get_budget(Path(p): Path<BudgetPath>, r: Fresh) -> Reply<projections::BudgetView> {
    r.find("budget_not_found", &p.name, |l, at, _| {
        l.budget(&p.name, at)
    })
}

/// Every current alert, in one page.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<projections::Alert>,
    /// Always null: alerts come in one page.
    pub next_cursor: Option<String>,
}

/// What needs a person's attention now.
#[utoipa::path(
    get, path = "/v1/alerts", operation_id = "alerts", tag = "tickets",
    responses((status = 200, description = "Every current alert (one page).", body = AlertPage))
)]
pub async fn alerts(r: Fresh) -> Json<AlertPage> {
    r.view(|l, at, cfg| AlertPage {
        alerts: l.alerts(at, cfg),
        next_cursor: None,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start after this global position (exclusive); pass the previous `next_cursor`.
    after: Option<u64>,
    /// Page size (default 100); values over 1000 are served as 1000; 0 is 400.
    #[param(minimum = 1)]
    limit: Option<usize>,
}

/// The global log in position order.
#[utoipa::path(
    get, path = "/v1/events", operation_id = "listEvents", tag = "events", params(EventsQuery),
    responses((status = 200, description = "A page of events; `next_cursor` is a global position.", body = EventPage))
)]
pub async fn list_events(
    State(r): State<ReadState>,
    Query(q): Query<EventsQuery>,
) -> Reply<EventPage> {
    off_worker(r, move |r| {
        let read = |n| r.shared.reader.read_after(q.after.unwrap_or(0), n);
        event_page(page(q.limit)?, read, |e| e.position)
    })
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The last durable position.
    pub head: u64,
    /// The position the projections have folded.
    pub projected: u64,
}

/// Liveness.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Serving.", body = Health))
)]
pub async fn healthz() -> Response {
    Json(Health {
        status: "ok".into(),
    })
    .into_response()
}

/// Readiness: projections caught up with the log.
#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses((status = 200, description = "Ready.", body = Ready))
)]
pub async fn readyz(State(r): State<ReadState>) -> Result<Response, AppError> {
    ready(&r)?;
    let head = r.shared.reader.head();
    let projected = r.shared.read(|l| l.position());
    Ok(Json(Ready {
        status: "ready".into(),
        head,
        projected,
    })
    .into_response())
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text when asked for (`Accept: application/openmetrics-text`, as Prometheus does), else the Prometheus text format 0.0.4.",
        content(
            (String = "application/openmetrics-text"),
            (String = "text/plain")
        )))
)]
pub async fn metrics(
    State(r): State<ReadState>,
    State(w): State<crate::state::WriteState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let store_ready = ready(&r).is_ok();
    let head = r.shared.reader.head();
    let (projected, gauges) = r
        .shared
        .read(|l| (l.position(), l.gauges(now(), &r.shared.config)));
    let subscriptions = crate::subscriptions::samples(&w).await;
    let openmetrics =
        r.shared
            .metrics
            .render((head, store_ready), projected, &gauges, &subscriptions);
    // Prometheus asks for OpenMetrics; anything else gets the classic text format.
    let wants_openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (content_type, body) = if wants_openmetrics {
        (service::metrics::CONTENT_TYPE, openmetrics)
    } else {
        (
            service::metrics::TEXT_CONTENT_TYPE,
            service::metrics::to_text_format(&openmetrics),
        )
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// What `verify` found.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    pub ok: bool,
    /// When ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<events::Hash>,
    /// When not ok: the first position whose record or chain is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Recompute the hash chain of the whole log.
#[utoipa::path(
    get, path = "/v1/admin/verify", operation_id = "adminVerify", tag = "admin",
    responses((status = 200, description = "`ok: true` with counts and the head hash, or `ok: false` with the first bad position.", body = VerifyResult))
)]
pub async fn verify(State(r): State<ReadState>) -> Reply<VerifyResult> {
    // A log that lost acknowledged events verifies as a chain but is not whole.
    let verified = |r: &ReadState| match r.shared.damage.get() {
        Some(lost) => Err(store::LogError::Corruption {
            position: lost.head + 1,
            detail: lost.summary(),
        }),
        None => r.shared.reader.verify(),
    };
    off_worker(r, move |r| match verified(r) {
        Ok(report) => Ok(VerifyResult {
            ok: true,
            events: Some(report.events),
            tickets: Some(report.tickets),
            head_hash: Some(report.head_hash),
            first_bad_position: None,
            detail: None,
        }),
        Err(store::LogError::Corruption { position, detail }) => Ok(VerifyResult {
            ok: false,
            events: None,
            tickets: None,
            head_hash: None,
            first_bad_position: Some(position),
            detail: Some(detail),
        }),
        Err(e) => Err(e.into()),
    })
    .await
}
