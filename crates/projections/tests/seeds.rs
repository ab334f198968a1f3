//! The two real tickets in `shared/seeds/` as stories: each step is a row with the state,
//! next action and failure_reason the projection must show right after it.
//!
//! MC-4030: five "Ticket picked up" posts for one pickup, a REVIEW, a park on MC-4031, a
//! reap while parked, then the close. MC-4502: an aborted launch, a max_turns exit recovered
//! by the controller, a tmux reap after the fact, and a validator close that must leave no
//! stale `tmux_session_missing` banner.

mod common;

use common::*;
use events::{
    ExitReason as X, HarvestOutcome as H, Priority, ReapCause, Relation, Resolution, TicketEdited,
    Transport, Verdict,
};
use projections::{timeline, Command, Decision, TicketState as S};

struct Step {
    what: &'static str,
    run: fn(&mut World),
    then: Then,
}

/// What the story's ticket shows right after a step.
struct Then {
    state: S,
    next: &'static str,
    failure: Option<&'static str>,
    /// Alerts expected across the whole ledger after the step, as `kind:ticket`.
    alerts: &'static [&'static str],
}

/// The ticket is in `state` with next action `next`, no failure banner and no alert anywhere.
fn then(state: S, next: &'static str) -> Then {
    Then {
        state,
        next,
        failure: None,
        alerts: &[],
    }
}

impl Then {
    fn failing(mut self, reason: &'static str) -> Then {
        self.failure = Some(reason);
        self
    }
    fn alerting(mut self, alerts: &'static [&'static str]) -> Then {
        self.alerts = alerts;
        self
    }
}

/// Plays the story of ticket `story`: after each step, that ticket shows what the step says.
fn play(story: &str, steps: &[Step]) -> World {
    let mut w = World::new();
    for (i, s) in steps.iter().enumerate() {
        (s.run)(&mut w);
        let v = w.view(story);
        let got = (
            v.state,
            v.next_action.code.as_str(),
            v.failure_reason.as_deref(),
            w.alert_kinds(),
        );
        let t = &s.then;
        let want = (
            t.state,
            t.next,
            t.failure,
            t.alerts.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
        );
        assert_eq!(
            got, want,
            "{story} step {i} ({}): next_action text {:?}",
            s.what, v.next_action.text
        );
    }
    w
}

const KEY_4030: &str = "mc-dispatcher:MC-4030:luci";

fn mc4030_steps() -> Vec<Step> {
    vec![
        Step {
            what: "umbrella MC-4000 and MC-4030 under it",
            run: |w| {
                w.run(&human(), open_umbrella("MC-4000", "Mission control unified recovery loop"));
                w.run(&orchestrator(), open("MC-4030", "MC Runtime Workbench/Console audit + fix loop (umbrella MC-4000)"));
                w.run(&orchestrator(), link("MC-4030", Relation::ChildOf, "MC-4000"));
                w.run(
                    &orchestrator(),
                    Command::Edit {
                        ticket: id("MC-4030"),
                        edit: TicketEdited { title: None, description: None, priority: Some(Priority::High), owner: None },
                    },
                );
            },
            then: then(S::Open, "dispatch"),
        },
        Step {
            what: "five pickups with one dispatch key are one runtime",
            run: |w| {
                let mut runtimes = Vec::new();
                for i in 0..5 {
                    w.wait_min(1);
                    let d = w.run(&orchestrator(), dispatch("MC-4030", KEY_4030));
                    let (rt, dup) = match d {
                        Decision::Append(a) => (a.runtime_id.unwrap(), false),
                        Decision::Duplicate(d) => (d.runtime_id.unwrap(), true),
                        other => panic!("pickup {i}: {other:?}"),
                    };
                    assert_eq!(dup, i > 0, "only the first pickup appends");
                    runtimes.push(rt);
                }
                runtimes.dedup();
                assert_eq!(runtimes.len(), 1);
                assert_eq!(w.view("MC-4030").runtime_ids, runtimes);
                let dispatched = w.sim.log.iter().filter(|e| e.type_name() == "runtime.dispatched").count();
                assert_eq!(dispatched, 1, "one runtime.dispatched in the log");
            },
            then: then(S::InProgress, "working"),
        },
        Step {
            what: "discovery pass, then a REVIEW signal with the turn nonce",
            run: |w| {
                let rt = w.rt("MC-4030");
                w.wait_min(20);
                w.run(&watcher(), activity(&rt));
                let nonce = w.nonce("MC-4030");
                w.run(&agent(), signal(&rt, Verdict::Review, &nonce, "Workbench audit complete; 14 findings, 10-fix Lane A shortlist"));
            },
            then: then(S::Review, "review"),
        },
        Step {
            what: "orchestrator gate: MC-4031 created child_of MC-4030, MC-4030 parked blocked_by MC-4031",
            run: |w| {
                w.run(&orchestrator(), open("MC-4031", "Workbench/Console Lane A implementation"));
                w.run(&orchestrator(), link("MC-4031", Relation::ChildOf, "MC-4030"));
                w.run(&orchestrator(), link("MC-4030", Relation::BlockedBy, "MC-4031"));
                w.run(&orchestrator(), park("MC-4030", &["MC-4031"], "resume after MC-4031 lands for QA/docs/ship gate"));
                assert_eq!(w.view("MC-4030").next_action.text, "Waiting on MC-4031");
            },
            then: then(S::Waiting, "wait"),
        },
        Step {
            what: "the watcher reaps MC-4030's runtime while it waits: no failure, no worker alert",
            run: |w| {
                w.wait_min(90);
                let rt = w.rt("MC-4030");
                w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
                assert_eq!(w.class(&rt), "tmux-missing");
            },
            then: then(S::Waiting, "wait"),
        },
        Step {
            what: "MC-4031 is worked and closed: MC-4030 is ready to resume",
            run: |w| {
                w.run(&orchestrator(), dispatch("MC-4031", "mc-dispatcher:MC-4031:coder"));
                let rt = w.rt("MC-4031");
                w.wait_min(45);
                w.run(&watcher(), harvest(&rt, H::Completed, X::Success));
                w.run(&validator(), close("MC-4031", Resolution::Done));
                assert_eq!(w.view("MC-4030").next_action.text, "Resume: MC-4031 closed");
            },
            then: then(S::Waiting, "resume").alerting(&["ready_to_resume:MC-4030"]),
        },
        Step {
            what: "the orchestrator closes MC-4030",
            run: |w| {
                w.run(&orchestrator(), close("MC-4030", Resolution::Done));
            },
            then: then(S::Done, "none"),
        },
        Step {
            what: "a comment on the closed ticket is accepted (W.1)",
            run: |w| {
                w.run(&human(), comment("MC-4030", "Closing this parent and advancing MC-4000."));
            },
            then: then(S::Done, "none"),
        },
    ]
}

#[test]
fn mc4030_story() {
    let w = play("MC-4030", &mc4030_steps());
    let v = w.view("MC-4030");
    assert_eq!(v.comment_count, 1);
    assert_eq!(v.parent.as_ref().map(|p| p.as_str()), Some("MC-4000"));
    let umbrella = w.view("MC-4000");
    assert_eq!(umbrella.progress.map(|p| (p.done, p.total)), Some((1, 1)));
    assert_eq!(umbrella.children.len(), 1);
    assert_eq!(w.view("MC-4030").children.len(), 1);
}

#[test]
fn mc4030_timeline_shows_the_state_after_each_event() {
    let w = play("MC-4030", &mc4030_steps());
    let rows = timeline(&w.sim.log, &id("MC-4030"), &w.sim.config);
    assert_eq!(
        u64::try_from(rows.len()).unwrap(),
        w.view("MC-4030").version
    );
    let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(
        states,
        [
            "open",
            "open",
            "open", // opened, linked child_of, edited
            "in_progress",
            "in_progress",
            "review", // dispatched, activity, signaled
            "review",
            "waiting",
            "waiting", // linked blocked_by, parked, reaped
            "done",
            "done", // closed, commented
        ]
    );
    // The reap is shown with the class it gave the runtime and without a failure banner.
    let reap = rows
        .iter()
        .find(|r| r.event.type_name() == "runtime.reaped")
        .unwrap();
    assert_eq!(reap.runtime_class.map(|c| c.as_str()), Some("tmux-missing"));
    assert_eq!(reap.failure_reason, None);
    // Right after the close the banner is null and the next action is none.
    let closed = rows
        .iter()
        .find(|r| r.event.type_name() == "ticket.closed")
        .unwrap();
    assert_eq!(
        (
            closed.next_action.code.as_str(),
            closed.failure_reason.as_deref()
        ),
        ("none", None)
    );
}

fn mc4502_steps() -> Vec<Step> {
    vec![
        Step {
            what: "ticket from Elmar's report",
            run: |w| {
                w.run(
                    &human(),
                    open(
                        "MC-4502",
                        "Harden Control Room CLI worker launch/liveness ledger",
                    ),
                );
            },
            then: then(S::Open, "dispatch"),
        },
        Step {
            what: "codex launch aborted by a failed model smoke test",
            run: |w| {
                w.run(
                    &controller(),
                    dispatch_with("MC-4502", "coder-gate:codex", Transport::Process, false),
                );
                let rt = w.rt("MC-4502");
                assert_eq!(w.class(&rt), "starting");
                w.run(
                    &controller(),
                    abort_launch(
                        &rt,
                        "model smoke test failed: gpt-5.5 unsupported under ChatGPT OAuth",
                    ),
                );
                assert_eq!(w.class(&rt), "launch-aborted");
            },
            then: then(S::Open, "retry").failing(
                "launch_aborted: model smoke test failed: gpt-5.5 unsupported under ChatGPT OAuth",
            ),
        },
        Step {
            what: "Claude coder dispatched in tmux: the new runtime replaces the aborted one",
            run: |w| {
                let aborted = w.rt("MC-4502");
                w.run(&controller(), dispatch("MC-4502", "coder-gate:claude"));
                let v = w.view("MC-4502");
                let current = v.current_runtime.unwrap();
                assert_eq!((current.attempt, current.replaces), (2, Some(aborted)));
                let rt = w.rt("MC-4502");
                w.wait_min(5);
                w.run(&watcher(), activity(&rt));
            },
            then: then(S::InProgress, "working"),
        },
        Step {
            what: "max_turns exit: partial, recoverable, no failure",
            run: |w| {
                let rt = w.rt("MC-4502");
                w.wait_min(120);
                w.run(&watcher(), harvest(&rt, H::Partial, X::MaxTurns));
                assert_eq!(w.class(&rt), "partial");
                assert_eq!(
                    w.view("MC-4502").next_action.text,
                    "Recover: partial exit (max_turns)"
                );
            },
            then: then(S::Open, "recover"),
        },
        Step {
            what: "the controller completes the recovered work",
            run: |w| {
                let rt = w.rt("MC-4502");
                w.run(&controller(), complete(&rt));
                assert_eq!(w.class(&rt), "completed-by-controller");
            },
            then: then(S::Open, "validate"),
        },
        Step {
            what: "a later tmux_missing reap changes nothing: still no banner",
            run: |w| {
                let rt = w.rt("MC-4502");
                w.wait_min(30);
                w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
                assert_eq!(w.class(&rt), "completed-by-controller");
            },
            then: then(S::Open, "validate"),
        },
        Step {
            what: "validator gate passes and closes: done, failure_reason null, no alert",
            run: |w| {
                w.run(
                    &validator(),
                    Command::Gate {
                        ticket: id("MC-4502"),
                        gate: events::GateRecorded {
                            gate: "validator".into(),
                            verdict: events::GateVerdict::Passed,
                            commit: Some("1bd1c48".into()),
                            evidence: Some("189 passed + 25 subtests".into()),
                        },
                    },
                );
                w.run(&validator(), close("MC-4502", Resolution::Done));
                w.wait_min(60 * 24 * 12);
            },
            then: then(S::Done, "none"),
        },
    ]
}

#[test]
fn mc4502_story() {
    let w = play("MC-4502", &mc4502_steps());
    let v = w.view("MC-4502");
    assert_eq!(v.gates.len(), 1);
    let exit = v.current_runtime.unwrap().exit.unwrap();
    assert_eq!((exit.turns, exit.cost_usd), (Some(40), Some(3.25)));
}

#[test]
fn umbrella_orchestrator_reaped_raises_no_failure() {
    let mut w = World::new();
    let rt = w.open_and_dispatch(
        open_umbrella("MC-4000", "recovery loop"),
        dispatch_with("MC-4000", "luci-console", Transport::Websocket, false),
    );
    w.wait_min(15);
    assert_eq!(w.class(&rt), "websocket-idle");
    w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
    assert_eq!(w.failure("MC-4000"), None);
    assert!(w.alert_kinds().is_empty(), "{:?}", w.alert_kinds());
    assert_eq!(w.next("MC-4000"), "dispatch");
}

#[test]
fn tmux_missing_on_a_working_ticket_is_a_failure_until_a_close_clears_it_for_good() {
    let mut w = World::new();
    let rt = w.open_and_dispatch(open("MC-7", "plain work"), dispatch("MC-7", "k"));
    w.wait_min(3);
    w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
    assert_eq!(
        (w.state("MC-7"), w.next("MC-7")),
        (S::Open, "retry".to_owned())
    );
    assert_eq!(w.failure("MC-7").as_deref(), Some("tmux_session_missing"));
    let alerts = w.sim.ledger.alerts(w.sim.now, &w.sim.config);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].runtime_id.as_deref()),
        ("worker_lost", Some(rt.as_str()))
    );
    assert_eq!(
        alerts[0].since,
        w.view("MC-7").current_runtime.unwrap().ended_at.unwrap()
    );

    w.run(&validator(), close("MC-7", Resolution::Done));
    assert_eq!(w.failure("MC-7"), None);
    w.run(&human(), reopen("MC-7"));
    assert_eq!(
        w.failure("MC-7"),
        None,
        "reopening does not bring the banner back"
    );
    assert_eq!(w.state("MC-7"), S::Open);
    assert!(w.alert_kinds().is_empty());
    // A harvest arriving late for the old runtime does not bring it back either.
    w.run(&watcher(), harvest(&rt, H::Failed, X::ApiError));
    assert_eq!(w.failure("MC-7"), None);
}

#[test]
fn a_verdict_that_mentions_max_turns_is_still_a_verdict() {
    let mut w = World::new();
    let rt = w.open_and_dispatch(open("MC-8", "t"), dispatch("MC-8", "k"));
    let nonce = w.nonce("MC-8");
    w.run(
        &agent(),
        signal(
            &rt,
            Verdict::Done,
            &nonce,
            "**DONE:** nearly hit max_turns but finished",
        ),
    );
    assert_eq!(
        (w.state("MC-8"), w.next("MC-8")),
        (S::Review, "validate".to_owned())
    );
    assert_eq!(w.class(&rt), "live");
    assert_eq!(w.failure("MC-8"), None);
}
