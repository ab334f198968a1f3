//! Extractors whose rejections are problem+json like every other error: a JSON body, a query
//! string, and validated path ids.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body; syntax errors are 400, shape errors 422, over-size 413.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::invalid(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(AppError::bad_request(e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body over 1 MiB",
            )),
            Err(e) => Err(AppError::bad_request(e.body_text())),
        }
    }
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
