//! One delivery attempt over HTTP, and what its answer means: delivered (2xx), gone (410:
//! pause), or failed and to be retried (a timeout, a connection error, 429, 5xx, any other
//! status), with the receiver's `Retry-After` when it gave one.

use std::time::{Duration, SystemTime};

/// Bytes of a receiver's answer read for the error message.
const ANSWER_BYTES_MAX: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Gone(String),
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// A signed request ready to send.
pub struct Request<'a> {
    pub url: &'a str,
    pub id: &'a str,
    pub timestamp_s: u64,
    pub signature: &'a str,
    pub body: &'a [u8],
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A receiver that moved answers 3xx: that is a failure to see, not a place to follow
        // a signed body to.
        .max_redirects(0)
        .user_agent("mc-ledger-notify")
        // One kept-alive connection per subscription in flight: a new connection per delivery
        // costs more than the delivery (ureq keeps 3 per host by default).
        .max_idle_connections(256)
        .max_idle_connections_per_host(64)
        .no_delay(true)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        CachingResolver::default(),
    )
}

/// How long a receiver's resolved address is used again.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// ureq's resolver, remembered per host for [`RESOLVED_FOR`]: with a timeout set, ureq's own
/// resolves every request on a thread of its own (so that it can give up), even a kept-alive
/// one to an IP address; a profile of `bench notify` showed those threads' creation as the
/// largest cost of a delivery.
#[derive(Debug, Default)]
struct CachingResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    resolved: std::sync::Mutex<
        std::collections::HashMap<
            String,
            (
                std::time::Instant,
                ureq::unversioned::resolver::ResolvedSocketAddrs,
            ),
        >,
    >,
}

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        let cached = self
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|(at, _)| at.elapsed() < RESOLVED_FOR)
            .map(|(_, addrs)| addrs.clone());
        if let Some(addrs) = cached {
            return Ok(addrs);
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if resolved.len() > 1024 {
            resolved.clear();
        }
        resolved.insert(key, (std::time::Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

pub fn send(agent: &ureq::Agent, r: &Request<'_>) -> Attempt {
    let sent = agent
        .post(r.url)
        .header("webhook-id", r.id)
        .header("webhook-timestamp", r.timestamp_s.to_string())
        .header("webhook-signature", r.signature)
        .content_type("application/json")
        .send(r.body);
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => {
            return Attempt::Failed {
                error: transport_error(&e),
                retry_after: None,
            }
        }
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        // Read what is there so the connection can be used again; a body cut short is fine.
        let _ = response
            .body_mut()
            .with_config()
            .limit(ANSWER_BYTES_MAX)
            .read_to_vec();
        return Attempt::Delivered;
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let answer = response
        .body_mut()
        .with_config()
        .limit(ANSWER_BYTES_MAX)
        .read_to_string()
        .unwrap_or_default();
    let answer: String = answer.chars().take(200).collect();
    let error = if answer.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", answer.trim())
    };
    if status == 410 {
        Attempt::Gone(error)
    } else {
        Attempt::Failed { error, retry_after }
    }
}

fn transport_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::ConnectionFailed => "connection refused".into(),
        ureq::Error::Io(io) => format!("connection error: {io}"),
        other => other.to_string(),
    }
}

/// `Retry-After`: seconds, or an HTTP date (then the wait until it).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(s) = value.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Wed, 21 Oct 2015 07:28:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-1", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }
}
