//! The console's pages as maud templates (checked at compile time; every `(value)` is
//! HTML-escaped, so text from events can never become markup). Pure functions of the views
//! they are given.

use events::{EventData, RecordedEvent};
use maud::{html, Markup, DOCTYPE};
use projections::{
    Alert, Board, BoardCard, BudgetView, CostView, PoolView, RuntimeView, TicketState, TicketView,
    TimelineEntry,
};

/// Which commands the page may offer (SPEC §11: only what the token may take).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    pub comment: bool,
    pub close: bool,
    pub park: bool,
    pub retry: bool,
    pub kill: bool,
}

impl Allowed {
    pub fn any(self) -> bool {
        self.comment || self.close || self.park || self.retry || self.kill
    }
}

/// The page around a `main`: navigation, the live status, the assets.
pub fn layout(title: &str, current: &str, position: u64, open: bool, main: Markup) -> Markup {
    let nav = [
        ("/", "Board"),
        ("/runtimes", "Runtimes"),
        ("/alerts", "Alerts"),
        ("/events", "Event log"),
        ("/subscriptions", "Subscriptions"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mc-ledger" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/style.css";
                script src="/console/app.js" defer {}
            }
            body data-position=(position) data-open=(open) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Console" {
                        ul {
                            @for (href, name) in nav {
                                li {
                                    @if href == current {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    p #live-status aria-live="polite" { "Live updates starting…" }
                    @if !open {
                        button #forget-token type="button" hidden { "Forget token" }
                    }
                }
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// Asked for when the server has tokens and the request carried none: the browser keeps the
/// token for its session and asks again with it.
pub fn token_prompt() -> Markup {
    html! {
        h1 { "Sign in" }
        // No `name` on the field and `post`: a form sent before the script runs (or without
        // it) never puts the token in a URL.
        form #token-form method="post" {
            p { "This ledger needs an API token. It is kept in this browser tab only." }
            label for="token" { "API token" }
            input #token type="password" autocomplete="off" required;
            button type="submit" { "Use token" }
        }
    }
}

fn usd(c: &CostView) -> String {
    match c.usd {
        Some(d) => format!("${d:.4}"),
        None => "–".to_owned(),
    }
}

/// A budget's dollars, to the cent.
fn cents(v: f64) -> String {
    format!("${v:.2}")
}

fn cost_line(c: &CostView) -> Markup {
    html! {
        @if c.runtimes > 0 {
            (usd(c)) " · " (c.input_tokens) " in / " (c.output_tokens) " out tokens · "
            (c.runtimes) @if c.runtimes == 1 { " runtime" } @else { " runtimes" }
        } @else {
            "no cost reported"
        }
    }
}

fn state_name(s: TicketState) -> &'static str {
    match s {
        TicketState::Open => "Open",
        TicketState::InProgress => "In progress",
        TicketState::NeedsInput => "Needs input",
        TicketState::Review => "Review",
        TicketState::Waiting => "Waiting",
        TicketState::Done => "Done",
        TicketState::Cancelled => "Cancelled",
    }
}

fn alert_list(alerts: &[Alert]) -> Markup {
    html! {
        @if alerts.is_empty() {
            p.quiet { "No alerts." }
        } @else {
            ul.alerts {
                @for a in alerts {
                    li {
                        strong { (a.kind.as_str()) } " "
                        @if let Some(t) = &a.ticket {
                            a href={ "/tickets/" (t) } { (t) } " "
                        }
                        @if let Some(p) = &a.pool {
                            "pool " (p) " "
                        }
                        @if let Some(s) = &a.subscription {
                            "subscription " a href="/subscriptions" { (s) } " "
                        }
                        @if let Some(b) = &a.budget {
                            "budget " a href="/alerts#budgets-h" { (b) } " "
                        }
                        span { (a.detail) } " "
                        span.quiet { "since " time datetime=(a.since.to_rfc3339()) { (a.since.to_rfc3339()) } }
                    }
                }
            }
        }
    }
}

fn card(c: &BoardCard) -> Markup {
    html! {
        article.card {
            h3 { a href={ "/tickets/" (c.id) } { (c.id) } " " span.title { (c.title) } }
            @if let Some(f) = &c.failure_reason {
                p.banner role="alert" { (f) }
            }
            dl {
                dt { "Next" } dd { (c.next_action.text) }
                dt { "Priority" } dd { (format!("{:?}", c.priority).to_lowercase()) }
                @if let Some(o) = &c.owner { dt { "Owner" } dd { (o) } }
                @if let Some(class) = c.runtime_class { dt { "Runtime" } dd { (class.as_str()) } }
                @if let Some(p) = c.progress { dt { "Children" } dd { (p.done) " of " (p.total) " closed" } }
                @if c.cost.runtimes > 0 { dt { "Cost" } dd { (usd(&c.cost)) } }
            }
        }
    }
}

/// Cards shown per column: beyond a few hundred a column is not read but scrolled, and the
/// page would weigh megabytes on a big ledger. The count says how many there are.
pub const CARDS_PER_COLUMN_MAX: usize = 200;

/// The board's header line of budgets: each one's spent + reserved against its limit.
fn budget_strip(budgets: &[BudgetView]) -> Markup {
    html! {
        @if !budgets.is_empty() {
            p.budgets aria-label="Budgets" {
                "Budgets: "
                @for (i, b) in budgets.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href="/alerts#budgets-h" data-budget=(b.name) data-status=(budget_status(b)) {
                        strong { (b.name) } " " (cents(b.spent_usd + b.reserved_usd)) " of " (cents(b.limit_usd))
                    }
                    @if budget_status(b) != "ok" { " " span.warn { (budget_status(b)) } }
                }
            }
        }
    }
}

fn budget_status(b: &BudgetView) -> &'static str {
    match b.status {
        projections::BudgetStatus::Ok => "ok",
        projections::BudgetStatus::Near => "near",
        projections::BudgetStatus::Exhausted => "exhausted",
    }
}

/// What a list says when it has none: `command` adds the first.
fn none_yet(what: &str, command: &str) -> Markup {
    html! { p.quiet { "No " (what) ". " code { (command) } " adds one." } }
}

/// A table in a scrolling box: its `id`, its column heads and its rows.
fn scroll_table(id: &str, heads: &[&str], rows: Markup) -> Markup {
    html! {
        div.scroll {
            table id=(id) {
                thead { tr { @for h in heads { th scope="col" { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// The Alerts page's Budgets section: every budget, what it has spent and reserved.
fn budget_table(budgets: &[BudgetView]) -> Markup {
    html! {
        h2 #budgets-h { "Budgets" }
        @if budgets.is_empty() {
            (none_yet("budgets", "mc-ledger budget create NAME --limit-usd N --server …"))
        } @else {
            (scroll_table("budgets", &[
                "Name", "Scope", "Period", "Limit", "Spent", "Reserved", "Remaining", "Status", "Holders",
            ], html! {
                @for b in budgets {
                    tr data-budget=(b.name) {
                        th scope="row" { (b.name) }
                        td { (b.scope.kind.as_str()) @if let Some(v) = &b.scope.value { " " (v) } }
                        td { (b.period.as_str()) }
                        td { (cents(b.limit_usd)) }
                        td { (cents(b.spent_usd)) }
                        td { (cents(b.reserved_usd)) }
                        td { (cents(b.remaining_usd)) }
                        td { (budget_status(b)) }
                        td { (b.holders.len()) }
                    }
                }
            }))
        }
    }
}

pub fn board(board: &Board, alerts: &[Alert], budgets: &[BudgetView]) -> Markup {
    let columns = [
        (TicketState::Open, &board.open, board.totals.open),
        (
            TicketState::InProgress,
            &board.in_progress,
            board.totals.in_progress,
        ),
        (
            TicketState::NeedsInput,
            &board.needs_input,
            board.totals.needs_input,
        ),
        (TicketState::Review, &board.review, board.totals.review),
        (TicketState::Waiting, &board.waiting, board.totals.waiting),
        (TicketState::Done, &board.done, board.totals.done),
        (
            TicketState::Cancelled,
            &board.cancelled,
            board.totals.cancelled,
        ),
    ];
    html! {
        h1 { "Board" }
        (budget_strip(budgets))
        section aria-labelledby="alerts-h" {
            h2 #alerts-h { "Alerts" }
            (alert_list(alerts))
        }
        div.columns {
            @for (state, cards, total) in columns {
                @let id = format!("col-{}", state_name(state).to_lowercase().replace(' ', "-"));
                section.column aria-labelledby=(id) {
                    h2 #(id) { (state_name(state)) " " span.count { (total) } }
                    @for c in cards.iter().take(CARDS_PER_COLUMN_MAX) { (card(c)) }
                    @let shown = cards.len().min(CARDS_PER_COLUMN_MAX);
                    @if u64::try_from(shown).unwrap_or(u64::MAX) < total {
                        @if matches!(state, TicketState::Done | TicketState::Cancelled) {
                            p.quiet { "The " (shown) " most recently closed of " (total) "." }
                        } @else {
                            p.quiet { "The first " (shown) " of " (total) " by id; all of them: " code { "GET /v1/tickets?state=" (serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) } "." }
                        }
                    }
                }
            }
        }
    }
}

fn ticket_link(id: &str) -> Markup {
    html! { a href={ "/tickets/" (id) } { (id) } }
}

fn links(ids: &[impl AsRef<str>]) -> Markup {
    html! {
        @if ids.is_empty() { "none" } @else {
            @for (i, id) in ids.iter().enumerate() {
                @if i > 0 { ", " }
                (ticket_link(id.as_ref()))
            }
        }
    }
}

fn runtime_details(r: &RuntimeView) -> Markup {
    html! {
        dl {
            dt { "Class" } dd { (r.class.as_str()) @if r.live { " (live)" } }
            dt { "Agent" } dd { (r.agent) @if let Some(m) = &r.model { " · " (m) } }
            dt { "Attempt" } dd { (r.attempt) }
            dt { "Transport" } dd { (format!("{:?}", r.transport).to_lowercase()) }
            @if let Some(t) = &r.tmux_target { dt { "tmux target" } dd { code { (t) } } }
            @if let Some(p) = r.process_id { dt { "Process" } dd { (p) } }
            @if let Some(c) = &r.cwd { dt { "Working directory" } dd { code { (c) } } }
            @if let Some(p) = &r.pool { dt { "Pool" } dd { (p) } }
            dt { "Started" } dd { (r.started_at.to_rfc3339()) }
            @if let Some(e) = &r.exit {
                dt { "Exit" }
                dd {
                    @if let (Some(o), Some(x)) = (e.outcome, e.exit_reason) {
                        (format!("{o:?}").to_lowercase()) " / " (x.as_str())
                    } @else { "ended without a harvest" }
                    @if let Some(t) = e.turns { " · " (t) " turns" }
                }
            }
            dt { "Cost" } dd { (cost_line(&r.cost)) }
            @if !r.verdicts.is_empty() {
                dt { "Verdicts" }
                dd {
                    ul {
                        @for v in &r.verdicts {
                            li { strong { (v.verdict.as_str()) } " " (v.payload) }
                        }
                    }
                }
            }
        }
    }
}

/// What a ticket page shows, gathered by the handler.
pub struct TicketPage<'a> {
    pub view: &'a TicketView,
    pub runtimes: &'a [RuntimeView],
    pub comments: &'a [RecordedEvent],
    pub timeline: &'a [TimelineEntry],
    /// Viewing the past: the position, and the previous and next positions of the timeline.
    pub as_of: Option<(u64, Option<u64>, Option<u64>)>,
    pub allowed: Allowed,
    /// Who writes without a token (loopback): the body's actor.
    pub open: bool,
}

/// The timeline entry that raised the current failure: the first of the last run of entries
/// showing it.
fn raised_by<'a>(timeline: &'a [TimelineEntry], failure: &str) -> Option<&'a TimelineEntry> {
    let mut raised = None;
    for e in timeline {
        match e.failure_reason.as_deref() {
            Some(f) if f == failure => {
                raised.get_or_insert(e);
            }
            _ => raised = None,
        }
    }
    raised
}

fn event_summary(e: &RecordedEvent) -> String {
    match &e.data {
        EventData::RuntimeReaped(r) => format!("reaped: {}", r.cause.as_str()),
        EventData::RuntimeHarvested(h) => {
            format!("harvested: {}", h.exit_reason.as_str())
        }
        EventData::RuntimeSignaled(s) => format!("signal {}", s.verdict.as_str()),
        EventData::TicketClosed(c) => format!("closed: {:?}", c.resolution).to_lowercase(),
        EventData::RuntimeLaunchAborted(a) => format!("launch aborted: {}", a.reason),
        _ => String::new(),
    }
}

fn form(id: &str, path: &str, confirm: &str, open: bool, body: Markup) -> Markup {
    html! {
        form.action id=(id) data-path=(path) data-confirm=(confirm) data-open=(open) {
            (body)
        }
    }
}

pub fn ticket(p: &TicketPage<'_>) -> Markup {
    let t = p.view;
    let path = format!("/tickets/{}", t.id);
    html! {
        @if let Some((pos, prev, next)) = p.as_of {
            nav.asof aria-label="Time travel" {
                p { "As of position " strong { (pos) } "." }
                ul {
                    @if let Some(prev) = prev { li { a href={ (path) "?as_of=" (prev) } rel="prev" { "Previous event" } } }
                    @if let Some(next) = next { li { a href={ (path) "?as_of=" (next) } rel="next" { "Next event" } } }
                    li { a href=(path) { "Now" } }
                }
            }
        }
        h1 { (t.id) " " span.title { (t.title) } }
        section #ticket aria-labelledby="ticket-h" {
            h2 #ticket-h { "Ticket" }
            @if let Some(f) = &t.failure_reason {
                div.banner role="alert" {
                    p { strong { (f) } }
                    @if let Some(e) = raised_by(p.timeline, f) {
                        p {
                            "Raised by " code { (e.event.type_name()) } " "
                            (event_summary(&e.event)) " at "
                            a href={ (path) "?as_of=" (e.event.position) } { "position " (e.event.position) }
                            " (" (e.event.recorded_at.to_rfc3339()) ", " (e.event.actor.name) ")."
                        }
                    }
                }
            }
            dl {
                dt { "State" } dd { (state_name(t.state)) }
                dt { "Next action" } dd { (t.next_action.text) }
                dt { "Priority" } dd { (format!("{:?}", t.priority).to_lowercase()) }
                @if let Some(o) = &t.owner { dt { "Owner" } dd { (o) } }
                @if let Some(d) = &t.description { dt { "Description" } dd { (d) } }
                dt { "Parent" } dd { @if let Some(parent) = &t.parent { (ticket_link(parent.as_str())) } @else { "none" } }
                dt { "Children" } dd { (links(&t.children.iter().map(|c| c.as_str()).collect::<Vec<_>>())) }
                dt { "Blocked by" } dd { (links(&t.blocked_by.iter().map(|c| c.as_str()).collect::<Vec<_>>())) }
                @if !t.waiting_on.is_empty() {
                    dt { "Waiting on" }
                    dd {
                        @for (i, w) in t.waiting_on.iter().enumerate() {
                            @if i > 0 { ", " }
                            @if events::is_ticket_id(w) { (ticket_link(w)) } @else { (w) }
                        }
                        @if let Some(r) = &t.waiting_reason { " (" (r) ")" }
                    }
                }
                dt { "Cost" } dd { (cost_line(&t.cost)) }
                @if let Some(total) = &t.cost_total { dt { "With children" } dd { (cost_line(total)) } }
            }
            h3 { "Tasks" }
            @if t.tasks.items.is_empty() { p.quiet { "No tasks." } } @else {
                ul { @for k in &t.tasks.items { li { (k.title) " — " (format!("{:?}", k.status).to_lowercase()) } } }
            }
            h3 { "Gates" }
            @if t.gates.is_empty() { p.quiet { "No gates." } } @else {
                ul { @for g in &t.gates { li { (g.gate) ": " (format!("{:?}", g.verdict).to_lowercase()) " by " (g.actor) } } }
            }
            h3 { "Comments" }
            @if p.comments.is_empty() { p.quiet { "No comments." } } @else {
                ol.comments {
                    @for c in p.comments {
                        @if let EventData::TicketCommented(body) = &c.data {
                            li { p.who { (c.actor.name) " · " (c.recorded_at.to_rfc3339()) } p { (body.body) } }
                        }
                    }
                }
            }
            @if p.as_of.is_none() && p.allowed.any() {
                h3 { "Actions" }
                div.actions {
                    @if p.allowed.comment {
                        (form("comment", &format!("/v1/tickets/{}/comments", t.id), &format!("Post this comment on {}?", t.id), p.open, html! {
                            label for="comment-body" { "Comment" }
                            textarea #comment-body name="body" required rows="3" {}
                            button type="submit" { "Comment" }
                        }))
                    }
                    @if p.allowed.close && t.resolution.is_none() {
                        (form("close", &format!("/v1/tickets/{}/close", t.id), &format!("Close {}?", t.id), p.open, html! {
                            label for="close-resolution" { "Resolution" }
                            select #close-resolution name="resolution" {
                                option value="done" { "done" }
                                option value="cancelled" { "cancelled" }
                                option value="duplicate" { "duplicate" }
                                option value="wontfix" { "wontfix" }
                            }
                            button type="submit" { "Close" }
                        }))
                    }
                    @if p.allowed.park && t.resolution.is_none() {
                        (form("park", &format!("/v1/tickets/{}/park", t.id), &format!("Park {}?", t.id), p.open, html! {
                            label for="park-on" { "Waiting on" }
                            input #park-on name="waiting_on" required;
                            label for="park-reason" { "Reason" }
                            input #park-reason name="reason" required;
                            button type="submit" { "Park" }
                        }))
                    }
                }
            }
        }
        section #runtime aria-labelledby="runtime-h" {
            h2 #runtime-h { "Runtime" }
            @if let Some(r) = &t.current_runtime {
                h3 { "Current: " code { (r.id) } }
                (runtime_details(r))
                @if p.as_of.is_none() {
                    div.actions {
                        @if p.allowed.kill && r.live {
                            (form("kill", &format!("/v1/runtimes/{}/kill", r.id), &format!("Kill runtime {}?", r.id), p.open, html! {
                                input type="hidden" name="reason" value="killed from the console";
                                button type="submit" { "Kill" }
                            }))
                        }
                        @if p.allowed.retry && !r.live && t.resolution.is_none() {
                            (form("retry", &format!("/v1/runtimes/{}/retry", r.id), &format!("Retry runtime {}?", r.id), p.open, html! {
                                button type="submit" { "Retry" }
                            }))
                            @if r.exit.as_ref().and_then(|e| e.session_id.as_ref()).or(r.resume_session.as_ref()).is_some() {
                                (form("resume", &format!("/v1/runtimes/{}/retry", r.id), &format!("Resume runtime {}'s session?", r.id), p.open, html! {
                                    input type="hidden" name="resume" value="true";
                                    button type="submit" { "Resume" }
                                }))
                            }
                        }
                    }
                }
            } @else {
                p.quiet { "No runtime yet." }
            }
            @let earlier: Vec<&RuntimeView> = p.runtimes.iter().filter(|r| t.current_runtime.as_ref().is_none_or(|c| c.id != r.id)).collect();
            @if !earlier.is_empty() {
                h3 { "Earlier runtimes" }
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Runtime" } th scope="col" { "Attempt" } th scope="col" { "Class" } th scope="col" { "Ended" } th scope="col" { "Cost" } } }
                        tbody {
                            @for r in earlier {
                                tr {
                                    td { code { (r.id) } }
                                    td { (r.attempt) }
                                    td { (r.class.as_str()) }
                                    td { @if let Some(e) = r.ended_at { (e.to_rfc3339()) } }
                                    td { (usd(&r.cost)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section #live aria-labelledby="live-h" {
            h2 #live-h { "Live" }
            p.quiet { "The audit timeline: every event, and the ticket right after it." }
            div.scroll {
                table.timeline {
                    thead {
                        tr {
                            th scope="col" { "Position" } th scope="col" { "Event" } th scope="col" { "Actor" }
                            th scope="col" { "State" } th scope="col" { "Next action" } th scope="col" { "Failure" } th scope="col" { "Runtime" }
                        }
                    }
                    tbody {
                        @for e in p.timeline {
                            @let current = p.as_of.is_some_and(|(pos, _, _)| pos == e.event.position);
                            tr.current[current] {
                                td { a href={ (path) "?as_of=" (e.event.position) } { (e.event.position) } }
                                td { code { (e.event.type_name()) } " " (event_summary(&e.event)) br; span.quiet { (e.event.recorded_at.to_rfc3339()) } }
                                td { (e.event.actor.name) }
                                td { (state_name(e.state)) }
                                td { (e.next_action.text) }
                                td { @if let Some(f) = &e.failure_reason { (f) } }
                                td { @if let Some(c) = e.runtime_class { (c.as_str()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn runtimes(live: &[RuntimeView], recent: &[RuntimeView]) -> Markup {
    let table = |rows: &[RuntimeView]| {
        html! {
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Runtime" } th scope="col" { "Ticket" } th scope="col" { "Agent" } th scope="col" { "Class" } th scope="col" { "Started" } th scope="col" { "Pool" } th scope="col" { "Cost" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { code { (r.id) } }
                                td { (ticket_link(r.ticket.as_str())) }
                                td { (r.agent) }
                                td { (r.class.as_str()) }
                                td { (r.started_at.to_rfc3339()) }
                                td { @if let Some(p) = &r.pool { (p) } }
                                td { (usd(&r.cost)) }
                            }
                        }
                    }
                }
            }
        }
    };
    html! {
        h1 { "Runtimes" }
        h2 { "Live " span.count { (live.len()) } }
        @if live.is_empty() { p.quiet { "No live runtime." } } @else { (table(live)) }
        h2 { "Recently dispatched" }
        (table(recent))
    }
}

pub fn alerts(alerts: &[Alert], pools: &[PoolView], budgets: &[BudgetView]) -> Markup {
    html! {
        h1 { "Alerts" }
        (alert_list(alerts))
        (budget_table(budgets))
        h2 { "Pools" }
        @if pools.is_empty() { p.quiet { "No pools." } } @else {
            ul {
                @for p in pools {
                    li { strong { (p.name) } " " (p.holders.len()) " of " (p.capacity) " slots held" }
                }
            }
        }
    }
}

/// Every subscription: state, where it is, what went wrong; pause, resume and replay (each
/// behind a confirmation) when `may_write`.
pub fn subscriptions(
    rows: &[crate::subscriptions::SubscriptionStatus],
    may_write: bool,
    open: bool,
) -> Markup {
    let state_name = |s: projections::SubscriptionState| match s {
        projections::SubscriptionState::Active => "active",
        projections::SubscriptionState::Paused => "paused",
        projections::SubscriptionState::Failing => "failing",
    };
    html! {
        h1 { "Subscriptions" }
        @if rows.is_empty() {
            (none_yet("subscriptions", "mc-ledger subscription create NAME --url URL --server …"))
        } @else {
            (scroll_table("subscriptions", &[
                "Name", "State", "Format", "Receiver", "Delivered to", "Lag", "Delivered · failed",
                "Last error", "Parked",
            ], html! {
                @for r in rows {
                    @let s = &r.subscription;
                    @let d = &r.delivery;
                    tr data-subscription=(s.name) {
                        th scope="row" { (s.name) }
                        td.state data-state=(state_name(s.state)) { (state_name(s.state))
                            @if let Some(p) = &s.paused { br; span.quiet { "by " (p.by.name) @if let Some(why) = &p.reason { ": " (why) } } }
                        }
                        td { (s.format.as_str()) }
                        td { code { (s.url) } }
                        td { (d.position) }
                        td { (d.lag) }
                        td { (d.delivered) " · " (d.failures) }
                        td.error { @if let Some(e) = &d.last_error { (e) @if let Some(at) = d.last_error_at { br; span.quiet { (at.to_rfc3339()) } } } @else { "—" } }
                        td { @if let Some(p) = &s.parked { code { (p.delivery_id) } " at " (p.position) ", " (p.attempts) " attempts: " (p.error) } @else { "—" } }
                    }
                }
            }))
            @if may_write {
                h2 { "Actions" }
                @for r in rows {
                    @let s = &r.subscription;
                    @let path = format!("/v1/subscriptions/{}", s.name);
                    @let from = s.parked.as_ref().map_or(r.delivery.position + 1, |p| p.position).max(1);
                    div.actions data-subscription=(s.name) {
                        h3 { (s.name) }
                        @if s.state != projections::SubscriptionState::Paused {
                            (form(&format!("pause-{}", s.name), &format!("{path}/pause"), &format!("Pause subscription {}? Nothing is delivered until it is resumed.", s.name), open, html! {
                                input type="hidden" name="reason" value="paused from the console";
                                button type="submit" { "Pause" }
                            }))
                        }
                        @if s.state != projections::SubscriptionState::Active {
                            (form(&format!("resume-{}", s.name), &format!("{path}/resume"), &format!("Resume subscription {} where it stopped?", s.name), open, html! {
                                button type="submit" { "Resume" }
                            }))
                        }
                        (form(&format!("replay-{}", s.name), &format!("{path}/replay"), &format!("Deliver {} again from this position? The receiver gets those deliveries again, with the same ids.", s.name), open, html! {
                            label for={ "replay-from-" (s.name) } { "From position" }
                            input id={ "replay-from-" (s.name) } name="from_position" type="number" min="1" value=(from) required;
                            button type="submit" { "Replay" }
                        }))
                    }
                }
            }
        }
    }
}

pub fn events(events: &[RecordedEvent]) -> Markup {
    html! {
        h1 { "Event log" }
        p.quiet { "The latest events, newest first." }
        div.scroll {
            table {
                thead { tr { th scope="col" { "Position" } th scope="col" { "Stream" } th scope="col" { "Event" } th scope="col" { "Actor" } th scope="col" { "Recorded" } } }
                tbody {
                    @for e in events.iter().rev() {
                        tr {
                            td { (e.position) }
                            td { @if events::ids::is_pool_stream(&e.ticket) { (e.ticket) } @else { (ticket_link(e.ticket.as_str())) } }
                            td { code { (e.type_name()) } " " (event_summary(e)) }
                            td { (e.actor.name) }
                            td { (e.recorded_at.to_rfc3339()) }
                        }
                    }
                }
            }
        }
    }
}

pub fn not_found(what: &str) -> Markup {
    html! {
        h1 { "Not found" }
        p { (what) }
        p { a href="/" { "Back to the board" } }
    }
}
