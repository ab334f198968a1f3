//! Subscription routes (SPEC §15) that are not plain commands: creating or changing one (which
//! may answer a generated secret, this once), and reading them with their delivery state.
//! Pause, resume, replay and delete are rows of the command table (`commands.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use events::{NoticeFormat, SubscriptionFilter, Timestamp};
use projections::SubscriptionView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service::subscriptions::{Checkpoint, SubscriptionInput};
use service::tokens::Caller;
use service::{Outcome, Service};
use utoipa::ToSchema;

use crate::commands::{IdempotencyKeyHeader, WriteResult};
use crate::error::AppError;
use crate::extract::{Keyed, SubscriptionPath};
use crate::state::WriteState;

/// Create a subscription, or change the one of that name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// 1 to 64 characters of A-Z a-z 0-9 _ . -
    pub name: String,
    /// Where deliveries are POSTed: an http:// or https:// URL, at most 2048 bytes. Kept
    /// beside the log, shown with its path hidden.
    pub url: String,
    #[serde(default)]
    pub format: Option<NoticeFormat>,
    /// What to deliver: events of these types, tickets, umbrella (and everything under it)
    /// and agents; notices of these alert kinds.
    #[serde(default)]
    pub filter: Option<SubscriptionFilter>,
    /// Remind of an alert that stays, every this long (`30m`, `1h`; 1 s to 30 days).
    #[serde(default)]
    pub remind_every: Option<String>,
    /// `whsec_` and the base64 of 24 to 64 random bytes. Left out: the subscription keeps its
    /// secret, or the server generates one and answers it this once. Never shown again.
    #[serde(default)]
    pub secret: Option<String>,
    /// Telegram's `chat_id` (format `telegram`).
    #[serde(default)]
    pub chat_id: Option<String>,
    #[serde(default)]
    pub actor: Option<events::Actor>,
}

/// What creating or changing a subscription answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionWritten {
    #[serde(flatten)]
    pub result: WriteResult,
    /// The secret the server generated: shown this once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Create a subscription, or change it (`subscription.created`, `subscription.changed`); the
/// same again is 200.
#[utoipa::path(
    post, path = "/v1/subscriptions", operation_id = "configureSubscription", tag = "subscriptions",
    params(IdempotencyKeyHeader), request_body = SubscriptionBody,
    responses(
        (status = 201, description = "Appended; `secret` when the server generated it.", body = SubscriptionWritten),
        (status = 200, description = "Already so; nothing appended.", body = SubscriptionWritten),
    )
)]
pub async fn configure(
    State(w): State<WriteState>,
    caller: Option<Extension<Caller>>,
    Keyed { body: b, key }: Keyed<SubscriptionBody>,
) -> Result<Response, AppError> {
    let remind_every_ms = match &b.remind_every {
        None => None,
        Some(text) => Some(
            humantime::parse_duration(text)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok())
                .ok_or_else(|| {
                    AppError::invalid(format!(
                        "remind_every: {:.64?} is not a duration such as 30m or 1h",
                        text
                    ))
                    .with(json!({"field": "remind_every"}))
                })?,
        ),
    };
    let input = SubscriptionInput {
        name: b.name,
        url: b.url,
        format: b.format.unwrap_or_default(),
        filter: b.filter.unwrap_or_default(),
        remind_every_ms,
        chat_id: b.chat_id,
        secret: b.secret,
    };
    let (outcome, secret) = w
        .configure_subscription(caller.as_deref(), b.actor, input, key.as_ref())
        .await?;
    let (status, result) = match outcome {
        Outcome::Created(r) => (StatusCode::CREATED, r),
        Outcome::Duplicate(r) => (StatusCode::OK, r),
        Outcome::Coalesced(_) => {
            return Err(AppError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "a subscription cannot be coalesced",
            ))
        }
    };
    Ok((status, Json(SubscriptionWritten { result, secret })).into_response())
}

/// A subscription's delivery, as the server delivering it last saved it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Every event at or before this log position was delivered or did not match.
    pub position: u64,
    /// Log positions after `position` (the head minus `position`).
    pub lag: u64,
    /// Alert notices due and not yet delivered.
    pub pending_notices: usize,
    /// Failed attempts of the delivery at the head of the queue, and since when it fails.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<Timestamp>,
    /// Deliveries answered 2xx, and failed attempts, since it began.
    pub delivered: u64,
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<Timestamp>,
    /// Parked deliveries (0 or 1: a subscription stops at the one it parked).
    pub parked: u32,
    /// The server delivering it, as it last saved (`serve-<pid>-<ulid>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// A subscription and its delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionStatus {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub delivery: Delivery,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionPage {
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// The status of one subscription: its facts and its checkpoint.
pub async fn status(
    service: &Service,
    view: SubscriptionView,
) -> Result<SubscriptionStatus, AppError> {
    let cp = service
        .checkpoint(&view.name)
        .await?
        .filter(|c| c.origin == view.origin)
        .unwrap_or_else(|| Checkpoint {
            origin: view.origin,
            position: view.origin,
            ..Checkpoint::default()
        });
    let head = service.shared.reader.head();
    let at = |ms: Option<u64>| ms.map(Timestamp);
    Ok(SubscriptionStatus {
        delivery: Delivery {
            position: cp.position,
            lag: head.saturating_sub(cp.position),
            pending_notices: cp.queue.len(),
            attempts: cp.attempts,
            failing_since: at(cp.failing_since),
            next_attempt_at: at(cp.next_attempt_at),
            last_error: cp.last_error,
            last_error_at: at(cp.last_error_at),
            delivered: cp.delivered,
            failures: cp.failures,
            last_delivered_at: at(cp.last_delivered_at),
            parked: u32::from(view.parked.is_some()),
            holder: cp.holder,
        },
        subscription: view,
    })
}

/// Every subscription with its delivery state, by name.
#[utoipa::path(
    get, path = "/v1/subscriptions", operation_id = "listSubscriptions", tag = "subscriptions",
    responses((status = 200, description = "Every subscription, by name.", body = SubscriptionPage))
)]
pub async fn list(State(w): State<WriteState>) -> Result<Response, AppError> {
    w.shared.catch_up()?;
    let views = w.shared.read(projections::Ledger::subscriptions);
    let mut subscriptions = Vec::with_capacity(views.len());
    for view in views {
        subscriptions.push(status(&w, view).await?);
    }
    Ok(Json(SubscriptionPage { subscriptions }).into_response())
}

/// One subscription: state, position delivered, lag, last error, attempts, parked.
#[utoipa::path(
    get, path = "/v1/subscriptions/{name}", operation_id = "getSubscription", tag = "subscriptions",
    params(SubscriptionPath),
    responses((status = 200, description = "The subscription.", body = SubscriptionStatus))
)]
pub async fn get(
    State(w): State<WriteState>,
    Path(p): Path<SubscriptionPath>,
) -> Result<Response, AppError> {
    w.shared.catch_up()?;
    let view = w.shared.read(|l| l.subscription(&p.name)).ok_or_else(|| {
        AppError::not_found(
            "subscription_not_found",
            format!("subscription {:.64} not found", p.name),
        )
    })?;
    Ok(Json(status(&w, view).await?).into_response())
}

/// Every subscription's delivery for a scrape (one that cannot be read is left out).
pub async fn samples(service: &Service) -> Vec<service::metrics::SubscriptionSample> {
    let views = service.shared.read(projections::Ledger::subscriptions);
    let mut out = Vec::with_capacity(views.len());
    for view in views {
        if let Ok(s) = status(service, view).await {
            out.push(service::metrics::SubscriptionSample {
                name: s.subscription.name,
                lag: s.delivery.lag,
                delivered: s.delivery.delivered,
                failures: s.delivery.failures,
                parked: u64::from(s.delivery.parked),
            });
        }
    }
    out
}
