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
//! The HTTP middleware that asks for a token is `api::auth`; this is the token store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use events::{Actor, ActorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::home::Home;

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

impl Caller {
    /// What the rules (`projections::authorize`) need of a caller.
    pub fn principal(&self) -> projections::Principal<'_> {
        projections::Principal {
            kind: self.actor.kind,
            scope: self.scope,
            runtime: self.runtime.as_deref(),
        }
    }
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
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            home: None,
            tokens: RwLock::new(Arc::new(Tokens::default())),
            seen: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
            configured: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// How a presented token fared.
pub enum Verdict {
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
    /// asks this every few hundred milliseconds and ends when the answer is no.
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
    pub fn verdict(&self, secret: &str, now_ms: u64) -> Verdict {
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
    pub fn throttled(&self, ip: IpAddr, minute: u64) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&ip)
            .is_some_and(|(m, n)| *m == minute && *n >= FAILURES_PER_MINUTE_MAX)
    }

    pub fn failed(&self, ip: IpAddr, minute: u64) {
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
    let now = crate::clock::now().millis();
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

/// The longest `expires_in` taken.
const EXPIRES_IN_MAX: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses `expires_in` (`90s`, `12h`, `30d`).
pub fn parse_expires_in(raw: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        format!("expires_in {raw:?} is not a duration such as 90s, 12h or 30d: {e}")
    })?;
    if d < std::time::Duration::from_secs(1) || d > EXPIRES_IN_MAX {
        return Err(format!(
            "expires_in {raw:?} must be between 1 s and 10 years"
        ));
    }
    Ok(d)
}
