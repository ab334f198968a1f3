//! Token management over HTTP (admin scope): list, create, revoke. The secret of a new token
//! is in the 201 answer and nowhere else; the store keeps its blake3 hash. A create or revoke
//! on one replica is read by every replica within [`service::tokens::RELOAD_MS`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::ActorKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::extract::Body;
use crate::state::WriteState;
use service::clock::now;
use service::tokens::{self as auth, NewToken, Scope, TokenInfo};

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// The actor name the token writes as (1 to 128 bytes).
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    pub kind: ActorKind,
    pub scope: Scope,
    /// A duration such as `90s`, `12h`, `30d` (1 s to 10 years); none: no expiry.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A new token: what is stored, and the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    /// The bearer secret. It is stored only hashed: keep it now.
    pub token: String,
    pub name: String,
    pub kind: ActorKind,
    pub scope: Scope,
    /// Milliseconds since the epoch; null: no expiry.
    pub expires_at: Option<u64>,
}

/// Every token, without secrets (revoked and expired ones included, with their times).
#[utoipa::path(
    get, path = "/v1/admin/tokens", operation_id = "listTokens", tag = "admin",
    responses((status = 200, description = "The tokens.", body = TokenList))
)]
pub async fn list_tokens(State(w): State<WriteState>) -> Result<Response, AppError> {
    let tokens = auth::list_tokens_in(&w.home).map_err(|e| AppError::internal("tokens", e))?;
    Ok(Json(TokenList { tokens }).into_response())
}

/// Create a token bound to an actor, a scope and an optional expiry.
#[utoipa::path(
    post, path = "/v1/admin/tokens", operation_id = "createToken", tag = "admin",
    request_body = CreateTokenBody,
    responses((status = 201, description = "Created; the secret is shown this once.", body = CreatedToken))
)]
pub async fn create_token(
    State(w): State<WriteState>,
    Body(b): Body<CreateTokenBody>,
) -> Result<Response, AppError> {
    let expires_in =
        match &b.expires_in {
            Some(raw) => Some(auth::parse_expires_in(raw).map_err(|e| {
                AppError::invalid(e).with(serde_json::json!({"field": "expires_in"}))
            })?),
            None => None,
        };
    if b.name.is_empty() || b.name.len() > events::ids::ACTOR_NAME_BYTES_MAX {
        return Err(AppError::invalid("name must be 1 to 128 bytes")
            .with(serde_json::json!({"field": "name"})));
    }
    let new = NewToken {
        name: b.name,
        kind: b.kind,
        scope: b.scope,
        expires_in,
    };
    let (info, secret) = auth::create_token_in(&w.home, &new, now().millis())
        .map_err(|e| AppError::internal("creating a token", e))?;
    let _ = w.auth.reload();
    let body = CreatedToken {
        id: info.id,
        token: secret,
        name: info.name,
        kind: info.kind,
        scope: info.scope,
        expires_at: info.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The `{id}` of a token route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// A token id (`tok_…`), as `GET /v1/admin/tokens` lists them.
    pub id: String,
}

/// Revoke a token: refused on every replica within a second (401 `token_revoked`).
#[utoipa::path(
    delete, path = "/v1/admin/tokens/{id}", operation_id = "revokeToken", tag = "admin",
    params(TokenPath),
    responses((status = 200, description = "Revoked (again: the first time is kept).", body = TokenInfo))
)]
pub async fn revoke_token(
    State(w): State<WriteState>,
    Path(p): Path<TokenPath>,
) -> Result<Response, AppError> {
    let home = &w.home;
    let found = auth::revoke_token_in(home, &p.id, now().millis())
        .map_err(|e| AppError::internal("revoking a token", e))?;
    if !found {
        return Err(AppError::not_found(
            "token_not_found",
            "no token has this id",
        ));
    }
    let _ = w.auth.reload();
    let info = auth::list_tokens_in(home)
        .map_err(|e| AppError::internal("tokens", e))?
        .into_iter()
        .find(|t| t.id == p.id)
        .ok_or_else(|| AppError::not_found("token_not_found", "no token has this id"))?;
    Ok(Json(info).into_response())
}
