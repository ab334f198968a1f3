//! `GET /openapi.json`: an OpenAPI 3.0.3 description of the HTTP API, built by hand with
//! serde_json from one route table ([`ROUTES`]) that `tests/openapi.rs` checks against the router,
//! the auth rules and the request structs.
//!
//! Schemas describe what the server really accepts and answers: request bodies are closed
//! (`deny_unknown_fields` makes an unknown field a 422), `Option` fields are nullable, and every
//! field a view always serializes is required. Limits measured in bytes are stated in
//! descriptions rather than as `maxLength` (which counts characters).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::auth::Scope;

pub const OPENAPI_VERSION: &str = "3.0.3";
/// `u64::MAX`, the largest integer the server parses for positions, versions and limits.
const U64_MAX: u64 = u64::MAX;
const U32_MAX: u32 = u32::MAX;
/// SPEC §2; the same rule as `events::is_ticket_id`.
pub const TICKET_ID_PATTERN: &str = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$";

// ---- enums, exactly as serde names them (the tests deserialize every value) ----

pub const ACTOR_KINDS: &[&str] = &[
    "human",
    "agent",
    "orchestrator",
    "controller",
    "validator",
    "system",
];
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
pub const RELATIONS: &[&str] = &["child_of", "blocked_by"];
pub const GATE_VERDICTS: &[&str] = &["passed", "failed", "changes_requested"];
pub const RESOLUTIONS: &[&str] = &["done", "cancelled", "duplicate", "wontfix"];
pub const TASK_STATUSES: &[&str] = &["open", "in_progress", "done"];
pub const TRANSPORTS: &[&str] = &["tmux", "process", "websocket"];
pub const VERDICTS: &[&str] = &["DONE", "REVIEW", "QUESTION"];
pub const SIGNAL_REJECT_REASONS: &[&str] = &[
    "stale_nonce",
    "unknown_nonce",
    "runtime_ended",
    "echoed_prompt",
];
pub const HARVEST_OUTCOMES: &[&str] = &["completed", "partial", "failed"];
pub const EXIT_REASONS: &[&str] = &[
    "success",
    "max_turns",
    "max_budget",
    "error",
    "api_error",
    "interrupted",
    "no_result",
];
pub const REAP_CAUSES: &[&str] = &[
    "tmux_missing",
    "process_dead",
    "idle_timeout",
    "terminal_state",
];
pub const TICKET_STATES: &[&str] = &[
    "open",
    "in_progress",
    "needs_input",
    "review",
    "waiting",
    "done",
    "cancelled",
];
pub const NEXT_ACTION_CODES: &[&str] = &[
    "dispatch", "working", "answer", "review", "validate", "resume", "retry", "recover", "wait",
    "none",
];
pub const RUNTIME_CLASSES: &[&str] = &[
    "starting",
    "live",
    "websocket-idle",
    "completed-by-controller",
    "killed-by-controller",
    "cancelled",
    "completed",
    "partial",
    "failed",
    "tmux-missing",
    "process-dead",
    "timed-out",
    "closed",
    "launch-aborted",
];
pub const ALERT_KINDS: &[&str] = &[
    "worker_lost",
    "stale_worker",
    "retry_loop",
    "unanswered_question",
    "ready_to_resume",
];

// ---- the route table ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    /// Lower case, as OpenAPI path items name operations.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Patch => "patch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

impl In {
    fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
        }
    }
}

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A ticket id; anything else is 422.
    TicketId,
    /// A non-empty opaque string (runtime ids, task ids, owners, cursors).
    Text,
    /// An unsigned 64-bit integer (positions, versions).
    U64,
    /// A page size: at least 1; more than 1000 is served as 1000.
    Limit,
    Bool,
    TicketState,
    /// A decimal position in a header.
    PositionText,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub ty: Ty,
    pub description: &'static str,
}

/// What a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `application/json` with the named component schema.
    Json(&'static str),
    /// `text/event-stream`.
    EventStream,
    /// `text/plain` (Prometheus exposition).
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Success {
    pub status: u16,
    pub description: &'static str,
    pub content: Content,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: Method,
    /// In axum and OpenAPI syntax alike: `/v1/tickets/{id}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    /// `None`: no token needed (health checks and this document).
    pub scope: Option<Scope>,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// The component schema of the JSON request body.
    pub body: Option<&'static str>,
    pub ok: &'static [Success],
    /// Error statuses; every one answers `application/problem+json`.
    pub errors: &'static [u16],
}

const TICKET_PATH: Param = Param {
    name: "id",
    location: In::Path,
    ty: Ty::TicketId,
    description: "Ticket id such as `MC-4030`; anything else is 422.",
};
const RUNTIME_PATH: Param = Param {
    name: "id",
    location: In::Path,
    ty: Ty::Text,
    description: "Runtime id (`rt_…`), as returned by dispatch and retry.",
};
const TASK_PATH: Param = Param {
    name: "task_id",
    location: In::Path,
    ty: Ty::Text,
    description: "Task id within the ticket.",
};
const LIMIT: Param = Param {
    name: "limit",
    location: In::Query,
    ty: Ty::Limit,
    description: "Page size (default 100); values over 1000 are served as 1000; 0 is 400.",
};
const AFTER_VERSION: Param = Param {
    name: "after",
    location: In::Query,
    ty: Ty::U64,
    description: "Start after this stream version (exclusive); pass the previous `next_cursor`.",
};
const AFTER_POSITION: Param = Param {
    name: "after",
    location: In::Query,
    ty: Ty::U64,
    description: "Start after this global position (exclusive); pass the previous `next_cursor`.",
};

const CLOSED_LIMIT: Param = Param {
    name: "closed_limit",
    location: In::Query,
    ty: Ty::U64,
    description: "At most this many tickets in each of the `done` and `cancelled` columns, the most recently closed (default 100); `totals` still counts them all.",
};

const TICKETS_QUERY: &[Param] = &[
    Param {
        name: "state",
        location: In::Query,
        ty: Ty::TicketState,
        description: "Only tickets in this state; an unknown state is 400.",
    },
    Param {
        name: "owner",
        location: In::Query,
        ty: Ty::Text,
        description: "Only tickets with this owner.",
    },
    Param {
        name: "umbrella",
        location: In::Query,
        ty: Ty::Bool,
        description: "Only umbrella (true) or only non-umbrella (false) tickets.",
    },
    Param {
        name: "parent",
        location: In::Query,
        ty: Ty::TicketId,
        description: "Only children of this ticket; an invalid id is 422.",
    },
    Param {
        name: "failing",
        location: In::Query,
        ty: Ty::Bool,
        description: "Only tickets with (true) or without (false) a failure_reason.",
    },
    Param {
        name: "cursor",
        location: In::Query,
        ty: Ty::TicketId,
        description: "The previous page's `next_cursor`; an invalid id is 422.",
    },
    LIMIT,
];

const RUNTIMES_QUERY: &[Param] = &[
    Param {
        name: "ticket",
        location: In::Query,
        ty: Ty::TicketId,
        description: "Only runtimes of this ticket; an invalid id is 422.",
    },
    Param {
        name: "live",
        location: In::Query,
        ty: Ty::Bool,
        description: "Only live (true) or only ended (false) runtimes.",
    },
    Param {
        name: "cursor",
        location: In::Query,
        ty: Ty::Text,
        description: "The previous page's `next_cursor` (a runtime id).",
    },
    LIMIT,
];

const CREATED: Success = Success {
    status: 201,
    description: "Appended: `{position, version, events}`.",
    content: Content::Json("WriteResult"),
};
const CREATED_RUNTIME: Success = Success {
    status: 201,
    description: "Appended; `runtime_id` and `nonce` name the new runtime and its turn nonce.",
    content: Content::Json("WriteResult"),
};
const DUPLICATE: Success = Success {
    status: 200,
    description: "Already applied: the original result with `duplicate: true`; nothing appended.",
    content: Content::Json("DuplicateResult"),
};

/// Writes that can be refused by a decision on an existing ticket or runtime.
const WRITE_ERRORS: &[u16] = &[400, 401, 403, 404, 408, 409, 413, 415, 422, 500, 503];
const READ_QUERY_ERRORS: &[u16] = &[400, 401, 403, 404, 408, 422, 500];

macro_rules! write_route {
    ($method:ident $path:literal, $op:literal, $tag:literal, $summary:literal, $param:expr, $body:literal, [$($ok:expr),*]) => {
        Route {
            method: Method::$method,
            path: $path,
            operation_id: $op,
            scope: Some(Scope::Write),
            tag: $tag,
            summary: $summary,
            params: $param,
            body: Some($body),
            ok: &[$($ok),*],
            errors: WRITE_ERRORS,
        }
    };
}

const fn json_ok(description: &'static str, schema: &'static str) -> Success {
    Success {
        status: 200,
        description,
        content: Content::Json(schema),
    }
}

/// Every route `server::app` serves, in the router's order.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/v1/tickets",
        operation_id: "openTicket",
        scope: Some(Scope::Write),
        tag: "tickets",
        summary: "Open a ticket (`ticket.opened`); an existing id is 409 `ticket_exists`",
        params: &[],
        body: Some("OpenBody"),
        ok: &[CREATED],
        errors: &[400, 401, 403, 408, 409, 413, 415, 422, 500, 503],
    },
    write_route!(Post "/v1/tickets/{id}/edit", "editTicket", "tickets",
        "Edit title, description, priority or owner; only changed fields are recorded (200 when nothing changes)",
        &[TICKET_PATH], "EditBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/tickets/{id}/comments", "addComment", "tickets",
        "Comment on a ticket, closed tickets included", &[TICKET_PATH], "CommentBody", [CREATED]),
    Route {
        method: Method::Get,
        path: "/v1/tickets/{id}/comments",
        operation_id: "listComments",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "A ticket's comments, oldest first",
        params: &[TICKET_PATH, AFTER_VERSION, LIMIT],
        body: None,
        ok: &[json_ok("A page of comments.", "CommentPage")],
        errors: READ_QUERY_ERRORS,
    },
    write_route!(Post "/v1/tickets/{id}/links", "linkTicket", "tickets",
        "Link to another ticket (child_of or blocked_by)", &[TICKET_PATH], "LinkBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/tickets/{id}/unlink", "unlinkTicket", "tickets",
        "Remove a link", &[TICKET_PATH], "LinkBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/tickets/{id}/park", "parkTicket", "tickets",
        "Park a ticket waiting on others", &[TICKET_PATH], "ParkBody", [CREATED]),
    write_route!(Post "/v1/tickets/{id}/gates", "recordGate", "tickets",
        "Record a gate verdict", &[TICKET_PATH], "GateBody", [CREATED]),
    write_route!(Post "/v1/tickets/{id}/close", "closeTicket", "tickets",
        "Close a ticket; a closed one is 409 `ticket_closed`", &[TICKET_PATH], "CloseBody", [CREATED]),
    write_route!(Post "/v1/tickets/{id}/reopen", "reopenTicket", "tickets",
        "Reopen a closed ticket; an open one is 409 `ticket_open` (`commit` is ignored)",
        &[TICKET_PATH], "ReasonBody", [CREATED]),
    write_route!(Post "/v1/tickets/{id}/tasks", "addTask", "tasks",
        "Add a task (the same task id and title again is 200)", &[TICKET_PATH], "TaskBody", [CREATED, DUPLICATE]),
    write_route!(Patch "/v1/tickets/{id}/tasks/{task_id}", "updateTask", "tasks",
        "Set a task's status", &[TICKET_PATH, TASK_PATH], "TaskPatchBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/tickets/{id}/dispatch", "dispatch", "runtimes",
        "Dispatch a worker: a new runtime and turn nonce; the same dispatch_key again is 200 with the original",
        &[TICKET_PATH], "DispatchBody", [CREATED_RUNTIME, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/signals", "signal", "runtimes",
        "Record a worker's verdict, structured or read from raw pane text (422 `no_signal` when it holds none); a wrong nonce or an ended runtime is 409 and records `runtime.signal_rejected` (`recorded_position`)",
        &[RUNTIME_PATH], "SignalBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/activity", "activity", "runtimes",
        "Heartbeat; at most one `runtime.activity` per runtime per minute, the others are 202",
        &[RUNTIME_PATH], "ActivityBody", [CREATED, Success {
            status: 202,
            description: "Coalesced into an earlier heartbeat; nothing appended.",
            content: Content::Json("Coalesced"),
        }]),
    write_route!(Post "/v1/runtimes/{id}/harvest", "harvest", "runtimes",
        "Record how a runtime exited, structured or classified from a raw Claude result or Codex JSONL; a second, different harvest needs expected_version (else 409)",
        &[RUNTIME_PATH], "HarvestBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/reap", "reap", "runtimes",
        "Record that a runtime's process or session is gone; once per cause (repeats are 200)",
        &[RUNTIME_PATH], "ReapBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/kill", "kill", "runtimes",
        "Kill a live runtime; an ended one is 409 `runtime_ended` (`commit` is ignored)",
        &[RUNTIME_PATH], "ReasonBody", [CREATED]),
    write_route!(Post "/v1/runtimes/{id}/cancel", "cancel", "runtimes",
        "Cancel a live runtime; an ended one is 409 `runtime_ended` (`commit` is ignored)",
        &[RUNTIME_PATH], "ReasonBody", [CREATED]),
    write_route!(Post "/v1/runtimes/{id}/switch", "switch", "runtimes",
        "Switch a live runtime's agent, profile or model; issues a new turn nonce",
        &[RUNTIME_PATH], "SwitchBody", [CREATED]),
    write_route!(Post "/v1/runtimes/{id}/retry", "retry", "runtimes",
        "Retry an ended runtime: a new runtime with attempt + 1; 409 `runtime_live` or `ticket_closed`",
        &[RUNTIME_PATH], "RetryBody", [CREATED_RUNTIME, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/complete", "complete", "runtimes",
        "Mark a runtime completed by the controller", &[RUNTIME_PATH], "ReasonBody", [CREATED, DUPLICATE]),
    write_route!(Post "/v1/runtimes/{id}/input", "input", "runtimes",
        "Record input sent to a worker (answers a QUESTION)", &[RUNTIME_PATH], "InputBody", [CREATED]),
    write_route!(Post "/v1/runtimes/{id}/abort", "abortLaunch", "runtimes",
        "Record a failed launch (`runtime.launch_aborted`)", &[RUNTIME_PATH], "AbortBody", [CREATED]),
    Route {
        method: Method::Post,
        path: "/v1/tickets/{id}/events",
        operation_id: "appendRaw",
        scope: Some(Scope::Admin),
        tag: "admin",
        summary: "Append typed events as they are, without a decision (import, repair); event ids make it idempotent",
        params: &[TICKET_PATH],
        body: Some("RawAppendBody"),
        ok: &[CREATED, DUPLICATE],
        errors: WRITE_ERRORS,
    },
    Route {
        method: Method::Get,
        path: "/v1/tickets/{id}/events",
        operation_id: "listTicketEvents",
        scope: Some(Scope::Read),
        tag: "events",
        summary: "A ticket's events in stream order",
        params: &[TICKET_PATH, AFTER_VERSION, LIMIT],
        body: None,
        ok: &[json_ok(
            "A page of events; `next_cursor` is a stream version.",
            "EventPage",
        )],
        errors: READ_QUERY_ERRORS,
    },
    Route {
        method: Method::Post,
        path: "/v1/admin/rebuild",
        operation_id: "adminRebuild",
        scope: Some(Scope::Admin),
        tag: "admin",
        summary: "Refold the projections from the log, swap them in, snapshot, and list tickets whose views changed",
        params: &[],
        body: None,
        ok: &[json_ok("Rebuilt.", "RebuildReport")],
        errors: &[401, 403, 408, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/tickets",
        operation_id: "listTickets",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "Tickets in natural id order, filtered, with cursor paging",
        params: TICKETS_QUERY,
        body: None,
        ok: &[json_ok("A page of ticket views.", "TicketPage")],
        errors: &[400, 401, 403, 408, 422, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/tickets/{id}",
        operation_id: "getTicket",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "A ticket's view, now or `as_of` a global position",
        params: &[
            TICKET_PATH,
            Param {
                name: "as_of",
                location: In::Query,
                ty: Ty::U64,
                description: "The view as of this global position; past the log head is 422.",
            },
        ],
        body: None,
        ok: &[json_ok("The ticket view.", "TicketView")],
        errors: READ_QUERY_ERRORS,
    },
    Route {
        method: Method::Get,
        path: "/v1/tickets/{id}/timeline",
        operation_id: "getTimeline",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "Audit replay: each of the ticket's events with the derived state right after it",
        params: &[TICKET_PATH],
        body: None,
        ok: &[json_ok("The timeline.", "TimelinePage")],
        errors: &[401, 403, 404, 408, 422, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/runtimes",
        operation_id: "listRuntimes",
        scope: Some(Scope::Read),
        tag: "runtimes",
        summary: "Runtimes in dispatch order, filtered, with cursor paging",
        params: RUNTIMES_QUERY,
        body: None,
        ok: &[json_ok("A page of runtime views.", "RuntimePage")],
        errors: &[400, 401, 403, 408, 422, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/runtimes/{id}",
        operation_id: "getRuntime",
        scope: Some(Scope::Read),
        tag: "runtimes",
        summary: "A runtime's view",
        params: &[RUNTIME_PATH],
        body: None,
        ok: &[json_ok("The runtime view.", "RuntimeView")],
        errors: &[401, 403, 404, 408, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/board",
        operation_id: "board",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "Tickets grouped by state",
        params: &[CLOSED_LIMIT],
        body: None,
        ok: &[json_ok("The board.", "Board")],
        errors: &[400, 401, 403, 408, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/alerts",
        operation_id: "alerts",
        scope: Some(Scope::Read),
        tag: "tickets",
        summary: "What needs a person's attention now",
        params: &[],
        body: None,
        ok: &[json_ok("Every current alert (one page).", "AlertPage")],
        errors: &[401, 403, 408, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/events",
        operation_id: "listEvents",
        scope: Some(Scope::Read),
        tag: "events",
        summary: "The global log in position order",
        params: &[AFTER_POSITION, LIMIT],
        body: None,
        ok: &[json_ok(
            "A page of events; `next_cursor` is a global position.",
            "EventPage",
        )],
        errors: &[400, 401, 403, 408, 500],
    },
    Route {
        method: Method::Get,
        path: "/v1/events/stream",
        operation_id: "streamEvents",
        scope: Some(Scope::Read),
        tag: "events",
        summary: "Server-sent events: catch-up after `after` or `Last-Event-ID`, then live; `id` is the position, `event` the type, `data` the envelope",
        params: &[
            AFTER_POSITION,
            Param {
                name: "Last-Event-ID",
                location: In::Header,
                ty: Ty::PositionText,
                description: "Resume after this position (wins over `after`); not a number is 400.",
            },
        ],
        body: None,
        ok: &[Success {
            status: 200,
            description: "An endless event stream with a `heartbeat` comment every 15 s.",
            content: Content::EventStream,
        }],
        errors: &[400, 401, 403, 408, 503],
    },
    Route {
        method: Method::Get,
        path: "/v1/admin/verify",
        operation_id: "adminVerify",
        scope: Some(Scope::Admin),
        tag: "admin",
        summary: "Recompute the hash chain of the whole log",
        params: &[],
        body: None,
        ok: &[json_ok(
            "`ok: true` with counts and the head hash, or `ok: false` with the first bad position.",
            "VerifyReport",
        )],
        errors: &[401, 403, 408, 500, 503],
    },
    Route {
        method: Method::Get,
        path: "/healthz",
        operation_id: "healthz",
        scope: None,
        tag: "health",
        summary: "Liveness",
        params: &[],
        body: None,
        ok: &[json_ok("Serving.", "Health")],
        errors: &[408],
    },
    Route {
        method: Method::Get,
        path: "/readyz",
        operation_id: "readyz",
        scope: None,
        tag: "health",
        summary: "Readiness: projections caught up with the log",
        params: &[],
        body: None,
        ok: &[json_ok("Ready.", "Ready")],
        errors: &[408, 500, 503],
    },
    Route {
        method: Method::Get,
        path: "/metrics",
        operation_id: "metrics",
        scope: Some(Scope::Read),
        tag: "health",
        summary: "Prometheus metrics",
        params: &[],
        body: None,
        ok: &[Success {
            status: 200,
            description: "Prometheus text exposition format 0.0.4.",
            content: Content::Text,
        }],
        errors: &[401, 403, 408],
    },
    Route {
        method: Method::Get,
        path: "/openapi.json",
        operation_id: "openapi",
        scope: None,
        tag: "health",
        summary: "This document",
        params: &[],
        body: None,
        ok: &[json_ok("OpenAPI 3.0.3.", "OpenApiDocument")],
        errors: &[408],
    },
];

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(route.method.as_str().to_owned(), operation(route));
        }
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mc-ledger",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An append-only ledger of tickets and agent runtimes. Errors are \
                application/problem+json with a stable `code`. Writes need a `write` token, \
                `POST /v1/tickets/{id}/events` and `/v1/admin/*` an `admin` token, reads a \
                `read` token; with no tokens configured the server serves loopback only, \
                without authentication. Every request may also end in 408 (problem+json, code `timeout`) after \
                30 s.",
        },
        "servers": [{"url": "http://127.0.0.1:7171"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "tickets"}, {"name": "tasks"}, {"name": "runtimes"}, {"name": "events"},
            {"name": "admin"}, {"name": "health"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `mc-ledger token create --scope read|write|admin`; \
                        scopes are ordered read < write < admin.",
                },
            },
            "schemas": schemas(),
        },
    })
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Write => "write",
        Scope::Admin => "admin",
    }
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(route.operation_id));
    op.insert("tags".into(), json!([route.tag]));
    op.insert("summary".into(), json!(route.summary));
    match route.scope {
        None => {
            op.insert("security".into(), json!([]));
            op.insert("description".into(), json!("No token needed."));
        }
        Some(scope) => {
            op.insert("x-required-scope".into(), json!(scope_name(scope)));
            op.insert(
                "description".into(),
                json!(format!(
                    "Needs a token of scope `{}` or higher.",
                    scope_name(scope)
                )),
            );
        }
    }
    if !route.params.is_empty() {
        let params: Vec<Value> = route.params.iter().map(parameter).collect();
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(body) = route.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "description": "JSON, at most 1 MiB; another Content-Type is 415, a syntax error 400, \
                    a wrong shape or an unknown field 422.",
                "content": {"application/json": {"schema": schema_ref(body)}},
            }),
        );
    }
    let mut responses = Map::new();
    for ok in route.ok {
        let content = match ok.content {
            Content::Json(name) => json!({"application/json": {"schema": schema_ref(name)}}),
            // One SSE event: `id` = position, `event` = type, `data` = the envelope as JSON
            // text (heartbeats are comments, not events).
            Content::EventStream => json!({"text/event-stream": {"schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                    "event": {"type": "string"},
                    "data": {"type": "string"},
                },
            }}}),
            Content::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        };
        responses.insert(
            ok.status.to_string(),
            json!({"description": ok.description, "content": content}),
        );
    }
    for &status in route.errors {
        responses.insert(status.to_string(), error_response(status));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn parameter(p: &Param) -> Value {
    let schema = match p.ty {
        Ty::TicketId => json!({"type": "string", "pattern": TICKET_ID_PATTERN}),
        // An empty query value is a valid (if useless) filter or cursor, and is accepted.
        Ty::Text => json!({"type": "string"}),
        Ty::U64 => u64_schema(0),
        Ty::Limit => u64_schema(1),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::TicketState => enum_schema(TICKET_STATES),
        // 19 digits always fit a u64.
        Ty::PositionText => json!({"type": "string", "pattern": "^[0-9]{1,19}$"}),
    };
    json!({
        "name": p.name,
        "in": p.location.as_str(),
        "required": p.location == In::Path,
        "description": p.description,
        "schema": schema,
    })
}

/// The description of each error status the API uses.
pub fn error_description(status: u16) -> &'static str {
    match status {
        400 => "`malformed`: JSON syntax error, or a query string or header that does not parse (unknown parameter, wrong type, `limit=0`, unknown `state`).",
        401 => "`unauthorized`: no valid bearer token (only when tokens are configured).",
        403 => "`forbidden`: the token's scope is too low for this request.",
        404 => "`ticket_not_found`, `runtime_not_found`, `task_not_found`, or `no_route` (e.g. an empty path segment).",
        408 => "The request took longer than 30 s (code `timeout`).",
        409 => "A conflict with the current state, named by `code`: `ticket_exists`, `ticket_closed`, `ticket_open`, `runtime_live`, `runtime_ended` (with `class`), `stale_nonce`, `unknown_nonce`, `task_exists`, `version_conflict` (with `current_version`), `event_id_conflict`. A refused signal also carries `recorded_position`.",
        413 => "`body_too_large` (over 1 MiB), `event_too_large` or `too_many_events`.",
        415 => "`unsupported_media_type`: send `Content-Type: application/json`.",
        422 => "`invalid` (with `field` when one field is at fault), an invalid ticket id, `no_signal` (raw pane text with no signal in it; nothing is appended), or another refused value (`invalid_actor`, `invalid_event_id`, `invalid_timestamp`, `empty_append`, `duplicate_event_id`, `too_expensive`).",
        500 => "`internal`: see the server log.",
        503 => "`log_closed` (the writer stopped after a storage error) or `too_many_streams` (256 event streams are open).",
        _ => "Error.",
    }
}

fn error_response(status: u16) -> Value {
    json!({
        "description": error_description(status),
        "content": {"application/problem+json": {"schema": schema_ref("Problem")}},
    })
}

// ---- schema helpers ----

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A reference that may also be null (OpenAPI 3.0 ignores siblings of `$ref`).
fn nullable_ref(name: &str) -> Value {
    json!({"nullable": true, "allOf": [schema_ref(name)]})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// A string the decision refuses when blank.
fn required_string(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": description})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn u64_schema(minimum: u64) -> Value {
    json!({"type": "integer", "minimum": minimum, "maximum": U64_MAX})
}

fn u32_schema() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": U32_MAX})
}

fn number() -> Value {
    json!({"type": "number"})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn enum_schema(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn ticket_id() -> Value {
    json!({"type": "string", "pattern": TICKET_ID_PATTERN})
}

fn timestamp() -> Value {
    json!({
        "type": "string",
        "format": "date-time",
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$",
        "description": "RFC 3339, UTC, milliseconds (`2026-11-02T10:11:12.345Z`).",
    })
}

fn hash() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{64}$"})
}

/// Makes a schema nullable (an `Option`); a nullable enum lists `null` too, as OpenAPI 3.0.3
/// asks.
fn optional(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert("nullable".into(), Value::Bool(true));
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    schema
}

fn with_description(mut schema: Value, description: &str) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert("description".into(), json!(description));
    }
    schema
}

/// An object that always has `required` (views: every serialized field is present).
fn object(properties: Value, required: &[&str]) -> Value {
    let mut schema = json!({"type": "object", "properties": properties});
    // OpenAPI 3.0 wants `required` non-empty when present.
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// An object whose every property is always present.
fn record(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "required": required, "properties": properties})
}

/// A closed object (`deny_unknown_fields`): an unknown field is refused.
fn closed(properties: Value, required: &[&str]) -> Value {
    let mut schema = object(properties, required);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// A command body: the given fields plus `actor` (required) and `expected_version`.
fn command_body(mut properties: Value, required: &[&str]) -> Value {
    properties["actor"] = schema_ref("Actor");
    properties["expected_version"] = expected_version();
    let mut all: Vec<&str> = required.to_vec();
    all.push("actor");
    closed(properties, &all)
}

fn expected_version() -> Value {
    with_description(
        optional(u64_schema(0)),
        "The ticket stream version the client saw; another version is 409 `version_conflict` \
         with `current_version`.",
    )
}

/// Every event payload: (event type, schema name, schema).
fn event_payloads() -> Vec<(&'static str, &'static str, Value)> {
    let s = string;
    let ns = || optional(string());
    vec![
        (
            "ticket.opened",
            "TicketOpened",
            closed(
                json!({
                    "title": s(), "description": ns(), "priority": enum_schema(PRIORITIES),
                    "owner": ns(), "project": ns(), "umbrella": boolean(), "labels": array(s()),
                }),
                &["title"],
            ),
        ),
        (
            "ticket.edited",
            "TicketEdited",
            closed(
                json!({
                    "title": ns(), "description": ns(), "priority": optional(enum_schema(PRIORITIES)),
                    "owner": ns(),
                }),
                &[],
            ),
        ),
        (
            "ticket.commented",
            "TicketCommented",
            closed(json!({"body": s()}), &["body"]),
        ),
        (
            "ticket.linked",
            "TicketLinked",
            closed(
                json!({
                    "relation": enum_schema(RELATIONS), "target": s(),
                }),
                &["relation", "target"],
            ),
        ),
        (
            "ticket.unlinked",
            "TicketUnlinked",
            closed(
                json!({
                    "relation": enum_schema(RELATIONS), "target": s(),
                }),
                &["relation", "target"],
            ),
        ),
        (
            "ticket.parked",
            "TicketParked",
            closed(
                json!({
                    "waiting_on": array(s()), "reason": s(),
                }),
                &["waiting_on", "reason"],
            ),
        ),
        (
            "ticket.gate_recorded",
            "GateRecorded",
            closed(
                json!({
                    "gate": s(), "verdict": enum_schema(GATE_VERDICTS), "commit": ns(), "evidence": ns(),
                }),
                &["gate", "verdict"],
            ),
        ),
        (
            "ticket.closed",
            "TicketClosed",
            closed(
                json!({
                    "resolution": enum_schema(RESOLUTIONS), "commit": ns(), "evidence": ns(),
                }),
                &["resolution"],
            ),
        ),
        (
            "ticket.reopened",
            "TicketReopened",
            closed(json!({"reason": s()}), &["reason"]),
        ),
        (
            "task.added",
            "TaskAdded",
            closed(json!({"task_id": s(), "title": s()}), &["task_id", "title"]),
        ),
        (
            "task.updated",
            "TaskUpdated",
            closed(
                json!({
                    "task_id": s(), "status": enum_schema(TASK_STATUSES),
                }),
                &["task_id", "status"],
            ),
        ),
        (
            "runtime.dispatched",
            "RuntimeDispatched",
            closed(
                json!({
                    "runtime_id": s(), "dispatch_key": s(), "attempt": u32_schema(), "agent": s(),
                    "profile": ns(), "provider": ns(), "model": ns(), "transport": enum_schema(TRANSPORTS),
                    "tmux_target": ns(), "process_id": optional(u32_schema()), "cwd": ns(), "nonce": s(),
                    "replaces": ns(), "resume_session": ns(),
                }),
                &[
                    "runtime_id",
                    "dispatch_key",
                    "attempt",
                    "agent",
                    "transport",
                    "nonce",
                ],
            ),
        ),
        (
            "runtime.launch_aborted",
            "RuntimeLaunchAborted",
            closed(
                json!({
                    "runtime_id": s(), "reason": s(), "detail": ns(),
                }),
                &["runtime_id", "reason"],
            ),
        ),
        (
            "runtime.activity",
            "RuntimeActivity",
            closed(
                json!({
                    "runtime_id": s(), "note": ns(),
                }),
                &["runtime_id"],
            ),
        ),
        (
            "runtime.signaled",
            "RuntimeSignaled",
            closed(
                json!({
                    "runtime_id": s(), "verdict": enum_schema(VERDICTS), "nonce": s(), "payload": s(),
                }),
                &["runtime_id", "verdict", "nonce", "payload"],
            ),
        ),
        (
            "runtime.signal_rejected",
            "RuntimeSignalRejected",
            closed(
                json!({
                    "runtime_id": s(), "reason": enum_schema(SIGNAL_REJECT_REASONS), "nonce": ns(),
                    "excerpt": s(),
                }),
                &["runtime_id", "reason", "excerpt"],
            ),
        ),
        (
            "runtime.input_sent",
            "RuntimeInputSent",
            closed(
                json!({
                    "runtime_id": s(), "text": s(),
                }),
                &["runtime_id", "text"],
            ),
        ),
        (
            "runtime.harvested",
            "RuntimeHarvested",
            closed(
                json!({
                    "runtime_id": s(), "outcome": enum_schema(HARVEST_OUTCOMES),
                    "exit_reason": enum_schema(EXIT_REASONS), "turns": optional(u32_schema()),
                    "cost_usd": optional(number()), "session_id": ns(), "summary": ns(), "raw_subtype": ns(),
                }),
                &["runtime_id", "outcome", "exit_reason"],
            ),
        ),
        (
            "runtime.reaped",
            "RuntimeReaped",
            closed(
                json!({
                    "runtime_id": s(), "cause": enum_schema(REAP_CAUSES), "evidence": ns(),
                }),
                &["runtime_id", "cause"],
            ),
        ),
        (
            "runtime.killed",
            "RuntimeKilled",
            closed(
                json!({
                    "runtime_id": s(), "reason": s(),
                }),
                &["runtime_id", "reason"],
            ),
        ),
        (
            "runtime.completed_by_controller",
            "RuntimeCompletedByController",
            closed(
                json!({
                    "runtime_id": s(), "reason": s(), "commit": ns(),
                }),
                &["runtime_id", "reason"],
            ),
        ),
        (
            "runtime.cancelled",
            "RuntimeCancelled",
            closed(
                json!({
                    "runtime_id": s(), "reason": s(),
                }),
                &["runtime_id", "reason"],
            ),
        ),
        (
            "runtime.switched",
            "RuntimeSwitched",
            closed(
                json!({
                    "runtime_id": s(), "agent": ns(), "profile": ns(), "model": ns(), "nonce": s(),
                }),
                &["runtime_id", "nonce"],
            ),
        ),
    ]
}

/// `{type, data}` pairs: one branch per event type, so exactly one matches.
fn event_branches() -> Vec<Value> {
    event_payloads()
        .into_iter()
        .map(|(type_name, schema, _)| {
            json!({
                "type": "object",
                "required": ["type", "data"],
                "properties": {"type": {"type": "string", "enum": [type_name]}, "data": schema_ref(schema)},
            })
        })
        .collect()
}

/// The names of the event payload schemas, by event type (for tests).
pub fn event_payload_schemas() -> Vec<(&'static str, &'static str)> {
    event_payloads()
        .into_iter()
        .map(|(t, name, _)| (t, name))
        .collect()
}

fn event_types() -> Vec<&'static str> {
    event_payloads().into_iter().map(|(t, _, _)| t).collect()
}

fn schemas() -> Map<String, Value> {
    let s = string;
    let ns = || optional(string());
    let mut m = Map::new();
    let mut put = |name: &str, schema: Value| {
        m.insert(name.to_owned(), schema);
    };

    put(
        "Problem",
        json!({
            "type": "object",
            "description": "RFC 9457 problem details with a stable `code`; some codes add fields.",
            "required": ["type", "title", "status", "code", "detail"],
            "properties": {
                "type": {"type": "string", "description": "`https://mc-ledger.dev/problems/<code>`"},
                "title": s(),
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "code": {"type": "string", "description": "Stable, machine-readable; never reworded."},
                "detail": s(),
                "current_version": with_description(u64_schema(0), "With `version_conflict`: the ticket's version now."),
                "class": with_description(enum_schema(RUNTIME_CLASSES), "With `runtime_ended`: how the runtime ended."),
                "field": with_description(s(), "With `invalid`: the field at fault."),
                "recorded_position": with_description(u64_schema(0), "With a refused signal: where `runtime.signal_rejected` was recorded."),
            },
        }),
    );
    put(
        "Actor",
        closed(
            json!({
                "name": with_description(json!({"type": "string", "minLength": 1}), "1 to 128 bytes; else 422 `invalid_actor`."),
                "kind": enum_schema(ACTOR_KINDS),
            }),
            &["name", "kind"],
        ),
    );

    // The event envelope (SPEC §3) and its payloads.
    let mut event = object(
        json!({
            "position": with_description(u64_schema(1), "Global, gapless, from 1."),
            "ticket": ticket_id(),
            "version": with_description(u64_schema(1), "The event's place in its ticket's stream, from 1."),
            "id": s(),
            "type": enum_schema(&event_types()),
            "recorded_at": timestamp(),
            "actor": schema_ref("Actor"),
            "data": {"type": "object"},
            "prev_hash": hash(),
            "hash": hash(),
        }),
        &[
            "position",
            "ticket",
            "version",
            "id",
            "type",
            "recorded_at",
            "actor",
            "data",
            "prev_hash",
            "hash",
        ],
    );
    event["oneOf"] = Value::Array(event_branches());
    put("Event", event);
    for (_, name, schema) in event_payloads() {
        put(name, schema);
    }

    // Request bodies.
    put(
        "OpenBody",
        closed(
            json!({
                "id": ticket_id(),
                "title": required_string("1 to 200 characters."),
                "description": ns(),
                "priority": optional(enum_schema(PRIORITIES)),
                "owner": ns(),
                "project": ns(),
                "umbrella": optional(boolean()),
                "labels": optional(array(json!({"type": "string", "minLength": 1}))),
                "actor": schema_ref("Actor"),
                "expected_version": expected_version(),
            }),
            &["id", "title", "actor"],
        ),
    );
    put(
        "EditBody",
        with_description(
            command_body(
                json!({
                    "title": ns(), "description": ns(), "priority": optional(enum_schema(PRIORITIES)), "owner": ns(),
                }),
                &[],
            ),
            "At least one field; none is 422, no change is 200.",
        ),
    );
    put(
        "CommentBody",
        command_body(
            json!({"body": required_string("At most 64 KiB.")}),
            &["body"],
        ),
    );
    put(
        "LinkBody",
        command_body(
            json!({
                "relation": optional(enum_schema(RELATIONS)),
                "target": with_description(ticket_id(), "An existing ticket other than this one."),
            }),
            &["relation", "target"],
        ),
    );
    put(
        "ParkBody",
        command_body(
            json!({
                "waiting_on": array(json!({"type": "string", "minLength": 1})),
                "reason": required_string("Why the ticket waits."),
            }),
            &["reason"],
        ),
    );
    put(
        "GateBody",
        command_body(
            json!({
                "gate": required_string("The gate's name."),
                "verdict": optional(enum_schema(GATE_VERDICTS)),
                "commit": ns(),
                "evidence": ns(),
            }),
            &["gate", "verdict"],
        ),
    );
    put(
        "CloseBody",
        command_body(
            json!({
                "resolution": optional(enum_schema(RESOLUTIONS)), "commit": ns(), "evidence": ns(),
            }),
            &["resolution"],
        ),
    );
    put(
        "ReasonBody",
        command_body(
            json!({
                "reason": required_string("Why."),
                "commit": with_description(ns(), "Recorded by `complete` only."),
            }),
            &["reason"],
        ),
    );
    put(
        "TaskBody",
        command_body(
            json!({
                "task_id": with_description(ns(), "Chosen by the server when absent."),
                "title": required_string("1 to 200 characters."),
            }),
            &["title"],
        ),
    );
    put(
        "TaskPatchBody",
        command_body(
            json!({"status": optional(enum_schema(TASK_STATUSES))}),
            &["status"],
        ),
    );
    put(
        "DispatchBody",
        command_body(
            json!({
                "dispatch_key": required_string("Idempotency key: the same key again returns the original runtime."),
                "agent": required_string("The agent's name."),
                "transport": optional(enum_schema(TRANSPORTS)),
                "profile": ns(), "provider": ns(), "model": ns(), "tmux_target": ns(),
                "process_id": optional(u32_schema()),
                "cwd": ns(),
                "replace": with_description(boolean(), "Kill a live runtime of the ticket in the same append (else 409 `runtime_live`)."),
            }),
            &["dispatch_key", "agent", "transport"],
        ),
    );
    put(
        "ReapBody",
        command_body(
            json!({
                "cause": optional(enum_schema(REAP_CAUSES)), "evidence": ns(),
            }),
            &["cause"],
        ),
    );
    put(
        "SwitchBody",
        command_body(json!({"agent": ns(), "profile": ns(), "model": ns()}), &[]),
    );
    put(
        "RetryBody",
        command_body(
            json!({
                "resume": with_description(boolean(), "Resume the previous session."),
            }),
            &[],
        ),
    );
    put(
        "InputBody",
        command_body(
            json!({"text": required_string("At most 64 KiB.")}),
            &["text"],
        ),
    );
    put("ActivityBody", command_body(json!({"note": ns()}), &[]));
    let mut signal = command_body(
        json!({
            "verdict": with_description(
                optional(enum_schema(VERDICTS)),
                "Structured form: required unless `raw` is sent.",
            ),
            "nonce": with_description(
                ns(),
                "Structured form: the runtime's current turn nonce; required unless `raw` is sent.",
            ),
            "payload": with_description(ns(), "Structured form: the verdict's text (at most 64 KiB)."),
            "raw": with_description(
                ns(),
                "Raw pane text (`tmux capture-pane`, a console log), instead of verdict/nonce/payload.                  The last 256 KiB are read for a `{\"mc_signal\": …}` object (terminal wraps, ANSI                  escapes and box borders tolerated) or a `DONE:` / `REVIEW:` / `QUESTION:` line                  (decorations tolerated; the echoed dispatch instruction is not a signal). The                  current turn's signal wins; a bare verdict line is signed with the runtime's                  current nonce; an `mc_signal` of another turn is refused like a structured one                  (409, recorded). No signal: 422 `no_signal`, nothing appended. See docs/ingest.md.",
            ),
        }),
        &[],
    );
    signal["description"] =
        json!("Either `{verdict, nonce, payload?}` or `{raw}`; both at once is 422 `invalid`.");
    put("SignalBody", signal);
    let mut harvest = command_body(
        json!({
            "outcome": with_description(
                optional(enum_schema(HARVEST_OUTCOMES)),
                "Structured form: required with `exit_reason` unless a raw form is sent.",
            ),
            "exit_reason": with_description(
                optional(enum_schema(EXIT_REASONS)),
                "Structured form: must go with `outcome` (SPEC §5.2 pairs).",
            ),
            "turns": optional(u32_schema()),
            "cost_usd": optional(number()),
            "session_id": ns(),
            "summary": ns(),
            "claude_result": {"description": "A Claude Code `-p --output-format json` result object (or the                 `--verbose` array of messages, whose last `type: result` element counts), classified                 per SPEC §5.2: success → completed/success; success with is_error true →                 failed/api_error; error_max_turns → partial/max_turns; error_max_budget_usd →                 partial/max_budget; error_during_execution → failed/error; an unknown subtype →                 failed/error with `raw_subtype`; anything that is not a result → failed/no_result.                 num_turns, total_cost_usd, session_id and the result text (≤ 2 KiB) are kept. Any                 JSON is accepted; null counts as absent."},
            "codex_jsonl": with_description(
                ns(),
                "The stdout of `codex exec --json` (JSON lines), classified per SPEC §5.2: the last                  `turn.completed` → completed/success; `turn.failed` or `error` → failed/error; a                  turn that started and never ended (or `turn.aborted`) → failed/interrupted; no turn                  → failed/no_result. `thread.started`'s thread_id is kept as session_id; lines that                  are not JSON objects are ignored.",
            ),
        }),
        &[],
    );
    harvest["description"] = json!(
        "Exactly one of `{outcome, exit_reason, turns?, cost_usd?, session_id?, summary?}`,          `{claude_result}` or `{codex_jsonl}`; more than one is 422 `invalid`."
    );
    put("HarvestBody", harvest);
    put(
        "AbortBody",
        command_body(
            json!({
                "reason": required_string("Why the launch failed."), "detail": ns(),
            }),
            &["reason"],
        ),
    );
    let mut raw_event = object(
        json!({
            "id": with_description(ns(), "1 to 64 characters of `A-Za-z0-9_.:-`; chosen by the server when absent. An id already in the log makes the append a duplicate."),
            "recorded_at": optional(timestamp()),
            "actor": schema_ref("Actor"),
            "type": enum_schema(&event_types()),
            "data": {"type": "object"},
        }),
        &["actor", "type", "data"],
    );
    raw_event["oneOf"] = Value::Array(event_branches());
    put("RawEvent", raw_event);
    put(
        "RawAppendBody",
        closed(
            json!({
                "events": with_description(array(schema_ref("RawEvent")), "1 to 64 events; more is 413."),
                "expected_version": expected_version(),
            }),
            &["events"],
        ),
    );

    // Write results.
    let write_result = |extra: Value, required: &[&str]| {
        let mut properties = json!({
            "position": with_description(u64_schema(0), "Position of the last event (0 when there is none)."),
            "version": with_description(u64_schema(0), "The ticket's version after the append."),
            "events": array(schema_ref("Event")),
            "runtime_id": with_description(s(), "Dispatch and retry: the runtime."),
            "nonce": with_description(s(), "Dispatch and retry: its turn nonce."),
        });
        if let (Some(p), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        object(properties, required)
    };
    put(
        "WriteResult",
        write_result(json!({}), &["position", "version", "events"]),
    );
    put(
        "DuplicateResult",
        write_result(
            json!({"duplicate": {"type": "boolean", "enum": [true]}}),
            &["duplicate", "position", "version", "events"],
        ),
    );
    put(
        "Coalesced",
        record(json!({
            "coalesced": {"type": "boolean", "enum": [true]},
            "ticket": ticket_id(),
            "runtime_id": s(),
        })),
    );

    // Pages.
    put(
        "EventPage",
        record(json!({
            "events": array(schema_ref("Event")),
            "next_cursor": with_description(optional(u64_schema(0)), "Pass as `after` for the next page; null on the last page."),
        })),
    );
    put(
        "Comment",
        record(json!({
            "position": u64_schema(1), "version": u64_schema(1), "id": s(),
            "actor": schema_ref("Actor"), "recorded_at": timestamp(), "body": s(),
        })),
    );
    put(
        "CommentPage",
        record(json!({
            "comments": array(schema_ref("Comment")),
            "next_cursor": with_description(optional(u64_schema(0)), "Pass as `after` for the next page; null on the last page."),
        })),
    );
    put(
        "TicketPage",
        record(json!({
            "tickets": array(schema_ref("TicketView")),
            "next_cursor": with_description(optional(ticket_id()), "Pass as `cursor` for the next page; null on the last page."),
        })),
    );
    put(
        "RuntimePage",
        record(json!({
            "runtimes": array(schema_ref("RuntimeView")),
            "next_cursor": with_description(ns(), "Pass as `cursor` for the next page; null on the last page."),
        })),
    );
    put(
        "AlertPage",
        record(json!({
            "alerts": array(schema_ref("Alert")),
            "next_cursor": with_description(json!({"type": "string", "nullable": true, "enum": [null]}), "Always null: alerts come in one page."),
        })),
    );
    put(
        "TimelinePage",
        record(json!({"timeline": array(schema_ref("TimelineEntry"))})),
    );

    // Views (projections::views, alerts, audit).
    put(
        "NextAction",
        record(json!({"code": enum_schema(NEXT_ACTION_CODES), "text": s()})),
    );
    put(
        "Progress",
        record(json!({"done": u64_schema(0), "total": u64_schema(0)})),
    );
    put(
        "TaskView",
        record(json!({"task_id": s(), "title": s(), "status": enum_schema(TASK_STATUSES)})),
    );
    put(
        "TaskCounts",
        record(json!({
            "open": u64_schema(0), "in_progress": u64_schema(0), "done": u64_schema(0), "total": u64_schema(0),
        })),
    );
    put(
        "Tasks",
        record(json!({"items": array(schema_ref("TaskView")), "counts": schema_ref("TaskCounts")})),
    );
    put(
        "GateView",
        record(json!({
            "gate": s(), "verdict": enum_schema(GATE_VERDICTS), "commit": ns(),
            "actor": with_description(s(), "The actor's name."), "at": timestamp(),
        })),
    );
    put(
        "ExitView",
        with_description(
            record(json!({
                "outcome": optional(enum_schema(HARVEST_OUTCOMES)),
                "exit_reason": optional(enum_schema(EXIT_REASONS)),
                "turns": optional(u32_schema()),
                "cost_usd": optional(number()),
                "session_id": ns(),
            })),
            "From the runtime's last harvest; fields are null when it ended without one.",
        ),
    );
    put(
        "VerdictView",
        record(json!({
            "verdict": enum_schema(VERDICTS), "nonce": s(),
            "payload": with_description(s(), "At most 1 KiB of the payload; the full text is in the event."),
            "at": timestamp(), "position": u64_schema(1),
        })),
    );
    put(
        "RuntimeView",
        record(json!({
            "id": s(), "ticket": ticket_id(), "attempt": u32_schema(), "dispatch_key": s(),
            "agent": s(), "profile": ns(), "provider": ns(), "model": ns(),
            "transport": enum_schema(TRANSPORTS), "tmux_target": ns(), "process_id": optional(u32_schema()),
            "cwd": ns(), "class": enum_schema(RUNTIME_CLASSES), "live": boolean(),
            "started_at": timestamp(), "last_activity_at": optional(timestamp()),
            "ended_at": optional(timestamp()),
            "exit": with_description(nullable_ref("ExitView"), "Null while live."),
            "verdicts": array(schema_ref("VerdictView")),
            "replaces": ns(), "replaced_by": ns(),
            "nonce": with_description(s(), "The current turn nonce."),
            "resume_session": ns(),
        })),
    );
    put(
        "TicketView",
        record(json!({
            "id": ticket_id(), "title": s(), "description": ns(),
            "priority": enum_schema(PRIORITIES), "owner": ns(), "project": ns(),
            "labels": array(s()), "umbrella": boolean(), "parent": optional(ticket_id()),
            "children": array(ticket_id()), "blocked_by": array(ticket_id()),
            "waiting_on": array(s()), "waiting_reason": ns(),
            "state": enum_schema(TICKET_STATES),
            "resolution": optional(enum_schema(RESOLUTIONS)),
            "next_action": schema_ref("NextAction"),
            "failure_reason": with_description(ns(), "SPEC §5.4: non-null only while a worker was expected and the current runtime failed."),
            "current_runtime": nullable_ref("RuntimeView"),
            "runtime_ids": array(s()),
            "tasks": schema_ref("Tasks"),
            "gates": array(schema_ref("GateView")),
            "comment_count": u64_schema(0),
            "progress": with_description(nullable_ref("Progress"), "Children closed / total; umbrella tickets only."),
            "created_at": timestamp(), "updated_at": timestamp(),
            "version": u64_schema(1), "position": u64_schema(1),
        })),
    );
    put(
        "BoardCard",
        record(json!({
            "id": ticket_id(), "title": s(), "priority": enum_schema(PRIORITIES), "owner": ns(),
            "umbrella": boolean(), "next_action": schema_ref("NextAction"), "failure_reason": ns(),
            "runtime_class": optional(enum_schema(RUNTIME_CLASSES)),
            "progress": nullable_ref("Progress"), "updated_at": timestamp(),
        })),
    );
    let column = || array(schema_ref("BoardCard"));
    put(
        "Board",
        record(json!({
            "open": column(), "in_progress": column(), "needs_input": column(), "review": column(),
            "waiting": column(), "done": column(), "cancelled": column(),
            "totals": schema_ref("BoardTotals"),
        })),
    );
    let count = || u64_schema(0);
    put(
        "BoardTotals",
        record(json!({
            "open": count(), "in_progress": count(), "needs_input": count(), "review": count(),
            "waiting": count(), "done": count(), "cancelled": count(),
        })),
    );
    put(
        "Alert",
        object(
            json!({
                "kind": enum_schema(ALERT_KINDS), "ticket": ticket_id(),
                "runtime_id": with_description(s(), "Absent when the alert is about no runtime."),
                "since": timestamp(), "detail": s(),
            }),
            &["kind", "ticket", "since", "detail"],
        ),
    );
    put(
        "TimelineEntry",
        record(json!({
            "event": schema_ref("Event"),
            "state": enum_schema(TICKET_STATES),
            "next_action": schema_ref("NextAction"),
            "failure_reason": ns(),
            "runtime_class": optional(enum_schema(RUNTIME_CLASSES)),
        })),
    );

    // Admin and health.
    put(
        "VerifyReport",
        object(
            json!({
                "ok": boolean(),
                "events": with_description(u64_schema(0), "When ok."),
                "tickets": with_description(u64_schema(0), "When ok."),
                "head_hash": with_description(hash(), "When ok."),
                "first_bad_position": with_description(u64_schema(0), "When not ok."),
                "detail": with_description(s(), "When not ok."),
            }),
            &["ok"],
        ),
    );
    put(
        "RebuildReport",
        record(json!({
            "position": u64_schema(0),
            "elapsed_ms": number(),
            "differences": with_description(array(ticket_id()), "Tickets whose view changed."),
        })),
    );
    put(
        "Health",
        record(json!({"status": {"type": "string", "enum": ["ok"]}})),
    );
    put(
        "Ready",
        record(json!({
            "status": {"type": "string", "enum": ["ready"]},
            "head": with_description(u64_schema(0), "The log's durable head position."),
            "projected": with_description(u64_schema(0), "The position the projections cover."),
        })),
    );
    let mut document = object(
        json!({
            "openapi": s(), "info": {"type": "object"}, "paths": {"type": "object"},
        }),
        &["openapi", "info", "paths"],
    );
    document["additionalProperties"] = Value::Bool(true);
    put("OpenApiDocument", document);
    m
}
