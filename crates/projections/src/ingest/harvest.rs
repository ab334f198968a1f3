//! Classifies a worker's exit record (SPEC §5.2): a Claude Code `-p --output-format json`
//! result object, its `stream-json` lines, or the JSON lines of `codex exec --json`, into a
//! [`HarvestReport`].
//!
//! Both classifiers are total: any JSON value and any text gives a report (at worst
//! failed/no_result or failed/error), never a panic. Every kept string is bounded to what
//! `decide` accepts, so a strange record is still recorded rather than refused. The event
//! shapes relied on are listed in `docs/ingest.md`.

use crate::limits::{KEY_BYTES_MAX, NAME_BYTES_MAX, USAGE_MODELS_MAX};
use crate::HarvestReport;
use events::{ExitReason, HarvestOutcome, ModelUsage};
use serde_json::{Map, Value};

use super::bounded;

/// The summary kept from a result's text (its full text stays with the worker).
pub const SUMMARY_BYTES_MAX: usize = 2 * 1024;

fn report(outcome: HarvestOutcome, exit_reason: ExitReason) -> HarvestReport {
    HarvestReport {
        outcome,
        exit_reason,
        turns: None,
        cost_usd: None,
        session_id: None,
        summary: None,
        raw_subtype: None,
        usage: Vec::new(),
    }
}

fn summary(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| bounded(text, SUMMARY_BYTES_MAX).to_owned())
}

/// A session or thread id, if it is a string `decide` accepts (a cut id would be a wrong one).
fn session_id(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= KEY_BYTES_MAX)
        .map(str::to_owned)
}

/// A cost `decide` accepts: finite and not negative.
fn cost(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0)
}

fn turns(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// Claude Code's `-p --output-format stream-json` output: one JSON message per line (`system`
/// init, `assistant`, `user`, … as the Agent SDK's `SDKMessage` types), the last `result`
/// line deciding like the single object. Lines that are not JSON objects (a cut first line, a
/// stray log line) are skipped; no `result` line at all is failed/no_result.
pub fn classify_claude_stream(jsonl: &str) -> HarvestReport {
    let last_result =
        jsonl
            .lines()
            .rev()
            .find_map(|line| match serde_json::from_str::<Value>(line.trim()) {
                Ok(v @ Value::Object(_))
                    if v.get("type").and_then(Value::as_str) == Some("result") =>
                {
                    Some(v)
                }
                _ => None,
            });
    match last_result {
        Some(result) => classify_claude(&result),
        None => report(HarvestOutcome::Failed, ExitReason::NoResult),
    }
}

/// Claude Code's result: `{"type": "result", "subtype": …, "is_error": …, "num_turns": …,
/// "total_cost_usd": …, "session_id": …, "result": …}`. An array (`--verbose` prints every
/// message) is read for its last `type: result` element.
pub fn classify_claude(value: &Value) -> HarvestReport {
    let result = match value {
        Value::Object(map) => Some(map),
        Value::Array(items) => items.iter().rev().find_map(|v| match v {
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("result") => Some(m),
            _ => None,
        }),
        _ => None,
    };
    let Some(result) = result.filter(|m| looks_like_result(m)) else {
        return report(HarvestOutcome::Failed, ExitReason::NoResult);
    };
    let mut r = match result.get("subtype") {
        Some(Value::String(subtype)) => match subtype.as_str() {
            "success" => match result.get("is_error") {
                None | Some(Value::Null | Value::Bool(false)) => {
                    report(HarvestOutcome::Completed, ExitReason::Success)
                }
                // API errors arrive as a "success" with is_error true.
                Some(Value::Bool(true)) => report(HarvestOutcome::Failed, ExitReason::ApiError),
                // A success we cannot confirm is not a success.
                Some(_) => unknown(subtype),
            },
            "error_max_turns" => report(HarvestOutcome::Partial, ExitReason::MaxTurns),
            "error_max_budget_usd" => report(HarvestOutcome::Partial, ExitReason::MaxBudget),
            "error_during_execution" => report(HarvestOutcome::Failed, ExitReason::Error),
            other => unknown(other),
        },
        None | Some(Value::Null) => report(HarvestOutcome::Failed, ExitReason::Error),
        Some(other) => unknown(&other.to_string()),
    };
    r.turns = turns(result.get("num_turns"));
    // `cost_usd` was the field's name in early CLI versions.
    r.cost_usd = cost(result.get("total_cost_usd")).or_else(|| cost(result.get("cost_usd")));
    r.session_id = session_id(result.get("session_id"));
    r.usage = claude_usage(result);
    r.summary = match result.get("result") {
        Some(Value::String(text)) => summary(text),
        _ => errors_text(result.get("errors")),
    };
    r
}

/// A token count; anything else (absent, negative, a string) is 0.
fn tokens(m: &Map<String, Value>, key: &str) -> u64 {
    m.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Claude's spend: `modelUsage {<model>: {inputTokens, outputTokens, cacheReadInputTokens,
/// cacheCreationInputTokens, costUSD, …}}`, model by model; without it, the session's
/// `usage {input_tokens, output_tokens, cache_read_input_tokens,
/// cache_creation_input_tokens}` under no model name. Input counts cache reads and writes
/// too, as Codex's does. At most [`USAGE_MODELS_MAX`] models, names bounded, each once.
fn claude_usage(result: &Map<String, Value>) -> Vec<ModelUsage> {
    if let Some(Value::Object(models)) = result.get("modelUsage") {
        let mut usage: Vec<ModelUsage> = Vec::new();
        for (name, m) in models {
            let Value::Object(m) = m else { continue };
            let cached = tokens(m, "cacheReadInputTokens");
            let line = ModelUsage {
                model: Some(bounded(name, NAME_BYTES_MAX).to_owned()),
                input_tokens: tokens(m, "inputTokens")
                    .saturating_add(cached)
                    .saturating_add(tokens(m, "cacheCreationInputTokens")),
                cached_input_tokens: cached,
                output_tokens: tokens(m, "outputTokens"),
                cost_usd: cost(m.get("costUSD")),
            };
            add_model(&mut usage, line);
        }
        if !usage.is_empty() {
            return usage;
        }
    }
    match result.get("usage") {
        Some(Value::Object(u)) => {
            let cached = tokens(u, "cache_read_input_tokens");
            vec![ModelUsage {
                model: None,
                input_tokens: tokens(u, "input_tokens")
                    .saturating_add(cached)
                    .saturating_add(tokens(u, "cache_creation_input_tokens")),
                cached_input_tokens: cached,
                output_tokens: tokens(u, "output_tokens"),
                cost_usd: None,
            }]
        }
        _ => Vec::new(),
    }
}

/// Adds a model's line, merging it into one of the same (bounded) name, up to the limit.
fn add_model(usage: &mut Vec<ModelUsage>, line: ModelUsage) {
    if let Some(same) = usage.iter_mut().find(|u| u.model == line.model) {
        same.input_tokens = same.input_tokens.saturating_add(line.input_tokens);
        same.cached_input_tokens = same
            .cached_input_tokens
            .saturating_add(line.cached_input_tokens);
        same.output_tokens = same.output_tokens.saturating_add(line.output_tokens);
        same.cost_usd = match (same.cost_usd, line.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    } else if usage.len() < USAGE_MODELS_MAX {
        usage.push(line);
    }
}

/// An object that is (or claims to be) a result rather than some other message.
fn looks_like_result(m: &Map<String, Value>) -> bool {
    match m.get("type") {
        Some(Value::String(t)) => t == "result",
        _ => m.contains_key("subtype") || m.contains_key("is_error"),
    }
}

/// A subtype this classifier does not know (new CLI versions add them): failed/error, with
/// the subtype kept so the record says what really happened.
fn unknown(subtype: &str) -> HarvestReport {
    let mut r = report(HarvestOutcome::Failed, ExitReason::Error);
    r.raw_subtype = Some(bounded(subtype, NAME_BYTES_MAX).to_owned());
    r
}

/// Newer error results carry `errors: ["…"]` instead of a `result` text.
fn errors_text(v: Option<&Value>) -> Option<String> {
    let items = v?.as_array()?;
    let text: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    summary(&text.join("; "))
}

/// Token usage of a Codex run: its last `turn.completed`, which reports the thread's total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodexUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// A classified Codex stream, with what the report has no field for.
#[derive(Debug, Clone, PartialEq)]
pub struct CodexHarvest {
    pub report: HarvestReport,
    /// JSON-object lines read.
    pub events: usize,
    /// Non-empty lines that were not a JSON object (ignored).
    pub unparseable_lines: usize,
    pub usage: Option<CodexUsage>,
}

/// How a Codex turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnEnd {
    Completed,
    Failed,
    Interrupted,
}

/// `codex exec --json` output: `thread.started {thread_id}`, `turn.started`,
/// `item.started|updated|completed {item: {id, type, …}}`, `turn.completed {usage}`,
/// `turn.failed {error: {message}}`, `error {message}`. An interrupted turn has no event of
/// its own: the stream stops after `turn.started`. The older `{"msg": {"type": …}}` protocol
/// (`session_configured`, `task_started`, `task_complete`, `turn_aborted`, `error`) is read
/// too.
pub fn classify_codex(jsonl: &str) -> CodexHarvest {
    let mut events = 0;
    let mut unparseable_lines = 0;
    let mut thread_id = None;
    let mut turns_started: u32 = 0;
    let mut end: Option<TurnEnd> = None;
    // A turn has started and not ended; an `error` came while it was open.
    let mut open = false;
    let mut error_while_open = false;
    let mut last_message: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut usage: Option<CodexUsage> = None;
    let mut cost_usd = None;
    for line in jsonl.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
            unparseable_lines += 1;
            continue;
        };
        events += 1;
        // The older protocol wraps each event as {"id": …, "msg": {"type": …}}.
        let event = match event.get("msg") {
            Some(Value::Object(msg)) if !event.contains_key("type") => msg,
            _ => &event,
        };
        let str_field = |name: &str| event.get(name).and_then(Value::as_str);
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "thread.started" | "thread.resumed" => {
                thread_id = session_id(event.get("thread_id")).or(thread_id);
            }
            "session_configured" => {
                thread_id = session_id(event.get("session_id")).or(thread_id);
            }
            "turn.started" | "task_started" => {
                turns_started = turns_started.saturating_add(1);
                open = true;
                error_while_open = false;
            }
            "turn.completed" | "task_complete" => {
                end = Some(TurnEnd::Completed);
                open = false;
                // The thread's running total (codex-rs exec `usage_from_last_total`), not the
                // turn's: the last one is the whole run's.
                if let Some(Value::Object(u)) = event.get("usage") {
                    usage = Some(CodexUsage {
                        input_tokens: tokens(u, "input_tokens"),
                        cached_input_tokens: tokens(u, "cached_input_tokens"),
                        output_tokens: tokens(u, "output_tokens"),
                    });
                }
                if let Some(text) = str_field("last_agent_message") {
                    last_message = Some(text.to_owned());
                }
                cost_usd = cost(event.get("total_cost_usd"))
                    .or_else(|| cost(event.get("cost_usd")))
                    .or(cost_usd);
            }
            "turn.failed" => {
                end = Some(TurnEnd::Failed);
                open = false;
                let message = event
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str);
                if let Some(m) = message {
                    last_error = Some(m.to_owned());
                }
            }
            "error" => {
                end = Some(TurnEnd::Failed);
                error_while_open |= open;
                if let Some(m) = str_field("message") {
                    last_error = Some(m.to_owned());
                }
            }
            "turn.aborted" | "turn.interrupted" | "turn_aborted" => {
                end = Some(TurnEnd::Interrupted);
                open = false;
            }
            "item.completed" => {
                if let Some(Value::Object(item)) = event.get("item") {
                    let kind = item
                        .get("type")
                        .or_else(|| item.get("item_type"))
                        .and_then(Value::as_str);
                    if matches!(kind, Some("agent_message" | "assistant_message")) {
                        if let Some(text) = item.get("text").and_then(Value::as_str) {
                            last_message = Some(text.to_owned());
                        }
                    }
                }
            }
            "agent_message" => {
                if let Some(text) = str_field("message") {
                    last_message = Some(text.to_owned());
                }
            }
            _ => {}
        }
    }
    if open {
        // The stream stopped inside a turn: interrupted, unless an error said why.
        end = Some(if error_while_open {
            TurnEnd::Failed
        } else {
            TurnEnd::Interrupted
        });
    }
    let mut r = match end {
        Some(TurnEnd::Completed) => report(HarvestOutcome::Completed, ExitReason::Success),
        Some(TurnEnd::Failed) => report(HarvestOutcome::Failed, ExitReason::Error),
        Some(TurnEnd::Interrupted) => report(HarvestOutcome::Failed, ExitReason::Interrupted),
        None => report(HarvestOutcome::Failed, ExitReason::NoResult),
    };
    r.turns = (turns_started > 0).then_some(turns_started);
    r.session_id = thread_id;
    r.cost_usd = cost_usd;
    // Codex counts cached tokens inside input_tokens already.
    r.usage = usage
        .map(|u| ModelUsage {
            model: None,
            input_tokens: u.input_tokens,
            cached_input_tokens: u.cached_input_tokens.min(u.input_tokens),
            output_tokens: u.output_tokens,
            cost_usd: None,
        })
        .into_iter()
        .collect();
    r.summary = match end {
        Some(TurnEnd::Failed) => last_error.or(last_message),
        _ => last_message,
    }
    .as_deref()
    .and_then(summary);
    CodexHarvest {
        report: r,
        events,
        unparseable_lines,
        usage,
    }
}
