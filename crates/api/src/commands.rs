//! Command handlers: request body → [`Command`] → `decide` → append with the version the
//! decision was made against → answer. A lost race (the log's version moved between decide and
//! append) re-decides against the new state, so decide + append is atomic per ticket.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::{
    Actor, AppendRequest, ExitReason, GateRecorded, GateVerdict, HarvestOutcome, LogError,
    NewEvent, Priority, ReapCause, RecordedEvent, Relation, Resolution, TaskStatus, TicketClosed,
    TicketEdited, TicketId, TicketOpened, Transport, Verdict,
};
use projections::{decide, turn_nonce, Command, Context, Decision, EventRef, HarvestReport};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::extract::{ticket_id, Body};
use crate::state::{new_ulid, now, random_u32, WriteState};

/// Times a command is re-decided after losing a race on its ticket stream.
const RACE_RETRIES: usize = 16;

pub async fn execute(
    w: &WriteState,
    command: Command,
    actor: Actor,
    expected_version: Option<u64>,
) -> Result<Response, AppError> {
    let shared = &w.shared;
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
                let appended =
                    match append(w, a.ticket, a.expected_version, a.events, &actor, at).await {
                        Ok(appended) => appended,
                        Err(LogError::VersionConflict { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    };
                shared.catch_up()?;
                let mut body = result_body(&appended);
                if let Some(id) = a.runtime_id {
                    body["runtime_id"] = json!(id);
                }
                if let Some(nonce) = a.nonce {
                    body["nonce"] = json!(nonce);
                }
                return Ok((StatusCode::CREATED, Json(body)).into_response());
            }
            Decision::Duplicate(d) => {
                shared
                    .metrics
                    .duplicates
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let originals = originals(w, &d.events)?;
                let position = originals.last().map_or(0, |e| e.position);
                let mut body = json!({
                    "duplicate": true,
                    "position": position,
                    "version": d.version,
                    "events": originals,
                });
                if let Some(id) = d.runtime_id {
                    body["runtime_id"] = json!(id);
                }
                if let Some(nonce) = d.nonce {
                    body["nonce"] = json!(nonce);
                }
                return Ok((StatusCode::OK, Json(body)).into_response());
            }
            Decision::Coalesced { ticket, runtime_id } => {
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({"coalesced": true, "ticket": ticket, "runtime_id": runtime_id})),
                )
                    .into_response());
            }
            Decision::Refuse {
                ticket,
                expected_version,
                record,
                rejection,
            } => {
                let recorded = match append(w, ticket, expected_version, record, &actor, at).await {
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

async fn append(
    w: &WriteState,
    ticket: TicketId,
    expected_version: u64,
    data: Vec<events::EventData>,
    actor: &Actor,
    at: events::Timestamp,
) -> Result<events::Appended, LogError> {
    let started = Instant::now();
    let count = data.len();
    let request = AppendRequest {
        ticket,
        expected_version: Some(expected_version),
        events: data
            .into_iter()
            .map(|data| NewEvent {
                id: new_ulid(),
                recorded_at: at,
                actor: actor.clone(),
                data,
            })
            .collect(),
    };
    let appended = w.store.append(request).await?;
    w.shared.metrics.observe_append(started.elapsed(), count);
    Ok(appended)
}

pub fn result_body(appended: &events::Appended) -> Value {
    json!({
        "position": appended.last_position(),
        "version": appended.last_version(),
        "events": appended.events,
    })
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

// ---- request bodies (wire types; converted to commands by hand) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub umbrella: Option<bool>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    pub actor: Actor,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

pub async fn open(
    State(w): State<WriteState>,
    Body(b): Body<OpenBody>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&b.id)?;
    let cmd = Command::Open {
        ticket,
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
    execute(&w, cmd, b.actor, b.expected_version).await
}

/// Declares a body struct with `actor` and `expected_version` plus the given fields.
macro_rules! body {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(#[serde(default)] pub $field: $ty,)*
            pub actor: Actor,
            #[serde(default)]
            pub expected_version: Option<u64>,
        }
    };
}

body!(EditBody { title: Option<String>, description: Option<String>, priority: Option<Priority>, owner: Option<String> });
body!(CommentBody { body: String });
body!(LinkBody { relation: Option<Relation>, target: String });
body!(ParkBody { waiting_on: Vec<String>, reason: String });
body!(GateBody { gate: String, verdict: Option<GateVerdict>, commit: Option<String>, evidence: Option<String> });
body!(CloseBody { resolution: Option<Resolution>, commit: Option<String>, evidence: Option<String> });
body!(ReasonBody { reason: String, commit: Option<String> });
body!(TaskBody { task_id: Option<String>, title: String });
body!(TaskPatchBody { status: Option<TaskStatus> });
body!(DispatchBody {
    dispatch_key: String, agent: String, transport: Option<Transport>, profile: Option<String>,
    provider: Option<String>, model: Option<String>, tmux_target: Option<String>,
    process_id: Option<u32>, cwd: Option<String>, replace: bool,
});
body!(ReapBody { cause: Option<ReapCause>, evidence: Option<String> });
body!(SwitchBody { agent: Option<String>, profile: Option<String>, model: Option<String> });
body!(RetryBody { resume: bool });
body!(InputBody { text: String });
body!(ActivityBody { note: Option<String> });
body!(SignalBody { verdict: Option<Verdict>, nonce: Option<String>, payload: Option<String>, raw: Option<String> });
body!(HarvestBody {
    outcome: Option<HarvestOutcome>, exit_reason: Option<ExitReason>, turns: Option<u32>,
    cost_usd: Option<f64>, session_id: Option<String>, summary: Option<String>,
    claude_result: Option<Value>, codex_jsonl: Option<String>,
});

fn required<T>(value: Option<T>, field: &str) -> Result<T, AppError> {
    value.ok_or_else(|| {
        AppError::invalid(format!("missing field `{field}`")).with(json!({"field": field}))
    })
}

pub async fn edit(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<EditBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Edit {
        ticket: ticket_id(&id)?,
        edit: TicketEdited {
            title: b.title,
            description: b.description,
            priority: b.priority,
            owner: b.owner,
        },
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn comment(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<CommentBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Comment {
        ticket: ticket_id(&id)?,
        body: b.body,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn link(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<LinkBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Link {
        ticket: ticket_id(&id)?,
        relation: required(b.relation, "relation")?,
        target: b.target,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn unlink(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<LinkBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Unlink {
        ticket: ticket_id(&id)?,
        relation: required(b.relation, "relation")?,
        target: b.target,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn park(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<ParkBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Park {
        ticket: ticket_id(&id)?,
        waiting_on: b.waiting_on,
        reason: b.reason,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn gate(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<GateBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Gate {
        ticket: ticket_id(&id)?,
        gate: GateRecorded {
            gate: b.gate,
            verdict: required(b.verdict, "verdict")?,
            commit: b.commit,
            evidence: b.evidence,
        },
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn close(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<CloseBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Close {
        ticket: ticket_id(&id)?,
        close: TicketClosed {
            resolution: required(b.resolution, "resolution")?,
            commit: b.commit,
            evidence: b.evidence,
        },
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn reopen(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<ReasonBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Reopen {
        ticket: ticket_id(&id)?,
        reason: b.reason,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn add_task(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<TaskBody>,
) -> Result<Response, AppError> {
    let cmd = Command::AddTask {
        ticket: ticket_id(&id)?,
        task_id: b.task_id,
        title: b.title,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn update_task(
    State(w): State<WriteState>,
    Path((id, task_id)): Path<(String, String)>,
    Body(b): Body<TaskPatchBody>,
) -> Result<Response, AppError> {
    let cmd = Command::UpdateTask {
        ticket: ticket_id(&id)?,
        task_id,
        status: required(b.status, "status")?,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn dispatch(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<DispatchBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Dispatch {
        ticket: ticket_id(&id)?,
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
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn signal(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<SignalBody>,
) -> Result<Response, AppError> {
    let cmd = match b.raw {
        Some(raw) => {
            if b.verdict.is_some() || b.nonce.is_some() || b.payload.is_some() {
                return Err(AppError::invalid(
                    "send either {raw} or {verdict, nonce, payload}, not both",
                ));
            }
            raw_signal(&w, rt, &raw)?
        }
        None => Command::Signal {
            runtime_id: rt,
            verdict: required(b.verdict, "verdict")?,
            nonce: required(b.nonce, "nonce")?,
            payload: b.payload.unwrap_or_default(),
        },
    };
    execute(&w, cmd, b.actor, b.expected_version).await
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
    let Some(found) = crate::ingest::signal::parse(raw, Some(&current)) else {
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

pub async fn harvest(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<HarvestBody>,
) -> Result<Response, AppError> {
    let structured = b.outcome.is_some()
        || b.exit_reason.is_some()
        || b.turns.is_some()
        || b.cost_usd.is_some()
        || b.session_id.is_some()
        || b.summary.is_some();
    let forms = [
        structured,
        b.claude_result.is_some(),
        b.codex_jsonl.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() > 1 {
        return Err(AppError::invalid(
            "send exactly one of {outcome, exit_reason, …}, {claude_result} or {codex_jsonl}",
        ));
    }
    let report = if let Some(result) = &b.claude_result {
        crate::ingest::harvest::classify_claude(result)
    } else if let Some(jsonl) = &b.codex_jsonl {
        let codex = crate::ingest::harvest::classify_codex(jsonl);
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
        }
    };
    let cmd = Command::Harvest {
        runtime_id: rt,
        report,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn reap(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<ReapBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Reap {
        runtime_id: rt,
        cause: required(b.cause, "cause")?,
        evidence: b.evidence,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn kill(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<ReasonBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Kill {
        runtime_id: rt,
        reason: b.reason,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn cancel(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<ReasonBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Cancel {
        runtime_id: rt,
        reason: b.reason,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn complete(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<ReasonBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Complete {
        runtime_id: rt,
        reason: b.reason,
        commit: b.commit,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn switch(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<SwitchBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Switch {
        runtime_id: rt,
        agent: b.agent,
        profile: b.profile,
        model: b.model,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn retry(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<RetryBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Retry {
        runtime_id: rt,
        resume: b.resume,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn input(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<InputBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Input {
        runtime_id: rt,
        text: b.text,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

pub async fn activity(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<ActivityBody>,
) -> Result<Response, AppError> {
    let cmd = Command::Activity {
        runtime_id: rt,
        note: b.note,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

body!(AbortBody { reason: String, detail: Option<String> });

/// Not in SPEC §7's list: the dispatcher's way to record `runtime.launch_aborted` (a failed
/// model smoke test before the worker started, as in seed MC-4502).
pub async fn abort_launch(
    State(w): State<WriteState>,
    Path(rt): Path<String>,
    Body(b): Body<AbortBody>,
) -> Result<Response, AppError> {
    let cmd = Command::AbortLaunch {
        runtime_id: rt,
        reason: b.reason,
        detail: b.detail,
    };
    execute(&w, cmd, b.actor, b.expected_version).await
}

/// One event of a typed raw append: the stored vocabulary, with an optional client id
/// (import, retries) and time (import keeps the original).
#[derive(Debug, Deserialize)]
pub struct RawEvent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<events::Timestamp>,
    pub actor: Actor,
    #[serde(flatten)]
    pub data: events::EventData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppendBody {
    pub events: Vec<RawEvent>,
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// `POST /v1/tickets/{id}/events` (admin): appends typed events as they are, without a
/// decision — for import and repair. Event ids make it idempotent.
pub async fn raw_append(
    State(w): State<WriteState>,
    Path(id): Path<String>,
    Body(b): Body<RawAppendBody>,
) -> Result<Response, AppError> {
    let ticket = ticket_id(&id)?;
    let at = now();
    let request = AppendRequest {
        ticket,
        expected_version: b.expected_version,
        events: b
            .events
            .into_iter()
            .map(|e| NewEvent {
                id: e.id.unwrap_or_else(new_ulid),
                recorded_at: e.recorded_at.unwrap_or(at),
                actor: e.actor,
                data: e.data,
            })
            .collect(),
    };
    let started = Instant::now();
    let count = request.events.len();
    let appended = w.store.append(request).await?;
    w.shared.catch_up()?;
    if appended.duplicate {
        let mut body = result_body(&appended);
        body["duplicate"] = json!(true);
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    w.shared.metrics.observe_append(started.elapsed(), count);
    Ok((StatusCode::CREATED, Json(result_body(&appended))).into_response())
}

/// `POST /v1/admin/rebuild` (admin): refold, swap, snapshot, and say what changed.
pub async fn admin_rebuild(State(w): State<WriteState>) -> Result<Response, AppError> {
    let shared = w.shared.clone();
    let started = Instant::now();
    let (position, differences) = tokio::task::spawn_blocking(move || shared.rebuild())
        .await
        .map_err(|e| AppError::internal("rebuild task", e))?
        .map_err(|e| AppError::internal("rebuild", e))?;
    Ok(Json(json!({
        "position": position,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
        "differences": differences,
    }))
    .into_response())
}
