//! The blocking HTTP client behind every `mc-ledger … --server URL` command (export, import,
//! rebuild, replay, the watcher and the agents' helpers), on `ureq`: `http://` and `https://`
//! servers alike. The token comes from `MC_LEDGER_TOKEN`.
//!
//! With a token, a body's `actor` is left out (the server records the token's). Every POST
//! carries a fresh `Idempotency-Key`, and is sent again with the same key when the
//! answer is a 503 `store_unavailable` or never comes: the server applies it once.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// A whole `GET /v1/events` page of 1000 events fits many times over.
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;
const TIMEOUT_S: u64 = 60;
/// Waits before sending a POST again (after a 503 or a lost answer): about 4 s in all.
const RETRY_WAITS_MS: [u64; 4] = [250, 500, 1_000, 2_000];

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

#[derive(Clone, Copy)]
enum Method {
    Post,
    Patch,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(url: &str) -> anyhow::Result<Client> {
        Client::with_timeout(url, Duration::from_secs(TIMEOUT_S))
    }

    /// A client whose every request gives up after `timeout` (an agent's hook must not hold
    /// the agent up).
    pub fn with_timeout(url: &str, timeout: Duration) -> anyhow::Result<Client> {
        let base = url.trim_end_matches('/');
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .with_context(|| {
                format!("--server must be http://host:port or https://host:port, not {url:?}")
            })?;
        if host.is_empty() || host.contains('/') {
            bail!("--server must be http://host:port or https://host:port, not {url:?}");
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // A 4xx or 5xx is an answer (a problem+json body), not a transport error.
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            base: base.to_owned(),
            token: std::env::var("MC_LEDGER_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            agent,
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Response> {
        let request = self.agent.get(format!("{}{path}", self.base));
        let request = match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        };
        self.answer(request.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.write(Method::Post, path, body)
    }

    /// A PATCH, sent as a POST is (an `Idempotency-Key`, again on a 503 or a lost answer).
    pub fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.write(Method::Patch, path, body)
    }

    fn write(&self, method: Method, path: &str, body: &Value) -> anyhow::Result<Response> {
        let key = ulid::Ulid::new().to_string();
        // With a token the server records the token's actor; a body actor naming anyone else
        // would be refused (403 actor_mismatch), so the tools' default actors are left out.
        let body = match (&self.token, body) {
            (Some(_), Value::Object(fields)) if fields.contains_key("actor") => {
                let mut fields = fields.clone();
                fields.remove("actor");
                Value::Object(fields).to_string()
            }
            _ => body.to_string(),
        };
        let mut waits = RETRY_WAITS_MS.iter();
        loop {
            let url = format!("{}{path}", self.base);
            let request = match method {
                Method::Post => self.agent.post(url),
                Method::Patch => self.agent.patch(url),
            }
            .header("Idempotency-Key", &key);
            let request = match &self.token {
                Some(t) => request.header("Authorization", format!("Bearer {t}")),
                None => request,
            };
            let sent = request.content_type("application/json").send(&body);
            let again = match &sent {
                Ok(r) => r.status().as_u16() == 503,
                // Refused: the server never saw it, so it is not worth waiting for.
                Err(ureq::Error::ConnectionFailed) => false,
                Err(ureq::Error::Io(e)) => e.kind() != std::io::ErrorKind::ConnectionRefused,
                Err(ureq::Error::Timeout(_)) => true,
                Err(_) => false,
            };
            match waits.next() {
                Some(ms) if again => std::thread::sleep(Duration::from_millis(*ms)),
                _ => return self.answer(sent),
            }
        }
    }

    /// A DELETE. Without a token the body names the writer (a server without tokens needs an
    /// actor); with one nothing is sent but the token.
    pub fn delete(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        let request = self.agent.delete(format!("{}{path}", self.base));
        let sent = match &self.token {
            Some(t) => request
                .header("Authorization", format!("Bearer {t}"))
                .call(),
            None => request
                .force_send_body()
                .content_type("application/json")
                .send(body.to_string()),
        };
        self.answer(sent)
    }

    /// One POST of a raw JSON body, no retry: for agents' hooks, which must finish quickly.
    pub fn post_once(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.post_raw(path, &body.to_string(), None)
    }

    /// One POST of `body` as it is, with `key` as its `Idempotency-Key` when given: the hook
    /// spool sends an entry again byte for byte, so the server recognises it.
    pub fn post_raw(&self, path: &str, body: &str, key: Option<&str>) -> anyhow::Result<Response> {
        let request = self.agent.post(format!("{}{path}", self.base));
        let request = match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        };
        let request = match key {
            Some(k) => request.header("Idempotency-Key", k),
            None => request,
        };
        self.answer(request.content_type("application/json").send(body))
    }

    /// This client with another token than `MC_LEDGER_TOKEN`'s (the one a spooled hook was
    /// written with).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    fn answer(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Response> {
        let mut response =
            sent.with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status().as_u16();
        let raw = read_body(&mut response)
            .with_context(|| format!("reading the answer of {}", self.base))?;
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Ok(Response { status, body })
    }
}

/// A response's whole body, refused beyond `RESPONSE_BYTES_MAX`.
pub fn read_body(response: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(RESPONSE_BYTES_MAX)
        .read_to_vec()
}

impl Response {
    /// The body of a success, or the server's problem detail as an error.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.status < 300 {
            return Ok(self.body);
        }
        let detail = self.body["detail"].as_str().unwrap_or("no detail");
        let code = self.body["code"].as_str().unwrap_or("error");
        bail!("server answered {} {code}: {detail}", self.status)
    }
}
