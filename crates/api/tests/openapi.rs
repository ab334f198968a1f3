//! The derived `/openapi.json` covers every route the router serves and nothing else, states
//! the scope the auth middleware really enforces, and answers bare requests with documented
//! statuses. (Schemas follow the types by construction; schemathesis checks real answers
//! against them in CI.)

use std::collections::{BTreeMap, BTreeSet};

use api::auth::{create_token, Scope};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];

fn document() -> Value {
    api::server::routes().1
}

/// Every (method, path) the document lists.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// A concrete request path for a documented one.
fn concrete(path: &str) -> String {
    path.replace("{id}", "MC-1").replace("{task_id}", "t1")
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method"))
        .uri(concrete(path));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // An event stream never ends: look at its head only.
    if content_type.starts_with("text/event-stream") {
        return (status, content_type, Value::Null);
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn scope_of(op: &Value) -> Option<Scope> {
    match op["x-required-scope"].as_str() {
        None => {
            assert_eq!(
                op["security"],
                serde_json::json!([]),
                "an open operation says so"
            );
            None
        }
        Some("read") => Some(Scope::Read),
        Some("write") => Some(Scope::Write),
        Some("admin") => Some(Scope::Admin),
        Some(other) => panic!("unknown scope {other}"),
    }
}

fn below(scope: Scope) -> Option<Scope> {
    match scope {
        Scope::Read => None,
        Scope::Write => Some(Scope::Read),
        Scope::Admin => Some(Scope::Write),
    }
}

#[test]
fn every_ref_resolves_and_every_operation_has_an_id() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').expect("ref end")];
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved $ref {name}"
        );
    }
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no id"));
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
}

/// Every documented operation is served (not the `no_route` fallback, not 405) with exactly
/// its documented scope and a documented status; every other method on a documented path is
/// 405; and a path the document does not list is the fallback. The router and the document
/// come from one list of registrations, so this holds for routes added later too.
#[tokio::test]
async fn the_document_lists_exactly_the_routes_served_with_their_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tokens = BTreeMap::new();
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        tokens.insert(
            scope,
            create_token(dir.path(), scope, "test").expect("token"),
        );
    }
    let opened = api::server::open(dir.path()).expect("open");
    let app = api::server::app(opened.state.clone());
    let doc = document();
    let documented = operations(&doc);
    assert!(documented.len() >= 41, "{} operations", documented.len());
    for (method, path) in &documented {
        let name = format!("{method} {path}");
        let op = &doc["paths"][path][method];
        let scope = scope_of(op);
        if let Some(needed) = scope {
            let (status, _, body) = send(&app, method, path, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} without a token");
            assert_eq!(body["code"], "unauthorized");
            if let Some(lower) = below(needed) {
                let (status, _, _) = send(&app, method, path, Some(&tokens[&lower])).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{name} with {lower:?}");
            }
        }
        let token = scope.map(|s| tokens[&s].as_str());
        let (status, content_type, body) = send(&app, method, path, token).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{name} is not routed"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && body["code"] == "no_route"),
            "{name} falls through to the fallback"
        );
        assert!(
            !matches!(status.as_u16(), 401 | 403),
            "{name} refused its scope"
        );
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{name} answered {status}, which is not documented"
        );
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type, "application/problem+json", "{name}");
        }
    }
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            if documented.contains(&(method.to_owned(), path.clone())) {
                continue;
            }
            let (status, _, _) = send(&app, method, path, Some(&tokens[&Scope::Admin])).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented"
            );
        }
    }
    for path in [
        "/v1/nothing",
        "/v1/tickets/MC-1/nothing",
        "/v1/runtimes/rt/nothing",
        "/v2/tickets",
    ] {
        let (status, _, body) = send(&app, "get", path, Some(&tokens[&Scope::Admin])).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("no_route")),
            "{path}"
        );
    }
}

/// Schema `name` in `schemas` declares each of `fields` among its properties.
fn assert_has_properties(schemas: &Value, name: &str, fields: &[&str]) {
    let declared: BTreeSet<&str> = schemas[name]["properties"]
        .as_object()
        .expect("props")
        .keys()
        .map(String::as_str)
        .collect();
    for f in fields {
        assert!(declared.contains(f), "{name} lacks {f}");
    }
}

/// A field added to a body or a view shows up with no second edit: spot-check that schemas are
/// the types' own (serde names, closed bodies, limits).
#[test]
fn schemas_follow_the_types() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let dispatch = &schemas["DispatchBody"];
    assert_eq!(dispatch["additionalProperties"], false);
    assert_has_properties(
        schemas,
        "DispatchBody",
        &[
            "dispatch_key",
            "agent",
            "transport",
            "tmux_target",
            "process_id",
            "replace",
            "actor",
            "expected_version",
        ],
    );
    assert_eq!(
        dispatch["properties"]["process_id"]["maximum"],
        u64::from(u32::MAX)
    );
    assert_eq!(schemas["Actor"]["properties"]["name"]["minLength"], 1);
    assert_eq!(
        schemas["TicketId"]["pattern"],
        events::schema::TICKET_ID_PATTERN
    );
    assert_has_properties(
        schemas,
        "TicketView",
        &[
            "id",
            "state",
            "next_action",
            "failure_reason",
            "current_runtime",
            "tasks",
            "version",
            "position",
        ],
    );
    let kinds = schemas["RuntimeClass"]["enum"].as_array().expect("enum");
    assert!(
        kinds.iter().any(|k| k == "websocket-idle"),
        "kebab-case classes"
    );
    let types = doc.to_string();
    assert!(
        types.contains("\"runtime.reaped\""),
        "event types as serde names them"
    );
}

/// Every documented operation's scope is the SPEC's (§7, §12): health checks and the document
/// none, `/v1/admin/*` and the raw append `admin`, other reads `read`, other writes `write`,
/// written out here apart from the route table that declares them.
#[test]
fn every_route_declares_the_scope_the_spec_gives_it() {
    let doc = document();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let spec = match (method.as_str(), path.as_str()) {
            (_, "/healthz" | "/readyz" | "/openapi.json") => None,
            (_, p) if p.starts_with("/v1/admin") => Some(Scope::Admin),
            ("post", "/v1/tickets/{id}/events") => Some(Scope::Admin),
            ("get", _) => Some(Scope::Read),
            _ => Some(Scope::Write),
        };
        assert_eq!(scope_of(op), spec, "{method} {path}");
    }
}
