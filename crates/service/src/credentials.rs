//! What a subscription delivers with and no reader may see (SPEC §15: secrets are
//! write-only): its signing secret, and its full URL (a Slack or Telegram URL carries a
//! credential in its path). They live in the store's home (a 0600 file beside the log, or a
//! row every replica reads), one JSON line per version; the facts carry only [`fingerprint`]
//! and the URL with its path hidden ([`display_url`]).

use std::collections::HashMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// The home's file or blob of credentials.
pub const CREDENTIALS: &str = "subscription-credentials";

/// Secret bytes: Standard Webhooks secrets carry 24 to 64.
pub const SECRET_BYTES_MIN: usize = 24;
pub const SECRET_BYTES_MAX: usize = 64;

/// A Standard Webhooks secret: `whsec_` and the base64 of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Parses `whsec_<base64 of 24 to 64 bytes>`; the error says what a secret looks like.
    pub fn parse(s: &str) -> Result<Secret, String> {
        let wrong = || {
            format!(
                "a Standard Webhooks secret: whsec_ and the base64 of {SECRET_BYTES_MIN} to \
                 {SECRET_BYTES_MAX} random bytes"
            )
        };
        let b64 = s.strip_prefix("whsec_").ok_or_else(wrong)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| wrong())?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(wrong());
        }
        Ok(Secret { key })
    }

    /// 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> anyhow::Result<Secret> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Secret { key })
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// `whsec_…`, the form a client is given once and a receiver configures.
    pub fn reveal(&self) -> String {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&self.key)
        )
    }
}

/// A subscription's URL and secret, by their fingerprint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub id: String,
    pub url: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, {})", self.id, display_url(&self.url))
    }
}

impl Credentials {
    pub fn new(url: &str, secret: &Secret) -> Credentials {
        Credentials {
            id: fingerprint(url, secret),
            url: url.to_owned(),
            secret: secret.reveal(),
        }
    }

    pub fn secret(&self) -> Option<Secret> {
        Secret::parse(&self.secret).ok()
    }
}

/// 16 hex digits of a keyed hash of the URL and the secret: names a version of the
/// credentials without revealing either.
pub fn fingerprint(url: &str, secret: &Secret) -> String {
    let mut h = blake3::Hasher::new_derive_key("mc-ledger subscription credentials v1");
    h.update(&u64::try_from(url.len()).unwrap_or(u64::MAX).to_le_bytes());
    h.update(url.as_bytes());
    h.update(secret.key());
    h.finalize().to_hex()[..16].to_owned()
}

/// The URL as facts and views show it: scheme, host and port, and `/…` when it has a path.
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let tail = &rest[end..];
    if tail.is_empty() || tail == "/" {
        format!("{scheme}://{host}/")
    } else {
        format!("{scheme}://{host}/…")
    }
}

/// Every version of every subscription's credentials, by fingerprint.
pub fn load(home: &Home) -> anyhow::Result<HashMap<String, Credentials>> {
    let Some(bytes) = home.read(CREDENTIALS)? else {
        return Ok(HashMap::new());
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Credentials>(line).ok())
        .map(|c| (c.id.clone(), c))
        .collect())
}

/// Keeps a version of credentials (durably, before the fact that names it is appended).
pub fn save(home: &Home, credentials: &Credentials) -> anyhow::Result<()> {
    if load(home)?.contains_key(&credentials.id) {
        return Ok(());
    }
    home.append_line(CREDENTIALS, &serde_json::to_string(credentials)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_only_in_the_standard_webhooks_form() {
        let good = Secret::generate().unwrap();
        assert_eq!(Secret::parse(&good.reveal()).unwrap(), good);
        // Given/when/then: (input, accepted)
        let cases = [
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true), // 24 bytes, the spec's example
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false),      // no prefix
            ("whsec_c2hvcnQ=", false),                        // 5 bytes
            ("whsec_!!!", false),                             // not base64
            ("", false),
        ];
        for (input, ok) in cases {
            assert_eq!(Secret::parse(input).is_ok(), ok, "{input:?}");
        }
    }

    #[test]
    fn urls_show_no_path() {
        let cases = [
            (
                "https://hooks.slack.com/services/T0/B0/XXXX",
                "https://hooks.slack.com/…",
            ),
            (
                "https://api.telegram.org/bot123:ABC/sendMessage",
                "https://api.telegram.org/…",
            ),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("http://user:pw@host:1/x?y", "http://host:1/…"),
        ];
        for (url, shown) in cases {
            assert_eq!(display_url(url), shown);
        }
    }

    #[test]
    fn fingerprints_change_with_url_and_secret() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(fingerprint("http://x/", &a), fingerprint("http://x/", &a));
        assert_ne!(fingerprint("http://x/", &a), fingerprint("http://y/", &a));
        assert_ne!(fingerprint("http://x/", &a), fingerprint("http://x/", &b));
        assert_eq!(fingerprint("http://x/", &a).len(), 16);
    }
}
