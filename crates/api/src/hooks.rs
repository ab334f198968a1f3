//! Agents as sources (SPEC §13): Claude Code's hook input and Codex's `notify` JSON, posted as
//! they come (`mc-ledger hook claude|codex` does it for the agent). Each known event becomes
//! the commands it means; anything else is accepted and ignored (202), so a new agent version
//! never gets a 4xx that would break it.
//!
//! Claude Code (hook input on stdin, per its hooks reference): `Stop` / `SubagentStop` with
//! `last_assistant_message` → activity, and that message's signal if it holds one (the raw
//! rules of §6, against the runtime's current nonce); `Notification` with `notification_type`
//! `permission_prompt` or `idle_prompt` → `runtime.input_requested`; `SessionEnd {reason}` →
//! `runtime.session_ended`; `PostToolUse` of `TodoWrite`, `TaskCreate` or `TaskUpdate` → the
//! agent's task list mirrored onto the ticket's tasks (SPEC §19, [`projections::ingest::todos`]:
//! only what changed, so the same list again is 202 with nothing appended; other tools' 202).
//! Codex (`notify` program argument): `agent-turn-complete` with
//! `last-assistant-message` → activity and its signal. A body that is not a JSON object is 422.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use events::{Actor, ActorKind};
use projections::Command;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::commands::{respond, IdempotencyKeyHeader, Writer};
use crate::error::AppError;
use crate::extract::{IdempotencyKey, Keyed, RuntimePath};
use crate::state::WriteState;
use service::clock::now;
use service::tokens::Caller;

/// 202: a hook event this server does not act on; nothing appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ignored {
    pub ignored: bool,
    /// The event's name as the agent sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

fn ignored(event: Option<&str>) -> Response {
    let body = Ignored {
        ignored: true,
        event: event.map(|e| projections::limits::excerpt(e, 64).to_owned()),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The writer of a hook's events: the token's actor, or (without tokens) the runtime's agent.
fn writer(
    w: &WriteState,
    caller: Option<&Caller>,
    runtime_id: &str,
    command: &Command,
) -> Result<Writer, AppError> {
    let agent = w
        .shared
        .read(|l| l.runtime_owner(runtime_id).map(|(_, a, _)| a.to_owned()));
    let actor = match (caller, agent) {
        (Some(_), _) => None,
        (None, Some(name)) => Some(Actor {
            name,
            kind: ActorKind::Agent,
        }),
        (None, None) => {
            return Err(projections::Rejection::RuntimeNotFound {
                runtime_id: projections::limits::excerpt(runtime_id, 128).to_owned(),
            }
            .into())
        }
    };
    Ok(Writer::of(&w.shared, caller, actor, command)?)
}

/// Runs a hook's commands in order, each with its writer. Every command is authorized before
/// the first is appended, so a hook that is refused anything appends nothing. With an
/// `Idempotency-Key` (the hook spool sends one derived from the payload), each command has a
/// part of it (by place, or for task commands by what it does: [`task_part`]), so a hook sent
/// again is recorded once.
async fn run(
    w: &WriteState,
    caller: Option<&Caller>,
    runtime_id: &str,
    commands: Vec<Command>,
    key: Option<&IdempotencyKey>,
) -> Result<Response, AppError> {
    let mut authorized = Vec::with_capacity(commands.len());
    for command in commands {
        let writer = writer(w, caller, runtime_id, &command)?;
        authorized.push((command, writer));
    }
    let mut answered = None;
    for (n, (command, writer)) in authorized.into_iter().enumerate() {
        let key = key.map(|k| match task_part(&command) {
            Some(name) => k.part_named(&name),
            None => k.part(n),
        });
        answered = Some(respond(
            w.execute(command, writer, None, key.as_ref()).await,
        )?);
    }
    answered.ok_or_else(|| AppError::internal("hook", "a hook with no command"))
}

/// A mirrored task list's commands are recomputed against the ticket on every try, so each is
/// keyed by what it does (a retry after a partial failure then skips only what landed).
fn task_part(command: &Command) -> Option<String> {
    match command {
        Command::AddTask { task_id, .. } => Some(format!("add {}", task_id.as_deref()?)),
        Command::UpdateTask {
            task_id, status, ..
        } => Some(format!("update {task_id} {status:?}")),
        _ => None,
    }
}

/// A turn ended: activity, then the message's signal when it holds one.
async fn turn_ended(
    w: &WriteState,
    caller: Option<&Caller>,
    runtime_id: &str,
    message: Option<&str>,
    key: Option<&IdempotencyKey>,
) -> Result<Response, AppError> {
    let mut commands = vec![Command::Activity {
        runtime_id: runtime_id.to_owned(),
        note: None,
    }];
    if let Some(message) = message.filter(|m| !m.trim().is_empty()) {
        w.shared.catch_up()?;
        let current = w
            .shared
            .read(|l| l.runtime_view(runtime_id, now(), &w.shared.config))
            .map(|v| v.nonce);
        if let Some(found) = projections::ingest::signal::parse(message, current.as_deref()) {
            commands.push(Command::Signal {
                runtime_id: runtime_id.to_owned(),
                verdict: found.verdict,
                nonce: found.nonce.or(current).unwrap_or_default(),
                payload: found.payload,
            });
        }
    }
    run(w, caller, runtime_id, commands, key).await
}

/// Claude Code's task list (`TodoWrite`, or `TaskCreate` / `TaskUpdate`): the commands that
/// bring the ticket's tasks up to it.
async fn task_list(
    w: &WriteState,
    caller: Option<&Caller>,
    runtime_id: &str,
    hook: &Value,
    key: Option<&IdempotencyKey>,
) -> Result<Response, AppError> {
    use projections::ingest::todos;
    let null = Value::Null;
    let field = |k: &str| hook.get(k).unwrap_or(&null);
    let todos = match text(hook, "tool_name") {
        Some("TodoWrite") => todos::parse(field("tool_input")),
        Some(tool) => todos::from_task_tool(
            tool,
            field("tool_input"),
            field("tool_response"),
            text(hook, "session_id").unwrap_or_default(),
        ),
        None => None,
    };
    let Some(todos) = todos else {
        return Ok(ignored(Some("PostToolUse")));
    };
    w.shared.catch_up()?;
    let commands = w.shared.read(|l| {
        let ticket = l.runtime_ticket(runtime_id)?.clone();
        let view = l.ticket_view(&ticket, now(), &w.shared.config)?;
        Some(projections::ingest::todos::mirror(
            &ticket,
            &view.tasks.items,
            &todos,
        ))
    });
    match commands {
        None => Err(projections::Rejection::RuntimeNotFound {
            runtime_id: projections::limits::excerpt(runtime_id, 128).to_owned(),
        }
        .into()),
        Some(c) if c.is_empty() => Ok(ignored(Some("PostToolUse"))),
        Some(c) => run(w, caller, runtime_id, c, key).await,
    }
}

/// Claude Code hook input, as the hook receives it on stdin.
#[utoipa::path(
    post, path = "/v1/runtimes/{id}/hooks/claude", operation_id = "claudeHook", tag = "runtimes",
    params(RuntimePath, IdempotencyKeyHeader), request_body(content = Object, description = "The hook's stdin JSON (`hook_event_name`, …)."),
    responses(
        (status = 201, description = "Recorded.", body = crate::commands::WriteResult),
        (status = 200, description = "Already recorded.", body = crate::commands::WriteResult),
        (status = 202, description = "Not acted on: `{ignored: true, event}` for an unknown event or a to-do list the tasks already match, or a heartbeat coalesced into an earlier one (`{coalesced: true, …}`).", body = Object),
    )
)]
pub async fn claude(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Path(p): Path<RuntimePath>,
    Keyed { body: hook, key }: Keyed<serde_json::Map<String, Value>>,
) -> Result<Response, AppError> {
    let hook = Value::Object(hook);
    let caller = caller.as_deref();
    let event = text(&hook, "hook_event_name");
    match event {
        Some("Stop" | "SubagentStop") => {
            turn_ended(
                &w,
                caller,
                &p.id,
                text(&hook, "last_assistant_message"),
                key.as_ref(),
            )
            .await
        }
        Some("Notification") => match text(&hook, "notification_type") {
            Some(kind @ ("permission_prompt" | "idle_prompt")) => {
                let command = Command::RequestInput {
                    runtime_id: p.id.clone(),
                    kind: kind.to_owned(),
                    message: text(&hook, "message")
                        .map(|m| projections::limits::excerpt(m, 4096).to_owned()),
                };
                run(&w, caller, &p.id, vec![command], key.as_ref()).await
            }
            _ => Ok(ignored(event)),
        },
        Some("PostToolUse") => task_list(&w, caller, &p.id, &hook, key.as_ref()).await,
        Some("SessionEnd") => {
            let reason = text(&hook, "reason").unwrap_or("other");
            let command = Command::EndSession {
                runtime_id: p.id.clone(),
                reason: projections::limits::excerpt(reason, 128).to_owned(),
            };
            run(&w, caller, &p.id, vec![command], key.as_ref()).await
        }
        _ => Ok(ignored(event)),
    }
}

/// Codex `notify` JSON, as Codex passes it to its notify program.
#[utoipa::path(
    post, path = "/v1/runtimes/{id}/hooks/codex", operation_id = "codexNotify", tag = "runtimes",
    params(RuntimePath, IdempotencyKeyHeader), request_body(content = Object, description = "The notify JSON (`type`, `last-assistant-message`, …)."),
    responses(
        (status = 201, description = "Recorded.", body = crate::commands::WriteResult),
        (status = 200, description = "Already recorded.", body = crate::commands::WriteResult),
        (status = 202, description = "Not acted on: `{ignored: true, event}` for an unknown type, or a heartbeat coalesced into an earlier one (`{coalesced: true, …}`).", body = Object),
    )
)]
pub async fn codex(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Path(p): Path<RuntimePath>,
    Keyed { body: notify, key }: Keyed<serde_json::Map<String, Value>>,
) -> Result<Response, AppError> {
    let notify = Value::Object(notify);
    let caller = caller.as_deref();
    match text(&notify, "type") {
        Some("agent-turn-complete") => {
            turn_ended(
                &w,
                caller,
                &p.id,
                text(&notify, "last-assistant-message"),
                key.as_ref(),
            )
            .await
        }
        other => Ok(ignored(other)),
    }
}
