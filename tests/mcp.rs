//! `mc-ledger mcp` (SPEC §19) driven by the official MCP TypeScript SDK's client
//! (`tests/mcp/client.mjs`; npm `@modelcontextprotocol/sdk`, installed into target/mcp-client by
//! scripts/install-mcp-client.sh, which scripts/test.sh runs): it lists the six tools and calls
//! each against a real server with tokens, as a runtime's agent with the runtime's token. Given
//! the runtime token, then every tool works on its own ticket, signed with the current nonce and
//! recorded as the runtime's agent; given another runtime's id, a validator's token, or the
//! token of a runtime that has ended, then the API's refusal comes back as a tool error with its
//! problem detail and nothing is recorded.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn client_dir() -> PathBuf {
    let dir = std::env::var_os("MC_LEDGER_MCP_CLIENT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-client"),
        PathBuf::from,
    );
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk/package.json")
            .exists(),
        "the MCP SDK is missing in {}: run scripts/install-mcp-client.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// Runs the SDK client against `mc-ledger mcp` for `runtime` with `token`; the client's report.
fn mcp(addr: std::net::SocketAddr, runtime: &str, token: &str, calls: &Value) -> Value {
    let out = run_ok(
        Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.mjs"))
            .arg(calls.to_string())
            .args(["--", env!("CARGO_BIN_EXE_mc-ledger"), "mcp"])
            .env("MCP_CLIENT_DIR", client_dir())
            .env("MC_LEDGER_SERVER", format!("http://{addr}"))
            .env("MC_LEDGER_RUNTIME", runtime)
            .env("MC_LEDGER_TOKEN", token)
            .env("RUST_LOG", "warn"),
    );
    serde_json::from_slice(&out.stdout).expect("the client prints one JSON document")
}

struct Fixture {
    server: Child,
    admin: String,
    validator: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let admin = create_token(&data, "human", "admin", "ops");
        let validator = create_token(&data, "validator", "write", "val");
        Fixture {
            server: spawn_binary(&data),
            admin,
            validator,
            _dir: dir,
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        written(
            path,
            post_with_token(self.server.addr, path, &body, &self.admin),
        )
    }

    fn get(&self, path: &str) -> Value {
        request(self.server.addr, "GET", path, None, Some(&self.admin)).json()
    }

    /// (runtime id, runtime token, nonce) of a dispatch on `ticket`.
    fn dispatch(&self, ticket: &str, key: &str) -> (String, String, String) {
        let d = self.post(
            &format!("/v1/tickets/{ticket}/dispatch"),
            json!({"dispatch_key": key, "agent": "claude", "transport": "process"}),
        );
        let s = |k: &str| d[k].as_str().unwrap().to_owned();
        (s("runtime_id"), s("runtime_token"), s("nonce"))
    }

    fn events(&self, ticket: &str) -> Vec<Value> {
        self.get(&format!("/v1/tickets/{ticket}/events"))["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn head(&self) -> u64 {
        ready_head(self.server.addr)
    }
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"name": name, "arguments": arguments})
}

fn has_nonce(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("nonce") || m.values().any(has_nonce),
        Value::Array(a) => a.iter().any(has_nonce),
        _ => false,
    }
}

#[test]
fn the_sdk_client_lists_and_calls_every_tool_as_the_runtime_token_may() {
    let f = Fixture::new();
    f.post(
        "/v1/tickets",
        json!({"id": "MC-10", "title": "the umbrella", "umbrella": true}),
    );
    f.post(
        "/v1/tickets",
        json!({"id": "MC-1", "title": "the launcher", "description": "Fix the race."}),
    );
    f.post(
        "/v1/tickets/MC-1/links",
        json!({"relation": "child_of", "target": "MC-10"}),
    );
    f.post(
        "/v1/tickets",
        json!({"id": "MC-2", "title": "someone else's"}),
    );
    f.post(
        "/v1/tickets/MC-1/comments",
        json!({"body": "Mind the lock order."}),
    );
    let (rt, token, _) = f.dispatch("MC-1", "k1");
    let (other, _, _) = f.dispatch("MC-2", "k2");
    let report = mcp(
        f.server.addr,
        &rt,
        &token,
        &json!([
            call("ticket", json!({})),
            call(
                "add_task",
                json!({"title": "Reproduce the race", "task_id": "repro"})
            ),
            call(
                "update_task",
                json!({"task_id": "repro", "status": "in_progress"})
            ),
            call("comment", json!({"body": "Reproduced with two launchers."})),
            call(
                "question",
                json!({"question": "May I change the lock order?"})
            ),
            call(
                "signal",
                json!({"verdict": "REVIEW", "payload": "lock order fixed"})
            ),
        ]),
    );
    assert_eq!(report["server"]["name"], "mc-ledger");
    let mut tools = strs(report["tools"].as_array().unwrap(), "name");
    tools.sort_unstable();
    assert_eq!(
        tools,
        [
            "add_task",
            "comment",
            "question",
            "signal",
            "ticket",
            "update_task"
        ]
    );
    let signal_schema = &report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "signal")
        .unwrap()["inputSchema"];
    assert_eq!(
        signal_schema["required"],
        json!(["verdict"]),
        "{signal_schema}"
    );
    let calls = report["calls"].as_array().unwrap();
    for c in calls {
        assert_eq!(c["isError"], false, "{c}");
    }
    // `ticket`: the ticket, its parent, the comments; never a nonce.
    let ticket = &calls[0]["structuredContent"];
    assert_eq!(ticket["ticket"]["id"], "MC-1", "{ticket}");
    assert_eq!(ticket["ticket"]["description"], "Fix the race.");
    assert_eq!(ticket["parent"]["id"], "MC-10");
    assert_eq!(ticket["parent"]["title"], "the umbrella");
    assert_eq!(ticket["comments"][0]["body"], "Mind the lock order.");
    assert!(!has_nonce(ticket), "{ticket}");
    // What landed on MC-1: each as the runtime's agent, with its token.
    let ev = f.events("MC-1");
    let written: Vec<&Value> = ev
        .iter()
        .filter(|e| e["token_id"] == format!("rtk_{rt}"))
        .collect();
    assert_eq!(
        strs(written.iter().copied(), "type"),
        [
            "task.added",
            "task.updated",
            "ticket.commented",
            "runtime.signaled",
            "runtime.signaled"
        ]
    );
    for e in &written {
        assert_eq!(
            e["actor"],
            json!({"name": "claude", "kind": "agent"}),
            "{e}"
        );
    }
    let nonce = f.get(&format!("/v1/runtimes/{rt}"))["nonce"].clone();
    assert_eq!(written[3]["data"]["verdict"], "QUESTION");
    assert_eq!(
        written[3]["data"]["payload"],
        "May I change the lock order?"
    );
    assert_eq!(written[4]["data"]["verdict"], "REVIEW");
    for e in &written[3..] {
        assert_eq!(e["data"]["nonce"], nonce, "the current nonce: {e}");
    }
    assert_eq!(
        f.get("/v1/tickets/MC-1")["tasks"]["items"][0]["status"],
        "in_progress"
    );

    // Given the runtime token but another runtime's id: every tool is the API's 403.
    let before = f.head();
    let report = mcp(
        f.server.addr,
        &other,
        &token,
        &json!([
            call("ticket", json!({})),
            call("signal", json!({"verdict": "DONE", "payload": "not mine"})),
            call("comment", json!({"body": "not mine"})),
        ]),
    );
    for c in report["calls"].as_array().unwrap() {
        assert_eq!(c["isError"], true, "{c}");
        assert_eq!(c["structuredContent"]["code"], "not_permitted", "{c}");
        assert_eq!(c["structuredContent"]["status"], 403, "{c}");
    }
    assert_eq!(f.head(), before, "nothing recorded");

    // Given a validator's token: it may comment, not manage tasks or signal.
    let report = mcp(
        f.server.addr,
        &rt,
        &f.validator,
        &json!([
            call("add_task", json!({"title": "validators do not plan"})),
            call("signal", json!({"verdict": "DONE", "payload": "no"})),
        ]),
    );
    for c in report["calls"].as_array().unwrap() {
        assert_eq!(c["structuredContent"]["code"], "not_permitted", "{c}");
    }
    assert_eq!(f.head(), before, "nothing recorded");

    // A bad argument is the API's 4xx as a tool error; an unknown tool a protocol error.
    let report = mcp(
        f.server.addr,
        &rt,
        &token,
        &json!([
            call("update_task", json!({"task_id": "nope", "status": "done"})),
            call("add_task", json!({"title": " "})),
            call("no_such_tool", json!({})),
        ]),
    );
    let calls = report["calls"].as_array().unwrap();
    assert_eq!(
        calls[0]["structuredContent"]["code"], "task_not_found",
        "{}",
        calls[0]
    );
    assert_eq!(calls[1]["structuredContent"]["status"], 422, "{}", calls[1]);
    assert!(calls[2]["error"].is_string(), "{}", calls[2]);
    assert_eq!(f.head(), before, "nothing recorded");

    // The runtime ends: its token stops working, and so does its MCP server.
    f.post(
        &format!("/v1/runtimes/{rt}/kill"),
        json!({"reason": "stuck"}),
    );
    let before = f.head();
    let report = mcp(
        f.server.addr,
        &rt,
        &token,
        &json!([call(
            "signal",
            json!({"verdict": "DONE", "payload": "too late"})
        )]),
    );
    let c = &report["calls"][0];
    assert_eq!(c["isError"], true, "{c}");
    assert_eq!(c["structuredContent"]["code"], "token_expired", "{c}");
    assert_eq!(f.head(), before, "nothing recorded");
}
