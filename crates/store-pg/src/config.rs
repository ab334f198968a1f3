//! Where a ledger lives: the connection URL (with its `schema` parameter) and the replica's
//! tuning.

use std::time::Duration;

use store::LogError;

/// How long a connection may take, start-up included.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Records of the log's tail a replica keeps in memory by default: the projections' catch-up,
/// SSE and fresh reads are served from here; older records are read from PostgreSQL on demand.
pub const TAIL_RECORDS: usize = 4_096;

/// Where a PostgreSQL ledger lives: a connection URL and a schema of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://…` without the `schema` parameter.
    pub url: String,
    pub schema: String,
    /// Records of the log's tail kept in memory (older ones are read from PostgreSQL).
    pub tail_records: usize,
}

impl PgConfig {
    /// Parses `postgres://…[?schema=NAME&…]`; `schema` (default `mc_ledger`, or
    /// `default_schema`) is stripped before connecting.
    pub fn parse(url: &str, default_schema: Option<&str>) -> Result<PgConfig, LogError> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut schema = default_schema.map(str::to_owned);
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.strip_prefix("schema=") {
                Some(s) => schema = Some(s.to_owned()),
                None => kept.push(pair),
            }
        }
        let schema = schema.unwrap_or_else(|| "mc_ledger".to_owned());
        if !is_schema_name(&schema) {
            return Err(LogError::Storage(format!(
                "schema {schema:?}: 1 to 53 characters of a-z 0-9 _, starting with a letter or _"
            )));
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| LogError::Storage(format!("bad PostgreSQL URL: {e}")))?;
        Ok(PgConfig {
            url,
            schema,
            tail_records: TAIL_RECORDS,
        })
    }

    pub(crate) fn connection(&self) -> tokio_postgres::Config {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .expect("the URL was checked when the config was parsed");
        // A database that stops answering must become "unavailable", not a hang.
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .tcp_user_timeout(Duration::from_secs(10));
        config
    }

    pub(crate) fn channel(&self) -> String {
        format!("mc_ledger_{}", self.schema)
    }
}

fn is_schema_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        // `mc_ledger_<schema>` names the NOTIFY channel, an identifier of at most 63 bytes.
        && s.len() <= 53
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
