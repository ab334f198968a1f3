//! The operator console (SPEC §11): server-rendered pages at `/`, `/tickets/{id}`,
//! `/runtimes`, `/alerts`, `/events` and `/subscriptions`, and their two assets, built into the binary. The
//! pages read the same projections as the API; a little script (`app.js`) follows the event
//! stream and swaps each page's `main` in place, asks for a token when the server has tokens
//! (kept in `sessionStorage`), and sends the actions the token may take, each after a
//! confirmation.
//!
//! Safety: maud escapes every value; `Content-Security-Policy` allows scripts, styles and
//! connections from this origin only (no inline script or style); `nosniff` on everything.

pub mod pages;

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Path, RawQuery};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use events::{EventData, TicketId};
use maud::Markup;
use projections::{authorize, Action, Operation, RuntimeFilter, Target};

use crate::access::RouteTable;
use crate::reads::{blocking, fresh, related_events};
use crate::state::AppState;
use service::clock::now;
use service::tokens::Caller;

pub const APP_JS: &str = include_str!("app.js");
pub const STYLE_CSS: &str = include_str!("style.css");

/// Everything from this origin, nothing inline, no frames, no plugins.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The header a page's script sends to get only the page's `main` back.
pub const FRAGMENT_HEADER: &str = "x-console-fragment";

/// Events shown on the event log page.
const EVENT_LOG_MAX: usize = 100;
/// Runtimes listed as recently dispatched.
const RECENT_RUNTIMES_MAX: usize = 100;

/// The console's routes and their declarations: every page and asset is
/// [`Operation::Console`] (without a token a page asks for one; with one it is a read, and a
/// runtime token may not use the console).
pub fn routes() -> (Router<AppState>, RouteTable) {
    let mut t = RouteTable::default();
    let page = crate::access::ledger(Operation::Console);
    let router = Router::new()
        .route(t.get(page).at("/"), get(board))
        .route(t.get(page).at("/tickets/{id}"), get(ticket))
        .route(t.get(page).at("/runtimes"), get(runtimes))
        .route(t.get(page).at("/alerts"), get(alerts))
        .route(t.get(page).at("/events"), get(event_log))
        .route(t.get(page).at("/subscriptions"), get(subscriptions))
        .route(t.get(page).at("/console/app.js"), get(app_js))
        .route(t.get(page).at("/console/style.css"), get(style_css));
    (router, t)
}

/// Who is looking: the loopback server without tokens, or a token's caller.
enum Viewer<'a> {
    Open,
    Token(&'a Caller),
}

fn viewer<'a>(app: &AppState, caller: Option<&'a Extension<Caller>>) -> Option<Viewer<'a>> {
    if app.auth.is_open() {
        return Some(Viewer::Open);
    }
    caller.map(|c| Viewer::Token(&c.0))
}

/// The buttons a viewer gets: what `projections::authorize` would let its token write on the
/// ticket (the same question the API asks when the button is pressed).
fn allowed(viewer: &Viewer<'_>, app: &AppState, ticket: &TicketId) -> pages::Allowed {
    let caller = match viewer {
        Viewer::Open => {
            return pages::Allowed {
                comment: true,
                close: true,
                park: true,
                retry: true,
                kill: true,
            }
        }
        Viewer::Token(c) => c,
    };
    let principal = caller.principal();
    app.read.shared.read(|l| {
        let may = |a: Action| {
            authorize(
                l,
                &principal,
                Operation::Write(a),
                Some(Target::Ticket(ticket)),
            )
            .is_ok()
        };
        pages::Allowed {
            comment: may(Action::Comment),
            close: may(Action::Close),
            park: may(Action::Park),
            retry: may(Action::Retry),
            kill: may(Action::Kill),
        }
    })
}

fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page: the whole document, or only its `main` when the page's script asks.
fn page(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    current: &str,
    main: Markup,
) -> Response {
    page_at(app, headers, status, title, current, main, true)
}

/// `show_position`: false for the sign-in page, which tells nothing about the log.
fn page_at(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    current: &str,
    main: Markup,
    show_position: bool,
) -> Response {
    let position = if show_position {
        app.read.shared.read(projections::Ledger::position)
    } else {
        0
    };
    let fragment = headers.contains_key(FRAGMENT_HEADER);
    let body = if fragment {
        main.into_string()
    } else {
        pages::layout(title, current, position, app.auth.is_open(), main).into_string()
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        response.headers_mut().insert("x-ledger-position", v);
    }
    secured(response)
}

/// The sign-in page (a fragment request without a token is a 401 for the script).
fn sign_in(app: &AppState, headers: &HeaderMap, title: &str, current: &str) -> Response {
    let status = if headers.contains_key(FRAGMENT_HEADER) {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page_at(
        app,
        headers,
        status,
        title,
        current,
        pages::token_prompt(),
        false,
    )
}

fn unavailable(app: &AppState, headers: &HeaderMap, e: &crate::error::AppError) -> Response {
    let main = pages::not_found(&format!("The ledger cannot be read now: {}", e.detail));
    page(
        app,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "",
        main,
    )
}

/// A console request: the app, who sent it, and its headers (a fragment request asks for the
/// page's `main` only).
struct Visit {
    app: AppState,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        Ok(Visit {
            app: app.clone(),
            caller: parts.extensions.get::<Caller>().cloned().map(Extension),
            headers: parts.headers.clone(),
        })
    }
}

/// What a list page answers instead of itself: the sign-in form when nobody may look, 503
/// when the projections cannot catch up; `None` when it may render.
fn gate(
    app: &AppState,
    caller: Option<&Extension<Caller>>,
    headers: &HeaderMap,
    title: &str,
    current: &str,
) -> Option<Response> {
    if viewer(app, caller).is_none() {
        return Some(sign_in(app, headers, title, current));
    }
    fresh(&app.read)
        .err()
        .map(|e| unavailable(app, headers, &e))
}

impl Visit {
    /// A list page: the gate, then what `read` takes from the projections (at one `now`, under
    /// the read lock), rendered by `render` outside it.
    fn list_page<T>(
        &self,
        (title, current): (&str, &str),
        read: impl FnOnce(&projections::Ledger, events::Timestamp, &projections::Config) -> T,
        render: impl FnOnce(T) -> Markup,
    ) -> Response {
        let Visit {
            app,
            caller,
            headers,
        } = self;
        if let Some(answer) = gate(app, caller.as_ref(), headers, title, current) {
            return answer;
        }
        let cfg = &app.read.shared.config;
        let at = now();
        let data = app.read.shared.read(|l| read(l, at, cfg));
        page(app, headers, StatusCode::OK, title, current, render(data))
    }
}

async fn board(v: Visit) -> Response {
    v.list_page(
        ("Board", "/"),
        |l, at, cfg| {
            (
                l.board(at, cfg, projections::BOARD_CLOSED_DEFAULT),
                l.alerts(at, cfg),
                l.budgets(at).budgets,
            )
        },
        |(board, alerts, budgets)| pages::board(&board, &alerts, &budgets),
    )
}

/// `?as_of=N`, or nothing; anything else is refused.
fn as_of_query(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut as_of = None;
    for pair in q.split('&') {
        match pair.split_once('=') {
            Some(("as_of", v)) if as_of.is_none() => {
                as_of = Some(
                    v.parse::<u64>()
                        .map_err(|_| "as_of must be a log position (a whole number)".to_owned())?,
                );
            }
            _ => return Err("the ticket page takes only ?as_of=POSITION".to_owned()),
        }
    }
    Ok(as_of)
}

async fn ticket(
    Visit {
        app,
        caller,
        headers,
    }: Visit,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let title = format!("Ticket {id:.32}");
    let Some(viewer) = viewer(&app, caller.as_ref()) else {
        return sign_in(&app, &headers, &title, "");
    };
    let bad = |status: StatusCode, message: String| {
        page(
            &app,
            &headers,
            status,
            "Not found",
            "",
            pages::not_found(&message),
        )
    };
    let Ok(ticket) = TicketId::parse(&id) else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("{id:.64} is not a ticket id."),
        );
    };
    let as_of = match as_of_query(query.as_deref()) {
        Ok(a) => a,
        Err(message) => return bad(StatusCode::BAD_REQUEST, message),
    };
    if let Err(e) = app
        .read
        .shared
        .whole(&ticket)
        .map_err(crate::error::AppError::from)
        .and_then(|()| fresh(&app.read))
    {
        return unavailable(&app, &headers, &e);
    }
    let shared = &app.read.shared;
    let cfg = &shared.config;
    if !shared.read(|l| l.contains_ticket(&ticket)) {
        return bad(StatusCode::NOT_FOUND, format!("No ticket {ticket}."));
    }
    let head = shared.reader.head();
    if as_of.is_some_and(|p| p > head) {
        return bad(
            StatusCode::BAD_REQUEST,
            format!("The log ends at position {head}."),
        );
    }
    // The ticket's streams up to the head: the timeline steps through them; `as_of` folds the
    // prefix up to its position.
    let (read, of) = (app.read.clone(), ticket.clone());
    let all = match blocking(move || related_events(&read, &of, head)).await {
        Ok(e) => e,
        Err(e) => {
            let status = e.status;
            return bad(status, e.detail);
        }
    };
    let full = projections::timeline(&all, &ticket, cfg);
    let at = now();
    let views = |l: &projections::Ledger, at| {
        let view = l.ticket_view(&ticket, at, cfg);
        let runtimes: Vec<_> = view
            .as_ref()
            .map(|v| {
                v.runtime_ids
                    .iter()
                    .filter_map(|r| l.runtime_view(r, at, cfg))
                    .collect()
            })
            .unwrap_or_default();
        (view, runtimes)
    };
    let (view, runtimes, events, timeline, steps) = match as_of {
        None => {
            let (view, runtimes) = shared.read(|l| views(l, at));
            (view, runtimes, all, full, None)
        }
        Some(p) => {
            let events: Vec<_> = all.into_iter().filter(|e| e.position <= p).collect();
            // The past is judged at its own time (as the API's `as_of` does): live classes
            // and time-based failures as they were then.
            let then = events.last().map_or(at, |e| e.recorded_at);
            let (view, runtimes) = views(&projections::as_of(&events, p), then);
            let prev = full.iter().rev().map(|e| e.event.position).find(|&q| q < p);
            let next = full.iter().map(|e| e.event.position).find(|&q| q > p);
            let timeline = full.into_iter().filter(|e| e.event.position <= p).collect();
            (view, runtimes, events, timeline, Some((p, prev, next)))
        }
    };
    let Some(view) = view else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("{ticket} did not exist yet at that position."),
        );
    };
    let comments: Vec<_> = events
        .iter()
        .filter(|e| e.ticket == ticket && matches!(e.data, EventData::TicketCommented(_)))
        .cloned()
        .collect();
    let as_of = steps;
    let main = pages::ticket(&pages::TicketPage {
        view: &view,
        runtimes: &runtimes,
        comments: &comments,
        timeline: &timeline,
        as_of,
        allowed: allowed(&viewer, &app, &ticket),
        open: app.auth.is_open(),
    });
    page(&app, &headers, StatusCode::OK, &title, "", main)
}

async fn runtimes(v: Visit) -> Response {
    v.list_page(
        ("Runtimes", "/runtimes"),
        |l, at, cfg| {
            let live = RuntimeFilter {
                live: Some(true),
                ..RuntimeFilter::default()
            };
            let live = l.runtimes(&live, None, 1_000, at, cfg).runtimes;
            let all = l.runtime_count();
            let recent: Vec<_> = l
                .runtime_ids_from(all.saturating_sub(RECENT_RUNTIMES_MAX))
                .iter()
                .rev()
                .filter_map(|id| l.runtime_view(id, at, cfg))
                .collect();
            (live, recent)
        },
        |(live, recent)| pages::runtimes(&live, &recent),
    )
}

async fn alerts(v: Visit) -> Response {
    v.list_page(
        ("Alerts", "/alerts"),
        |l, at, cfg| (l.alerts(at, cfg), l.pools().pools, l.budgets(at).budgets),
        |(alerts, pools, budgets)| pages::alerts(&alerts, &pools, &budgets),
    )
}

/// The Subscriptions page (SPEC §15): each subscription's state and delivery, and pause,
/// resume and replay for a token that may (`Action::Subscribe`).
async fn subscriptions(
    Visit {
        app,
        caller,
        headers,
    }: Visit,
) -> Response {
    if let Some(answer) = gate(
        &app,
        caller.as_ref(),
        &headers,
        "Subscriptions",
        "/subscriptions",
    ) {
        return answer;
    }
    let may_write = match viewer(&app, caller.as_ref()) {
        Some(Viewer::Token(c)) => {
            let principal = c.principal();
            app.read.shared.read(|l| {
                authorize(l, &principal, Operation::Write(Action::Subscribe), None).is_ok()
            })
        }
        _ => true,
    };
    let views = app.read.shared.read(projections::Ledger::subscriptions);
    let mut rows = Vec::with_capacity(views.len());
    for view in views {
        match crate::subscriptions::status(&app.write, view).await {
            Ok(s) => rows.push(s),
            Err(e) => return e.into_response(),
        }
    }
    page(
        &app,
        &headers,
        StatusCode::OK,
        "Subscriptions",
        "/subscriptions",
        pages::subscriptions(&rows, may_write, app.auth.is_open()),
    )
}

async fn event_log(
    Visit {
        app,
        caller,
        headers,
    }: Visit,
) -> Response {
    if viewer(&app, caller.as_ref()).is_none() {
        return sign_in(&app, &headers, "Event log", "/events");
    }
    let reader = app.read.shared.reader.clone();
    let head = reader.head();
    let after = head.saturating_sub(u64::try_from(EVENT_LOG_MAX).unwrap_or(u64::MAX));
    match blocking(move || Ok(reader.read_after(after, EVENT_LOG_MAX)?)).await {
        Ok(events) => page(
            &app,
            &headers,
            StatusCode::OK,
            "Event log",
            "/events",
            pages::events(&events),
        ),
        Err(e) => unavailable(&app, &headers, &e),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
