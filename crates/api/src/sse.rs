//! `GET /v1/events/stream`: catch-up from `after` or `Last-Event-ID`, then live. Each client
//! reads the log at its own pace through the durable-head watch, so a slow client lags behind
//! and never slows the writers; the number of clients is bounded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use store::EventReader;

use crate::error::AppError;
use crate::extract::Query;
use crate::state::{ReadState, Shared};

pub const SSE_CLIENTS_MAX: i64 = 256;
const SSE_PAGE: usize = 256;
const HEARTBEAT_S: u64 = 15;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this global position (exclusive).
    after: Option<u64>,
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

/// Server-sent events: catch-up after `after` or `Last-Event-ID`, then live; `id` is the
/// position, `event` the type, `data` the envelope.
#[utoipa::path(
    get, path = "/v1/events/stream", operation_id = "streamEvents", tag = "events",
    params(StreamQuery, ResumeHeader),
    responses((status = 200, description = "An endless event stream with a `heartbeat` comment every 15 s.",
        content_type = "text/event-stream", body = SseEvent))
)]
pub async fn stream(
    State(r): State<ReadState>,
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
    let reader = shared.reader.clone();
    let watch = reader.subscribe();
    let state = (
        reader,
        watch,
        after,
        std::collections::VecDeque::new(),
        slot,
    );
    let events = futures_util::stream::unfold(
        state,
        |(reader, mut watch, mut after, mut queue, slot)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    let e: events::RecordedEvent = e;
                    after = e.position;
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let item = Event::default()
                        .id(e.position.to_string())
                        .event(e.type_name())
                        .data(data);
                    return Some((
                        Ok::<_, Infallible>(item),
                        (reader, watch, after, queue, slot),
                    ));
                }
                match reader.read_after(after, SSE_PAGE) {
                    Ok(batch) if !batch.is_empty() => {
                        queue.extend(batch);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "event stream read failed");
                        return None;
                    }
                }
                // Wait for a later durable position; the writer never waits for us.
                if watch.wait_for(|p| *p > after).await.is_err() {
                    return None;
                }
            }
        },
    );
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(HEARTBEAT_S))
                .text("heartbeat"),
        )
        .into_response())
}

#[allow(dead_code)]
fn _assert_reader_object_safe(_: &dyn EventReader) {}
