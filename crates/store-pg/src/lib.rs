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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use store::{
    validate, AppendRequest, Appended, BoxFuture, EventReader, EventStore, LogError, ReadsThrough,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Client;

mod cache;
mod checkpoints;
mod config;
mod connect;
mod migrate;
mod reader;
mod replica;
mod writer;

pub use config::{PgConfig, TAIL_RECORDS};
pub use migrate::SCHEMA_VERSION;
pub use reader::PgReader;

use cache::Cache;
use connect::{answered, connect, pg_error};
use replica::{follower, Inner};
use writer::{writer, Reply, QUEUE_MAX};

/// The PostgreSQL store of one replica.
pub struct PgStore {
    inner: Arc<Inner>,
    /// The read side (its `EventReader` is this store's).
    reader: PgReader,
    queue: Mutex<Option<mpsc::Sender<(AppendRequest, Reply)>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl PgStore {
    /// Connects, creates or migrates the schema (refusing one newer than this build knows),
    /// loads the committed log's tail and starts the writer and the follower.
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
            leases: tokio::sync::Mutex::new(None),
        });
        let loaded = Arc::clone(&inner);
        inner.block_on(async move {
            let mut client = connect(&loaded.config).await?;
            migrate::migrate(&mut client, &loaded.config.schema).await?;
            loaded.start_at_tail(&client).await?;
            loaded.fetch_new(&client).await
        })?;
        inner.following.store(true, Ordering::Relaxed);
        let (queue, appends) = mpsc::channel(QUEUE_MAX);
        let writer = runtime.spawn(writer(Arc::clone(&inner), appends));
        runtime.spawn(follower(Arc::clone(&inner)));
        Ok(PgStore {
            reader: PgReader {
                inner: Arc::clone(&inner),
            },
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
        let config = config.clone();
        run_alone(async move {
            let client = connect(&config).await?;
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", config.schema))
                .await
                .map_err(pg_error)
        })
    }

    /// Every row of a ledger's log as stored, in position order, and the position the head
    /// row names, without opening the store (which refuses a log with a damaged record):
    /// salvage's read (SPEC §17).
    pub fn raw_records(config: &PgConfig) -> Result<(Vec<RawRecord>, u64), LogError> {
        let config = config.clone();
        run_alone(async move {
            let s = &config.schema;
            let client = connect(&config).await?;
            let rows = client
                .query(
                    &format!("SELECT position, record FROM {s}.events ORDER BY position"),
                    &[],
                )
                .await
                .map_err(pg_error)?;
            let head = client
                .query_one(&format!("SELECT position FROM {s}.head"), &[])
                .await
                .map_err(pg_error)?;
            let records = rows
                .iter()
                .map(|row| {
                    let position: i64 = row.get(0);
                    (
                        u64::try_from(position).unwrap_or(0),
                        row.get::<_, Vec<u8>>(1),
                    )
                })
                .collect();
            Ok((records, u64::try_from(head.get::<_, i64>(0)).unwrap_or(0)))
        })
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
        self.reader.clone()
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

impl ReadsThrough for PgStore {
    type Reader = PgReader;
    fn read_side(&self) -> &PgReader {
        &self.reader
    }
}

impl EventStore for PgStore {
    fn checkpoints(&self) -> Arc<dyn store::Checkpoints> {
        Arc::new(checkpoints::PgCheckpoints {
            inner: Arc::clone(&self.inner),
        })
    }

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
        Arc::new(self.reader.clone())
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

/// A row of the log as stored: its position and its framed record's bytes.
pub type RawRecord = (u64, Vec<u8>);

/// Runs `work` on a runtime and a thread of its own: for calls made with no store open, from
/// callers that may be inside another runtime.
fn run_alone<T, F>(work: F) -> Result<T, LogError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, LogError>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LogError::Storage(format!("runtime: {e}")))?;
    std::thread::spawn(move || runtime.block_on(work))
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}
