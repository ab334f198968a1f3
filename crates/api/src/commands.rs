//! Command handlers: request body → [`Command`] → `decide` → append with the version the
//! decision was made against → answer. A lost race (the log's version moved between decide and
//! append) re-decides against the new state, so decide + append is atomic per ticket.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use events::{
    Actor, EventData, ExitReason, GateRecorded, GateVerdict, HarvestOutcome, NewEvent, Priority,
    ReapCause, RecordedEvent, Relation, Resolution, TaskStatus, TicketClosed, TicketEdited,
    TicketId, TicketOpened, Transport, Verdict,
};
use projections::{
    decide, turn_nonce, Command, Context, Decision, EventRef, HarvestReport, Operation,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{AppendRequest, LogError};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ticket_id, Body, IdempotencyKey, Keyed, RuntimePath, TaskPath, TicketPath};
use crate::openapi::{CreatedOrCoalesced, CreatedOrDuplicate, RuntimeCreated};
use crate::state::{new_ulid, now, random_u32, Shared, WriteState};

/// Times a command is re-decided after losing a race on its ticket stream.
const RACE_RETRIES: usize = 16;

/// Who a command is written by: the token's actor and id, or (without tokens) the body's actor.
#[derive(Debug, Clone)]
pub struct Writer {
    pub actor: Actor,
    pub token_id: Option<String>,
}

impl Writer {
    /// Resolves the writer of a command and asks the one authorization point
    /// (`projections::authorize`) before anything is decided: a body actor other than the
    /// token's is 403 `actor_mismatch`; a scope, kind or runtime token that may not take the
    /// command's action on its target is 403 naming the rule. Without tokens the body names
    /// the actor and nothing is checked, as before tokens named actors.
    pub fn of(
        shared: &Shared,
        caller: Option<&Caller>,
        body: Option<Actor>,
        command: &Command,
    ) -> Result<Writer, AppError> {
        let Some(caller) = caller else {
            let actor = body.ok_or_else(|| {
                AppError::invalid("missing field `actor`").with(json!({"field": "actor"}))
            })?;
            return Ok(Writer {
                actor,
                token_id: None,
            });
        };
        if let Some(claimed) = body {
            if claimed != caller.actor {
                return Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    "actor_mismatch",
                    format!(
                        "this token writes as {} ({:?}); leave `actor` out or send that one",
                        caller.actor.name, caller.actor.kind
                    ),
                )
                .with(json!({"token_actor": caller.actor})));
            }
        }
        let op = Operation::Write(command.action());
        shared.read(|l| crate::access::check(l, caller, op, Some(command.target())))?;
        Ok(Writer {
            actor: caller.actor.clone(),
            token_id: Some(caller.token_id.clone()),
        })
    }
}

pub async fn execute(
    w: &WriteState,
    command: Command,
    writer: Writer,
    expected_version: Option<u64>,
    key: Option<&IdempotencyKey>,
) -> Result<Response, AppError> {
    let shared = &w.shared;
    if let Some(key) = key {
        // Asked before deciding: the first try may have changed what the decision says (a
        // retried close would be `ticket_closed`).
        if let Some(events) = keyed_original(w, key)? {
            shared.metrics.duplicates.inc();
            return answer(w, &command, &writer, StatusCode::OK, duplicate(events));
        }
    }
    for _ in 0..RACE_RETRIES {
        shared.catch_up()?;
        let at = now();
        let decision = shared.read(|ledger| {
            let nonce = command
                .ticket_id(ledger)
                .map(|t| turn_nonce(&t, at, random_u32()))
                .unwrap_or_default();
            let mut ctx = Context::new(at, format!("rt_{}", new_ulid()), nonce)
                .with_expected_version(expected_version);
            ctx.activity_every_ms = shared.config.activity_every_ms;
            decide(ledger, &command, &ctx)
        });
        let decision = match decision {
            Ok(d) => d,
            Err(rejection) => {
                shared.metrics.rejected(rejection.code());
                return Err(rejection.into());
            }
        };
        match decision {
            Decision::Append(a) => {
                let appended = match append(w, &a, key, &writer, at).await {
                    Ok(appended) => appended,
                    Err(LogError::VersionConflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                shared.catch_up()?;
                if appended.duplicate {
                    // A keyed command whose first try committed while this one was deciding.
                    shared.metrics.duplicates.inc();
                    return answer(
                        w,
                        &command,
                        &writer,
                        StatusCode::OK,
                        duplicate(appended.events),
                    );
                }
                let body = WriteResult {
                    runtime_id: a.runtime_id,
                    nonce: a.nonce,
                    ..WriteResult::of(appended)
                };
                return answer(w, &command, &writer, StatusCode::CREATED, body);
            }
            Decision::Duplicate(d) => {
                shared.metrics.duplicates.inc();
                let events = originals(w, &d.events)?;
                let body = WriteResult {
                    duplicate: Some(true),
                    position: events.last().map_or(0, |e| e.position),
                    version: d.version,
                    events,
                    runtime_id: d.runtime_id,
                    nonce: d.nonce,
                    runtime_token: None,
                };
                return answer(w, &command, &writer, StatusCode::OK, body);
            }
            Decision::Coalesced { ticket, runtime_id } => {
                let body = Coalesced {
                    coalesced: true,
                    ticket,
                    runtime_id,
                };
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
            Decision::Refuse {
                ticket,
                expected_version,
                record,
                rejection,
            } => {
                let refusal = projections::Append {
                    ticket,
                    expected_version,
                    events: record,
                    runtime_id: None,
                    nonce: None,
                    also: Vec::new(),
                };
                let recorded = match append(w, &refusal, key, &writer, at).await {
                    Ok(a) => a,
                    Err(LogError::VersionConflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                shared.catch_up()?;
                shared.metrics.rejected(rejection.code());
                let position = recorded.last_position();
                return Err(AppError::from(rejection).with(json!({"recorded_position": position})));
            }
        }
    }
    Err(AppError::new(
        StatusCode::CONFLICT,
        "version_conflict",
        "the ticket kept changing under this command; retry",
    ))
}

/// Appends a decision's events; a keyed command's ids come from its key.
async fn append(
    w: &WriteState,
    decided: &projections::Append,
    key: Option<&IdempotencyKey>,
    writer: &Writer,
    at: events::Timestamp,
) -> Result<store::Appended, LogError> {
    let started = Instant::now();
    let count = decided.events.len() + decided.also.iter().map(|a| a.events.len()).sum::<usize>();
    // A keyed command's ids are numbered across every stream of the append.
    let mut n = 0;
    let mut events = |datas: &[EventData]| -> Vec<NewEvent> {
        datas
            .iter()
            .map(|data| {
                let i = n;
                n += 1;
                NewEvent {
                    id: key.map_or_else(new_ulid, |k| k.event_id(i)),
                    recorded_at: at,
                    actor: writer.actor.clone(),
                    token_id: writer.token_id.clone(),
                    data: data.clone(),
                }
            })
            .collect()
    };
    let first = events(&decided.events);
    let also = decided
        .also
        .iter()
        .map(|a| store::StreamAppend {
            ticket: a.ticket.clone(),
            expected_version: Some(a.expected_version),
            events: events(&a.events),
        })
        .collect();
    let request = AppendRequest {
        also,
        ticket: decided.ticket.clone(),
        expected_version: Some(decided.expected_version),
        events: first,
    };
    let appended = w.store.append(request).await?;
    w.shared.metrics.observe_append(started.elapsed(), count);
    Ok(appended)
}

/// What a write answers: 201 with what was appended, or 200 with `duplicate: true` and the
/// original events when the command was already applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteResult {
    /// Present (and true) only on a duplicate: nothing was appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// The global position of the last event.
    pub position: u64,
    /// The ticket stream's version after the last event.
    pub version: u64,
    pub events: Vec<RecordedEvent>,
    /// Dispatch and retry: the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// Dispatch and retry: the runtime's turn nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Dispatch and retry, when the server has tokens: the token a worker acts with (as the
    /// runtime's agent, on that runtime and its ticket only, until the runtime ends). Put it in
    /// the worker's environment as `MC_LEDGER_TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_token: Option<String>,
}

impl WriteResult {
    pub fn of(appended: store::Appended) -> WriteResult {
        // A multi-stream append (a dispatch into a pool) answers the first stream's version.
        let version = appended
            .events
            .first()
            .and_then(|first| {
                appended
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.ticket == first.ticket)
            })
            .map_or(0, |e| e.version);
        WriteResult {
            duplicate: appended.duplicate.then_some(true),
            position: appended.last_position(),
            version,
            events: appended.events,
            runtime_id: None,
            nonce: None,
            runtime_token: None,
        }
    }
}

/// 202: a heartbeat folded into an earlier one; nothing appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Coalesced {
    pub coalesced: bool,
    pub ticket: TicketId,
    pub runtime_id: String,
}

/// The events a keyed command appended on its first try, in order, if it got that far. A
/// refused signal's record is not an answer: the command is decided again, and its record is
/// recognised by id when appended (answering the original refusal).
fn keyed_original(
    w: &WriteState,
    key: &IdempotencyKey,
) -> Result<Option<Vec<RecordedEvent>>, AppError> {
    let reader = &w.shared.reader;
    let Some(first) = reader.event_by_id(&key.event_id(0))? else {
        return Ok(None);
    };
    if matches!(first.data, EventData::RuntimeSignalRejected(_)) {
        return Ok(None);
    }
    let mut events = vec![first];
    for i in 1..events::ids::EVENTS_PER_APPEND_MAX {
        match reader.event_by_id(&key.event_id(i))? {
            Some(e) => events.push(e),
            None => break,
        }
    }
    Ok(Some(events))
}

/// 200 with the original events of a command applied before; dispatch, retry and switch
/// name their runtime and nonce as the first answer did.
fn duplicate(events: Vec<RecordedEvent>) -> WriteResult {
    let runtime = events.iter().rev().find_map(|e| match &e.data {
        EventData::RuntimeDispatched(d) => Some((d.runtime_id.clone(), d.nonce.clone())),
        EventData::RuntimeSwitched(s) => Some((s.runtime_id.clone(), s.nonce.clone())),
        _ => None,
    });
    let (runtime_id, nonce) = runtime.unzip();
    WriteResult {
        duplicate: Some(true),
        position: events.last().map_or(0, |e| e.position),
        version: events.last().map_or(0, |e| e.version),
        events,
        runtime_id,
        nonce,
        runtime_token: None,
    }
}

/// A write's answer; a dispatch or retry also carries the new runtime's token when the server
/// has tokens. A duplicate carries it only for the token that made the original dispatch or
/// retry: the token is the worker's, and a dispatch key is readable in the ticket's events.
fn answer(
    w: &WriteState,
    command: &Command,
    writer: &Writer,
    status: StatusCode,
    mut body: WriteResult,
) -> Result<Response, AppError> {
    let mints = matches!(command, Command::Dispatch { .. } | Command::Retry { .. });
    if let (true, Some(runtime_id)) = (mints, &body.runtime_id) {
        let made_it = status == StatusCode::CREATED
            || body.events.iter().any(|e| {
                matches!(&e.data, EventData::RuntimeDispatched(d) if &d.runtime_id == runtime_id)
                    && e.token_id.is_some()
                    && e.token_id == writer.token_id
            });
        if made_it && !w.auth.is_open() {
            let token = w
                .auth
                .runtime_tokens
                .token_for(&w.shared.home, runtime_id)
                .map_err(|e| AppError::internal("runtime token", e))?;
            body.runtime_token = Some(token);
        }
    }
    Ok((status, Json(body)).into_response())
}

fn originals(w: &WriteState, refs: &[EventRef]) -> Result<Vec<RecordedEvent>, AppError> {
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let found = w
            .shared
            .reader
            .read_after(r.position.saturating_sub(1), 1)?;
        out.extend(found.into_iter().filter(|e| e.position == r.position));
    }
    Ok(out)
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
});
body!(ReapBody { cause: Option<ReapCause>, evidence: Option<String> });
body!(SwitchBody { agent: Option<String>, profile: Option<String>, model: Option<String> });
body!(RetryBody {
    resume: bool,
    /// The new runtime's pool; absent: the retried runtime's, if it had one.
    pool: Option<String>,
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

fn required<T>(value: Option<T>, field: &str) -> Result<T, AppError> {
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
            let writer = Writer::of(&w.shared, caller.as_deref(), actor, &command)?;
            execute(&w, command, writer, expected_version, key.as_ref()).await
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
    |_, p, b| Command::Retry { runtime_id: p.id, resume: b.resume, pool: b.pool };
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

/// Open a ticket (`ticket.opened`); an existing id is 409 `ticket_exists`.
#[utoipa::path(
    post, path = "/v1/tickets", operation_id = "openTicket", tag = "tickets",
    params(IdempotencyKeyHeader), request_body = OpenBody, responses(CreatedOrDuplicate)
)]
pub async fn open(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Keyed { body: b, key }: Keyed<OpenBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Open {
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
    let writer = Writer::of(&w.shared, caller.as_deref(), b.actor, &cmd)?;
    execute(&w, cmd, writer, b.expected_version, key.as_ref()).await
}

/// Create a pool or change its capacity (`pool.configured`); the same capacity again is 200.
#[utoipa::path(
    post, path = "/v1/pools", operation_id = "configurePool", tag = "pools",
    params(IdempotencyKeyHeader), request_body = PoolBody, responses(CreatedOrDuplicate)
)]
pub async fn configure_pool(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Keyed { body: b, key }: Keyed<PoolBody>,
) -> Result<Response, AppError> {
    let cmd = Command::ConfigurePool {
        name: b.name,
        capacity: required(b.capacity, "capacity")?,
    };
    let writer = Writer::of(&w.shared, caller.as_deref(), b.actor, &cmd)?;
    execute(&w, cmd, writer, b.expected_version, key.as_ref()).await
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
    let started = Instant::now();
    let count = request.events.len();
    let appended = w.store.append(request).await?;
    w.shared.catch_up()?;
    if appended.duplicate {
        return Ok((StatusCode::OK, Json(WriteResult::of(appended))).into_response());
    }
    w.shared.metrics.observe_append(started.elapsed(), count);
    Ok((StatusCode::CREATED, Json(WriteResult::of(appended))).into_response())
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
    let shared = w.shared.clone();
    let started = Instant::now();
    let (position, differences) = tokio::task::spawn_blocking(move || shared.rebuild())
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
