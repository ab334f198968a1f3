//! `GET /openapi.json` tells the truth: its route table is the router's (by source and by
//! request), its scopes are the auth middleware's, its request schemas are the serde structs'
//! (field names, enum values, nullability), its `$ref`s resolve, and real responses of a small
//! scenario validate against the documented schema for their status.

use std::collections::{BTreeMap, BTreeSet};

use api::auth::{create_token, Scope};
use api::openapi::{self, Method, Route, ROUTES};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tower::ServiceExt;

// ---- the document on its own ----

#[test]
fn document_has_openapi_info_paths_and_every_operation_answers() {
    let doc = openapi::document();
    // For external validators and fuzzers: `MC_LEDGER_OPENAPI_OUT=/tmp/openapi.json cargo test`.
    if let Ok(path) = std::env::var("MC_LEDGER_OPENAPI_OUT") {
        let pretty = serde_json::to_string_pretty(&doc).expect("serializes");
        std::fs::write(&path, pretty).expect("write the document");
    }
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    let mut operation_ids = BTreeSet::new();
    let mut count = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            count += 1;
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                operation_ids.insert(id.to_owned()),
                "operationId {id} twice"
            );
            // Path parameters declared = placeholders in the template.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().expect("name"))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, placeholders(path), "{method} {path}");
        }
    }
    assert_eq!(count, ROUTES.len());
}

fn placeholders(path: &str) -> BTreeSet<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

#[test]
fn every_ref_resolves() {
    let doc = openapi::document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "only {} refs", refs.len());
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local ref");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// ---- the table against the router ----

/// Every `(method, path)` that `server.rs` routes, read from its source text.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/server.rs");
    assert!(
        !src.contains(".nest(") && !src.contains(".route_service("),
        "server.rs nests routers or services: teach this scan about them"
    );
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let mut depth = 1;
        let mut end = rest.len();
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &rest[..end];
        let path = args.split('"').nth(1).expect("a path literal");
        let mut methods = 0;
        for m in [
            "get", "post", "patch", "put", "delete", "head", "options", "any",
        ] {
            for (k, _) in args.match_indices(&format!("{m}(")) {
                if matches!(args[..k].chars().last(), Some('.' | ' ' | '\n' | '(' | ',')) {
                    out.insert((m.to_owned(), path.to_owned()));
                    methods += 1;
                }
            }
        }
        assert!(methods > 0, "no method found for {path}");
    }
    out
}

#[test]
fn route_table_equals_the_routes_in_server_rs() {
    let source = routes_in_source();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(table.len(), ROUTES.len(), "a route is in the table twice");
    let undocumented: Vec<_> = source.difference(&table).collect();
    let unrouted: Vec<_> = table.difference(&source).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not documented: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "MC-1").replace("{task_id}", "t1")
}

fn method(m: Method) -> axum::http::Method {
    match m {
        Method::Get => axum::http::Method::GET,
        Method::Post => axum::http::Method::POST,
        Method::Patch => axum::http::Method::PATCH,
    }
}

fn lower(scope: Scope) -> Option<Scope> {
    match scope {
        Scope::Read => None,
        Scope::Write => Some(Scope::Read),
        Scope::Admin => Some(Scope::Write),
    }
}

fn documented_statuses(route: &Route) -> BTreeSet<u16> {
    route
        .ok
        .iter()
        .map(|s| s.status)
        .chain(route.errors.iter().copied())
        .collect()
}

async fn send(app: &Router, route: &Route, token: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method(route.method))
        .uri(concrete(route.path));
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
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Every documented route is served (not the `no_route` fallback, not 405), needs exactly the
/// documented scope, and answers a bare request with a documented status and content type.
#[tokio::test]
async fn every_documented_route_is_served_with_its_documented_scope() {
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
    for route in ROUTES {
        let name = format!("{} {}", route.method.as_str(), route.path);
        let (status, _, body) = send(&app, route, None).await;
        match route.scope {
            None => assert_ne!(status, StatusCode::UNAUTHORIZED, "{name} needs no token"),
            Some(needed) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} without a token");
                assert_eq!(body["code"], "unauthorized");
                if let Some(below) = lower(needed) {
                    let (status, _, _) = send(&app, route, Some(&tokens[&below])).await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{name} with {below:?}");
                }
            }
        }
        let token = route.scope.map(|s| tokens[&s].as_str());
        let (status, content_type, body) = send(&app, route, token).await;
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
            "{name} refused its documented scope {:?}",
            route.scope
        );
        assert!(
            documented_statuses(route).contains(&status.as_u16()),
            "{name} answered {status}, which is not documented"
        );
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type, "application/problem+json", "{name}");
        }
    }
}

// ---- request schemas against the serde structs ----

/// The fields a `deny_unknown_fields` struct knows, read from serde's unknown-field message.
fn fields_of<T: DeserializeOwned>() -> BTreeSet<String> {
    let err = serde_json::from_value::<T>(json!({"zz_not_a_field": 0}))
        .err()
        .expect("an unknown field is refused")
        .to_string();
    let expected = err
        .split_once("expected")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("unexpected serde message: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn accepts<T: DeserializeOwned>(v: Value) -> Result<(), String> {
    serde_json::from_value::<T>(v)
        .map(drop)
        .map_err(|e| e.to_string())
}

type Check = (fn() -> BTreeSet<String>, fn(Value) -> Result<(), String>);

macro_rules! structs {
    ($($name:literal => $ty:ty),* $(,)?) => {
        fn struct_for(name: &str) -> Option<Check> {
            match name {
                $($name => Some((
                    fields_of::<$ty> as fn() -> BTreeSet<String>,
                    accepts::<$ty> as fn(Value) -> Result<(), String>,
                )),)*
                _ => None,
            }
        }
    };
}

structs! {
    "OpenBody" => api::commands::OpenBody,
    "EditBody" => api::commands::EditBody,
    "CommentBody" => api::commands::CommentBody,
    "LinkBody" => api::commands::LinkBody,
    "ParkBody" => api::commands::ParkBody,
    "GateBody" => api::commands::GateBody,
    "CloseBody" => api::commands::CloseBody,
    "ReasonBody" => api::commands::ReasonBody,
    "TaskBody" => api::commands::TaskBody,
    "TaskPatchBody" => api::commands::TaskPatchBody,
    "DispatchBody" => api::commands::DispatchBody,
    "ReapBody" => api::commands::ReapBody,
    "SwitchBody" => api::commands::SwitchBody,
    "RetryBody" => api::commands::RetryBody,
    "InputBody" => api::commands::InputBody,
    "ActivityBody" => api::commands::ActivityBody,
    "SignalBody" => api::commands::SignalBody,
    "HarvestBody" => api::commands::HarvestBody,
    "AbortBody" => api::commands::AbortBody,
    "RawAppendBody" => api::commands::RawAppendBody,
    "Actor" => events::Actor,
    "TicketOpened" => events::TicketOpened,
    "TicketEdited" => events::TicketEdited,
    "TicketCommented" => events::TicketCommented,
    "TicketLinked" => events::TicketLinked,
    "TicketUnlinked" => events::TicketUnlinked,
    "TicketParked" => events::TicketParked,
    "GateRecorded" => events::GateRecorded,
    "TicketClosed" => events::TicketClosed,
    "TicketReopened" => events::TicketReopened,
    "TaskAdded" => events::TaskAdded,
    "TaskUpdated" => events::TaskUpdated,
    "RuntimeDispatched" => events::RuntimeDispatched,
    "RuntimeLaunchAborted" => events::RuntimeLaunchAborted,
    "RuntimeActivity" => events::RuntimeActivity,
    "RuntimeSignaled" => events::RuntimeSignaled,
    "RuntimeSignalRejected" => events::RuntimeSignalRejected,
    "RuntimeInputSent" => events::RuntimeInputSent,
    "RuntimeHarvested" => events::RuntimeHarvested,
    "RuntimeReaped" => events::RuntimeReaped,
    "RuntimeKilled" => events::RuntimeKilled,
    "RuntimeCompletedByController" => events::RuntimeCompletedByController,
    "RuntimeCancelled" => events::RuntimeCancelled,
    "RuntimeSwitched" => events::RuntimeSwitched,
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(&r[1..]).expect("ref resolves")),
        None => schema,
    }
}

/// A value the schema admits, with every optional property filled in.
fn sample(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        return sample(doc, &all[0]);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .expect("a value");
    }
    match schema["type"].as_str() {
        Some("string") => match schema["pattern"].as_str() {
            Some(openapi::TICKET_ID_PATTERN) => json!("MC-1"),
            Some("^[0-9a-f]{64}$") => json!("0".repeat(64)),
            _ if schema["format"] == "date-time" => json!("2026-01-02T03:04:05.678Z"),
            _ => json!("x"),
        },
        Some("integer") => schema["minimum"].clone(),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([sample(doc, &schema["items"])]),
        Some("object") => {
            let mut out = serde_json::Map::new();
            for (k, v) in schema["properties"].as_object().into_iter().flatten() {
                out.insert(k.clone(), sample(doc, v));
            }
            Value::Object(out)
        }
        // Any JSON (a raw Claude result): null is its "absent".
        _ => Value::Null,
    }
}

fn is_nullable(doc: &Value, schema: &Value) -> Option<bool> {
    let schema = resolve(doc, schema);
    if schema.get("type").is_none() && schema.get("allOf").is_none() {
        return None; // any value
    }
    Some(schema["nullable"] == true)
}

/// For a closed schema and its struct: same field names; the full sample is accepted; every
/// enum value is accepted; null is accepted exactly where the schema says nullable; every
/// property outside `required` may be left out.
fn check_closed_schema(doc: &Value, name: &str, check: Check) {
    let (fields, accept) = check;
    let schema = resolve(doc, &doc["components"]["schemas"][name]);
    assert_eq!(
        schema["additionalProperties"], false,
        "{name} is not closed"
    );
    let properties = schema["properties"].as_object().expect("properties");
    let documented: BTreeSet<String> = properties.keys().cloned().collect();
    assert_eq!(
        documented,
        fields(),
        "{name}: documented fields vs struct fields"
    );
    let full = sample(doc, schema);
    accept(full.clone()).unwrap_or_else(|e| panic!("{name} refuses its sample {full}: {e}"));
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (field, prop) in properties {
        let prop = resolve(doc, prop);
        let inner = prop["allOf"].get(0).map_or(prop, |p| resolve(doc, p));
        for value in inner["enum"].as_array().into_iter().flatten() {
            if value.is_null() {
                continue;
            }
            let mut v = full.clone();
            v[field] = value.clone();
            accept(v).unwrap_or_else(|e| panic!("{name}.{field} refuses {value}: {e}"));
        }
        if let Some(nullable) = is_nullable(doc, prop) {
            let mut v = full.clone();
            v[field] = Value::Null;
            assert_eq!(
                accept(v).is_ok(),
                nullable,
                "{name}.{field}: null accepted vs documented nullable"
            );
        }
        if !required.contains(field.as_str()) {
            let mut v = full.clone();
            v.as_object_mut().expect("object").remove(field);
            accept(v).unwrap_or_else(|e| panic!("{name}.{field} is optional but: {e}"));
        }
    }
}

#[test]
fn request_and_event_schemas_match_the_serde_structs() {
    let doc = openapi::document();
    let mut checked = BTreeSet::new();
    for route in ROUTES {
        if let Some(body) = route.body {
            let check = struct_for(body).unwrap_or_else(|| panic!("no struct for {body}"));
            if body != "RawAppendBody" {
                check_closed_schema(&doc, body, check);
            }
            checked.insert(body);
        }
    }
    check_closed_schema(&doc, "Actor", struct_for("Actor").expect("Actor"));
    let (fields, _) = struct_for("RawAppendBody").expect("raw");
    let raw = &doc["components"]["schemas"]["RawAppendBody"];
    let documented: BTreeSet<String> = raw["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    assert_eq!(documented, fields());

    // Every event type: its payload schema is its struct, and a raw append of it parses.
    let payloads = openapi::event_payload_schemas();
    let types: Vec<&str> = payloads.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, events::EVENT_TYPES.to_vec());
    let actor = sample(&doc, &doc["components"]["schemas"]["Actor"]);
    for (type_name, schema) in payloads {
        let check = struct_for(schema).unwrap_or_else(|| panic!("no struct for {schema}"));
        check_closed_schema(&doc, schema, check);
        let data = sample(&doc, &doc["components"]["schemas"][schema]);
        let body = json!({
            "events": [{"id": "e1", "recorded_at": "2026-01-02T03:04:05.678Z", "actor": actor,
                        "type": type_name, "data": data}],
            "expected_version": 0,
        });
        accepts::<api::commands::RawAppendBody>(body)
            .unwrap_or_else(|e| panic!("raw append of {type_name}: {e}"));
    }
}

#[test]
fn query_parameters_match_the_query_structs() {
    type Fields = fn() -> BTreeSet<String>;
    let structs: BTreeMap<&str, Fields> = BTreeMap::from([
        (
            "listTickets",
            fields_of::<api::reads::TicketsQuery> as Fields,
        ),
        ("getTicket", fields_of::<api::reads::AsOfQuery> as Fields),
        (
            "listTicketEvents",
            fields_of::<api::reads::StreamQuery> as Fields,
        ),
        (
            "listComments",
            fields_of::<api::reads::StreamQuery> as Fields,
        ),
        (
            "listRuntimes",
            fields_of::<api::reads::RuntimesQuery> as Fields,
        ),
        ("listEvents", fields_of::<api::reads::EventsQuery> as Fields),
        ("board", fields_of::<api::reads::BoardQuery> as Fields),
        ("streamEvents", fields_of::<api::sse::StreamQuery> as Fields),
    ]);
    for route in ROUTES {
        let documented: BTreeSet<String> = route
            .params
            .iter()
            .filter(|p| p.location == openapi::In::Query)
            .map(|p| p.name.to_owned())
            .collect();
        let actual = structs
            .get(route.operation_id)
            .map(|f| f())
            .unwrap_or_default();
        assert_eq!(documented, actual, "{}", route.operation_id);
        // A query string that does not parse is a 400, so the route must document it
        // (schemathesis found the board's missing one).
        assert!(
            actual.is_empty() || route.errors.contains(&400),
            "{} takes query parameters but does not document 400",
            route.operation_id
        );
    }
}

#[test]
fn response_enums_match_the_projection_types() {
    let states: Vec<String> = projections::TicketState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(states, openapi::TICKET_STATES);
    for class in openapi::RUNTIME_CLASSES {
        let parsed: projections::RuntimeClass =
            serde_json::from_value(json!(class)).unwrap_or_else(|e| panic!("{class}: {e}"));
        assert_eq!(parsed.as_str(), *class);
    }
    for code in openapi::NEXT_ACTION_CODES {
        let parsed: projections::NextActionCode =
            serde_json::from_value(json!(code)).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(parsed.as_str(), *code);
    }
    for kind in openapi::ALERT_KINDS {
        assert!(
            [
                projections::AlertKind::WorkerLost,
                projections::AlertKind::StaleWorker,
                projections::AlertKind::RetryLoop,
                projections::AlertKind::UnansweredQuestion,
                projections::AlertKind::ReadyToResume,
            ]
            .iter()
            .any(|k| k.as_str() == *kind),
            "{kind}"
        );
    }
}

// ---- responses against the documented schemas ----

/// A small validator for the subset of JSON Schema the document uses. Unknown patterns fail
/// loudly so a new one gets a rule here.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    validate_in(doc, schema, v, at, errs, true);
}

/// `strict`: an object field the schema does not list is an error (off inside `oneOf`
/// branches, which list only what tells them apart).
fn validate_in(
    doc: &Value,
    schema: &Value,
    v: &Value,
    at: &str,
    errs: &mut Vec<String>,
    strict: bool,
) {
    let schema = resolve(doc, schema);
    let any = ["type", "allOf", "oneOf", "enum", "properties"]
        .iter()
        .all(|k| schema.get(k).is_none());
    if any || (v.is_null() && schema["nullable"] == true) {
        return;
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        validate_in(doc, sub, v, at, errs, strict);
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let matching = branches
            .iter()
            .filter(|b| {
                let mut e = Vec::new();
                validate_in(doc, b, v, at, &mut e, false);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errs.push(format!("{at}: {matching} oneOf branches match"));
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            errs.push(format!("{at}: {v} not in {values:?}"));
        }
    }
    let type_ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => panic!("unknown type {other}"),
    };
    if !type_ok {
        errs.push(format!("{at}: {v} is not {}", schema["type"]));
        return;
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_u64(), v.as_u64()) {
        if n < min {
            errs.push(format!("{at}: {n} < {min}"));
        }
    }
    if let Some(s) = v.as_str() {
        if let Some(p) = schema["pattern"].as_str() {
            let ok = match p {
                openapi::TICKET_ID_PATTERN => events::is_ticket_id(s),
                "^[0-9a-f]{64}$" => {
                    s.len() == 64
                        && s.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                }
                _ if schema["format"] == "date-time" => {
                    s.ends_with('Z') && events::Timestamp::parse_rfc3339(s).is_some()
                }
                other => panic!("no rule for pattern {other}"),
            };
            if !ok {
                errs.push(format!("{at}: {s:?} does not match {p}"));
            }
        }
        if let Some(min) = schema["minLength"].as_u64() {
            if u64::try_from(s.chars().count()).unwrap_or(u64::MAX) < min {
                errs.push(format!("{at}: shorter than {min}"));
            }
        }
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate_in(
                doc,
                &schema["items"],
                item,
                &format!("{at}[{i}]"),
                errs,
                true,
            );
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().expect("name");
            if !obj.contains_key(r) {
                errs.push(format!("{at}: missing required {r}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (k, value) in obj {
            match properties.and_then(|p| p.get(k)) {
                Some(p) => validate_in(doc, p, value, &format!("{at}.{k}"), errs, true),
                None if schema["additionalProperties"] == false => {
                    errs.push(format!("{at}: unexpected field {k}"));
                }
                None if strict
                    && properties.is_some()
                    && schema["additionalProperties"] != true =>
                {
                    errs.push(format!("{at}: undocumented field {k}"));
                }
                None => {}
            }
        }
    }
}

fn route_for(method_name: &str, path: &str) -> &'static Route {
    let segments: Vec<&str> = path.split('/').collect();
    let fits = |r: &&Route| {
        let t: Vec<&str> = r.path.split('/').collect();
        r.method.as_str() == method_name
            && t.len() == segments.len()
            && t.iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    };
    let mut candidates: Vec<&Route> = ROUTES.iter().filter(fits).collect();
    // A literal segment wins over a placeholder (`/v1/events/stream`).
    candidates.sort_by_key(|r| r.path.matches('{').count());
    candidates
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no documented route for {method_name} {path}"))
}

struct Client {
    app: Router,
    doc: Value,
    seen: BTreeSet<(&'static str, u16)>,
}

impl Client {
    /// Sends a request and checks the answer against the document; returns status and body.
    async fn call(
        &mut self,
        method_name: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = path_and_query.split('?').next().expect("path");
        let route = route_for(method_name, path);
        let mut req = Request::builder()
            .method(method_name.to_uppercase().as_str())
            .uri(path_and_query);
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
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let name = format!("{method_name} {path_and_query} → {status}");
        let documented =
            &self.doc["paths"][route.path][route.method.as_str()]["responses"][status.to_string()];
        assert!(documented.is_object(), "{name}: status not documented");
        self.seen.insert((route.operation_id, status));
        let (media, schema) = documented["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .map(|(m, s)| (m.clone(), s["schema"].clone()))
            .unwrap_or_else(|| panic!("{name}: no content documented"));
        assert!(
            content_type.starts_with(&media),
            "{name}: {content_type} is not {media}"
        );
        if media == "text/event-stream" {
            return (status, Value::Null);
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        if media != "application/json" && media != "application/problem+json" {
            return (status, Value::Null);
        }
        let value: Value = serde_json::from_slice(&bytes).expect("JSON body");
        let mut errs = Vec::new();
        validate(&self.doc, &schema, &value, "$", &mut errs);
        let shown: String = value.to_string().chars().take(2000).collect();
        assert!(errs.is_empty(), "{name}: {shown}\n{}", errs.join("\n"));
        (status, value)
    }
}

#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = api::server::open(dir.path()).expect("open");
    let mut c = Client {
        app: api::server::app(opened.state.clone()),
        doc: openapi::document(),
        seen: BTreeSet::new(),
    };
    let actor = json!({"name": "luci", "kind": "orchestrator"});
    let with = |mut v: Value| {
        v["actor"] = actor.clone();
        Some(v)
    };

    assert_eq!(
        c.call(
            "post",
            "/v1/tickets",
            with(json!({"id": "MC-1", "title": "one"}))
        )
        .await
        .0,
        201
    );
    let open2 = json!({"id": "MC-2", "title": "two", "umbrella": true, "labels": ["a"], "priority": "high"});
    assert_eq!(
        c.call("post", "/v1/tickets", with(open2.clone())).await.0,
        201
    );
    assert_eq!(c.call("post", "/v1/tickets", with(open2)).await.0, 409);
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/comments",
            with(json!({"body": "hi"}))
        )
        .await
        .0,
        201
    );
    let link = json!({"relation": "child_of", "target": "MC-2"});
    assert_eq!(
        c.call("post", "/v1/tickets/MC-1/links", with(link.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        c.call("post", "/v1/tickets/MC-1/links", with(link)).await.0,
        200
    );
    let (status, added) = c
        .call(
            "post",
            "/v1/tickets/MC-1/tasks",
            with(json!({"title": "t"})),
        )
        .await;
    assert_eq!(status, 201);
    let task_id = added["events"][0]["data"]["task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    let task_path = format!("/v1/tickets/MC-1/tasks/{task_id}");
    assert_eq!(
        c.call("patch", &task_path, with(json!({"status": "done"})))
            .await
            .0,
        201
    );
    let gate = json!({"gate": "ci", "verdict": "passed", "commit": "abc"});
    assert_eq!(
        c.call("post", "/v1/tickets/MC-1/gates", with(gate)).await.0,
        201
    );
    let dispatch =
        json!({"dispatch_key": "k1", "agent": "a", "transport": "tmux", "tmux_target": "s"});
    let (status, d) = c
        .call("post", "/v1/tickets/MC-1/dispatch", with(dispatch.clone()))
        .await;
    assert_eq!(status, 201);
    let rt = d["runtime_id"].as_str().expect("runtime_id").to_owned();
    let nonce = d["nonce"].as_str().expect("nonce").to_owned();
    assert_eq!(
        c.call("post", "/v1/tickets/MC-1/dispatch", with(dispatch))
            .await
            .0,
        200
    );
    let rt_path = |verb: &str| format!("/v1/runtimes/{rt}/{verb}");
    assert_eq!(
        c.call("post", &rt_path("activity"), with(json!({"note": "n"})))
            .await
            .0,
        201
    );
    assert_eq!(
        c.call("post", &rt_path("activity"), with(json!({})))
            .await
            .0,
        202
    );
    let question = json!({"verdict": "QUESTION", "nonce": nonce, "payload": "why?"});
    assert_eq!(
        c.call("post", &rt_path("signals"), with(question)).await.0,
        201
    );
    let (_, alerts) = c.call("get", "/v1/alerts", None).await;
    assert!(alerts["alerts"].is_array());
    assert_eq!(
        c.call("post", &rt_path("input"), with(json!({"text": "because"})))
            .await
            .0,
        201
    );
    let stale = json!({"verdict": "DONE", "nonce": "MC_TICKET_TURN:1:0:deadbeef", "payload": ""});
    let (status, refused) = c.call("post", &rt_path("signals"), with(stale)).await;
    assert_eq!(status, 409);
    assert!(refused["recorded_position"].is_u64(), "{refused}");
    let harvest = json!({"outcome": "failed", "exit_reason": "error", "turns": 3, "cost_usd": 0.25, "session_id": "s1"});
    assert_eq!(
        c.call("post", &rt_path("harvest"), with(harvest)).await.0,
        201
    );
    let reap = json!({"cause": "tmux_missing"});
    assert_eq!(
        c.call("post", &rt_path("reap"), with(reap.clone())).await.0,
        201
    );
    assert_eq!(c.call("post", &rt_path("reap"), with(reap)).await.0, 200);
    let (status, ended) = c
        .call("post", &rt_path("kill"), with(json!({"reason": "r"})))
        .await;
    assert_eq!(status, 409);
    assert!(ended["class"].is_string(), "{ended}");
    c.call("get", &format!("/v1/runtimes/{rt}"), None).await;
    let (status, retried) = c
        .call("post", &rt_path("retry"), with(json!({"resume": true})))
        .await;
    assert_eq!(status, 201);
    let rt2 = retried["runtime_id"]
        .as_str()
        .expect("runtime_id")
        .to_owned();
    let switch = json!({"model": "m"});
    assert_eq!(
        c.call("post", &format!("/v1/runtimes/{rt2}/switch"), with(switch))
            .await
            .0,
        201
    );
    let complete = json!({"reason": "done by hand", "commit": "abc"});
    assert_eq!(
        c.call(
            "post",
            &format!("/v1/runtimes/{rt2}/complete"),
            with(complete)
        )
        .await
        .0,
        201
    );
    let dispatch = json!({"dispatch_key": "k3", "agent": "a", "transport": "websocket"});
    let (status, d) = c
        .call("post", "/v1/tickets/MC-1/dispatch", with(dispatch))
        .await;
    assert_eq!(status, 201);
    let rt3 = d["runtime_id"].as_str().expect("runtime_id").to_owned();
    assert_eq!(
        c.call(
            "post",
            &format!("/v1/runtimes/{rt3}/kill"),
            with(json!({"reason": "r"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/park",
            with(json!({"waiting_on": ["MC-2"], "reason": "r"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-2/close",
            with(json!({"resolution": "done"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-2/close",
            with(json!({"resolution": "done"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-2/reopen",
            with(json!({"reason": "again"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/edit",
            with(json!({"title": "uno"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/edit",
            with(json!({"title": "uno"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/unlink",
            with(json!({"relation": "child_of", "target": "MC-2"}))
        )
        .await
        .0,
        201
    );
    let stale_version = json!({"body": "x", "expected_version": 999});
    let (status, conflict) = c
        .call("post", "/v1/tickets/MC-1/comments", with(stale_version))
        .await;
    assert_eq!(status, 409);
    assert!(conflict["current_version"].is_u64(), "{conflict}");
    let raw = json!({"events": [{"id": "imp-1", "recorded_at": "2026-01-02T03:04:05.678Z",
        "actor": actor, "type": "ticket.opened", "data": {"title": "imported"}}]});
    assert_eq!(
        c.call("post", "/v1/tickets/MC-3/events", Some(raw.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        c.call("post", "/v1/tickets/MC-3/events", Some(raw)).await.0,
        200
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/runtimes/rt_nope/abort",
            with(json!({"reason": "r"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/runtimes/rt_nope/cancel",
            with(json!({"reason": "r"}))
        )
        .await
        .0,
        404
    );

    // Refusals.
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-1/comments",
            with(json!({"body": "x", "zz": 1}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/bad/comments",
            with(json!({"body": "x"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        c.call(
            "post",
            "/v1/tickets/MC-9/comments",
            with(json!({"body": "x"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(c.call("get", "/v1/tickets?limit=0", None).await.0, 400);
    assert_eq!(c.call("get", "/v1/tickets?zz=1", None).await.0, 400);
    assert_eq!(c.call("get", "/v1/tickets?state=nope", None).await.0, 400);
    assert_eq!(c.call("get", "/v1/tickets?parent=nope", None).await.0, 422);
    assert_eq!(
        c.call("get", "/v1/tickets/MC-1?as_of=999999", None).await.0,
        422
    );
    assert_eq!(c.call("get", "/v1/tickets/MC-9", None).await.0, 404);
    assert_eq!(c.call("get", "/v1/runtimes/rt_nope", None).await.0, 404);

    // Reads.
    let (_, page) = c.call("get", "/v1/tickets?limit=1", None).await;
    assert!(page["next_cursor"].is_string(), "{page}");
    c.call(
        "get",
        "/v1/tickets?state=waiting&failing=false&umbrella=false",
        None,
    )
    .await;
    c.call("get", "/v1/tickets/MC-1", None).await;
    c.call("get", "/v1/tickets/MC-2", None).await;
    c.call("get", "/v1/tickets/MC-1?as_of=3", None).await;
    let (_, events) = c.call("get", "/v1/tickets/MC-1/events?limit=2", None).await;
    assert!(events["next_cursor"].is_u64(), "{events}");
    c.call("get", "/v1/tickets/MC-1/comments", None).await;
    c.call("get", "/v1/tickets/MC-1/timeline", None).await;
    c.call("get", "/v1/runtimes?live=false&limit=1", None).await;
    c.call(
        "get",
        &format!("/v1/runtimes?ticket=MC-1&cursor={rt}"),
        None,
    )
    .await;
    c.call("get", &format!("/v1/runtimes/{rt2}"), None).await;
    c.call("get", "/v1/board", None).await;
    c.call("get", "/v1/alerts", None).await;
    c.call("get", "/v1/events?after=1&limit=500", None).await;
    c.call("get", "/v1/events/stream?after=0", None).await;
    c.call("get", "/v1/admin/verify", None).await;
    c.call("post", "/v1/admin/rebuild", None).await;
    c.call("get", "/healthz", None).await;
    c.call("get", "/readyz", None).await;
    c.call("get", "/metrics", None).await;
    let (_, served) = c.call("get", "/openapi.json", None).await;
    assert_eq!(served, openapi::document());

    // Every operation answered at least once with a success.
    let succeeded: BTreeSet<&str> = c
        .seen
        .iter()
        .filter(|(_, s)| (200..300).contains(s))
        .map(|(op, _)| *op)
        .collect();
    let missing: Vec<&str> = ROUTES
        .iter()
        .map(|r| r.operation_id)
        .filter(|op| !succeeded.contains(op) && !["abortLaunch", "cancel"].contains(op))
        .collect();
    assert!(missing.is_empty(), "never exercised: {missing:?}");
}
