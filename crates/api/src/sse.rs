//! `GET /v1/events/stream`: catch-up from `after` or `Last-Event-ID`, then live. Each client
//! reads the log at its own pace through the durable-head watch, so a slow client lags behind
//! and never slows the writers; the number of clients is bounded. A stream checks its token
//! again every [`RECHECK_MS`] and ends (freeing its slot) once it is revoked or expired or its
//! runtime has ended; a runtime token's stream carries only what that token may read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use events::RecordedEvent;
use projections::{EventFilter, FilterError};
use serde::Deserialize;
use serde_json::json;
use store::EventReader;

use crate::error::AppError;
use crate::extract::Query;
use crate::state::ReadState;
use service::state::Shared;
use service::tokens::{Auth, Caller};

pub const SSE_CLIENTS_MAX: i64 = 256;
/// How often an open stream checks its token again (revoked, expired, its runtime ended): the
/// stream ends within this and the token reload (`auth::RELOAD_MS`) of the change.
pub const RECHECK_MS: u64 = 250;
const SSE_PAGE: usize = 256;
const HEARTBEAT_S: u64 = 15;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this global position (exclusive).
    after: Option<u64>,
    /// Only these event types, comma-separated (`runtime.signaled,runtime.reaped`); an
    /// unknown type is 422.
    types: Option<String>,
    /// Only these tickets, comma-separated.
    ticket: Option<String>,
    /// Only this umbrella and every ticket under it (`child_of`, at any depth, as linked now).
    umbrella: Option<String>,
    /// Only runtime events of these agents, comma-separated.
    agents: Option<String>,
}

impl StreamQuery {
    /// The filter the query names (SPEC §15); every part left out matches everything.
    fn filter(&self) -> Result<EventFilter, AppError> {
        let invalid =
            |e: FilterError| AppError::invalid(e.to_string()).with(json!({"field": e.field()}));
        let mut filter = EventFilter::default();
        if let Some(types) = &self.types {
            filter.types = EventFilter::parse_types(types).map_err(invalid)?;
        }
        if let Some(tickets) = &self.ticket {
            filter.tickets = EventFilter::parse_tickets("ticket", tickets).map_err(invalid)?;
        }
        if let Some(umbrella) = &self.umbrella {
            let mut one = EventFilter::parse_tickets("umbrella", umbrella).map_err(invalid)?;
            if one.len() != 1 {
                return Err(
                    AppError::invalid("umbrella: one ticket id").with(json!({"field": "umbrella"}))
                );
            }
            filter.umbrella = one.pop_first();
        }
        if let Some(agents) = &self.agents {
            filter.agents = EventFilter::parse_agents(agents).map_err(invalid)?;
        }
        Ok(filter)
    }
}

/// The `Last-Event-ID` header an `EventSource` sends when it reconnects.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct ResumeHeader {
    /// Resume after this position (wins over `after`); not a number is 400.
    #[param(rename = "Last-Event-ID", pattern = "^[0-9]{1,19}$")]
    last_event_id: Option<String>,
}

/// One server-sent event: `id` is the position, `event` the type, `data` the envelope as JSON
/// text; heartbeats are comments.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SseEvent {
    #[schema(pattern = "^[0-9]{1,19}$")]
    id: String,
    event: String,
    data: String,
}

/// Decrements the client gauge when the stream is dropped (client gone).
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
    }
}

/// Server-sent events: catch-up after `after` or `Last-Event-ID`, then live, optionally
/// filtered by type, ticket, umbrella (and its descendants) and agent; `id` is the position,
/// `event` the type, `data` the envelope.
#[utoipa::path(
    get, path = "/v1/events/stream", operation_id = "streamEvents", tag = "events",
    params(StreamQuery, ResumeHeader),
    responses((status = 200, description = "An endless event stream with a `heartbeat` comment every 15 s.",
        content_type = "text/event-stream", body = SseEvent))
)]
pub async fn stream(
    State(r): State<ReadState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, AppError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| AppError::bad_request("Last-Event-ID must be a position"))?,
        ),
    };
    let after = last_event_id.or(q.after).unwrap_or(0);
    let filter = q.filter()?;
    let shared = r.shared.clone();
    let clients = shared.metrics.sse_clients.inc();
    let slot = ClientSlot(shared.clone());
    if clients >= SSE_CLIENTS_MAX {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("at most {SSE_CLIENTS_MAX} event streams at once"),
        ));
    }
    let follow = Follow {
        reader: shared.reader.clone(),
        watch: shared.reader.subscribe(),
        after,
        queue: VecDeque::new(),
        caller: caller.map(|c| c.0),
        filter,
        auth: r.auth.clone(),
        checked: Instant::now(),
        slot,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        let e = f.next().await?;
        let data = serde_json::to_string(&e).unwrap_or_default();
        let item = Event::default()
            .id(e.position.to_string())
            .event(e.type_name())
            .data(data);
        Some((Ok::<_, Infallible>(item), f))
    });
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(HEARTBEAT_S))
                .text("heartbeat"),
        )
        .into_response())
}

/// One client's place in the log. Dropping it (the client left, or its token no longer
/// holds) frees the client's slot.
struct Follow {
    reader: Arc<dyn EventReader>,
    watch: tokio::sync::watch::Receiver<u64>,
    after: u64,
    queue: VecDeque<RecordedEvent>,
    /// The token the stream was opened with; `None` on a server without tokens.
    caller: Option<Caller>,
    /// What the client asked for.
    filter: EventFilter,
    auth: Arc<Auth>,
    checked: Instant,
    slot: ClientSlot,
}

impl Follow {
    /// The next event this client may see; `None` ends the stream (a read failed, the log
    /// closed, or the token no longer holds).
    async fn next(&mut self) -> Option<RecordedEvent> {
        let recheck = Duration::from_millis(RECHECK_MS);
        loop {
            if self.checked.elapsed() >= recheck {
                if !self.still_valid() {
                    return None;
                }
                self.checked = Instant::now();
            }
            if let Some(e) = self.queue.pop_front() {
                self.after = e.position;
                if self.may_see(&e) {
                    return Some(e);
                }
                continue;
            }
            // On the blocking pool: a PostgreSQL replica reads older records from the database.
            let (reader, after) = (self.reader.clone(), self.after);
            let read = tokio::task::spawn_blocking(move || reader.read_after(after, SSE_PAGE));
            let Ok(read) = read.await else {
                return None;
            };
            match read {
                Ok(batch) if !batch.is_empty() => {
                    if self.reads_projections() {
                        // What a runtime token may see, and an umbrella's or an agent's
                        // events, are read from the projections: bring them up to the batch
                        // (links may have changed).
                        let _ = self.slot.0.catch_up();
                    }
                    self.queue.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "event stream read failed");
                    return None;
                }
            }
            // Wait for a later durable position (the writer never waits for us), or for the
            // next check of the token.
            let after = self.after;
            match tokio::time::timeout(recheck, self.watch.wait_for(|p| *p > after)).await {
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(_)) => return None,
            }
        }
    }

    fn still_valid(&self) -> bool {
        let Some(caller) = &self.caller else {
            return true;
        };
        let now_ms = service::clock::now().millis();
        self.auth.still_valid(caller, &self.slot.0, now_ms)
    }

    fn reads_projections(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| c.runtime.is_some()) || !self.filter.is_empty()
    }

    /// What the filter asks for, and of that what the token may read (a runtime token: only
    /// its ticket's and related tickets' events).
    fn may_see(&self, e: &RecordedEvent) -> bool {
        if !self.reads_projections() {
            return true;
        }
        let runtime = self.caller.as_ref().and_then(|c| c.runtime.as_deref());
        self.slot.0.read(|l| {
            runtime.is_none_or(|rt| projections::may_read_ticket(l, rt, &e.ticket))
                && self.filter.matches(l, e)
        })
    }
}

#[allow(dead_code)]
fn _assert_reader_object_safe(_: &dyn EventReader) {}
