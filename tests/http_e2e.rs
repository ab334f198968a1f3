//! End-to-end over a real socket: the seeds' story, bad input that changes nothing, racing
//! dispatchers, SSE catch-up then live, and the auth matrix.

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn open_ticket(s: &TestServer, id: &str, extra: Value) -> Reply {
    let mut body = json!({"id": id, "title": format!("ticket {id}")});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(s.addr, "/v1/tickets", &with_actor(body, "elmar", "human"))
}

fn dispatch(s: &TestServer, id: &str, key: &str, transport: &str) -> Reply {
    post(
        s.addr,
        &format!("/v1/tickets/{id}/dispatch"),
        &with_actor(
            json!({"dispatch_key": key, "agent": "luci", "transport": transport, "tmux_target": id}),
            "dispatcher",
            "system",
        ),
    )
}

fn ticket(s: &TestServer, id: &str) -> Value {
    let r = get(s.addr, &format!("/v1/tickets/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Posts each step of a JSON array of `[path, actor name, actor kind, body]` in order; each must
/// be recorded (201).
fn record_all(s: &TestServer, steps: Value) {
    for step in steps.as_array().unwrap() {
        let text = |i: usize| step[i].as_str().unwrap();
        recorded(s.addr, text(0), step[3].clone(), (text(1), text(2)));
    }
}

#[test]
fn mc_4502_story_ends_done_without_a_banner() {
    let s = start_temp();
    assert_eq!(
        open_ticket(&s, "MC-4502", json!({"priority": "high", "owner": "luci"})).status,
        201
    );
    // A launch aborted by a failed model smoke test.
    let codex = dispatch(&s, "MC-4502", "codex-smoke", "process").json();
    let rt = codex["runtime_id"].as_str().unwrap();
    record_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt}/abort"), "controller", "controller", {"reason": "model_smoke_failed", "detail": "gpt-5.5 rejected under ChatGPT OAuth"}]
        ]),
    );
    // The coder in tmux; a max_turns exit is partial: recover, no failure.
    let coder = dispatch(&s, "MC-4502", "coder-1", "tmux").json();
    let rt = coder["runtime_id"].as_str().unwrap().to_owned();
    record_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt}/harvest"), "controller", "controller", {"outcome": "partial", "exit_reason": "max_turns", "turns": 200, "cost_usd": 14.2}]
        ]),
    );
    let t = ticket(&s, "MC-4502");
    assert_eq!(t["next_action"]["code"], "recover");
    assert_eq!(t["failure_reason"], Value::Null);
    // Completed by the controller, then tmux goes away: still no banner.
    record_all(
        &s,
        json!([
            [format!("/v1/runtimes/{rt}/complete"), "controller", "controller", {"reason": "recovered max-turns partial work", "commit": "1bd1c48"}],
            [format!("/v1/runtimes/{rt}/reap"), "watcher", "system", {"cause": "tmux_missing", "evidence": "can't find session"}]
        ]),
    );
    let again = post(
        s.addr,
        &format!("/v1/runtimes/{rt}/reap"),
        &with_actor(json!({"cause": "tmux_missing"}), "watcher", "system"),
    );
    assert_eq!(
        (again.status, again.json()["duplicate"].clone()),
        (200, json!(true))
    );
    let t = ticket(&s, "MC-4502");
    assert_eq!(t["failure_reason"], Value::Null);
    assert_eq!(t["current_runtime"]["class"], "completed-by-controller");
    // The validator closes it.
    record_all(
        &s,
        json!([
            ["/v1/tickets/MC-4502/gates", "validator", "validator", {"gate": "validator", "verdict": "passed", "commit": "1bd1c48"}],
            ["/v1/tickets/MC-4502/close", "validator", "validator", {"resolution": "done", "commit": "1bd1c48"}]
        ]),
    );
    let t = ticket(&s, "MC-4502");
    assert_eq!(
        (t["state"].as_str(), t["failure_reason"].clone()),
        (Some("done"), Value::Null)
    );
    assert_eq!(get(s.addr, "/v1/alerts").json()["alerts"], json!([]));
    // The audit replay ends with failure_reason null.
    let timeline = get(s.addr, "/v1/tickets/MC-4502/timeline").json();
    let last = timeline["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["state"].as_str(), last["failure_reason"].clone()),
        (Some("done"), Value::Null)
    );
    // Time travel: as of the reap the ticket was not done yet.
    let head = get(s.addr, "/v1/events?after=0&limit=1000").json()["events"]
        .as_array()
        .unwrap()
        .len();
    let before_close = ticket(&s, &format!("MC-4502?as_of={}", head - 2));
    assert_ne!(before_close["state"], "done");
}

#[test]
fn gets_and_bad_requests_change_nothing() {
    let s = start_temp();
    assert_eq!(open_ticket(&s, "MC-1", json!({})).status, 201);
    let rt = dispatch(&s, "MC-1", "k", "tmux").json()["runtime_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = s.head.head();
    let big = "x".repeat(70 * 1024);
    let huge = "y".repeat(1100 * 1024);
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
        ("GET", "/v1/tickets".into(), None, 200),
        ("GET", "/v1/tickets/MC-1".into(), None, 200),
        ("GET", "/v1/tickets/MC-1/timeline".into(), None, 200),
        ("GET", "/v1/tickets/MC-1/events".into(), None, 200),
        ("GET", "/v1/tickets/MC-1/comments".into(), None, 200),
        ("GET", "/v1/board".into(), None, 200),
        ("GET", "/v1/board?closed_limit=0".into(), None, 200),
        ("GET", "/v1/board?closed_limit=-1".into(), None, 400),
        ("GET", "/v1/board?closed=3".into(), None, 400),
        ("GET", "/v1/alerts".into(), None, 200),
        ("GET", format!("/v1/runtimes/{rt}"), None, 200),
        ("GET", "/v1/runtimes".into(), None, 200),
        ("GET", "/v1/events?after=0&limit=5".into(), None, 200),
        ("GET", "/metrics".into(), None, 200),
        ("GET", "/v1/admin/verify".into(), None, 200),
        ("GET", "/v1/tickets/MC-404".into(), None, 404),
        ("GET", "/v1/tickets/not-a-ticket".into(), None, 422),
        ("GET", "/v1/tickets?limit=abc".into(), None, 400),
        ("GET", "/v1/runtimes/rt_nope".into(), None, 404),
        ("POST", "/v1/tickets".into(), Some("{not json".into()), 400),
        ("POST", "/v1/tickets".into(), Some(json!({"id": "MC-2"}).to_string()), 422),
        ("POST", "/v1/tickets".into(), Some(with_actor(json!({"id": "lower-1", "title": "x"}), "a", "human").to_string()), 422),
        ("POST", "/v1/tickets".into(), Some(with_actor(json!({"id": "MC-1", "title": "again"}), "a", "human").to_string()), 409),
        ("POST", "/v1/tickets".into(), Some(with_actor(json!({"id": "MC-3", "title": ""}), "a", "human").to_string()), 422),
        ("POST", "/v1/tickets/MC-1/comments".into(), Some(with_actor(json!({"body": big}), "a", "human").to_string()), 422),
        ("POST", "/v1/tickets/MC-1/comments".into(), Some(with_actor(json!({"body": huge}), "a", "human").to_string()), 413),
        ("POST", "/v1/tickets/MC-9/comments".into(), Some(with_actor(json!({"body": "hi"}), "a", "human").to_string()), 404),
        ("POST", "/v1/tickets/MC-1/dispatch".into(), Some(with_actor(json!({"dispatch_key": "other", "agent": "x", "transport": "tmux"}), "a", "system").to_string()), 409),
        ("POST", "/v1/tickets/MC-1/reopen".into(), Some(with_actor(json!({"reason": "x"}), "a", "human").to_string()), 409),
        ("POST", format!("/v1/runtimes/{rt}/signals"), Some(with_actor(json!({"verdict": "DONE", "nonce": "MC_TICKET_TURN:1:1:00000000", "payload": "x"}), "a", "agent").to_string()), 409),
        ("POST", "/v1/runtimes/rt_nope/kill".into(), Some(with_actor(json!({"reason": "x"}), "a", "human").to_string()), 404),
        ("POST", "/v1/nowhere".into(), Some("{}".into()), 404),
    ];
    for (method, path, body, want) in cases {
        let r = request(s.addr, method, &path, body.as_deref(), None);
        assert_eq!(
            r.status,
            want,
            "{method} {path}: {}",
            r.body.chars().take(300).collect::<String>()
        );
        if r.status >= 400 {
            assert!(
                r.content_type.starts_with("application/problem+json"),
                "{method} {path}: {}",
                r.content_type
            );
            assert!(r.json()["code"].is_string(), "{method} {path}");
        }
    }
    // The unknown-nonce signal is recorded as a fact (runtime.signal_rejected); nothing else.
    assert_eq!(s.head.head(), head + 1);
    let last = get(s.addr, &format!("/v1/events?after={head}")).json();
    assert_eq!(last["events"][0]["type"], "runtime.signal_rejected");
}

#[test]
fn sixteen_racing_dispatchers_make_one_runtime() {
    let s = start_temp();
    assert_eq!(open_ticket(&s, "MC-4030", json!({})).status, 201);
    let addr = s.addr;
    let statuses = at_once(16, move |i| {
        let body =
            json!({"dispatch_key": format!("key-{i}"), "agent": "luci", "transport": "tmux"});
        let body = with_actor(body, "dispatcher", "system");
        post(addr, "/v1/tickets/MC-4030/dispatch", &body).status
    });
    one_created_rest(&statuses, 409);
    let runtimes = get(s.addr, "/v1/runtimes?ticket=MC-4030").json();
    assert_eq!(runtimes["runtimes"].as_array().unwrap().len(), 1);
}

/// Exactly one of `statuses` is 201 and every other is `rest`.
fn one_created_rest(statuses: &[u16], rest: u16) {
    let created = statuses.iter().filter(|&&c| c == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|&c| c == 201 || c == rest),
        "{statuses:?}"
    );
}

/// Sixteen writers commenting on one ticket at once all land: in one server they take turns on
/// the ticket's stream, so none spends its retries losing races to the others (a quarter of
/// them were answered 409 `version_conflict` before).
#[test]
fn sixteen_writers_of_one_ticket_all_land() {
    let s = start_temp();
    assert_eq!(open_ticket(&s, "MC-7", json!({})).status, 201);
    let addr = s.addr;
    let statuses: Vec<u16> = at_once(16, move |w| {
        (0..25)
            .map(|n| {
                let body = with_actor(json!({"body": format!("w{w} n{n}")}), "ops", "human");
                post(addr, "/v1/tickets/MC-7/comments", &body).status
            })
            .collect::<Vec<u16>>()
    })
    .concat();
    let refused: Vec<&u16> = statuses.iter().filter(|&&c| c != 201).collect();
    assert!(
        refused.is_empty(),
        "{} of 400 refused: {refused:?}",
        refused.len()
    );
    let ticket = get(addr, "/v1/tickets/MC-7").json();
    assert_eq!(ticket["version"], 401, "{ticket}");
}

/// A keyed close sent eight times at once (a client resending while its first try is under
/// way) closes once: one 201, and every other try is answered 200 with the original events,
/// never 409 `ticket_closed` because an earlier try got there first.
#[test]
fn a_keyed_close_sent_at_once_eight_times_closes_once() {
    let s = start_temp();
    assert_eq!(open_ticket(&s, "MC-8", json!({})).status, 201);
    let addr = s.addr;
    let replies = at_once(8, move |_| {
        let body = with_actor(json!({"resolution": "done"}), "ops", "human");
        post_keyed(addr, "/v1/tickets/MC-8/close", &body, "close-once")
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    one_created_rest(&statuses, 200);
    let ids: Vec<Value> = replies
        .iter()
        .map(|r| r.json()["events"][0]["id"].clone())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

/// Reads SSE frames until `n` events arrived; returns their (id, event) pairs.
fn read_sse(
    addr: std::net::SocketAddr,
    path: &str,
    last_event_id: Option<u64>,
    n: usize,
) -> Vec<(u64, String)> {
    let last_event_id = last_event_id.map(|id| id.to_string());
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(id) = &last_event_id {
        headers.push(("Last-Event-ID", id));
    }
    let stream = send_head(addr, "GET", path, &headers, Duration::from_secs(20)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut out = Vec::new();
    let (mut id, mut event) = (None, None);
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if l.starts_with("data:") {
            if let (Some(i), Some(e)) = (id.take(), event.take()) {
                out.push((i, e));
            }
        }
    }
    out
}

#[test]
fn sse_catches_up_then_goes_live_and_resumes() {
    let s = start_temp();
    for i in 1..=3 {
        assert_eq!(open_ticket(&s, &format!("MC-{i}"), json!({})).status, 201);
    }
    let addr = s.addr;
    let live = std::thread::spawn(move || read_sse(addr, "/v1/events/stream?after=1", None, 4));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(open_ticket(&s, "MC-4", json!({})).status, 201);
    assert_eq!(open_ticket(&s, "MC-5", json!({})).status, 201);
    let got = live.join().unwrap();
    let ids: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, vec![2, 3, 4, 5]);
    assert!(got.iter().all(|(_, e)| e == "ticket.opened"));
    // Resume with Last-Event-ID.
    let resumed = read_sse(addr, "/v1/events/stream", Some(3), 2);
    assert_eq!(
        resumed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![4, 5]
    );
}

/// SPEC §15's filtered stream: given an umbrella MC-1 with a child MC-2 and a grandchild
/// MC-3, and an unrelated MC-4, when a stream asks for the umbrella's comments, then it
/// carries the grandchild's comment (caught up and live) and nothing of MC-4; a filter that
/// names an unknown type is 422 before anything is streamed.
#[test]
fn a_filtered_stream_follows_an_umbrellas_descendants() {
    let s = start_temp();
    for (id, extra) in [
        ("MC-1", json!({"umbrella": true})),
        ("MC-2", json!({})),
        ("MC-3", json!({})),
        ("MC-4", json!({})),
    ] {
        assert_eq!(open_ticket(&s, id, extra).status, 201);
    }
    for (child, parent) in [("MC-2", "MC-1"), ("MC-3", "MC-2")] {
        let link = with_actor(
            json!({"relation": "child_of", "target": parent}),
            "luci",
            "orchestrator",
        );
        assert_eq!(
            post(s.addr, &format!("/v1/tickets/{child}/links"), &link).status,
            201
        );
    }
    let comment = |t: &str| {
        let body = with_actor(json!({"body": format!("on {t}")}), "elmar", "human");
        assert_eq!(
            post(s.addr, &format!("/v1/tickets/{t}/comments"), &body).status,
            201
        );
    };
    comment("MC-4");
    comment("MC-3");
    let addr = s.addr;
    let path = "/v1/events/stream?umbrella=MC-1&types=ticket.commented";
    let live = std::thread::spawn(move || read_sse(addr, path, None, 3));
    std::thread::sleep(Duration::from_millis(300));
    comment("MC-4");
    comment("MC-1");
    comment("MC-2");
    let got = live.join().unwrap();
    assert!(got.iter().all(|(_, e)| e == "ticket.commented"), "{got:?}");
    let tickets: Vec<String> = got
        .iter()
        .map(|(position, _)| {
            let events = get(
                s.addr,
                &format!("/v1/events?after={}&limit=1", position - 1),
            )
            .json();
            events["events"][0]["ticket"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        tickets,
        vec!["MC-3", "MC-1", "MC-2"],
        "the grandchild's, then live"
    );
    let bad = get(s.addr, "/v1/events/stream?types=runtime.signalled");
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["field"], "types");
}

#[test]
fn scope_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let read = api::auth::create_token(dir.path(), api::auth::Scope::Read, "r").unwrap();
    let write = api::auth::create_token(dir.path(), api::auth::Scope::Write, "w").unwrap();
    let admin = api::auth::create_token(dir.path(), api::auth::Scope::Admin, "a").unwrap();
    let s = start_in_process(dir.path());
    // No body actor: with tokens, the token's actor is recorded.
    let body = json!({"id": "MC-1", "title": "t"}).to_string();
    let writes = [
        "/v1/tickets",
        "/v1/tickets/MC-1/comments",
        "/v1/tickets/MC-1/links",
        "/v1/tickets/MC-1/park",
        "/v1/tickets/MC-1/gates",
        "/v1/tickets/MC-1/close",
        "/v1/tickets/MC-1/reopen",
        "/v1/tickets/MC-1/tasks",
        "/v1/tickets/MC-1/dispatch",
        "/v1/runtimes/rt_x/signals",
        "/v1/runtimes/rt_x/activity",
        "/v1/runtimes/rt_x/harvest",
        "/v1/runtimes/rt_x/reap",
        "/v1/runtimes/rt_x/kill",
        "/v1/runtimes/rt_x/cancel",
        "/v1/runtimes/rt_x/switch",
        "/v1/runtimes/rt_x/retry",
        "/v1/runtimes/rt_x/complete",
        "/v1/runtimes/rt_x/input",
    ];
    for path in writes {
        for (token, allowed) in [
            (None, false),
            (Some(read.as_str()), false),
            (Some(write.as_str()), true),
            (Some(admin.as_str()), true),
        ] {
            let r = request(s.addr, "POST", path, Some(&body), token);
            let want_refused = if token.is_none() { 401 } else { 403 };
            if allowed {
                assert!(
                    r.status != 401 && r.status != 403,
                    "{path} with {token:?}: {}",
                    r.status
                );
            } else {
                assert_eq!(r.status, want_refused, "{path} with {token:?}");
            }
        }
    }
    assert_gets(
        s.addr,
        &[
            ("/v1/tickets", None, 401),
            ("/v1/tickets", Some(read.as_str()), 200),
            ("/v1/tickets", Some("mcl_wrong"), 401),
            ("/v1/admin/verify", Some(write.as_str()), 403),
            ("/v1/admin/verify", Some(admin.as_str()), 200),
            ("/healthz", None, 200),
        ],
    );
}

/// Unknown tokens from one address are slowed: 20 a minute are answered 401, then 429 until the
/// minute is over. Requests without a token are not counted, and a right token still works.
#[test]
fn bad_tokens_are_throttled_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let good = api::auth::create_token(dir.path(), api::auth::Scope::Read, "r").unwrap();
    let s = start_in_process(dir.path());
    for _ in 0..30 {
        assert_eq!(
            request(s.addr, "GET", "/v1/tickets", None, None).status,
            401
        );
    }
    assert_eq!(
        request(s.addr, "GET", "/v1/tickets", None, Some(&good)).status,
        200,
        "missing tokens are not failures"
    );
    for n in 1..=20 {
        let r = request(s.addr, "GET", "/v1/tickets", None, Some("mcl_guess"));
        assert_eq!(r.status, 401, "bad token {n}");
    }
    let r = request(s.addr, "GET", "/v1/tickets", None, Some("mcl_guess"));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["code"], "too_many_failures");
    assert_eq!(
        request(s.addr, "GET", "/v1/tickets", None, Some(&good)).status,
        200,
        "a right token is never throttled"
    );
}

/// Once a server has seen a token it never serves without one: deleting `tokens.jsonl` under
/// it keeps the tokens it last read. The file is owner-only.
#[test]
fn a_deleted_token_file_does_not_open_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let good = api::auth::create_token(dir.path(), api::auth::Scope::Read, "r").unwrap();
    let file = dir.path().join("tokens.jsonl");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let s = start_in_process(dir.path());
    std::fs::remove_file(&file).unwrap();
    // Longer than the 250 ms between reloads.
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_gets(
        s.addr,
        &[
            ("/v1/tickets", None, 401),
            ("/v1/tickets", Some(good.as_str()), 200),
        ],
    );
}
