//! What the api crate's token tests share: a request through the real router and middleware,
//! tokens created in a store's home, the clock.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use api::auth::{create_token_in, NewToken, Scope};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use events::ActorKind;
use serde_json::Value;
use service::home::Home;
use tower::ServiceExt;

pub const KINDS: [ActorKind; 6] = ActorKind::SPEC_ORDER;

pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A token in a store's home: (id, secret).
pub fn token(
    home: &Home,
    name: &str,
    kind: ActorKind,
    scope: Scope,
    expires_in: Option<Duration>,
) -> (String, String) {
    let new = NewToken {
        name: name.into(),
        kind,
        scope,
        expires_in,
    };
    let (info, secret) = create_token_in(home, &new, now()).unwrap();
    (info.id, secret)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

pub fn kind_name(kind: ActorKind) -> String {
    format!("{kind:?}").to_lowercase()
}

/// The seed of a randomized test: `PROPTEST_RNG_SEED` to replay one, else from the clock;
/// printed, so every run can be replayed.
pub fn logged_seed(what: &str) -> u64 {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(now_nanos()));
    println!("{what} seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    seed
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A store's home in a temporary directory, with an admin token in it: (the directory, the
/// home, the admin's secret).
pub fn home_with_admin() -> (tempfile::TempDir, Home, String) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::Dir(dir.path().to_owned());
    let (_, admin) = token(&home, "root", ActorKind::Human, Scope::Admin, None);
    (dir, home, admin)
}

/// A write token for every actor kind in a store's home, by kind name: (id, secret).
pub fn write_tokens(home: &Home) -> BTreeMap<String, (String, String)> {
    KINDS
        .into_iter()
        .map(|kind| {
            let name = kind_name(kind);
            let made = token(home, &name, kind, Scope::Write, None);
            (name, made)
        })
        .collect()
}

/// An allowed request may still be refused by the command's own rules (404, 409, 422), but
/// never as 401 or 403; `case` says which request it was.
pub fn assert_not_refused(status: StatusCode, answer: &Value, case: &str) {
    assert!(
        !matches!(status.as_u16(), 401 | 403),
        "{case}: {status} {answer}"
    );
}
