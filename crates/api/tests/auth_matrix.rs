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

use common::{kind_name, now, send, token, KINDS};

/// Every write route: method, path (`{rt}` is replaced by a runtime id), body, action.
fn routes() -> Vec<(&'static str, String, Value, Action)> {
    let t = "/v1/tickets/MC-1";
    let r = "/v1/runtimes/{rt}";
    vec![
        (
            "POST",
            "/v1/tickets".into(),
            json!({"id": "MC-90", "title": "t"}),
            Action::Open,
        ),
        (
            "POST",
            format!("{t}/edit"),
            json!({"title": "x"}),
            Action::Edit,
        ),
        (
            "POST",
            format!("{t}/comments"),
            json!({"body": "x"}),
            Action::Comment,
        ),
        (
            "POST",
            format!("{t}/links"),
            json!({"relation": "blocked_by", "target": "MC-2"}),
            Action::Link,
        ),
        (
            "POST",
            format!("{t}/unlink"),
            json!({"relation": "blocked_by", "target": "MC-2"}),
            Action::Unlink,
        ),
        (
            "POST",
            format!("{t}/park"),
            json!({"waiting_on": ["MC-2"], "reason": "r"}),
            Action::Park,
        ),
        (
            "POST",
            format!("{t}/gates"),
            json!({"gate": "ci", "verdict": "passed"}),
            Action::Gate,
        ),
        (
            "POST",
            format!("{t}/close"),
            json!({"resolution": "done"}),
            Action::Close,
        ),
        (
            "POST",
            format!("{t}/reopen"),
            json!({"reason": "r"}),
            Action::Reopen,
        ),
        (
            "POST",
            format!("{t}/tasks"),
            json!({"title": "t"}),
            Action::Task,
        ),
        (
            "PATCH",
            format!("{t}/tasks/t1"),
            json!({"status": "done"}),
            Action::Task,
        ),
        (
            "POST",
            format!("{t}/dispatch"),
            json!({"dispatch_key": "m", "agent": "a", "transport": "process"}),
            Action::Dispatch,
        ),
        (
            "POST",
            format!("{r}/signals"),
            json!({"verdict": "DONE", "nonce": "n", "payload": "p"}),
            Action::Signal,
        ),
        ("POST", format!("{r}/activity"), json!({}), Action::Activity),
        (
            "POST",
            format!("{r}/harvest"),
            json!({"outcome": "completed", "exit_reason": "success"}),
            Action::Harvest,
        ),
        (
            "POST",
            format!("{r}/reap"),
            json!({"cause": "process_dead"}),
            Action::Reap,
        ),
        (
            "POST",
            format!("{r}/kill"),
            json!({"reason": "r"}),
            Action::Kill,
        ),
        (
            "POST",
            format!("{r}/cancel"),
            json!({"reason": "r"}),
            Action::Cancel,
        ),
        ("POST", format!("{r}/switch"), json!({}), Action::Switch),
        ("POST", format!("{r}/retry"), json!({}), Action::Retry),
        (
            "POST",
            format!("{r}/complete"),
            json!({"reason": "r"}),
            Action::Complete,
        ),
        (
            "POST",
            format!("{r}/input"),
            json!({"text": "x"}),
            Action::Input,
        ),
        (
            "POST",
            format!("{r}/abort"),
            json!({"reason": "r"}),
            Action::Abort,
        ),
        (
            "POST",
            "/v1/pools".into(),
            json!({"name": "gpu", "capacity": 2}),
            Action::Pool,
        ),
        // SPEC §16: budgets (orchestrator, human or admin).
        (
            "POST",
            "/v1/budgets".into(),
            json!({"name": "team", "scope": {"kind": "all"}, "limit_usd": 10.0}),
            Action::Budget,
        ),
        // SPEC §15: subscriptions (orchestrator, human or admin).
        (
            "POST",
            "/v1/subscriptions".into(),
            json!({"name": "ops", "url": "http://127.0.0.1:9/hook"}),
            Action::Subscribe,
        ),
        (
            "POST",
            "/v1/subscriptions/ops/pause".into(),
            json!({"reason": "r"}),
            Action::Subscribe,
        ),
        // The hook events that pause or end a runtime (issue 26: actions of their own).
        (
            "POST",
            format!("{r}/hooks/claude"),
            json!({"hook_event_name": "Notification", "notification_type": "permission_prompt"}),
            Action::RequestInput,
        ),
        (
            "POST",
            format!("{r}/hooks/claude"),
            json!({"hook_event_name": "SessionEnd", "reason": "logout"}),
            Action::EndSession,
        ),
    ]
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
    kinds: BTreeMap<String, String>,
    admin: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::Dir(dir.path().to_owned());
    let (_, admin) = token(&home, "root", ActorKind::Human, Scope::Admin, None);
    let mut kinds = BTreeMap::new();
    for kind in KINDS {
        let name = format!("{kind:?}").to_lowercase();
        kinds.insert(
            name.clone(),
            token(&home, &name, kind, Scope::Write, None).1,
        );
    }
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

#[tokio::test]
async fn every_write_route_times_every_kind() {
    let f = fixture();
    for id in ["MC-1", "MC-2"] {
        let (s, b) = send(
            &f.app,
            "POST",
            "/v1/tickets",
            Some(json!({"id": id, "title": "t"})),
            Some(&f.admin),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let mut checked = 0;
    for kind in KINDS {
        let secret = &f.kinds[&kind_name(kind)];
        for (method, path, body, action) in routes() {
            let path = path.replace("{rt}", "rt_nowhere");
            let (status, answer) = send(&f.app, method, &path, Some(body), Some(secret)).await;
            let allowed = permitted(kind, action).is_ok();
            if allowed {
                assert!(
                    !matches!(status.as_u16(), 401 | 403),
                    "given a {kind:?} token, when {method} {path}, then allowed: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "given a {kind:?} token, when {method} {path}: {answer}"
                );
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
    let ctl = &f.kinds["controller"];
    send(
        &f.app,
        "POST",
        "/v1/tickets",
        Some(json!({"id": "MC-1", "title": "t"})),
        Some(&f.admin),
    )
    .await;
    let (s, b) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-1/comments",
        Some(json!({"body": "x", "actor": {"name": "validator", "kind": "validator"}})),
        Some(ctl),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["code"], "actor_mismatch");
    let (s, b) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-1/comments",
        Some(json!({"body": "by the controller", "actor": {"name": "controller", "kind": "controller"}})),
        Some(ctl),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the token's own actor may be named: {b}"
    );
    let (s, b) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-1/comments",
        Some(json!({"body": "no actor"})),
        Some(ctl),
    )
    .await;
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
        for (method, path, body, _) in routes() {
            let path = path.replace("{rt}", "rt_nowhere");
            let (status, answer) = send(&f.app, method, &path, Some(body), Some(secret)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(answer["code"], code, "{method} {path}");
        }
        let (status, answer) = send(&f.app, "GET", "/v1/tickets", None, Some(secret)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code))
        );
    }
}

#[tokio::test]
async fn runtime_tokens_are_confined_to_their_runtime_and_end_with_it() {
    let f = fixture();
    let admin = Some(f.admin.as_str());
    let mut runtimes = Vec::new();
    for (n, id) in ["MC-1", "MC-2", "MC-3"].iter().enumerate() {
        send(
            &f.app,
            "POST",
            "/v1/tickets",
            Some(json!({"id": id, "title": "t"})),
            admin,
        )
        .await;
        let dispatch =
            json!({"dispatch_key": format!("k{n}"), "agent": "claude", "transport": "tmux"});
        let (s, b) = send(
            &f.app,
            "POST",
            &format!("/v1/tickets/{id}/dispatch"),
            Some(dispatch.clone()),
            admin,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let token = b["runtime_token"]
            .as_str()
            .expect("a dispatch answers runtime_token")
            .to_owned();
        assert!(token.starts_with("mcr_") && token.len() == 4 + 64);
        let (s, again) = send(
            &f.app,
            "POST",
            &format!("/v1/tickets/{id}/dispatch"),
            Some(dispatch),
            admin,
        )
        .await;
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
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{ended}/kill"),
        Some(json!({"reason": "done"})),
        admin,
    )
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
        let (s, b) = send(&f.app, "POST", &path, Some(body), Some(token)).await;
        assert!(!matches!(s.as_u16(), 401 | 403), "{path}: {s} {b}");
    }
    let (s, b) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-1/comments",
        Some(json!({"body": "who"})),
        Some(token),
    )
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
        let (status, answer) = send(&f.app, method, &path, Some(body), Some(token)).await;
        if matches!(action, Action::Comment | Action::Task) {
            assert!(!matches!(status.as_u16(), 401 | 403), "{path}: {answer}");
        } else {
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "another runtime's route {method} {path}: {answer}"
            );
            assert_eq!(answer["code"], "not_permitted");
        }
    }
    let (s, _) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-2/comments",
        Some(json!({"body": "x"})),
        Some(token),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another ticket");
    let (s, _) = send(
        &f.app,
        "POST",
        "/v1/tickets/MC-2/tasks",
        Some(json!({"title": "not mine"})),
        Some(token),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another ticket's tasks");
    // An ended runtime's token: refused everywhere.
    for (method, path, body, _) in routes() {
        let path = path.replace("{rt}", ended);
        let (status, answer) = send(&f.app, method, &path, Some(body), Some(ended_token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(answer["code"], "token_expired");
    }
    // A retry of the ended runtime answers the new runtime's token, which works on it.
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{ended}/retry"),
        Some(json!({})),
        admin,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let retried = b["runtime_id"].as_str().unwrap().to_owned();
    let fresh = b["runtime_token"]
        .as_str()
        .expect("a retry answers runtime_token")
        .to_owned();
    assert_ne!(&fresh, ended_token);
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{retried}/activity"),
        Some(json!({})),
        Some(&fresh),
    )
    .await;
    assert!(!matches!(s.as_u16(), 401 | 403), "{s} {b}");
    // The signal ends nothing; a kill does, and the token stops working at once.
    let signal = json!({"verdict": "REVIEW", "nonce": nonce, "payload": "p"});
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{mine}/signals"),
        Some(signal),
        Some(token),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{mine}/kill"),
        Some(json!({"reason": "r"})),
        admin,
    )
    .await;
    let (s, b) = send(
        &f.app,
        "POST",
        &format!("/v1/runtimes/{mine}/activity"),
        Some(json!({})),
        Some(token),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );
}
