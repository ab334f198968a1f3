//! The read side: [`PgReader`] serves the traits' synchronous reads from the replica's copy
//! where it holds the answer (the head, the tail's records, the versions of streams written
//! lately) and from PostgreSQL's indexes otherwise (older records, stream reads, other
//! streams' versions); `verify` recomputes the chain from the database.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use events::{RecordedEvent, TicketId};
use store::chain::ChainCheck;
use store::{EventReader, LogError, VerifyReport};
use tokio::sync::watch;

use crate::cache::{count, decode_at};
use crate::config::PgConfig;
use crate::connect::{connect, pg_error};
use crate::replica::{Inner, FETCH_ROWS};

/// A read handle on a replica's copy of the log; it cannot append.
#[derive(Clone)]
pub struct PgReader {
    pub(crate) inner: Arc<Inner>,
}

impl EventReader for PgReader {
    fn head(&self) -> u64 {
        self.inner.head()
    }

    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        let head = {
            let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = cache.version(ticket) {
                return Ok(v);
            }
            cache.head()
        };
        let inner = Arc::clone(&self.inner);
        let t = ticket.clone();
        let version = self
            .inner
            .block_on(async move { inner.version_at(&t, head).await })?;
        self.inner
            .cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .learn(ticket, version, head);
        Ok(version)
    }

    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let from = from_version.max(1);
        if from > to_version || limit == 0 {
            return Ok(Vec::new());
        }
        let head = self.inner.head();
        let inner = Arc::clone(&self.inner);
        let ticket = ticket.clone();
        self.inner.block_on(async move {
            inner
                .stream_events(&ticket, (from, to_version), limit, head)
                .await
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let head = self.inner.head();
        if after >= head || limit == 0 {
            return Ok(Vec::new());
        }
        let end = after.saturating_add(count(limit)).min(head);
        let wanted: Vec<u64> = (after + 1..=end).collect();
        self.inner.records(&wanted)
    }

    fn event_by_id(&self, id: &str) -> Result<Option<RecordedEvent>, LogError> {
        let head = self.inner.head();
        let inner = Arc::clone(&self.inner);
        let id = id.to_owned();
        self.inner
            .block_on(async move { inner.event_by_id(&id, head).await })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    fn verify(&self) -> Result<VerifyReport, LogError> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .block_on(async move { verify(&inner.config).await })
    }

    fn ready(&self) -> Result<(), LogError> {
        if self.inner.following.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(LogError::Unavailable(
                "no connection to PostgreSQL; retrying".into(),
            ))
        }
    }
}

/// Recomputes the chain of the whole log from the database.
async fn verify(config: &PgConfig) -> Result<VerifyReport, LogError> {
    let s = &config.schema;
    let client = connect(config).await?;
    // The chain and every stream's versions, record by record (`store::chain`).
    let mut chain = ChainCheck::new();
    let sql = format!(
        "SELECT position, record FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    loop {
        let after = i64::try_from(chain.head().position).unwrap_or(i64::MAX);
        let rows = client
            .query(&sql, &[&after, &FETCH_ROWS])
            .await
            .map_err(pg_error)?;
        for row in &rows {
            let position: i64 = row.get(0);
            let record: &[u8] = row.get(1);
            let position = u64::try_from(position).unwrap_or(0);
            let head = chain.head().position;
            if position <= head {
                return Err(LogError::corrupt(position, "position repeated"));
            }
            if position != head + 1 {
                return Err(LogError::corrupt(
                    head + 1,
                    format!("the database skipped to position {position}"),
                ));
            }
            let event = decode_at(position, record)?;
            if event.position != position {
                return Err(LogError::corrupt(
                    position,
                    "the record names another position",
                ));
            }
            chain.push(&event)?;
        }
        if i64::try_from(rows.len()).unwrap_or(0) < FETCH_ROWS {
            break;
        }
    }
    let head = client
        .query_one(&format!("SELECT position, hash FROM {s}.head"), &[])
        .await
        .map_err(pg_error)?;
    let head_position = u64::try_from(head.get::<_, i64>(0)).unwrap_or(0);
    let end = chain.head();
    if head_position != end.position || head.get::<_, &[u8]>(1) != end.hash.0.as_slice() {
        return Err(LogError::corrupt(
            end.position + 1,
            format!(
                "the head row says {head_position}, the events end at {}",
                end.position
            ),
        ));
    }
    Ok(chain.report())
}
