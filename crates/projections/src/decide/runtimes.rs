//! Runtime commands: dispatch, signal, harvest, reap, kill, cancel, switch, retry, complete,
//! input, activity, and what agents' hooks report.

use events::{
    EventData, ExitReason, HarvestOutcome, ModelUsage, ReapCause, RuntimeActivity,
    RuntimeCancelled, RuntimeCompletedByController, RuntimeDispatched, RuntimeHarvested,
    RuntimeInputRequested, RuntimeInputSent, RuntimeKilled, RuntimeLaunchAborted, RuntimeReaped,
    RuntimeSessionEnded, RuntimeSignalRejected, RuntimeSignaled, RuntimeSwitched,
    RuntimeUsageRecorded, SignalRejectReason, Verdict,
};

use crate::ledger::{Ledger, Runtime, Ticket};

use crate::limits::{
    excerpt, EVIDENCE_BYTES_MAX, KEY_BYTES_MAX, NAME_BYTES_MAX, PATH_BYTES_MAX, REASON_BYTES_MAX,
    REJECTED_EXCERPT_BYTES_MAX, TEXT_BYTES_MAX, USAGE_MODELS_MAX,
};

use super::budgets::reservation;
use super::checks::*;
use super::pools::*;
use super::types::*;

pub(super) fn next_attempt(t: &Ticket) -> u32 {
    u32::try_from(t.runtimes.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

pub(super) fn dispatch(
    ledger: &Ledger,
    cmd: &Command,
    ctx: &Context,
) -> Result<Decision, Rejection> {
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
        max_budget_usd,
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
    still_open(t)?;
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
    let mut also = admission(ledger, t, pool.as_deref(), &freed, ctx, &mut events)?;
    also.extend(reservation(
        ledger,
        t,
        agent,
        *max_budget_usd,
        &freed,
        ctx,
        &mut events,
    )?);
    Ok(new_runtime(t, events, ctx, also))
}

pub(super) fn live_runtimes<'a>(
    ledger: &'a Ledger,
    t: &'a Ticket,
) -> impl Iterator<Item = &'a Runtime> + 'a {
    t.runtimes
        .iter()
        .filter_map(|id| ledger.runtimes.get(id))
        .filter(|r| r.is_live())
}

pub(super) fn duplicate_runtime(t: &Ticket, r: &Runtime) -> Decision {
    Decision::Duplicate(Duplicate {
        ticket: t.id.clone(),
        version: t.version,
        events: vec![r.dispatched],
        runtime_id: Some(r.id.clone()),
        nonce: Some(r.nonce.clone()),
    })
}

pub(super) fn new_runtime(
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

pub(super) fn signal(
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
pub(super) fn consistent(outcome: HarvestOutcome, exit: ExitReason) -> bool {
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

pub(super) fn harvest(
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
pub(super) fn usage_is_valid(usage: &[ModelUsage]) -> Result<(), Rejection> {
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

pub(super) fn reap(
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
    record(
        t,
        ctx,
        EventData::RuntimeReaped(RuntimeReaped {
            runtime_id: r.id.clone(),
            cause,
            evidence: evidence.clone(),
        }),
    )
}

pub(super) enum Ending<'a> {
    Kill,
    Cancel,
    AbortLaunch(Option<&'a str>),
}

pub(super) fn end_live(
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

pub(super) fn switch(
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
pub(super) fn retry_key(runtime_id: &str) -> String {
    format!("retry:{runtime_id}")
}

pub(super) fn retry(ledger: &Ledger, cmd: &Command, ctx: &Context) -> Result<Decision, Rejection> {
    let Command::Retry {
        runtime_id,
        resume,
        pool,
        max_budget_usd,
    } = cmd
    else {
        return Err(Rejection::invalid("command", "not a retry"));
    };
    let (resume, pool) = (*resume, pool.as_deref());
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
    still_open(t)?;
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
    let mut also = admission(ledger, t, pool.or(r.pool.as_deref()), &[], ctx, &mut events)?;
    let inherited = r.budget.as_ref().map(|b| crate::cost::usd(b.nanos));
    also.extend(reservation(
        ledger,
        t,
        &r.agent,
        max_budget_usd.or(inherited),
        &[],
        ctx,
        &mut events,
    )?);
    Ok(new_runtime(t, events, ctx, also))
}

pub(super) fn complete(
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
    record(
        t,
        ctx,
        EventData::RuntimeCompletedByController(RuntimeCompletedByController {
            runtime_id: r.id.clone(),
            reason: reason.to_owned(),
            commit: commit.clone(),
        }),
    )
}

/// A live runtime's worker waits for a person; the same kind of wait again (an idle prompt
/// repeats) is a duplicate, not a new event.
pub(super) fn request_input(
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
pub(super) fn end_session(
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
    record(
        t,
        ctx,
        EventData::RuntimeSessionEnded(RuntimeSessionEnded {
            runtime_id: r.id.clone(),
            reason: reason.to_owned(),
        }),
    )
}

pub(super) fn input(
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

pub(super) fn activity(
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
    record(
        t,
        ctx,
        EventData::RuntimeActivity(RuntimeActivity {
            runtime_id: r.id.clone(),
            note: note.clone(),
        }),
    )
}
