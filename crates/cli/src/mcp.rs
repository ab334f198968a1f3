//! `mc-ledger mcp`: a Model Context Protocol server over stdio for the agent of one runtime
//! (SPEC §19), on the official Rust SDK (`rmcp`). It runs with the runtime's environment
//! (`MC_LEDGER_SERVER`, `MC_LEDGER_TOKEN`, `MC_LEDGER_RUNTIME`) and every tool is one or a few
//! calls of the HTTP API with that token, so it can do exactly what the runtime token may: a
//! refusal comes back as a tool error carrying the API's problem detail, and a runtime that has
//! ended is refused as the API refuses it (its token stops working).
//!
//! `signal` and `question` read the runtime's *current* turn nonce from the ledger at the
//! moment of the call and sign with it, so the agent never handles a nonce and can never send
//! a stale one (the seeds' W.8: a nonce copied from a prompt, stale after a `switch`).

use std::sync::Arc;

use anyhow::Context;
use client::{Client, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::schemars::{self, JsonSchema};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::watch::encode_component as segment;

/// The most comments `ticket` returns: the newest.
const COMMENTS_SHOWN: usize = 50;
/// The most children `ticket` describes (the rest by id only).
const CHILDREN_SHOWN: usize = 50;

/// Serves MCP on stdin/stdout until the client closes it.
pub(crate) fn serve(server: &str, runtime: &str) -> anyhow::Result<()> {
    if runtime.trim().is_empty() {
        anyhow::bail!("mc-ledger mcp needs the runtime: --runtime or MC_LEDGER_RUNTIME");
    }
    let client = Client::new(server)?;
    let ledger = Ledger {
        client: Arc::new(client),
        runtime: runtime.to_owned(),
        tool_router: Ledger::tool_router(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = ledger
            .serve(rmcp::transport::stdio())
            .await
            .context("the MCP client did not initialize")?;
        running.waiting().await.context("the MCP session")?;
        anyhow::Ok(())
    })
}

#[derive(Clone)]
struct Ledger {
    client: Arc<Client>,
    runtime: String,
    tool_router: ToolRouter<Ledger>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SignalArgs {
    /// DONE (finished), REVIEW (ready for a reviewer) or QUESTION (a person's answer needed);
    /// the API checks it.
    #[schemars(extend("enum" = ["DONE", "REVIEW", "QUESTION"]))]
    verdict: String,
    /// What was done, what to review, or the question: one or a few sentences.
    #[serde(default)]
    payload: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct QuestionArgs {
    /// The question for a person; the ticket waits for the answer.
    question: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct CommentArgs {
    /// The comment's text (Markdown).
    body: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddTaskArgs {
    /// What the task is, in a line.
    title: String,
    /// An id of your choosing (letters, digits, `-`); without one the ledger numbers it `T<n>`.
    #[serde(default)]
    task_id: Option<String>,
}

/// A task's status.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum TaskStatus {
    Open,
    InProgress,
    Done,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct UpdateTaskArgs {
    /// The task's id, as `ticket` lists it.
    task_id: String,
    /// open, in_progress or done.
    status: TaskStatus,
}

/// What the API answered, as a tool result: its JSON, an error carrying the problem detail
/// when it refused, or the reason it could not be reached.
fn result(answer: anyhow::Result<Response>) -> CallToolResult {
    match answer {
        Ok(r) if (200..300).contains(&r.status) => CallToolResult::structured(r.body),
        Ok(r) => CallToolResult::structured_error(r.body),
        Err(e) => CallToolResult::structured_error(json!({
            "title": "the ledger could not be reached",
            "detail": format!("{e:#}"),
        })),
    }
}

/// An answer's JSON on success, else the tool result to give back.
fn ok(answer: anyhow::Result<Response>) -> Result<Value, CallToolResult> {
    match answer {
        Ok(r) if (200..300).contains(&r.status) => Ok(r.body),
        other => Err(result(other)),
    }
}

/// Drops every `nonce` field: the agent never needs to see one.
fn without_nonces(v: &mut Value) {
    match v {
        Value::Object(fields) => {
            fields.remove("nonce");
            fields.values_mut().for_each(without_nonces);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nonces),
        _ => {}
    }
}

impl Ledger {
    /// Runs blocking API calls off the protocol's task.
    async fn blocking(
        &self,
        f: impl FnOnce(&Client, &str) -> CallToolResult + Send + 'static,
    ) -> CallToolResult {
        let client = self.client.clone();
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&client, &runtime))
            .await
            .unwrap_or_else(|e| {
                CallToolResult::structured_error(
                    json!({"title": "the tool failed", "detail": e.to_string()}),
                )
            })
    }
}

impl Ledger {
    /// Runs `f` with the runtime's ticket (its id as a path segment) and the body's actor.
    async fn on_ticket(
        &self,
        f: impl FnOnce(&Client, &str, Value) -> CallToolResult + Send + 'static,
    ) -> CallToolResult {
        self.blocking(move |c, rt| match ticket_and_actor(c, rt) {
            Ok((ticket, actor)) => f(c, &segment(&ticket), actor),
            Err(refused) => refused,
        })
        .await
    }

    /// `POST /v1/tickets/{ticket}/{what}` on the runtime's ticket, with the body `body` makes
    /// of the actor.
    async fn post_on_ticket(
        &self,
        what: &'static str,
        body: impl FnOnce(Value) -> Value + Send + 'static,
    ) -> CallToolResult {
        self.on_ticket(move |c, ticket, actor| {
            result(c.post(&format!("/v1/tickets/{ticket}/{what}"), &body(actor)))
        })
        .await
    }
}

/// The runtime's view, as its token may read it.
fn runtime_view(client: &Client, runtime: &str) -> Result<Value, CallToolResult> {
    ok(client.get(&format!("/v1/runtimes/{}", segment(runtime))))
}

/// The runtime's ticket id and the body's actor when the server has no tokens (with a token
/// the client leaves it out and the server records the token's).
fn ticket_and_actor(client: &Client, runtime: &str) -> Result<(String, Value), CallToolResult> {
    let view = runtime_view(client, runtime)?;
    let ticket = view["ticket"].as_str().unwrap_or_default().to_owned();
    let actor = json!({"name": view["agent"], "kind": "agent"});
    Ok((ticket, actor))
}

fn signal(client: &Client, runtime: &str, verdict: &str, payload: &str) -> CallToolResult {
    let view = match runtime_view(client, runtime) {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let body = json!({
        "verdict": verdict,
        "nonce": view["nonce"],
        "payload": payload,
        "actor": {"name": view["agent"], "kind": "agent"},
    });
    result(client.post(&format!("/v1/runtimes/{}/signals", segment(runtime)), &body))
}

/// The ticket with its comments, parent and children described.
fn ticket(client: &Client, runtime: &str) -> Result<Value, CallToolResult> {
    let (id, _) = ticket_and_actor(client, runtime)?;
    let path = format!("/v1/tickets/{}", segment(&id));
    let mut ticket = ok(client.get(&path))?;
    let mut comments = Vec::new();
    let mut after = 0u64;
    loop {
        let page = ok(client.get(&format!("{path}/comments?after={after}&limit=1000")))?;
        comments.extend(page["comments"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_u64() {
            Some(next) if next > after => after = next,
            _ => break,
        }
    }
    let skipped = comments.len().saturating_sub(COMMENTS_SHOWN);
    let summary = |id: &Value| -> Value {
        let Some(id) = id.as_str() else {
            return Value::Null;
        };
        match client.get(&format!("/v1/tickets/{}", segment(id))) {
            Ok(r) if r.status == 200 => json!({
                "id": id,
                "title": r.body["title"],
                "state": r.body["state"],
                "description": r.body["description"],
            }),
            _ => json!({"id": id}),
        }
    };
    let parent = summary(&ticket["parent"]);
    let children: Vec<Value> = ticket["children"]
        .as_array()
        .map(|c| c.iter().take(CHILDREN_SHOWN).map(&summary).collect())
        .unwrap_or_default();
    without_nonces(&mut ticket);
    Ok(json!({
        "ticket": ticket,
        "parent": parent,
        "children": children,
        "comments": comments.split_off(skipped),
        "earlier_comments": skipped,
        "runtime": runtime,
    }))
}

#[tool_router]
impl Ledger {
    /// Your ticket: title, description, state, parent and children, blockers, tasks, gates and
    /// the newest comments (a reviewer's notes among them).
    #[tool(
        name = "ticket",
        description = "Read your ticket: description, state, parent and children, blocked_by, comments, tasks and gates."
    )]
    async fn ticket(&self) -> CallToolResult {
        self.blocking(|c, rt| match ticket(c, rt) {
            Ok(v) => CallToolResult::structured(v),
            Err(refused) => refused,
        })
        .await
    }

    #[tool(
        name = "signal",
        description = "Report your verdict on the ticket: DONE (finished), REVIEW (ready for a reviewer) or QUESTION (you need a person's answer), with a short payload. The ledger signs it with your current turn; you never need a nonce."
    )]
    async fn signal(&self, Parameters(args): Parameters<SignalArgs>) -> CallToolResult {
        self.blocking(move |c, rt| signal(c, rt, &args.verdict, &args.payload))
            .await
    }

    #[tool(
        name = "question",
        description = "Ask a person a question; the ticket waits for the answer (a QUESTION signal)."
    )]
    async fn question(&self, Parameters(args): Parameters<QuestionArgs>) -> CallToolResult {
        self.blocking(move |c, rt| signal(c, rt, "QUESTION", &args.question))
            .await
    }

    #[tool(name = "comment", description = "Comment on your ticket.")]
    async fn comment(&self, Parameters(args): Parameters<CommentArgs>) -> CallToolResult {
        self.post_on_ticket(
            "comments",
            move |actor| json!({"body": args.body, "actor": actor}),
        )
        .await
    }

    #[tool(
        name = "add_task",
        description = "Add a task to your ticket's work plan (the same task id and title again changes nothing)."
    )]
    async fn add_task(&self, Parameters(args): Parameters<AddTaskArgs>) -> CallToolResult {
        self.post_on_ticket("tasks", move |actor| {
            let mut body = json!({"title": args.title, "actor": actor});
            if let Some(id) = args.task_id {
                body["task_id"] = json!(id);
            }
            body
        })
        .await
    }

    #[tool(
        name = "update_task",
        description = "Set the status of one of your ticket's tasks: open, in_progress or done."
    )]
    async fn update_task(&self, Parameters(args): Parameters<UpdateTaskArgs>) -> CallToolResult {
        self.on_ticket(move |c, ticket, actor| {
            let status = match args.status {
                TaskStatus::Open => "open",
                TaskStatus::InProgress => "in_progress",
                TaskStatus::Done => "done",
            };
            let body = json!({"status": status, "actor": actor});
            let path = format!("/v1/tickets/{ticket}/tasks/{}", segment(&args.task_id));
            result(c.patch(&path, &body))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Ledger {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mc-ledger", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The mission-control ledger of your ticket. Read it with `ticket`; report your \
                 verdict with `signal` (DONE, REVIEW or QUESTION) or ask with `question`; keep \
                 your work plan with `add_task` and `update_task`; leave notes with `comment`.",
            )
    }
}
