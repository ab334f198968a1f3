//! One error type for every handler, rendered as `application/problem+json` with a stable
//! `code`. Bad input is a precise 4xx and is not logged as an error; internal failures are a
//! generic 500 and are logged with their cause.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use projections::{Rejection, RejectionKind};
use serde_json::{json, Value};
use store::LogError;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Option<Value>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "malformed", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> AppError {
        tracing::error!(error = %e, "{context}");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    pub fn with(mut self, extra: Value) -> AppError {
        self.extra = Some(extra);
        self
    }
}

impl From<Rejection> for AppError {
    fn from(r: Rejection) -> AppError {
        let status = match r.kind() {
            RejectionKind::NotFound => StatusCode::NOT_FOUND,
            RejectionKind::Conflict => StatusCode::CONFLICT,
            RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let extra = match &r {
            Rejection::VersionConflict { current, .. } => Some(json!({"current_version": current})),
            Rejection::RuntimeEnded { class, .. } => Some(json!({"class": class})),
            Rejection::Invalid { field, .. } => Some(json!({"field": field})),
            Rejection::PoolFull {
                pool,
                capacity,
                holders,
            }
            | Rejection::PoolInUse {
                pool,
                capacity,
                holders,
            } => Some(json!({"pool": pool, "capacity": capacity, "holders": holders})),
            Rejection::BudgetExhausted(shortfall) => serde_json::to_value(shortfall).ok(),
            _ => None,
        };
        AppError {
            status,
            code: r.code(),
            detail: r.to_string(),
            extra,
        }
    }
}

impl From<LogError> for AppError {
    fn from(e: LogError) -> AppError {
        let status = match &e {
            LogError::VersionConflict { .. } | LogError::IdConflict { .. } => StatusCode::CONFLICT,
            LogError::EventTooLarge { .. } | LogError::TooManyEvents { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            e if e.is_client_error() => StatusCode::UNPROCESSABLE_ENTITY,
            LogError::Closed | LogError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A record the store cannot read: named, so an operator can salvage or restore it.
            LogError::Corruption { .. } => {
                tracing::error!(error = %e, "a read reached a corrupt record");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => return AppError::internal("log failure", e),
        };
        let extra = match &e {
            LogError::VersionConflict { actual, .. } => Some(json!({"current_version": actual})),
            LogError::Corruption { position, .. } => Some(json!({"position": position})),
            _ => None,
        };
        AppError {
            status,
            code: e.code(),
            detail: e.to_string(),
            extra,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let unavailable = self.status == StatusCode::SERVICE_UNAVAILABLE;
        if self.status.is_client_error() {
            tracing::debug!(code = self.code, detail = %self.detail, "request refused");
        } else if unavailable {
            tracing::warn!(code = self.code, detail = %self.detail, "unavailable");
        }
        let mut body = json!({
            "type": format!("https://mc-ledger.dev/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        if let (Some(Value::Object(extra)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.extend(extra);
        }
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if unavailable {
            // The store is down, full or stalled: a client may try again in a second (with the
            // same Idempotency-Key for a write).
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<service::Failure> for AppError {
    fn from(f: service::Failure) -> AppError {
        use service::Failure;
        match f {
            Failure::Refused(refused) => refused.into(),
            Failure::ActorMismatch { token_actor } => AppError::new(
                StatusCode::FORBIDDEN,
                "actor_mismatch",
                format!(
                    "this token writes as {} ({:?}); leave `actor` out or send that one",
                    token_actor.name, token_actor.kind
                ),
            )
            .with(json!({"token_actor": token_actor})),
            Failure::MissingActor => {
                AppError::invalid("missing field `actor`").with(json!({"field": "actor"}))
            }
            Failure::Rejected {
                rejection,
                recorded_position,
            } => {
                let e = AppError::from(rejection);
                match recorded_position {
                    Some(position) => e.with(json!({"recorded_position": position})),
                    None => e,
                }
            }
            Failure::Log(e) => e.into(),
            Failure::KeptChanging => AppError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                "the ticket kept changing under this command; retry",
            ),
            Failure::Internal(context, e) => AppError::internal(context, e),
        }
    }
}

/// A refusal as problem+json: 403 `forbidden` for a scope, 403 `not_permitted` naming the rule
/// (and the action) otherwise.
impl From<projections::Refused> for AppError {
    fn from(refused: projections::Refused) -> AppError {
        match refused {
            projections::Refused::Scope { needed } => AppError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token's scope does not allow {needed:?} requests"),
            ),
            projections::Refused::NotPermitted {
                rule,
                detail,
                action,
            } => {
                let extra = match action {
                    Some(a) => json!({"rule": rule, "action": a}),
                    None => json!({"rule": rule}),
                };
                AppError::new(StatusCode::FORBIDDEN, "not_permitted", detail).with(extra)
            }
        }
    }
}
