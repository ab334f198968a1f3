//! Issue 26, SPEC §12 amended: the five holes a probe found, each as a test that failed on
//! 85e0d3c, and a fuzz of random requests against a model of the permission table written
//! here from the SPEC, independently of `projections::permissions`.
//!
//! 1. An open event stream ends within 1 s of its token's revoke and of its runtime's end,
//!    and frees its slot (over a real socket).
//! 2. A plain `agent` token may not end or pause another runtime through the hook route.
//! 3. A repeated dispatch or retry answers `runtime_token` only to the token that made it.
//! 4. A refused hook appends nothing.
//! 5. A runtime token reads only its ticket, its runtime, the ticket's parent, children and
//!    blockers (and a stream filtered to them).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::auth::Scope;
use axum::http::StatusCode;
use axum::Router;
use events::ActorKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{json, Value};
use store::EventReader;

mod common;
#[path = "../../projections/tests/spec12/mod.rs"]
mod spec12;

use common::{
    assert_not_refused, home_with_admin, kind_name, logged_seed, send, token, write_tokens, KINDS,
};
use spec12::spec_allows;

struct Fixture {
    app: Router,
    head: Arc<dyn EventReader>,
    admin: String,
    /// By kind name: (id, secret) of a write token.
    tokens: BTreeMap<String, (String, String)>,
    _dir: tempfile::TempDir,
    _opened: api::server::Opened,
}

fn fixture() -> Fixture {
    let (dir, home, admin) = home_with_admin();
    let mut tokens = write_tokens(&home);
    tokens.insert(
        "reader".into(),
        token(&home, "reader", ActorKind::Human, Scope::Read, None),
    );
    tokens.insert(
        "orchestrator2".into(),
        token(
            &home,
            "orch-two",
            ActorKind::Orchestrator,
            Scope::Write,
            None,
        ),
    );
    let opened = api::server::open(dir.path()).unwrap();
    let app = api::server::app(opened.state.clone());
    let head = opened.state.read.shared.reader.clone();
    Fixture {
        app,
        head,
        admin,
        tokens,
        _dir: dir,
        _opened: opened,
    }
}

impl Fixture {
    fn secret(&self, name: &str) -> &str {
        &self.tokens[name].1
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, b) = send(&self.app, method, path, body, Some(&self.admin)).await;
        assert!(s.is_success(), "{method} {path}: {s} {b}");
        b
    }

    async fn open(&self, id: &str) {
        self.admin("POST", "/v1/tickets", Some(json!({"id": id, "title": "t"})))
            .await;
    }

    /// Dispatches a worker on a ticket with a token: (runtime id, nonce, runtime token).
    async fn dispatch_as(&self, secret: &str, ticket: &str, key: &str) -> (String, String, String) {
        let body = json!({"dispatch_key": key, "agent": "claude", "transport": "tmux"});
        let (s, b) = send(
            &self.app,
            "POST",
            &format!("/v1/tickets/{ticket}/dispatch"),
            Some(body),
            Some(secret),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        (
            b["runtime_id"].as_str().unwrap().to_owned(),
            b["nonce"].as_str().unwrap().to_owned(),
            b["runtime_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn dispatch(&self, ticket: &str, key: &str) -> (String, String, String) {
        let admin = self.admin.clone();
        self.dispatch_as(&admin, ticket, key).await
    }

    fn head(&self) -> u64 {
        self.head.head()
    }
}

fn hook(event: &str) -> Value {
    match event {
        "SessionEnd" => json!({"hook_event_name": "SessionEnd", "reason": "logout"}),
        "Notification" => {
            json!({"hook_event_name": "Notification", "notification_type": "permission_prompt"})
        }
        "Stop" => json!({"hook_event_name": "Stop"}),
        "StopDone" => {
            json!({"hook_event_name": "Stop", "last_assistant_message": "DONE: finished"})
        }
        // Claude Code's task list (SPEC §19): mirrored onto the runtime's ticket's tasks.
        "TodoWrite" => json!({
            "hook_event_name": "PostToolUse",
            "tool_name": "TodoWrite",
            "tool_input": {"todos": [{"content": "a step", "status": "in_progress", "activeForm": "Doing a step"}]},
        }),
        other => panic!("no hook {other}"),
    }
}

/// Finding 2: given a token of a kind (or a runtime token, its own runtime's or another's),
/// when it posts a hook event on a runtime, then it is allowed or 403 with nothing appended.
/// A `TodoWrite` becomes task commands on the runtime's ticket, authorized like any other.
#[tokio::test]
async fn only_the_runtime_itself_and_controllers_may_end_or_pause_a_runtime() {
    let f = fixture();
    // (who, hook event, on whose runtime, allowed)
    let rows: &[(&str, &str, &str, bool)] = &[
        ("agent", "SessionEnd", "other", false),
        ("agent", "Notification", "other", false),
        ("agent", "Stop", "other", true),
        ("validator", "SessionEnd", "other", false),
        ("validator", "Stop", "other", false),
        ("runtime", "SessionEnd", "other", false),
        ("runtime", "Notification", "other", false),
        ("runtime", "Notification", "own", true),
        ("runtime", "SessionEnd", "own", true),
        ("system", "Notification", "other", true),
        ("system", "SessionEnd", "other", true),
        ("controller", "SessionEnd", "other", true),
        ("orchestrator", "Notification", "other", true),
        ("human", "SessionEnd", "other", true),
        // An agent's task list is its own work plan (SPEC §19): its runtime token may mirror it
        // onto its ticket, not onto another's; a watcher may not write tasks at all.
        ("runtime", "TodoWrite", "own", true),
        ("runtime", "TodoWrite", "other", false),
        ("system", "TodoWrite", "other", false),
        ("validator", "TodoWrite", "other", false),
        ("agent", "TodoWrite", "other", true),
    ];
    for (n, (who, event, whose, allowed)) in rows.iter().enumerate() {
        let (mine, theirs) = (format!("MC-{}", 2 * n + 1), format!("MC-{}", 2 * n + 2));
        f.open(&mine).await;
        f.open(&theirs).await;
        let (own, _, own_token) = f.dispatch(&mine, "own").await;
        let (other, _, _) = f.dispatch(&theirs, "other").await;
        let target = if *whose == "own" { &own } else { &other };
        let secret = if *who == "runtime" {
            own_token.as_str()
        } else {
            f.secret(who)
        };
        let before = f.head();
        let (s, b) = send(
            &f.app,
            "POST",
            &format!("/v1/runtimes/{target}/hooks/claude"),
            Some(hook(event)),
            Some(secret),
        )
        .await;
        let case = format!("given a {who} token, when {event} on its {whose} runtime");
        if *allowed {
            assert!(s.is_success(), "{case}, then allowed: {s} {b}");
            assert!(f.head() > before, "{case}: recorded");
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "{case}, then refused: {b}");
            assert_eq!(b["code"], "not_permitted", "{case}: {b}");
            assert!(b["rule"].as_str().is_some_and(|r| !r.is_empty()), "{b}");
            assert_eq!(f.head(), before, "{case}: nothing appended");
        }
    }
    // The refused SessionEnd left the other runtime live and its ticket without a banner.
    let (s, b) = send(&f.app, "GET", "/v1/tickets/MC-2", None, Some(&f.admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["failure_reason"].is_null(), "{b}");
}

/// Finding 4: given a watcher's (system) token, when a Stop hook carries `DONE:` (a signal
/// it may not write), then 403 and neither the signal nor the activity is appended.
#[tokio::test]
async fn a_refused_hook_appends_nothing() {
    let f = fixture();
    f.open("MC-1").await;
    let (rt, _, _) = f.dispatch("MC-1", "k").await;
    for (path, body) in [
        (format!("/v1/runtimes/{rt}/hooks/claude"), hook("StopDone")),
        (
            format!("/v1/runtimes/{rt}/hooks/codex"),
            json!({"type": "agent-turn-complete", "last-assistant-message": "DONE: finished"}),
        ),
    ] {
        let before = f.head();
        let (s, b) = send(&f.app, "POST", &path, Some(body), Some(f.secret("system"))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        assert_eq!(b["action"], "signal", "{b}");
        assert_eq!(f.head(), before, "{path}: nothing appended");
    }
    // Without the signal the same token's Stop hook is activity, and is recorded.
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{rt}/hooks/claude"),
        Some(hook("Stop")),
        Some(f.secret("system")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

/// Finding 3: given a dispatch (and a retry) made by one token, when another token that may
/// dispatch repeats it (same dispatch key, or same Idempotency-Key), then it gets the
/// duplicate without `runtime_token`; the maker gets the same token again.
#[tokio::test]
async fn a_repeated_dispatch_answers_the_runtime_token_only_to_its_maker() {
    let f = fixture();
    f.open("MC-1").await;
    let maker = f.secret("orchestrator").to_owned();
    let other = f.secret("orchestrator2").to_owned();
    let (rt, nonce, minted) = f.dispatch_as(&maker, "MC-1", "once").await;
    let body = json!({"dispatch_key": "once", "agent": "claude", "transport": "tmux"});
    let path = "/v1/tickets/MC-1/dispatch";
    let (s, b) = send(&f.app, "POST", path, Some(body.clone()), Some(&other)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["duplicate"], true);
    assert_eq!(
        (b["runtime_id"].as_str(), b["nonce"].as_str()),
        (Some(rt.as_str()), Some(nonce.as_str()))
    );
    assert!(b.get("runtime_token").is_none(), "another caller: {b}");
    let (s, b) = send(
        &f.app,
        "POST",
        path,
        Some(body.clone()),
        Some(f.secret("human")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b.get("runtime_token").is_none(),
        "a human other than the maker: {b}"
    );
    let (s, b) = send(&f.app, "POST", path, Some(body), Some(&maker)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["runtime_token"], minted.as_str(), "the maker: {b}");

    // A retry: the same, and through an Idempotency-Key as well.
    f.admin(
        "POST",
        &format!("/v1/runtimes/{rt}/kill"),
        Some(json!({"reason": "r"})),
    )
    .await;
    let retry = format!("/v1/runtimes/{rt}/retry");
    let (s, b) = send(&f.app, "POST", &retry, Some(json!({})), Some(&maker)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let retried_token = b["runtime_token"].as_str().unwrap().to_owned();
    let (s, b) = send(&f.app, "POST", &retry, Some(json!({})), Some(&other)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b.get("runtime_token").is_none(),
        "another caller's retry: {b}"
    );
    let (s, b) = send(&f.app, "POST", &retry, Some(json!({})), Some(&maker)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["runtime_token"], retried_token.as_str());
}

/// Finding 3 as a matrix: given a dispatch and a retry made by the admin, when a token of
/// every kind (and a runtime token) replays them, then kinds that may dispatch or retry get
/// the duplicate without `runtime_token`, the others 403; the maker alone gets the token.
#[tokio::test]
async fn replayed_dispatches_and_retries_times_every_kind() {
    let f = fixture();
    f.open("MC-1").await;
    f.open("MC-2").await;
    let (first, _, _) = f.dispatch("MC-1", "k").await;
    let (_, _, worker) = f.dispatch("MC-2", "k").await;
    f.admin(
        "POST",
        &format!("/v1/runtimes/{first}/kill"),
        Some(json!({"reason": "r"})),
    )
    .await;
    let retried = f
        .admin(
            "POST",
            &format!("/v1/runtimes/{first}/retry"),
            Some(json!({})),
        )
        .await;
    let retried = retried["runtime_id"].as_str().unwrap().to_owned();
    let replays = [
        (
            "dispatch",
            "/v1/tickets/MC-2/dispatch".to_owned(),
            json!({"dispatch_key": "k", "agent": "claude", "transport": "tmux"}),
        ),
        ("retry", format!("/v1/runtimes/{first}/retry"), json!({})),
    ];
    let mut callers: Vec<(String, String)> = KINDS
        .iter()
        .map(|k| (kind_name(*k), f.secret(&kind_name(*k)).to_owned()))
        .collect();
    callers.push(("runtime".into(), worker));
    for (action, path, body) in &replays {
        for (who, secret) in &callers {
            let before = f.head();
            let (s, b) = send(&f.app, "POST", path, Some(body.clone()), Some(secret)).await;
            let case = format!("given a {who} token, when it replays the admin's {action}");
            let may = who != "runtime"
                && KINDS
                    .iter()
                    .any(|k| kind_name(*k) == *who && spec_allows(*k, action));
            if may {
                assert_eq!(s, StatusCode::OK, "{case}: {b}");
                assert_eq!(b["duplicate"], true, "{case}");
                assert!(b.get("runtime_token").is_none(), "{case}: no token: {b}");
                if *action == "retry" {
                    assert_eq!(b["runtime_id"], retried.as_str(), "{case}");
                }
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{case}: {b}");
            }
            assert_eq!(f.head(), before, "{case}: nothing appended");
        }
        let (s, b) = send(&f.app, "POST", path, Some(body.clone()), Some(&f.admin)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            b["runtime_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("mcr_")),
            "the maker gets its token again: {b}"
        );
    }
}

/// Finding 5: given a runtime token on MC-1 (child of MC-10, blocked by MC-2, parent of
/// MC-3), when it reads, then its ticket, its runtime and those neighbours are 200 and
/// everything else — another ticket or runtime, every list, the console, metrics — is 403.
#[tokio::test]
async fn a_runtime_token_reads_only_its_ticket_and_what_relates_to_it() {
    let f = fixture();
    for id in ["MC-1", "MC-2", "MC-3", "MC-4", "MC-10"] {
        f.open(id).await;
    }
    let link = |t: &str, relation: &str, target: &str| {
        (
            format!("/v1/tickets/{t}/links"),
            json!({"relation": relation, "target": target}),
        )
    };
    for (path, body) in [
        link("MC-1", "child_of", "MC-10"),
        link("MC-1", "blocked_by", "MC-2"),
        link("MC-3", "child_of", "MC-1"),
    ] {
        f.admin("POST", &path, Some(body)).await;
    }
    let (rt, _, token) = f.dispatch("MC-1", "k").await;
    let (rt4, _, _) = f.dispatch("MC-4", "k").await;
    let rows: Vec<(String, StatusCode)> = [
        ("/v1/tickets/MC-1", 200),
        ("/v1/tickets/MC-1/comments", 200),
        ("/v1/tickets/MC-1/events", 200),
        ("/v1/tickets/MC-1/timeline", 200),
        ("/v1/tickets/MC-10", 200),
        ("/v1/tickets/MC-2/events", 200),
        ("/v1/tickets/MC-3/timeline", 200),
        (&format!("/v1/runtimes/{rt}"), 200),
        ("/healthz", 200),
        ("/v1/tickets/MC-4", 403),
        ("/v1/tickets/MC-4/events", 403),
        ("/v1/tickets/MC-4/comments", 403),
        ("/v1/tickets/MC-4/timeline", 403),
        (&format!("/v1/runtimes/{rt4}"), 403),
        ("/v1/tickets", 403),
        ("/v1/runtimes", 403),
        ("/v1/board", 403),
        ("/v1/alerts", 403),
        ("/v1/costs", 403),
        ("/v1/pools", 403),
        ("/v1/events", 403),
        ("/metrics", 403),
        ("/", 403),
        ("/tickets/MC-1", 403),
        ("/runtimes", 403),
        ("/console/app.js", 403),
    ]
    .iter()
    .map(|(p, s)| (p.to_string(), StatusCode::from_u16(*s).unwrap()))
    .collect();
    for (path, expected) in rows {
        let (s, b) = send(&f.app, "GET", &path, None, Some(&token)).await;
        assert_eq!(s, expected, "given a runtime token, when GET {path}: {b}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(b["code"], "not_permitted", "{path}: {b}");
        }
    }
    // An unlink takes the neighbour out of reach.
    f.admin(
        "POST",
        "/v1/tickets/MC-1/unlink",
        Some(json!({"relation": "blocked_by", "target": "MC-2"})),
    )
    .await;
    let (s, _) = send(&f.app, "GET", "/v1/tickets/MC-2", None, Some(&token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "after the unlink");
}

// ---- streams, over a real socket ----

/// The router on a real socket, served by a runtime of its own for as long as it lives.
struct Served {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

fn serve(app: Router) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    Served {
        addr,
        _runtime: runtime,
    }
}

/// An open event stream: the tickets of the events it delivered, and when it ended.
struct Stream {
    reader: BufReader<TcpStream>,
    tickets: Vec<String>,
}

impl Stream {
    fn open(addr: SocketAddr, token: &str) -> Stream {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET /v1/events/stream?after=0 HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(tcp);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "stream refused: {status}");
        Stream {
            reader,
            tickets: Vec::new(),
        }
    }

    /// Reads until `n` events came (true) or the stream ended (false).
    fn events(&mut self, n: usize) -> bool {
        let mut line = String::new();
        while self.tickets.len() < n {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) => panic!("the stream neither sent nor ended: {e}"),
            }
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                let event: Value = serde_json::from_str(data.trim()).unwrap();
                self.tickets
                    .push(event["ticket"].as_str().unwrap_or_default().to_owned());
            }
        }
        true
    }

    /// How long after `since` the server ended the stream.
    fn ended_after(&mut self, since: Instant) -> Duration {
        while self.events(usize::MAX) {}
        since.elapsed()
    }
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The `mc_ledger_sse_clients` gauge, read with the admin token.
fn streams_open(f: &Fixture) -> i64 {
    let (_, metrics) = block(async {
        let (s, _) = send(&f.app, "GET", "/metrics", None, Some(&f.admin)).await;
        assert_eq!(s, StatusCode::OK);
        let response = tower::ServiceExt::oneshot(
            f.app.clone(),
            axum::http::Request::builder()
                .uri("/metrics")
                .header("authorization", format!("Bearer {}", f.admin))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (s, String::from_utf8(bytes.to_vec()).unwrap())
    });
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("mc_ledger_sse_clients "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is exported")
}

/// Waits up to `limit` for the gauge to read `n`.
fn wait_streams(f: &Fixture, n: i64, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if streams_open(f) == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Finding 1: given a read token's open stream, when the token is revoked, then the stream
/// ends within 1 s and its slot is free again.
#[test]
fn a_stream_ends_within_a_second_of_its_tokens_revoke() {
    let f = fixture();
    block(f.open("MC-1"));
    let served = serve(f.app.clone());
    let (reader_id, reader) = f.tokens["reader"].clone();
    let mut stream = Stream::open(served.addr, &reader);
    assert!(stream.events(1), "the stream delivers");
    assert!(
        wait_streams(&f, 1, Duration::from_secs(5)),
        "one stream open"
    );
    block(f.admin("DELETE", &format!("/v1/admin/tokens/{reader_id}"), None));
    let revoked = Instant::now();
    let took = stream.ended_after(revoked);
    println!("the stream ended {} ms after the revoke", took.as_millis());
    assert!(took < Duration::from_secs(1), "ended after {took:?}");
    assert!(
        wait_streams(&f, 0, Duration::from_secs(1)),
        "the slot is free again"
    );
}

/// Finding 1 and 5: given a runtime token's open stream, then it carries only its ticket's
/// and related tickets' events, and when the runtime is killed it ends within 1 s.
#[test]
fn a_runtime_tokens_stream_is_filtered_and_ends_with_its_runtime() {
    let f = fixture();
    for id in ["MC-1", "MC-2", "MC-4"] {
        block(f.open(id));
    }
    block(f.admin(
        "POST",
        "/v1/tickets/MC-1/links",
        Some(json!({"relation": "blocked_by", "target": "MC-2"})),
    ));
    let (rt, _, token) = block(f.dispatch("MC-1", "k"));
    let served = serve(f.app.clone());
    let mut stream = Stream::open(served.addr, &token);
    for ticket in ["MC-4", "MC-2", "MC-4", "MC-1"] {
        block(f.admin(
            "POST",
            &format!("/v1/tickets/{ticket}/comments"),
            Some(json!({"body": "x"})),
        ));
    }
    // Opened MC-1 and MC-2, the link, the dispatch, the comments on MC-2 and MC-1.
    assert!(stream.events(6), "delivered: {:?}", stream.tickets);
    assert!(
        stream.tickets.iter().all(|t| t == "MC-1" || t == "MC-2"),
        "only what the token may read: {:?}",
        stream.tickets
    );
    block(f.admin(
        "POST",
        &format!("/v1/runtimes/{rt}/kill"),
        Some(json!({"reason": "r"})),
    ));
    let killed = Instant::now();
    let took = stream.ended_after(killed);
    println!("the stream ended {} ms after the kill", took.as_millis());
    assert!(took < Duration::from_secs(1), "ended after {took:?}");
    assert!(
        stream.tickets.iter().all(|t| t == "MC-1" || t == "MC-2"),
        "{:?}",
        stream.tickets
    );
}

// ---- the fuzz: random requests against a model of the table ----

/// Who sends a request in the fuzz.
#[derive(Debug, Clone, Copy)]
enum Who {
    Kind(usize),
    Reader,
    /// The runtime token of runtime 0 or 1.
    Runtime(usize),
}

/// The write routes the fuzz sends, with the action the SPEC gives each.
const ROUTES: &[(&str, &str)] = &[
    ("comments", "comment"),
    ("edit", "edit"),
    ("close", "close"),
    ("gates", "gate"),
    ("dispatch", "dispatch"),
    ("signals", "signal"),
    ("activity", "activity"),
    ("input", "input"),
    ("kill", "kill"),
    ("reap", "reap"),
    ("harvest", "harvest"),
    ("hooks/SessionEnd", "end_session"),
    ("hooks/Notification", "request_input"),
    ("hooks/Stop", "activity"),
    ("hooks/StopDone", "activity+signal"),
];

/// The model: may `who` send route `r` on runtime `rt` / ticket `t`? A runtime token may write
/// its own runtime's signals, activity, input and hooks and comment on its own ticket; a
/// stale runtime token is refused too (401).
fn model_allows(
    who: Who,
    action: &str,
    on_runtime: bool,
    own_runtime: bool,
    own_ticket: bool,
    live: bool,
) -> bool {
    let actions: Vec<&str> = action.split('+').collect();
    match who {
        Who::Reader => false,
        Who::Kind(k) => actions.iter().all(|a| spec_allows(KINDS[k], a)),
        Who::Runtime(_) if !live => false,
        Who::Runtime(_) => actions.iter().all(|a| {
            if on_runtime {
                own_runtime
                    && [
                        "signal",
                        "activity",
                        "input",
                        "request_input",
                        "end_session",
                    ]
                    .contains(a)
            } else {
                own_ticket && *a == "comment"
            }
        }),
    }
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => (0..KINDS.len()).prop_map(Who::Kind),
        1 => Just(Who::Reader),
        3 => (0usize..2).prop_map(Who::Runtime),
    ]
}

#[derive(Debug, Clone)]
struct Step {
    who: Who,
    route: usize,
    runtime: usize,
}

/// Given random (token, route, runtime) sequences, when each is sent, then a request the
/// model refuses is 401/403 and appends nothing, and one it allows is never 401/403.
#[test]
fn no_request_the_model_refuses_ever_appends() {
    let seed = logged_seed("least-privilege fuzz");
    let mut runner = TestRunner::new(Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    });
    let steps = proptest::collection::vec(
        (who(), 0..ROUTES.len(), 0usize..2).prop_map(|(who, route, runtime)| Step {
            who,
            route,
            runtime,
        }),
        1..12,
    );
    runner
        .run(&steps, |steps| {
            block(run_case(&steps));
            Ok(())
        })
        .unwrap();
}

async fn run_case(steps: &[Step]) {
    let f = fixture();
    f.open("MC-1").await;
    f.open("MC-2").await;
    let mut runtimes = Vec::new();
    for (n, t) in ["MC-1", "MC-2"].iter().enumerate() {
        runtimes.push((t.to_string(), f.dispatch(t, &format!("k{n}")).await));
    }
    for step in steps {
        let (ticket, (rt, nonce, _)) = &runtimes[step.runtime];
        let (name, action) = ROUTES[step.route];
        let on_runtime = !matches!(name, "comments" | "edit" | "close" | "gates" | "dispatch");
        let body = match name {
            "comments" => json!({"body": "x"}),
            "edit" => json!({"title": "y"}),
            "close" => json!({"resolution": "done"}),
            "gates" => json!({"gate": "ci", "verdict": "passed"}),
            "dispatch" => json!({"dispatch_key": "fuzz", "agent": "a", "transport": "process"}),
            "signals" => json!({"verdict": "REVIEW", "nonce": nonce, "payload": "p"}),
            "activity" => json!({}),
            "input" => json!({"text": "x"}),
            "kill" => json!({"reason": "r"}),
            "reap" => json!({"cause": "process_dead"}),
            "harvest" => json!({"outcome": "completed", "exit_reason": "success"}),
            hook_name => hook(hook_name.trim_start_matches("hooks/")),
        };
        let path = match (on_runtime, name.starts_with("hooks/")) {
            (false, _) => format!("/v1/tickets/{ticket}/{name}"),
            (true, true) => format!("/v1/runtimes/{rt}/hooks/claude"),
            (true, false) => format!("/v1/runtimes/{rt}/{name}"),
        };
        let (secret, own_runtime, own_ticket, live) = match step.who {
            Who::Kind(k) => (
                f.secret(&kind_name(KINDS[k])).to_owned(),
                false,
                false,
                true,
            ),
            Who::Reader => (f.secret("reader").to_owned(), false, false, true),
            Who::Runtime(i) => {
                let (own_ticket, (own_rt, _, token)) = &runtimes[i];
                let (_, view) = send(
                    &f.app,
                    "GET",
                    &format!("/v1/runtimes/{own_rt}"),
                    None,
                    Some(&f.admin),
                )
                .await;
                let live = view["live"] == true;
                (token.clone(), own_rt == rt, own_ticket == ticket, live)
            }
        };
        let allowed = model_allows(step.who, action, on_runtime, own_runtime, own_ticket, live);
        let before = f.head();
        let (s, b) = send(&f.app, "POST", &path, Some(body), Some(&secret)).await;
        let case = format!("{:?} POST {path} ({action})", step.who);
        if allowed {
            assert_not_refused(s, &b, &format!("the model allows {case}"));
        } else {
            assert!(
                matches!(s.as_u16(), 401 | 403),
                "the model refuses {case}: {s} {b}"
            );
            assert_eq!(f.head(), before, "refused {case} appended");
        }
    }
}
