//! Ticket state, next action and failure_reason (SPEC §5.3, §5.4), derived from the facts.

use events::{Resolution, TicketId, Timestamp, Verdict};
use serde::{Deserialize, Serialize};

use crate::class::RuntimeClass;
use crate::ledger::{Ledger, Runtime, Ticket};
use crate::limits::excerpt;

events::names! {
    #[derive(PartialOrd, Ord, utoipa::ToSchema)]
    pub enum TicketState as "snake_case" {
        Open,
        InProgress,
        NeedsInput,
        Review,
        Waiting,
        Done,
        Cancelled,
    }
}

impl TicketState {
    pub fn is_closed(self) -> bool {
        matches!(self, TicketState::Done | TicketState::Cancelled)
    }
}

events::names! {
    #[derive(utoipa::ToSchema)]
    pub enum NextActionCode as "snake_case" {
        Dispatch,
        Working,
        Answer,
        Review,
        Validate,
        Resume,
        Retry,
        Recover,
        Wait,
        None,
    }
}

/// What should happen next, for machines (`code`) and people (`text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NextAction {
    pub code: NextActionCode,
    pub text: String,
}

impl NextAction {
    fn new(code: NextActionCode, text: impl Into<String>) -> NextAction {
        NextAction {
            code,
            text: text.into(),
        }
    }
}

/// The three derived facts of a ticket, cheap to compute (no views built).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketStatus {
    pub state: TicketState,
    pub next_action: NextAction,
    pub failure_reason: Option<String>,
}

/// Excerpt length of a verdict payload quoted in a next-action text.
const TEXT_EXCERPT_BYTES: usize = 120;

/// What a parked ticket waits on, resolved against the other tickets.
pub(crate) struct Blockers<'a> {
    /// Blockers that are closed tickets, with the time each closed.
    pub(crate) closed: Vec<(&'a str, Timestamp)>,
    /// Blockers still open, unknown, or free text (never auto-resolved).
    pub(crate) open: Vec<&'a str>,
}

impl Ledger {
    /// State, next action and failure_reason of a ticket, `None` if it does not exist.
    pub fn status(&self, id: &TicketId) -> Option<TicketStatus> {
        self.tickets.get(id).map(|t| self.derive(t))
    }

    pub(crate) fn current_runtime(&self, t: &Ticket) -> Option<&Runtime> {
        t.current_runtime
            .as_deref()
            .and_then(|id| self.runtimes.get(id))
    }

    pub(crate) fn derive(&self, t: &Ticket) -> TicketStatus {
        let failure_reason = self.failure_reason(t);
        let state = self.state(t);
        let next_action = self.next_action(t, state, failure_reason.as_deref());
        TicketStatus {
            state,
            next_action,
            failure_reason,
        }
    }

    pub(crate) fn state(&self, t: &Ticket) -> TicketState {
        if let Some(c) = &t.closed {
            return match c.resolution {
                Resolution::Done => TicketState::Done,
                _ => TicketState::Cancelled,
            };
        }
        if t.park.is_some() {
            return TicketState::Waiting;
        }
        let Some(r) = self.current_runtime(t) else {
            return TicketState::Open;
        };
        if r.is_live() && r.input_requested.is_some() {
            return TicketState::NeedsInput;
        }
        match r.pending.map(|p| p.verdict) {
            // A question only waits for an answer while someone can receive it: a dead
            // runtime's question falls through to retry/dispatch instead of blocking forever.
            Some(Verdict::Question) if r.is_live() => TicketState::NeedsInput,
            Some(Verdict::Review | Verdict::Done) => TicketState::Review,
            _ if r.is_live() => TicketState::InProgress,
            _ => TicketState::Open,
        }
    }

    /// §5.4, the stale-banner rule: every condition is checked against frozen facts, so a
    /// later close clears it for good and a reopen cannot bring it back.
    pub(crate) fn failure_reason(&self, t: &Ticket) -> Option<String> {
        if t.closed.is_some() {
            return None;
        }
        let r = self.current_runtime(t)?;
        let ended = r.ended?;
        if !ended.worker_expected {
            return None;
        }
        if t.last_close_position.is_some_and(|c| ended.position <= c) {
            return None;
        }
        // The hand-off rule: a worker that said DONE or REVIEW on its current turn is done
        // talking; its session going away afterwards (a reap) is expected, not a failure. A
        // QUESTION still expects it back, and a harvest's own `failed` still counts.
        if !r.failed() {
            return None;
        }
        r.facts.failure_value()
    }

    pub(crate) fn blockers<'a>(&'a self, t: &'a Ticket) -> Blockers<'a> {
        let mut closed = Vec::new();
        let mut open = Vec::new();
        let waiting_on = t.park.iter().flat_map(|p| p.waiting_on.iter());
        let mut seen: Vec<&str> = Vec::new();
        for name in waiting_on
            .map(String::as_str)
            .chain(t.blocked_by.iter().map(TicketId::as_str))
        {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let closed_at = TicketId::parse(name)
                .ok()
                .and_then(|id| self.tickets.get(&id))
                .and_then(|b| b.closed.as_ref())
                .map(|c| c.at);
            match closed_at {
                Some(at) => closed.push((name, at)),
                None => open.push(name),
            }
        }
        Blockers { closed, open }
    }

    /// Children of a ticket (child_of links) that exist: (closed, total).
    pub(crate) fn progress(&self, id: &TicketId) -> (u64, u64) {
        let Some(children) = self.children.get(id) else {
            return (0, 0);
        };
        let mut done = 0u64;
        let mut total = 0u64;
        for c in children.iter().filter_map(|c| self.tickets.get(c)) {
            total += 1;
            if c.closed.is_some() {
                done += 1;
            }
        }
        (done, total)
    }

    fn next_action(
        &self,
        t: &Ticket,
        state: TicketState,
        failure_reason: Option<&str>,
    ) -> NextAction {
        use NextActionCode as C;
        let current = self.current_runtime(t);
        match state {
            TicketState::Done | TicketState::Cancelled => {
                let resolution = match t.closed.as_ref().map(|c| c.resolution) {
                    Some(Resolution::Done) | None => "done",
                    Some(Resolution::Cancelled) => "cancelled",
                    Some(Resolution::Duplicate) => "duplicate",
                    Some(Resolution::Wontfix) => "wontfix",
                };
                NextAction::new(C::None, format!("Closed: {resolution}"))
            }
            TicketState::Waiting => {
                let b = self.blockers(t);
                if b.open.is_empty() && !b.closed.is_empty() {
                    let names: Vec<&str> = b.closed.iter().map(|(n, _)| *n).collect();
                    return NextAction::new(
                        C::Resume,
                        format!("Resume: {} closed", names.join(", ")),
                    );
                }
                if !b.open.is_empty() {
                    return NextAction::new(C::Wait, format!("Waiting on {}", b.open.join(", ")));
                }
                let reason = t.park.as_ref().map_or("", |p| p.reason.as_str());
                NextAction::new(
                    C::Wait,
                    format!("Waiting: {}", excerpt(reason, TEXT_EXCERPT_BYTES)),
                )
            }
            TicketState::NeedsInput => {
                NextAction::new(C::Answer, format!("Answer: {}", pending_text(current)))
            }
            TicketState::Review => {
                let done = current
                    .and_then(|r| r.pending)
                    .is_some_and(|p| p.verdict == Verdict::Done);
                if done {
                    NextAction::new(C::Validate, format!("Validate: {}", pending_text(current)))
                } else {
                    NextAction::new(C::Review, format!("Review: {}", pending_text(current)))
                }
            }
            TicketState::InProgress => {
                let (agent, attempt) =
                    current.map_or(("worker", 0), |r| (r.agent.as_str(), r.attempt));
                NextAction::new(C::Working, format!("Working: {agent} (attempt {attempt})"))
            }
            TicketState::Open => self.open_next_action(t, current, failure_reason),
        }
    }

    fn open_next_action(
        &self,
        t: &Ticket,
        current: Option<&Runtime>,
        failure_reason: Option<&str>,
    ) -> NextAction {
        use NextActionCode as C;
        if let Some(f) = failure_reason {
            return NextAction::new(C::Retry, format!("Retry: {f}"));
        }
        let class = current.and_then(Runtime::ended_class);
        match class {
            Some(RuntimeClass::Partial) => {
                let reason = current
                    .and_then(|r| r.facts.harvest.as_ref())
                    .map_or("partial", |h| h.exit_reason.as_str());
                return NextAction::new(C::Recover, format!("Recover: partial exit ({reason})"));
            }
            Some(RuntimeClass::Completed) => {
                return NextAction::new(C::Validate, "Validate: runtime completed");
            }
            Some(RuntimeClass::CompletedByController) => {
                return NextAction::new(C::Validate, "Validate: completed by controller");
            }
            _ => {}
        }
        let blocked: Vec<&str> = t
            .blocked_by
            .iter()
            .filter(|b| self.tickets.get(*b).is_none_or(|x| x.closed.is_none()))
            .map(TicketId::as_str)
            .collect();
        if !blocked.is_empty() {
            return NextAction::new(C::Wait, format!("Blocked by {}", blocked.join(", ")));
        }
        if t.umbrella {
            let (done, total) = self.progress(&t.id);
            if total > 0 && done == total {
                return NextAction::new(
                    C::Validate,
                    format!("Validate: all {total} children closed"),
                );
            }
            if total > 0 {
                return NextAction::new(
                    C::Wait,
                    format!("Waiting on children: {done}/{total} closed"),
                );
            }
        }
        match class {
            Some(c) => NextAction::new(C::Dispatch, format!("Dispatch: last runtime {c}")),
            None => NextAction::new(C::Dispatch, "Dispatch a worker"),
        }
    }
}

fn pending_text(r: Option<&Runtime>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    if let Some(w) = r.input_requested.as_ref().filter(|_| r.is_live()) {
        let message = w.message.as_deref().unwrap_or("the worker waits");
        return format!(
            "{} ({}): {}",
            r.agent,
            w.kind,
            excerpt(message, TEXT_EXCERPT_BYTES)
        );
    }
    let Some(p) = r.pending else {
        return String::new();
    };
    let payload = r.signals.get(p.signal).map_or("", |s| s.payload.as_str());
    let text = excerpt(payload, TEXT_EXCERPT_BYTES);
    if p.verdict == Verdict::Done {
        return format!("{} reported DONE: {text}", r.agent);
    }
    text.to_owned()
}
