//! The auth matrix of SPEC §12: every write route × every actor kind × token state (valid,
//! revoked, expired, another runtime's, an ended runtime's), through the real router and
//! middleware. A refusal is decided before anything is appended; an allowed request may still
//! be refused by the command's own rules (404, 409, 422), but never as 401 or 403.

use std::collections::BTreeMap;
use std::time::Duration;

use api::auth::{revoke_token_in, Scope};
use axum::http::StatusCode;
use axum::Router;
use events::ActorKind;
use projections::{permitted, Action};
use serde_json::{json, Value};
use service::home::Home;

mod common;

use common::{
    assert_not_refused, home_with_admin, kind_name, now, send, token, write_tokens, KINDS,
};

/// Every write route: method, path (`{rt}` is replaced by a runtime id), body, action.
fn routes() -> Vec<(String, String, Value, Action)> {
    let rows = json!([
        ["POST", "/v1/tickets", {"id": "MC-90", "title": "t"}, "open"],
        ["POST", "/v1/tickets/MC-1/edit", {"title": "x"}, "edit"],
        ["POST", "/v1/tickets/MC-1/comments", {"body": "x"}, "comment"],
        ["POST", "/v1/tickets/MC-1/links", {"relation": "blocked_by", "target": "MC-2"}, "link"],
        ["POST", "/v1/tickets/MC-1/unlink", {"relation": "blocked_by", "target": "MC-2"}, "unlink"],
        ["POST", "/v1/tickets/MC-1/park", {"waiting_on": ["MC-2"], "reason": "r"}, "park"],
        ["POST", "/v1/tickets/MC-1/gates", {"gate": "ci", "verdict": "passed"}, "gate"],
        ["POST", "/v1/tickets/MC-1/close", {"resolution": "done"}, "close"],
        ["POST", "/v1/tickets/MC-1/reopen", {"reason": "r"}, "reopen"],
        ["POST", "/v1/tickets/MC-1/tasks", {"title": "t"}, "task"],
        ["PATCH", "/v1/tickets/MC-1/tasks/t1", {"status": "done"}, "task"],
        ["POST", "/v1/tickets/MC-1/dispatch", {"dispatch_key": "m", "agent": "a", "transport": "process"}, "dispatch"],
        ["POST", "/v1/runtimes/{rt}/signals", {"verdict": "DONE", "nonce": "n", "payload": "p"}, "signal"],
        ["POST", "/v1/runtimes/{rt}/activity", {}, "activity"],
        ["POST", "/v1/runtimes/{rt}/harvest", {"outcome": "completed", "exit_reason": "success"}, "harvest"],
        ["POST", "/v1/runtimes/{rt}/reap", {"cause": "process_dead"}, "reap"],
        ["POST", "/v1/runtimes/{rt}/kill", {"reason": "r"}, "kill"],
        ["POST", "/v1/runtimes/{rt}/cancel", {"reason": "r"}, "cancel"],
        ["POST", "/v1/runtimes/{rt}/switch", {}, "switch"],
        ["POST", "/v1/runtimes/{rt}/retry", {}, "retry"],
        ["POST", "/v1/runtimes/{rt}/complete", {"reason": "r"}, "complete"],
        ["POST", "/v1/runtimes/{rt}/input", {"text": "x"}, "input"],
        ["POST", "/v1/runtimes/{rt}/abort", {"reason": "r"}, "abort"],
        ["POST", "/v1/pools", {"name": "gpu", "capacity": 2}, "pool"],
        // SPEC §16: budgets (orchestrator, human or admin).
        ["POST", "/v1/budgets", {"name": "team", "scope": {"kind": "all"}, "limit_usd": 10.0}, "budget"],
        // SPEC §15: subscriptions (orchestrator, human or admin).
        ["POST", "/v1/subscriptions", {"name": "ops", "url": "http://127.0.0.1:9/hook"}, "subscribe"],
        ["POST", "/v1/subscriptions/ops/pause", {"reason": "r"}, "subscribe"],
        // The hook events that pause or end a runtime (issue 26: actions of their own).
        ["POST", "/v1/runtimes/{rt}/hooks/claude", {"hook_event_name": "Notification", "notification_type": "permission_prompt"}, "request_input"],
        ["POST", "/v1/runtimes/{rt}/hooks/claude", {"hook_event_name": "SessionEnd", "reason": "logout"}, "end_session"]
    ]);
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let action = Action::ALL.into_iter().find(|a| a.as_str() == r[3]);
            let action = action.unwrap_or_else(|| panic!("no action {}", r[3]));
            (text(&r[0]), text(&r[1]), r[2].clone(), action)
        })
        .collect()
}

#[test]
fn the_matrix_has_a_route_for_every_action() {
    for action in Action::ALL {
        assert!(
            routes().iter().any(|(_, _, _, a)| *a == action),
            "no route for {}",
            action.as_str()
        );
    }
}

struct Fixture {
    app: Router,
    home: Home,
    _dir: tempfile::TempDir,
    /// By kind name: (id, secret) of a write token.
    kinds: BTreeMap<String, (String, String)>,
    admin: String,
}

fn fixture() -> Fixture {
    let (dir, home, admin) = home_with_admin();
    let kinds = write_tokens(&home);
    let opened = api::server::open(dir.path()).unwrap();
    let app = api::server::app(opened.state.clone());
    std::mem::forget(opened);
    Fixture {
        app,
        home,
        _dir: dir,
        kinds,
        admin,
    }
}

impl Fixture {
    /// `POST path` with `body`, as the holder of `secret`.
    async fn post(&self, path: &str, body: Value, secret: &str) -> (StatusCode, Value) {
        send(&self.app, "POST", path, Some(body), Some(secret)).await
    }

    /// Opens a ticket as the admin.
    async fn open(&self, id: &str) -> (StatusCode, Value) {
        let body = json!({"id": id, "title": "t"});
        self.post("/v1/tickets", body, &self.admin).await
    }
}

#[tokio::test]
async fn every_write_route_times_every_kind() {
    let f = fixture();
    for id in ["MC-1", "MC-2"] {
        let (s, b) = f.open(id).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let mut checked = 0;
    for kind in KINDS {
        let secret = &f.kinds[&kind_name(kind)].1;
        for (method, path, body, action) in routes() {
            let path = path.replace("{rt}", "rt_nowhere");
            let (status, answer) = send(&f.app, &method, &path, Some(body), Some(secret)).await;
            let case = format!("given a {kind:?} token, when {method} {path}");
            if permitted(kind, action).is_ok() {
                assert_not_refused(status, &answer, &format!("{case}, then allowed"));
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{case}: {answer}");
                assert_eq!(answer["code"], "not_permitted", "{answer}");
                assert!(
                    answer["rule"].as_str().is_some_and(|r| !r.is_empty()),
                    "names the rule"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * routes().len());
}

#[tokio::test]
async fn the_token_names_the_writer_and_a_different_body_actor_is_refused() {
    let f = fixture();
    let ctl = &f.kinds["controller"].1;
    f.open("MC-1").await;
    let comments = "/v1/tickets/MC-1/comments";
    let validator = json!({"body": "x", "actor": {"name": "validator", "kind": "validator"}});
    let (s, b) = f.post(comments, validator, ctl).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["code"], "actor_mismatch");
    let own =
        json!({"body": "by the controller", "actor": {"name": "controller", "kind": "controller"}});
    let (s, b) = f.post(comments, own, ctl).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the token's own actor may be named: {b}"
    );
    let (s, b) = f.post(comments, json!({"body": "no actor"}), ctl).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let event = &b["events"][0];
    assert_eq!(
        event["actor"],
        json!({"name": "controller", "kind": "controller"})
    );
    let ids = api::auth::list_tokens_in(&f.home).unwrap();
    let ctl_id = &ids.iter().find(|t| t.name == "controller").unwrap().id;
    assert_eq!(
        event["token_id"],
        ctl_id.as_str(),
        "the event records the token id"
    );
    let (_, timeline) = send(&f.app, "GET", "/v1/tickets/MC-1/timeline", None, Some(ctl)).await;
    let last = timeline["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["event"]["token_id"],
        ctl_id.as_str(),
        "the timeline shows who wrote it"
    );
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused_on_every_route() {
    let f = fixture();
    let (revoked_id, revoked) = token(&f.home, "gone", ActorKind::Human, Scope::Admin, None);
    let (_, expired) = token(
        &f.home,
        "late",
        ActorKind::Human,
        Scope::Admin,
        Some(Duration::from_secs(1)),
    );
    assert!(revoke_token_in(&f.home, &revoked_id, now()).unwrap());
    // The server reads the tokens again every 250 ms; the expiry passes after 1 s.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for (secret, code) in [(&revoked, "token_revoked"), (&expired, "token_expired")] {
        refused_on_every_route(&f, "rt_nowhere", secret, code).await;
        let (status, answer) = send(&f.app, "GET", "/v1/tickets", None, Some(secret)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code))
        );
    }
}

/// Every route (on runtime `rt`) answers the holder of `secret` 401 with `code`.
async fn refused_on_every_route(f: &Fixture, rt: &str, secret: &str, code: &str) {
    for (method, path, body, _) in routes() {
        let path = path.replace("{rt}", rt);
        let (status, answer) = send(&f.app, &method, &path, Some(body), Some(secret)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(answer["code"], code, "{method} {path}");
    }
}

#[tokio::test]
async fn runtime_tokens_are_confined_to_their_runtime_and_end_with_it() {
    let f = fixture();
    let admin = f.admin.as_str();
    let mut runtimes = Vec::new();
    for (n, id) in ["MC-1", "MC-2", "MC-3"].iter().enumerate() {
        f.open(id).await;
        let dispatch =
            json!({"dispatch_key": format!("k{n}"), "agent": "claude", "transport": "tmux"});
        let path = format!("/v1/tickets/{id}/dispatch");
        let (s, b) = f.post(&path, dispatch.clone(), admin).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let token = b["runtime_token"]
            .as_str()
            .expect("a dispatch answers runtime_token")
            .to_owned();
        assert!(token.starts_with("mcr_") && token.len() == 4 + 64);
        let (s, again) = f.post(&path, dispatch, admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            again["runtime_token"],
            token.as_str(),
            "a duplicate dispatch answers the same token"
        );
        runtimes.push((
            b["runtime_id"].as_str().unwrap().to_owned(),
            b["nonce"].as_str().unwrap().to_owned(),
            token,
        ));
    }
    let (mine, nonce, token) = &runtimes[0];
    let (other, _, _) = &runtimes[1];
    let (ended, _, ended_token) = &runtimes[2];
    let kill = json!({"reason": "done"});
    let (s, b) = f
        .post(&format!("/v1/runtimes/{ended}/kill"), kill, admin)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // Its own runtime and ticket: signal, activity, input, comment, its tasks (SPEC §19).
    let own = [
        (
            "/v1/tickets/MC-1/tasks".to_owned(),
            json!({"task_id": "plan-1", "title": "the worker's own plan"}),
        ),
        (format!("/v1/runtimes/{mine}/activity"), json!({})),
        (format!("/v1/runtimes/{mine}/input"), json!({"text": "hi"})),
        (
            "/v1/tickets/MC-1/comments".to_owned(),
            json!({"body": "from the worker"}),
        ),
    ];
    for (path, body) in own {
        let (s, b) = f.post(&path, body, token).await;
        assert_not_refused(s, &b, &path);
    }
    let (s, b) = f
        .post("/v1/tickets/MC-1/comments", json!({"body": "who"}), token)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        b["events"][0]["actor"],
        json!({"name": "claude", "kind": "agent"})
    );
    assert_eq!(b["events"][0]["token_id"], format!("rtk_{mine}"));
    let (s, b) = send(
        &f.app,
        "PATCH",
        "/v1/tickets/MC-1/tasks/plan-1",
        Some(json!({"status": "in_progress"})),
        Some(token),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Every route of another runtime, and every ticket route but its own ticket's comments and
    // tasks.
    for (method, path, body, action) in routes() {
        let path = path.replace("{rt}", other);
        let (status, answer) = send(&f.app, &method, &path, Some(body), Some(token)).await;
        if matches!(action, Action::Comment | Action::Task) {
            assert_not_refused(status, &answer, &path);
        } else {
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "another runtime's route {method} {path}: {answer}"
            );
            assert_eq!(answer["code"], "not_permitted");
        }
    }
    let another = [
        (
            "/v1/tickets/MC-2/comments",
            json!({"body": "x"}),
            "another ticket",
        ),
        (
            "/v1/tickets/MC-2/tasks",
            json!({"title": "not mine"}),
            "another ticket's tasks",
        ),
    ];
    for (path, body, case) in another {
        let (s, _) = f.post(path, body, token).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{case}");
    }
    // An ended runtime's token: refused everywhere.
    refused_on_every_route(&f, ended, ended_token, "token_expired").await;
    // A retry of the ended runtime answers the new runtime's token, which works on it.
    let retry = format!("/v1/runtimes/{ended}/retry");
    let (s, b) = f.post(&retry, json!({}), admin).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let retried = b["runtime_id"].as_str().unwrap().to_owned();
    let fresh = b["runtime_token"]
        .as_str()
        .expect("a retry answers runtime_token")
        .to_owned();
    assert_ne!(&fresh, ended_token);
    let activity = format!("/v1/runtimes/{retried}/activity");
    let (s, b) = f.post(&activity, json!({}), &fresh).await;
    assert_not_refused(s, &b, &activity);
    // The signal ends nothing; a kill does, and the token stops working at once.
    let signal = json!({"verdict": "REVIEW", "nonce": nonce, "payload": "p"});
    let (s, b) = f
        .post(&format!("/v1/runtimes/{mine}/signals"), signal, token)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let kill = json!({"reason": "r"});
    f.post(&format!("/v1/runtimes/{mine}/kill"), kill, admin)
        .await;
    let activity = format!("/v1/runtimes/{mine}/activity");
    let (s, b) = f.post(&activity, json!({}), token).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );
}
