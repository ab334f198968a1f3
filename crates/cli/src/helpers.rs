//! The shell dispatchers' helpers, `mc-ledger signal` and `mc-ledger harvest`: send what a
//! worker left behind (pane text, a Claude result, Codex events) to the server, which
//! parses and classifies it, and print its answer in one line.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::watch::encode_component;
use client::Client;

/// The server's request body limit (SPEC §7).
const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Room left in a body for the actor and field names.
const PAYLOAD_BYTES_MAX: usize = BODY_BYTES_MAX - 8 * 1024;
/// What we read from a file or stdin before trimming it to the payload limit.
const INPUT_BYTES_MAX: u64 = 256 * 1024 * 1024;

pub(super) enum Harvest {
    Claude(PathBuf),
    Codex(PathBuf),
}

pub(super) fn signal(server: &str, runtime: &str, actor: &str, kind: &str) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("pipe the pane's text on stdin, e.g. `tmux capture-pane -p -J -t NAME | mc-ledger signal …`");
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(INPUT_BYTES_MAX)
        .read_to_end(&mut bytes)
        .context("reading stdin")?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim().is_empty() {
        bail!("stdin is empty: no pane text to signal");
    }
    // A verdict is at the bottom of a pane: when the scrollback is too big, keep its end.
    let (raw, dropped) = tail_within(&text, 0, PAYLOAD_BYTES_MAX);
    if dropped > 0 {
        say!("pane text is over the server's 1 MiB body limit: sent its last lines ({dropped} earlier lines left out)");
    }
    let body = json!({"raw": raw, "actor": {"name": actor, "kind": kind}});
    post(&client, runtime, "signals", &body)
}

pub(super) fn harvest(
    server: &str,
    runtime: &str,
    source: &Harvest,
    expected_version: Option<u64>,
    actor: &str,
    kind: &str,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let mut body = match source {
        Harvest::Claude(path) => claude_body(path)?,
        Harvest::Codex(path) => {
            let text = read_text(path)?;
            // The first line names the thread (`thread.started`); the outcome is in the
            // last ones. A long session keeps both ends.
            let (jsonl, dropped) = tail_within(&text, 1, PAYLOAD_BYTES_MAX);
            if dropped > 0 {
                say!(
                    "{} is over the server's 1 MiB body limit: sent its first line and last lines ({dropped} lines left out)",
                    path.display()
                );
            }
            json!({"codex_jsonl": jsonl})
        }
    };
    body["actor"] = json!({"name": actor, "kind": kind});
    if let Some(v) = expected_version {
        body["expected_version"] = json!(v);
    }
    post(&client, runtime, "harvest", &body)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(INPUT_BYTES_MAX)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What to send for a Claude file: `{claude_stream}` for `--output-format stream-json`
/// output (one JSON message per line; the tail is sent, the `result` line is the last),
/// `{claude_result}` for the single object or the `--verbose` array.
fn claude_body(path: &Path) -> anyhow::Result<Value> {
    let text = read_text(path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let is_stream = lines.len() > 1
        && serde_json::from_str::<Value>(text.trim()).is_err()
        && lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v.get("type").is_some());
    if !is_stream {
        return Ok(json!({"claude_result": claude_result(path)?}));
    }
    let (jsonl, dropped) = tail_within(&text, 0, PAYLOAD_BYTES_MAX);
    if dropped > 0 {
        say!(
            "{} is over the server's 1 MiB body limit: sent its last lines ({dropped} lines left out)",
            path.display()
        );
    }
    Ok(json!({"claude_stream": jsonl}))
}

/// Claude's `-p --output-format json` writes one result object; with `--verbose` it writes
/// an array of messages ending in it. An empty file (the CLI died before answering) is sent
/// as an empty object: a run with no result, which the server records as failed/no_result.
fn claude_result(path: &Path) -> anyhow::Result<Value> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        say!(
            "{} is empty: sending a result with nothing in it (no result)",
            path.display()
        );
        return Ok(json!({}));
    }
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let result = match value {
        Value::Object(_) => value,
        Value::Array(messages) => messages
            .into_iter()
            .rev()
            .find(|m| m["type"] == "result")
            .with_context(|| format!("{} holds no message of type \"result\"", path.display()))?,
        _ => bail!("{} is not a Claude result object", path.display()),
    };
    if result.to_string().len() > PAYLOAD_BYTES_MAX {
        bail!(
            "the result in {} is over the server's 1 MiB body limit",
            path.display()
        );
    }
    Ok(result)
}

/// The first `head` lines of `text` and as many of its last lines as fit in `budget` bytes
/// once JSON-encoded; returns the kept text and how many lines were left out.
pub(super) fn tail_within(text: &str, head: usize, budget: usize) -> (String, usize) {
    let encoded = |s: &str| serde_json::to_string(s).map_or(usize::MAX, |e| e.len());
    if encoded(text) <= budget {
        return (text.to_owned(), 0);
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let head = head.min(lines.len());
    let mut used: usize = lines[..head].iter().map(|l| encoded(l)).sum();
    let mut start = lines.len();
    while start > head {
        let cost = encoded(lines[start - 1]);
        if used.saturating_add(cost) > budget {
            break;
        }
        used += cost;
        start -= 1;
    }
    let kept: String = lines[..head]
        .iter()
        .chain(&lines[start..])
        .copied()
        .collect();
    (kept, start - head)
}

fn post(client: &Client, runtime: &str, what: &str, body: &Value) -> anyhow::Result<()> {
    if runtime.is_empty() {
        bail!("--runtime must not be empty");
    }
    let path = format!("/v1/runtimes/{}/{what}", encode_component(runtime));
    let r = client.post(&path, body)?;
    if r.status >= 400 || r.status < 200 {
        let code = r.body["code"].as_str().unwrap_or("error");
        let detail = r.body["detail"].as_str().unwrap_or("no detail");
        let recorded = r.body["recorded_position"]
            .as_u64()
            .map(|p| format!(" (the refusal is recorded at position {p})"))
            .unwrap_or_default();
        bail!("server answered {} {code}: {detail}{recorded}", r.status);
    }
    out!("{}", describe(r.status, &r.body));
    Ok(())
}

/// `4700 input and 8 output tokens, $0.0065` over a usage event's models.
fn usage_words(models: &Value) -> String {
    let models = models.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let sum = |k: &str| models.iter().filter_map(|m| m[k].as_u64()).sum::<u64>();
    let usd: Vec<f64> = models
        .iter()
        .filter_map(|m| m["cost_usd"].as_f64())
        .collect();
    let mut words = format!(
        "{} input and {} output tokens",
        sum("input_tokens"),
        sum("output_tokens")
    );
    if !usd.is_empty() {
        words.push_str(&format!(", ${:.4}", usd.iter().sum::<f64>()));
    }
    words
}

/// `201 appended runtime.signaled REVIEW to MC-4030 at position 42 (version 7)`.
pub(super) fn describe(status: u16, body: &Value) -> String {
    let events = body["events"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let what: Vec<String> = events
        .iter()
        .map(|e| {
            let d = &e["data"];
            let detail = match e["type"].as_str() {
                Some("runtime.signaled") => d["verdict"].as_str().map(str::to_owned),
                Some("runtime.harvested") => Some(format!(
                    "{}/{}",
                    d["outcome"].as_str().unwrap_or("?"),
                    d["exit_reason"].as_str().unwrap_or("?")
                )),
                Some("runtime.usage_recorded") => Some(usage_words(&d["models"])),
                _ => None,
            };
            let kind = e["type"].as_str().unwrap_or("event");
            detail.map_or_else(|| kind.to_owned(), |d| format!("{kind} {d}"))
        })
        .collect();
    let ticket = events
        .first()
        .and_then(|e| e["ticket"].as_str())
        .map(|t| format!(" to {t}"))
        .unwrap_or_default();
    let how = if body["duplicate"] == json!(true) {
        "duplicate, nothing appended:"
    } else {
        "appended"
    };
    format!(
        "{status} {how} {}{ticket} at position {} (version {})",
        if what.is_empty() {
            "nothing".to_owned()
        } else {
            what.join(", ")
        },
        body["position"],
        body["version"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_keeps_its_head_lines_and_tail() {
        let text = "first\nmiddle 1\nmiddle 2\nlast\n";
        assert_eq!(tail_within(text, 1, 1_000), (text.to_owned(), 0));
        // "first\n" and "last\n" cost 9 and 8 bytes JSON-encoded ("…\n" quoted).
        assert_eq!(tail_within(text, 1, 17), ("first\nlast\n".to_owned(), 2));
        assert_eq!(tail_within(text, 0, 8), ("last\n".to_owned(), 3));
    }

    #[test]
    fn answers_are_described_in_one_line() {
        let body = json!({"position": 42, "version": 7, "events": [
            {"type": "runtime.signaled", "ticket": "MC-4030", "data": {"verdict": "REVIEW"}}]});
        assert_eq!(
            describe(201, &body),
            "201 appended runtime.signaled REVIEW to MC-4030 at position 42 (version 7)"
        );
        let dup = json!({"duplicate": true, "position": 43, "version": 8, "events": [
            {"type": "runtime.harvested", "ticket": "MC-1",
             "data": {"outcome": "partial", "exit_reason": "max_turns"}}]});
        assert_eq!(
            describe(200, &dup),
            "200 duplicate, nothing appended: runtime.harvested partial/max_turns to MC-1 at position 43 (version 8)"
        );
    }
}
