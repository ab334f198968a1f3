//! Extractors whose rejections are problem+json like every other error: a JSON body, a query
//! string, and validated path ids.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body; syntax errors are 400, shape errors 422, over-size 413.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (body, _) = json_body(req, state).await?;
        Ok(Body(body))
    }
}

/// A command's JSON body and its optional `Idempotency-Key` header.
pub struct Keyed<T> {
    pub body: T,
    pub key: Option<IdempotencyKey>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Keyed<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let header = match req.headers().get(IDEMPOTENCY_KEY) {
            None => None,
            Some(v) => Some(parse_key(v.as_bytes())?.to_vec()),
        };
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        // The writer is part of the request: another token's same key is another request.
        let writer = req
            .extensions()
            .get::<service::tokens::Caller>()
            .map(|c| c.token_id.clone())
            .unwrap_or_default();
        // A DELETE may come without a body: it reads as `{}`.
        let bodiless = req.method() == axum::http::Method::DELETE
            && req
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .is_none()
            && req
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        let (body, bytes) = if bodiless {
            let empty = Bytes::from_static(b"{}");
            let body = serde_json::from_slice(&empty)
                .map_err(|e| AppError::invalid(format!("this request needs a body: {e}")))?;
            (body, empty)
        } else {
            json_body(req, state).await?
        };
        let key = header.map(|k| IdempotencyKey::of(&k, &writer, &method, &path, &bytes));
        Ok(Keyed { body, key })
    }
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest `Idempotency-Key` taken (a UUID or a ULID fits many times over).
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

fn parse_key(raw: &[u8]) -> Result<&[u8], AppError> {
    let visible = raw.iter().all(|b| (0x21..=0x7e).contains(b));
    if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_BYTES_MAX || !visible {
        return Err(AppError::bad_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"
        )));
    }
    Ok(raw)
}

pub use service::IdempotencyKey;

/// Reads a JSON body: the value and the bytes it came from.
async fn json_body<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<(T, Bytes), AppError> {
    if !json_content_type(req.headers()) {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let bytes = match Bytes::from_request(req, state).await {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body over 1 MiB",
            ))
        }
        Err(e) => return Err(AppError::bad_request(e.body_text())),
    };
    match axum::Json::<T>::from_bytes(&bytes) {
        Ok(axum::Json(v)) => Ok((v, bytes)),
        Err(JsonRejection::JsonDataError(e)) => Err(AppError::invalid(e.body_text())),
        Err(e) => Err(AppError::bad_request(e.body_text())),
    }
}

/// `application/json` or `application/…+json`, parameters allowed (as axum's `Json` takes).
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// A query string; anything that does not parse is 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(AppError::bad_request(e.body_text()))
            }
            Err(e) => Err(AppError::bad_request(e.body_text())),
        }
    }
}

pub fn ticket_id(raw: &str) -> Result<events::TicketId, AppError> {
    events::TicketId::parse(raw).map_err(|e| AppError::invalid(e.to_string()))
}

/// The `{name}` of a subscription route.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SubscriptionPath {
    /// The subscription's name: 1 to 64 characters of A-Z a-z 0-9 _ . -
    pub name: String,
}

/// The `{id}` of a ticket route.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketPath {
    /// Ticket id such as `MC-4030`; anything else is 422.
    #[param(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    pub id: String,
}

/// The `{id}` of a runtime route.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RuntimePath {
    /// Runtime id (`rt_…`), as returned by dispatch and retry.
    pub id: String,
}

/// The `{id}` and `{task_id}` of a task route.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskPath {
    /// Ticket id such as `MC-4030`; anything else is 422.
    #[param(pattern = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$")]
    pub id: String,
    /// Task id within the ticket.
    pub task_id: String,
}
