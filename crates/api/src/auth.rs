//! Tokens (SPEC §12): each bound to an actor `{name, kind}`, a scope (`read` < `write` <
//! `admin`) and an optional expiry. They live hashed (blake3) in the store's home —
//! `tokens.jsonl`, a file beside the sled log or a row every PostgreSQL replica shares — as
//! lines that are only ever appended: a token, or the revocation of one. Every server reads the
//! file again every [`RELOAD_MS`], so a `token create` or `revoke` anywhere is in force on every
//! replica within a second, without a restart. With no token ever created the server serves
//! loopback only, without authentication, exactly as before tokens named actors.
//!
//! A request's token becomes a [`Caller`] in the request's extensions; command handlers take
//! their actor from it (a differing body actor is 403 `actor_mismatch`) and stamp its id on
//! every event. Runtime tokens (`mcr_…`, minted at dispatch) are in [`crate::runtime_token`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use events::{Actor, ActorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Named, On, RouteTable};
use crate::error::AppError;
use crate::home::Home;
use crate::state::AppState;
use projections::Operation;

/// How often every server reads the tokens again.
pub const RELOAD_MS: u64 = 250;
/// Bad tokens one client address may present in a minute before it is answered 429.
pub const FAILURES_PER_MINUTE_MAX: u32 = 20;
const TOKENS: &str = "tokens.jsonl";

/// A token's scope; the rules that use it are `projections::authorize`'s.
pub use projections::Scope;

/// One line of `tokens.jsonl`: a token, or a token's revocation. Lines written before tokens
/// had ids and kinds (`{name, scope, hash}`) still load, as humans.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Revoked { revoked: String, at: u64 },
    Token(StoredToken),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<ActorKind>,
    scope: Scope,
    /// blake3 of the secret, hex.
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

/// What anyone may know of a token: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TokenInfo {
    /// `tok_…`: recorded on every event the token writes.
    pub id: String,
    pub name: String,
    pub kind: ActorKind,
    pub scope: Scope,
    /// Milliseconds since the epoch; absent for tokens created before tokens had times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

#[derive(Debug, Clone)]
struct Token {
    info: TokenInfo,
    hash: blake3::Hash,
}

/// The tokens as last read.
#[derive(Debug, Default)]
struct Tokens {
    list: Vec<Token>,
}

impl Tokens {
    fn parse(bytes: &[u8]) -> anyhow::Result<Tokens> {
        let text = std::str::from_utf8(bytes).context("tokens are not UTF-8")?;
        let mut list: Vec<Token> = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let parsed: Line = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{TOKENS}:{}: {e}", i + 1))?;
            match parsed {
                Line::Token(t) => {
                    let hash = blake3::Hash::from_hex(&t.hash)
                        .map_err(|e| anyhow::anyhow!("{TOKENS}:{}: {e}", i + 1))?;
                    let id = t.id.unwrap_or_else(|| format!("tok_{}", &t.hash[..16]));
                    list.push(Token {
                        info: TokenInfo {
                            id,
                            name: t.name,
                            kind: t.kind.unwrap_or(ActorKind::Human),
                            scope: t.scope,
                            created_at: t.created_at,
                            expires_at: t.expires_at,
                            revoked_at: None,
                        },
                        hash,
                    });
                }
                Line::Revoked { revoked, at } => {
                    for t in list.iter_mut().filter(|t| t.info.id == revoked) {
                        t.info.revoked_at.get_or_insert(at);
                    }
                }
            }
        }
        Ok(Tokens { list })
    }
}

/// Who a request comes from, once its token was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub actor: Actor,
    pub scope: Scope,
    /// A runtime token's runtime: the only one it may act on.
    pub runtime: Option<String>,
}

pub struct Auth {
    home: Option<Home>,
    tokens: RwLock<Arc<Tokens>>,
    /// blake3 of the bytes last parsed, to skip parsing when nothing changed.
    seen: Mutex<Option<blake3::Hash>>,
    /// Failed tokens per client address: (minute, count).
    failures: Mutex<HashMap<IpAddr, (u64, u32)>>,
    /// A token has been seen: from then on the server never serves without tokens, whatever
    /// happens to the file (deleted, emptied, restored from an old backup).
    configured: std::sync::atomic::AtomicBool,
    pub runtime_tokens: crate::runtime_token::RuntimeTokens,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            home: None,
            tokens: RwLock::new(Arc::new(Tokens::default())),
            seen: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
            configured: std::sync::atomic::AtomicBool::new(false),
            runtime_tokens: crate::runtime_token::RuntimeTokens::default(),
        }
    }
}

/// How a presented token fared.
pub(crate) enum Verdict {
    Accepted(Caller),
    Unknown,
    Revoked(String),
    Expired(String),
}

impl Auth {
    /// The tokens kept in a store's home (a file, or a row every replica shares).
    pub fn load_from(home: &Home) -> anyhow::Result<Auth> {
        let auth = Auth {
            home: Some(home.clone()),
            ..Auth::default()
        };
        auth.reload()?;
        Ok(auth)
    }

    /// [`Auth::load_from`], then read again every [`RELOAD_MS`] on a thread of its own for as
    /// long as the returned `Auth` lives.
    pub fn watch(home: &Home) -> anyhow::Result<Arc<Auth>> {
        let auth = Arc::new(Auth::load_from(home)?);
        let weak: Weak<Auth> = Arc::downgrade(&auth);
        std::thread::Builder::new()
            .name("token-reload".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(RELOAD_MS));
                let Some(auth) = weak.upgrade() else { return };
                if let Err(e) = auth.reload() {
                    // The last tokens read stay in force (a database outage must not open or
                    // close the server).
                    tracing::warn!(error = %format!("{e:#}"), "tokens not reloaded");
                }
            })
            .context("starting the token reloader")?;
        Ok(auth)
    }

    /// Reads the tokens again; parses only when the bytes changed.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(home) = &self.home else {
            return Ok(());
        };
        let bytes = home.read(TOKENS)?.unwrap_or_default();
        let digest = blake3::hash(&bytes);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == Some(digest) {
            return Ok(());
        }
        let tokens = Tokens::parse(&bytes)?;
        use std::sync::atomic::Ordering;
        if tokens.list.is_empty() && self.configured.load(Ordering::SeqCst) {
            anyhow::bail!(
                "{TOKENS} is missing or empty although tokens were configured; keeping the \
                 last tokens read (the server never falls back to serving without tokens)"
            );
        }
        if !tokens.list.is_empty() {
            self.configured.store(true, Ordering::SeqCst);
        }
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tokens);
        *seen = Some(digest);
        Ok(())
    }

    fn current(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// No token was ever seen: loopback mode, without authentication.
    pub fn is_open(&self) -> bool {
        !self.configured.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a caller accepted earlier would still be accepted now: its token not revoked
    /// nor expired (as last reloaded), a runtime token's runtime not ended. An open stream
    /// asks this every [`crate::sse::RECHECK_MS`] and ends when the answer is no.
    pub fn still_valid(&self, caller: &Caller, shared: &crate::state::Shared, now_ms: u64) -> bool {
        if let Some(runtime) = &caller.runtime {
            if shared.catch_up().is_err() {
                return false;
            }
            return shared.read(|l| l.runtime_owner(runtime).is_some_and(|(_, _, live)| live));
        }
        self.current().list.iter().any(|t| {
            t.info.id == caller.token_id
                && t.info.revoked_at.is_none()
                && t.info.expires_at.is_none_or(|at| now_ms < at)
        })
    }

    /// Every token, without secrets, oldest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        self.current().list.iter().map(|t| t.info.clone()).collect()
    }

    /// Checks a presented secret against every stored hash, so timing says nothing about
    /// which (blake3 hash equality is constant-time).
    fn verdict(&self, secret: &str, now_ms: u64) -> Verdict {
        let presented = blake3::hash(secret.as_bytes());
        let tokens = self.current();
        let mut found = None;
        for t in &tokens.list {
            if t.hash == presented {
                found = Some(t);
            }
        }
        let Some(t) = found else {
            return Verdict::Unknown;
        };
        if t.info.revoked_at.is_some() {
            return Verdict::Revoked(t.info.id.clone());
        }
        if t.info.expires_at.is_some_and(|at| now_ms >= at) {
            return Verdict::Expired(t.info.id.clone());
        }
        Verdict::Accepted(Caller {
            token_id: t.info.id.clone(),
            actor: Actor {
                name: t.info.name.clone(),
                kind: t.info.kind,
            },
            scope: t.info.scope,
            runtime: None,
        })
    }

    /// Whether a client address is over its failures for this minute.
    fn throttled(&self, ip: IpAddr, minute: u64) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&ip)
            .is_some_and(|(m, n)| *m == minute && *n >= FAILURES_PER_MINUTE_MAX)
    }

    fn failed(&self, ip: IpAddr, minute: u64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 100_000 {
            failures.retain(|_, (m, _)| *m == minute);
        }
        let entry = failures.entry(ip).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// A new token's secret: `mcl_` and 256 bits from the operating system's CSPRNG, hex.
fn new_secret(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}{hex}"))
}

/// What `token create` and `POST /v1/admin/tokens` ask for.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub kind: ActorKind,
    pub scope: Scope,
    pub expires_in: Option<Duration>,
}

/// Creates a token in a store's home; every replica of a PostgreSQL store sees it within a
/// second. Returns what is stored and the secret, which exists only in this answer.
pub fn create_token_in(
    home: &Home,
    new: &NewToken,
    now_ms: u64,
) -> anyhow::Result<(TokenInfo, String)> {
    let actor = Actor {
        name: new.name.clone(),
        kind: new.kind,
    };
    let max = events::ids::ACTOR_NAME_BYTES_MAX;
    anyhow::ensure!(
        !actor.name.is_empty() && actor.name.len() <= max,
        "a token's name is its actor's name: 1 to {max} bytes"
    );
    let secret = new_secret("mcl_")?;
    let id = format!("tok_{}", &new_secret("")?[..20]);
    let expires_at = new
        .expires_in
        .map(|d| now_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    let stored = StoredToken {
        id: Some(id.clone()),
        name: new.name.clone(),
        kind: Some(new.kind),
        scope: new.scope,
        hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
        created_at: Some(now_ms),
        expires_at,
    };
    home.append_line(TOKENS, &serde_json::to_string(&Line::Token(stored))?)?;
    let info = TokenInfo {
        id,
        name: new.name.clone(),
        kind: new.kind,
        scope: new.scope,
        created_at: Some(now_ms),
        expires_at,
        revoked_at: None,
    };
    Ok((info, secret))
}

/// A human token with no expiry in a sled data directory (tests, scripts): the secret.
pub fn create_token(
    data_dir: &std::path::Path,
    scope: Scope,
    name: &str,
) -> anyhow::Result<String> {
    let new = NewToken {
        name: name.to_owned(),
        kind: ActorKind::Human,
        scope,
        expires_in: None,
    };
    let now = crate::state::now().millis();
    Ok(create_token_in(&Home::Dir(data_dir.to_owned()), &new, now)?.1)
}

/// Revokes a token by id; false when no such token exists. Revoking twice keeps the first time.
pub fn revoke_token_in(home: &Home, id: &str, now_ms: u64) -> anyhow::Result<bool> {
    let bytes = home.read(TOKENS)?.unwrap_or_default();
    let tokens = Tokens::parse(&bytes)?;
    if !tokens.list.iter().any(|t| t.info.id == id) {
        return Ok(false);
    }
    let line = Line::Revoked {
        revoked: id.to_owned(),
        at: now_ms,
    };
    home.append_line(TOKENS, &serde_json::to_string(&line)?)?;
    Ok(true)
}

/// Every token in a store's home, without secrets.
pub fn list_tokens_in(home: &Home) -> anyhow::Result<Vec<TokenInfo>> {
    let bytes = home.read(TOKENS)?.unwrap_or_default();
    Ok(Tokens::parse(&bytes)?
        .list
        .into_iter()
        .map(|t| t.info)
        .collect())
}

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
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let decl = matched
        .as_deref()
        .and_then(|path| gate.routes.lookup(request.method(), path));
    // A path no route matched (404) or a method it does not take (405): a valid token of any
    // scope, then the fallback answers.
    let op = decl.map_or(Operation::Read, |d| d.op);
    if op == Operation::Public {
        return next.run(request).await;
    }
    let now_ms = crate::state::now().millis();
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
        Some(secret) if secret.starts_with(crate::runtime_token::PREFIX) => {
            crate::runtime_token::verdict(app, secret)
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
        On::Pool => Some("name"),
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

pub(crate) use Verdict as TokenVerdict;

pub(crate) fn accepted(caller: Caller) -> Verdict {
    Verdict::Accepted(caller)
}

pub(crate) fn unknown() -> Verdict {
    Verdict::Unknown
}
