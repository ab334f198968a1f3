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
        (
            text(),
            opt_text(),
            priority(),
            opt_text(),
            opt_text(),
            any::<bool>(),
            proptest::collection::vec(text(), 0..3)
        )
            .prop_map(
                |(title, description, priority, owner, project, umbrella, labels)| {
                    EventData::TicketOpened(TicketOpened {
                        title,
                        description,
                        priority,
                        owner,
                        project,
                        umbrella,
                        labels,
                    })
                }
            ),
        (
            opt_text(),
            opt_text(),
            proptest::option::of(priority()),
            opt_text()
        )
            .prop_map(
                |(title, description, priority, owner)| EventData::TicketEdited(TicketEdited {
                    title,
                    description,
                    priority,
                    owner
                })
            ),
        text().prop_map(|body| EventData::TicketCommented(TicketCommented { body })),
        (relation(), text()).prop_map(|(relation, target)| EventData::TicketLinked(TicketLinked {
            relation,
            target
        })),
        (relation(), text()).prop_map(|(relation, target)| EventData::TicketUnlinked(
            TicketUnlinked { relation, target }
        )),
        (proptest::collection::vec(text(), 0..3), text()).prop_map(|(waiting_on, reason)| {
            EventData::TicketParked(TicketParked { waiting_on, reason })
        }),
        (
            text(),
            pick(&[
                GateVerdict::Passed,
                GateVerdict::Failed,
                GateVerdict::ChangesRequested
            ]),
            opt_text(),
            opt_text()
        )
            .prop_map(|(gate, verdict, commit, evidence)| EventData::GateRecorded(
                GateRecorded {
                    gate,
                    verdict,
                    commit,
                    evidence
                }
            )),
        (
            pick(&[
                Resolution::Done,
                Resolution::Cancelled,
                Resolution::Duplicate,
                Resolution::Wontfix
            ]),
            opt_text(),
            opt_text()
        )
            .prop_map(|(resolution, commit, evidence)| EventData::TicketClosed(
                TicketClosed {
                    resolution,
                    commit,
                    evidence
                }
            )),
        text().prop_map(|reason| EventData::TicketReopened(TicketReopened { reason })),
        (text(), text())
            .prop_map(|(task_id, title)| EventData::TaskAdded(TaskAdded { task_id, title })),
        (
            text(),
            pick(&[TaskStatus::Open, TaskStatus::InProgress, TaskStatus::Done])
        )
            .prop_map(|(task_id, status)| EventData::TaskUpdated(TaskUpdated { task_id, status })),
        (
            rt(),
            text(),
            any::<u32>(),
            text(),
            opt_text(),
            opt_text(),
            opt_text(),
            pick(&[Transport::Tmux, Transport::Process, Transport::Websocket]),
            opt_text(),
            any::<Option<u32>>(),
            opt_text(),
            (text(), opt_text(), opt_text())
        )
            .prop_map(
                |(
                    runtime_id,
                    dispatch_key,
                    attempt,
                    agent,
                    profile,
                    provider,
                    model,
                    transport,
                    tmux_target,
                    process_id,
                    cwd,
                    (nonce, replaces, resume_session),
                )| EventData::RuntimeDispatched(RuntimeDispatched {
                    runtime_id,
                    dispatch_key,
                    attempt,
                    agent,
                    profile,
                    provider,
                    model,
                    transport,
                    tmux_target,
                    process_id,
                    cwd,
                    nonce,
                    replaces,
                    resume_session
                })
            ),
        (rt(), text(), opt_text()).prop_map(|(runtime_id, reason, detail)| {
            EventData::RuntimeLaunchAborted(RuntimeLaunchAborted {
                runtime_id,
                reason,
                detail,
            })
        }),
        (rt(), opt_text()).prop_map(|(runtime_id, note)| EventData::RuntimeActivity(
            RuntimeActivity { runtime_id, note }
        )),
        (
            rt(),
            pick(&[Verdict::Done, Verdict::Review, Verdict::Question]),
            text(),
            text()
        )
            .prop_map(
                |(runtime_id, verdict, nonce, payload)| EventData::RuntimeSignaled(
                    RuntimeSignaled {
                        runtime_id,
                        verdict,
                        nonce,
                        payload
                    }
                )
            ),
        (
            rt(),
            pick(&[
                SignalRejectReason::StaleNonce,
                SignalRejectReason::UnknownNonce,
                SignalRejectReason::RuntimeEnded,
                SignalRejectReason::EchoedPrompt
            ]),
            opt_text(),
            text()
        )
            .prop_map(|(runtime_id, reason, nonce, excerpt)| {
                EventData::RuntimeSignalRejected(RuntimeSignalRejected {
                    runtime_id,
                    reason,
                    nonce,
                    excerpt,
                })
            }),
        (rt(), text()).prop_map(|(runtime_id, text)| EventData::RuntimeInputSent(
            RuntimeInputSent { runtime_id, text }
        )),
        (
            rt(),
            pick(&[
                HarvestOutcome::Completed,
                HarvestOutcome::Partial,
                HarvestOutcome::Failed
            ]),
            pick(&[
                ExitReason::Success,
                ExitReason::MaxTurns,
                ExitReason::MaxBudget,
                ExitReason::Error,
                ExitReason::ApiError,
                ExitReason::Interrupted,
                ExitReason::NoResult
            ]),
            any::<Option<u32>>(),
            proptest::option::of(0.0f64..1e6),
            opt_text(),
            opt_text(),
            opt_text()
        )
            .prop_map(
                |(
                    runtime_id,
                    outcome,
                    exit_reason,
                    turns,
                    cost_usd,
                    session_id,
                    summary,
                    raw_subtype,
                )| EventData::RuntimeHarvested(RuntimeHarvested {
                    runtime_id,
                    outcome,
                    exit_reason,
                    turns,
                    cost_usd,
                    session_id,
                    summary,
                    raw_subtype
                })
            ),
        (
            rt(),
            pick(&[
                ReapCause::TmuxMissing,
                ReapCause::ProcessDead,
                ReapCause::IdleTimeout,
                ReapCause::TerminalState
            ]),
            opt_text()
        )
            .prop_map(|(runtime_id, cause, evidence)| EventData::RuntimeReaped(
                RuntimeReaped {
                    runtime_id,
                    cause,
                    evidence
                }
            )),
        (rt(), text()).prop_map(
            |(runtime_id, reason)| EventData::RuntimeKilled(RuntimeKilled { runtime_id, reason })
        ),
        (rt(), text(), opt_text()).prop_map(|(runtime_id, reason, commit)| {
            EventData::RuntimeCompletedByController(RuntimeCompletedByController {
                runtime_id,
                reason,
                commit,
            })
        }),
        (rt(), text()).prop_map(|(runtime_id, reason)| EventData::RuntimeCancelled(
            RuntimeCancelled { runtime_id, reason }
        )),
        (rt(), opt_text(), opt_text(), opt_text(), text()).prop_map(
            |(runtime_id, agent, profile, model, nonce)| EventData::RuntimeSwitched(
                RuntimeSwitched {
                    runtime_id,
                    agent,
                    profile,
                    model,
                    nonce
                }
            )
        ),
        (rt(), text(), opt_text()).prop_map(|(runtime_id, kind, message)| {
            EventData::RuntimeInputRequested(RuntimeInputRequested {
                runtime_id,
                kind,
                message,
            })
        }),
        (rt(), text()).prop_map(|(runtime_id, reason)| EventData::RuntimeSessionEnded(
            RuntimeSessionEnded { runtime_id, reason }
        )),
        (
            rt(),
            proptest::collection::vec(
                (
                    opt_text(),
                    any::<u64>(),
                    any::<u64>(),
                    any::<u64>(),
                    proptest::option::of(0.0f64..1e6)
                ),
                0..4
            )
        )
            .prop_map(|(runtime_id, models)| EventData::RuntimeUsageRecorded(
                RuntimeUsageRecorded {
                    runtime_id,
                    models: models
                        .into_iter()
                        .map(
                            |(
                                model,
                                input_tokens,
                                cached_input_tokens,
                                output_tokens,
                                cost_usd,
                            )| {
                                ModelUsage {
                                    model,
                                    input_tokens,
                                    cached_input_tokens,
                                    output_tokens,
                                    cost_usd,
                                }
                            }
                        )
                        .collect(),
                }
            )),
        (text(), any::<u32>()).prop_map(|(name, capacity)| EventData::PoolConfigured(
            PoolConfigured { name, capacity }
        )),
        (rt(), text()).prop_map(
            |(runtime_id, ticket)| EventData::PoolAdmitted(PoolAdmitted { runtime_id, ticket })
        ),
        (rt(), text()).prop_map(
            |(runtime_id, pool)| EventData::RuntimePooled(RuntimePooled { runtime_id, pool })
        ),
        subscription_configured().prop_map(EventData::SubscriptionCreated),
        subscription_configured().prop_map(EventData::SubscriptionChanged),
        (text(), proptest::option::of(text())).prop_map(|(name, reason)| {
            EventData::SubscriptionPaused(SubscriptionPaused { name, reason })
        }),
        text().prop_map(|name| EventData::SubscriptionResumed(SubscriptionNamed { name })),
        (text(), any::<u64>()).prop_map(|(name, from_position)| {
            EventData::SubscriptionReplayed(SubscriptionReplayed {
                name,
                from_position,
            })
        }),
        (text(), text(), any::<u64>(), any::<u32>(), text()).prop_map(
            |(name, delivery_id, position, attempts, error)| {
                EventData::SubscriptionParked(SubscriptionParked {
                    name,
                    delivery_id,
                    position,
                    attempts,
                    error,
                })
            }
        ),
        text().prop_map(|name| EventData::SubscriptionDeleted(SubscriptionNamed { name })),
    ]
}

fn subscription_configured() -> impl Strategy<Value = SubscriptionConfigured> {
    (
        (text(), text(), 0..3u8, proptest::option::of(any::<u64>())),
        (
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
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
