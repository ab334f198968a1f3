//! One replica's shared state (config, copy of the log, durable head, runtime) and how it
//! follows the database: reads of records older than the tail, catching up after a NOTIFY or
//! a poll, and the follower task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use events::{RecordedEvent, TicketId};
use store::LogError;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, NoTls};

use crate::cache::{decode_at, Cache};
use crate::config::{PgConfig, CONNECT_TIMEOUT};
use crate::connect::{answered, connect, no_answer, pg_error, READ_TIMEOUT};

/// Records fetched per query when following the log.
pub(crate) const FETCH_ROWS: i64 = 10_000;
/// The follower's backstop poll when no NOTIFY arrives.
const POLL_MS: u64 = 250;

pub(crate) struct Inner {
    pub(crate) config: PgConfig,
    pub(crate) cache: RwLock<Cache>,
    pub(crate) head: watch::Sender<u64>,
    /// The follower's connection is up (readiness).
    pub(crate) following: AtomicBool,
    pub(crate) runtime: tokio::runtime::Handle,
    /// The connection of reads the copy cannot answer (older records, streams, versions).
    pub(crate) reads: tokio::sync::Mutex<Option<Client>>,
    /// The connection of subscriptions' checkpoints and leases.
    pub(crate) leases: tokio::sync::Mutex<Option<Client>>,
}

/// Positions fetched per query when reading records older than the tail.
const READ_ROWS: usize = 10_000;

impl Inner {
    /// The events at `positions`, in that order: from the tail when it holds them, from
    /// PostgreSQL otherwise.
    pub(crate) fn records(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out: Vec<Option<RecordedEvent>> = Vec::with_capacity(positions.len());
        let mut missing = Vec::new();
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            for (i, &p) in positions.iter().enumerate() {
                match cache.tail_record(p) {
                    Some(record) => out.push(Some(decode_at(p, record)?)),
                    None => {
                        out.push(None);
                        missing.push((i, p));
                    }
                }
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<u64> = missing.iter().map(|(_, p)| *p).collect();
            let mut found = self.block_on(self.fetch_positions(&wanted))?;
            for (i, p) in missing {
                out[i] = Some(found.remove(&p).ok_or_else(|| {
                    LogError::corrupt(p, "the index has it, the database does not")
                })?);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn fetch_positions(
        &self,
        positions: &[u64],
    ) -> Result<HashMap<u64, RecordedEvent>, LogError> {
        let sql = format!(
            "SELECT position, record FROM {}.events WHERE position = ANY($1)",
            self.config.schema
        );
        let mut out = HashMap::with_capacity(positions.len());
        for chunk in positions.chunks(READ_ROWS) {
            let wanted: Vec<i64> = chunk
                .iter()
                .map(|p| i64::try_from(*p).unwrap_or(i64::MAX))
                .collect();
            for event in self.read_rows(&sql, &[&wanted]).await? {
                out.insert(event.position, event);
            }
        }
        Ok(out)
    }

    /// The event with this id, if it is at or below `head` (the database's unique index on
    /// event ids answers; no replica holds them in memory).
    pub(crate) async fn event_by_id(
        &self,
        id: &str,
        head: u64,
    ) -> Result<Option<RecordedEvent>, LogError> {
        let sql = format!(
            "SELECT position, record FROM {}.events WHERE id = $1 AND position <= $2",
            self.config.schema
        );
        let head = i64::try_from(head).unwrap_or(i64::MAX);
        Ok(self.read_rows(&sql, &[&id, &head]).await?.pop())
    }

    /// A ticket's events with version in `from..=to` at or below `head`, at most `limit`, in
    /// version order (the unique index on `(ticket, version)` answers).
    pub(crate) async fn stream_events(
        &self,
        ticket: &TicketId,
        (from, to): (u64, u64),
        limit: usize,
        head: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let sql = format!(
            "SELECT position, record FROM {}.events \
             WHERE ticket = $1 AND version >= $2 AND version <= $3 AND position <= $4 \
             ORDER BY version LIMIT $5",
            self.config.schema
        );
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_rows(
            &sql,
            &[&ticket.as_str(), &big(from), &big(to), &big(head), &limit],
        )
        .await
    }

    /// The version of a ticket's stream at `head` (0: no events).
    pub(crate) async fn version_at(&self, ticket: &TicketId, head: u64) -> Result<u64, LogError> {
        let sql = format!(
            "SELECT coalesce(max(version), 0) FROM {}.events WHERE ticket = $1 AND position <= $2",
            self.config.schema
        );
        let head = i64::try_from(head).unwrap_or(i64::MAX);
        let rows = self.query_reads(&sql, &[&ticket.as_str(), &head]).await?;
        Ok(rows
            .first()
            .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    /// Rows of `(position, record)` on the reading connection, each checked to be the record
    /// of its position.
    async fn read_rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = self.query_reads(sql, params).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let position = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let event = decode_at(position, row.get(1))?;
            if event.position != position {
                return Err(LogError::corrupt(
                    position,
                    "the record names another position",
                ));
            }
            out.push(event);
        }
        Ok(out)
    }

    /// A query on the reading connection (connected again when it was lost).
    async fn query_reads(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, LogError> {
        let mut reads = self.reads.lock().await;
        if reads.as_ref().is_none_or(Client::is_closed) {
            *reads = Some(connect(&self.config).await?);
        }
        let client = reads.as_ref().expect("connected just now");
        match tokio::time::timeout(READ_TIMEOUT, client.query(sql, params)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                *reads = None;
                Err(pg_error(e))
            }
            Err(_) => {
                *reads = None;
                Err(LogError::Unavailable(
                    "PostgreSQL did not answer a read".into(),
                ))
            }
        }
    }

    /// Starts this replica's copy at the log's tail: the last records up to the tail's length
    /// (what is older stays in the database, read on demand), then [`Inner::fetch_new`].
    pub(crate) async fn start_at_tail(&self, client: &Client) -> Result<(), LogError> {
        let s = &self.config.schema;
        let head =
            answered(client.query_one(&format!("SELECT position FROM {s}.head"), &[])).await?;
        let head = u64::try_from(head.get::<_, i64>(0)).unwrap_or(0);
        let tail = crate::cache::count(
            self.cache
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .tail_max(),
        );
        let after = head.saturating_sub(tail);
        if after == 0 {
            return Ok(());
        }
        let sql = format!("SELECT position, record FROM {s}.events WHERE position = $1");
        let first = i64::try_from(after + 1).unwrap_or(i64::MAX);
        let rows = answered(client.query(&sql, &[&first])).await?;
        let Some(row) = rows.first() else {
            return Err(LogError::corrupt(
                after + 1,
                format!(
                    "the head row says {head}, the events lack position {}",
                    after + 1
                ),
            ));
        };
        let event = decode_at(after + 1, row.get(1))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .start_before(&event);
        Ok(())
    }

    /// Fetches every committed record after this replica's head, with `client`.
    pub(crate) async fn fetch_new(&self, client: &Client) -> Result<(), LogError> {
        let sql = format!(
            "SELECT position, record FROM {}.events WHERE position > $1 ORDER BY position LIMIT $2",
            self.config.schema
        );
        loop {
            let after = i64::try_from(self.head()).unwrap_or(i64::MAX);
            let rows = answered(client.query(&sql, &[&after, &FETCH_ROWS])).await?;
            if rows.is_empty() {
                return Ok(());
            }
            {
                let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                for row in &rows {
                    let position: i64 = row.get(0);
                    let record: &[u8] = row.get(1);
                    cache.push(u64::try_from(position).unwrap_or(0), record)?;
                }
            }
            self.publish_head();
            if i64::try_from(rows.len()).unwrap_or(0) < FETCH_ROWS {
                return Ok(());
            }
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).head()
    }

    /// Tells subscribers the head moved; never backwards (the writer and the follower may
    /// publish in either order).
    pub(crate) fn publish_head(&self) {
        let head = self.head();
        self.head.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
    }

    /// Runs `future` on the store's runtime from any thread, async contexts included.
    pub(crate) fn block_on<T: Send>(
        &self,
        future: impl std::future::Future<Output = T> + Send,
    ) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(future))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

/// Follows the log: LISTEN for commits of any replica, poll as a backstop, reconnect when the
/// connection drops.
pub(crate) async fn follower(inner: Arc<Inner>) {
    loop {
        match follow(&inner).await {
            Ok(()) => return,
            Err(_) => {
                // The server reports this through `/readyz`; the store has no logger.
                inner.following.store(false, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
        }
    }
}

async fn follow(inner: &Inner) -> Result<(), LogError> {
    let pg = inner.config.connection();
    let (client, mut connection) =
        match tokio::time::timeout(CONNECT_TIMEOUT, pg.connect(NoTls)).await {
            Ok(connected) => connected.map_err(pg_error)?,
            Err(_) => return Err(no_answer()),
        };
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    let _ = wake.try_send(());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let result = async {
        answered(client.batch_execute(&format!("LISTEN {}", inner.config.channel()))).await?;
        inner.following.store(true, Ordering::Relaxed);
        loop {
            inner.fetch_new(&client).await?;
            let _ = tokio::time::timeout(Duration::from_millis(POLL_MS), woken.recv()).await;
            if client.is_closed() {
                return Err(LogError::Unavailable("follower connection closed".into()));
            }
        }
    }
    .await;
    driver.abort();
    result
}
