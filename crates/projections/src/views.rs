//! Read models (SPEC §5.5): ticket and runtime views, lists with cursor paging, the board.
//!
//! Views are built on demand from the ledger's facts; JSON field names are the API's.

use std::ops::Bound;

use events::{
    ExitReason, GateVerdict, HarvestOutcome, ModelUsage, Priority, Resolution, TaskStatus,
    TicketId, Timestamp, Transport, Verdict,
};
use serde::Serialize;

use crate::class::{live_class, RuntimeClass};
use crate::config::Config;
use crate::cost::CostView;
use crate::ledger::{Ledger, Runtime, Ticket, TicketKey};
use crate::rules::{NextAction, TicketState};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub owner: Option<String>,
    pub project: Option<String>,
    pub labels: Vec<String>,
    pub umbrella: bool,
    pub parent: Option<TicketId>,
    pub children: Vec<TicketId>,
    pub blocked_by: Vec<TicketId>,
    pub waiting_on: Vec<String>,
    pub waiting_reason: Option<String>,
    pub state: TicketState,
    pub resolution: Option<Resolution>,
    pub next_action: NextAction,
    pub failure_reason: Option<String>,
    pub current_runtime: Option<RuntimeView>,
    pub runtime_ids: Vec<String>,
    pub tasks: Tasks,
    pub gates: Vec<GateView>,
    pub comment_count: u64,
    /// Children closed / total; present for umbrella tickets only.
    pub progress: Option<Progress>,
    /// What this ticket's runtimes spent (SPEC §13).
    pub cost: CostView,
    /// An umbrella's cost with every descendant's; null for other tickets.
    pub cost_total: Option<CostView>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
    pub position: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tasks {
    pub items: Vec<TaskView>,
    pub counts: TaskCounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task_id: String,
    pub title: String,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct TaskCounts {
    pub open: u64,
    pub in_progress: u64,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GateView {
    pub gate: String,
    pub verdict: GateVerdict,
    pub commit: Option<String>,
    pub actor: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuntimeView {
    pub id: String,
    pub ticket: TicketId,
    pub attempt: u32,
    pub dispatch_key: String,
    pub agent: String,
    pub profile: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub transport: Transport,
    pub tmux_target: Option<String>,
    pub process_id: Option<u32>,
    pub cwd: Option<String>,
    pub class: RuntimeClass,
    pub live: bool,
    pub started_at: Timestamp,
    pub last_activity_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Null while live.
    pub exit: Option<ExitView>,
    pub verdicts: Vec<VerdictView>,
    pub replaces: Option<String>,
    pub replaced_by: Option<String>,
    /// The current turn nonce; every earlier nonce of the ticket is stale.
    pub nonce: String,
    pub resume_session: Option<String>,
    /// The pool whose slot the runtime holds while live (SPEC §14).
    pub pool: Option<String>,
    /// The most the run may spend (the agent's `--max-budget-usd`), reserved while it is live
    /// in each of `budgets` (SPEC §16); null when it reserved nothing.
    pub max_budget_usd: Option<f64>,
    pub budgets: Vec<String>,
    /// What the run spent, summed over its models.
    pub cost: CostView,
    /// Its spend model by model, as its harvest reported it.
    pub usage: Vec<ModelUsage>,
}

/// How an ended runtime exited. Fields come from its last harvest and are null when it ended
/// without one (killed, reaped, aborted).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExitView {
    pub outcome: Option<HarvestOutcome>,
    pub exit_reason: Option<ExitReason>,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerdictView {
    pub verdict: Verdict,
    pub nonce: String,
    /// At most 1 KiB of the payload; the full text is in the event.
    pub payload: String,
    pub at: Timestamp,
    pub position: u64,
}

/// Filters of `GET /v1/tickets`; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub state: Option<TicketState>,
    pub owner: Option<String>,
    pub umbrella: Option<bool>,
    pub parent: Option<TicketId>,
    /// `Some(true)`: only tickets with a failure_reason; `Some(false)`: only without.
    pub failing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketPage {
    pub tickets: Vec<TicketView>,
    /// The id to pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /v1/runtimes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeFilter {
    pub ticket: Option<TicketId>,
    pub live: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuntimePage {
    pub runtimes: Vec<RuntimeView>,
    pub next_cursor: Option<String>,
}

/// A ticket on the board: enough for a card, not the whole view.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoardCard {
    pub id: TicketId,
    pub title: String,
    pub priority: Priority,
    pub owner: Option<String>,
    pub umbrella: bool,
    pub next_action: NextAction,
    pub failure_reason: Option<String>,
    pub runtime_class: Option<RuntimeClass>,
    pub progress: Option<Progress>,
    /// The ticket's cost; for an umbrella, with its descendants' (its `cost_total`).
    pub cost: CostView,
    pub updated_at: Timestamp,
}

/// Closed tickets per closed column on a board unless asked otherwise (`closed_limit`).
pub const BOARD_CLOSED_DEFAULT: usize = 100;

/// Tickets grouped by state, each column in id order. The `done` and `cancelled` columns hold
/// the most recently closed tickets only (at most `closed_limit` each): a ledger never forgets,
/// so without a cap a board would grow with every ticket ever closed. `totals` counts every
/// ticket in every column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Board {
    pub open: Vec<BoardCard>,
    pub in_progress: Vec<BoardCard>,
    pub needs_input: Vec<BoardCard>,
    pub review: Vec<BoardCard>,
    pub waiting: Vec<BoardCard>,
    pub done: Vec<BoardCard>,
    pub cancelled: Vec<BoardCard>,
    pub totals: BoardTotals,
}

/// Tickets in each board column, closed ones included beyond the cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BoardTotals {
    pub open: u64,
    pub in_progress: u64,
    pub needs_input: u64,
    pub review: u64,
    pub waiting: u64,
    pub done: u64,
    pub cancelled: u64,
}

impl Board {
    pub fn column(&self, state: TicketState) -> &[BoardCard] {
        match state {
            TicketState::Open => &self.open,
            TicketState::InProgress => &self.in_progress,
            TicketState::NeedsInput => &self.needs_input,
            TicketState::Review => &self.review,
            TicketState::Waiting => &self.waiting,
            TicketState::Done => &self.done,
            TicketState::Cancelled => &self.cancelled,
        }
    }

    fn column_mut(&mut self, state: TicketState) -> &mut Vec<BoardCard> {
        match state {
            TicketState::Open => &mut self.open,
            TicketState::InProgress => &mut self.in_progress,
            TicketState::NeedsInput => &mut self.needs_input,
            TicketState::Review => &mut self.review,
            TicketState::Waiting => &mut self.waiting,
            TicketState::Done => &mut self.done,
            TicketState::Cancelled => &mut self.cancelled,
        }
    }
}

impl Ledger {
    pub fn ticket_view(&self, id: &TicketId, now: Timestamp, cfg: &Config) -> Option<TicketView> {
        self.tickets
            .get(id)
            .map(|t| self.build_ticket_view(t, now, cfg))
    }

    pub fn runtime_view(
        &self,
        runtime_id: &str,
        now: Timestamp,
        cfg: &Config,
    ) -> Option<RuntimeView> {
        self.runtimes
            .get(runtime_id)
            .map(|r| runtime_view(r, now, cfg))
    }

    /// Class of a runtime at `now` (live classes need it), `None` for an unknown runtime.
    pub fn runtime_class(
        &self,
        runtime_id: &str,
        now: Timestamp,
        cfg: &Config,
    ) -> Option<RuntimeClass> {
        self.runtimes.get(runtime_id).map(|r| class_at(r, now, cfg))
    }

    /// Tickets matching `filter`, in natural id order (`MC-9` before `MC-10`), starting after
    /// the cursor `after` (exclusive), at most `limit` of them.
    pub fn tickets(
        &self,
        filter: &TicketFilter,
        after: Option<&TicketId>,
        limit: usize,
        now: Timestamp,
        cfg: &Config,
    ) -> TicketPage {
        let start = match after {
            Some(a) => Bound::Excluded(TicketKey::of(a)),
            None => Bound::Unbounded,
        };
        let mut tickets = Vec::new();
        let mut next_cursor = None;
        for key in self.order.range((start, Bound::Unbounded)) {
            let Some(t) = self.tickets.get(&key.id) else {
                continue;
            };
            if !self.matches(t, filter) {
                continue;
            }
            if tickets.len() == limit {
                next_cursor = tickets
                    .last()
                    .map(|v: &TicketView| v.id.as_str().to_owned());
                break;
            }
            tickets.push(self.build_ticket_view(t, now, cfg));
        }
        TicketPage {
            tickets,
            next_cursor,
        }
    }

    /// Runtimes in dispatch order, after the runtime id `after` (exclusive).
    pub fn runtimes(
        &self,
        filter: &RuntimeFilter,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
        cfg: &Config,
    ) -> RuntimePage {
        // An unknown cursor starts from the beginning, as before.
        let start = after
            .and_then(|a| self.runtimes.get(a))
            .map_or(0, |r| r.rank + 1);
        let mut runtimes = Vec::new();
        let mut next_cursor = None;
        for id in self.runtime_order.iter().skip(start) {
            let Some(r) = self.runtimes.get(id) else {
                continue;
            };
            if filter.ticket.as_ref().is_some_and(|t| *t != r.ticket) {
                continue;
            }
            if filter.live.is_some_and(|l| l != r.is_live()) {
                continue;
            }
            if runtimes.len() == limit {
                next_cursor = runtimes.last().map(|v: &RuntimeView| v.id.clone());
                break;
            }
            runtimes.push(runtime_view(r, now, cfg));
        }
        RuntimePage {
            runtimes,
            next_cursor,
        }
    }

    /// The board; `closed_limit` caps the `done` and `cancelled` columns at their most
    /// recently closed tickets (by close position), still shown in id order. It walks the
    /// open tickets and at most `closed_limit` closed ones per column, never the history.
    pub fn board(&self, now: Timestamp, cfg: &Config, closed_limit: usize) -> Board {
        let mut board = Board::default();
        for key in &self.active {
            let Some(t) = self.tickets.get(&key.id) else {
                continue;
            };
            let state = self.state(t);
            let card = self.card(t, now, cfg);
            board.column_mut(state).push(card);
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        board.totals = BoardTotals {
            open: count(board.open.len()),
            in_progress: count(board.in_progress.len()),
            needs_input: count(board.needs_input.len()),
            review: count(board.review.len()),
            waiting: count(board.waiting.len()),
            done: count(self.closed_done.len()),
            cancelled: count(self.closed_cancelled.len()),
        };
        for (state, closed) in [
            (TicketState::Done, &self.closed_done),
            (TicketState::Cancelled, &self.closed_cancelled),
        ] {
            let mut latest: Vec<(TicketKey, &Ticket)> = closed
                .values()
                .rev()
                .filter_map(|id| self.tickets.get(id).map(|t| (TicketKey::of(id), t)))
                .take(closed_limit)
                .collect();
            latest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let cards = latest.into_iter().map(|(_, t)| self.card(t, now, cfg));
            board.column_mut(state).extend(cards);
        }
        board
    }

    fn card(&self, t: &Ticket, now: Timestamp, cfg: &Config) -> BoardCard {
        let status = self.derive(t);
        BoardCard {
            id: t.id.clone(),
            title: t.title.clone(),
            priority: t.priority,
            owner: t.owner.clone(),
            umbrella: t.umbrella,
            next_action: status.next_action,
            failure_reason: status.failure_reason,
            runtime_class: self.current_runtime(t).map(|r| class_at(r, now, cfg)),
            progress: self.umbrella_progress(t),
            cost: self.cost_total(t).unwrap_or_else(|| self.ticket_cost(t)),
            updated_at: t.updated_at,
        }
    }

    fn matches(&self, t: &Ticket, f: &TicketFilter) -> bool {
        if f.owner
            .as_ref()
            .is_some_and(|o| t.owner.as_ref() != Some(o))
        {
            return false;
        }
        if f.umbrella.is_some_and(|u| u != t.umbrella) {
            return false;
        }
        if f.parent
            .as_ref()
            .is_some_and(|p| t.parent.as_ref() != Some(p))
        {
            return false;
        }
        if f.state.is_none() && f.failing.is_none() {
            return true;
        }
        let status = self.derive(t);
        if f.state.is_some_and(|s| s != status.state) {
            return false;
        }
        if f.failing
            .is_some_and(|want| want != status.failure_reason.is_some())
        {
            return false;
        }
        true
    }

    fn umbrella_progress(&self, t: &Ticket) -> Option<Progress> {
        if !t.umbrella {
            return None;
        }
        let (done, total) = self.progress(&t.id);
        Some(Progress { done, total })
    }

    fn build_ticket_view(&self, t: &Ticket, now: Timestamp, cfg: &Config) -> TicketView {
        let status = self.derive(t);
        let mut counts = TaskCounts::default();
        for k in &t.tasks {
            counts.total += 1;
            match k.status {
                TaskStatus::Open => counts.open += 1,
                TaskStatus::InProgress => counts.in_progress += 1,
                TaskStatus::Done => counts.done += 1,
            }
        }
        TicketView {
            id: t.id.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            priority: t.priority,
            owner: t.owner.clone(),
            project: t.project.clone(),
            labels: t.labels.clone(),
            umbrella: t.umbrella,
            parent: t.parent.clone(),
            children: self
                .children
                .get(&t.id)
                .map(|c| {
                    c.iter()
                        .filter(|c| self.tickets.contains_key(*c))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            blocked_by: t.blocked_by.iter().cloned().collect(),
            waiting_on: t
                .park
                .as_ref()
                .map(|p| p.waiting_on.clone())
                .unwrap_or_default(),
            waiting_reason: t.park.as_ref().map(|p| p.reason.clone()),
            state: status.state,
            resolution: t.closed.as_ref().map(|c| c.resolution),
            next_action: status.next_action,
            failure_reason: status.failure_reason,
            current_runtime: self.current_runtime(t).map(|r| runtime_view(r, now, cfg)),
            runtime_ids: t.runtimes.clone(),
            tasks: Tasks {
                items: t
                    .tasks
                    .iter()
                    .map(|k| TaskView {
                        task_id: k.task_id.clone(),
                        title: k.title.clone(),
                        status: k.status,
                    })
                    .collect(),
                counts,
            },
            gates: t
                .gates
                .iter()
                .map(|g| GateView {
                    gate: g.gate.clone(),
                    verdict: g.verdict,
                    commit: g.commit.clone(),
                    actor: g.actor.clone(),
                    at: g.at,
                })
                .collect(),
            comment_count: t.comment_count,
            progress: self.umbrella_progress(t),
            cost: self.ticket_cost(t),
            cost_total: self.cost_total(t),
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
            position: t.position,
        }
    }
}

pub(crate) fn class_at(r: &Runtime, now: Timestamp, cfg: &Config) -> RuntimeClass {
    match r.ended_class() {
        Some(c) => c,
        None => live_class(
            r.transport,
            r.started_at,
            r.last_activity_at,
            now,
            cfg.idle_after_ms,
        ),
    }
}

pub(crate) fn runtime_view(r: &Runtime, now: Timestamp, cfg: &Config) -> RuntimeView {
    let exit = r.ended.map(|_| {
        let h = r.facts.harvest.as_ref();
        ExitView {
            outcome: h.map(|h| h.outcome),
            exit_reason: h.map(|h| h.exit_reason),
            turns: h.and_then(|h| h.turns),
            cost_usd: h.and_then(|h| h.cost_usd),
            session_id: h.and_then(|h| h.session_id.clone()),
        }
    });
    RuntimeView {
        id: r.id.clone(),
        ticket: r.ticket.clone(),
        attempt: r.attempt,
        dispatch_key: r.dispatch_key.clone(),
        agent: r.agent.clone(),
        profile: r.profile.clone(),
        provider: r.provider.clone(),
        model: r.model.clone(),
        transport: r.transport,
        tmux_target: r.tmux_target.clone(),
        process_id: r.process_id,
        cwd: r.cwd.clone(),
        class: class_at(r, now, cfg),
        live: r.is_live(),
        started_at: r.started_at,
        last_activity_at: r.last_activity_at,
        ended_at: r.ended.map(|e| e.at),
        exit,
        verdicts: r
            .signals
            .iter()
            .map(|s| VerdictView {
                verdict: s.verdict,
                nonce: s.nonce.clone(),
                payload: s.payload.clone(),
                at: s.at,
                position: s.event.position,
            })
            .collect(),
        replaces: r.replaces.clone(),
        replaced_by: r.replaced_by.clone(),
        nonce: r.nonce.clone(),
        resume_session: r.resume_session.clone(),
        pool: r.pool.clone(),
        max_budget_usd: r.budget.as_ref().map(|b| crate::cost::usd(b.nanos)),
        budgets: r
            .budget
            .as_ref()
            .map(|b| b.budgets.clone())
            .unwrap_or_default(),
        cost: Ledger::runtime_cost(r),
        usage: r.usage.clone(),
    }
}
