//! The HTTP side of tokens: the middleware that turns a request's bearer token into a
//! [`Caller`] (the token store is `service::tokens`) and asks the one authorization point,
//! `projections::authorize`, about the route's declared operation.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use projections::Operation;
pub use service::tokens::*;

use crate::access::{Named, On, RouteTable};
use crate::error::AppError;
use crate::state::AppState;

fn unauthorized(code: &'static str, detail: String) -> Response {
    AppError::new(StatusCode::UNAUTHORIZED, code, detail).into_response()
}

/// What the auth middleware needs: the server and every route's declaration.
#[derive(Clone)]
pub struct Gate {
    pub app: AppState,
    pub routes: Arc<RouteTable>,
}

/// Resolves the token to a [`Caller`] and asks the one authorization point
/// (`projections::authorize`) about the route's declared operation and the target its path
/// names; only then does the request reach its handler.
pub async fn middleware(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let app = &gate.app;
    let auth = &app.auth;
    if auth.is_open() {
        return next.run(request).await;
    }
    let decl = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| gate.routes.lookup(request.method(), path.as_str()));
    // A path no route matched (404) or a method it does not take (405): a valid token of any
    // scope, then the fallback answers.
    let op = decl.map_or(Operation::Read, |d| d.op);
    if op == Operation::Public {
        return next.run(request).await;
    }
    let now_ms = service::clock::now().millis();
    let minute = now_ms / 60_000;
    // A server always knows its peers; a router driven in process (tests) does not, and is
    // not throttled.
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // The console's pages and assets load without a token (a browser cannot add one to a
    // navigation); they then show a sign-in form and no data. With a token they are reads.
    if presented.is_none() && op.open_without_token() {
        return next.run(request).await;
    }
    let verdict = match presented {
        None => Verdict::Unknown,
        Some(secret) if secret.starts_with(service::runtime_token::PREFIX) => {
            service::runtime_token::verdict(
                &app.read.shared,
                &app.write.runtime_tokens,
                &app.write.home,
                secret,
            )
        }
        Some(secret) => auth.verdict(secret, now_ms),
    };
    let caller = match verdict {
        Verdict::Accepted(c) => c,
        failure => {
            // Guesses are what is slowed: an unknown token counts against its address; a
            // revoked or expired one (a worker whose runtime ended, say) is only a 401, and no
            // token at all is only a 401. A right token is never throttled: with 256-bit
            // secrets, answering it says nothing an attacker could use.
            if let (Some(ip), Some(_), Verdict::Unknown) = (ip, presented, &failure) {
                if auth.throttled(ip, minute) {
                    return AppError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_failures",
                        format!(
                            "more than {FAILURES_PER_MINUTE_MAX} unknown tokens from this address \
                             this minute; wait"
                        ),
                    )
                    .into_response();
                }
                auth.failed(ip, minute);
            }
            return match failure {
                Verdict::Revoked(id) => {
                    unauthorized("token_revoked", format!("token {id} was revoked"))
                }
                Verdict::Expired(id) => {
                    unauthorized("token_expired", format!("token {id} has expired"))
                }
                _ => unauthorized("unauthorized", "a valid bearer token is required".into()),
            };
        }
    };
    let on = decl.map_or(On::Ledger, |d| d.on);
    let param = match on {
        On::Ledger => None,
        On::Ticket | On::Runtime => Some("id"),
        On::Pool | On::Subscription => Some("name"),
    };
    let value = match param {
        Some(name) => request
            .extract_parts::<RawPathParams>()
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            }),
        None => None,
    };
    let named = Named::of(on, value.as_deref());
    let decided = app
        .read
        .shared
        .read(|ledger| crate::access::check(ledger, &caller, op, named.target()));
    if let Err(refusal) = decided {
        return refusal.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
