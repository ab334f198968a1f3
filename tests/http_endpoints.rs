//! Every write endpoint's happy path over a real socket, in one ticket's life, with the
//! status and the event type each appends; and the reads that list what was written.

mod common;

use common::*;
use serde_json::{json, Value};

/// One step of a ticket's life, `[path, body, status, types]`: the body is posted to the path
/// with the standard actor and must answer the status; the types are those of the events
/// appended, in order (empty for 200 duplicates and 202). The answer's JSON.
fn run(s: &TestServer, step: &Value) -> Value {
    let (path, status) = (step[0].as_str().unwrap(), step[2].as_u64().unwrap());
    let r = post(
        s.addr,
        path,
        &with_actor(step[1].clone(), "tester", "human"),
    );
    assert_eq!(u64::from(r.status), status, "POST {path}: {}", r.body);
    let v = r.json();
    let types: Vec<&str> = v["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    if status == 201 {
        let appended: Vec<&str> = step[3]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(types, appended, "POST {path}");
    }
    v
}

/// Runs the steps (a JSON array of them) in order; their answers, in order.
fn run_all(s: &TestServer, steps: Value) -> Vec<Value> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|st| run(s, st))
        .collect()
}

/// The `runtime_id` a dispatch answered.
fn runtime_id(answer: &Value) -> String {
    answer["runtime_id"].as_str().unwrap().to_owned()
}

#[test]
fn every_write_endpoint_happy_path() {
    let s = start_temp();
    let opened = run_all(
        &s,
        json!([
            ["/v1/tickets", {"id": "MC-1", "title": "parent", "umbrella": true}, 201, ["ticket.opened"]],
            ["/v1/tickets", {"id": "MC-2", "title": "work", "labels": ["x"]}, 201, ["ticket.opened"]],
            ["/v1/tickets", {"id": "MC-3", "title": "blocker"}, 201, ["ticket.opened"]],
            ["/v1/tickets/MC-2/edit", {"priority": "urgent"}, 201, ["ticket.edited"]],
            ["/v1/tickets/MC-2/links", {"relation": "child_of", "target": "MC-1"}, 201, ["ticket.linked"]],
            ["/v1/tickets/MC-2/links", {"relation": "blocked_by", "target": "MC-3"}, 201, ["ticket.linked"]],
            ["/v1/tickets/MC-2/unlink", {"relation": "blocked_by", "target": "MC-3"}, 201, ["ticket.unlinked"]],
            ["/v1/tickets/MC-2/tasks", {"task_id": "t1", "title": "Discovery"}, 201, ["task.added"]]
        ]),
    );
    assert_eq!(opened[7]["events"][0]["data"]["task_id"], "t1");
    let r = request(
        s.addr,
        "PATCH",
        "/v1/tickets/MC-2/tasks/t1",
        Some(&with_actor(json!({"status": "done"}), "t", "human").to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let d = run_all(
        &s,
        json!([
            ["/v1/tickets/MC-2/comments", {"body": "hello"}, 201, ["ticket.commented"]],
            ["/v1/tickets/MC-2/dispatch", {"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "tmux_target": "mc-2"}, 201, ["runtime.dispatched"]]
        ]),
    );
    let (rt, nonce) = (
        runtime_id(&d[1]),
        d[1]["nonce"].as_str().unwrap().to_owned(),
    );
    assert!(nonce.starts_with("MC_TICKET_TURN:2:"), "{nonce}");
    let question = run_all(
        &s,
        json!([
            ["/v1/tickets/MC-2/dispatch", {"dispatch_key": "k1", "agent": "claude", "transport": "tmux"}, 200, []],
            [format!("/v1/runtimes/{rt}/activity"), {"note": "editing"}, 201, ["runtime.activity"]],
            [format!("/v1/runtimes/{rt}/activity"), {}, 202, []],
            [format!("/v1/runtimes/{rt}/signals"), {"verdict": "QUESTION", "nonce": nonce, "payload": "which branch?"}, 201, ["runtime.signaled"]]
        ]),
    );
    assert_eq!(
        (
            question[0]["duplicate"].clone(),
            question[0]["runtime_id"].as_str()
        ),
        (json!(true), Some(rt.as_str()))
    );
    assert_eq!(question[2]["coalesced"], true);
    assert_eq!(
        get(s.addr, "/v1/tickets/MC-2").json()["state"],
        "needs_input"
    );
    let answered = run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt}/signals"), {"verdict": "QUESTION", "nonce": nonce, "payload": "which branch?"}, 200, []],
            [format!("/v1/runtimes/{rt}/input"), {"text": "main"}, 201, ["runtime.input_sent"]],
            [format!("/v1/runtimes/{rt}/switch"), {"model": "opus"}, 201, ["runtime.switched"]]
        ]),
    );
    let new_nonce = answered[2]["nonce"].as_str().unwrap().to_owned();
    assert_ne!(new_nonce, nonce);
    // The old nonce is stale now: 409 and a recorded rejection.
    let r = post(
        s.addr,
        &format!("/v1/runtimes/{rt}/signals"),
        &with_actor(
            json!({"verdict": "DONE", "nonce": nonce, "payload": "x"}),
            "a",
            "agent",
        ),
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (409, json!("stale_nonce"))
    );
    let retried = run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt}/signals"), {"verdict": "DONE", "nonce": new_nonce, "payload": "done"}, 201, ["runtime.signaled"]],
            [format!("/v1/runtimes/{rt}/harvest"), {"outcome": "failed", "exit_reason": "error", "cost_usd": 0.5}, 201, ["runtime.harvested"]],
            [format!("/v1/runtimes/{rt}/retry"), {}, 201, ["runtime.dispatched"]]
        ]),
    );
    let retry = &retried[2];
    let rt2 = runtime_id(retry);
    assert_eq!(retry["events"][0]["data"]["replaces"], json!(rt));
    assert_eq!(retry["events"][0]["data"]["attempt"], 2);
    let d3 = run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt2}/kill"), {"reason": "operator"}, 201, ["runtime.killed"]],
            ["/v1/tickets/MC-2/dispatch", {"dispatch_key": "k3", "agent": "codex", "transport": "process", "process_id": 4242}, 201, ["runtime.dispatched"]]
        ]),
    );
    let rt3 = runtime_id(&d3[1]);
    let d4 = run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt3}/cancel"), {"reason": "not needed"}, 201, ["runtime.cancelled"]],
            ["/v1/tickets/MC-2/dispatch", {"dispatch_key": "k4", "agent": "codex", "transport": "process"}, 201, ["runtime.dispatched"]]
        ]),
    );
    let rt4 = runtime_id(&d4[1]);
    // replace: true kills the live runtime in the same append.
    run_all(
        &s,
        json!([
            ["/v1/tickets/MC-2/dispatch", {"dispatch_key": "k5", "agent": "codex", "transport": "process", "replace": true}, 201, ["runtime.killed", "runtime.dispatched"]],
            [format!("/v1/runtimes/{rt4}/reap"), {"cause": "process_dead"}, 201, ["runtime.reaped"]]
        ]),
    );
    let d6 = get(s.addr, "/v1/tickets/MC-2").json();
    let rt5 = d6["current_runtime"]["id"].as_str().unwrap().to_owned();
    let d7 = run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt5}/complete"), {"reason": "controller finished it", "commit": "abc123"}, 201, ["runtime.completed_by_controller"]],
            ["/v1/tickets/MC-2/park", {"waiting_on": ["MC-3"], "reason": "blocked"}, 201, ["ticket.parked"]],
            ["/v1/tickets/MC-2/gates", {"gate": "review", "verdict": "changes_requested"}, 201, ["ticket.gate_recorded"]],
            ["/v1/tickets/MC-2/close", {"resolution": "done", "commit": "abc123"}, 201, ["ticket.closed"]],
            ["/v1/tickets/MC-2/comments", {"body": "comment on a closed ticket"}, 201, ["ticket.commented"]],
            ["/v1/tickets/MC-2/reopen", {"reason": "regression"}, 201, ["ticket.reopened"]],
            ["/v1/tickets/MC-3/dispatch", {"dispatch_key": "w", "agent": "claude", "transport": "tmux"}, 201, ["runtime.dispatched"]]
        ]),
    );
    let rt7 = runtime_id(&d7[6]);
    run_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt7}/abort"), {"reason": "model_smoke_failed"}, 201, ["runtime.launch_aborted"]]
        ]),
    );
    // Raw typed append (admin scope; the test server has no tokens).
    // Each raw event names its own actor; the body has none.
    let raw = json!({"events": [{"id": "imported-1", "type": "ticket.commented", "data": {"body": "imported"}, "actor": {"name": "import", "kind": "system"}}]});
    let r = post(s.addr, "/v1/tickets/MC-3/events", &raw);
    assert_eq!(
        (r.status, r.json()["events"][0]["type"].clone()),
        (201, json!("ticket.commented")),
        "{}",
        r.body
    );
    let again = post(s.addr, "/v1/tickets/MC-3/events", &raw);
    assert_eq!(
        (again.status, again.json()["duplicate"].clone()),
        (200, json!(true))
    );
    let bad = post(
        s.addr,
        "/v1/tickets/MC-3/events",
        &json!({"events": [{"type": "ticket.exploded", "data": {}, "actor": {"name": "x", "kind": "system"}}]}),
    );
    assert_eq!(bad.status, 422, "{}", bad.body);

    // Reads list what was written.
    let t = get(s.addr, "/v1/tickets/MC-2").json();
    assert_eq!(t["state"], "open");
    assert_eq!(t["tasks"]["items"][0]["status"], "done");
    assert_eq!(t["comment_count"], 2);
    assert_eq!(
        get(s.addr, "/v1/tickets/MC-2/comments").json()["comments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        get(s.addr, "/v1/runtimes?ticket=MC-2").json()["runtimes"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let page = get(s.addr, "/v1/tickets?limit=2").json();
    assert_eq!(
        (
            page["tickets"].as_array().unwrap().len(),
            page["next_cursor"].clone()
        ),
        (2, json!("MC-2"))
    );
    let rest = get(s.addr, "/v1/tickets?cursor=MC-2").json();
    assert_eq!(rest["tickets"][0]["id"], "MC-3");
    assert_eq!(
        get(s.addr, "/v1/tickets?parent=MC-1").json()["tickets"][0]["id"],
        "MC-2"
    );
    assert_eq!(
        get(s.addr, "/v1/tickets?failing=true").json()["tickets"][0]["id"],
        "MC-3"
    );
    let board = get(s.addr, "/v1/board").json();
    assert_eq!(board["open"].as_array().unwrap().len(), 3);
    assert_eq!(board["totals"]["open"], 3);
    let capped = get(s.addr, "/v1/board?closed_limit=0").json();
    assert_eq!(
        capped["totals"], board["totals"],
        "the cap never changes the totals"
    );
    let alerts = get(s.addr, "/v1/alerts").json();
    assert!(alerts["alerts"].as_array().is_some());
    let verify = get(s.addr, "/v1/admin/verify").json();
    assert_eq!(verify["ok"], true);
    let rebuilt = post(s.addr, "/v1/admin/rebuild", &json!({}));
    assert_eq!(
        (rebuilt.status, rebuilt.json()["differences"].clone()),
        (200, json!([]))
    );
    assert_eq!(get(s.addr, "/readyz").json()["status"], "ready");
}
