//! The decision's vocabulary: commands, their targets, decisions and rejections.

use std::fmt;

use events::{
    EventData, ExitReason, GateRecorded, HarvestOutcome, ModelUsage, ReapCause, Relation,
    SubscriptionConfigured, SubscriptionParked, TaskStatus, TicketClosed, TicketEdited, TicketId,
    TicketOpened, Timestamp, Transport, Verdict,
};

pub use super::budgets::BudgetRequest;
use crate::class::RuntimeClass;
use crate::config::Config;
use crate::ledger::EventRef;
use crate::ledger::Ledger;

/// What the pure core may not invent: the time, fresh ids, and what the client last saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub now: Timestamp,
    /// A fresh, never used runtime id (used by dispatch and retry only).
    pub runtime_id: String,
    /// A fresh turn nonce, see [`turn_nonce`] (used by dispatch, retry and switch only).
    pub nonce: String,
    /// The ticket stream version the client saw, if it sent one.
    pub expected_version: Option<u64>,
    pub activity_every_ms: u64,
}

impl Context {
    pub fn new(now: Timestamp, runtime_id: impl Into<String>, nonce: impl Into<String>) -> Context {
        Context {
            now,
            runtime_id: runtime_id.into(),
            nonce: nonce.into(),
            expected_version: None,
            activity_every_ms: Config::default().activity_every_ms,
        }
    }

    pub fn with_expected_version(mut self, version: Option<u64>) -> Context {
        self.expected_version = version;
        self
    }
}

/// The turn nonce format of SPEC §6: `MC_TICKET_TURN:<ticket number>:<epoch ms>:<8 hex>`.
/// The server supplies the randomness; the format lives here so every caller agrees on it.
pub fn turn_nonce(ticket: &TicketId, now: Timestamp, random: u32) -> String {
    format!(
        "MC_TICKET_TURN:{}:{}:{random:08x}",
        ticket.number(),
        now.millis()
    )
}

/// A harvested exit, already classified (SPEC §5.2 parsing of raw results is the caller's).
#[derive(Debug, Clone, PartialEq)]
pub struct HarvestReport {
    pub outcome: HarvestOutcome,
    pub exit_reason: ExitReason,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub session_id: Option<String>,
    pub summary: Option<String>,
    pub raw_subtype: Option<String>,
    /// Tokens and cost by model (SPEC §13 cost); empty when the record told none. Recorded as
    /// a `runtime.usage_recorded` beside the harvest.
    pub usage: Vec<ModelUsage>,
}

/// Every command of SPEC §6. Ticket commands name the ticket; runtime commands name the
/// runtime, whose ticket is the stream they write to (see [`Command::ticket_id`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Open {
        ticket: TicketId,
        opened: TicketOpened,
    },
    Edit {
        ticket: TicketId,
        edit: TicketEdited,
    },
    Comment {
        ticket: TicketId,
        body: String,
    },
    Link {
        ticket: TicketId,
        relation: Relation,
        target: String,
    },
    Unlink {
        ticket: TicketId,
        relation: Relation,
        target: String,
    },
    Park {
        ticket: TicketId,
        waiting_on: Vec<String>,
        reason: String,
    },
    Gate {
        ticket: TicketId,
        gate: GateRecorded,
    },
    Close {
        ticket: TicketId,
        close: TicketClosed,
    },
    Reopen {
        ticket: TicketId,
        reason: String,
    },
    AddTask {
        ticket: TicketId,
        task_id: Option<String>,
        title: String,
    },
    UpdateTask {
        ticket: TicketId,
        task_id: String,
        status: TaskStatus,
    },
    Dispatch {
        ticket: TicketId,
        dispatch_key: String,
        agent: String,
        transport: Transport,
        profile: Option<String>,
        provider: Option<String>,
        model: Option<String>,
        tmux_target: Option<String>,
        process_id: Option<u32>,
        cwd: Option<String>,
        /// Kill a live runtime in the same append instead of refusing with `runtime_live`.
        replace: bool,
        /// Take a slot of this pool (SPEC §14), or be refused `pool_full`.
        pool: Option<String>,
        /// The most the run may spend, reserved in every budget covering it (SPEC §16).
        max_budget_usd: Option<f64>,
    },
    Signal {
        runtime_id: String,
        verdict: Verdict,
        nonce: String,
        payload: String,
    },
    Harvest {
        runtime_id: String,
        report: HarvestReport,
    },
    Reap {
        runtime_id: String,
        cause: ReapCause,
        evidence: Option<String>,
    },
    Kill {
        runtime_id: String,
        reason: String,
    },
    Cancel {
        runtime_id: String,
        reason: String,
    },
    Switch {
        runtime_id: String,
        agent: Option<String>,
        profile: Option<String>,
        model: Option<String>,
    },
    Retry {
        runtime_id: String,
        resume: bool,
        /// The pool of the new runtime; absent: the retried runtime's pool, if any.
        pool: Option<String>,
        /// The new run's reservation; absent: the retried runtime's, if it had one.
        max_budget_usd: Option<f64>,
    },
    /// Create a budget, or change it (SPEC §16).
    ConfigureBudget {
        budget: BudgetRequest,
    },
    /// Create a pool, or change its capacity (SPEC §14).
    ConfigurePool {
        name: String,
        capacity: u32,
    },
    Complete {
        runtime_id: String,
        reason: String,
        commit: Option<String>,
    },
    Input {
        runtime_id: String,
        text: String,
    },
    Activity {
        runtime_id: String,
        note: Option<String>,
    },
    /// The dispatcher gave up before the worker started (e.g. a failed model smoke test).
    AbortLaunch {
        runtime_id: String,
        reason: String,
        detail: Option<String>,
    },
    /// The worker waits for a person (an agent's permission or idle prompt).
    RequestInput {
        runtime_id: String,
        kind: String,
        message: Option<String>,
    },
    /// The agent's session ended (a terminal fact ranked with the reaps).
    EndSession {
        runtime_id: String,
        reason: String,
    },
    /// Create a subscription, or change it (SPEC §15).
    ConfigureSubscription {
        config: SubscriptionConfigured,
    },
    PauseSubscription {
        name: String,
        reason: Option<String>,
    },
    /// Resume a paused or failing subscription where it stopped.
    ResumeSubscription {
        name: String,
    },
    ReplaySubscription {
        name: String,
        from_position: u64,
    },
    DeleteSubscription {
        name: String,
    },
    /// The delivery engine gave up on a delivery (the server's own writer only).
    ParkDelivery {
        parked: SubscriptionParked,
    },
}

impl Command {
    /// The ticket stream this command writes to, `None` when its runtime is unknown. The
    /// server needs it before deciding, to make the turn nonce (`turn_nonce`).
    pub fn ticket_id(&self, ledger: &Ledger) -> Option<TicketId> {
        match self.target() {
            Target::Ticket(t) => Some(t.clone()),
            Target::Runtime(r) => ledger.runtime_ticket(r).cloned(),
            Target::Pool(name) => Some(events::ids::pool_stream(name)),
            Target::Subscription(name) => Some(events::ids::subscription_stream(name)),
            Target::Budget(name) => Some(events::ids::budget_stream(name)),
        }
    }

    /// What the command acts on: the permission table's target (SPEC §12).
    pub fn target(&self) -> Target<'_> {
        match self {
            Command::Open { ticket, .. }
            | Command::Edit { ticket, .. }
            | Command::Comment { ticket, .. }
            | Command::Link { ticket, .. }
            | Command::Unlink { ticket, .. }
            | Command::Park { ticket, .. }
            | Command::Gate { ticket, .. }
            | Command::Close { ticket, .. }
            | Command::Reopen { ticket, .. }
            | Command::AddTask { ticket, .. }
            | Command::UpdateTask { ticket, .. }
            | Command::Dispatch { ticket, .. } => Target::Ticket(ticket),
            Command::Signal { runtime_id, .. }
            | Command::Harvest { runtime_id, .. }
            | Command::Reap { runtime_id, .. }
            | Command::Kill { runtime_id, .. }
            | Command::Cancel { runtime_id, .. }
            | Command::Switch { runtime_id, .. }
            | Command::Retry { runtime_id, .. }
            | Command::Complete { runtime_id, .. }
            | Command::Input { runtime_id, .. }
            | Command::Activity { runtime_id, .. }
            | Command::AbortLaunch { runtime_id, .. }
            | Command::RequestInput { runtime_id, .. }
            | Command::EndSession { runtime_id, .. } => Target::Runtime(runtime_id),
            Command::ConfigurePool { name, .. } => Target::Pool(name),
            Command::ConfigureBudget { budget } => Target::Budget(&budget.name),
            Command::ConfigureSubscription { config } => Target::Subscription(&config.name),
            Command::PauseSubscription { name, .. }
            | Command::ResumeSubscription { name }
            | Command::ReplaySubscription { name, .. }
            | Command::DeleteSubscription { name } => Target::Subscription(name),
            Command::ParkDelivery { parked } => Target::Subscription(&parked.name),
        }
    }
}

/// What a command or a read acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Ticket(&'a TicketId),
    Runtime(&'a str),
    Pool(&'a str),
    Subscription(&'a str),
    Budget(&'a str),
}

/// The outcome of a command that was not rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Append these events to `ticket`'s stream (201).
    Append(Append),
    /// Already applied: answer 200 with `duplicate: true` and the original result; append
    /// nothing.
    Duplicate(Duplicate),
    /// An activity heartbeat inside `activity_every`: answer 202, append nothing.
    Coalesced {
        ticket: TicketId,
        runtime_id: String,
    },
    /// Append `record` (the `runtime.signal_rejected` fact) and answer 409 with `rejection`.
    Refuse {
        ticket: TicketId,
        expected_version: u64,
        record: Vec<EventData>,
        rejection: Rejection,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub ticket: TicketId,
    /// The stream version this decision was made against (0: the stream must not exist).
    /// Append with it as the expected version so that decide + append is atomic.
    pub expected_version: u64,
    pub events: Vec<EventData>,
    /// Dispatch and retry: the new runtime; switch: the runtime switched.
    pub runtime_id: Option<String>,
    /// Dispatch, retry and switch: the turn nonce issued.
    pub nonce: Option<String>,
    /// More streams in the same atomic append (a dispatch into a pool writes the pool's).
    pub also: Vec<AlsoAppend>,
}

/// Another stream's part of an [`Append`], with the version its decision was made against.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsoAppend {
    pub ticket: TicketId,
    pub expected_version: u64,
    pub events: Vec<EventData>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub ticket: TicketId,
    /// The stream's current version.
    pub version: u64,
    /// The original events. Empty when the command asks for what already holds (an edit to
    /// the same values, a link that exists, a task already in that status).
    pub events: Vec<EventRef>,
    /// Dispatch and retry: the original runtime; signals: the runtime signalled.
    pub runtime_id: Option<String>,
    /// Dispatch and retry: that runtime's *current* nonce (the one an agent must sign with
    /// now, which is the original one unless the runtime was switched since).
    pub nonce: Option<String>,
}

/// HTTP class of a rejection; the API maps it to a status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 422
    Invalid,
}

/// A named reason a command changes nothing, with a stable [`Rejection::code`].
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    TicketExists {
        ticket: TicketId,
    },
    TicketNotFound {
        ticket: String,
    },
    RuntimeNotFound {
        runtime_id: String,
    },
    TaskNotFound {
        task_id: String,
    },
    TicketClosed {
        ticket: TicketId,
    },
    /// Reopen of a ticket that is not closed.
    TicketOpen {
        ticket: TicketId,
    },
    RuntimeLive {
        runtime_id: String,
    },
    RuntimeEnded {
        runtime_id: String,
        class: RuntimeClass,
    },
    StaleNonce {
        runtime_id: String,
    },
    UnknownNonce {
        runtime_id: String,
    },
    TaskExists {
        task_id: String,
    },
    VersionConflict {
        expected: Option<u64>,
        current: u64,
    },
    Invalid {
        field: &'static str,
        message: String,
    },
    PoolNotFound {
        pool: String,
    },
    /// Every slot is held: by these live runtimes.
    PoolFull {
        pool: String,
        capacity: u32,
        holders: Vec<String>,
    },
    /// A capacity below the live runtimes holding slots now.
    PoolInUse {
        pool: String,
        capacity: u32,
        holders: Vec<String>,
    },
    SubscriptionNotFound {
        name: String,
    },
    BudgetNotFound {
        name: String,
    },
    /// The reservation does not fit what is left of this budget.
    BudgetExhausted(BudgetShortfall),
}

/// A budget without room for a reservation, in dollars: what a `budget_exhausted` says.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BudgetShortfall {
    pub budget: String,
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub reservation_usd: f64,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TicketExists { .. } => "ticket_exists",
            Rejection::TicketNotFound { .. } => "ticket_not_found",
            Rejection::RuntimeNotFound { .. } => "runtime_not_found",
            Rejection::TaskNotFound { .. } => "task_not_found",
            Rejection::TicketClosed { .. } => "ticket_closed",
            Rejection::TicketOpen { .. } => "ticket_open",
            Rejection::RuntimeLive { .. } => "runtime_live",
            Rejection::RuntimeEnded { .. } => "runtime_ended",
            Rejection::StaleNonce { .. } => "stale_nonce",
            Rejection::UnknownNonce { .. } => "unknown_nonce",
            Rejection::TaskExists { .. } => "task_exists",
            Rejection::VersionConflict { .. } => "version_conflict",
            Rejection::Invalid { .. } => "invalid",
            Rejection::PoolNotFound { .. } => "pool_not_found",
            Rejection::PoolFull { .. } => "pool_full",
            Rejection::PoolInUse { .. } => "pool_in_use",
            Rejection::SubscriptionNotFound { .. } => "subscription_not_found",
            Rejection::BudgetNotFound { .. } => "budget_not_found",
            Rejection::BudgetExhausted(_) => "budget_exhausted",
        }
    }

    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::TicketNotFound { .. }
            | Rejection::RuntimeNotFound { .. }
            | Rejection::TaskNotFound { .. }
            | Rejection::PoolNotFound { .. }
            | Rejection::SubscriptionNotFound { .. }
            | Rejection::BudgetNotFound { .. } => RejectionKind::NotFound,
            Rejection::Invalid { .. } => RejectionKind::Invalid,
            _ => RejectionKind::Conflict,
        }
    }

    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TicketExists { ticket } => write!(f, "ticket {ticket} already exists"),
            Rejection::TicketNotFound { ticket } => write!(f, "ticket {ticket} not found"),
            Rejection::RuntimeNotFound { runtime_id } => write!(f, "runtime {runtime_id} not found"),
            Rejection::TaskNotFound { task_id } => write!(f, "task {task_id} not found"),
            Rejection::TicketClosed { ticket } => write!(f, "ticket {ticket} is closed"),
            Rejection::TicketOpen { ticket } => write!(f, "ticket {ticket} is not closed"),
            Rejection::PoolNotFound { pool } => write!(f, "pool {pool} not found"),
            Rejection::SubscriptionNotFound { name } => {
                write!(f, "subscription {name} not found")
            }
            Rejection::BudgetNotFound { name } => write!(f, "budget {name} not found"),
            Rejection::BudgetExhausted(s) => write!(
                f,
                "budget {} has no room for ${}: ${} spent and ${} reserved of ${}",
                s.budget, s.reservation_usd, s.spent_usd, s.reserved_usd, s.limit_usd
            ),
            Rejection::PoolFull {
                pool,
                capacity,
                holders,
            } => write!(
                f,
                "pool {pool} is full: {} of {capacity} slots held",
                holders.len()
            ),
            Rejection::PoolInUse {
                pool,
                capacity,
                holders,
            } => write!(
                f,
                "pool {pool} has {} live holders, more than {capacity} slots; shrink it once they end",
                holders.len()
            ),
            Rejection::RuntimeLive { runtime_id } => write!(f, "runtime {runtime_id} is live"),
            Rejection::RuntimeEnded { runtime_id, class } => {
                write!(f, "runtime {runtime_id} has ended ({class})")
            }
            Rejection::StaleNonce { runtime_id } => {
                write!(f, "nonce is stale: runtime {runtime_id} was issued a newer one")
            }
            Rejection::UnknownNonce { runtime_id } => {
                write!(f, "nonce was never issued to runtime {runtime_id}'s ticket")
            }
            Rejection::TaskExists { task_id } => write!(f, "task {task_id} exists with another title"),
            Rejection::VersionConflict { expected, current } => match expected {
                Some(e) => write!(f, "expected version {e}, ticket is at version {current}"),
                None => write!(
                    f,
                    "the runtime was already harvested: send expected_version {current} to replace it"
                ),
            },
            Rejection::Invalid { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for Rejection {}
