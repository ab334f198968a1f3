//! Command decisions (SPEC §6): `decide(ledger, command, context)` turns a request into new
//! events for one ticket stream, a duplicate answer, or a named rejection with a stable code.
//!
//! Every decision is a flat run of early returns (TigerBeetle's state machine style), checked
//! in one order: the target exists (404), the input is well formed (422), the command was
//! already applied (duplicate, 200), the client's expected version (409), then the rules of
//! the ticket and runtime state (409). Duplicates come before the version check on purpose: a
//! client retrying a dispatch after a timeout still holds the old version and must get its
//! original runtime back, not a conflict.

use std::fmt;

use events::{
    EventData, ExitReason, GateRecorded, HarvestOutcome, ModelUsage, PoolAdmitted, PoolConfigured,
    ReapCause, Relation, RuntimeActivity, RuntimeCancelled, RuntimeCompletedByController,
    RuntimeDispatched, RuntimeHarvested, RuntimeInputRequested, RuntimeInputSent, RuntimeKilled,
    RuntimeLaunchAborted, RuntimePooled, RuntimeReaped, RuntimeSessionEnded, RuntimeSignalRejected,
    RuntimeSignaled, RuntimeSwitched, RuntimeUsageRecorded, SignalRejectReason, TaskAdded,
    TaskStatus, TaskUpdated, TicketClosed, TicketCommented, TicketEdited, TicketId, TicketLinked,
    TicketOpened, TicketParked, TicketReopened, TicketUnlinked, Timestamp, Transport, Verdict,
};

use crate::class::RuntimeClass;
use crate::config::Config;
use crate::ledger::EventRef;
use crate::ledger::{Ledger, Runtime, Ticket};
use events::ids::POOL_NAME_BYTES_MAX;

use crate::limits::{
    excerpt, EVIDENCE_BYTES_MAX, KEY_BYTES_MAX, LABELS_MAX, NAME_BYTES_MAX, PATH_BYTES_MAX,
    REASON_BYTES_MAX, REJECTED_EXCERPT_BYTES_MAX, TASKS_PER_TICKET_MAX, TEXT_BYTES_MAX,
    TITLE_CHARS_MAX, USAGE_MODELS_MAX, WAITING_ON_MAX,
};

/// What the pure core may not invent: the time, fresh ids, and what the client last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Command {
    /// The ticket stream this command writes to, `None` when its runtime is unknown. The
    /// server needs it before deciding, to make the turn nonce (`turn_nonce`).
    pub fn ticket_id(&self, ledger: &Ledger) -> Option<TicketId> {
        match self.target() {
            Target::Ticket(t) => Some(t.clone()),
            Target::Runtime(r) => ledger.runtime_ticket(r).cloned(),
            Target::Pool(name) => Some(events::ids::pool_stream(name)),
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
        }
    }
}

/// What a command or a read acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Ticket(&'a TicketId),
    Runtime(&'a str),
    Pool(&'a str),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }

    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::TicketNotFound { .. }
            | Rejection::RuntimeNotFound { .. }
            | Rejection::TaskNotFound { .. }
            | Rejection::PoolNotFound { .. } => RejectionKind::NotFound,
            Rejection::Invalid { .. } => RejectionKind::Invalid,
            _ => RejectionKind::Conflict,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Rejection {
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

/// Decides `cmd` against `ledger`. Pure: the same inputs always give the same answer.
pub fn decide(ledger: &Ledger, cmd: &Command, ctx: &Context) -> Result<Decision, Rejection> {
    match cmd {
        Command::Open { ticket, opened } => open(ledger, ticket, opened, ctx),
        Command::Edit { ticket, edit } => edit_ticket(ledger, ticket, edit, ctx),
        Command::Comment { ticket, body } => comment(ledger, ticket, body, ctx),
        Command::Link {
            ticket,
            relation,
            target,
        } => link(ledger, ticket, *relation, target, ctx),
        Command::Unlink {
            ticket,
            relation,
            target,
        } => unlink(ledger, ticket, *relation, target, ctx),
        Command::Park {
            ticket,
            waiting_on,
            reason,
        } => park(ledger, ticket, waiting_on, reason, ctx),
        Command::Gate { ticket, gate } => record_gate(ledger, ticket, gate, ctx),
        Command::Close { ticket, close } => close_ticket(ledger, ticket, close, ctx),
        Command::Reopen { ticket, reason } => reopen(ledger, ticket, reason, ctx),
        Command::AddTask {
            ticket,
            task_id,
            title,
        } => add_task(ledger, ticket, task_id.as_deref(), title, ctx),
        Command::UpdateTask {
            ticket,
            task_id,
            status,
        } => update_task(ledger, ticket, task_id, *status, ctx),
        Command::Dispatch { .. } => dispatch(ledger, cmd, ctx),
        Command::Signal {
            runtime_id,
            verdict,
            nonce,
            payload,
        } => signal(ledger, runtime_id, *verdict, nonce, payload, ctx),
        Command::Harvest { runtime_id, report } => harvest(ledger, runtime_id, report, ctx),
        Command::Reap {
            runtime_id,
            cause,
            evidence,
        } => reap(ledger, runtime_id, *cause, evidence, ctx),
        Command::RequestInput {
            runtime_id,
            kind,
            message,
        } => request_input(ledger, runtime_id, kind, message.as_deref(), ctx),
        Command::EndSession { runtime_id, reason } => end_session(ledger, runtime_id, reason, ctx),
        Command::Kill { runtime_id, reason } => {
            end_live(ledger, runtime_id, reason, ctx, Ending::Kill)
        }
        Command::Cancel { runtime_id, reason } => {
            end_live(ledger, runtime_id, reason, ctx, Ending::Cancel)
        }
        Command::Switch {
            runtime_id,
            agent,
            profile,
            model,
        } => switch(ledger, runtime_id, agent, profile, model, ctx),
        Command::Retry {
            runtime_id,
            resume,
            pool,
        } => retry(ledger, runtime_id, *resume, pool.as_deref(), ctx),
        Command::ConfigurePool { name, capacity } => configure_pool(ledger, name, *capacity),
        Command::Complete {
            runtime_id,
            reason,
            commit,
        } => complete(ledger, runtime_id, reason, commit, ctx),
        Command::Input { runtime_id, text } => input(ledger, runtime_id, text, ctx),
        Command::Activity { runtime_id, note } => activity(ledger, runtime_id, note, ctx),
        Command::AbortLaunch {
            runtime_id,
            reason,
            detail,
        } => end_live(
            ledger,
            runtime_id,
            reason,
            ctx,
            Ending::AbortLaunch(detail.as_deref()),
        ),
    }
}

// ---- shared checks ----

fn find_ticket<'a>(ledger: &'a Ledger, id: &TicketId) -> Result<&'a Ticket, Rejection> {
    ledger
        .tickets
        .get(id)
        .ok_or_else(|| Rejection::TicketNotFound {
            ticket: id.as_str().to_owned(),
        })
}

fn find_runtime<'a>(ledger: &'a Ledger, id: &str) -> Result<(&'a Runtime, &'a Ticket), Rejection> {
    let not_found = || Rejection::RuntimeNotFound {
        runtime_id: excerpt(id, KEY_BYTES_MAX).to_owned(),
    };
    let r = ledger.runtimes.get(id).ok_or_else(not_found)?;
    let t = ledger.tickets.get(&r.ticket).ok_or_else(not_found)?;
    Ok((r, t))
}

fn check_version(t: &Ticket, ctx: &Context) -> Result<(), Rejection> {
    match ctx.expected_version {
        Some(v) if v != t.version => Err(Rejection::VersionConflict {
            expected: Some(v),
            current: t.version,
        }),
        _ => Ok(()),
    }
}

fn ended(r: &Runtime) -> Rejection {
    Rejection::RuntimeEnded {
        runtime_id: r.id.clone(),
        class: r.ended_class().unwrap_or(RuntimeClass::Closed),
    }
}

/// A required string: not blank, at most `max` bytes.
fn required(field: &'static str, s: &str, max: usize) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    optional(field, Some(s), max)
}

fn optional(field: &'static str, s: Option<&str>, max: usize) -> Result<(), Rejection> {
    match s {
        Some(s) if s.len() > max => Err(Rejection::invalid(field, format!("at most {max} bytes"))),
        _ => Ok(()),
    }
}

fn title(field: &'static str, s: &str) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    if s.chars().count() > TITLE_CHARS_MAX {
        return Err(Rejection::invalid(
            field,
            format!("at most {TITLE_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

fn append(t: &Ticket, events: Vec<EventData>) -> Result<Decision, Rejection> {
    Ok(Decision::Append(Append {
        ticket: t.id.clone(),
        expected_version: t.version,
        events,
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    }))
}

fn already(t: &Ticket, events: Vec<EventRef>) -> Result<Decision, Rejection> {
    Ok(Decision::Duplicate(Duplicate {
        ticket: t.id.clone(),
        version: t.version,
        events,
        runtime_id: None,
        nonce: None,
    }))
}

fn fresh_ids(ledger: &Ledger, ctx: &Context) -> Result<(), Rejection> {
    // The server generates these; a reused or empty one is a bug there, still not a panic.
    required("runtime_id", &ctx.runtime_id, KEY_BYTES_MAX)?;
    required("nonce", &ctx.nonce, KEY_BYTES_MAX)?;
    if ledger.runtimes.contains_key(&ctx.runtime_id) {
        return Err(Rejection::invalid("runtime_id", "already in use"));
    }
    Ok(())
}

// ---- ticket commands ----

fn open(
    ledger: &Ledger,
    id: &TicketId,
    o: &TicketOpened,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    if ledger.tickets.contains_key(id) {
        return Err(Rejection::TicketExists { ticket: id.clone() });
    }
    if events::ids::is_pool_stream(id) {
        return Err(Rejection::invalid(
            "id",
            format!(
                "the {}- prefix names pool streams, not tickets",
                events::ids::POOL_STREAM_PREFIX
            ),
        ));
    }
    title("title", &o.title)?;
    optional("description", o.description.as_deref(), TEXT_BYTES_MAX)?;
    optional("owner", o.owner.as_deref(), NAME_BYTES_MAX)?;
    optional("project", o.project.as_deref(), NAME_BYTES_MAX)?;
    if o.labels.len() > LABELS_MAX {
        return Err(Rejection::invalid(
            "labels",
            format!("at most {LABELS_MAX} labels"),
        ));
    }
    for label in &o.labels {
        required("labels", label, NAME_BYTES_MAX)?;
    }
    if let Some(v) = ctx.expected_version.filter(|v| *v != 0) {
        return Err(Rejection::VersionConflict {
            expected: Some(v),
            current: 0,
        });
    }
    Ok(Decision::Append(Append {
        ticket: id.clone(),
        expected_version: 0,
        events: vec![EventData::TicketOpened(o.clone())],
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    }))
}

fn edit_ticket(
    ledger: &Ledger,
    id: &TicketId,
    e: &TicketEdited,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    if e.title.is_none() && e.description.is_none() && e.priority.is_none() && e.owner.is_none() {
        return Err(Rejection::invalid("body", "nothing to edit"));
    }
    if let Some(s) = &e.title {
        title("title", s)?;
    }
    optional("description", e.description.as_deref(), TEXT_BYTES_MAX)?;
    optional("owner", e.owner.as_deref(), NAME_BYTES_MAX)?;
    // Only what changes is recorded, so the log says what an edit actually did.
    let changed = TicketEdited {
        title: e.title.clone().filter(|v| *v != t.title),
        description: e
            .description
            .clone()
            .filter(|v| t.description.as_ref() != Some(v)),
        priority: e.priority.filter(|v| *v != t.priority),
        owner: e.owner.clone().filter(|v| t.owner.as_ref() != Some(v)),
    };
    if changed.title.is_none()
        && changed.description.is_none()
        && changed.priority.is_none()
        && changed.owner.is_none()
    {
        return already(t, Vec::new());
    }
    check_version(t, ctx)?;
    append(t, vec![EventData::TicketEdited(changed)])
}

fn comment(
    ledger: &Ledger,
    id: &TicketId,
    body: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    // Allowed in every state, closed tickets included (the seeds' W.1 bug).
    let t = find_ticket(ledger, id)?;
    required("body", body, TEXT_BYTES_MAX)?;
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::TicketCommented(TicketCommented {
            body: body.to_owned(),
        })],
    )
}

fn parse_target(ledger: &Ledger, t: &Ticket, target: &str) -> Result<TicketId, Rejection> {
    let target =
        TicketId::parse(target).map_err(|e| Rejection::invalid("target", e.to_string()))?;
    if target == t.id {
        return Err(Rejection::invalid(
            "target",
            "a ticket cannot link to itself",
        ));
    }
    if !ledger.tickets.contains_key(&target) {
        return Err(Rejection::invalid(
            "target",
            format!("unknown ticket {target}"),
        ));
    }
    Ok(target)
}

fn link(
    ledger: &Ledger,
    id: &TicketId,
    relation: Relation,
    target: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    let target = parse_target(ledger, t, target)?;
    let exists = match relation {
        Relation::ChildOf => t.parent.as_ref() == Some(&target),
        Relation::BlockedBy => t.blocked_by.contains(&target),
    };
    if exists {
        return already(t, Vec::new());
    }
    if relation == Relation::ChildOf {
        if let Some(p) = &t.parent {
            return Err(Rejection::invalid(
                "target",
                format!("{id} is already child_of {p}; unlink it first"),
            ));
        }
        // Walk up from the target; meeting this ticket means the link would close a cycle.
        // Bounded by the ticket count, so even a cycle already in the log cannot hang us.
        let mut cursor = Some(&target);
        for _ in 0..=ledger.tickets.len() {
            let Some(c) = cursor else { break };
            if c == id {
                return Err(Rejection::invalid(
                    "target",
                    format!("child_of {target} would make a cycle"),
                ));
            }
            cursor = ledger.tickets.get(c).and_then(|x| x.parent.as_ref());
        }
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::TicketLinked(TicketLinked {
            relation,
            target: target.into(),
        })],
    )
}

fn unlink(
    ledger: &Ledger,
    id: &TicketId,
    relation: Relation,
    target: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    let target =
        TicketId::parse(target).map_err(|e| Rejection::invalid("target", e.to_string()))?;
    let exists = match relation {
        Relation::ChildOf => t.parent.as_ref() == Some(&target),
        Relation::BlockedBy => t.blocked_by.contains(&target),
    };
    if !exists {
        return already(t, Vec::new());
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::TicketUnlinked(TicketUnlinked {
            relation,
            target: target.into(),
        })],
    )
}

fn park(
    ledger: &Ledger,
    id: &TicketId,
    waiting_on: &[String],
    reason: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    required("reason", reason, REASON_BYTES_MAX)?;
    if waiting_on.len() > WAITING_ON_MAX {
        return Err(Rejection::invalid(
            "waiting_on",
            format!("at most {WAITING_ON_MAX} entries"),
        ));
    }
    for w in waiting_on {
        required("waiting_on", w, KEY_BYTES_MAX)?;
        // Free text ("Elmar's approval") is allowed; something shaped like a ticket id must
        // name a real other ticket, or the wait could never resolve and nobody would know.
        if let Ok(w) = TicketId::parse(w) {
            if w == *id {
                return Err(Rejection::invalid(
                    "waiting_on",
                    "a ticket cannot wait on itself",
                ));
            }
            if !ledger.tickets.contains_key(&w) {
                return Err(Rejection::invalid(
                    "waiting_on",
                    format!("unknown ticket {w}"),
                ));
            }
        }
    }
    check_version(t, ctx)?;
    if t.closed.is_some() {
        return Err(Rejection::TicketClosed {
            ticket: t.id.clone(),
        });
    }
    append(
        t,
        vec![EventData::TicketParked(TicketParked {
            waiting_on: waiting_on.to_vec(),
            reason: reason.to_owned(),
        })],
    )
}

fn record_gate(
    ledger: &Ledger,
    id: &TicketId,
    g: &GateRecorded,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    // Gates are evidence; a validator may record one after the close as well.
    let t = find_ticket(ledger, id)?;
    required("gate", &g.gate, NAME_BYTES_MAX)?;
    optional("commit", g.commit.as_deref(), KEY_BYTES_MAX)?;
    optional("evidence", g.evidence.as_deref(), EVIDENCE_BYTES_MAX)?;
    check_version(t, ctx)?;
    append(t, vec![EventData::GateRecorded(g.clone())])
}

fn close_ticket(
    ledger: &Ledger,
    id: &TicketId,
    c: &TicketClosed,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    optional("commit", c.commit.as_deref(), KEY_BYTES_MAX)?;
    optional("evidence", c.evidence.as_deref(), EVIDENCE_BYTES_MAX)?;
    check_version(t, ctx)?;
    if t.closed.is_some() {
        return Err(Rejection::TicketClosed {
            ticket: t.id.clone(),
        });
    }
    append(t, vec![EventData::TicketClosed(c.clone())])
}

fn reopen(
    ledger: &Ledger,
    id: &TicketId,
    reason: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    required("reason", reason, REASON_BYTES_MAX)?;
    check_version(t, ctx)?;
    if t.closed.is_none() {
        return Err(Rejection::TicketOpen {
            ticket: t.id.clone(),
        });
    }
    append(
        t,
        vec![EventData::TicketReopened(TicketReopened {
            reason: reason.to_owned(),
        })],
    )
}

fn add_task(
    ledger: &Ledger,
    id: &TicketId,
    task_id: Option<&str>,
    task_title: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    title("title", task_title)?;
    if let Some(k) = task_id {
        required("task_id", k, KEY_BYTES_MAX)?;
    }
    if let Some(k) = task_id.and_then(|k| t.tasks.iter().find(|x| x.task_id == k)) {
        if k.title == task_title {
            return already(t, Vec::new());
        }
        return Err(Rejection::TaskExists {
            task_id: k.task_id.clone(),
        });
    }
    if t.tasks.len() >= TASKS_PER_TICKET_MAX {
        return Err(Rejection::invalid(
            "task_id",
            format!("at most {TASKS_PER_TICKET_MAX} tasks per ticket"),
        ));
    }
    // Without a client id the task gets the next free `T<n>`: deterministic, so a replay of
    // the decision gives the same id.
    let task_id = match task_id {
        Some(k) => k.to_owned(),
        None => (t.tasks.len() + 1..)
            .map(|n| format!("T{n}"))
            .find(|k| !t.tasks.iter().any(|x| x.task_id == *k))
            .unwrap_or_default(),
    };
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::TaskAdded(TaskAdded {
            task_id,
            title: task_title.to_owned(),
        })],
    )
}

fn update_task(
    ledger: &Ledger,
    id: &TicketId,
    task_id: &str,
    status: TaskStatus,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let t = find_ticket(ledger, id)?;
    let Some(task) = t.tasks.iter().find(|x| x.task_id == task_id) else {
        return Err(Rejection::TaskNotFound {
            task_id: excerpt(task_id, KEY_BYTES_MAX).to_owned(),
        });
    };
    if task.status == status {
        return already(t, Vec::new());
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::TaskUpdated(TaskUpdated {
            task_id: task_id.to_owned(),
            status,
        })],
    )
}

// ---- runtime commands ----

fn next_attempt(t: &Ticket) -> u32 {
    u32::try_from(t.runtimes.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

fn dispatch(ledger: &Ledger, cmd: &Command, ctx: &Context) -> Result<Decision, Rejection> {
    let Command::Dispatch {
        ticket,
        dispatch_key,
        agent,
        transport,
        profile,
        provider,
        model,
        tmux_target,
        process_id,
        cwd,
        replace,
        pool,
    } = cmd
    else {
        return Err(Rejection::invalid("command", "not a dispatch"));
    };
    let t = find_ticket(ledger, ticket)?;
    required("dispatch_key", dispatch_key, KEY_BYTES_MAX)?;
    required("agent", agent, NAME_BYTES_MAX)?;
    optional("profile", profile.as_deref(), NAME_BYTES_MAX)?;
    optional("provider", provider.as_deref(), NAME_BYTES_MAX)?;
    optional("model", model.as_deref(), NAME_BYTES_MAX)?;
    optional("tmux_target", tmux_target.as_deref(), PATH_BYTES_MAX)?;
    optional("cwd", cwd.as_deref(), PATH_BYTES_MAX)?;
    // The same key returns its runtime forever, not only "in quick succession": five pickups
    // by one dispatcher are one runtime (seed MC-4030).
    if let Some(r) = t
        .dispatch_keys
        .get(dispatch_key)
        .and_then(|id| ledger.runtimes.get(id))
    {
        return Ok(duplicate_runtime(t, r));
    }
    check_version(t, ctx)?;
    if t.closed.is_some() {
        return Err(Rejection::TicketClosed {
            ticket: t.id.clone(),
        });
    }
    let live: Vec<&Runtime> = live_runtimes(ledger, t).collect();
    if let (Some(r), false) = (live.first(), replace) {
        return Err(Rejection::RuntimeLive {
            runtime_id: r.id.clone(),
        });
    }
    fresh_ids(ledger, ctx)?;
    let mut events: Vec<EventData> = live
        .iter()
        .map(|r| {
            EventData::RuntimeKilled(RuntimeKilled {
                runtime_id: r.id.clone(),
                reason: format!(
                    "replaced by dispatch {}",
                    excerpt(dispatch_key, NAME_BYTES_MAX)
                ),
            })
        })
        .collect();
    events.push(EventData::RuntimeDispatched(RuntimeDispatched {
        runtime_id: ctx.runtime_id.clone(),
        dispatch_key: dispatch_key.clone(),
        attempt: next_attempt(t),
        agent: agent.clone(),
        profile: profile.clone(),
        provider: provider.clone(),
        model: model.clone(),
        transport: *transport,
        tmux_target: tmux_target.clone(),
        process_id: *process_id,
        cwd: cwd.clone(),
        nonce: ctx.nonce.clone(),
        replaces: t.current_runtime.clone(),
        resume_session: None,
    }));
    let freed: Vec<&str> = live.iter().map(|r| r.id.as_str()).collect();
    let also = admission(ledger, t, pool.as_deref(), &freed, ctx, &mut events)?;
    Ok(new_runtime(t, events, ctx, also))
}

/// A slot of `pool` for the new runtime: `runtime.pooled` after its dispatch on the ticket's
/// stream, and the pool stream's part of the append (`pool.admitted` at the pool's version,
/// so that of two racing dispatches one is re-decided); or `pool_full` with the holders.
/// `freed` are runtimes the same append ends (a replacing dispatch): their slots pass to the
/// new runtime instead of counting against it.
fn admission(
    ledger: &Ledger,
    t: &Ticket,
    pool: Option<&str>,
    freed: &[&str],
    ctx: &Context,
    events: &mut Vec<EventData>,
) -> Result<Vec<AlsoAppend>, Rejection> {
    let Some(name) = pool else {
        return Ok(Vec::new());
    };
    let p = ledger
        .pools
        .get(name)
        .ok_or_else(|| Rejection::PoolNotFound {
            pool: excerpt(name, POOL_NAME_BYTES_MAX).to_owned(),
        })?;
    let staying = p
        .holders
        .iter()
        .filter(|h| !freed.contains(&h.as_str()))
        .count();
    if staying >= usize::try_from(p.capacity).unwrap_or(usize::MAX) {
        return Err(Rejection::PoolFull {
            pool: p.name.clone(),
            capacity: p.capacity,
            holders: p.holders.iter().cloned().collect(),
        });
    }
    events.push(EventData::RuntimePooled(RuntimePooled {
        runtime_id: ctx.runtime_id.clone(),
        pool: p.name.clone(),
    }));
    Ok(vec![AlsoAppend {
        ticket: p.stream.clone(),
        expected_version: ledger.pool_stream_version(&p.stream),
        events: vec![EventData::PoolAdmitted(PoolAdmitted {
            runtime_id: ctx.runtime_id.clone(),
            ticket: t.id.as_str().to_owned(),
        })],
    }])
}

/// The most slots a pool may have.
pub const POOL_CAPACITY_MAX: u32 = 10_000;

fn configure_pool(ledger: &Ledger, name: &str, capacity: u32) -> Result<Decision, Rejection> {
    if !events::ids::is_pool_name(name) {
        return Err(Rejection::invalid(
            "name",
            format!("1 to {POOL_NAME_BYTES_MAX} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    if capacity > POOL_CAPACITY_MAX {
        return Err(Rejection::invalid(
            "capacity",
            format!("at most {POOL_CAPACITY_MAX}"),
        ));
    }
    let stream = events::ids::pool_stream(name);
    if let Some(other) = ledger.pool_streams.get(&stream).filter(|n| *n != name) {
        return Err(Rejection::invalid(
            "name",
            format!("{name:?} shares its stream {stream} with pool {other:?}; choose another name"),
        ));
    }
    let version = ledger.pool_stream_version(&stream);
    if let Some(p) = ledger.pools.get(name) {
        let held = p.holders.len();
        if usize::try_from(capacity).unwrap_or(usize::MAX) < held {
            // Holders never outnumber the slots: shrink once they have ended.
            return Err(Rejection::PoolInUse {
                pool: p.name.clone(),
                capacity,
                holders: p.holders.iter().cloned().collect(),
            });
        }
        if p.capacity == capacity {
            return Ok(Decision::Duplicate(Duplicate {
                ticket: stream,
                version,
                events: Vec::new(),
                runtime_id: None,
                nonce: None,
            }));
        }
    }
    Ok(Decision::Append(Append {
        ticket: stream,
        expected_version: version,
        events: vec![EventData::PoolConfigured(PoolConfigured {
            name: name.to_owned(),
            capacity,
        })],
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    }))
}

fn live_runtimes<'a>(ledger: &'a Ledger, t: &'a Ticket) -> impl Iterator<Item = &'a Runtime> + 'a {
    t.runtimes
        .iter()
        .filter_map(|id| ledger.runtimes.get(id))
        .filter(|r| r.is_live())
}

fn duplicate_runtime(t: &Ticket, r: &Runtime) -> Decision {
    Decision::Duplicate(Duplicate {
        ticket: t.id.clone(),
        version: t.version,
        events: vec![r.dispatched],
        runtime_id: Some(r.id.clone()),
        nonce: Some(r.nonce.clone()),
    })
}

fn new_runtime(
    t: &Ticket,
    events: Vec<EventData>,
    ctx: &Context,
    also: Vec<AlsoAppend>,
) -> Decision {
    Decision::Append(Append {
        ticket: t.id.clone(),
        expected_version: t.version,
        events,
        runtime_id: Some(ctx.runtime_id.clone()),
        nonce: Some(ctx.nonce.clone()),
        also,
    })
}

fn signal(
    ledger: &Ledger,
    runtime_id: &str,
    verdict: Verdict,
    nonce: &str,
    payload: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("nonce", nonce, KEY_BYTES_MAX)?;
    optional("payload", Some(payload), TEXT_BYTES_MAX)?;
    if let Some(s) = r
        .signals
        .iter()
        .find(|s| s.nonce == nonce && s.verdict == verdict)
    {
        return Ok(Decision::Duplicate(Duplicate {
            ticket: t.id.clone(),
            version: t.version,
            events: vec![s.event],
            runtime_id: Some(r.id.clone()),
            nonce: None,
        }));
    }
    check_version(t, ctx)?;
    // Refusals are facts too: the log shows who signalled what, and why it did not count.
    let refuse = |reason: SignalRejectReason, rejection: Rejection| {
        Ok(Decision::Refuse {
            ticket: t.id.clone(),
            expected_version: t.version,
            record: vec![EventData::RuntimeSignalRejected(RuntimeSignalRejected {
                runtime_id: r.id.clone(),
                reason,
                nonce: Some(excerpt(nonce, KEY_BYTES_MAX).to_owned()),
                excerpt: excerpt(payload, REJECTED_EXCERPT_BYTES_MAX).to_owned(),
            })],
            rejection,
        })
    };
    if !r.is_live() {
        return refuse(SignalRejectReason::RuntimeEnded, ended(r));
    }
    if nonce != r.nonce {
        let runtime_id = r.id.clone();
        if t.nonces.contains(nonce) {
            return refuse(
                SignalRejectReason::StaleNonce,
                Rejection::StaleNonce { runtime_id },
            );
        }
        return refuse(
            SignalRejectReason::UnknownNonce,
            Rejection::UnknownNonce { runtime_id },
        );
    }
    append(
        t,
        vec![EventData::RuntimeSignaled(RuntimeSignaled {
            runtime_id: r.id.clone(),
            verdict,
            nonce: nonce.to_owned(),
            payload: payload.to_owned(),
        })],
    )
}

/// §5.2's outcome/exit pairs; anything else is a harvester bug, refused before it is a fact.
fn consistent(outcome: HarvestOutcome, exit: ExitReason) -> bool {
    match outcome {
        HarvestOutcome::Completed => exit == ExitReason::Success,
        HarvestOutcome::Partial => matches!(exit, ExitReason::MaxTurns | ExitReason::MaxBudget),
        HarvestOutcome::Failed => matches!(
            exit,
            ExitReason::Error
                | ExitReason::ApiError
                | ExitReason::Interrupted
                | ExitReason::NoResult
        ),
    }
}

fn harvest(
    ledger: &Ledger,
    runtime_id: &str,
    h: &HarvestReport,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    if !consistent(h.outcome, h.exit_reason) {
        return Err(Rejection::invalid(
            "exit_reason",
            format!(
                "{} does not go with outcome {:?}",
                h.exit_reason.as_str(),
                h.outcome
            ),
        ));
    }
    if h.cost_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
        return Err(Rejection::invalid(
            "cost_usd",
            "must be a finite, non-negative number",
        ));
    }
    optional("session_id", h.session_id.as_deref(), KEY_BYTES_MAX)?;
    optional("summary", h.summary.as_deref(), TEXT_BYTES_MAX)?;
    optional("raw_subtype", h.raw_subtype.as_deref(), NAME_BYTES_MAX)?;
    usage_is_valid(&h.usage)?;
    if let Some(prev) = &r.facts.harvest {
        let same = prev.outcome == h.outcome
            && prev.exit_reason == h.exit_reason
            && prev.turns == h.turns
            && prev.cost_usd == h.cost_usd
            && prev.session_id == h.session_id
            && (h.usage.is_empty() || r.usage == h.usage);
        if same {
            return already(t, r.harvest_ref.into_iter().collect());
        }
        // A second, different harvest must prove it saw the first (the seeds' W.6 race:
        // two harvesters overwriting each other).
        if ctx.expected_version != Some(t.version) {
            return Err(Rejection::VersionConflict {
                expected: ctx.expected_version,
                current: t.version,
            });
        }
    }
    check_version(t, ctx)?;
    let mut events = vec![EventData::RuntimeHarvested(RuntimeHarvested {
        runtime_id: r.id.clone(),
        outcome: h.outcome,
        exit_reason: h.exit_reason,
        turns: h.turns,
        cost_usd: h.cost_usd,
        session_id: h.session_id.clone(),
        summary: h.summary.clone(),
        raw_subtype: h.raw_subtype.clone(),
    })];
    if !h.usage.is_empty() {
        events.push(EventData::RuntimeUsageRecorded(RuntimeUsageRecorded {
            runtime_id: r.id.clone(),
            models: h.usage.clone(),
        }));
    }
    append(t, events)
}

/// A harvest's usage: a bounded list of models, each named within bounds, at most once, with
/// a cost that is a finite, non-negative number.
fn usage_is_valid(usage: &[ModelUsage]) -> Result<(), Rejection> {
    if usage.len() > USAGE_MODELS_MAX {
        return Err(Rejection::invalid(
            "usage",
            format!("at most {USAGE_MODELS_MAX} models"),
        ));
    }
    for (i, m) in usage.iter().enumerate() {
        optional("usage.model", m.model.as_deref(), NAME_BYTES_MAX)?;
        if m.cost_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(Rejection::invalid(
                "usage.cost_usd",
                "must be a finite, non-negative number",
            ));
        }
        if m.cached_input_tokens > m.input_tokens {
            return Err(Rejection::invalid(
                "usage.cached_input_tokens",
                "cannot exceed input_tokens (which counts cached tokens too)",
            ));
        }
        if usage[..i].iter().any(|o| o.model == m.model) {
            return Err(Rejection::invalid("usage.model", "each model at most once"));
        }
    }
    Ok(())
}

fn reap(
    ledger: &Ledger,
    runtime_id: &str,
    cause: ReapCause,
    evidence: &Option<String>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    optional("evidence", evidence.as_deref(), EVIDENCE_BYTES_MAX)?;
    // Once per (runtime, cause): watchers poll, and a poll must not grow the log.
    if let Some((_, at)) = r.reaps.iter().find(|(c, _)| *c == cause) {
        return already(t, vec![*at]);
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::RuntimeReaped(RuntimeReaped {
            runtime_id: r.id.clone(),
            cause,
            evidence: evidence.clone(),
        })],
    )
}

enum Ending<'a> {
    Kill,
    Cancel,
    AbortLaunch(Option<&'a str>),
}

fn end_live(
    ledger: &Ledger,
    runtime_id: &str,
    reason: &str,
    ctx: &Context,
    how: Ending<'_>,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("reason", reason, REASON_BYTES_MAX)?;
    if let Ending::AbortLaunch(detail) = &how {
        optional("detail", *detail, EVIDENCE_BYTES_MAX)?;
    }
    check_version(t, ctx)?;
    if !r.is_live() {
        return Err(ended(r));
    }
    let runtime_id = r.id.clone();
    let reason = reason.to_owned();
    let event = match how {
        Ending::Kill => EventData::RuntimeKilled(RuntimeKilled { runtime_id, reason }),
        Ending::Cancel => EventData::RuntimeCancelled(RuntimeCancelled { runtime_id, reason }),
        Ending::AbortLaunch(detail) => EventData::RuntimeLaunchAborted(RuntimeLaunchAborted {
            runtime_id,
            reason,
            detail: detail.map(str::to_owned),
        }),
    };
    append(t, vec![event])
}

fn switch(
    ledger: &Ledger,
    runtime_id: &str,
    agent: &Option<String>,
    profile: &Option<String>,
    model: &Option<String>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    if let Some(a) = agent {
        required("agent", a, NAME_BYTES_MAX)?;
    }
    optional("profile", profile.as_deref(), NAME_BYTES_MAX)?;
    optional("model", model.as_deref(), NAME_BYTES_MAX)?;
    required("nonce", &ctx.nonce, KEY_BYTES_MAX)?;
    check_version(t, ctx)?;
    if !r.is_live() {
        return Err(ended(r));
    }
    // A switch starts a new turn with a new nonce; the old one is stale from now on (the
    // seeds' W.8 bug left it valid).
    Ok(Decision::Append(Append {
        ticket: t.id.clone(),
        expected_version: t.version,
        events: vec![EventData::RuntimeSwitched(RuntimeSwitched {
            runtime_id: r.id.clone(),
            agent: agent.clone(),
            profile: profile.clone(),
            model: model.clone(),
            nonce: ctx.nonce.clone(),
        })],
        runtime_id: Some(r.id.clone()),
        nonce: Some(ctx.nonce.clone()),
        also: Vec::new(),
    }))
}

/// The dispatch key of a retry: one retry per runtime, so a client retrying the retry request
/// gets the same new runtime back.
fn retry_key(runtime_id: &str) -> String {
    format!("retry:{runtime_id}")
}

fn retry(
    ledger: &Ledger,
    runtime_id: &str,
    resume: bool,
    pool: Option<&str>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    let key = retry_key(&r.id);
    if let Some(n) = t
        .dispatch_keys
        .get(&key)
        .and_then(|id| ledger.runtimes.get(id))
    {
        return Ok(duplicate_runtime(t, n));
    }
    check_version(t, ctx)?;
    // Never a silent no-op (the seeds' W.4 bug): every refusal says why.
    if t.closed.is_some() {
        return Err(Rejection::TicketClosed {
            ticket: t.id.clone(),
        });
    }
    if r.is_live() {
        return Err(Rejection::RuntimeLive {
            runtime_id: r.id.clone(),
        });
    }
    if let Some(other) = live_runtimes(ledger, t).next() {
        return Err(Rejection::RuntimeLive {
            runtime_id: other.id.clone(),
        });
    }
    let resume_session = if resume {
        let session = r
            .facts
            .harvest
            .as_ref()
            .and_then(|h| h.session_id.clone())
            .or_else(|| r.resume_session.clone());
        let Some(session) = session else {
            return Err(Rejection::invalid(
                "resume",
                "the runtime has no session_id to resume",
            ));
        };
        Some(session)
    } else {
        None
    };
    fresh_ids(ledger, ctx)?;
    let events = vec![EventData::RuntimeDispatched(RuntimeDispatched {
        runtime_id: ctx.runtime_id.clone(),
        dispatch_key: key,
        attempt: next_attempt(t).max(r.attempt.saturating_add(1)),
        agent: r.agent.clone(),
        profile: r.profile.clone(),
        provider: r.provider.clone(),
        model: r.model.clone(),
        transport: r.transport,
        tmux_target: r.tmux_target.clone(),
        process_id: None,
        cwd: r.cwd.clone(),
        nonce: ctx.nonce.clone(),
        replaces: Some(r.id.clone()),
        resume_session,
    })];
    let mut events = events;
    let also = admission(ledger, t, pool.or(r.pool.as_deref()), &[], ctx, &mut events)?;
    Ok(new_runtime(t, events, ctx, also))
}

fn complete(
    ledger: &Ledger,
    runtime_id: &str,
    reason: &str,
    commit: &Option<String>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    // Allowed on an ended runtime: a controller recovering a max_turns exit is the point.
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("reason", reason, REASON_BYTES_MAX)?;
    optional("commit", commit.as_deref(), KEY_BYTES_MAX)?;
    if r.facts.completed_by_controller {
        return already(t, r.completed_ref.into_iter().collect());
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::RuntimeCompletedByController(
            RuntimeCompletedByController {
                runtime_id: r.id.clone(),
                reason: reason.to_owned(),
                commit: commit.clone(),
            },
        )],
    )
}

/// A live runtime's worker waits for a person; the same kind of wait again (an idle prompt
/// repeats) is a duplicate, not a new event.
fn request_input(
    ledger: &Ledger,
    runtime_id: &str,
    kind: &str,
    message: Option<&str>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("kind", kind, KEY_BYTES_MAX)?;
    optional("message", message, TEXT_BYTES_MAX)?;
    check_version(t, ctx)?;
    if !r.is_live() {
        return Err(ended(r));
    }
    if let Some(w) = r.input_requested.as_ref().filter(|w| w.kind == kind) {
        return already(t, vec![w.event]);
    }
    append(
        t,
        vec![EventData::RuntimeInputRequested(RuntimeInputRequested {
            runtime_id: r.id.clone(),
            kind: kind.to_owned(),
            message: message.map(str::to_owned),
        })],
    )
}

/// Recorded once per runtime; after another ending it is recorded and changes no class.
fn end_session(
    ledger: &Ledger,
    runtime_id: &str,
    reason: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("reason", reason, REASON_BYTES_MAX)?;
    if let Some(at) = r.session_end_ref {
        return already(t, vec![at]);
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::RuntimeSessionEnded(RuntimeSessionEnded {
            runtime_id: r.id.clone(),
            reason: reason.to_owned(),
        })],
    )
}

fn input(
    ledger: &Ledger,
    runtime_id: &str,
    text: &str,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    required("text", text, TEXT_BYTES_MAX)?;
    check_version(t, ctx)?;
    if !r.is_live() {
        return Err(ended(r));
    }
    append(
        t,
        vec![EventData::RuntimeInputSent(RuntimeInputSent {
            runtime_id: r.id.clone(),
            text: text.to_owned(),
        })],
    )
}

fn activity(
    ledger: &Ledger,
    runtime_id: &str,
    note: &Option<String>,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    let (r, t) = find_runtime(ledger, runtime_id)?;
    optional("note", note.as_deref(), REASON_BYTES_MAX)?;
    if !r.is_live() {
        return Err(ended(r));
    }
    let recent = r
        .last_activity_event_at
        .is_some_and(|last| ctx.now.millis().saturating_sub(last.millis()) < ctx.activity_every_ms);
    if recent {
        return Ok(Decision::Coalesced {
            ticket: t.id.clone(),
            runtime_id: r.id.clone(),
        });
    }
    check_version(t, ctx)?;
    append(
        t,
        vec![EventData::RuntimeActivity(RuntimeActivity {
            runtime_id: r.id.clone(),
            note: note.clone(),
        })],
    )
}
