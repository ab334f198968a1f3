//! Shared generators and helpers for the events crate's tests.
#![allow(dead_code, unreachable_pub)]

use events::*;
use proptest::prelude::*;

pub fn actor() -> Actor {
    Actor {
        name: "tester".into(),
        kind: ActorKind::System,
    }
}

pub fn ticket(s: &str) -> TicketId {
    TicketId::parse(s).expect("valid ticket id")
}

pub fn comment(id: &str, body: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        recorded_at: Timestamp(1_790_000_000_000),
        actor: actor(),
        token_id: None,
        data: EventData::TicketCommented(TicketCommented { body: body.into() }),
    }
}

fn text() -> impl Strategy<Value = String> {
    "[ -~é✔\n]{0,40}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text(), 0..3)
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

pub fn actor_strategy() -> impl Strategy<Value = Actor> {
    (
        "[a-z]{1,12}",
        pick(&[
            ActorKind::Human,
            ActorKind::Agent,
            ActorKind::Orchestrator,
            ActorKind::Controller,
            ActorKind::Validator,
            ActorKind::System,
        ]),
    )
        .prop_map(|(name, kind)| Actor { name, kind })
}

/// A strategy for a `$name { … }` from one strategy per field, each field named once with its
/// strategy. They nest in pairs, as a tuple strategy takes at most twelve.
macro_rules! record {
    ($name:ident { $($field:ident: $strategy:expr),+ $(,)? }) => {
        record!(@strategy $($strategy),+)
            .prop_map(|record!(@pattern $($field),+)| $name { $($field),+ })
    };
    (@strategy $one:expr) => { $one };
    (@strategy $first:expr, $($rest:expr),+) => { ($first, record!(@strategy $($rest),+)) };
    (@pattern $one:ident) => { $one };
    (@pattern $first:ident, $($rest:ident),+) => { ($first, record!(@pattern $($rest),+)) };
}

/// `EventData::$name($name { … })`, as `record!` makes the `$name`.
macro_rules! event {
    ($name:ident $fields:tt) => {
        record!($name $fields).prop_map(EventData::$name)
    };
}

/// Every event type, with arbitrary field values.
pub fn event_data() -> impl Strategy<Value = EventData> {
    let rt = || "rt_[0-9A-Z]{4}";
    let priority = || {
        pick(&[
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ])
    };
    let relation = || pick(&[Relation::ChildOf, Relation::BlockedBy]);
    prop_oneof![
        event!(TicketOpened {
            title: text(),
            description: opt_text(),
            priority: priority(),
            owner: opt_text(),
            project: opt_text(),
            umbrella: any::<bool>(),
            labels: texts(),
        }),
        event!(TicketEdited {
            title: opt_text(),
            description: opt_text(),
            priority: proptest::option::of(priority()),
            owner: opt_text(),
        }),
        event!(TicketCommented { body: text() }),
        event!(TicketLinked {
            relation: relation(),
            target: text(),
        }),
        event!(TicketUnlinked {
            relation: relation(),
            target: text(),
        }),
        event!(TicketParked {
            waiting_on: texts(),
            reason: text(),
        }),
        event!(GateRecorded {
            gate: text(),
            verdict: pick(&[
                GateVerdict::Passed,
                GateVerdict::Failed,
                GateVerdict::ChangesRequested,
            ]),
            commit: opt_text(),
            evidence: opt_text(),
        }),
        event!(TicketClosed {
            resolution: pick(&[
                Resolution::Done,
                Resolution::Cancelled,
                Resolution::Duplicate,
                Resolution::Wontfix,
            ]),
            commit: opt_text(),
            evidence: opt_text(),
        }),
        event!(TicketReopened { reason: text() }),
        event!(TaskAdded {
            task_id: text(),
            title: text(),
        }),
        event!(TaskUpdated {
            task_id: text(),
            status: pick(&[TaskStatus::Open, TaskStatus::InProgress, TaskStatus::Done]),
        }),
        event!(RuntimeDispatched {
            runtime_id: rt(),
            dispatch_key: text(),
            attempt: any::<u32>(),
            agent: text(),
            profile: opt_text(),
            provider: opt_text(),
            model: opt_text(),
            transport: pick(&[Transport::Tmux, Transport::Process, Transport::Websocket]),
            tmux_target: opt_text(),
            process_id: any::<Option<u32>>(),
            cwd: opt_text(),
            nonce: text(),
            replaces: opt_text(),
            resume_session: opt_text(),
        }),
        event!(RuntimeLaunchAborted {
            runtime_id: rt(),
            reason: text(),
            detail: opt_text(),
        }),
        event!(RuntimeActivity {
            runtime_id: rt(),
            note: opt_text(),
        }),
        event!(RuntimeSignaled {
            runtime_id: rt(),
            verdict: pick(&[Verdict::Done, Verdict::Review, Verdict::Question]),
            nonce: text(),
            payload: text(),
        }),
        event!(RuntimeSignalRejected {
            runtime_id: rt(),
            reason: pick(&[
                SignalRejectReason::StaleNonce,
                SignalRejectReason::UnknownNonce,
                SignalRejectReason::RuntimeEnded,
                SignalRejectReason::EchoedPrompt,
            ]),
            nonce: opt_text(),
            excerpt: text(),
        }),
        event!(RuntimeInputSent {
            runtime_id: rt(),
            text: text(),
        }),
        event!(RuntimeHarvested {
            runtime_id: rt(),
            outcome: pick(&[
                HarvestOutcome::Completed,
                HarvestOutcome::Partial,
                HarvestOutcome::Failed,
            ]),
            exit_reason: pick(&[
                ExitReason::Success,
                ExitReason::MaxTurns,
                ExitReason::MaxBudget,
                ExitReason::Error,
                ExitReason::ApiError,
                ExitReason::Interrupted,
                ExitReason::NoResult,
            ]),
            turns: any::<Option<u32>>(),
            cost_usd: proptest::option::of(0.0f64..1e6),
            session_id: opt_text(),
            summary: opt_text(),
            raw_subtype: opt_text(),
        }),
        event!(RuntimeReaped {
            runtime_id: rt(),
            cause: pick(&[
                ReapCause::TmuxMissing,
                ReapCause::ProcessDead,
                ReapCause::IdleTimeout,
                ReapCause::TerminalState,
            ]),
            evidence: opt_text(),
        }),
        event!(RuntimeKilled {
            runtime_id: rt(),
            reason: text(),
        }),
        event!(RuntimeCompletedByController {
            runtime_id: rt(),
            reason: text(),
            commit: opt_text(),
        }),
        event!(RuntimeCancelled {
            runtime_id: rt(),
            reason: text(),
        }),
        event!(RuntimeSwitched {
            runtime_id: rt(),
            agent: opt_text(),
            profile: opt_text(),
            model: opt_text(),
            nonce: text(),
        }),
        event!(RuntimeInputRequested {
            runtime_id: rt(),
            kind: text(),
            message: opt_text(),
        }),
        event!(RuntimeSessionEnded {
            runtime_id: rt(),
            reason: text(),
        }),
        event!(RuntimeUsageRecorded {
            runtime_id: rt(),
            models: proptest::collection::vec(
                record!(ModelUsage {
                    model: opt_text(),
                    input_tokens: any::<u64>(),
                    cached_input_tokens: any::<u64>(),
                    output_tokens: any::<u64>(),
                    cost_usd: proptest::option::of(0.0f64..1e6),
                }),
                0..4
            ),
        }),
        event!(PoolConfigured {
            name: text(),
            capacity: any::<u32>(),
        }),
        event!(PoolAdmitted {
            runtime_id: rt(),
            ticket: text(),
        }),
        event!(RuntimePooled {
            runtime_id: rt(),
            pool: text(),
        }),
        subscription_configured().prop_map(EventData::SubscriptionCreated),
        subscription_configured().prop_map(EventData::SubscriptionChanged),
        event!(SubscriptionPaused {
            name: text(),
            reason: opt_text(),
        }),
        text().prop_map(|name| EventData::SubscriptionResumed(SubscriptionNamed { name })),
        event!(SubscriptionReplayed {
            name: text(),
            from_position: any::<u64>(),
        }),
        event!(SubscriptionParked {
            name: text(),
            delivery_id: text(),
            position: any::<u64>(),
            attempts: any::<u32>(),
            error: text(),
        }),
        text().prop_map(|name| EventData::SubscriptionDeleted(SubscriptionNamed { name })),
    ]
}

fn subscription_configured() -> impl Strategy<Value = SubscriptionConfigured> {
    (
        (text(), text(), 0..3u8, proptest::option::of(any::<u64>())),
        (
            texts(),
            texts(),
            proptest::option::of(text()),
            texts(),
            texts(),
        ),
        (proptest::option::of(text()), text()),
    )
        .prop_map(
            |(
                (name, url, format, remind_every_ms),
                (types, tickets, umbrella, agents, alerts),
                (chat_id, secret_id),
            )| SubscriptionConfigured {
                name,
                url,
                format: [
                    NoticeFormat::Json,
                    NoticeFormat::Slack,
                    NoticeFormat::Telegram,
                ][usize::from(format)],
                filter: SubscriptionFilter {
                    types,
                    tickets,
                    umbrella,
                    agents,
                    alerts,
                },
                remind_every_ms,
                chat_id,
                secret_id,
            },
        )
}

/// One sample of every event type, deterministic: the fixture corpus.
pub fn one_of_each() -> Vec<EventData> {
    let rt = "rt_01JDFIXTURE".to_string();
    vec![
        EventData::TicketOpened(TicketOpened {
            title: "Harden Control Room CLI worker launch".into(),
            description: Some("Root cause follow-up".into()),
            priority: Priority::High,
            owner: Some("luci".into()),
            project: Some("mission-control".into()),
            umbrella: false,
            labels: vec!["runtime".into()],
        }),
        EventData::TicketEdited(TicketEdited {
            title: None,
            description: Some("edited".into()),
            priority: Some(Priority::Urgent),
            owner: None,
        }),
        EventData::TicketCommented(TicketCommented {
            body: "Validator gate complete — MC-4502 landed.".into(),
        }),
        EventData::TicketLinked(TicketLinked {
            relation: Relation::BlockedBy,
            target: "MC-4031".into(),
        }),
        EventData::TicketUnlinked(TicketUnlinked {
            relation: Relation::ChildOf,
            target: "MC-4000".into(),
        }),
        EventData::TicketParked(TicketParked {
            waiting_on: vec!["MC-4031".into()],
            reason: "blocked_by MC-4031".into(),
        }),
        EventData::GateRecorded(GateRecorded {
            gate: "validator".into(),
            verdict: GateVerdict::Passed,
            commit: Some("1bd1c48".into()),
            evidence: Some("189 passed".into()),
        }),
        EventData::TicketClosed(TicketClosed {
            resolution: Resolution::Done,
            commit: Some("1bd1c48".into()),
            evidence: None,
        }),
        EventData::TicketReopened(TicketReopened {
            reason: "regression".into(),
        }),
        EventData::TaskAdded(TaskAdded {
            task_id: "t1".into(),
            title: "Discovery".into(),
        }),
        EventData::TaskUpdated(TaskUpdated {
            task_id: "t1".into(),
            status: TaskStatus::InProgress,
        }),
        EventData::RuntimeDispatched(RuntimeDispatched {
            runtime_id: rt.clone(),
            dispatch_key: "pickup-4030".into(),
            attempt: 1,
            agent: "luci".into(),
            profile: Some("claude_opus_1m_high".into()),
            provider: Some("anthropic".into()),
            model: Some("opus".into()),
            transport: Transport::Tmux,
            tmux_target: Some("mc-4030:0".into()),
            process_id: Some(4242),
            cwd: Some("/home/lucienne/workspace/mission-control".into()),
            nonce: "MC_TICKET_TURN:4030:1779519668441:c133f12c".into(),
            replaces: None,
            resume_session: None,
        }),
        EventData::RuntimeLaunchAborted(RuntimeLaunchAborted {
            runtime_id: rt.clone(),
            reason: "model_smoke_failed".into(),
            detail: Some("gpt-5.5 rejected".into()),
        }),
        EventData::RuntimeActivity(RuntimeActivity {
            runtime_id: rt.clone(),
            note: Some("editing".into()),
        }),
        EventData::RuntimeSignaled(RuntimeSignaled {
            runtime_id: rt.clone(),
            verdict: Verdict::Review,
            nonce: "MC_TICKET_TURN:4030:1779519668441:c133f12c".into(),
            payload: "Workbench audit complete".into(),
        }),
        EventData::RuntimeSignalRejected(RuntimeSignalRejected {
            runtime_id: rt.clone(),
            reason: SignalRejectReason::StaleNonce,
            nonce: Some("MC_TICKET_TURN:4030:1:00000000".into()),
            excerpt: "REVIEW: …".into(),
        }),
        EventData::RuntimeInputSent(RuntimeInputSent {
            runtime_id: rt.clone(),
            text: "approved".into(),
        }),
        EventData::RuntimeHarvested(RuntimeHarvested {
            runtime_id: rt.clone(),
            outcome: HarvestOutcome::Partial,
            exit_reason: ExitReason::MaxTurns,
            turns: Some(200),
            cost_usd: Some(12.5),
            session_id: Some("sess-1".into()),
            summary: None,
            raw_subtype: Some("error_max_turns".into()),
        }),
        EventData::RuntimeReaped(RuntimeReaped {
            runtime_id: rt.clone(),
            cause: ReapCause::TmuxMissing,
            evidence: Some("tmux has-session: can't find session".into()),
        }),
        EventData::RuntimeKilled(RuntimeKilled {
            runtime_id: rt.clone(),
            reason: "replaced".into(),
        }),
        EventData::RuntimeCompletedByController(RuntimeCompletedByController {
            runtime_id: rt.clone(),
            reason: "recovered max-turns partial".into(),
            commit: Some("1bd1c48".into()),
        }),
        EventData::RuntimeCancelled(RuntimeCancelled {
            runtime_id: rt.clone(),
            reason: "operator".into(),
        }),
        EventData::RuntimeSwitched(RuntimeSwitched {
            runtime_id: rt.clone(),
            agent: Some("codex".into()),
            profile: None,
            model: Some("gpt-5.5".into()),
            nonce: "MC_TICKET_TURN:4030:1779519668999:0badf00d".into(),
        }),
        EventData::RuntimeInputRequested(RuntimeInputRequested {
            runtime_id: rt.clone(),
            kind: "permission_prompt".into(),
            message: Some("Claude needs your permission to use Bash".into()),
        }),
        EventData::RuntimeSessionEnded(RuntimeSessionEnded {
            runtime_id: rt.clone(),
            reason: "other".into(),
        }),
        EventData::RuntimeUsageRecorded(RuntimeUsageRecorded {
            runtime_id: rt,
            models: vec![ModelUsage {
                model: Some("claude-sonnet-4-5".into()),
                input_tokens: 48_211,
                cached_input_tokens: 40_960,
                output_tokens: 3_107,
                cost_usd: Some(0.0842),
            }],
        }),
        EventData::PoolConfigured(PoolConfigured {
            name: "gpu".into(),
            capacity: 4,
        }),
        EventData::PoolAdmitted(PoolAdmitted {
            runtime_id: "rt_01JDFIXTURE".into(),
            ticket: "MC-4030".into(),
        }),
        EventData::RuntimePooled(RuntimePooled {
            runtime_id: "rt_01JDFIXTURE".into(),
            pool: "gpu".into(),
        }),
        EventData::SubscriptionCreated(subscription_sample()),
        EventData::SubscriptionChanged(SubscriptionConfigured {
            format: NoticeFormat::Slack,
            ..subscription_sample()
        }),
        EventData::SubscriptionPaused(SubscriptionPaused {
            name: "ops".into(),
            reason: Some("receiver answered 410 Gone".into()),
        }),
        EventData::SubscriptionResumed(SubscriptionNamed { name: "ops".into() }),
        EventData::SubscriptionReplayed(SubscriptionReplayed {
            name: "ops".into(),
            from_position: 12,
        }),
        EventData::SubscriptionParked(SubscriptionParked {
            name: "ops".into(),
            delivery_id: "01JDFIXTUREEVENT".into(),
            position: 12,
            attempts: 31,
            error: "connection refused".into(),
        }),
        EventData::SubscriptionDeleted(SubscriptionNamed { name: "ops".into() }),
    ]
}

fn subscription_sample() -> SubscriptionConfigured {
    SubscriptionConfigured {
        name: "ops".into(),
        url: "https://hooks.example/ops".into(),
        format: NoticeFormat::Json,
        filter: SubscriptionFilter {
            types: vec!["runtime.reaped".into()],
            umbrella: Some("MC-4000".into()),
            alerts: vec!["worker_lost".into()],
            ..SubscriptionFilter::default()
        },
        remind_every_ms: Some(3_600_000),
        chat_id: None,
        secret_id: "0123456789abcdef".into(),
    }
}
