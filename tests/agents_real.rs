//! The real agent CLIs, end to end (issue 13): Claude Code and Codex from npm
//! (`scripts/install-agents.sh`, which `scripts/test.sh` runs with the slow tests) against the
//! scripted model API of `tests/agents/model-api.mjs` on loopback, each started by
//! `mc-ledger run` (SPEC §19) in a real tmux session with its hooks (`settings.json`) or its
//! `notify` wired to `mc-ledger hook …`, and harvested at exit. What lands in the ledger is
//! checked: the signal from the hook, the session's end, the harvest and its cost. Behind
//! `MC_LEDGER_SLOW_TESTS=1` (CI sets it).

mod common;
#[path = "agents/rig.rs"]
mod rig;

use std::process::{Command, Stdio};

use common::*;
use rig::*;
use serde_json::{json, Value};

#[test]
fn claude_code_and_codex_report_to_the_ledger_through_their_hooks() {
    if std::env::var_os("MC_LEDGER_SLOW_TESTS").is_none() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (runs the real Claude Code and Codex CLIs)");
        return;
    }
    let claude = agents_bin().join("claude");
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(&dir.path().join("data"));
    let api = ModelApi::start();
    let tmux = Tmux(format!("mc-ledger-agents-{}", std::process::id()));
    let env = agent_env(dir.path(), &api, &tmux, &url_of(&server));
    for t in ["MC-1", "MC-2"] {
        let r = post(
            server.addr,
            "/v1/tickets",
            &json!({"id": t, "title": "launcher fix", "owner": "luci", "actor": {"name": "luci", "kind": "orchestrator"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    // Claude Code: Stop carries the signal, SessionEnd ends the session, the stream is harvested.
    let (rt, stdout) = dispatch("claude", "claude-sonnet-4-5", "MC-1", &env);
    assert!(
        stdout.contains("201 appended runtime.harvested completed/success, runtime.usage_recorded"),
        "{stdout}"
    );
    let ev = events(server.addr, "MC-1");
    let kinds = types(&ev);
    for kind in [
        "runtime.dispatched",
        "runtime.signaled",
        "runtime.session_ended",
        "runtime.harvested",
        "runtime.usage_recorded",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    let signal = ev.iter().find(|e| e["type"] == "runtime.signaled").unwrap();
    assert_eq!(signal["data"]["verdict"], "REVIEW");
    assert_eq!(signal["actor"], json!({"name": "claude", "kind": "agent"}));
    let ended = ev
        .iter()
        .find(|e| e["type"] == "runtime.session_ended")
        .unwrap();
    assert_eq!(ended["data"]["reason"], "other");
    let usage = ev
        .iter()
        .find(|e| e["type"] == "runtime.usage_recorded")
        .unwrap();
    let model = &usage["data"]["models"][0];
    assert_eq!(model["model"], "claude-sonnet-4-5", "{usage}");
    assert_eq!(model["cached_input_tokens"], 3000, "{usage}");
    let t = get(server.addr, "/v1/tickets/MC-1").json();
    assert_eq!(t["state"], "review", "{t}");
    assert_eq!(t["failure_reason"], Value::Null, "the hand-off rule: {t}");
    assert_eq!(t["cost"]["runtimes"], 1, "{t}");
    // Sonnet's prices: 1200 in at $3/M, 8 out at $15/M, 3000 cache reads at 0.1x, 500 writes
    // at 1.25x, as Claude Code itself computed them.
    assert_eq!(t["cost"]["usd"], 0.006495, "{t}");
    assert_eq!(t["cost"]["output_tokens"], 8, "{t}");
    assert_eq!(t["current_runtime"]["id"], rt.as_str());

    // Codex: notify (after the turn, without waiting) carries the signal; the JSONL is harvested.
    let (rt, stdout) = dispatch("codex", "gpt-5.5", "MC-2", &env);
    assert!(
        stdout.contains("201 appended runtime.harvested completed/success, runtime.usage_recorded"),
        "{stdout}"
    );
    wait_until("codex's notify", || {
        types(&events(server.addr, "MC-2")).contains(&"runtime.signaled".to_owned())
    });
    let ev = events(server.addr, "MC-2");
    let signal = ev.iter().find(|e| e["type"] == "runtime.signaled").unwrap();
    assert_eq!(signal["data"]["verdict"], "REVIEW");
    assert_eq!(signal["data"]["runtime_id"], rt.as_str());
    let t = get(server.addr, "/v1/tickets/MC-2").json();
    assert_eq!(t["state"], "review", "{t}");
    assert_eq!(
        t["cost"]["usd"],
        Value::Null,
        "Codex reports no dollars: {t}"
    );
    assert!(t["cost"]["input_tokens"].as_u64().unwrap() >= 1200, "{t}");

    for (group_by, want, why) in [
        ("agent", ["claude", "codex"], "one group an agent"),
        (
            "model",
            ["claude-sonnet-4-5", "gpt-5.5"],
            "Claude names its model; Codex's is the dispatch's",
        ),
    ] {
        let costs = get(server.addr, &format!("/v1/costs?group_by={group_by}")).json();
        let keys = strs(costs["groups"].as_array().unwrap(), "key");
        assert_eq!(keys, want, "by {group_by}: {why}: {costs}");
    }

    // SPEC §16: a reservation reaches Claude Code as --max-budget-usd; the run stops on it
    // (`error_max_budget_usd`), is harvested as partial/max_budget, and its spend lands in the
    // budget covering the ticket.
    let r = post(
        server.addr,
        "/v1/budgets",
        &json!({"name": "mc-4", "scope": {"kind": "ticket", "value": "MC-4"}, "limit_usd": 1.0,
                "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        server.addr,
        "/v1/tickets",
        &json!({"id": "MC-4", "title": "a capped run", "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let (rt, stdout) = dispatch_with(
        "claude",
        "claude-sonnet-4-5",
        "MC-4",
        &env,
        &["--max-budget-usd", "0.0001"],
    );
    assert!(
        stdout.contains("201 appended runtime.harvested partial/max_budget"),
        "{stdout}"
    );
    let runtime = get(server.addr, &format!("/v1/runtimes/{rt}")).json();
    assert_eq!(runtime["max_budget_usd"], 0.0001, "{runtime}");
    assert_eq!(runtime["exit"]["exit_reason"], "max_budget", "{runtime}");
    let budget = get(server.addr, "/v1/budgets/mc-4").json();
    assert_eq!(
        (
            budget["spent_usd"].as_f64(),
            budget["reserved_usd"].as_f64()
        ),
        (Some(0.006495), Some(0.0)),
        "Claude Code's own cost of the turn it stopped after: {budget}"
    );

    // SPEC §17: the real Claude Code CLI's Stop and SessionEnd hooks while the server is
    // stopped are spooled, and after it starts `hook flush` records each exactly once.
    let r = post(
        server.addr,
        "/v1/tickets",
        &json!({"id": "MC-3", "title": "hooks while down", "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        server.addr,
        "/v1/tickets/MC-3/dispatch",
        &json!({"dispatch_key": "down", "agent": "claude", "transport": "tmux", "tmux_target": "mc-3",
                "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let rt = r.json()["runtime_id"].as_str().unwrap().to_owned();
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    let spool = dir.path().join("spool");
    let settings = dir.path().join("hooks.json");
    let hook = json!([{"hooks": [{"type": "command",
        "command": format!("{} hook claude", env!("CARGO_BIN_EXE_mc-ledger"))}]}]);
    std::fs::write(
        &settings,
        json!({"hooks": {"Stop": hook, "SessionEnd": hook}}).to_string(),
    )
    .unwrap();
    run_ok(
        Command::new(&claude)
            .args(["-p", "Fix the launcher", "--model", "claude-sonnet-4-5"])
            .args(["--output-format", "json", "--settings"])
            .arg(&settings)
            .current_dir(workdir(&env))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("MC_LEDGER_RUNTIME", &rt)
            .env("MC_LEDGER_SPOOL", &spool)
            .env_remove("MC_LEDGER_TOKEN")
            .stdin(Stdio::null()),
    );
    let waiting: Vec<String> = spooled(&spool)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        waiting.iter().any(|w| w.contains("\\\"Stop\\\""))
            && waiting.iter().any(|w| w.contains("\\\"SessionEnd\\\"")),
        "Stop and SessionEnd spooled: {waiting:?}"
    );
    let mut server = spawn_binary(&dir.path().join("data"));
    let flush = |url: &str| {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
                .args(["hook", "flush", "--server", url])
                .env("MC_LEDGER_SPOOL", &spool)
                .env_remove("MC_LEDGER_TOKEN"),
        )
    };
    let url = format!("http://{}", server.addr);
    flush(&url);
    let again = flush(&url);
    assert!(String::from_utf8_lossy(&again.stdout).contains("delivered 0 hook(s)"));
    let kinds = types(&events(server.addr, "MC-3"));
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("runtime.signaled"), 1, "{kinds:?}");
    assert_eq!(count("runtime.session_ended"), 1, "{kinds:?}");
    assert_eq!(
        get(server.addr, "/v1/tickets/MC-3").json()["state"],
        "review"
    );
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}
