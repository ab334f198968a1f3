//! Raw signals and raw harvests over HTTP (`POST /v1/runtimes/{id}/signals` with `{raw}`,
//! `/harvest` with `{claude_result}` or `{codex_jsonl}`), driven through `app(state)`.

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

const SEED_000: &str =
    include_str!("../../projections/tests/fixtures/seeds/000_b11bb0a0c8a99654.txt");
/// Seed 000's nonce as the terminal wrapped it.
const SEED_WRAPPED_NONCE: &str = "MC_TICKET_TURN:4030:17795196\n68441:c133f12c";

struct Client {
    app: Router,
    _dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = api::server::open(dir.path()).expect("open");
        Client {
            app: api::server::app(opened.state),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, mut body: Value) -> (u16, Value) {
        body["actor"] = json!({"name": "watcher", "kind": "system"});
        self.call("POST", path, Some(body)).await
    }

    /// Opens `ticket` and dispatches a worker: (runtime id, nonce).
    async fn dispatch(&self, ticket: &str) -> (String, String) {
        let (status, _) = self
            .post("/v1/tickets", json!({"id": ticket, "title": "ingest"}))
            .await;
        assert_eq!(status, 201);
        let (status, d) = self
            .post(
                &format!("/v1/tickets/{ticket}/dispatch"),
                json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "tmux_target": "mc:1"}),
            )
            .await;
        assert_eq!(status, 201, "{d}");
        (
            d["runtime_id"].as_str().expect("runtime_id").to_owned(),
            d["nonce"].as_str().expect("nonce").to_owned(),
        )
    }

    /// Opens `ticket`, dispatches a worker and harvests `body` for it, answered 201:
    /// (runtime id, the answer).
    async fn harvested(&self, ticket: &str, body: Value) -> (String, Value) {
        let (rt, _) = self.dispatch(ticket).await;
        let (status, answer) = self.post(&format!("/v1/runtimes/{rt}/harvest"), body).await;
        assert_eq!(status, 201, "{ticket}: {answer}");
        (rt, answer)
    }

    async fn head(&self) -> usize {
        let (status, page) = self
            .call("GET", "/v1/events?after=0&limit=1000", None)
            .await;
        assert_eq!(status, 200);
        page["events"].as_array().expect("events").len()
    }

    async fn ticket_events(&self, ticket: &str) -> Vec<Value> {
        let (status, page) = self
            .call("GET", &format!("/v1/tickets/{ticket}/events"), None)
            .await;
        assert_eq!(status, 200);
        page["events"].as_array().expect("events").clone()
    }
}

/// Seed 000's pane with its nonce replaced by `nonce`, wrapped at the same column.
fn seed_pane(nonce: &str) -> String {
    let (a, b) = nonce.split_at(28);
    SEED_000.replace(SEED_WRAPPED_NONCE, &format!("{a}\n{b}"))
}

#[tokio::test]
async fn raw_signals() {
    let c = Client::new();
    let (rt, nonce) = c.dispatch("MC-4030").await;
    let signals = format!("/v1/runtimes/{rt}/signals");

    // Given the real pane of seed 000 for this turn, when posted raw, then REVIEW is recorded
    // with the runtime's nonce, read back across the terminal's wrap.
    let pane = seed_pane(&nonce);
    assert!(
        pane.contains(&format!("{}\n", &nonce[..28])),
        "the nonce is wrapped"
    );
    let (status, body) = c.post(&signals, json!({"raw": pane})).await;
    assert_eq!(status, 201, "{body}");
    let event = &body["events"][0];
    assert_eq!(event["type"], "runtime.signaled");
    assert_eq!(event["data"]["verdict"], "REVIEW");
    assert_eq!(event["data"]["nonce"], nonce.as_str());
    assert!(event["data"]["payload"]
        .as_str()
        .expect("payload")
        .starts_with("Workbench audit complete"));

    // The same pane again: a duplicate, nothing appended.
    let head = c.head().await;
    let (status, again) = c.post(&signals, json!({"raw": pane})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["events"][0]["position"], event["position"]);
    assert_eq!(c.head().await, head);

    // A bare verdict line is signed with the current nonce.
    let echo = "Use DONE:, REVIEW:, or QUESTION: when you need MC to reflect the next state.";
    let (status, body) = c
        .post(
            &signals,
            json!({"raw": format!("{echo}\n⏺ **QUESTION:** which branch?\n")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"][0]["data"]["verdict"], "QUESTION");
    assert_eq!(body["events"][0]["data"]["nonce"], nonce.as_str());
    assert_eq!(body["events"][0]["data"]["payload"], "which branch?");

    // No signal (the echoed instruction only): 422 no_signal, the log unchanged.
    let head = c.head().await;
    let (status, problem) = c
        .post(&signals, json!({"raw": format!("{echo}\n").repeat(5)}))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "no_signal");
    assert_eq!(c.head().await, head);

    // Exactly one form; an unknown runtime is 404.
    let (status, problem) = c
        .post(&signals, json!({"raw": "DONE: x", "verdict": "DONE"}))
        .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid")));
    let (status, problem) = c
        .post("/v1/runtimes/rt_missing/signals", json!({"raw": "DONE: x"}))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("runtime_not_found"))
    );
    assert_eq!(c.head().await, head);
}

#[tokio::test]
async fn a_raw_signal_of_an_earlier_turn_is_refused_and_recorded() {
    let c = Client::new();
    let (rt, old) = c.dispatch("MC-4031").await;
    // A switch issues a new nonce: the old one is stale from then on.
    let (status, _) = c
        .post(
            &format!("/v1/runtimes/{rt}/switch"),
            json!({"model": "opus"}),
        )
        .await;
    assert_eq!(status, 201);
    let pane = format!(
        "{}\n⏵⏵ bypass permissions on\n",
        json!({"mc_signal": "DONE", "nonce": old, "payload": "finished on the old model"})
    );
    let (status, problem) = c
        .post(&format!("/v1/runtimes/{rt}/signals"), json!({"raw": pane}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "stale_nonce");
    let events = c.ticket_events("MC-4031").await;
    let rejected = events.last().expect("an event");
    assert_eq!(rejected["type"], "runtime.signal_rejected");
    assert_eq!(rejected["data"]["reason"], "stale_nonce");
    assert_eq!(rejected["data"]["nonce"], old.as_str());
    assert_eq!(rejected["position"], problem["recorded_position"]);
}

#[tokio::test]
async fn raw_harvests() {
    let c = Client::new();
    let claude = |subtype: &str, is_error: bool| {
        json!({"claude_result": {
            "type": "result", "subtype": subtype, "is_error": is_error, "num_turns": 30,
            "result": "Stopped after 30 turns; the fix is half done.", "session_id": "sess-1",
            "total_cost_usd": 2.5,
        }})
    };
    let codex_done = [
        r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"All green."}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}"#,
    ]
    .join("\n");
    let codex_stopped = [
        r#"{"type":"thread.started","thread_id":"t-2"}"#,
        r#"{"type":"turn.started"}"#,
        "not json",
    ]
    .join("\n");
    let rows = [
        ("MC-5001", claude("success", false), "completed", "success"),
        (
            "MC-5002",
            claude("error_max_turns", true),
            "partial",
            "max_turns",
        ),
        ("MC-5003", claude("success", true), "failed", "api_error"),
        (
            "MC-5004",
            claude("a_future_subtype", true),
            "failed",
            "error",
        ),
        (
            "MC-5005",
            json!({"claude_result": "garbage"}),
            "failed",
            "no_result",
        ),
        (
            "MC-5006",
            json!({"codex_jsonl": codex_done}),
            "completed",
            "success",
        ),
        (
            "MC-5007",
            json!({"codex_jsonl": codex_stopped}),
            "failed",
            "interrupted",
        ),
    ];
    for (ticket, body, outcome, exit) in rows {
        let (rt, answer) = c.harvested(ticket, body.clone()).await;
        let data = &answer["events"][0]["data"];
        assert_eq!(answer["events"][0]["type"], "runtime.harvested", "{ticket}");
        assert_eq!(
            (data["outcome"].as_str(), data["exit_reason"].as_str()),
            (Some(outcome), Some(exit)),
            "{ticket}"
        );
        // The same record again is a duplicate.
        let path = format!("/v1/runtimes/{rt}/harvest");
        let (status, again) = c.post(&path, body).await;
        assert_eq!(
            (status, &again["duplicate"]),
            (200, &json!(true)),
            "{ticket}"
        );
        // The runtime view shows the exit.
        let (_, view) = c.call("GET", &format!("/v1/runtimes/{rt}"), None).await;
        assert_eq!(view["exit"]["outcome"], outcome, "{ticket}");
        match ticket {
            "MC-5002" => {
                assert_eq!(
                    (data["turns"].as_u64(), data["cost_usd"].as_f64()),
                    (Some(30), Some(2.5))
                );
                assert_eq!(data["session_id"], "sess-1");
                assert_eq!(
                    data["summary"],
                    "Stopped after 30 turns; the fix is half done."
                );
            }
            "MC-5004" => assert_eq!(data["raw_subtype"], "a_future_subtype"),
            "MC-5006" => {
                assert_eq!(data["session_id"], "0199a213-81c0-7800-8aa1-bbab2a035a53");
                assert_eq!(data["summary"], "All green.");
            }
            _ => {}
        }
    }

    // Exactly one form per request.
    let (rt, _) = c.dispatch("MC-5008").await;
    let head = c.head().await;
    let path = format!("/v1/runtimes/{rt}/harvest");
    for body in [
        json!({"claude_result": {"subtype": "success"}, "codex_jsonl": ""}),
        json!({"claude_result": {"subtype": "success"}, "outcome": "completed"}),
        json!({"codex_jsonl": "", "exit_reason": "success"}),
    ] {
        let (status, problem) = c.post(&path, body.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("invalid")),
            "{body}"
        );
    }
    assert_eq!(c.head().await, head);
}

/// Cost over HTTP: given a Claude stream and a Codex run harvested on two tickets under an
/// umbrella, then the ticket views, the umbrella's total, the board's cards and
/// `GET /v1/costs` show what they spent; a bad `group_by` is 400 and changes nothing.
#[tokio::test]
async fn harvests_cost_shows_on_tickets_board_and_costs() {
    let c = Client::new();
    let (status, _) = c
        .post(
            "/v1/tickets",
            json!({"id": "MC-6000", "title": "umbrella", "umbrella": true, "owner": "luci"}),
        )
        .await;
    assert_eq!(status, 201);
    let stream = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../projections/tests/fixtures/claude/stream_success.jsonl"
    ))
    .expect("fixture");
    let (_, answer) = c
        .harvested("MC-6001", json!({ "claude_stream": stream }))
        .await;
    let types: Vec<&str> = answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["runtime.harvested", "runtime.usage_recorded"]);
    let codex = [
        r#"{"type":"thread.started","thread_id":"t-1"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":4700,"cached_input_tokens":3000,"output_tokens":8}}"#,
    ]
    .join("\n");
    c.harvested("MC-6002", json!({ "codex_jsonl": codex }))
        .await;
    for child in ["MC-6001", "MC-6002"] {
        let (status, _) = c
            .post(
                &format!("/v1/tickets/{child}/links"),
                json!({"relation": "child_of", "target": "MC-6000"}),
            )
            .await;
        assert_eq!(status, 201);
    }

    let (_, t) = c.call("GET", "/v1/tickets/MC-6001", None).await;
    assert_eq!(
        t["cost"],
        json!({"usd": 0.4123, "input_tokens": 3100, "cached_input_tokens": 0, "output_tokens": 36, "runtimes": 1})
    );
    assert_eq!(t["cost_total"], Value::Null);
    let (_, t) = c.call("GET", "/v1/tickets/MC-6002", None).await;
    assert_eq!(
        t["cost"],
        json!({"usd": null, "input_tokens": 4700, "cached_input_tokens": 3000, "output_tokens": 8, "runtimes": 1}),
        "Codex reports tokens, no dollars"
    );
    let (_, u) = c.call("GET", "/v1/tickets/MC-6000", None).await;
    let total = json!({"usd": 0.4123, "input_tokens": 7800, "cached_input_tokens": 3000, "output_tokens": 44, "runtimes": 2});
    assert_eq!(u["cost_total"], total);
    let (_, board) = c.call("GET", "/v1/board", None).await;
    let card = board["open"]
        .as_array()
        .expect("open column")
        .iter()
        .find(|c| c["id"] == "MC-6000")
        .expect("umbrella card")
        .clone();
    assert_eq!(card["cost"], total);

    let (status, costs) = c.call("GET", "/v1/costs?group_by=model", None).await;
    assert_eq!(status, 200, "{costs}");
    assert_eq!(costs["group_by"], "model");
    assert_eq!(
        costs["groups"],
        json!([
            {"key": "claude-sonnet-4-5", "usd": 0.4123, "input_tokens": 3100, "cached_input_tokens": 0, "output_tokens": 36, "runtimes": 1},
            {"key": "unknown", "usd": null, "input_tokens": 4700, "cached_input_tokens": 3000, "output_tokens": 8, "runtimes": 1},
        ]),
        "Codex names no model and none was dispatched"
    );
    assert_eq!(costs["total"], total);
    let (_, by_agent) = c.call("GET", "/v1/costs", None).await;
    assert_eq!(by_agent["group_by"], "agent", "the default");
    assert_eq!(by_agent["groups"].as_array().map(Vec::len), Some(1));
    let head = c.head().await;
    for bad in ["/v1/costs?group_by=ticket", "/v1/costs?group=agent"] {
        let (status, problem) = c.call("GET", bad, None).await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }
    assert_eq!(c.head().await, head);
}
