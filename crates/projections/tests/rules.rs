//! One check per projection rule (SPEC §5): runtime class precedence, failure_reason, state and
//! next action, alerts, lists, board, JSON shape, time travel, and tolerance of odd events.

mod common;

use common::*;
use events::{
    EventData, ExitReason as X, HarvestOutcome as H, ReapCause as R, Relation, Resolution,
    RuntimeCancelled, RuntimeCompletedByController, RuntimeKilled, RuntimeLaunchAborted, TicketId,
    Timestamp, Transport, Verdict,
};
use projections::{as_of, Ledger, TicketFilter, TicketState as S};

fn killed(rt: &str) -> EventData {
    EventData::RuntimeKilled(RuntimeKilled {
        runtime_id: rt.into(),
        reason: "stop".into(),
    })
}
fn cancelled(rt: &str) -> EventData {
    EventData::RuntimeCancelled(RuntimeCancelled {
        runtime_id: rt.into(),
        reason: "x".into(),
    })
}
fn completed(rt: &str) -> EventData {
    EventData::RuntimeCompletedByController(RuntimeCompletedByController {
        runtime_id: rt.into(),
        reason: "recovered".into(),
        commit: None,
    })
}
fn aborted(rt: &str) -> EventData {
    EventData::RuntimeLaunchAborted(RuntimeLaunchAborted {
        runtime_id: rt.into(),
        reason: "smoke failed".into(),
        detail: None,
    })
}

/// A world with MC-1 dispatched (tmux); returns its runtime id.
fn working(w: &mut World) -> String {
    w.open_and_dispatch(open("MC-1", "t"), dispatch("MC-1", "k"))
}

/// (name, terminal facts in log order, class, failure_reason)
type ClassRow = (
    &'static str,
    fn(&str) -> Vec<EventData>,
    &'static str,
    Option<&'static str>,
);

#[test]
fn class_precedence() {
    // (terminal facts in log order, class, failure_reason)
    let table: Vec<ClassRow> = vec![
        (
            "harvest completed then tmux reap",
            |r| {
                vec![
                    harvested(r, H::Completed, X::Success),
                    reaped(r, R::TmuxMissing),
                ]
            },
            "completed",
            None,
        ),
        (
            "tmux reap then harvest completed",
            |r| {
                vec![
                    reaped(r, R::TmuxMissing),
                    harvested(r, H::Completed, X::Success),
                ]
            },
            "completed",
            None,
        ),
        (
            "partial then controller completion",
            |r| vec![harvested(r, H::Partial, X::MaxTurns), completed(r)],
            "completed-by-controller",
            None,
        ),
        (
            "killed then harvest failed",
            |r| vec![killed(r), harvested(r, H::Failed, X::Error)],
            "killed-by-controller",
            None,
        ),
        (
            "cancelled then killed",
            |r| vec![cancelled(r), killed(r)],
            "killed-by-controller",
            None,
        ),
        (
            "cancelled then reap",
            |r| vec![cancelled(r), reaped(r, R::ProcessDead)],
            "cancelled",
            None,
        ),
        (
            "launch aborted",
            |r| vec![aborted(r)],
            "launch-aborted",
            Some("launch_aborted: smoke failed"),
        ),
        (
            "launch aborted then process reap",
            |r| vec![aborted(r), reaped(r, R::ProcessDead)],
            "process-dead",
            Some("process_dead"),
        ),
        (
            "two reaps: the latest wins",
            |r| vec![reaped(r, R::TmuxMissing), reaped(r, R::ProcessDead)],
            "process-dead",
            Some("process_dead"),
        ),
        (
            "two harvests: the latest wins",
            |r| {
                vec![
                    harvested(r, H::Failed, X::ApiError),
                    harvested(r, H::Completed, X::Success),
                ]
            },
            "completed",
            None,
        ),
        (
            "harvest failed api_error",
            |r| vec![harvested(r, H::Failed, X::ApiError)],
            "failed",
            Some("agent_failed: api_error"),
        ),
        (
            "harvest failed no_result",
            |r| vec![harvested(r, H::Failed, X::NoResult)],
            "failed",
            Some("agent_failed: no_result"),
        ),
        (
            "harvest partial max_budget",
            |r| vec![harvested(r, H::Partial, X::MaxBudget)],
            "partial",
            None,
        ),
        (
            "reap tmux_missing",
            |r| vec![reaped(r, R::TmuxMissing)],
            "tmux-missing",
            Some("tmux_session_missing"),
        ),
        (
            "reap idle_timeout",
            |r| vec![reaped(r, R::IdleTimeout)],
            "timed-out",
            Some("idle_timeout"),
        ),
        (
            "reap terminal_state",
            |r| vec![reaped(r, R::TerminalState)],
            "closed",
            None,
        ),
        ("killed", |r| vec![killed(r)], "killed-by-controller", None),
    ];
    let mut failures = Vec::new();
    for (name, facts, class, failure) in &table {
        let mut w = World::new();
        let rt = working(&mut w);
        w.sim.append(&id("MC-1"), &watcher(), facts(&rt));
        let got = (w.class(&rt), w.failure("MC-1"));
        if got != ((*class).to_owned(), failure.map(str::to_owned)) {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn live_classes_need_now() {
    let mut w = World::new();
    let rt = w.open_and_dispatch(
        open("MC-1", "t"),
        dispatch_with("MC-1", "k", Transport::Websocket, false),
    );
    assert_eq!(w.class(&rt), "starting");
    w.wait_min(1);
    w.run(&watcher(), activity(&rt));
    assert_eq!(w.class(&rt), "live");
    w.wait_min(9);
    assert_eq!(w.class(&rt), "live");
    w.wait_min(1);
    assert_eq!(w.class(&rt), "websocket-idle");
    // The same silence on tmux is not websocket-idle.
    let tmux = w.open_and_dispatch(open("MC-2", "t"), dispatch("MC-2", "k"));
    w.wait_min(30);
    assert_eq!(w.class(&tmux), "starting");
    // A signal counts as activity.
    let n = w.nonce("MC-1");
    w.run(
        &agent(),
        signal(&rt, Verdict::Question, &n, "which branch?"),
    );
    assert_eq!(w.class(&rt), "live");
}

#[test]
fn failure_reason_needs_a_worker_expected_when_it_ended() {
    // Parked when it ended: no failure, and unparking later does not invent one.
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&human(), open("MC-2", "blocker"));
    w.run(&orchestrator(), park("MC-1", &["MC-2"], "needs MC-2"));
    w.run(&watcher(), reap(&rt, R::ProcessDead));
    assert_eq!(w.failure("MC-1"), None);
    w.run(&validator(), close("MC-2", Resolution::Done));
    assert_eq!(w.next("MC-1"), "resume");
    assert_eq!(w.failure("MC-1"), None);

    // Ended after a reopen while still live at the close: a real, new failure.
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&validator(), close("MC-1", Resolution::Done));
    w.run(&human(), reopen("MC-1"));
    w.run(&watcher(), reap(&rt, R::TmuxMissing));
    assert_eq!(w.failure("MC-1").as_deref(), Some("tmux_session_missing"));

    // Ended while closed, harvested failed after the reopen: still no failure.
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&validator(), close("MC-1", Resolution::Cancelled));
    w.run(&watcher(), reap(&rt, R::TerminalState));
    w.run(&human(), reopen("MC-1"));
    w.run(&watcher(), harvest(&rt, H::Failed, X::Error));
    assert_eq!(
        (w.failure("MC-1"), w.next("MC-1")),
        (None, "dispatch".to_owned())
    );

    // A new dispatch replaces the failed runtime, and its failure goes.
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&watcher(), reap(&rt, R::TmuxMissing));
    assert!(w.failure("MC-1").is_some());
    w.run(&orchestrator(), dispatch("MC-1", "k2"));
    assert_eq!(w.failure("MC-1"), None);
}

#[test]
fn state_and_next_action_follow_the_current_turn() {
    let mut w = World::new();
    let rt = working(&mut w);
    let step = |w: &World| (w.state("MC-1"), w.next("MC-1"));
    assert_eq!(step(&w), (S::InProgress, "working".into()));
    let n = w.nonce("MC-1");
    w.run(
        &agent(),
        signal(&rt, Verdict::Question, &n, "Which branch should I use?"),
    );
    assert_eq!(step(&w), (S::NeedsInput, "answer".into()));
    assert_eq!(
        w.view("MC-1").next_action.text,
        "Answer: Which branch should I use?"
    );
    w.run(&human(), input(&rt, "use master"));
    assert_eq!(step(&w), (S::InProgress, "working".into()));
    w.run(&agent(), signal(&rt, Verdict::Review, &n, "please review"));
    assert_eq!(step(&w), (S::Review, "review".into()));
    w.run(&controller(), switch(&rt));
    assert_eq!(
        step(&w),
        (S::InProgress, "working".into()),
        "a switch starts a new turn"
    );
    let n2 = w.nonce("MC-1");
    assert_ne!(n, n2);
    w.run(&agent(), signal(&rt, Verdict::Done, &n2, "shipped"));
    assert_eq!(step(&w), (S::Review, "validate".into()));
    w.run(&watcher(), harvest(&rt, H::Completed, X::Success));
    assert_eq!(
        step(&w),
        (S::Review, "validate".into()),
        "a DONE stays for the validator"
    );
    w.run(&validator(), close("MC-1", Resolution::Wontfix));
    assert_eq!(step(&w), (S::Cancelled, "none".into()));
    assert_eq!(w.view("MC-1").next_action.text, "Closed: wontfix");

    // A question whose runtime died cannot be answered: retry instead.
    let mut w = World::new();
    let rt = working(&mut w);
    let n = w.nonce("MC-1");
    w.run(&agent(), signal(&rt, Verdict::Question, &n, "?"));
    w.run(&watcher(), reap(&rt, R::ProcessDead));
    assert_eq!(step(&w), (S::Open, "retry".into()));
}

#[test]
fn blocked_and_umbrella_next_actions() {
    let mut w = World::new();
    w.run(&human(), open_umbrella("MC-1", "umbrella"));
    w.run(&human(), open("MC-2", "child a"));
    w.run(&human(), open("MC-3", "child b"));
    w.run(&human(), link("MC-2", Relation::ChildOf, "MC-1"));
    w.run(&human(), link("MC-3", Relation::ChildOf, "MC-1"));
    w.run(&human(), link("MC-3", Relation::BlockedBy, "MC-2"));
    assert_eq!(
        (w.next("MC-3"), w.view("MC-3").next_action.text),
        ("wait".into(), "Blocked by MC-2".into())
    );
    assert_eq!(
        w.view("MC-1").next_action.text,
        "Waiting on children: 0/2 closed"
    );
    w.run(&validator(), close("MC-2", Resolution::Done));
    assert_eq!(w.next("MC-3"), "dispatch");
    w.run(&validator(), close("MC-3", Resolution::Duplicate));
    let v = w.view("MC-1");
    assert_eq!(
        (
            v.next_action.code.as_str(),
            v.progress.map(|p| (p.done, p.total))
        ),
        ("validate", Some((2, 2)))
    );
    assert_eq!(
        w.view("MC-2").progress,
        None,
        "progress is for umbrella tickets"
    );
}

#[test]
fn alerts_with_now() {
    let mut w = World::new();
    let rt = working(&mut w);
    w.wait_min(29);
    assert!(w.alert_kinds().is_empty());
    w.wait_min(1);
    assert_eq!(w.alert_kinds(), ["stale_worker:MC-1"]);
    let n = w.nonce("MC-1");
    w.run(&agent(), signal(&rt, Verdict::Question, &n, "which DB?"));
    assert!(w.alert_kinds().is_empty(), "asking is not being stale");
    w.wait_min(30);
    assert_eq!(w.alert_kinds(), ["unanswered_question:MC-1"]);
    w.run(&human(), input(&rt, "postgres"));
    assert!(w.alert_kinds().is_empty());

    // Parked: no stale worker alert however long it is silent.
    w.run(
        &human(),
        park("MC-1", &["design review"], "waiting for design"),
    );
    w.wait_min(300);
    assert!(w.alert_kinds().is_empty());
    assert_eq!(w.view("MC-1").next_action.text, "Waiting on design review");

    // Three failed attempts within an hour: retry_loop (and worker_lost for the last).
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&watcher(), reap(&rt, R::ProcessDead));
    for i in 0..2 {
        w.wait_min(10);
        let prev = w.rt("MC-1");
        w.run(&orchestrator(), retry(&prev, false));
        let rt = w.rt("MC-1");
        w.wait_min(5);
        let d = if i == 0 {
            harvest(&rt, H::Failed, X::ApiError)
        } else {
            reap(&rt, R::ProcessDead)
        };
        w.run(&watcher(), d);
    }
    assert_eq!(w.alert_kinds(), ["worker_lost:MC-1", "retry_loop:MC-1"]);
    let alerts = w.sim.ledger.alerts(w.sim.now, &w.sim.config);
    assert_eq!(alerts[1].detail, "3 failed attempts within 60 min");
    w.wait_min(60);
    assert_eq!(
        w.alert_kinds(),
        ["worker_lost:MC-1"],
        "the loop is over an hour later"
    );
    assert_eq!(w.view("MC-1").current_runtime.unwrap().attempt, 3);
}

#[test]
fn ticket_lists_filter_and_page_in_natural_id_order() {
    let mut w = World::new();
    for n in [10, 9, 100, 1, 2] {
        w.run(&human(), open(&format!("MC-{n}"), "t"));
    }
    w.run(&human(), open("AB-5", "other project"));
    w.run(&human(), open_umbrella("MC-50", "umbrella"));
    w.run(&human(), link("MC-9", Relation::ChildOf, "MC-50"));
    w.run(&orchestrator(), dispatch("MC-2", "k"));
    let rt = w.rt("MC-2");
    w.run(&watcher(), reap(&rt, R::TmuxMissing));
    w.run(&validator(), close("MC-100", Resolution::Done));

    let (now, cfg) = (w.sim.now, w.sim.config);
    let ids = |p: &projections::TicketPage| {
        p.tickets
            .iter()
            .map(|t| t.id.to_string())
            .collect::<Vec<_>>()
    };
    let all = TicketFilter::default();
    let page = w.sim.ledger.tickets(&all, None, 3, now, &cfg);
    assert_eq!(ids(&page), ["AB-5", "MC-1", "MC-2"]);
    let cursor = TicketId::parse(page.next_cursor.as_deref().unwrap()).unwrap();
    let page = w.sim.ledger.tickets(&all, Some(&cursor), 3, now, &cfg);
    assert_eq!(ids(&page), ["MC-9", "MC-10", "MC-50"]);
    let cursor = TicketId::parse(page.next_cursor.as_deref().unwrap()).unwrap();
    let page = w.sim.ledger.tickets(&all, Some(&cursor), 3, now, &cfg);
    assert_eq!(
        (ids(&page), page.next_cursor),
        (vec!["MC-100".to_owned()], None)
    );

    let f = |filter: TicketFilter| ids(&w.sim.ledger.tickets(&filter, None, 100, now, &cfg));
    assert_eq!(
        f(TicketFilter {
            failing: Some(true),
            ..Default::default()
        }),
        ["MC-2"]
    );
    assert_eq!(
        f(TicketFilter {
            state: Some(S::Done),
            ..Default::default()
        }),
        ["MC-100"]
    );
    assert_eq!(
        f(TicketFilter {
            umbrella: Some(true),
            ..Default::default()
        }),
        ["MC-50"]
    );
    assert_eq!(
        f(TicketFilter {
            parent: Some(id("MC-50")),
            ..Default::default()
        }),
        ["MC-9"]
    );
    assert_eq!(
        f(TicketFilter {
            owner: Some("nobody".into()),
            ..Default::default()
        }),
        Vec::<String>::new()
    );

    let board = w
        .sim
        .ledger
        .board(now, &cfg, projections::BOARD_CLOSED_DEFAULT);
    assert_eq!(board.done.len(), 1);
    assert_eq!(board.open.len(), 6);
    assert_eq!(
        board.column(S::Open)[2].failure_reason.as_deref(),
        Some("tmux_session_missing")
    );

    let runtimes = w
        .sim
        .ledger
        .runtimes(&Default::default(), None, 10, now, &cfg);
    assert_eq!(runtimes.runtimes.len(), 1);
    let live_only = projections::RuntimeFilter {
        live: Some(true),
        ..Default::default()
    };
    assert!(w
        .sim
        .ledger
        .runtimes(&live_only, None, 10, now, &cfg)
        .runtimes
        .is_empty());
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn json_shapes() {
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&watcher(), harvest(&rt, H::Partial, X::MaxTurns));
    let v = serde_json::to_value(w.view("MC-1")).unwrap();
    assert_eq!(
        keys(&v),
        [
            "blocked_by",
            "children",
            "comment_count",
            "cost",
            "cost_total",
            "created_at",
            "current_runtime",
            "description",
            "failure_reason",
            "gates",
            "id",
            "labels",
            "next_action",
            "owner",
            "parent",
            "position",
            "priority",
            "progress",
            "project",
            "resolution",
            "runtime_ids",
            "state",
            "tasks",
            "title",
            "umbrella",
            "updated_at",
            "version",
            "waiting_on",
            "waiting_reason",
        ]
    );
    assert_eq!(
        v["next_action"],
        serde_json::json!({"code": "recover", "text": "Recover: partial exit (max_turns)"})
    );
    assert_eq!(
        v["tasks"]["counts"],
        serde_json::json!({"open": 0, "in_progress": 0, "done": 0, "total": 0})
    );
    assert_eq!(
        v["cost"],
        serde_json::json!({"usd": 3.25, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "runtimes": 1}),
        "a harvest's cost without usage still counts"
    );
    let r = &v["current_runtime"];
    assert_eq!(
        keys(r),
        [
            "agent",
            "attempt",
            "budgets",
            "class",
            "cost",
            "cwd",
            "dispatch_key",
            "ended_at",
            "exit",
            "id",
            "last_activity_at",
            "live",
            "max_budget_usd",
            "model",
            "nonce",
            "pool",
            "process_id",
            "profile",
            "provider",
            "replaced_by",
            "replaces",
            "resume_session",
            "started_at",
            "ticket",
            "tmux_target",
            "transport",
            "usage",
            "verdicts",
        ]
    );
    assert_eq!(r["class"], "partial");
    assert_eq!(
        keys(&r["exit"]),
        ["cost_usd", "exit_reason", "outcome", "session_id", "turns"]
    );
    assert_eq!(r["exit"]["exit_reason"], "max_turns");
    assert_eq!(r["started_at"], "2026-11-02T10:00:00.000Z");

    w.run(&human(), open("MC-2", "t"));
    w.run(&human(), park("MC-2", &["MC-1"], "x"));
    w.run(&validator(), close("MC-1", Resolution::Done));
    let alerts = serde_json::to_value(w.sim.ledger.alerts(w.sim.now, &w.sim.config)).unwrap();
    assert_eq!(
        keys(&alerts[0]),
        ["detail", "kind", "since", "ticket"],
        "runtime_id is left out when absent"
    );
    assert_eq!(alerts[0]["kind"], "ready_to_resume");
    let board = serde_json::to_value(w.sim.ledger.board(w.sim.now, &w.sim.config, 10)).unwrap();
    assert_eq!(
        keys(&board),
        [
            "cancelled",
            "done",
            "in_progress",
            "needs_input",
            "open",
            "review",
            "totals",
            "waiting"
        ]
    );
}

/// Given tickets closed in a known order, when the board is asked with a closed limit, then
/// the closed columns keep the latest closes in id order and the totals count every ticket.
#[test]
fn board_caps_closed_columns_at_the_latest_closes() {
    let mut w = World::new();
    for n in 1..=6 {
        w.run(&human(), open(&format!("MC-{n}"), "t"));
    }
    // Closed in this order: MC-5, MC-2, MC-6 (done), MC-4 (cancelled), then MC-5 reopened
    // and closed again, which makes it the latest close.
    w.run(&validator(), close("MC-5", Resolution::Done));
    w.run(&validator(), close("MC-2", Resolution::Done));
    w.run(&validator(), close("MC-6", Resolution::Done));
    w.run(&validator(), close("MC-4", Resolution::Wontfix));
    w.run(&human(), reopen("MC-5"));
    w.run(&validator(), close("MC-5", Resolution::Done));
    let (now, cfg) = (w.sim.now, w.sim.config);
    let ids = |cards: &[projections::BoardCard]| {
        cards.iter().map(|c| c.id.to_string()).collect::<Vec<_>>()
    };
    let table: &[(usize, &[&str], &[&str])] = &[
        // closed_limit, done column, cancelled column
        (0, &[], &[]),
        (1, &["MC-5"], &["MC-4"]),
        (2, &["MC-5", "MC-6"], &["MC-4"]),
        (3, &["MC-2", "MC-5", "MC-6"], &["MC-4"]),
        (usize::MAX, &["MC-2", "MC-5", "MC-6"], &["MC-4"]),
    ];
    for &(limit, done, cancelled) in table {
        let board = w.sim.ledger.board(now, &cfg, limit);
        assert_eq!(ids(&board.done), done, "done with closed_limit {limit}");
        assert_eq!(
            ids(&board.cancelled),
            cancelled,
            "cancelled with closed_limit {limit}"
        );
        assert_eq!(
            ids(&board.open),
            ["MC-1", "MC-3"],
            "open columns are never capped"
        );
        let t = board.totals;
        assert_eq!(
            (t.open, t.done, t.cancelled),
            (2, 3, 1),
            "closed_limit {limit}"
        );
    }
}

#[test]
fn time_travel_and_snapshots() {
    let mut w = World::new();
    let rt = working(&mut w);
    let mid = w.sim.ledger.position();
    w.run(&watcher(), reap(&rt, R::TmuxMissing));
    w.run(&validator(), close("MC-1", Resolution::Done));
    let then = as_of(&w.sim.log, mid);
    assert_eq!(then.position(), mid);
    assert_eq!(then.status(&id("MC-1")).unwrap().state, S::InProgress);
    assert_eq!(as_of(&w.sim.log, u64::MAX), w.sim.ledger);

    // The snapshot form round-trips, and folding an overlap after loading it is harmless.
    let json = serde_json::to_string(&then).unwrap();
    let mut loaded: Ledger = serde_json::from_str(&json).unwrap();
    assert_eq!(loaded, then);
    for e in &w.sim.log {
        loaded.apply(e);
    }
    assert_eq!(loaded, w.sim.ledger);
}

#[test]
fn odd_events_are_ignored_not_fatal() {
    let mut w = World::new();
    let rt = working(&mut w);
    w.run(&human(), open("MC-2", "t"));
    let before = w.sim.ledger.clone();
    // A runtime event for a runtime nobody dispatched, one filed under the wrong ticket,
    // links to unknown or malformed ids, an event for a ticket never opened, a second open.
    w.sim.append(
        &id("MC-1"),
        &watcher(),
        vec![reaped("rt_ghost", R::TmuxMissing)],
    );
    w.sim
        .append(&id("MC-2"), &watcher(), vec![reaped(&rt, R::TmuxMissing)]);
    w.sim.append(
        &id("MC-1"),
        &human(),
        vec![
            EventData::TicketLinked(events::TicketLinked {
                relation: Relation::ChildOf,
                target: "MC-404".into(),
            }),
            EventData::TicketLinked(events::TicketLinked {
                relation: Relation::BlockedBy,
                target: "not an id".into(),
            }),
            EventData::TicketUnlinked(events::TicketUnlinked {
                relation: Relation::ChildOf,
                target: "MC-405".into(),
            }),
        ],
    );
    w.sim.append(
        &id("MC-99"),
        &human(),
        vec![EventData::TicketCommented(events::TicketCommented {
            body: "?".into(),
        })],
    );
    let Some(projections::Command::Open { opened, .. }) = Some(open("MC-1", "again")) else {
        unreachable!()
    };
    w.sim
        .append(&id("MC-1"), &human(), vec![EventData::TicketOpened(opened)]);
    assert_eq!(
        w.class(&rt),
        "starting",
        "the misfiled reap did not end MC-1's runtime"
    );
    assert_eq!(w.view("MC-1").title, "t");
    assert_eq!(w.state("MC-1"), S::InProgress);
    assert!(!w.sim.ledger.contains_ticket(&id("MC-99")));
    assert_eq!(w.sim.ledger.ticket_count(), before.ticket_count());
    // Replaying an event at or before the position changes nothing.
    let snapshot = w.sim.ledger.clone();
    let first = w.sim.log[0].clone();
    w.sim.ledger.apply(&first);
    assert_eq!(w.sim.ledger, snapshot);
    // The link to MC-404 is kept and counts once MC-404 exists (an import out of order).
    w.run(&human(), open("MC-404", "late"));
    assert_eq!(w.view("MC-404").children, [id("MC-1")]);
}

#[test]
fn fold_throughput_smoke() {
    // A rough number for the log, not a gate: debug builds are far slower than release.
    // `MC_FOLD_BENCH_TICKETS=20000 cargo test --release … fold_throughput -- --nocapture`
    // gives a warm figure worth quoting.
    let tickets: usize = std::env::var("MC_FOLD_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut w = World::new();
    for t in 1..=tickets {
        let ticket = format!("MC-{t}");
        w.run(&human(), open(&ticket, "t"));
        w.run(&orchestrator(), dispatch(&ticket, "k"));
        let rt = w.rt(&ticket);
        let nonce = w.nonce(&ticket);
        for i in 0..20 {
            w.sim.advance_ms(61_000);
            w.run(&watcher(), activity(&rt));
            w.run(&human(), comment(&ticket, "progress"));
            if i == 10 {
                w.run(
                    &agent(),
                    signal(&rt, Verdict::Question, &nonce, "which branch?"),
                );
                w.run(&human(), input(&rt, "master"));
            }
        }
        w.run(&watcher(), harvest(&rt, H::Completed, X::Success));
        w.run(&watcher(), reap(&rt, R::TmuxMissing));
        w.run(&validator(), close(&ticket, Resolution::Done));
    }
    let _cold = Ledger::fold(&w.sim.log);
    let start = std::time::Instant::now();
    let ledger = Ledger::fold(&w.sim.log);
    let elapsed = start.elapsed();
    assert_eq!(ledger, w.sim.ledger);
    let n = w.sim.log.len();
    let rate = f64::from(u32::try_from(n).unwrap_or(u32::MAX)) / elapsed.as_secs_f64().max(1e-9);
    println!("folded {n} events in {elapsed:?} ({rate:.0} events/s)");
    let _ = Timestamp(0);
}

/// The hand-off rule (SPEC §5.4 amended): given a worker's last word on its current turn, when
/// its runtime ends this way, then the banner and the worker alerts are (or are not) raised.
#[test]
fn a_reap_after_done_or_review_is_a_hand_off_not_a_failure() {
    type Ending = fn(&str) -> projections::Command;
    /// (given, last verdict, input sent after it, ending, failure_reason)
    type Row = (
        &'static str,
        Option<Verdict>,
        bool,
        Ending,
        Option<&'static str>,
    );
    let rows: &[Row] = &[
        // (given, last verdict, input sent after it, ending, failure_reason)
        (
            "REVIEW, then its tmux session goes",
            Some(Verdict::Review),
            false,
            |rt| reap(rt, R::TmuxMissing),
            None,
        ),
        (
            "DONE, then its process dies",
            Some(Verdict::Done),
            false,
            |rt| reap(rt, R::ProcessDead),
            None,
        ),
        (
            "REVIEW, then idle until reaped",
            Some(Verdict::Review),
            false,
            |rt| reap(rt, R::IdleTimeout),
            None,
        ),
        (
            "a QUESTION is still waiting for an answer",
            Some(Verdict::Question),
            false,
            |rt| reap(rt, R::TmuxMissing),
            Some("tmux_session_missing"),
        ),
        (
            "REVIEW, then input starts a new turn",
            Some(Verdict::Review),
            true,
            |rt| reap(rt, R::TmuxMissing),
            Some("tmux_session_missing"),
        ),
        (
            "no verdict at all",
            None,
            false,
            |rt| reap(rt, R::TmuxMissing),
            Some("tmux_session_missing"),
        ),
        (
            "REVIEW, then a harvest that failed",
            Some(Verdict::Review),
            false,
            |rt| harvest(rt, H::Failed, X::Error),
            Some("agent_failed: error"),
        ),
    ];
    for (given, verdict, input_after, ending, want) in rows {
        let mut w = World::new();
        let rt = working(&mut w);
        if let Some(v) = verdict {
            let n = w.nonce("MC-1");
            w.run(&agent(), signal(&rt, *v, &n, "words"));
        }
        if *input_after {
            w.run(&controller(), input(&rt, "one more thing"));
        }
        w.wait_min(45);
        w.run(&watcher(), ending(&rt));
        assert_eq!(w.failure("MC-1").as_deref(), *want, "given {given}");
        let worker_alerts: Vec<String> = w
            .alert_kinds()
            .into_iter()
            .filter(|k| k.starts_with("worker_lost") || k.starts_with("stale_worker"))
            .collect();
        let lost = *want == Some("tmux_session_missing");
        assert_eq!(
            !worker_alerts.is_empty(),
            lost,
            "given {given}: {worker_alerts:?}"
        );
    }
}

fn end_session(rt: &str) -> projections::Command {
    projections::Command::EndSession {
        runtime_id: rt.into(),
        reason: "other".into(),
    }
}

/// `runtime.session_ended` ranks with the reaps: given the facts in order, then the class and
/// the banner (§5.1, §5.4).
#[test]
fn a_session_end_ranks_with_the_reaps() {
    type Step = fn(&str) -> projections::Command;
    let rows: &[(&str, &[Step], &str, Option<&str>)] = &[
        (
            "the session ends, nothing said",
            &[end_session],
            "session-ended",
            Some("session_ended: other"),
        ),
        (
            "a harvest, then the session ends",
            &[|rt| harvest(rt, H::Completed, X::Success), end_session],
            "completed",
            None,
        ),
        (
            "the session ends, then a harvest",
            &[end_session, |rt| harvest(rt, H::Completed, X::Success)],
            "completed",
            None,
        ),
        (
            "a reap, then the session ends",
            &[|rt| reap(rt, R::TmuxMissing), end_session],
            "session-ended",
            Some("session_ended: other"),
        ),
        (
            "killed, then the session ends",
            &[kill, end_session],
            "killed-by-controller",
            None,
        ),
    ];
    for (given, steps, class, failure) in rows {
        let mut w = World::new();
        let rt = working(&mut w);
        for step in *steps {
            w.run(&controller(), step(&rt));
        }
        assert_eq!(w.class(&rt), *class, "given {given}");
        assert_eq!(w.failure("MC-1").as_deref(), *failure, "given {given}");
    }
}

#[test]
fn an_input_request_is_answered_by_input() {
    let mut w = World::new();
    let rt = working(&mut w);
    let ask = projections::Command::RequestInput {
        runtime_id: rt.clone(),
        kind: "idle_prompt".into(),
        message: Some("Claude is waiting for your input".into()),
    };
    w.run(&agent(), ask.clone());
    assert_eq!(
        (w.state("MC-1"), w.next("MC-1")),
        (S::NeedsInput, "answer".to_owned())
    );
    assert!(
        matches!(w.run(&agent(), ask), projections::Decision::Duplicate(_)),
        "the same wait again"
    );
    w.wait_min(31);
    assert!(w
        .alert_kinds()
        .iter()
        .any(|k| k.starts_with("unanswered_question")));
    w.run(&controller(), input(&rt, "go on"));
    assert_eq!(w.state("MC-1"), S::InProgress);
    assert!(w.alert_kinds().is_empty(), "{:?}", w.alert_kinds());
}
