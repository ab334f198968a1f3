//! The HTTP server: `app(state)` builds the router (tests call it with `oneshot`), `serve`
//! opens the data directory, loads the projection snapshot, binds, and shuts down gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use service::home::StoreUrl;
use service::state::{Shared, Snapshots};
use service::Service;
use store::EventStore;
use store_sled::LogConfig;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{ledger, pool, runtime, subscription, ticket, RouteTable};
use crate::error::AppError;
use crate::state::AppState;
use crate::{auth, reads, sse};

pub const BODY_BYTES_MAX: usize = 1024 * 1024;
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
pub const CONCURRENT_REQUESTS_MAX: usize = 1024;

/// The router, every route's declared operation, and, from the same registrations, the
/// OpenAPI document: every route is registered through `routes!`, which reads its handler's
/// `#[utoipa::path]`, so the document lists exactly the routes served; each registration
/// states its operation for `projections::authorize` beside it (a route without one fails
/// here).
pub fn routes() -> (Router<AppState>, serde_json::Value, RouteTable) {
    use crate::commands as c;
    use projections::Action as A;
    use projections::Operation::{Admin, Hook, Public, RawAppend, Read, Stream, Write};
    let mut t = RouteTable::default();
    let (router, api) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(
            t.post(ticket(Write(A::Open)))
                .get(ledger(Read))
                .on(routes!(c::open, reads::list_tickets)),
        )
        .routes(t.post(ticket(Write(A::Edit))).on(routes!(c::edit)))
        .routes(
            t.post(ticket(Write(A::Comment)))
                .get(ticket(Read))
                .on(routes!(c::comment, reads::ticket_comments)),
        )
        .routes(t.post(ticket(Write(A::Link))).on(routes!(c::link)))
        .routes(t.post(ticket(Write(A::Unlink))).on(routes!(c::unlink)))
        .routes(t.post(ticket(Write(A::Park))).on(routes!(c::park)))
        .routes(t.post(ticket(Write(A::Gate))).on(routes!(c::gate)))
        .routes(t.post(ticket(Write(A::Close))).on(routes!(c::close)))
        .routes(t.post(ticket(Write(A::Reopen))).on(routes!(c::reopen)))
        .routes(t.post(ticket(Write(A::Task))).on(routes!(c::add_task)))
        .routes(t.patch(ticket(Write(A::Task))).on(routes!(c::update_task)))
        .routes(t.post(ticket(Write(A::Dispatch))).on(routes!(c::dispatch)))
        .routes(t.post(runtime(Write(A::Signal))).on(routes!(c::signal)))
        .routes(t.post(runtime(Write(A::Activity))).on(routes!(c::activity)))
        .routes(t.post(runtime(Write(A::Harvest))).on(routes!(c::harvest)))
        .routes(t.post(runtime(Write(A::Reap))).on(routes!(c::reap)))
        .routes(t.post(runtime(Write(A::Kill))).on(routes!(c::kill)))
        .routes(t.post(runtime(Write(A::Cancel))).on(routes!(c::cancel)))
        .routes(t.post(runtime(Write(A::Switch))).on(routes!(c::switch)))
        .routes(t.post(runtime(Write(A::Retry))).on(routes!(c::retry)))
        .routes(t.post(runtime(Write(A::Complete))).on(routes!(c::complete)))
        .routes(t.post(runtime(Write(A::Input))).on(routes!(c::input)))
        .routes(
            t.post(runtime(Write(A::Abort)))
                .on(routes!(c::abort_launch)),
        )
        .routes(
            t.post(ticket(RawAppend))
                .get(ticket(Read))
                .on(routes!(c::raw_append, reads::ticket_events)),
        )
        .routes(t.post(ledger(Admin)).on(routes!(c::admin_rebuild)))
        .routes(t.get(ledger(Admin)).post(ledger(Admin)).on(routes!(
            crate::admin::list_tokens,
            crate::admin::create_token
        )))
        .routes(
            t.delete(ledger(Admin))
                .on(routes!(crate::admin::revoke_token)),
        )
        .routes(t.post(runtime(Hook)).on(routes!(crate::hooks::claude)))
        .routes(t.post(runtime(Hook)).on(routes!(crate::hooks::codex)))
        .routes(t.get(ticket(Read)).on(routes!(reads::get_ticket)))
        .routes(t.get(ticket(Read)).on(routes!(reads::ticket_timeline)))
        .routes(t.get(ledger(Read)).on(routes!(reads::list_runtimes)))
        .routes(t.get(runtime(Read)).on(routes!(reads::get_runtime)))
        .routes(t.get(ledger(Read)).on(routes!(reads::board)))
        .routes(t.get(ledger(Read)).on(routes!(reads::alerts)))
        .routes(t.get(ledger(Read)).on(routes!(reads::costs)))
        .routes(
            t.post(pool(Write(A::Pool)))
                .get(ledger(Read))
                .on(routes!(c::configure_pool, reads::list_pools)),
        )
        .routes(t.get(pool(Read)).on(routes!(reads::get_pool)))
        .routes(
            t.post(ledger(Write(A::Budget)))
                .get(ledger(Read))
                .on(routes!(c::configure_budget, reads::list_budgets)),
        )
        .routes(t.get(ledger(Read)).on(routes!(reads::get_budget)))
        .routes(
            t.post(ledger(Write(A::Subscribe)))
                .get(ledger(Read))
                .on(routes!(
                    crate::subscriptions::configure,
                    crate::subscriptions::list
                )),
        )
        .routes(
            t.get(subscription(Read))
                .delete(subscription(Write(A::Subscribe)))
                .on(routes!(crate::subscriptions::get, c::delete_subscription)),
        )
        .routes(
            t.post(subscription(Write(A::Subscribe)))
                .on(routes!(c::pause_subscription)),
        )
        .routes(
            t.post(subscription(Write(A::Subscribe)))
                .on(routes!(c::resume_subscription)),
        )
        .routes(
            t.post(subscription(Write(A::Subscribe)))
                .on(routes!(c::replay_subscription)),
        )
        .routes(t.get(ledger(Read)).on(routes!(reads::list_events)))
        .routes(t.get(ledger(Stream)).on(routes!(sse::stream)))
        .routes(t.get(ledger(Admin)).on(routes!(reads::verify)))
        .routes(t.get(ledger(Public)).on(routes!(reads::healthz)))
        .routes(t.get(ledger(Public)).on(routes!(reads::readyz)))
        .routes(t.get(ledger(Read)).on(routes!(reads::metrics)))
        .routes(t.get(ledger(Public)).on(routes!(crate::openapi::serve)))
        .split_for_parts();
    let document = crate::openapi::finish(api, &t);
    (router, document, t)
}

pub fn app(state: AppState) -> Router {
    let (router, document, mut table) = routes();
    crate::openapi::publish(&document);
    let (console, console_table) = crate::console::routes();
    table.merge(console_table);
    let gate = auth::Gate {
        app: state.clone(),
        routes: Arc::new(table),
    };
    router
        .merge(console)
        .fallback(|| async { AppError::not_found("no_route", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(gate, auth::middleware))
        .layer(axum::middleware::from_fn_with_state(
            state.read.shared.clone(),
            count_request,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(nosniff))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            CONCURRENT_REQUESTS_MAX,
        ))
        .with_state(state)
}

/// Counts every answered request by method, route template and status, with its latency
/// (`mc_ledger_http_requests_total`, `mc_ledger_http_request_seconds`). Routes are the
/// registered templates, so the label set stays bounded; a path no route matched is
/// `unmatched`.
async fn count_request(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    // Standard methods by name; anything else one label, so a client cannot grow the series.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    shared.metrics.observe_request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `X-Content-Type-Options: nosniff` on every response: a browser never guesses a type.
async fn nosniff(request: Request, next: Next) -> axum::response::Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
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

/// Everything a server (or an in-process test) needs, opened from a store.
pub struct Opened {
    pub store: Arc<dyn EventStore>,
    pub state: AppState,
}

/// Opens the sled store in a data directory.
pub fn open(data_dir: &Path) -> anyhow::Result<Opened> {
    open_with(data_dir, LogConfig::default())
}

/// [`open`] with a chosen log configuration (e.g. `serve --cache-mib`).
pub fn open_with(data_dir: &Path, config: LogConfig) -> anyhow::Result<Opened> {
    open_url(&StoreUrl::Sled(data_dir.to_owned()), config)
}

/// Opens any store as a [`Service`] (snapshot, catch-up, tokens) and the state handlers get.
/// A log that lost acknowledged events is served read-only (`Service::open_serving`).
pub fn open_url(url: &StoreUrl, config: LogConfig) -> anyhow::Result<Opened> {
    let service = Arc::new(Service::open_serving(url, config)?);
    Ok(Opened {
        store: service.store.clone(),
        state: AppState::of(service),
    })
}

pub struct ServeArgs {
    pub store: StoreUrl,
    pub listen: SocketAddr,
    /// sled's page cache in MiB (`LogConfig::cache_bytes`).
    pub cache_mib: u64,
    /// How subscriptions are delivered.
    pub delivery: notify::EngineConfig,
    /// A listening socket handed over (`restart::inherited_listener`), served instead of
    /// binding `listen`.
    pub inherited: Option<std::net::TcpListener>,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = LogConfig {
        cache_bytes: args.cache_mib.saturating_mul(1024 * 1024),
        ..LogConfig::default()
    };
    let started = std::time::Instant::now();
    let opened = open_url(&args.store, config)?;
    let state = opened.state.clone();
    if state.auth.is_open() {
        let at = args
            .inherited
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(args.listen);
        if !at.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {} without tokens: create one with `mc-ledger token create --scope admin`",
                at
            );
        }
        tracing::warn!("NO TOKENS CONFIGURED: serving loopback only, without authentication");
    }
    let (listener, kept) = crate::restart::listener(args.inherited, args.listen).await?;
    // SIGTERM and SIGINT are taken before the listening line: a supervisor (or a test) that
    // stops the server the moment it says it listens must get a clean stop, not the default
    // action of a signal no one handles yet.
    let signal = shutdown_signal()?;
    let life = crate::restart::Life::new();
    tokio::spawn({
        let life = life.clone();
        async move {
            signal.await;
            life.stop();
        }
    });
    let shutdown = {
        let life = life.clone();
        async move { life.left_serving().await }
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        store = %args.store.describe(),
        startup_s = started.elapsed().as_secs_f64(),
        "mc-ledger serving"
    );
    {
        // Not println!: after a restart in place nobody may read stdout any more, and a
        // closed pipe must not end the server.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "mc-ledger listening on http://{}",
            listener.local_addr()?
        );
        let _ = out.flush();
    }
    let shared = state.read.shared.clone();
    let snapshots = state.write.snapshots.clone();
    let snapshotter = tokio::spawn(periodic_snapshots(shared.clone(), snapshots.clone()));
    if let service::home::StoreUrl::Sled(dir) = &args.store {
        tokio::spawn(crate::restart::when_the_disk_recovers(
            shared.reader.clone(),
            dir.clone(),
            life.clone(),
        ));
    }
    let engine = notify::Engine::start(state.write.service.clone(), args.delivery);
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    tokio::select! {
        served = served => served?,
        // A restart in place does not wait for requests in flight past the drain.
        () = life.drain_over() => {},
    }
    // A restart in place for a storage fault execs here (returns only if that failed); a stop
    // closes the listening socket now.
    crate::restart::exec_if_restarting(&life, kept)?;
    snapshotter.abort();
    // Workers save where they are and give their leases up (another replica takes over now).
    engine.stop(Duration::from_secs(3)).await;
    // In-flight appends have been answered (graceful shutdown waits for handlers); flush and
    // record where the projections are so the next start folds only what is new.
    if let Err(e) = opened.store.close() {
        // A disk that failed or stalls: what was acknowledged is durable; leave now rather
        // than wait on it (sled's own drop would flush again).
        tracing::error!(error = %e, "the store did not close cleanly; exiting");
        std::process::exit(1);
    }
    shared.catch_up()?;
    let position = snapshots.save()?;
    tracing::info!(position, "shut down cleanly; snapshot saved");
    Ok(())
}

async fn periodic_snapshots(shared: Arc<Shared>, snapshots: Arc<Snapshots>) {
    let mut saved = shared.read(|l| l.position());
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let position = shared.read(|l| l.position());
        if position > saved {
            let s = snapshots.clone();
            match tokio::task::spawn_blocking(move || s.save()).await {
                Ok(Ok(p)) => saved = p,
                Ok(Err(e)) => tracing::error!(error = %e, "snapshot failed"),
                Err(e) => tracing::error!(error = %e, "snapshot task failed"),
            }
        }
    }
}

/// SIGTERM or SIGINT, handled from the moment this is called (not from the first poll).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}
