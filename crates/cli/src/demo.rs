//! `mc-ledger demo`: loads the seeds' stories (MC-4000, MC-4030, MC-4031, MC-4502) through the
//! HTTP handlers, in process, and prints each ticket after every step, so a newcomer sees the
//! five pickups collapse into one runtime and the failure banner appear and clear.

use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};
use tower::ServiceExt;

use api::server::{app, open_url};

struct Demo {
    router: axum::Router,
}

impl Demo {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024).await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Sends a command and prints what it did to the ticket.
    async fn step(
        &self,
        ticket: &str,
        what: &str,
        path: &str,
        body: Value,
        actor: (&str, &str),
    ) -> anyhow::Result<Value> {
        let mut body = body;
        body["actor"] = json!({"name": actor.0, "kind": actor.1});
        let (status, reply) = self.call(Method::POST, path, Some(body)).await?;
        if status >= 400 {
            anyhow::bail!("demo step {what:?} failed with {status}: {reply}");
        }
        let (_, view) = self
            .call(Method::GET, &format!("/v1/tickets/{ticket}"), None)
            .await?;
        let note = if reply["duplicate"] == json!(true) {
            "  (duplicate: nothing appended)"
        } else {
            ""
        };
        println!(
            "{ticket:<8} {what:<44} → {:<11} next: {:<8} failure_reason: {}{note}",
            view["state"].as_str().unwrap_or("?"),
            view["next_action"]["code"].as_str().unwrap_or("?"),
            view["failure_reason"].as_str().unwrap_or("null"),
        );
        Ok(reply)
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

pub fn run(data_dir: &Path) -> anyhow::Result<()> {
    run_url(&service::home::StoreUrl::Sled(data_dir.to_owned()))
}

/// Loads the demo into any store.
pub fn run_url(url: &service::home::StoreUrl) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let opened = open_url(url, store_sled::LogConfig::default())?;
        let demo = Demo { router: app(opened.state.clone()) };
        let (status, _) = demo.call(Method::GET, "/v1/tickets/MC-4000", None).await?;
        if status == 200 {
            anyhow::bail!("the demo tickets already exist in {}; use an empty store", url.describe());
        }
        let orch = ("luci", "orchestrator");
        let disp = ("mc-dispatcher", "system");
        let watcher = ("watcher", "system");
        let ctl = ("controller", "controller");

        println!("— MC-4000: an umbrella whose orchestrator console goes idle —");
        demo.step("MC-4000", "open (umbrella)", "/v1/tickets", json!({"id": "MC-4000", "title": "MC unified recovery loop", "umbrella": true, "owner": "luci"}), ("elmar", "human")).await?;
        let rt = demo.step("MC-4000", "dispatch orchestrator (websocket)", "/v1/tickets/MC-4000/dispatch", json!({"dispatch_key": "mc-4000-orchestrator", "agent": "luci", "transport": "websocket"}), disp).await?;
        demo.step("MC-4000", "reap idle_timeout: umbrella, no banner", &format!("/v1/runtimes/{}/reap", s(&rt, "runtime_id")), json!({"cause": "idle_timeout"}), watcher).await?;

        println!("— MC-4030: five pickups, one runtime; parked on MC-4031 —");
        demo.step("MC-4030", "open", "/v1/tickets", json!({"id": "MC-4030", "title": "MC Runtime Workbench/Console audit + fix loop", "priority": "high", "owner": "luci"}), orch).await?;
        demo.step("MC-4030", "link child_of MC-4000", "/v1/tickets/MC-4030/links", json!({"relation": "child_of", "target": "MC-4000"}), orch).await?;
        let mut rt = Value::Null;
        for i in 1..=5 {
            rt = demo.step("MC-4030", &format!("\"Ticket picked up\" #{i} (same dispatch key)"), "/v1/tickets/MC-4030/dispatch", json!({"dispatch_key": "pickup-mc-4030", "agent": "luci", "transport": "tmux", "tmux_target": "mc-4030", "profile": "claude_opus_1m_high"}), disp).await?;
        }
        let (rt30, nonce) = (s(&rt, "runtime_id"), s(&rt, "nonce"));
        demo.step("MC-4030", "REVIEW signal with the turn nonce", &format!("/v1/runtimes/{rt30}/signals"), json!({"verdict": "REVIEW", "nonce": nonce, "payload": "Workbench audit complete; 14 findings"}), ("luci", "agent")).await?;
        demo.step("MC-4031", "open Lane A worker ticket", "/v1/tickets", json!({"id": "MC-4031", "title": "Workbench/Console Lane A implementation", "owner": "luci"}), orch).await?;
        demo.step("MC-4031", "link child_of MC-4030", "/v1/tickets/MC-4031/links", json!({"relation": "child_of", "target": "MC-4030"}), orch).await?;
        demo.step("MC-4030", "link blocked_by MC-4031", "/v1/tickets/MC-4030/links", json!({"relation": "blocked_by", "target": "MC-4031"}), orch).await?;
        demo.step("MC-4030", "park waiting on MC-4031", "/v1/tickets/MC-4030/park", json!({"waiting_on": ["MC-4031"], "reason": "blocked_by MC-4031"}), orch).await?;
        demo.step("MC-4030", "reap terminal_state while waiting", &format!("/v1/runtimes/{rt30}/reap"), json!({"cause": "terminal_state"}), watcher).await?;
        let rt31 = demo.step("MC-4031", "dispatch worker", "/v1/tickets/MC-4031/dispatch", json!({"dispatch_key": "pickup-mc-4031", "agent": "luci", "transport": "tmux", "tmux_target": "mc-4031"}), disp).await?;
        demo.step("MC-4031", "DONE signal", &format!("/v1/runtimes/{}/signals", s(&rt31, "runtime_id")), json!({"verdict": "DONE", "nonce": s(&rt31, "nonce"), "payload": "Lane A shipped d2c50c1"}), ("luci", "agent")).await?;
        demo.step("MC-4031", "close done (d2c50c1)", "/v1/tickets/MC-4031/close", json!({"resolution": "done", "commit": "d2c50c1"}), orch).await?;
        demo.step("MC-4030", "(MC-4031 closed: ready to resume)", "/v1/tickets/MC-4030/comments", json!({"body": "MC-4031 landed; resuming for QA/docs/ship gate"}), orch).await?;
        demo.step("MC-4030", "orchestrator closes it", "/v1/tickets/MC-4030/close", json!({"resolution": "done"}), orch).await?;

        println!("— MC-4502: a banner appears and clears —");
        demo.step("MC-4502", "open", "/v1/tickets", json!({"id": "MC-4502", "title": "Harden Control Room CLI worker launch/liveness ledger", "priority": "high", "owner": "luci"}), ("telegram", "human")).await?;
        let codex = demo.step("MC-4502", "dispatch codex (process)", "/v1/tickets/MC-4502/dispatch", json!({"dispatch_key": "codex-smoke", "agent": "codex", "transport": "process", "model": "gpt-5.5"}), ctl).await?;
        demo.step("MC-4502", "launch aborted: model smoke test failed", &format!("/v1/runtimes/{}/abort", s(&codex, "runtime_id")), json!({"reason": "model_smoke_failed", "detail": "codex-cli rejects gpt-5.5 under ChatGPT OAuth"}), ctl).await?;
        let coder = demo.step("MC-4502", "dispatch coder (Claude Code in tmux)", "/v1/tickets/MC-4502/dispatch", json!({"dispatch_key": "coder-mc-4502", "agent": "claude", "transport": "tmux", "tmux_target": "mc-4502-runtime-hardening", "profile": "claude_opus_1m_high"}), ctl).await?;
        let rt02 = s(&coder, "runtime_id");
        demo.step("MC-4502", "reap tmux_missing: the banner appears", &format!("/v1/runtimes/{rt02}/reap"), json!({"cause": "tmux_missing", "evidence": "tmux has-session: can't find session"}), watcher).await?;
        demo.step("MC-4502", "harvest: max_turns partial (outranks reap)", &format!("/v1/runtimes/{rt02}/harvest"), json!({"outcome": "partial", "exit_reason": "max_turns", "turns": 200, "cost_usd": 14.2}), ctl).await?;
        demo.step("MC-4502", "completed by controller", &format!("/v1/runtimes/{rt02}/complete"), json!({"reason": "recovered max-turns partial work", "commit": "1bd1c48"}), ctl).await?;
        demo.step("MC-4502", "validator gate passed", "/v1/tickets/MC-4502/gates", json!({"gate": "validator", "verdict": "passed", "commit": "1bd1c48"}), ("validator", "validator")).await?;
        demo.step("MC-4502", "validator closes it", "/v1/tickets/MC-4502/close", json!({"resolution": "done", "commit": "1bd1c48"}), ("validator", "validator")).await?;

        opened.store.close()?;
        opened.state.read.shared.catch_up()?;
        opened.state.write.snapshots.save()?;
        let store = match url {
            service::home::StoreUrl::Sled(dir) => format!("--data-dir {}", dir.display()),
            service::home::StoreUrl::Postgres(_) => "--store …".to_owned(),
        };
        println!("\nloaded into {}. Try: mc-ledger replay MC-4502 {store}", url.describe());
        Ok(())
    })
}
