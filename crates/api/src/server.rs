//! The HTTP server: `app(state)` builds the router (tests call it with `oneshot`), `serve`
//! opens the data directory, loads the projection snapshot, binds, and shuts down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use events::{EventReader, EventStore, Log, LogConfig};
use projections::{Config, Ledger};

use crate::error::AppError;
use crate::state::{anchor_hash, AppState, ReadState, Shared, WriteState};
use crate::{auth, commands, reads, snapshot, sse};

pub const BODY_BYTES_MAX: usize = 1024 * 1024;
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
pub const CONCURRENT_REQUESTS_MAX: usize = 1024;

pub fn app(state: AppState) -> Router {
    let writes = Router::new()
        .route("/v1/tickets", post(commands::open))
        .route("/v1/tickets/{id}/edit", post(commands::edit))
        .route(
            "/v1/tickets/{id}/comments",
            post(commands::comment).get(reads::ticket_comments),
        )
        .route("/v1/tickets/{id}/links", post(commands::link))
        .route("/v1/tickets/{id}/unlink", post(commands::unlink))
        .route("/v1/tickets/{id}/park", post(commands::park))
        .route("/v1/tickets/{id}/gates", post(commands::gate))
        .route("/v1/tickets/{id}/close", post(commands::close))
        .route("/v1/tickets/{id}/reopen", post(commands::reopen))
        .route("/v1/tickets/{id}/tasks", post(commands::add_task))
        .route(
            "/v1/tickets/{id}/tasks/{task_id}",
            patch(commands::update_task),
        )
        .route("/v1/tickets/{id}/dispatch", post(commands::dispatch))
        .route("/v1/runtimes/{id}/signals", post(commands::signal))
        .route("/v1/runtimes/{id}/activity", post(commands::activity))
        .route("/v1/runtimes/{id}/harvest", post(commands::harvest))
        .route("/v1/runtimes/{id}/reap", post(commands::reap))
        .route("/v1/runtimes/{id}/kill", post(commands::kill))
        .route("/v1/runtimes/{id}/cancel", post(commands::cancel))
        .route("/v1/runtimes/{id}/switch", post(commands::switch))
        .route("/v1/runtimes/{id}/retry", post(commands::retry))
        .route("/v1/runtimes/{id}/complete", post(commands::complete))
        .route("/v1/runtimes/{id}/input", post(commands::input))
        .route("/v1/runtimes/{id}/abort", post(commands::abort_launch))
        .route(
            "/v1/tickets/{id}/events",
            post(commands::raw_append).get(reads::ticket_events),
        )
        .route("/v1/admin/rebuild", post(commands::admin_rebuild));
    let reads = Router::new()
        .route("/v1/tickets", get(reads::list_tickets))
        .route("/v1/tickets/{id}", get(reads::get_ticket))
        .route("/v1/tickets/{id}/timeline", get(reads::ticket_timeline))
        .route("/v1/runtimes", get(reads::list_runtimes))
        .route("/v1/runtimes/{id}", get(reads::get_runtime))
        .route("/v1/board", get(reads::board))
        .route("/v1/alerts", get(reads::alerts))
        .route("/v1/events", get(reads::list_events))
        .route("/v1/events/stream", get(sse::stream))
        .route("/v1/admin/verify", get(reads::verify))
        .route("/healthz", get(reads::healthz))
        .route("/readyz", get(reads::readyz))
        .route("/metrics", get(reads::metrics))
        .route("/openapi.json", get(crate::openapi::serve));
    writes
        .merge(reads)
        .fallback(|| async { AppError::not_found("no_route", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::middleware,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            CONCURRENT_REQUESTS_MAX,
        ))
        .with_state(state)
}

/// Answers 408 in problem+json when a handler takes longer than `REQUEST_TIMEOUT_MS`. An
/// append already queued may still complete; commands are idempotent, so a retry is safe.
async fn request_timeout(request: Request, next: Next) -> Response {
    let limit = Duration::from_millis(REQUEST_TIMEOUT_MS);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {REQUEST_TIMEOUT_MS} ms"),
        )
        .into_response(),
    }
}

/// Loads the snapshot if it belongs to this log and this schema; otherwise starts empty
/// (the caller's catch-up then folds the whole log: a rebuild).
pub fn load_projections(reader: &dyn EventReader, data_dir: &Path) -> Ledger {
    match snapshot::read(data_dir) {
        Ok(loaded) => {
            let position = loaded.ledger.position();
            match anchor_hash(reader, position) {
                Ok(hash) if hash == loaded.anchor => {
                    tracing::info!(position, "loaded projection snapshot");
                    loaded.ledger
                }
                _ => {
                    tracing::warn!(
                        position,
                        "snapshot does not match the log; rebuilding projections"
                    );
                    Ledger::default()
                }
            }
        }
        Err(snapshot::Unusable::Missing) => Ledger::default(),
        Err(e) => {
            tracing::warn!("{e}; rebuilding projections from the log");
            Ledger::default()
        }
    }
}

/// Everything a server (or an in-process test) needs, opened from a data directory.
pub struct Opened {
    pub log: Arc<Log>,
    pub state: AppState,
}

pub fn open(data_dir: &Path) -> anyhow::Result<Opened> {
    open_with(data_dir, LogConfig::default())
}

/// [`open`] with a chosen log configuration (e.g. `serve --cache-mib`).
pub fn open_with(data_dir: &Path, config: LogConfig) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(data_dir)?;
    let log = Arc::new(Log::open(&data_dir.join("log"), config)?);
    let reader: Arc<dyn EventReader> = log.reader();
    let mut ledger = load_projections(reader.as_ref(), data_dir);
    if ledger.position() == 0 && reader.head() > 0 {
        // No usable snapshot: a full rebuild, with decoding pipelined against the fold.
        ledger = crate::rebuild::fold_all(reader.as_ref(), false)?;
    }
    let shared = Arc::new(Shared::new(reader, ledger, Config::default(), data_dir));
    shared.catch_up()?;
    let auth = Arc::new(auth::Auth::load(data_dir)?);
    let store: Arc<dyn EventStore> = log.clone();
    let state = AppState {
        read: ReadState {
            shared: shared.clone(),
        },
        write: WriteState { shared, store },
        auth,
    };
    Ok(Opened { log, state })
}

pub struct ServeArgs {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// sled's page cache in MiB (`LogConfig::cache_bytes`).
    pub cache_mib: u64,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = LogConfig {
        cache_bytes: args.cache_mib.saturating_mul(1024 * 1024),
        ..LogConfig::default()
    };
    let opened = open_with(&args.data_dir, config)?;
    let state = opened.state.clone();
    if state.auth.is_open() {
        if !args.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {} without tokens: create one with `mc-ledger token create --scope admin`",
                args.listen
            );
        }
        tracing::warn!("NO TOKENS CONFIGURED: serving loopback only, without authentication");
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, data_dir = %args.data_dir.display(), "mc-ledger serving");
    println!("mc-ledger listening on http://{}", listener.local_addr()?);
    let shared = state.read.shared.clone();
    let snapshotter = tokio::spawn(periodic_snapshots(shared.clone()));
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    snapshotter.abort();
    // In-flight appends have been answered (graceful shutdown waits for handlers); flush and
    // record where the projections are so the next start folds only what is new.
    opened.log.close()?;
    shared.catch_up()?;
    let position = shared.save_snapshot()?;
    tracing::info!(position, "shut down cleanly; snapshot saved");
    Ok(())
}

async fn periodic_snapshots(shared: Arc<Shared>) {
    let mut saved = shared.read(|l| l.position());
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let position = shared.read(|l| l.position());
        if position > saved {
            let s = shared.clone();
            match tokio::task::spawn_blocking(move || s.save_snapshot()).await {
                Ok(Ok(p)) => saved = p,
                Ok(Err(e)) => tracing::error!(error = %e, "snapshot failed"),
                Err(e) => tracing::error!(error = %e, "snapshot task failed"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
