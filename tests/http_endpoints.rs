//! Every write endpoint's happy path over a real socket, in one ticket's life, with the
//! status and the event type each appends; and the reads that list what was written.

mod common;

use common::*;
use serde_json::{json, Value};

struct Step {
    path: String,
    body: Value,
    status: u16,
    /// Types of the events appended, in order (empty for 200 duplicates and 202).
    appended: &'static [&'static str],
}

fn step(
    path: impl Into<String>,
    body: Value,
    status: u16,
    appended: &'static [&'static str],
) -> Step {
    Step {
        path: path.into(),
        body,
        status,
        appended,
    }
}

fn run(s: &TestServer, st: Step) -> Value {
    let r = post(s.addr, &st.path, &with_actor(st.body, "tester", "human"));
    assert_eq!(r.status, st.status, "POST {}: {}", st.path, r.body);
    let v = r.json();
    let types: Vec<&str> = v["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    if st.status == 201 {
        assert_eq!(types, st.appended, "POST {}", st.path);
    }
    v
}

#[test]
fn every_write_endpoint_happy_path() {
    let s = start_temp();
    run(
        &s,
        step(
            "/v1/tickets",
            json!({"id": "MC-1", "title": "parent", "umbrella": true}),
            201,
            &["ticket.opened"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets",
            json!({"id": "MC-2", "title": "work", "labels": ["x"]}),
            201,
            &["ticket.opened"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets",
            json!({"id": "MC-3", "title": "blocker"}),
            201,
            &["ticket.opened"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/edit",
            json!({"priority": "urgent"}),
            201,
            &["ticket.edited"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/links",
            json!({"relation": "child_of", "target": "MC-1"}),
            201,
            &["ticket.linked"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/links",
            json!({"relation": "blocked_by", "target": "MC-3"}),
            201,
            &["ticket.linked"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/unlink",
            json!({"relation": "blocked_by", "target": "MC-3"}),
            201,
            &["ticket.unlinked"],
        ),
    );
    let task = run(
        &s,
        step(
            "/v1/tickets/MC-2/tasks",
            json!({"task_id": "t1", "title": "Discovery"}),
            201,
            &["task.added"],
        ),
    );
    assert_eq!(task["events"][0]["data"]["task_id"], "t1");
    let r = request(
        s.addr,
        "PATCH",
        "/v1/tickets/MC-2/tasks/t1",
        Some(&with_actor(json!({"status": "done"}), "t", "human").to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    run(
        &s,
        step(
            "/v1/tickets/MC-2/comments",
            json!({"body": "hello"}),
            201,
            &["ticket.commented"],
        ),
    );
    let d = run(
        &s,
        step(
            "/v1/tickets/MC-2/dispatch",
            json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "tmux_target": "mc-2"}),
            201,
            &["runtime.dispatched"],
        ),
    );
    let (rt, nonce) = (
        d["runtime_id"].as_str().unwrap().to_owned(),
        d["nonce"].as_str().unwrap().to_owned(),
    );
    assert!(nonce.starts_with("MC_TICKET_TURN:2:"), "{nonce}");
    let dup = run(
        &s,
        step(
            "/v1/tickets/MC-2/dispatch",
            json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux"}),
            200,
            &[],
        ),
    );
    assert_eq!(
        (dup["duplicate"].clone(), dup["runtime_id"].as_str()),
        (json!(true), Some(rt.as_str()))
    );
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/activity"),
            json!({"note": "editing"}),
            201,
            &["runtime.activity"],
        ),
    );
    let coalesced = run(
        &s,
        step(format!("/v1/runtimes/{rt}/activity"), json!({}), 202, &[]),
    );
    assert_eq!(coalesced["coalesced"], true);
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/signals"),
            json!({"verdict": "QUESTION", "nonce": nonce, "payload": "which branch?"}),
            201,
            &["runtime.signaled"],
        ),
    );
    assert_eq!(
        get(s.addr, "/v1/tickets/MC-2").json()["state"],
        "needs_input"
    );
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/signals"),
            json!({"verdict": "QUESTION", "nonce": nonce, "payload": "which branch?"}),
            200,
            &[],
        ),
    );
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/input"),
            json!({"text": "main"}),
            201,
            &["runtime.input_sent"],
        ),
    );
    let sw = run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/switch"),
            json!({"model": "opus"}),
            201,
            &["runtime.switched"],
        ),
    );
    let new_nonce = sw["nonce"].as_str().unwrap().to_owned();
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
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/signals"),
            json!({"verdict": "DONE", "nonce": new_nonce, "payload": "done"}),
            201,
            &["runtime.signaled"],
        ),
    );
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/harvest"),
            json!({"outcome": "failed", "exit_reason": "error", "cost_usd": 0.5}),
            201,
            &["runtime.harvested"],
        ),
    );
    let retry = run(
        &s,
        step(
            format!("/v1/runtimes/{rt}/retry"),
            json!({}),
            201,
            &["runtime.dispatched"],
        ),
    );
    let rt2 = retry["runtime_id"].as_str().unwrap().to_owned();
    assert_eq!(retry["events"][0]["data"]["replaces"], json!(rt));
    assert_eq!(retry["events"][0]["data"]["attempt"], 2);
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt2}/kill"),
            json!({"reason": "operator"}),
            201,
            &["runtime.killed"],
        ),
    );
    let d3 = run(
        &s,
        step(
            "/v1/tickets/MC-2/dispatch",
            json!({"dispatch_key": "k3", "agent": "codex", "transport": "process", "process_id": 4242}),
            201,
            &["runtime.dispatched"],
        ),
    );
    let rt3 = d3["runtime_id"].as_str().unwrap().to_owned();
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt3}/cancel"),
            json!({"reason": "not needed"}),
            201,
            &["runtime.cancelled"],
        ),
    );
    let d4 = run(
        &s,
        step(
            "/v1/tickets/MC-2/dispatch",
            json!({"dispatch_key": "k4", "agent": "codex", "transport": "process"}),
            201,
            &["runtime.dispatched"],
        ),
    );
    let rt4 = d4["runtime_id"].as_str().unwrap().to_owned();
    // replace: true kills the live runtime in the same append.
    run(
        &s,
        step(
            "/v1/tickets/MC-2/dispatch",
            json!({"dispatch_key": "k5", "agent": "codex", "transport": "process", "replace": true}),
            201,
            &["runtime.killed", "runtime.dispatched"],
        ),
    );
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt4}/reap"),
            json!({"cause": "process_dead"}),
            201,
            &["runtime.reaped"],
        ),
    );
    let d6 = get(s.addr, "/v1/tickets/MC-2").json();
    let rt5 = d6["current_runtime"]["id"].as_str().unwrap().to_owned();
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt5}/complete"),
            json!({"reason": "controller finished it", "commit": "abc123"}),
            201,
            &["runtime.completed_by_controller"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/park",
            json!({"waiting_on": ["MC-3"], "reason": "blocked"}),
            201,
            &["ticket.parked"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/gates",
            json!({"gate": "review", "verdict": "changes_requested"}),
            201,
            &["ticket.gate_recorded"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/close",
            json!({"resolution": "done", "commit": "abc123"}),
            201,
            &["ticket.closed"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/comments",
            json!({"body": "comment on a closed ticket"}),
            201,
            &["ticket.commented"],
        ),
    );
    run(
        &s,
        step(
            "/v1/tickets/MC-2/reopen",
            json!({"reason": "regression"}),
            201,
            &["ticket.reopened"],
        ),
    );
    let d7 = run(
        &s,
        step(
            "/v1/tickets/MC-3/dispatch",
            json!({"dispatch_key": "w", "agent": "claude", "transport": "tmux"}),
            201,
            &["runtime.dispatched"],
        ),
    );
    let rt7 = d7["runtime_id"].as_str().unwrap().to_owned();
    run(
        &s,
        step(
            format!("/v1/runtimes/{rt7}/abort"),
            json!({"reason": "model_smoke_failed"}),
            201,
            &["runtime.launch_aborted"],
        ),
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
