//! `GET /openapi.json`, derived rather than written: the schemas come from the request and
//! response types (`utoipa::ToSchema`), each operation from its handler's `#[utoipa::path]`,
//! and the paths from the router the handlers are registered in (`utoipa-axum`), so a field
//! added to a body or a view is in the document with no second edit.
//!
//! What every operation shares is added here, from the rules the server itself applies: the
//! token scope an operation needs (its declaration in the route table, which the auth middleware
//! reads), and
//! the problem+json answers of each kind of route. Unsigned integers are stated with their
//! real bounds (utoipa names a `u32` `int32`, which would make a valid `u32` look invalid).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi, ToSchema};

use crate::access::RouteTable;
use service::execute::{Coalesced, WriteResult};

/// RFC 9457 problem details with a stable `code`; some codes add fields.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `https://mc-ledger.dev/problems/<code>`
    #[serde(rename = "type")]
    kind: String,
    title: String,
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// Stable, machine-readable; never reworded.
    code: String,
    detail: String,
    /// With `version_conflict`: the ticket's version now.
    current_version: Option<u64>,
    /// With `runtime_ended`: how the runtime ended.
    class: Option<projections::RuntimeClass>,
    /// With `invalid`: the field at fault.
    field: Option<String>,
    /// With a refused signal: where `runtime.signal_rejected` was recorded.
    recorded_position: Option<u64>,
    /// With `pool_full` and `pool_in_use`: the pool.
    pool: Option<String>,
    /// With `pool_full` and `pool_in_use`: its slots.
    capacity: Option<u32>,
    /// With `pool_full` and `pool_in_use`: the live runtimes holding its slots.
    holders: Option<Vec<String>>,
    /// With `budget_exhausted`: the budget without room.
    budget: Option<String>,
    /// With `budget_exhausted`: its limit, what ended runs spent in this period, what live
    /// runs hold, and the reservation refused (dollars).
    limit_usd: Option<f64>,
    spent_usd: Option<f64>,
    reserved_usd: Option<f64>,
    reservation_usd: Option<f64>,
    /// With `not_permitted`: the rule that refused.
    rule: Option<String>,
    /// With `not_permitted`: what was refused (a command's action, `hook`, `raw_append`).
    action: Option<String>,
    /// With `actor_mismatch`: the actor the token writes as.
    token_actor: Option<events::Actor>,
    /// With `corrupt_record`: the first position of the commit that cannot be read.
    position: Option<u64>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mc-ledger",
        description = "An append-only ledger of tickets and agent runtimes. Errors are \
            application/problem+json with a stable `code`. Writes need a `write` token, \
            `POST /v1/tickets/{id}/events` and `/v1/admin/*` an `admin` token, reads a `read` \
            token; with no tokens configured the server serves loopback only, without \
            authentication. Every request may also end in 408 (problem+json, code `timeout`) \
            after 30 s."
    ),
    servers((url = "http://127.0.0.1:7171")),
    components(schemas(WriteResult, Coalesced, Problem)),
    tags(
        (name = "tickets"), (name = "tasks"), (name = "runtimes"), (name = "pools"),
        (name = "budgets"), (name = "events"), (name = "admin"), (name = "health")
    )
)]
pub struct ApiDoc;

fn json_response(description: &str, schema: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
        .into()
}

/// The answers of a write, by status.
macro_rules! answers {
    ($($(#[doc = $doc:literal])* $name:ident { $($status:literal => $description:expr, $schema:literal;)* })*) => {$(
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                BTreeMap::from([
                    $(($status.to_string(), json_response($description, $schema)),)*
                ])
            }
        }
    )*};
}

const CREATED: &str = "Appended: `{position, version, events}`.";
const DUPLICATE: &str =
    "Already applied: the original result with `duplicate: true`; nothing appended.";

answers! {
    /// 201, or 200 for a command already applied.
    CreatedOrDuplicate { 201 => CREATED, "WriteResult"; 200 => DUPLICATE, "WriteResult"; }
    /// Dispatch and retry: 201 with `runtime_id` and `nonce`, or 200 with the original.
    RuntimeCreated {
        201 => "Appended; `runtime_id` and `nonce` name the new runtime and its turn nonce.", "WriteResult";
        200 => DUPLICATE, "WriteResult";
    }
    /// Activity: 201, or 202 when folded into an earlier heartbeat (200 for a keyed retry).
    CreatedOrCoalesced {
        201 => CREATED, "WriteResult";
        200 => DUPLICATE, "WriteResult";
        202 => "Coalesced into an earlier heartbeat; nothing appended.", "Coalesced";
    }
}

/// The description of each error status the API uses.
pub fn error_description(status: u16) -> &'static str {
    match status {
        400 => "`malformed`: JSON syntax error, or a query string or header that does not parse (unknown parameter, wrong type, `limit=0`, unknown `state`).",
        401 => "`unauthorized` (no token, or an unknown one), `token_revoked`, `token_expired` (its expiry passed, or a runtime token's runtime ended). Only when tokens are configured.",
        403 => "`forbidden` (the token's scope is too low), `actor_mismatch` (the body's `actor` is not the token's), `not_permitted` (the token's actor kind may not take this action, or a runtime token acts outside its runtime; `rule` names the rule).",
        429 => "`too_many_failures`: more than 20 unknown tokens from this client address this minute; unknown tokens from it wait for the next minute.",
        404 => "`ticket_not_found`, `runtime_not_found`, `task_not_found`, `pool_not_found`, or `no_route` (e.g. an empty path segment).",
        408 => "The request took longer than 30 s (code `timeout`).",
        409 => "A conflict with the current state, named by `code`: `ticket_exists`, `ticket_closed`, `ticket_open`, `runtime_live`, `runtime_ended` (with `class`), `stale_nonce`, `unknown_nonce`, `task_exists`, `version_conflict` (with `current_version`), `event_id_conflict`, `pool_full` and `pool_in_use` (a capacity below the holders; both with `pool`, `capacity` and `holders`: the runtimes holding its slots), `budget_exhausted` (with `budget`, `limit_usd`, `spent_usd`, `reserved_usd` and `reservation_usd`). A refused signal also carries `recorded_position`.",
        413 => "`body_too_large` (over 1 MiB), `event_too_large` or `too_many_events`.",
        415 => "`unsupported_media_type`: send `Content-Type: application/json`.",
        422 => "`invalid` (with `field` when one field is at fault), an invalid ticket id, `no_signal` (raw pane text with no signal in it; nothing is appended), or another refused value (`invalid_actor`, `invalid_event_id`, `invalid_token_id`, `invalid_timestamp`, `empty_append`, `duplicate_event_id`, `too_expensive`).",
        500 => "`internal`: see the server log; `corrupt_record` (with `position`): the read reached a record the store cannot read (`mc-ledger verify` names the tickets it holds).",
        503 => "`store_unavailable` with `Retry-After` (the database cannot be reached, or the disk is full, failing or not confirming writes; retry with the same `Idempotency-Key`, which is applied once even if this try was recorded), `log_closed` (the writer stopped after a storage error) or `too_many_streams` (256 event streams are open).",
        _ => "Error.",
    }
}

/// The error statuses an operation can answer, by the kind of route.
fn error_statuses(method: &Method, path: &str, takes_body: bool) -> &'static [u16] {
    match (method, path) {
        (_, "/healthz" | "/openapi.json") => &[408],
        (_, "/readyz") => &[408, 500, 503],
        (_, "/metrics") => &[401, 403, 408, 429],
        (&Method::POST, "/v1/admin/rebuild") => &[401, 403, 408, 429, 500, 503],
        (&Method::GET, _) => &[400, 401, 403, 404, 408, 422, 429, 500, 503],
        _ if takes_body => &[400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 503],
        _ => &[400, 401, 403, 404, 408, 409, 422, 429, 500, 503],
    }
}

/// Adds what every operation shares: its auth requirement and its problem+json answers.
fn finish_operation(
    method: &Method,
    path: &str,
    op: &mut Operation,
    scope: Option<projections::Scope>,
) {
    let problem = |status: u16| {
        ResponseBuilder::new()
            .description(error_description(status))
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
            .into()
    };
    for &status in error_statuses(method, path, op.request_body.is_some()) {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem(status));
    }
    let needs = match scope {
        None => "No token needed.".to_owned(),
        Some(scope) => format!("Needs a token of scope `{}` or higher.", scope.as_str()),
    };
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
        _ => needs,
    });
}

/// Every operation of a document, with its method and path.
fn operations(api: &mut utoipa::openapi::OpenApi) -> Vec<(Method, String, &mut Operation)> {
    let mut out = Vec::new();
    for (path, item) in api.paths.paths.iter_mut() {
        let methods = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PATCH, &mut item.patch),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, op) in methods {
            if let Some(op) = op.as_mut() {
                out.push((method, path.clone(), op));
            }
        }
    }
    out
}

/// The finished document as JSON: shared parts added, security stated per operation, and
/// unsigned integers bounded.
pub fn finish(mut api: utoipa::openapi::OpenApi, routes: &RouteTable) -> Value {
    let mut scopes = BTreeMap::new();
    for (method, path, op) in operations(&mut api) {
        let scope = routes.lookup(&method, &path).and_then(|d| d.op.scope());
        finish_operation(&method, &path, op, scope);
        scopes.insert((method.as_str().to_ascii_lowercase(), path), scope);
    }
    let mut doc = serde_json::to_value(&api).unwrap_or(Value::Null);
    doc["security"] = json!([{"bearer": []}]);
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `mc-ledger token create --name N --kind K --scope read|write|admin` \
                or `POST /v1/admin/tokens`, or a dispatch's `runtime_token`; scopes are ordered \
                read < write < admin, and the token's actor kind decides which commands it may write.",
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                match scopes
                    .get(&(method.clone(), path.clone()))
                    .copied()
                    .flatten()
                {
                    None => op["security"] = json!([]),
                    Some(scope) => op["x-required-scope"] = json!(scope.as_str()),
                }
            }
        }
    }
    bound_integers(&mut doc);
    doc
}

/// utoipa writes `format: int32` / `int64` for `u32` / `u64`; a checker would take 3e9 as an
/// invalid `u32`. State the real bounds instead.
fn bound_integers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer")
                || map
                    .get("type")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().any(|t| t == "integer"))
            {
                bound(map);
            }
            for child in map.values_mut() {
                bound_integers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

fn bound(map: &mut Map<String, Value>) {
    let unsigned = map
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m >= 0.0);
    let max = match map.get("format").and_then(Value::as_str) {
        Some("int32" | "uint32") if unsigned => Some(json!(u32::MAX)),
        Some("int64" | "uint64") if unsigned => Some(json!(u64::MAX)),
        _ => None,
    };
    if let Some(max) = max {
        map.remove("format");
        map.entry("maximum").or_insert(max);
    }
}

static DOCUMENT: OnceLock<String> = OnceLock::new();

/// Keeps the document the router was built with (it is the same for every router).
pub fn publish(doc: &Value) {
    let _ = DOCUMENT.set(doc.to_string());
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1.", body = Object))
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get().cloned().unwrap_or_default(),
    )
        .into_response()
}
