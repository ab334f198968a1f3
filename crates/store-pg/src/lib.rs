//! The PostgreSQL store: any number of `serve` replicas share one ledger in one database,
//! behind the same [`store`] traits as the embedded sled log.
//!
//! **Appends.** Each replica has one writer task that takes every append waiting in its queue
//! and commits them in one transaction (group commit). The transaction first locks the single
//! `head` row (`SELECT … FOR UPDATE`), so appends from all replicas are serialized in the
//! database: positions are assigned under that lock from the head's position, the hash chain
//! is extended from the head's hash inside the transaction, and the head row is updated before
//! COMMIT. A transaction that waits for the lock reads the head only after the holder has
//! committed, so position N+1 can only be written — and become visible — after N is committed:
//! positions are gapless and in commit order (`docs/decisions.md` has the argument). Dedupe
//! (event id), expected versions and multi-event atomicity are checked against the database
//! inside the same transaction, so they hold across replicas.
//!
//! **Reads.** Every replica keeps the committed log in memory as encoded records (the codec's
//! format, decoded and hash-checked on read), fed by a follower task woken by LISTEN/NOTIFY
//! with a poll as backstop, and by its own writer after each COMMIT (read-your-writes: an
//! append is answered only once its events are in this replica's copy). The trait's reads are
//! synchronous and never wait for the network, so reads keep serving when the database is
//! down; writes then answer [`LogError::Unavailable`] and the store reconnects by itself.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use events::codec::{self, RecordHead};
use events::{Hash, NewEvent, RecordedEvent, TicketId};
use store::{
    validate, AppendRequest, Appended, BoxFuture, EventReader, EventStore, LogError, Part,
    VerifyReport,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

mod migrate;

pub use migrate::SCHEMA_VERSION;

/// Appends one transaction may carry.
const BATCH_APPENDS_MAX: usize = 512;
/// Appends waiting for the writer before new ones wait for room (back-pressure).
const QUEUE_MAX: usize = 4096;
/// Records fetched per query when following the log.
const FETCH_ROWS: i64 = 10_000;
/// The follower's backstop poll when no NOTIFY arrives.
const POLL_MS: u64 = 250;
/// How long a writer tries to reconnect to learn whether an interrupted COMMIT happened.
const COMMIT_RECHECK_MS: u64 = 5_000;
/// How long a connection may take, start-up included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

    fn connection(&self) -> tokio_postgres::Config {
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

    fn channel(&self) -> String {
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

/// A PostgreSQL error as the log's error: a lost connection is "unavailable" (503, retry),
/// anything else a storage failure.
fn pg_error(e: tokio_postgres::Error) -> LogError {
    pg_error_ref(&e)
}

/// An error that means the connection (or the server) went away, as opposed to a statement
/// the server refused: SQLSTATE class 08, admin/crash shutdown and "starting up" (57P01-03).
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    }) || e.to_string().contains("connection closed")
}

fn pg_error_ref(e: &tokio_postgres::Error) -> LogError {
    // SQLSTATE classes 08 (connection exception), 53 (insufficient resources: too many
    // connections) and 57 (operator intervention: shutdown, crash, starting up) pass.
    let transient = e.code().is_none_or(|c| {
        ["08", "53", "57"]
            .iter()
            .any(|class| c.code().starts_with(class))
    });
    if e.is_closed() || transient {
        LogError::Unavailable(format!("{e:#}"))
    } else {
        LogError::Storage(format!("{e:#}"))
    }
}

/// Connects, start-up and authentication included, within [`CONNECT_TIMEOUT`] (the driver's
/// own connect timeout covers only the TCP connect: a server that accepts and then says
/// nothing would hang here).
async fn connect(config: &PgConfig) -> Result<Client, LogError> {
    let pg = config.connection();
    let connecting = pg.connect(NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => connected.map_err(pg_error)?,
        Err(_) => {
            return Err(LogError::Unavailable(format!(
                "PostgreSQL did not complete a connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Records of the log's tail a replica keeps in memory by default: the projections' catch-up,
/// SSE and fresh reads are served from here; older records are read from PostgreSQL on demand.
pub const TAIL_RECORDS: usize = 4_096;

/// What this replica knows of the committed log: an index of every position (its ticket stream
/// and its event id's hash) and the encoded records of the tail.
struct Cache {
    /// The tail's length.
    tail_max: usize,
    head: u64,
    /// The hash of the record at `head`.
    hash: Hash,
    streams: HashMap<TicketId, Vec<u64>>,
    /// 64 bits of blake3 of each event id → its position; the rare second id with the same
    /// hash goes to `id_overflow`. A hit is a candidate, confirmed on the record.
    ids: HashMap<u64, u64>,
    id_overflow: Vec<(u64, u64)>,
    /// The last records, oldest first; the last one is at `head`.
    tail: VecDeque<Box<[u8]>>,
}

fn id_hash(id: &str) -> u64 {
    let bytes = blake3::hash(id.as_bytes());
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

impl Cache {
    fn new(tail_max: usize) -> Cache {
        Cache {
            tail_max: tail_max.max(1),
            head: 0,
            hash: Hash::ZERO,
            streams: HashMap::new(),
            ids: HashMap::new(),
            id_overflow: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    fn head(&self) -> u64 {
        self.head
    }

    /// Adds the record at `position` if it is the next one (records already held are
    /// skipped); answers the decoded event when it was added.
    fn push(&mut self, position: u64, record: &[u8]) -> Result<Option<RecordedEvent>, LogError> {
        if position <= self.head {
            return Ok(None);
        }
        if position != self.head + 1 {
            return Err(LogError::corrupt(
                self.head + 1,
                format!("the database skipped to position {position}"),
            ));
        }
        let (event, _) =
            codec::decode_record(record).map_err(|e| LogError::corrupt(position, e))?;
        if event.position != position {
            return Err(LogError::corrupt(
                position,
                "the record names another position",
            ));
        }
        self.push_decoded(&event, record)?;
        Ok(Some(event))
    }

    /// [`Cache::push`] of a record whose event is already known (the writer's own rows, which
    /// it has just encoded): no second decode.
    fn push_decoded(&mut self, event: &RecordedEvent, record: &[u8]) -> Result<(), LogError> {
        let position = event.position;
        if position <= self.head {
            return Ok(());
        }
        if position != self.head + 1 || event.prev_hash != self.hash {
            return Err(LogError::corrupt(
                position,
                "hash chain broken: prev_hash differs",
            ));
        }
        self.head = position;
        self.hash = event.hash;
        self.streams
            .entry(event.ticket.clone())
            .or_default()
            .push(position);
        let key = id_hash(&event.id);
        if let Some(older) = self.ids.insert(key, position) {
            // Two ids with the same 64-bit hash: the map keeps the newer, the overflow the older.
            self.id_overflow.push((key, older));
        }
        if self.tail.len() == self.tail_max {
            self.tail.pop_front();
        }
        self.tail.push_back(record.into());
        Ok(())
    }

    /// The record at `position` if it is in the tail.
    fn tail_record(&self, position: u64) -> Option<&[u8]> {
        let first = self.head + 1 - count(self.tail.len());
        let index = usize::try_from(position.checked_sub(first)?).ok()?;
        self.tail.get(index).map(|r| &r[..])
    }

    /// Positions whose event id may be `id`.
    fn id_candidates(&self, id: &str) -> Vec<u64> {
        let key = id_hash(id);
        self.ids
            .get(&key)
            .copied()
            .into_iter()
            .chain(
                self.id_overflow
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, p)| *p),
            )
            .collect()
    }
}

fn decode_at(position: u64, record: &[u8]) -> Result<RecordedEvent, LogError> {
    codec::decode_record(record)
        .map(|(event, _)| event)
        .map_err(|e| LogError::corrupt(position, e))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

struct Inner {
    config: PgConfig,
    cache: RwLock<Cache>,
    head: watch::Sender<u64>,
    /// The follower's connection is up (readiness).
    following: AtomicBool,
    runtime: tokio::runtime::Handle,
    /// The connection that reads records older than the tail.
    reads: tokio::sync::Mutex<Option<Client>>,
}

/// How long a read of records older than the tail may wait for PostgreSQL.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a round trip that gets no answer within [`READ_TIMEOUT`] becomes: the database (or
/// the network to it) stopped answering, though the connection may look open (a proxy or a
/// NAT that still acknowledges TCP).
fn no_answer() -> LogError {
    LogError::Unavailable(format!(
        "PostgreSQL did not answer within {} s",
        READ_TIMEOUT.as_secs()
    ))
}

/// A round trip bounded by [`READ_TIMEOUT`].
async fn answered<T>(
    round_trip: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, LogError> {
    match tokio::time::timeout(READ_TIMEOUT, round_trip).await {
        Ok(answer) => answer.map_err(pg_error),
        Err(_) => Err(no_answer()),
    }
}
/// Positions fetched per query when reading records older than the tail.
const READ_ROWS: usize = 10_000;

impl Inner {
    /// The events at `positions`, in that order: from the tail when it holds them, from
    /// PostgreSQL otherwise.
    fn records(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, LogError> {
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
        let mut reads = self.reads.lock().await;
        if reads.as_ref().is_none_or(Client::is_closed) {
            *reads = Some(connect(&self.config).await?);
        }
        let client = reads.as_ref().expect("connected just now");
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
            let asked = tokio::time::timeout(READ_TIMEOUT, client.query(&sql, &[&wanted])).await;
            let rows = match asked {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    *reads = None;
                    return Err(pg_error(e));
                }
                Err(_) => {
                    *reads = None;
                    return Err(LogError::Unavailable(
                        "PostgreSQL did not answer a read".into(),
                    ));
                }
            };
            for row in rows {
                let position = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
                let event = decode_at(position, row.get(1))?;
                if event.position != position {
                    return Err(LogError::corrupt(
                        position,
                        "the record names another position",
                    ));
                }
                out.insert(position, event);
            }
        }
        Ok(out)
    }

    /// Fetches every committed record after this replica's head, with `client`.
    async fn fetch_new(&self, client: &Client) -> Result<(), LogError> {
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

    fn head(&self) -> u64 {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).head()
    }

    /// Tells subscribers the head moved; never backwards (the writer and the follower may
    /// publish in either order).
    fn publish_head(&self) {
        let head = self.head();
        self.head.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
    }

    /// Runs `future` on the store's runtime from any thread, async contexts included.
    fn block_on<T: Send>(&self, future: impl std::future::Future<Output = T> + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(future))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// The PostgreSQL store of one replica.
pub struct PgStore {
    inner: Arc<Inner>,
    queue: Mutex<Option<mpsc::Sender<(AppendRequest, Reply)>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl PgStore {
    /// Connects, creates or migrates the schema (refusing one newer than this build knows),
    /// loads the committed log and starts the writer and the follower.
    pub fn open(config: PgConfig) -> Result<PgStore, LogError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mc-ledger-pg")
            .enable_all()
            .build()
            .map_err(|e| LogError::Storage(format!("runtime: {e}")))?;
        let (head, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            cache: RwLock::new(Cache::new(config.tail_records)),
            config,
            head,
            following: AtomicBool::new(false),
            runtime: runtime.handle().clone(),
            reads: tokio::sync::Mutex::new(None),
        });
        let loaded = Arc::clone(&inner);
        inner.block_on(async move {
            let mut client = connect(&loaded.config).await?;
            migrate::migrate(&mut client, &loaded.config.schema).await?;
            loaded.fetch_new(&client).await
        })?;
        inner.following.store(true, Ordering::Relaxed);
        let (queue, appends) = mpsc::channel(QUEUE_MAX);
        let writer = runtime.spawn(writer(Arc::clone(&inner), appends));
        runtime.spawn(follower(Arc::clone(&inner)));
        Ok(PgStore {
            inner,
            queue: Mutex::new(Some(queue)),
            writer: Mutex::new(Some(writer)),
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.inner.config.schema
    }

    /// A named blob kept beside the log (the projection snapshot, the tokens), if any.
    pub fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        let inner = Arc::clone(&self.inner);
        let name = name.to_owned();
        // On the reads connection: servers ask for the tokens every 250 ms.
        self.inner.block_on(async move {
            let mut reads = inner.reads.lock().await;
            if reads.as_ref().is_none_or(Client::is_closed) {
                *reads = Some(connect(&inner.config).await?);
            }
            let client = reads.as_ref().expect("connected just now");
            let sql = format!(
                "SELECT body FROM {}.blobs WHERE name = $1",
                inner.config.schema
            );
            match answered(client.query(&sql, &[&name])).await {
                Ok(rows) => Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0))),
                Err(e) => {
                    *reads = None;
                    Err(e)
                }
            }
        })
    }

    /// Replaces a named blob; the whole body is written in one statement.
    pub fn put_blob(&self, name: &str, body: Vec<u8>) -> Result<(), LogError> {
        self.write_blob(name, body, false)
    }

    /// Appends to a named blob atomically (concurrent appenders never lose a line).
    pub fn append_blob(&self, name: &str, body: Vec<u8>) -> Result<(), LogError> {
        self.write_blob(name, body, true)
    }

    fn write_blob(&self, name: &str, body: Vec<u8>, append: bool) -> Result<(), LogError> {
        let inner = Arc::clone(&self.inner);
        let name = name.to_owned();
        let merge = if append {
            "blobs.body || EXCLUDED.body"
        } else {
            "EXCLUDED.body"
        };
        self.inner.block_on(async move {
            let client = connect(&inner.config).await?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {s}.blobs AS blobs (name, body) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET body = {merge}, updated_at = now()",
                        s = inner.config.schema
                    ),
                    &[&name, &body],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    /// Drops a ledger's schema and everything in it (tests, and an operator starting over).
    pub fn drop_schema(config: &PgConfig) -> Result<(), LogError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LogError::Storage(format!("runtime: {e}")))?;
        let config = config.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let client = connect(&config).await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", config.schema))
                    .await
                    .map_err(pg_error)
            })
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Brings this replica's copy up to everything committed now (tests, `copy`).
    pub fn sync(&self) -> Result<u64, LogError> {
        let inner = Arc::clone(&self.inner);
        self.inner.block_on(async move {
            let client = connect(&inner.config).await?;
            inner.fetch_new(&client).await?;
            Ok(inner.head())
        })
    }

    /// A read handle on this replica's copy of the log.
    pub fn read_handle(&self) -> PgReader {
        self.reader_of()
    }

    fn reader_of(&self) -> PgReader {
        PgReader {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            runtime.shutdown_background();
        }
    }
}

/// A read handle on a replica's copy of the log; it cannot append.
#[derive(Clone)]
pub struct PgReader {
    inner: Arc<Inner>,
}

impl EventReader for PgReader {
    fn head(&self) -> u64 {
        self.inner.head()
    }

    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
        Ok(cache.streams.get(ticket).map_or(0, |s| count(s.len())))
    }

    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let wanted: Vec<u64> = {
            let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
            let Some(positions) = cache.streams.get(ticket) else {
                return Ok(Vec::new());
            };
            let from = usize::try_from(from_version.max(1) - 1).unwrap_or(usize::MAX);
            let to = usize::try_from(to_version)
                .unwrap_or(usize::MAX)
                .min(positions.len());
            positions
                .get(from..to.max(from))
                .unwrap_or(&[])
                .iter()
                .take(limit)
                .copied()
                .collect()
        };
        self.inner.records(&wanted)
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
        let candidates = self
            .inner
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .id_candidates(id);
        Ok(self
            .inner
            .records(&candidates)?
            .into_iter()
            .find(|e| e.id == id))
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

impl EventReader for PgStore {
    fn head(&self) -> u64 {
        self.inner.head()
    }
    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        self.reader_of().stream_version(ticket)
    }
    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reader_of()
            .read_stream(ticket, from_version, to_version, limit)
    }
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.reader_of().read_after(after, limit)
    }
    fn event_by_id(&self, id: &str) -> Result<Option<RecordedEvent>, LogError> {
        self.reader_of().event_by_id(id)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }
    fn verify(&self) -> Result<VerifyReport, LogError> {
        self.reader_of().verify()
    }
    fn ready(&self) -> Result<(), LogError> {
        self.reader_of().ready()
    }
}

impl EventStore for PgStore {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, LogError>> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Box::pin(async move {
            validate(&request)?;
            let queue = queue.ok_or(LogError::Closed)?;
            let (reply, answer) = oneshot::channel();
            queue
                .send((request, reply))
                .await
                .map_err(|_| LogError::Closed)?;
            answer.await.map_err(|_| LogError::Closed)?
        })
    }

    fn reader(&self) -> Arc<dyn EventReader> {
        Arc::new(self.reader_of())
    }

    fn close(&self) -> Result<(), LogError> {
        // The writer answers every append in the queue, then sees the channel close; each
        // answer came after its COMMIT, so nothing is left to flush. Wait for it.
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = self
                .inner
                .block_on(async { tokio::time::timeout(Duration::from_secs(30), writer).await });
        }
        Ok(())
    }
}

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
async fn writer(inner: Arc<Inner>, mut appends: mpsc::Receiver<(AppendRequest, Reply)>) {
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
    let (candidates, versions) = {
        let cache = inner.cache.read().unwrap_or_else(|p| p.into_inner());
        if cache.head() != position || cache.hash != hash {
            return Err(Failure::Open(LogError::corrupt(
                cache.head() + 1,
                format!(
                    "the head row says {position}, this replica holds {}",
                    cache.head()
                ),
            )));
        }
        let candidates: Vec<u64> = requests
            .iter()
            .flat_map(AppendRequest::all_events)
            .flat_map(|e| cache.id_candidates(&e.id))
            .collect();
        let versions: HashMap<String, u64> = requests
            .iter()
            .flat_map(AppendRequest::parts)
            .map(|part| {
                let v = cache.streams.get(part.ticket).map_or(0, |p| count(p.len()));
                (part.ticket.to_string(), v)
            })
            .collect();
        (candidates, versions)
    };
    // Id hits are candidates (64-bit hashes): confirm them on their records.
    let mut existing: HashMap<String, RecordedEvent> = HashMap::new();
    if !candidates.is_empty() {
        let wanted: Vec<i64> = candidates
            .iter()
            .map(|p| i64::try_from(*p).unwrap_or(i64::MAX))
            .collect();
        let rows = answered(client.query(
            &format!("SELECT position, record FROM {s}.events WHERE position = ANY($1)"),
            &[&wanted],
        ))
        .await
        .map_err(open)?;
        for row in rows {
            let p = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            let event = decode_at(p, row.get(1)).map_err(Failure::Open)?;
            existing.insert(event.id.clone(), event);
        }
    }
    let mut versions = versions;
    let mut rows: Vec<Row> = Vec::new();
    let mut staged = Vec::with_capacity(requests.len());
    for request in requests {
        let parts: Vec<Part<'_>> = request.parts().collect();
        let events: Vec<(&TicketId, &NewEvent)> = parts
            .iter()
            .flat_map(|p| p.events.iter().map(move |e| (p.ticket, e)))
            .collect();
        let known: Vec<Option<RecordedEvent>> = events
            .iter()
            .map(|(_, e)| {
                existing.get(&e.id).cloned().or_else(|| {
                    rows.iter()
                        .find(|r| r.event.id == e.id)
                        .map(|r| r.event.clone())
                })
            })
            .collect();
        let found = known.iter().filter(|k| k.is_some()).count();
        if found == events.len() {
            let misplaced = known
                .iter()
                .flatten()
                .zip(&events)
                .find(|(original, (ticket, _))| original.ticket != **ticket);
            if let Some((other, _)) = misplaced {
                staged.push(Staged::Refused(LogError::IdConflict {
                    id: other.id.clone(),
                }));
            } else {
                let mut all: Vec<RecordedEvent> = known.into_iter().flatten().collect();
                all.sort_by_key(|e| e.position);
                staged.push(Staged::Duplicate(all));
            }
            continue;
        }
        if let Some(i) = known.iter().position(Option::is_some) {
            staged.push(Staged::Refused(LogError::IdConflict {
                id: events[i].1.id.clone(),
            }));
            continue;
        }
        let currents: Vec<u64> = parts
            .iter()
            .map(|p| versions.get(p.ticket.as_str()).copied().unwrap_or(0))
            .collect();
        let conflict = parts.iter().zip(&currents).find_map(|(part, &current)| {
            part.expected_version
                .filter(|&expected| expected != current)
                .map(|expected| LogError::VersionConflict {
                    ticket: part.ticket.to_string(),
                    expected,
                    actual: current,
                })
        });
        if let Some(e) = conflict {
            staged.push(Staged::Refused(e));
            continue;
        }
        let mut encoded = Vec::with_capacity(events.len());
        let mut chain = hash;
        let mut refused = None;
        'parts: for (part, &current) in parts.iter().zip(&currents) {
            for (k, event) in part.events.iter().enumerate() {
                let head = RecordHead {
                    position: position + count(encoded.len()) + 1,
                    ticket: part.ticket,
                    version: current + count(k) + 1,
                    id: &event.id,
                    recorded_at: event.recorded_at,
                    actor: &event.actor,
                    token_id: event.token_id.as_deref(),
                };
                let mut record = Vec::new();
                match codec::encode_record(&mut record, &chain, &head, &event.data) {
                    Ok(h) => {
                        encoded.push(Row {
                            event: RecordedEvent {
                                position: head.position,
                                ticket: part.ticket.clone(),
                                version: head.version,
                                id: event.id.clone(),
                                recorded_at: event.recorded_at,
                                actor: event.actor.clone(),
                                token_id: event.token_id.clone(),
                                data: event.data.clone(),
                                prev_hash: chain,
                                hash: h,
                            },
                            record,
                        });
                        chain = h;
                    }
                    Err(e) => {
                        refused = Some(LogError::from(e));
                        break 'parts;
                    }
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
        for (part, &current) in parts.iter().zip(&currents) {
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

/// Follows the log: LISTEN for commits of any replica, poll as a backstop, reconnect when the
/// connection drops.
async fn follower(inner: Arc<Inner>) {
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

/// Recomputes the chain of the whole log from the database.
async fn verify(config: &PgConfig) -> Result<VerifyReport, LogError> {
    let s = &config.schema;
    let client = connect(config).await?;
    let mut cache = Cache::new(1);
    let sql = format!(
        "SELECT position, record FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    loop {
        let after = i64::try_from(cache.head()).unwrap_or(i64::MAX);
        let rows = client
            .query(&sql, &[&after, &FETCH_ROWS])
            .await
            .map_err(pg_error)?;
        for row in &rows {
            let position: i64 = row.get(0);
            let record: &[u8] = row.get(1);
            let position = u64::try_from(position).unwrap_or(0);
            let event = cache
                .push(position, record)?
                .ok_or_else(|| LogError::corrupt(position, "position repeated"))?;
            let version = count(cache.streams.get(&event.ticket).map_or(0, Vec::len));
            if event.version != version {
                return Err(LogError::corrupt(
                    position,
                    format!(
                        "ticket {} version {} where {version} was due",
                        event.ticket, event.version
                    ),
                ));
            }
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
    if head_position != cache.head() || head.get::<_, &[u8]>(1) != cache.hash.0.as_slice() {
        return Err(LogError::corrupt(
            cache.head() + 1,
            format!(
                "the head row says {head_position}, the events end at {}",
                cache.head()
            ),
        ));
    }
    Ok(VerifyReport {
        events: cache.head(),
        tickets: count(cache.streams.len()),
        head_hash: cache.hash,
    })
}
