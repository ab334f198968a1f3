//! Bearer tokens with scopes `read` < `write` < `admin`. Tokens are stored hashed (blake3) in
//! `<data-dir>/tokens.jsonl` and compared in constant time (blake3 hash equality is
//! constant-time). With no tokens configured the server serves loopback only.

use anyhow::Context;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    name: String,
    scope: Scope,
    /// blake3 of the token, hex.
    hash: String,
}

#[derive(Default)]
pub struct Auth {
    tokens: Vec<(blake3::Hash, Scope)>,
}

const TOKENS: &str = "tokens.jsonl";

pub fn tokens_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKENS)
}

impl Auth {
    pub fn load(data_dir: &Path) -> anyhow::Result<Auth> {
        Auth::load_from(&crate::home::Home::Dir(data_dir.to_owned()))
    }

    /// The tokens kept in a store's home (a file, or a row every replica shares).
    pub fn load_from(home: &crate::home::Home) -> anyhow::Result<Auth> {
        let path = PathBuf::from(TOKENS);
        let Some(bytes) = home.read(TOKENS)? else {
            return Ok(Auth::default());
        };
        let text = String::from_utf8(bytes).context("tokens are not UTF-8")?;
        let mut tokens = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let t: StoredToken = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
            let hash = blake3::Hash::from_hex(&t.hash)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
            tokens.push((hash, t.scope));
        }
        Ok(Auth { tokens })
    }

    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The scope of a presented token, checking every stored hash so timing says nothing.
    fn scope_of(&self, token: &str) -> Option<Scope> {
        let presented = blake3::hash(token.as_bytes());
        let mut found = None;
        for (hash, scope) in &self.tokens {
            if *hash == presented {
                found = Some(*scope);
            }
        }
        found
    }
}

/// Creates a token, stores its hash and returns the token (shown once).
pub fn create_token(data_dir: &Path, scope: Scope, name: &str) -> anyhow::Result<String> {
    create_token_in(&crate::home::Home::Dir(data_dir.to_owned()), scope, name)
}

/// Creates a token in a store's home; every replica of a PostgreSQL store shares it.
pub fn create_token_in(
    home: &crate::home::Home,
    scope: Scope,
    name: &str,
) -> anyhow::Result<String> {
    let token = format!(
        "mcl_{}{}",
        ulid::Ulid::new().to_string().to_lowercase(),
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let stored = StoredToken {
        name: name.to_owned(),
        scope,
        hash: blake3::hash(token.as_bytes()).to_hex().to_string(),
    };
    home.append_line(TOKENS, &serde_json::to_string(&stored)?)?;
    Ok(token)
}

/// The scope a request needs: reads `read`, writes `write`, admin paths `admin`; health
/// checks need none. `/openapi.json` states it per operation from this same function.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if path == "/healthz" || path == "/readyz" || path == "/openapi.json" {
        return None;
    }
    if path.starts_with("/v1/admin") || (path.ends_with("/events") && method == Method::POST) {
        return Some(Scope::Admin);
    }
    if method == Method::GET || method == Method::HEAD {
        Some(Scope::Read)
    } else {
        Some(Scope::Write)
    }
}

pub async fn middleware(
    State(auth): State<std::sync::Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth.is_open() {
        return next.run(request).await;
    }
    let Some(needed) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented.and_then(|t| auth.scope_of(t.trim())) {
        None => AppError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
        .into_response(),
        Some(scope) if scope < needed => AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token's scope does not allow {needed:?} requests"),
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}
