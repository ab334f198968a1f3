//! The event vocabulary: one typed payload per event type of SPEC §4.
//!
//! Every type derives serde (the JSON form clients see) and bincode (the stored form). The
//! JSON form of [`EventData`] is adjacently tagged, so an envelope reads
//! `{"type": "runtime.reaped", "data": {…}}` exactly as SPEC §3 shows it.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who caused an event. Every write names its actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// 1 to 128 bytes; else 422 `invalid_actor`.
    #[schema(min_length = 1)]
    pub name: String,
    pub kind: ActorKind,
}

crate::names! {
    #[derive(Encode, Decode, ToSchema)]
    pub enum ActorKind as "snake_case" { Human, Agent, Orchestrator, Controller, Validator, System }
}

impl ActorKind {
    /// Every kind, in the order of SPEC §12's table.
    pub const SPEC_ORDER: [ActorKind; 6] = [
        ActorKind::Agent,
        ActorKind::System,
        ActorKind::Controller,
        ActorKind::Orchestrator,
        ActorKind::Validator,
        ActorKind::Human,
    ];
}

crate::names! {
    #[derive(Default, Encode, Decode, ToSchema)]
    pub enum Priority as "snake_case" {
        Low,
        #[default]
        Normal,
        High,
        Urgent,
    }

    #[derive(Encode, Decode, ToSchema)]
    pub enum Relation as "snake_case" { ChildOf, BlockedBy }

    #[derive(Encode, Decode, ToSchema)]
    pub enum GateVerdict as "snake_case" { Passed, Failed, ChangesRequested }

    #[derive(Encode, Decode, ToSchema)]
    pub enum Resolution as "snake_case" { Done, Cancelled, Duplicate, Wontfix }

    #[derive(Encode, Decode, ToSchema)]
    pub enum TaskStatus as "snake_case" { Open, InProgress, Done }

    #[derive(Encode, Decode, ToSchema)]
    pub enum Transport as "snake_case" { Tmux, Process, Websocket }

    /// The verdict an agent gives at the end of a turn.
    #[derive(Encode, Decode, ToSchema)]
    pub enum Verdict as "SCREAMING_SNAKE_CASE" { Done, Review, Question }

    #[derive(Encode, Decode, ToSchema)]
    pub enum SignalRejectReason as "snake_case" {
        StaleNonce,
        UnknownNonce,
        RuntimeEnded,
        EchoedPrompt,
    }

    #[derive(Encode, Decode, ToSchema)]
    pub enum HarvestOutcome as "snake_case" { Completed, Partial, Failed }

    #[derive(Encode, Decode, ToSchema)]
    pub enum ExitReason as "snake_case" {
        Success,
        MaxTurns,
        MaxBudget,
        Error,
        ApiError,
        Interrupted,
        NoResult,
    }

    #[derive(Encode, Decode, ToSchema)]
    pub enum ReapCause as "snake_case" {
        TmuxMissing,
        ProcessDead,
        IdleTimeout,
        TerminalState,
    }
}

// ---- ticket payloads ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketOpened {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub umbrella: bool,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketEdited {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketCommented {
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketLinked {
    pub relation: Relation,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketUnlinked {
    pub relation: Relation,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketParked {
    pub waiting_on: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRecorded {
    pub gate: String,
    pub verdict: GateVerdict,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketClosed {
    pub resolution: Resolution,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketReopened {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskAdded {
    pub task_id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdated {
    pub task_id: String,
    pub status: TaskStatus,
}

// ---- runtime payloads (all carry runtime_id) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDispatched {
    pub runtime_id: String,
    pub dispatch_key: String,
    pub attempt: u32,
    pub agent: String,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    pub transport: Transport,
    #[serde(default)]
    pub tmux_target: Option<String>,
    #[serde(default)]
    pub process_id: Option<u32>,
    #[serde(default)]
    pub cwd: Option<String>,
    pub nonce: String,
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(default)]
    pub resume_session: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeLaunchAborted {
    pub runtime_id: String,
    pub reason: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeActivity {
    pub runtime_id: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSignaled {
    pub runtime_id: String,
    pub verdict: Verdict,
    pub nonce: String,
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSignalRejected {
    pub runtime_id: String,
    pub reason: SignalRejectReason,
    #[serde(default)]
    pub nonce: Option<String>,
    pub excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeInputSent {
    pub runtime_id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHarvested {
    pub runtime_id: String,
    pub outcome: HarvestOutcome,
    pub exit_reason: ExitReason,
    #[serde(default)]
    pub turns: Option<u32>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    /// The harvester's own word for the exit when it did not know it (a Claude result subtype
    /// newer than this code), kept so nothing the agent said is lost.
    #[serde(default)]
    pub raw_subtype: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeReaped {
    pub runtime_id: String,
    pub cause: ReapCause,
    #[serde(default)]
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeKilled {
    pub runtime_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeCompletedByController {
    pub runtime_id: String,
    pub reason: String,
    #[serde(default)]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeCancelled {
    pub runtime_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSwitched {
    pub runtime_id: String,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    pub nonce: String,
}

/// The worker waits for a person (Claude Code's `Notification` hook: a permission prompt, or
/// idle at its prompt). An `input` ends the wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeInputRequested {
    pub runtime_id: String,
    /// `permission_prompt`, `idle_prompt`, or what the agent named it.
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// The agent's session ended (Claude Code's `SessionEnd` hook): a terminal fact ranked with
/// the reaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSessionEnded {
    pub runtime_id: String,
    /// `clear`, `logout`, `prompt_input_exit`, `other`, … as the agent reports it.
    pub reason: String,
}

/// Tokens and cost one model spent in a runtime, as the agent's own record reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelUsage {
    /// The model as the agent named it; absent when its record names none (Codex's
    /// `turn.completed`), which reads as the runtime's dispatched model.
    #[serde(default)]
    pub model: Option<String>,
    /// Every input token the model read, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// Of `input_tokens`, those read from the prompt cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// What a harvested run spent, model by model (SPEC §13 cost), appended with the harvest
/// that read it. It states the runtime's whole spend: a later one replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeUsageRecorded {
    pub runtime_id: String,
    pub models: Vec<ModelUsage>,
}

/// A pool and its capacity (SPEC §14), on the pool's own stream ([`crate::ids::pool_stream`]);
/// the first one creates the pool, a later one changes its capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfigured {
    pub name: String,
    pub capacity: u32,
}

/// A runtime took a slot of the pool whose stream this is: the pool stream's half of a
/// dispatch into a pool (the ticket's half is `runtime.pooled`), appended in one append over
/// both streams so that racing dispatches meet on the pool's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolAdmitted {
    pub runtime_id: String,
    /// The runtime's ticket.
    pub ticket: String,
}

/// The runtime dispatched just before, in the same append, holds a slot of `pool` while it is
/// live: the ticket stream's half of a dispatch into a pool. No event frees the slot; the
/// runtime's end does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimePooled {
    pub runtime_id: String,
    pub pool: String,
}

// ---- budgets (SPEC §16), on each budget's own stream ----

crate::names! {
    /// What a budget covers: every runtime, or those of one agent, one ticket owner, one
    /// umbrella's descendants, or one ticket.
    #[derive(Encode, Decode, ToSchema)]
    pub enum BudgetScopeKind as "snake_case" { All, Agent, Owner, Umbrella, Ticket }

    /// How long a budget's spend counts: forever, or until the next UTC midnight or month.
    #[derive(Default, Encode, Decode, ToSchema)]
    pub enum BudgetPeriod as "snake_case" {
        #[default]
        Total,
        Day,
        Month,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    pub kind: BudgetScopeKind,
    /// The agent, owner, umbrella ticket or ticket; absent for `all`.
    #[serde(default)]
    pub value: Option<String>,
}

/// A budget (SPEC §16), on its own stream ([`crate::ids::budget_stream`]): the first one
/// creates it, a later one changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfigured {
    pub name: String,
    pub scope: BudgetScope,
    pub limit_usd: f64,
    pub period: BudgetPeriod,
    /// `budget_near` once spent + reserved reach this share of the limit.
    pub warn_at_pct: u8,
    /// What a dispatch without `max_budget_usd` reserves.
    pub default_reservation_usd: f64,
}

/// A runtime reserved `reservation_usd` of the budget whose stream this is: the budget
/// stream's half of a dispatch in its scope (the ticket's half is `runtime.budgeted`),
/// appended in one append over both streams so that racing dispatches meet on its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetReserved {
    pub runtime_id: String,
    /// The runtime's ticket.
    pub ticket: String,
    pub reservation_usd: f64,
}

/// The runtime dispatched just before, in the same append, may spend `reservation_usd` (the
/// agent's `--max-budget-usd`), reserved in each of `budgets` while it is live; once it ends
/// its harvested spend counts instead. No event releases a reservation: the runtime's end does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeBudgeted {
    pub runtime_id: String,
    pub reservation_usd: f64,
    pub budgets: Vec<String>,
}

// ---- subscriptions (SPEC §15), on each subscription's own stream ----

crate::names! {
    /// The body a subscription's deliveries take.
    #[derive(Default, Encode, Decode, ToSchema)]
    pub enum NoticeFormat as "snake_case" {
        /// The §3 envelope of an event, or an alert notice, as JSON.
        #[default]
        Json,
        /// A Slack incoming-webhook body (`text`, `blocks`).
        Slack,
        /// A Telegram Bot API `sendMessage` body (`chat_id`, `text`, `parse_mode`).
        Telegram,
    }
}

/// What a subscription delivers: events of these types, tickets, umbrella (with its
/// descendants) and agents (every list empty: all), and notices of these alert kinds (empty:
/// none).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umbrella: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

/// A subscription as created or changed. The secret is not here (facts are readable by every
/// reader): `secret_id` names it, and the server keeps the secret beside the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfigured {
    pub name: String,
    pub url: String,
    pub format: NoticeFormat,
    #[serde(default)]
    pub filter: SubscriptionFilter,
    /// Milliseconds between reminders of an alert that stays; absent: no reminders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every_ms: Option<u64>,
    /// Telegram's chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// A fingerprint of the signing secret (16 hex digits of its blake3), never the secret.
    pub secret_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPaused {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `subscription.resumed` and `subscription.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionNamed {
    pub name: String,
}

/// Deliver again from this log position (what was parked, or anything since).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionReplayed {
    pub name: String,
    pub from_position: u64,
}

/// A delivery failed for as long as retries last: the subscription stops before it (nothing
/// after it is skipped) and is failing until it is resumed or replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionParked {
    pub name: String,
    /// The delivery's `webhook-id`.
    pub delivery_id: String,
    /// The log position the delivery stands at (its event's, or the position reached when an
    /// alert notice was due).
    pub position: u64,
    pub attempts: u32,
    pub error: String,
}

/// One typed payload per event type. The order of variants is part of the stored format
/// (bincode writes the variant index): add new types at the end, never reorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "ticket.opened")]
    TicketOpened(TicketOpened),
    #[serde(rename = "ticket.edited")]
    TicketEdited(TicketEdited),
    #[serde(rename = "ticket.commented")]
    TicketCommented(TicketCommented),
    #[serde(rename = "ticket.linked")]
    TicketLinked(TicketLinked),
    #[serde(rename = "ticket.unlinked")]
    TicketUnlinked(TicketUnlinked),
    #[serde(rename = "ticket.parked")]
    TicketParked(TicketParked),
    #[serde(rename = "ticket.gate_recorded")]
    GateRecorded(GateRecorded),
    #[serde(rename = "ticket.closed")]
    TicketClosed(TicketClosed),
    #[serde(rename = "ticket.reopened")]
    TicketReopened(TicketReopened),
    #[serde(rename = "task.added")]
    TaskAdded(TaskAdded),
    #[serde(rename = "task.updated")]
    TaskUpdated(TaskUpdated),
    #[serde(rename = "runtime.dispatched")]
    RuntimeDispatched(RuntimeDispatched),
    #[serde(rename = "runtime.launch_aborted")]
    RuntimeLaunchAborted(RuntimeLaunchAborted),
    #[serde(rename = "runtime.activity")]
    RuntimeActivity(RuntimeActivity),
    #[serde(rename = "runtime.signaled")]
    RuntimeSignaled(RuntimeSignaled),
    #[serde(rename = "runtime.signal_rejected")]
    RuntimeSignalRejected(RuntimeSignalRejected),
    #[serde(rename = "runtime.input_sent")]
    RuntimeInputSent(RuntimeInputSent),
    #[serde(rename = "runtime.harvested")]
    RuntimeHarvested(RuntimeHarvested),
    #[serde(rename = "runtime.reaped")]
    RuntimeReaped(RuntimeReaped),
    #[serde(rename = "runtime.killed")]
    RuntimeKilled(RuntimeKilled),
    #[serde(rename = "runtime.completed_by_controller")]
    RuntimeCompletedByController(RuntimeCompletedByController),
    #[serde(rename = "runtime.cancelled")]
    RuntimeCancelled(RuntimeCancelled),
    #[serde(rename = "runtime.switched")]
    RuntimeSwitched(RuntimeSwitched),
    #[serde(rename = "runtime.input_requested")]
    RuntimeInputRequested(RuntimeInputRequested),
    #[serde(rename = "runtime.session_ended")]
    RuntimeSessionEnded(RuntimeSessionEnded),
    #[serde(rename = "runtime.usage_recorded")]
    RuntimeUsageRecorded(RuntimeUsageRecorded),
    #[serde(rename = "pool.configured")]
    PoolConfigured(PoolConfigured),
    #[serde(rename = "pool.admitted")]
    PoolAdmitted(PoolAdmitted),
    #[serde(rename = "runtime.pooled")]
    RuntimePooled(RuntimePooled),
    #[serde(rename = "subscription.created")]
    SubscriptionCreated(SubscriptionConfigured),
    #[serde(rename = "subscription.changed")]
    SubscriptionChanged(SubscriptionConfigured),
    #[serde(rename = "subscription.paused")]
    SubscriptionPaused(SubscriptionPaused),
    #[serde(rename = "subscription.resumed")]
    SubscriptionResumed(SubscriptionNamed),
    #[serde(rename = "subscription.replayed")]
    SubscriptionReplayed(SubscriptionReplayed),
    #[serde(rename = "subscription.parked")]
    SubscriptionParked(SubscriptionParked),
    #[serde(rename = "subscription.deleted")]
    SubscriptionDeleted(SubscriptionNamed),
    #[serde(rename = "budget.configured")]
    BudgetConfigured(BudgetConfigured),
    #[serde(rename = "budget.reserved")]
    BudgetReserved(BudgetReserved),
    #[serde(rename = "runtime.budgeted")]
    RuntimeBudgeted(RuntimeBudgeted),
}

/// Every event type name, in variant order (the stored discriminant).
pub const EVENT_TYPES: [&str; 39] = [
    "ticket.opened",
    "ticket.edited",
    "ticket.commented",
    "ticket.linked",
    "ticket.unlinked",
    "ticket.parked",
    "ticket.gate_recorded",
    "ticket.closed",
    "ticket.reopened",
    "task.added",
    "task.updated",
    "runtime.dispatched",
    "runtime.launch_aborted",
    "runtime.activity",
    "runtime.signaled",
    "runtime.signal_rejected",
    "runtime.input_sent",
    "runtime.harvested",
    "runtime.reaped",
    "runtime.killed",
    "runtime.completed_by_controller",
    "runtime.cancelled",
    "runtime.switched",
    "runtime.input_requested",
    "runtime.session_ended",
    "runtime.usage_recorded",
    "pool.configured",
    "pool.admitted",
    "runtime.pooled",
    "subscription.created",
    "subscription.changed",
    "subscription.paused",
    "subscription.resumed",
    "subscription.replayed",
    "subscription.parked",
    "subscription.deleted",
    "budget.configured",
    "budget.reserved",
    "runtime.budgeted",
];

/// The event types format 1 knew when its fixtures were written (wave 1).
pub const EVENT_TYPES_WAVE_1: usize = 23;

impl EventData {
    /// The event type name as it appears in JSON and in SSE `event:` lines.
    pub fn type_name(&self) -> &'static str {
        EVENT_TYPES[self.type_index()]
    }

    fn type_index(&self) -> usize {
        match self {
            EventData::TicketOpened(_) => 0,
            EventData::TicketEdited(_) => 1,
            EventData::TicketCommented(_) => 2,
            EventData::TicketLinked(_) => 3,
            EventData::TicketUnlinked(_) => 4,
            EventData::TicketParked(_) => 5,
            EventData::GateRecorded(_) => 6,
            EventData::TicketClosed(_) => 7,
            EventData::TicketReopened(_) => 8,
            EventData::TaskAdded(_) => 9,
            EventData::TaskUpdated(_) => 10,
            EventData::RuntimeDispatched(_) => 11,
            EventData::RuntimeLaunchAborted(_) => 12,
            EventData::RuntimeActivity(_) => 13,
            EventData::RuntimeSignaled(_) => 14,
            EventData::RuntimeSignalRejected(_) => 15,
            EventData::RuntimeInputSent(_) => 16,
            EventData::RuntimeHarvested(_) => 17,
            EventData::RuntimeReaped(_) => 18,
            EventData::RuntimeKilled(_) => 19,
            EventData::RuntimeCompletedByController(_) => 20,
            EventData::RuntimeCancelled(_) => 21,
            EventData::RuntimeSwitched(_) => 22,
            EventData::RuntimeInputRequested(_) => 23,
            EventData::RuntimeSessionEnded(_) => 24,
            EventData::RuntimeUsageRecorded(_) => 25,
            EventData::PoolConfigured(_) => 26,
            EventData::PoolAdmitted(_) => 27,
            EventData::RuntimePooled(_) => 28,
            EventData::SubscriptionCreated(_) => 29,
            EventData::SubscriptionChanged(_) => 30,
            EventData::SubscriptionPaused(_) => 31,
            EventData::SubscriptionResumed(_) => 32,
            EventData::SubscriptionReplayed(_) => 33,
            EventData::SubscriptionParked(_) => 34,
            EventData::SubscriptionDeleted(_) => 35,
            EventData::BudgetConfigured(_) => 36,
            EventData::BudgetReserved(_) => 37,
            EventData::RuntimeBudgeted(_) => 38,
        }
    }

    /// The runtime a runtime event is about; `None` for ticket and task events.
    pub fn runtime_id(&self) -> Option<&str> {
        let id = match self {
            EventData::RuntimeDispatched(e) => &e.runtime_id,
            EventData::RuntimeLaunchAborted(e) => &e.runtime_id,
            EventData::RuntimeActivity(e) => &e.runtime_id,
            EventData::RuntimeSignaled(e) => &e.runtime_id,
            EventData::RuntimeSignalRejected(e) => &e.runtime_id,
            EventData::RuntimeInputSent(e) => &e.runtime_id,
            EventData::RuntimeHarvested(e) => &e.runtime_id,
            EventData::RuntimeReaped(e) => &e.runtime_id,
            EventData::RuntimeKilled(e) => &e.runtime_id,
            EventData::RuntimeCompletedByController(e) => &e.runtime_id,
            EventData::RuntimeCancelled(e) => &e.runtime_id,
            EventData::RuntimeSwitched(e) => &e.runtime_id,
            EventData::RuntimeInputRequested(e) => &e.runtime_id,
            EventData::RuntimeSessionEnded(e) => &e.runtime_id,
            EventData::RuntimeUsageRecorded(e) => &e.runtime_id,
            EventData::RuntimePooled(e) => &e.runtime_id,
            EventData::RuntimeBudgeted(e) => &e.runtime_id,
            _ => return None,
        };
        Some(id)
    }
}

impl EventData {
    /// The subscription a `subscription.*` event is about.
    pub fn subscription_name(&self) -> Option<&str> {
        let name = match self {
            EventData::SubscriptionCreated(e) | EventData::SubscriptionChanged(e) => &e.name,
            EventData::SubscriptionPaused(e) => &e.name,
            EventData::SubscriptionResumed(e) | EventData::SubscriptionDeleted(e) => &e.name,
            EventData::SubscriptionReplayed(e) => &e.name,
            EventData::SubscriptionParked(e) => &e.name,
            _ => return None,
        };
        Some(name)
    }
}
