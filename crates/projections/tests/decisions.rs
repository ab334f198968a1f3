//! Given/when/then tables for `decide`: one row per rule of SPEC §6.
//!
//! `given` runs commands that must succeed, `when` builds the command under test (it may need
//! ids the given steps produced), `then` says what must be appended or which code refuses it.

mod common;

use common::*;
use events::{
    ExitReason as X, HarvestOutcome as H, ReapCause, Relation, Resolution, TaskStatus, Verdict,
};
use projections::{Command, Decision, RejectionKind};

enum Then {
    /// Appended exactly these event types.
    Appends(&'static [&'static str]),
    /// Rejected with this code; nothing appended.
    Rejects(&'static str),
    /// 200 duplicate; nothing appended.
    Duplicate,
    /// 202 coalesced; nothing appended.
    Coalesced,
    /// 409 with this code, and a `runtime.signal_rejected` record appended.
    Refuses(&'static str),
}

struct Row {
    name: &'static str,
    given: fn(&mut World),
    when: fn(&World) -> (Command, Option<u64>),
    then: Then,
}

fn nothing(_: &mut World) {}

fn one(w: &mut World) {
    w.run(&human(), open("MC-1", "first"));
}

fn two(w: &mut World) {
    one(w);
    w.run(&human(), open("MC-2", "second"));
}

fn closed(w: &mut World) {
    one(w);
    w.run(&validator(), close("MC-1", Resolution::Done));
}

fn live(w: &mut World) {
    one(w);
    w.run(&orchestrator(), dispatch("MC-1", "pickup-1"));
}

fn ended(w: &mut World) {
    live(w);
    let rt = w.rt("MC-1");
    w.run(&watcher(), reap(&rt, ReapCause::TmuxMissing));
}

fn harvested(w: &mut World) {
    live(w);
    let rt = w.rt("MC-1");
    w.run(&watcher(), harvest(&rt, H::Partial, X::MaxTurns));
}

fn with_task(w: &mut World) {
    one(w);
    w.run(&human(), add_task(Some("T1"), "discovery"));
}

/// Edits MC-1's title and owner, nothing else.
fn edit(title: Option<&str>, owner: Option<&str>) -> Command {
    Command::Edit {
        ticket: id("MC-1"),
        edit: events::TicketEdited {
            title: title.map(str::to_owned),
            description: None,
            priority: None,
            owner: owner.map(str::to_owned),
        },
    }
}

fn add_task(task_id: Option<&str>, title: &str) -> Command {
    Command::AddTask {
        ticket: id("MC-1"),
        task_id: task_id.map(str::to_owned),
        title: title.to_owned(),
    }
}

fn update_task(task_id: &str, status: TaskStatus) -> Command {
    Command::UpdateTask {
        ticket: id("MC-1"),
        task_id: task_id.to_owned(),
        status,
    }
}

/// A signal from MC-1's current runtime with its current nonce.
fn signal_now(w: &World, verdict: Verdict, payload: &str) -> Command {
    signal(&w.rt("MC-1"), verdict, &w.nonce("MC-1"), payload)
}

fn plain(c: Command) -> (Command, Option<u64>) {
    (c, None)
}

fn rows() -> Vec<Row> {
    vec![
        // ---- open ----
        Row {
            name: "open a new ticket",
            given: nothing,
            when: |_| plain(open("MC-1", "t")),
            then: Then::Appends(&["ticket.opened"]),
        },
        Row {
            name: "open an existing id",
            given: one,
            when: |_| plain(open("MC-1", "again")),
            then: Then::Rejects("ticket_exists"),
        },
        Row {
            name: "open with an empty title",
            given: nothing,
            when: |_| plain(open("MC-1", "  ")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "open with a 201-char title",
            given: nothing,
            when: |_| plain(open("MC-1", &"é".repeat(201))),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "open with a 200-char title",
            given: nothing,
            when: |_| plain(open("MC-1", &"é".repeat(200))),
            then: Then::Appends(&["ticket.opened"]),
        },
        Row {
            name: "open expecting an existing stream",
            given: nothing,
            when: |_| (open("MC-1", "t"), Some(3)),
            then: Then::Rejects("version_conflict"),
        },
        // ---- comment ----
        Row {
            name: "comment on an open ticket",
            given: one,
            when: |_| plain(comment("MC-1", "hi")),
            then: Then::Appends(&["ticket.commented"]),
        },
        Row {
            name: "comment on a closed ticket (W.1)",
            given: closed,
            when: |_| plain(comment("MC-1", "post-mortem")),
            then: Then::Appends(&["ticket.commented"]),
        },
        Row {
            name: "comment of 64 KiB",
            given: one,
            when: |_| plain(comment("MC-1", &"x".repeat(64 * 1024))),
            then: Then::Appends(&["ticket.commented"]),
        },
        Row {
            name: "comment over 64 KiB",
            given: one,
            when: |_| plain(comment("MC-1", &"x".repeat(64 * 1024 + 1))),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "comment on an unknown ticket",
            given: nothing,
            when: |_| plain(comment("MC-9", "hi")),
            then: Then::Rejects("ticket_not_found"),
        },
        Row {
            name: "comment with a stale expected_version",
            given: one,
            when: |_| (comment("MC-1", "hi"), Some(0)),
            then: Then::Rejects("version_conflict"),
        },
        Row {
            name: "comment with the right expected_version",
            given: one,
            when: |_| (comment("MC-1", "hi"), Some(1)),
            then: Then::Appends(&["ticket.commented"]),
        },
        // ---- edit ----
        Row {
            name: "edit the title",
            given: one,
            when: |_| plain(edit(Some("new"), None)),
            then: Then::Appends(&["ticket.edited"]),
        },
        Row {
            name: "edit to the same values",
            given: one,
            when: |_| plain(edit(Some("first"), Some("luci"))),
            then: Then::Duplicate,
        },
        Row {
            name: "edit nothing",
            given: one,
            when: |_| plain(edit(None, None)),
            then: Then::Rejects("invalid"),
        },
        // ---- link / unlink ----
        Row {
            name: "link child_of an existing ticket",
            given: two,
            when: |_| plain(link("MC-2", Relation::ChildOf, "MC-1")),
            then: Then::Appends(&["ticket.linked"]),
        },
        Row {
            name: "link to an unknown ticket",
            given: one,
            when: |_| plain(link("MC-1", Relation::BlockedBy, "MC-9")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "link to a malformed id",
            given: one,
            when: |_| plain(link("MC-1", Relation::BlockedBy, "mc 9")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "link to itself",
            given: one,
            when: |_| plain(link("MC-1", Relation::BlockedBy, "MC-1")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "link child_of that closes a cycle",
            given: |w| {
                two(w);
                w.run(&human(), link("MC-2", Relation::ChildOf, "MC-1"));
            },
            when: |_| plain(link("MC-1", Relation::ChildOf, "MC-2")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "link that already exists",
            given: |w| {
                two(w);
                w.run(&human(), link("MC-2", Relation::BlockedBy, "MC-1"));
            },
            when: |_| plain(link("MC-2", Relation::BlockedBy, "MC-1")),
            then: Then::Duplicate,
        },
        Row {
            name: "unlink an existing link",
            given: |w| {
                two(w);
                w.run(&human(), link("MC-2", Relation::BlockedBy, "MC-1"));
            },
            when: |_| plain(unlink("MC-2", Relation::BlockedBy, "MC-1")),
            then: Then::Appends(&["ticket.unlinked"]),
        },
        Row {
            name: "unlink a link that is not there",
            given: two,
            when: |_| plain(unlink("MC-2", Relation::ChildOf, "MC-1")),
            then: Then::Duplicate,
        },
        // ---- park / gate / close / reopen ----
        Row {
            name: "park on another ticket",
            given: two,
            when: |_| plain(park("MC-1", &["MC-2"], "blocked on MC-2")),
            then: Then::Appends(&["ticket.parked"]),
        },
        Row {
            name: "park on free text",
            given: one,
            when: |_| plain(park("MC-1", &["Elmar's approval"], "scope")),
            then: Then::Appends(&["ticket.parked"]),
        },
        Row {
            name: "park on an unknown ticket",
            given: one,
            when: |_| plain(park("MC-1", &["MC-9"], "x")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "park a closed ticket",
            given: closed,
            when: |_| plain(park("MC-1", &[], "x")),
            then: Then::Rejects("ticket_closed"),
        },
        Row {
            name: "record a gate",
            given: one,
            when: |_| {
                plain(Command::Gate {
                    ticket: id("MC-1"),
                    gate: events::GateRecorded {
                        gate: "review".into(),
                        verdict: events::GateVerdict::Passed,
                        commit: None,
                        evidence: None,
                    },
                })
            },
            then: Then::Appends(&["ticket.gate_recorded"]),
        },
        Row {
            name: "close an open ticket",
            given: one,
            when: |_| plain(close("MC-1", Resolution::Done)),
            then: Then::Appends(&["ticket.closed"]),
        },
        Row {
            name: "close a closed ticket",
            given: closed,
            when: |_| plain(close("MC-1", Resolution::Done)),
            then: Then::Rejects("ticket_closed"),
        },
        Row {
            name: "reopen a closed ticket",
            given: closed,
            when: |_| plain(reopen("MC-1")),
            then: Then::Appends(&["ticket.reopened"]),
        },
        Row {
            name: "reopen an open ticket",
            given: one,
            when: |_| plain(reopen("MC-1")),
            then: Then::Rejects("ticket_open"),
        },
        // ---- tasks ----
        Row {
            name: "add a task",
            given: one,
            when: |_| plain(add_task(None, "qa")),
            then: Then::Appends(&["task.added"]),
        },
        Row {
            name: "add the same task again",
            given: with_task,
            when: |_| plain(add_task(Some("T1"), "discovery")),
            then: Then::Duplicate,
        },
        Row {
            name: "add a task id with another title",
            given: with_task,
            when: |_| plain(add_task(Some("T1"), "other")),
            then: Then::Rejects("task_exists"),
        },
        Row {
            name: "update a task",
            given: with_task,
            when: |_| plain(update_task("T1", TaskStatus::Done)),
            then: Then::Appends(&["task.updated"]),
        },
        Row {
            name: "update a task to its status",
            given: with_task,
            when: |_| plain(update_task("T1", TaskStatus::Open)),
            then: Then::Duplicate,
        },
        Row {
            name: "update an unknown task",
            given: one,
            when: |_| plain(update_task("T9", TaskStatus::Done)),
            then: Then::Rejects("task_not_found"),
        },
        // ---- dispatch ----
        Row {
            name: "dispatch an open ticket",
            given: one,
            when: |_| plain(dispatch("MC-1", "k")),
            then: Then::Appends(&["runtime.dispatched"]),
        },
        Row {
            name: "dispatch with the same key (live)",
            given: live,
            when: |_| plain(dispatch("MC-1", "pickup-1")),
            then: Then::Duplicate,
        },
        Row {
            name: "dispatch with the same key, forever (ended and closed)",
            given: |w| {
                ended(w);
                w.wait_min(60 * 24 * 21);
                w.run(&validator(), close("MC-1", Resolution::Done));
            },
            when: |_| (dispatch("MC-1", "pickup-1"), Some(1)),
            then: Then::Duplicate,
        },
        Row {
            name: "dispatch while a runtime is live",
            given: live,
            when: |_| plain(dispatch("MC-1", "pickup-2")),
            then: Then::Rejects("runtime_live"),
        },
        Row {
            name: "dispatch with replace kills the live one",
            given: live,
            when: |_| {
                plain(dispatch_with(
                    "MC-1",
                    "pickup-2",
                    events::Transport::Tmux,
                    true,
                ))
            },
            then: Then::Appends(&["runtime.killed", "runtime.dispatched"]),
        },
        Row {
            name: "dispatch after the runtime ended",
            given: ended,
            when: |_| plain(dispatch("MC-1", "pickup-2")),
            then: Then::Appends(&["runtime.dispatched"]),
        },
        Row {
            name: "dispatch a closed ticket",
            given: closed,
            when: |_| plain(dispatch("MC-1", "k")),
            then: Then::Rejects("ticket_closed"),
        },
        Row {
            name: "dispatch without a key",
            given: one,
            when: |_| plain(dispatch("MC-1", "")),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "dispatch an unknown ticket",
            given: nothing,
            when: |_| plain(dispatch("MC-1", "k")),
            then: Then::Rejects("ticket_not_found"),
        },
        Row {
            name: "dispatch with a stale expected_version",
            given: one,
            when: |_| (dispatch("MC-1", "k"), Some(7)),
            then: Then::Rejects("version_conflict"),
        },
        // ---- signal ----
        Row {
            name: "signal with the current nonce",
            given: live,
            when: |w| plain(signal_now(w, Verdict::Review, "audit done")),
            then: Then::Appends(&["runtime.signaled"]),
        },
        Row {
            name: "signal the same (runtime, nonce, verdict) again",
            given: |w| {
                live(w);
                let (rt, n) = (w.rt("MC-1"), w.nonce("MC-1"));
                w.run(&agent(), signal(&rt, Verdict::Review, &n, "audit done"));
            },
            when: |w| plain(signal_now(w, Verdict::Review, "audit done, resent")),
            then: Then::Duplicate,
        },
        Row {
            name: "signal with the nonce a switch made stale (W.8)",
            given: |w| {
                live(w);
                let (rt, old) = (w.rt("MC-1"), w.nonce("MC-1"));
                w.memo.insert("old_nonce", old);
                w.run(&controller(), switch(&rt));
            },
            when: |w| {
                plain(signal(
                    &w.rt("MC-1"),
                    Verdict::Done,
                    &w.memo["old_nonce"],
                    "done with the old turn",
                ))
            },
            then: Then::Refuses("stale_nonce"),
        },
        Row {
            name: "signal with a nonce never issued",
            given: live,
            when: |w| {
                plain(signal(
                    &w.rt("MC-1"),
                    Verdict::Done,
                    "MC_TICKET_TURN:1:0:deadbeef",
                    "done",
                ))
            },
            then: Then::Refuses("unknown_nonce"),
        },
        Row {
            name: "signal to an ended runtime",
            given: ended,
            when: |w| plain(signal_now(w, Verdict::Done, "done")),
            then: Then::Refuses("runtime_ended"),
        },
        Row {
            name: "signal to an unknown runtime",
            given: live,
            when: |w| plain(signal("rt_nope", Verdict::Done, &w.nonce("MC-1"), "done")),
            then: Then::Rejects("runtime_not_found"),
        },
        // ---- harvest ----
        Row {
            name: "harvest a live runtime",
            given: live,
            when: |w| plain(harvest(&w.rt("MC-1"), H::Completed, X::Success)),
            then: Then::Appends(&["runtime.harvested"]),
        },
        Row {
            name: "harvest after a reap (recovery)",
            given: ended,
            when: |w| plain(harvest(&w.rt("MC-1"), H::Completed, X::Success)),
            then: Then::Appends(&["runtime.harvested"]),
        },
        Row {
            name: "harvest the same result again",
            given: harvested,
            when: |w| plain(harvest(&w.rt("MC-1"), H::Partial, X::MaxTurns)),
            then: Then::Duplicate,
        },
        Row {
            name: "a second, different harvest without a version (W.6)",
            given: harvested,
            when: |w| plain(harvest(&w.rt("MC-1"), H::Failed, X::Error)),
            then: Then::Rejects("version_conflict"),
        },
        Row {
            name: "a second, different harvest with an old version",
            given: harvested,
            when: |w| {
                (
                    harvest(&w.rt("MC-1"), H::Failed, X::Error),
                    Some(w.version("MC-1") - 1),
                )
            },
            then: Then::Rejects("version_conflict"),
        },
        Row {
            name: "a second, different harvest with the current version",
            given: harvested,
            when: |w| {
                (
                    harvest(&w.rt("MC-1"), H::Completed, X::Success),
                    Some(w.version("MC-1")),
                )
            },
            then: Then::Appends(&["runtime.harvested"]),
        },
        Row {
            name: "harvest with an outcome that contradicts the exit",
            given: live,
            when: |w| plain(harvest(&w.rt("MC-1"), H::Completed, X::MaxTurns)),
            then: Then::Rejects("invalid"),
        },
        // ---- reap ----
        Row {
            name: "reap a live runtime",
            given: live,
            when: |w| plain(reap(&w.rt("MC-1"), ReapCause::TmuxMissing)),
            then: Then::Appends(&["runtime.reaped"]),
        },
        Row {
            name: "reap again with the same cause",
            given: ended,
            when: |w| plain(reap(&w.rt("MC-1"), ReapCause::TmuxMissing)),
            then: Then::Duplicate,
        },
        Row {
            name: "reap an ended runtime with a new cause",
            given: harvested,
            when: |w| plain(reap(&w.rt("MC-1"), ReapCause::TmuxMissing)),
            then: Then::Appends(&["runtime.reaped"]),
        },
        // ---- kill / cancel / switch / input / abort ----
        Row {
            name: "kill a live runtime",
            given: live,
            when: |w| plain(kill(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.killed"]),
        },
        Row {
            name: "kill an ended runtime",
            given: ended,
            when: |w| plain(kill(&w.rt("MC-1"))),
            then: Then::Rejects("runtime_ended"),
        },
        Row {
            name: "cancel a live runtime",
            given: live,
            when: |w| plain(cancel(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.cancelled"]),
        },
        Row {
            name: "cancel an ended runtime",
            given: harvested,
            when: |w| plain(cancel(&w.rt("MC-1"))),
            then: Then::Rejects("runtime_ended"),
        },
        Row {
            name: "switch a live runtime",
            given: live,
            when: |w| plain(switch(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.switched"]),
        },
        Row {
            name: "switch an ended runtime",
            given: ended,
            when: |w| plain(switch(&w.rt("MC-1"))),
            then: Then::Rejects("runtime_ended"),
        },
        Row {
            name: "input to a live runtime",
            given: live,
            when: |w| plain(input(&w.rt("MC-1"), "use plan B")),
            then: Then::Appends(&["runtime.input_sent"]),
        },
        Row {
            name: "input to an ended runtime",
            given: ended,
            when: |w| plain(input(&w.rt("MC-1"), "hello?")),
            then: Then::Rejects("runtime_ended"),
        },
        Row {
            name: "abort a launch",
            given: live,
            when: |w| plain(abort_launch(&w.rt("MC-1"), "model smoke test failed")),
            then: Then::Appends(&["runtime.launch_aborted"]),
        },
        // ---- retry ----
        Row {
            name: "retry an ended runtime",
            given: ended,
            when: |w| plain(retry(&w.rt("MC-1"), false)),
            then: Then::Appends(&["runtime.dispatched"]),
        },
        Row {
            name: "retry a live runtime (W.4)",
            given: live,
            when: |w| plain(retry(&w.rt("MC-1"), false)),
            then: Then::Rejects("runtime_live"),
        },
        Row {
            name: "retry on a closed ticket (W.4)",
            given: |w| {
                ended(w);
                w.run(&validator(), close("MC-1", Resolution::Done));
            },
            when: |w| plain(retry(&w.rt("MC-1"), false)),
            then: Then::Rejects("ticket_closed"),
        },
        Row {
            name: "retry the same runtime twice",
            given: |w| {
                ended(w);
                let rt = w.rt("MC-1");
                w.run(&orchestrator(), retry(&rt, false));
            },
            when: |w| plain(retry(&w.view("MC-1").runtime_ids[0], false)),
            then: Then::Duplicate,
        },
        Row {
            name: "retry with resume but no session",
            given: ended,
            when: |w| plain(retry(&w.rt("MC-1"), true)),
            then: Then::Rejects("invalid"),
        },
        Row {
            name: "retry with resume after a harvest",
            given: harvested,
            when: |w| plain(retry(&w.rt("MC-1"), true)),
            then: Then::Appends(&["runtime.dispatched"]),
        },
        // ---- complete ----
        Row {
            name: "complete a partial runtime (controller)",
            given: harvested,
            when: |w| plain(complete(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.completed_by_controller"]),
        },
        Row {
            name: "complete twice",
            given: |w| {
                harvested(w);
                let rt = w.rt("MC-1");
                w.run(&controller(), complete(&rt));
            },
            when: |w| plain(complete(&w.rt("MC-1"))),
            then: Then::Duplicate,
        },
        // ---- activity ----
        Row {
            name: "first activity",
            given: live,
            when: |w| plain(activity(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.activity"]),
        },
        Row {
            name: "activity within 60 s is coalesced",
            given: |w| {
                live(w);
                let rt = w.rt("MC-1");
                w.run(&watcher(), activity(&rt));
                w.sim.advance_ms(59_999);
            },
            when: |w| plain(activity(&w.rt("MC-1"))),
            then: Then::Coalesced,
        },
        Row {
            name: "activity after 60 s is recorded",
            given: |w| {
                live(w);
                let rt = w.rt("MC-1");
                w.run(&watcher(), activity(&rt));
                w.sim.advance_ms(60_000);
            },
            when: |w| plain(activity(&w.rt("MC-1"))),
            then: Then::Appends(&["runtime.activity"]),
        },
        Row {
            name: "activity of an ended runtime",
            given: ended,
            when: |w| plain(activity(&w.rt("MC-1"))),
            then: Then::Rejects("runtime_ended"),
        },
    ]
}

#[test]
fn decision_table() {
    let mut failures = Vec::new();
    let rows = rows();
    for row in &rows {
        let mut w = World::new();
        (row.given)(&mut w);
        let (cmd, expected) = (row.when)(&w);
        let before = w.sim.log.len();
        let result = w.sim.exec_with(&agent(), &cmd, expected);
        let appended: Vec<&str> = w.sim.log[before..].iter().map(|e| e.type_name()).collect();
        let ok = match (&row.then, &result) {
            (Then::Appends(types), Ok(Decision::Append(_))) => appended == *types,
            (Then::Rejects(code), Err(r)) => r.code() == *code && appended.is_empty(),
            (Then::Duplicate, Ok(Decision::Duplicate(_))) => appended.is_empty(),
            (Then::Coalesced, Ok(Decision::Coalesced { .. })) => appended.is_empty(),
            (Then::Refuses(code), Ok(Decision::Refuse { rejection, .. })) => {
                rejection.code() == *code
                    && rejection.kind() == RejectionKind::Conflict
                    && appended == ["runtime.signal_rejected"]
            }
            _ => false,
        };
        if !ok {
            let got = match &result {
                Ok(d) => format!("{d:?}").chars().take(160).collect::<String>(),
                Err(r) => format!("rejected {} ({r})", r.code()),
            };
            failures.push(format!("{}: got {got}; appended {appended:?}", row.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("{} decision rows passed", rows.len());
}

#[test]
fn rejection_kinds_map_to_http_classes() {
    let mut w = World::new();
    let not_found = w.try_run(&human(), comment("MC-1", "x")).unwrap_err();
    assert_eq!(not_found.kind(), RejectionKind::NotFound);
    w.run(&human(), open("MC-1", "t"));
    let invalid = w.try_run(&human(), comment("MC-1", "")).unwrap_err();
    assert_eq!(
        (invalid.code(), invalid.kind()),
        ("invalid", RejectionKind::Invalid)
    );
    let conflict = w.try_run(&human(), open("MC-1", "t")).unwrap_err();
    assert_eq!(conflict.kind(), RejectionKind::Conflict);
}

#[test]
fn runtime_ended_names_the_class() {
    let mut w = World::new();
    harvested(&mut w);
    let rt = w.rt("MC-1");
    let r = w.try_run(&controller(), kill(&rt)).unwrap_err();
    assert_eq!(
        r,
        projections::Rejection::RuntimeEnded {
            runtime_id: rt,
            class: projections::RuntimeClass::Partial
        }
    );
}

#[test]
fn replace_kills_the_old_runtime_in_the_same_append() {
    let mut w = World::new();
    live(&mut w);
    let old = w.rt("MC-1");
    let Decision::Append(a) = w.run(
        &orchestrator(),
        dispatch_with("MC-1", "pickup-2", events::Transport::Tmux, true),
    ) else {
        panic!("expected an append")
    };
    assert_eq!(a.events.len(), 2);
    assert_eq!(a.events[0].runtime_id(), Some(old.as_str()));
    let new = w.view("MC-1").current_runtime.unwrap();
    assert_eq!(new.replaces.as_deref(), Some(old.as_str()));
    assert_eq!(new.attempt, 2);
    assert_eq!(w.class(&old), "killed-by-controller");
    assert_eq!(
        w.sim
            .ledger
            .runtime_view(&old, w.sim.now, &w.sim.config)
            .unwrap()
            .replaced_by,
        Some(new.id)
    );
}

#[test]
fn retry_creates_the_next_attempt_and_answers_duplicates_with_it() {
    let mut w = World::new();
    harvested(&mut w);
    let old = w.rt("MC-1");
    let Decision::Append(a) = w.run(&orchestrator(), retry(&old, true)) else {
        panic!("append")
    };
    let new = w.view("MC-1").current_runtime.unwrap();
    assert_eq!(a.runtime_id.as_deref(), Some(new.id.as_str()));
    assert_eq!(a.nonce.as_deref(), Some(new.nonce.as_str()));
    assert_eq!(
        (new.attempt, new.replaces.as_deref()),
        (2, Some(old.as_str()))
    );
    assert_eq!(new.resume_session.as_deref(), Some("sess-1"));
    let Decision::Duplicate(d) = w.run(&orchestrator(), retry(&old, true)) else {
        panic!("duplicate")
    };
    assert_eq!(d.runtime_id.as_deref(), Some(new.id.as_str()));
    assert_eq!(d.nonce.as_deref(), Some(new.nonce.as_str()));
}

#[test]
fn every_earlier_nonce_of_the_ticket_is_stale() {
    let mut w = World::new();
    live(&mut w);
    let first = w.nonce("MC-1");
    let rt1 = w.rt("MC-1");
    w.run(&watcher(), reap(&rt1, ReapCause::ProcessDead));
    w.run(&orchestrator(), retry(&rt1, false));
    let rt2 = w.rt("MC-1");
    let d = w.run(&agent(), signal(&rt2, Verdict::Done, &first, "done"));
    let Decision::Refuse {
        rejection, record, ..
    } = d
    else {
        panic!("refuse")
    };
    assert_eq!(rejection.code(), "stale_nonce");
    let events::EventData::RuntimeSignalRejected(rec) = &record[0] else {
        panic!("record")
    };
    assert_eq!(rec.reason, events::SignalRejectReason::StaleNonce);
}

#[test]
fn dispatch_duplicates_answer_with_the_original_runtime_and_nonce() {
    let mut w = World::new();
    one(&mut w);
    let Decision::Append(a) = w.run(&orchestrator(), dispatch("MC-1", "pickup")) else {
        panic!("append")
    };
    let nonce = a.nonce.clone().unwrap();
    assert!(nonce.starts_with("MC_TICKET_TURN:1:"), "{nonce}");
    assert_eq!(nonce.rsplit(':').next().map(str::len), Some(8));
    let Decision::Duplicate(d) = w.run(&orchestrator(), dispatch("MC-1", "pickup")) else {
        panic!("dup")
    };
    assert_eq!(d.runtime_id, a.runtime_id);
    assert_eq!(d.nonce, a.nonce);
    assert_eq!(d.events.len(), 1);
    assert_eq!(
        w.sim.log[usize::try_from(d.events[0].position).unwrap() - 1].type_name(),
        "runtime.dispatched"
    );
}
