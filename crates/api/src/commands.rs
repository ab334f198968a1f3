//! Command handlers: request body → [`Command`] → `service::Service::submit` (authorize,
//! decide, append with the version the decision was made against, re-decide after a lost
//! race) → its outcome as HTTP. The command table below is the only place a write route, its
//! body and its command meet.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use events::{
    Actor, ExitReason, GateRecorded, GateVerdict, HarvestOutcome, NewEvent, Priority, ReapCause,
    Relation, Resolution, TaskStatus, TicketClosed, TicketEdited, TicketId, TicketOpened,
    Transport, Verdict,
};
use projections::{Command, HarvestReport};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use service::clock::{new_ulid, now};
use service::{Failure, Outcome};
use store::AppendRequest;
use utoipa::ToSchema;

use crate::error::AppError;
use crate::extract::{ticket_id, Body, Keyed, RuntimePath, SubscriptionPath, TaskPath, TicketPath};
use crate::openapi::{CreatedOrCoalesced, CreatedOrDuplicate, RuntimeCreated};
use crate::state::WriteState;
use service::tokens::Caller;

pub use service::execute::{Coalesced, WriteResult, Writer};

/// A command's outcome as HTTP: 201 appended, 200 a duplicate (the original), 202 a
/// coalesced heartbeat; a failure as problem+json.
pub fn respond(result: Result<Outcome, Failure>) -> Result<Response, AppError> {
    Ok(match result? {
        Outcome::Created(body) => (StatusCode::CREATED, Json(body)).into_response(),
        Outcome::Duplicate(body) => (StatusCode::OK, Json(body)).into_response(),
        Outcome::Coalesced(body) => (StatusCode::ACCEPTED, Json(body)).into_response(),
    })
}

// ---- request bodies (wire types) and the command table ----

/// Declares a command body: the given fields plus `actor` and `expected_version`. Field
/// attributes (doc comments, `#[schema(…)]` limits) go into the OpenAPI document.
macro_rules! body {
    ($(#[$meta:meta])* $name:ident { $($(#[$attr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$attr])* #[serde(default)] pub $field: $ty,)*
            /// Who writes. Required without tokens; with a token it may be left out (the
            /// token's actor is recorded), and a different one is 403 `actor_mismatch`.
            #[serde(default)]
            pub actor: Option<Actor>,
            /// The ticket stream version the client saw; another version is 409
            /// `version_conflict` with `current_version`.
            #[serde(default)]
            pub expected_version: Option<u64>,
        }
    };
}

body!(
    /// Open a ticket. `id` must be new; the title is 1 to 200 characters.
    OpenBody {
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    id: String,
    /// 1 to 200 characters.
    #[schema(min_length = 1)]
    title: String,
    description: Option<String>,
    priority: Option<Priority>,
    owner: Option<String>,
    project: Option<String>,
    umbrella: Option<bool>,
    #[schema(value_type = Option<Vec<NonEmpty>>)]
    labels: Option<Vec<String>>,
});
body!(
    /// At least one field; none is 422, no change is 200.
    EditBody { title: Option<String>, description: Option<String>, priority: Option<Priority>, owner: Option<String> });
body!(CommentBody {
    /// At most 64 KiB.
    #[schema(min_length = 1)]
    body: String,
});
body!(LinkBody {
    relation: Option<Relation>,
    /// An existing ticket other than this one.
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    target: String,
});
body!(ParkBody {
    #[schema(value_type = Vec<NonEmpty>)]
    waiting_on: Vec<String>,
    /// Why the ticket waits.
    #[schema(min_length = 1)]
    reason: String,
});
body!(GateBody {
    /// The gate's name.
    #[schema(min_length = 1)]
    gate: String,
    verdict: Option<GateVerdict>,
    commit: Option<String>,
    evidence: Option<String>,
});
body!(CloseBody { resolution: Option<Resolution>, commit: Option<String>, evidence: Option<String> });
body!(
    /// Pause a subscription: nothing is delivered until it is resumed.
    PauseBody {
    /// Why (shown with the subscription), at most 1024 bytes.
    reason: Option<String>,
});

body!(
    /// Only the writer (and, with tokens, not even that).
    ActorBody {});

body!(
    /// Deliver again from a log position (what was parked, or anything since).
    ReplayBody {
    /// A log position from 1 to the head + 1.
    #[schema(minimum = 1)]
    from_position: Option<u64>,
});

body!(ReasonBody {
    /// Why.
    #[schema(min_length = 1)]
    reason: String,
    /// Recorded by `complete` only.
    commit: Option<String>,
});
body!(TaskBody {
    /// Chosen by the server when absent.
    task_id: Option<String>,
    /// 1 to 200 characters.
    #[schema(min_length = 1)]
    title: String,
});
body!(TaskPatchBody { status: Option<TaskStatus> });
body!(DispatchBody {
    /// The same key again answers the original runtime (200), forever.
    #[schema(min_length = 1)]
    dispatch_key: String,
    #[schema(min_length = 1)]
    agent: String,
    transport: Option<Transport>,
    profile: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    tmux_target: Option<String>,
    process_id: Option<u32>,
    cwd: Option<String>,
    /// Kill the live runtime in the same atomic append.
    replace: bool,
    /// Take a slot of this pool (409 `pool_full` with the holders when none is free); a
    /// replacing dispatch passes the replaced runtime's slot on.
    pool: Option<String>,
    /// The most the run may spend (Claude Code's `--max-budget-usd`), reserved in every
    /// budget covering the dispatch while the runtime is live (409 `budget_exhausted` when one
    /// has no room); absent: the smallest default reservation of those budgets.
    #[schema(exclusive_minimum = 0, maximum = 1e9)]
    max_budget_usd: Option<f64>,
});
body!(ReapBody { cause: Option<ReapCause>, evidence: Option<String> });
body!(SwitchBody { agent: Option<String>, profile: Option<String>, model: Option<String> });
body!(RetryBody {
    resume: bool,
    /// The new runtime's pool; absent: the retried runtime's, if it had one.
    pool: Option<String>,
    /// The new run's reservation; absent: the retried runtime's, if it had one.
    #[schema(exclusive_minimum = 0, maximum = 1e9)]
    max_budget_usd: Option<f64>,
});
body!(
    /// Create a budget or change it (orchestrators and humans).
    BudgetBody {
    /// 1 to 64 characters of A-Z a-z 0-9 _ . -
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// What it covers: `{kind: all}`, or `{kind: agent|owner|umbrella|ticket, value}` (an
    /// umbrella's budget covers its descendants).
    scope: Option<events::BudgetScope>,
    /// Dollars, 0 to 1e9.
    #[schema(minimum = 0, maximum = 1e9)]
    limit_usd: Option<f64>,
    /// `total` (default), `day` or `month`; days and months roll over in UTC.
    period: Option<events::BudgetPeriod>,
    /// `budget_near` from this share of the limit (1 to 100, default 80).
    #[schema(minimum = 1, maximum = 100)]
    warn_at_pct: Option<u8>,
    /// What a dispatch without `max_budget_usd` reserves (default: a tenth of the limit).
    #[schema(exclusive_minimum = 0, maximum = 1e9)]
    default_reservation_usd: Option<f64>,
});
body!(
    /// Create a pool or change its capacity (orchestrators and humans).
    PoolBody {
    /// 1 to 64 characters of A-Z a-z 0-9 _ . -
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// Slots: 0 to 10000. Shrinking below the holders keeps them; new ones wait for room.
    #[schema(maximum = 10000)]
    capacity: Option<u32>,
});
body!(InputBody {
    #[schema(min_length = 1)]
    text: String,
});
body!(ActivityBody { note: Option<String> });
body!(
    /// Either `{verdict, nonce, payload}` or `{raw}`.
    SignalBody {
    verdict: Option<Verdict>,
    nonce: Option<String>,
    payload: Option<String>,
    /// Raw pane text (`tmux capture-pane`, a console log), instead of verdict/nonce/payload.
    /// The last 256 KiB are read for a `{"mc_signal": …}` object (terminal wraps, ANSI escapes
    /// and box borders tolerated) or a `DONE:` / `REVIEW:` / `QUESTION:` line (the echoed
    /// dispatch instruction is not a signal). No signal: 422 `no_signal`, nothing appended.
    raw: Option<String>,
});
body!(
    /// Exactly one of `{outcome, exit_reason, …}`, `{claude_result}`, `{claude_stream}` or
    /// `{codex_jsonl}`.
    HarvestBody {
    outcome: Option<HarvestOutcome>,
    exit_reason: Option<ExitReason>,
    turns: Option<u32>,
    cost_usd: Option<f64>,
    session_id: Option<String>,
    summary: Option<String>,
    /// Tokens and cost by model, with the structured form.
    usage: Option<Vec<events::ModelUsage>>,
    /// The result object of `claude -p --output-format json`.
    #[schema(value_type = Option<Object>)]
    claude_result: Option<Value>,
    /// The JSON lines of `claude -p --output-format stream-json` (the last `result` line
    /// decides).
    claude_stream: Option<String>,
    /// The JSON lines of `codex exec --json`.
    codex_jsonl: Option<String>,
});
body!(AbortBody {
    #[schema(min_length = 1)]
    reason: String,
    detail: Option<String>,
});

/// A non-empty string (list items the decision refuses when blank).
#[derive(ToSchema)]
#[schema(min_length = 1)]
pub struct NonEmpty(#[allow(dead_code)] String);

pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, AppError> {
    value.ok_or_else(|| {
        AppError::invalid(format!("missing field `{field}`")).with(json!({"field": field}))
    })
}

/// The command table: one row per write route, from the route to its body type to the
/// [`Command`] it becomes. Each row makes a handler (documented by `#[utoipa::path]`, so the
/// route, its body and its answers are in `/openapi.json` with no second edit) that decodes
/// the body, builds the command and runs [`execute`].
///
/// A row reads `METHOD "PATH" handler "operationId" "tag" PathParams, Body, Answers,
/// |state, path_id, body| command;` where `path_id` is the `{id}` segment (`String`).
macro_rules! commands {
    ($(
        $(#[doc = $doc:literal])*
        $method:ident $path:literal $name:ident $op:literal $tag:literal
        $params:ty, $body:ty, $answers:ty,
        |$w:pat_param, $id:pat_param, $b:ident| $command:expr;
    )*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path(
            $method, path = $path, operation_id = $op, tag = $tag,
            params($params, IdempotencyKeyHeader), request_body = $body, responses($answers)
        )]
        pub async fn $name(
            State(w): State<WriteState>,
            caller: Option<Extension<Caller>>,
            Path(id): Path<$params>,
            Keyed { body: $b, key }: Keyed<$body>,
        ) -> Result<Response, AppError> {
            let actor = $b.actor.clone();
            let expected_version = $b.expected_version;
            let $w = &w;
            let $id = id;
            let command: Command = $command;
            respond(w.submit(caller.as_deref(), actor, command, expected_version, key.as_ref()).await)
        }
    )*};
}

commands! {
    /// Edit title, description, priority or owner; only changed fields are recorded (200 when
    /// nothing changes).
    post "/v1/tickets/{id}/edit" edit "editTicket" "tickets" TicketPath, EditBody, CreatedOrDuplicate,
    |_, p, b| Command::Edit {
        ticket: ticket_id(&p.id)?,
        edit: TicketEdited { title: b.title, description: b.description, priority: b.priority, owner: b.owner },
    };
    /// Comment on a ticket, closed tickets included.
    post "/v1/tickets/{id}/comments" comment "addComment" "tickets" TicketPath, CommentBody, CreatedOrDuplicate,
    |_, p, b| Command::Comment { ticket: ticket_id(&p.id)?, body: b.body };
    /// Link to another ticket (child_of or blocked_by).
    post "/v1/tickets/{id}/links" link "linkTicket" "tickets" TicketPath, LinkBody, CreatedOrDuplicate,
    |_, p, b| Command::Link { ticket: ticket_id(&p.id)?, relation: required(b.relation, "relation")?, target: b.target };
    /// Remove a link.
    post "/v1/tickets/{id}/unlink" unlink "unlinkTicket" "tickets" TicketPath, LinkBody, CreatedOrDuplicate,
    |_, p, b| Command::Unlink { ticket: ticket_id(&p.id)?, relation: required(b.relation, "relation")?, target: b.target };
    /// Park a ticket waiting on others.
    post "/v1/tickets/{id}/park" park "parkTicket" "tickets" TicketPath, ParkBody, CreatedOrDuplicate,
    |_, p, b| Command::Park { ticket: ticket_id(&p.id)?, waiting_on: b.waiting_on, reason: b.reason };
    /// Record a gate verdict.
    post "/v1/tickets/{id}/gates" gate "recordGate" "tickets" TicketPath, GateBody, CreatedOrDuplicate,
    |_, p, b| Command::Gate {
        ticket: ticket_id(&p.id)?,
        gate: GateRecorded { gate: b.gate, verdict: required(b.verdict, "verdict")?, commit: b.commit, evidence: b.evidence },
    };
    /// Close a ticket; a closed one is 409 `ticket_closed`.
    post "/v1/tickets/{id}/close" close "closeTicket" "tickets" TicketPath, CloseBody, CreatedOrDuplicate,
    |_, p, b| Command::Close {
        ticket: ticket_id(&p.id)?,
        close: TicketClosed { resolution: required(b.resolution, "resolution")?, commit: b.commit, evidence: b.evidence },
    };
    /// Reopen a closed ticket; an open one is 409 `ticket_open` (`commit` is ignored).
    /// Pause a subscription (200 when it already is).
    post "/v1/subscriptions/{name}/pause" pause_subscription "pauseSubscription" "subscriptions" SubscriptionPath, PauseBody, CreatedOrDuplicate,
    |_, p, b| Command::PauseSubscription { name: p.name, reason: b.reason };
    /// Resume a paused or failing subscription where it stopped (200 when it is active).
    post "/v1/subscriptions/{name}/resume" resume_subscription "resumeSubscription" "subscriptions" SubscriptionPath, ActorBody, CreatedOrDuplicate,
    |_, p, _b| Command::ResumeSubscription { name: p.name };
    /// Deliver again from `from_position`: what was parked, or anything since.
    post "/v1/subscriptions/{name}/replay" replay_subscription "replaySubscription" "subscriptions" SubscriptionPath, ReplayBody, CreatedOrDuplicate,
    |_, p, b| Command::ReplaySubscription { name: p.name, from_position: required(b.from_position, "from_position")? };
    /// Delete a subscription (its facts stay in the log); a JSON body is optional.
    delete "/v1/subscriptions/{name}" delete_subscription "deleteSubscription" "subscriptions" SubscriptionPath, ActorBody, CreatedOrDuplicate,
    |_, p, _b| Command::DeleteSubscription { name: p.name };
    post "/v1/tickets/{id}/reopen" reopen "reopenTicket" "tickets" TicketPath, ReasonBody, CreatedOrDuplicate,
    |_, p, b| Command::Reopen { ticket: ticket_id(&p.id)?, reason: b.reason };
    /// Add a task (the same task id and title again is 200).
    post "/v1/tickets/{id}/tasks" add_task "addTask" "tasks" TicketPath, TaskBody, CreatedOrDuplicate,
    |_, p, b| Command::AddTask { ticket: ticket_id(&p.id)?, task_id: b.task_id, title: b.title };
    /// Set a task's status.
    patch "/v1/tickets/{id}/tasks/{task_id}" update_task "updateTask" "tasks" TaskPath, TaskPatchBody, CreatedOrDuplicate,
    |_, p, b| Command::UpdateTask { ticket: ticket_id(&p.id)?, task_id: p.task_id, status: required(b.status, "status")? };
    /// Dispatch a worker: a new runtime and turn nonce; the same dispatch_key again is 200 with
    /// the original.
    post "/v1/tickets/{id}/dispatch" dispatch "dispatch" "runtimes" TicketPath, DispatchBody, RuntimeCreated,
    |_, p, b| Command::Dispatch {
        ticket: ticket_id(&p.id)?,
        dispatch_key: b.dispatch_key,
        agent: b.agent,
        transport: required(b.transport, "transport")?,
        profile: b.profile,
        provider: b.provider,
        model: b.model,
        tmux_target: b.tmux_target,
        process_id: b.process_id,
        cwd: b.cwd,
        replace: b.replace,
        pool: b.pool,
        max_budget_usd: b.max_budget_usd,
    };
    /// Record a worker's verdict, structured or read from raw pane text (422 `no_signal` when it
    /// holds none); a wrong nonce or an ended runtime is 409 and records
    /// `runtime.signal_rejected` (`recorded_position`).
    post "/v1/runtimes/{id}/signals" signal "signal" "runtimes" RuntimePath, SignalBody, CreatedOrDuplicate,
    |w, p, b| signal_command(w, p.id, b)?;
    /// Heartbeat; at most one `runtime.activity` per runtime per minute, the others are 202.
    post "/v1/runtimes/{id}/activity" activity "activity" "runtimes" RuntimePath, ActivityBody, CreatedOrCoalesced,
    |_, p, b| Command::Activity { runtime_id: p.id, note: b.note };
    /// Record how a runtime exited, structured or classified from a raw Claude result or Codex
    /// JSONL; a second, different harvest needs expected_version (else 409).
    post "/v1/runtimes/{id}/harvest" harvest "harvest" "runtimes" RuntimePath, HarvestBody, CreatedOrDuplicate,
    |_, p, b| harvest_command(p.id, b)?;
    /// Record that a runtime's process or session is gone; once per cause (repeats are 200).
    post "/v1/runtimes/{id}/reap" reap "reap" "runtimes" RuntimePath, ReapBody, CreatedOrDuplicate,
    |_, p, b| Command::Reap { runtime_id: p.id, cause: required(b.cause, "cause")?, evidence: b.evidence };
    /// Kill a live runtime; an ended one is 409 `runtime_ended` (`commit` is ignored).
    post "/v1/runtimes/{id}/kill" kill "kill" "runtimes" RuntimePath, ReasonBody, CreatedOrDuplicate,
    |_, p, b| Command::Kill { runtime_id: p.id, reason: b.reason };
    /// Cancel a live runtime; an ended one is 409 `runtime_ended` (`commit` is ignored).
    post "/v1/runtimes/{id}/cancel" cancel "cancel" "runtimes" RuntimePath, ReasonBody, CreatedOrDuplicate,
    |_, p, b| Command::Cancel { runtime_id: p.id, reason: b.reason };
    /// Switch a live runtime's agent, profile or model; issues a new turn nonce.
    post "/v1/runtimes/{id}/switch" switch "switch" "runtimes" RuntimePath, SwitchBody, CreatedOrDuplicate,
    |_, p, b| Command::Switch { runtime_id: p.id, agent: b.agent, profile: b.profile, model: b.model };
    /// Retry an ended runtime: a new runtime with attempt + 1; 409 `runtime_live` or
    /// `ticket_closed`.
    post "/v1/runtimes/{id}/retry" retry "retry" "runtimes" RuntimePath, RetryBody, RuntimeCreated,
    |_, p, b| Command::Retry { runtime_id: p.id, resume: b.resume, pool: b.pool, max_budget_usd: b.max_budget_usd };
    /// Mark a runtime completed by the controller.
    post "/v1/runtimes/{id}/complete" complete "complete" "runtimes" RuntimePath, ReasonBody, CreatedOrDuplicate,
    |_, p, b| Command::Complete { runtime_id: p.id, reason: b.reason, commit: b.commit };
    /// Record input sent to a worker (answers a QUESTION).
    post "/v1/runtimes/{id}/input" input "input" "runtimes" RuntimePath, InputBody, CreatedOrDuplicate,
    |_, p, b| Command::Input { runtime_id: p.id, text: b.text };
    /// Record a failed launch (`runtime.launch_aborted`): the dispatcher's way to say a worker
    /// never started (a failed model smoke test, as in seed MC-4502). Not in SPEC §7's list.
    post "/v1/runtimes/{id}/abort" abort_launch "abortLaunch" "runtimes" RuntimePath, AbortBody, CreatedOrDuplicate,
    |_, p, b| Command::AbortLaunch { runtime_id: p.id, reason: b.reason, detail: b.detail };
}

/// Declares command routes without a path parameter: the body names the target.
macro_rules! top_level_commands {
    ($(
        $(#[doc = $doc:literal])*
        post $path:literal $name:ident $op:literal $tag:literal $body:ty,
        |$b:ident| $command:expr;
    )*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path(
            post, path = $path, operation_id = $op, tag = $tag,
            params(IdempotencyKeyHeader), request_body = $body, responses(CreatedOrDuplicate)
        )]
        pub async fn $name(
            State(w): State<WriteState>,
            caller: Option<Extension<Caller>>,
            Keyed { body: $b, key }: Keyed<$body>,
        ) -> Result<Response, AppError> {
            let actor = $b.actor.clone();
            let expected_version = $b.expected_version;
            let command: Command = $command;
            respond(w.submit(caller.as_deref(), actor, command, expected_version, key.as_ref()).await)
        }
    )*};
}

top_level_commands! {
    /// Open a ticket (`ticket.opened`); an existing id is 409 `ticket_exists`.
    post "/v1/tickets" open "openTicket" "tickets" OpenBody,
    |b| Command::Open {
        ticket: ticket_id(&b.id)?,
        opened: TicketOpened {
            title: b.title,
            description: b.description,
            priority: b.priority.unwrap_or_default(),
            owner: b.owner,
            project: b.project,
            umbrella: b.umbrella.unwrap_or(false),
            labels: b.labels.unwrap_or_default(),
        },
    };
    /// Create a pool or change its capacity (`pool.configured`); the same capacity again is 200.
    post "/v1/pools" configure_pool "configurePool" "pools" PoolBody,
    |b| Command::ConfigurePool { name: b.name, capacity: required(b.capacity, "capacity")? };
    /// Create a budget or change it (`budget.configured`); the same settings again are 200.
    post "/v1/budgets" configure_budget "configureBudget" "budgets" BudgetBody,
    |b| Command::ConfigureBudget {
        budget: projections::BudgetRequest {
            name: b.name,
            scope: required(b.scope, "scope")?,
            limit_usd: required(b.limit_usd, "limit_usd")?,
            period: b.period.unwrap_or_default(),
            warn_at_pct: b.warn_at_pct,
            default_reservation_usd: b.default_reservation_usd,
        },
    };
}

/// The `Idempotency-Key` header every command takes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// The client's name for this request (1 to 128 visible ASCII characters, such as a
    /// UUID): sent again with the same route and body (after a timeout, a 503 or a lost
    /// connection), it is applied once and answered 200 with the original result, on any
    /// replica. The same key with another body is another request.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,128}$")]
    idempotency_key: Option<String>,
}

/// A signal body as a command: structured, or read from raw pane text.
fn signal_command(w: &WriteState, rt: String, b: SignalBody) -> Result<Command, AppError> {
    match b.raw {
        Some(raw) => {
            if b.verdict.is_some() || b.nonce.is_some() || b.payload.is_some() {
                return Err(AppError::invalid(
                    "send either {raw} or {verdict, nonce, payload}, not both",
                ));
            }
            raw_signal(w, rt, &raw)
        }
        None => Ok(Command::Signal {
            runtime_id: rt,
            verdict: required(b.verdict, "verdict")?,
            nonce: required(b.nonce, "nonce")?,
            payload: b.payload.unwrap_or_default(),
        }),
    }
}

/// Reads a `{raw}` pane against the runtime's current nonce (`docs/ingest.md`). A bare
/// verdict line is signed with that nonce; an `mc_signal` keeps its own, so a stale one is
/// refused (and recorded) by `decide` like a structured one.
fn raw_signal(w: &WriteState, rt: String, raw: &str) -> Result<Command, AppError> {
    w.shared.catch_up()?;
    let current = w
        .shared
        .read(|l| l.runtime_view(&rt, now(), &w.shared.config))
        .map(|v| v.nonce)
        .ok_or_else(|| projections::Rejection::RuntimeNotFound {
            runtime_id: projections::limits::excerpt(&rt, projections::limits::KEY_BYTES_MAX)
                .to_owned(),
        })?;
    let Some(found) = projections::ingest::signal::parse(raw, Some(&current)) else {
        w.shared.metrics.rejected("no_signal");
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_signal",
            "no {\"mc_signal\": …} object and no DONE:/REVIEW:/QUESTION: line in the pane text \
             (the echoed dispatch instruction is not a signal)",
        ));
    };
    Ok(Command::Signal {
        runtime_id: rt,
        verdict: found.verdict,
        nonce: found.nonce.unwrap_or(current),
        payload: found.payload,
    })
}

/// A harvest body as a command: structured, or classified from a Claude result or Codex JSONL.
fn harvest_command(rt: String, b: HarvestBody) -> Result<Command, AppError> {
    let structured = b.outcome.is_some()
        || b.exit_reason.is_some()
        || b.turns.is_some()
        || b.cost_usd.is_some()
        || b.session_id.is_some()
        || b.summary.is_some()
        || b.usage.is_some();
    let forms = [
        structured,
        b.claude_result.is_some(),
        b.claude_stream.is_some(),
        b.codex_jsonl.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() > 1 {
        return Err(AppError::invalid(
            "send exactly one of {outcome, exit_reason, …}, {claude_result}, {claude_stream} or {codex_jsonl}",
        ));
    }
    let report = if let Some(result) = &b.claude_result {
        projections::ingest::harvest::classify_claude(result)
    } else if let Some(jsonl) = &b.claude_stream {
        projections::ingest::harvest::classify_claude_stream(jsonl)
    } else if let Some(jsonl) = &b.codex_jsonl {
        let codex = projections::ingest::harvest::classify_codex(jsonl);
        if codex.unparseable_lines > 0 {
            tracing::info!(
                runtime_id = %format_args!("{rt:.64}"),
                unparseable_lines = codex.unparseable_lines,
                events = codex.events,
                "codex harvest: ignored lines that are not JSON objects"
            );
        }
        codex.report
    } else {
        HarvestReport {
            outcome: required(b.outcome, "outcome")?,
            exit_reason: required(b.exit_reason, "exit_reason")?,
            turns: b.turns,
            cost_usd: b.cost_usd,
            session_id: b.session_id,
            summary: b.summary,
            raw_subtype: None,
            usage: b.usage.unwrap_or_default(),
        }
    };
    Ok(Command::Harvest {
        runtime_id: rt,
        report,
    })
}

/// One event of a typed raw append: the stored vocabulary, with an optional client id
/// (import, retries) and time (import keeps the original).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RawEvent {
    #[serde(default)]
    pub id: Option<String>,
    /// The token id to keep (import); absent: the id of the token this request came with.
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<events::Timestamp>,
    pub actor: Actor,
    #[serde(flatten)]
    pub data: events::EventData,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAppendBody {
    /// At least one event; a known id answers the original append (200).
    pub events: Vec<RawEvent>,
    /// The ticket stream version the client saw; 0 means the stream must not exist yet.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Append typed events as they are, without a decision (import, repair); event ids make it
/// idempotent.
#[utoipa::path(
    post, path = "/v1/tickets/{id}/events", operation_id = "appendRaw", tag = "admin",
    params(TicketPath), request_body = RawAppendBody, responses(CreatedOrDuplicate)
)]
pub async fn raw_append(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Body(b): Body<RawAppendBody>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    // Events as they are, actors included (import and repair keep history as it was): only a
    // human may (`Operation::RawAppend`, authorized before this handler runs), and its
    // token's id is recorded on what it wrote.
    let caller_token = caller.as_deref().map(|c| c.token_id.clone());
    let at = now();
    let request = AppendRequest {
        also: Vec::new(),
        ticket,
        expected_version: b.expected_version,
        events: b
            .events
            .into_iter()
            .map(|e| NewEvent {
                id: e.id.unwrap_or_else(new_ulid),
                recorded_at: e.recorded_at.unwrap_or(at),
                actor: e.actor,
                token_id: e.token_id.or_else(|| caller_token.clone()),
                data: e.data,
            })
            .collect(),
    };
    respond(w.append_raw(request).await)
}

/// What a rebuild did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildReport {
    pub position: u64,
    pub elapsed_ms: f64,
    /// Tickets whose view the refold changed (a fold bug or a changed rule).
    pub differences: Vec<TicketId>,
}

/// Refold the projections from the log, swap them in, snapshot, and list tickets whose views
/// changed.
#[utoipa::path(
    post, path = "/v1/admin/rebuild", operation_id = "adminRebuild", tag = "admin",
    responses((status = 200, description = "Rebuilt.", body = RebuildReport))
)]
pub async fn admin_rebuild(State(w): State<WriteState>) -> Result<Response, AppError> {
    let snapshots = w.snapshots.clone();
    let started = Instant::now();
    let (position, differences) = tokio::task::spawn_blocking(move || snapshots.rebuild())
        .await
        .map_err(|e| AppError::internal("rebuild task", e))?
        .map_err(|e| AppError::internal("rebuild", e))?;
    Ok(Json(RebuildReport {
        position,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        differences,
    })
    .into_response())
}
