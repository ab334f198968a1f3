//! The group-commit writer: one task per replica takes the waiting appends, locks the head
//! row, checks ids and versions against the replica's copy (caught up to the locked head),
//! chains and inserts the records, moves the head, NOTIFYs and COMMITs in one round trip, and
//! answers only once the copy holds the rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use events::{Hash, RecordedEvent, TicketId};
use store::chain::place;
use store::classify::{classify, Classified};
use store::{AppendRequest, Appended, LogError};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::cache::{count, decode_at};
use crate::config::PgConfig;
use crate::connect::{answered, connect, connection_lost, no_answer, pg_error, READ_TIMEOUT};
use crate::replica::Inner;

/// Appends one transaction may carry.
const BATCH_APPENDS_MAX: usize = 512;
/// Appends waiting for the writer before new ones wait for room (back-pressure).
pub(crate) const QUEUE_MAX: usize = 4096;
/// How long a writer tries to reconnect to learn whether an interrupted COMMIT happened.
const COMMIT_RECHECK_MS: u64 = 5_000;

pub(crate) type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// One append of a batch once it has been checked against the database.
enum Staged {
    New { count: usize },
    Duplicate(Vec<RecordedEvent>),
    Refused(LogError),
}

/// A row to insert.
struct Row {
    event: RecordedEvent,
    record: Vec<u8>,
}

/// The writer's statements, prepared once per connection (a query given as text costs a
/// second round trip to prepare it).
struct Prepared {
    head: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
}

impl Prepared {
    async fn on(client: &Client, s: &str) -> Result<Prepared, LogError> {
        let prepare = |sql: String| async move { client.prepare(&sql).await.map_err(pg_error) };
        Ok(Prepared {
            head: prepare(format!("SELECT position, hash FROM {s}.head FOR UPDATE")).await?,
            // One statement: if it never reaches the server, the pipelined COMMIT commits
            // an empty transaction; events and head move together or not at all.
            append: prepare(format!(
                "WITH inserted AS ( \
                     INSERT INTO {s}.events (position, ticket, version, id, record) \
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bytea[]) \
                     RETURNING 1), \
                 moved AS ( \
                     UPDATE {s}.head SET position = $6, hash = $7 \
                     WHERE (SELECT count(*) FROM inserted) = cardinality($1::bigint[]) \
                     RETURNING position) \
                 SELECT pg_notify($8, position::text) FROM moved"
            ))
            .await?,
        })
    }
}

/// A writer's connection and its statements.
struct Connection {
    client: Client,
    statements: Prepared,
    /// A round trip got no answer: the connection is dropped before the next batch.
    hung: bool,
}

async fn writer_connection(config: &PgConfig) -> Result<Connection, LogError> {
    let client = connect(config).await?;
    let statements = Prepared::on(&client, &config.schema).await?;
    Ok(Connection {
        client,
        statements,
        hung: false,
    })
}

/// The writer: one transaction per batch of waiting appends.
pub(crate) async fn writer(inner: Arc<Inner>, mut appends: mpsc::Receiver<(AppendRequest, Reply)>) {
    let mut client: Option<Connection> = None;
    while let Some(first) = appends.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_APPENDS_MAX {
            match appends.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if client
            .as_ref()
            .is_none_or(|c| c.hung || c.client.is_closed())
        {
            client = match writer_connection(&inner.config).await {
                Ok(c) => Some(c),
                Err(e) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(e.clone_kind()));
                    }
                    continue;
                }
            };
        }
        let Some(connection) = client.as_mut() else {
            continue;
        };
        let (mut requests, mut replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let late = Late {
            appends: &mut appends,
            requests: &mut requests,
            replies: &mut replies,
        };
        match commit_batch(&inner, connection, late).await {
            Ok((staged, rows)) => {
                // A version conflict means the database is ahead of this replica's copy
                // (another replica wrote, or a commit whose answer was lost): catch up before
                // answering, so the caller's re-decision sees what the check saw.
                let behind = staged
                    .iter()
                    .any(|s| matches!(s, Staged::Refused(LogError::VersionConflict { .. })));
                if behind {
                    let _ = inner.fetch_new(&connection.client).await;
                }
                let mut rows = rows.into_iter().map(|r| r.event);
                for (reply, staged) in replies.into_iter().zip(staged) {
                    let answer = match staged {
                        Staged::New { count, .. } => Ok(Appended {
                            events: rows.by_ref().take(count).collect(),
                            duplicate: false,
                        }),
                        Staged::Duplicate(events) => Ok(Appended {
                            events,
                            duplicate: true,
                        }),
                        Staged::Refused(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                if matches!(e, LogError::Unavailable(_)) {
                    client = None;
                }
                for reply in replies {
                    let _ = reply.send(Err(e.clone_kind()));
                }
            }
        }
    }
}

trait CloneKind {
    fn clone_kind(&self) -> LogError;
}

impl CloneKind for LogError {
    /// The same error for every append of a failed batch.
    fn clone_kind(&self) -> LogError {
        match self {
            LogError::Unavailable(m) => LogError::Unavailable(m.clone()),
            LogError::Closed => LogError::Closed,
            LogError::Corruption { position, detail } => LogError::Corruption {
                position: *position,
                detail: detail.clone(),
            },
            other => LogError::Storage(other.to_string()),
        }
    }
}

/// Checks, chains and commits a batch; the rows come back in position order. Answers are
/// given only after COMMIT and after this replica's copy holds the rows.
async fn commit_batch(
    inner: &Inner,
    connection: &mut Connection,
    late: Late<'_>,
) -> Result<(Vec<Staged>, Vec<Row>), LogError> {
    let result = stage_and_commit(inner, connection, late).await;
    if matches!(result, Err(Failure::Open(_))) {
        // The transaction is still open on a live connection: end it.
        if connection.client.batch_execute("ROLLBACK").await.is_err() {
            return result.map_err(Failure::into_error).map_err(|e| match e {
                LogError::Storage(m) => LogError::Unavailable(m),
                other => other,
            });
        }
    }
    result.map_err(Failure::into_error)
}

/// The batch being committed and the queue it came from, to take more appends from once the
/// head lock is held.
struct Late<'a> {
    appends: &'a mut mpsc::Receiver<(AppendRequest, Reply)>,
    requests: &'a mut Vec<AppendRequest>,
    replies: &'a mut Vec<Reply>,
}

impl<'a> Late<'a> {
    /// Takes what is waiting (up to [`BATCH_APPENDS_MAX`] in all); the batch from then on.
    fn take(self) -> &'a [AppendRequest] {
        while self.requests.len() < BATCH_APPENDS_MAX {
            match self.appends.try_recv() {
                Ok((request, reply)) => {
                    self.requests.push(request);
                    self.replies.push(reply);
                }
                Err(_) => break,
            }
        }
        self.requests
    }
}

/// Why a batch failed, and whether its transaction may still be open.
enum Failure {
    Open(LogError),
    Ended(LogError),
}

impl Failure {
    fn into_error(self) -> LogError {
        match self {
            Failure::Open(e) | Failure::Ended(e) => e,
        }
    }
}

async fn stage_and_commit(
    inner: &Inner,
    connection: &mut Connection,
    late: Late<'_>,
) -> Result<(Vec<Staged>, Vec<Row>), Failure> {
    let s = &inner.config.schema;
    let Connection {
        client,
        statements,
        hung,
    } = connection;
    // A round trip that fails leaves the transaction open on a live connection (to be rolled
    // back); one that gets no answer leaves the connection to be dropped.
    let open = |e: LogError| match e {
        LogError::Unavailable(_) => Failure::Ended(e),
        e => Failure::Open(e),
    };
    // BEGIN and the head lock in one round trip.
    let (_, head_row) = answered(async {
        tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.query_one(&statements.head, &[]),
        )
    })
    .await
    .map_err(open)?;
    let mut position = u64::try_from(head_row.get::<_, i64>(0)).unwrap_or(0);
    let mut hash =
        Hash(head_row.get::<_, &[u8]>(1).try_into().map_err(|_| {
            Failure::Open(LogError::corrupt(position, "head hash is not 32 bytes"))
        })?);
    // Appends that arrived while the lock was asked for join this batch: the writers answered
    // by the last batch are in it, instead of waiting a whole transaction for the next one.
    let requests: &[AppendRequest] = late.take();
    // Nobody else can commit while this transaction holds the head: once this replica's copy
    // reaches the locked head, checking against the copy is checking against the database.
    if inner.head() < position {
        inner.fetch_new(client).await.map_err(open)?;
    }
    let (mut versions, unknown) = {
        let cache = inner.cache.read().unwrap_or_else(|p| p.into_inner());
        if cache.head() != position || cache.hash() != hash {
            return Err(Failure::Open(LogError::corrupt(
                cache.head() + 1,
                format!(
                    "the head row says {position}, this replica holds {}",
                    cache.head()
                ),
            )));
        }
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut unknown: Vec<&TicketId> = Vec::new();
        for part in requests.iter().flat_map(AppendRequest::parts) {
            match cache.version(part.ticket) {
                Some(v) => {
                    versions.insert(part.ticket.to_string(), v);
                }
                None => unknown.push(part.ticket),
            }
        }
        (versions, unknown)
    };
    // In one round trip (the head stays locked meanwhile): ids already recorded, from the
    // database's unique index on them (not from memory), and the versions of the streams this
    // replica does not remember, from the index on `(ticket, version)` (the head is locked, so
    // they are the versions at `position`).
    let ids: Vec<&str> = requests
        .iter()
        .flat_map(AppendRequest::all_events)
        .map(|e| e.id.as_str())
        .collect();
    let names: Vec<&str> = unknown.iter().map(|t| t.as_str()).collect();
    let ids_sql = format!("SELECT position, record FROM {s}.events WHERE id = ANY($1)");
    let versions_sql = format!(
        "SELECT ticket, max(version) FROM {s}.events WHERE ticket = ANY($1) GROUP BY ticket"
    );
    let id_params: [&(dyn ToSql + Sync); 1] = [&ids];
    let version_params: [&(dyn ToSql + Sync); 1] = [&names];
    let (id_rows, version_rows) = answered(async {
        tokio::try_join!(client.query(&ids_sql, &id_params), async {
            if names.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&versions_sql, &version_params).await
            }
        })
    })
    .await
    .map_err(open)?;
    if !unknown.is_empty() {
        let found: HashMap<String, u64> = version_rows
            .iter()
            .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            .collect();
        let mut cache = inner.cache.write().unwrap_or_else(|p| p.into_inner());
        for ticket in unknown {
            let v = found.get(ticket.as_str()).copied().unwrap_or(0);
            cache.learn(ticket, v, position);
            versions.insert(ticket.to_string(), v);
        }
    }
    let mut existing: HashMap<String, RecordedEvent> = HashMap::new();
    for row in id_rows {
        let p = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let event = decode_at(p, row.get(1)).map_err(Failure::Open)?;
        existing.insert(event.id.clone(), event);
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut staged = Vec::with_capacity(requests.len());
    for request in requests {
        // Known: the confirmed originals, and what this batch has staged before this append.
        let classified = classify(
            request,
            |_, id| {
                Ok(existing.get(id).cloned().or_else(|| {
                    rows.iter()
                        .find(|r| r.event.id == id)
                        .map(|r| r.event.clone())
                }))
            },
            |ticket| Ok(versions.get(ticket.as_str()).copied().unwrap_or(0)),
        );
        let currents = match classified {
            Ok(Classified::New(currents)) => currents,
            Ok(Classified::Duplicate(originals)) => {
                staged.push(Staged::Duplicate(originals));
                continue;
            }
            Err(e) => {
                staged.push(Staged::Refused(e));
                continue;
            }
        };
        let mut encoded = Vec::with_capacity(request.len());
        let mut chain = hash;
        let mut refused = None;
        for event in place(request, &currents, position) {
            let mut record = Vec::new();
            match event.encode(&mut record, &chain) {
                Ok(h) => {
                    encoded.push(Row {
                        event: event.recorded(chain, h),
                        record,
                    });
                    chain = h;
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = refused {
            staged.push(Staged::Refused(e));
            continue;
        }
        staged.push(Staged::New {
            count: encoded.len(),
        });
        position += count(encoded.len());
        hash = chain;
        for (part, &current) in request.parts().zip(&currents) {
            versions.insert(part.ticket.to_string(), current + count(part.events.len()));
        }
        rows.extend(encoded);
    }
    if rows.is_empty() {
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| Failure::Ended(pg_error(e)))?;
        return Ok((staged, rows));
    }
    let positions: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.event.position).unwrap_or(i64::MAX))
        .collect();
    let row_tickets: Vec<&str> = rows.iter().map(|r| r.event.ticket.as_str()).collect();
    let row_versions: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.event.version).unwrap_or(i64::MAX))
        .collect();
    let row_ids: Vec<&str> = rows.iter().map(|r| r.event.id.as_str()).collect();
    let records: Vec<&[u8]> = rows.iter().map(|r| r.record.as_slice()).collect();
    let last = i64::try_from(position).unwrap_or(i64::MAX);
    let channel = inner.config.channel();
    let head_hash = hash.0.as_slice();
    let params: [&(dyn ToSql + Sync); 8] = [
        &positions,
        &row_tickets,
        &row_versions,
        &row_ids,
        &records,
        &last,
        &head_hash,
        &channel,
    ];
    // Insert + move the head (and NOTIFY), then COMMIT: one round trip. If the statement
    // fails, PostgreSQL answers the COMMIT with a ROLLBACK and nothing is written.
    let round_trip = tokio::time::timeout(READ_TIMEOUT, async {
        tokio::join!(
            client.query(&statements.append, &params),
            client.batch_execute("COMMIT"),
        )
    })
    .await;
    let lost = |e: &tokio_postgres::Error| e.is_closed() || connection_lost(e);
    let unanswered = match round_trip {
        Err(_) => {
            // No answer to the COMMIT: this connection is done for (the writer reconnects).
            *hung = true;
            Some(no_answer())
        }
        Ok((Ok(moved), Ok(()))) if moved.len() == 1 => None,
        Ok((Ok(_), Ok(()))) => {
            return Err(Failure::Ended(LogError::Storage(
                "the head did not move with the events; nothing was committed".into(),
            )))
        }
        Ok((Err(e), _)) if !lost(&e) => return Err(Failure::Ended(pg_error(e))),
        Ok((_, Err(e))) if !lost(&e) => return Err(Failure::Ended(pg_error(e))),
        Ok((a, c)) => {
            let e = [a.err(), c.err()].into_iter().flatten().next();
            Some(e.map_or(LogError::Unavailable("connection lost".into()), pg_error))
        }
    };
    if let Some(e) = unanswered {
        // The COMMIT may or may not have happened. Ask.
        if !committed(&inner.config, s, rows[0].event.position, &rows[0].record)
            .await
            .map_err(Failure::Ended)?
        {
            return Err(Failure::Ended(e));
        }
    }
    // This replica's copy must hold the rows before anyone is answered (read-your-writes).
    // It reached the locked head before the rows were staged, and nobody else could commit
    // until this COMMIT: only the follower may have added some of these rows already.
    let pushed = {
        let mut cache = inner.cache.write().unwrap_or_else(|p| p.into_inner());
        let mut pushed = false;
        for row in &rows {
            if row.event.position == cache.head() + 1 {
                cache
                    .push_decoded(&row.event, &row.record)
                    .map_err(Failure::Ended)?;
                pushed = true;
            }
        }
        pushed
    };
    if pushed {
        inner.publish_head();
    }
    Ok((staged, rows))
}

/// Whether our first record is in the log, asked on a new connection after a COMMIT whose
/// answer was lost. It first takes the head lock (so the orphaned transaction, if PostgreSQL
/// still runs it, has ended) and then compares the record at our position byte for byte: a
/// retry of the same ids through another replica lands at other positions with other hashes
/// and does not count. Unreachable for [`COMMIT_RECHECK_MS`] means unknown: unavailable.
async fn committed(
    config: &PgConfig,
    schema: &str,
    position: u64,
    record: &[u8],
) -> Result<bool, LogError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(COMMIT_RECHECK_MS);
    let position = i64::try_from(position).unwrap_or(i64::MAX);
    loop {
        if let Ok(mut client) = connect(config).await {
            let asked = async {
                let tx = client.transaction().await?;
                tx.batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{COMMIT_RECHECK_MS}ms'; \
                     SELECT 1 FROM {schema}.head FOR SHARE"
                ))
                .await?;
                let rows = tx
                    .query(
                        &format!("SELECT record FROM {schema}.events WHERE position = $1"),
                        &[&position],
                    )
                    .await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(
                    rows.first().is_some_and(|r| r.get::<_, &[u8]>(0) == record),
                )
            };
            if let Ok(Ok(found)) = tokio::time::timeout(READ_TIMEOUT, asked).await {
                return Ok(found);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(LogError::Unavailable(
                "the connection dropped during COMMIT and PostgreSQL is unreachable; \
                 the append may or may not have been recorded"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
