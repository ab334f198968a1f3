//! Budgets (SPEC §16) as given/when/then rows: reservations while live, spend once ended,
//! periods rolling over, scopes (an umbrella's budget covers its descendants), retry and
//! replace, refusals that append nothing, and the two alerts.

mod common;

use common::*;
use events::{
    BudgetPeriod, BudgetScope, BudgetScopeKind as S, ExitReason as X, HarvestOutcome as H, Relation,
};
use projections::{BudgetRequest, Command, Decision, Rejection};

fn budget(name: &str, kind: S, value: Option<&str>, limit: f64, period: BudgetPeriod) -> Command {
    Command::ConfigureBudget {
        budget: BudgetRequest {
            name: name.to_owned(),
            scope: BudgetScope {
                kind,
                value: value.map(str::to_owned),
            },
            limit_usd: limit,
            period,
            warn_at_pct: None,
            default_reservation_usd: Some(1.0),
        },
    }
}

fn all(limit: f64) -> Command {
    budget("team", S::All, None, limit, BudgetPeriod::Total)
}

fn dispatch_max(ticket: &str, key: &str, max: Option<f64>) -> Command {
    let mut d = dispatch(ticket, key);
    if let Command::Dispatch { max_budget_usd, .. } = &mut d {
        *max_budget_usd = max;
    }
    d
}

fn with_agent(mut d: Command, name: &str) -> Command {
    if let Command::Dispatch { agent, .. } = &mut d {
        *agent = name.to_owned();
    }
    d
}

/// (spent, reserved, remaining) of a budget now.
fn standing(w: &World, name: &str) -> (f64, f64, f64) {
    let b = w.sim.ledger.budget(name, w.sim.now).expect("budget");
    (b.spent_usd, b.reserved_usd, b.remaining_usd)
}

fn tickets(w: &mut World, ids: &[&str]) {
    for t in ids {
        w.run(&orchestrator(), open(t, "t"));
    }
}

/// A world with the budget "team" over everything, of `limit` dollars, and tickets `ids` open.
fn budgeted(limit: f64, ids: &[&str]) -> World {
    let mut w = World::new();
    w.run(&orchestrator(), all(limit));
    tickets(&mut w, ids);
    w
}

/// Dispatches `ticket` with key "k", asking at most `max` dollars: the runtime's id.
fn dispatched(w: &mut World, ticket: &str, max: Option<f64>) -> String {
    w.run(&orchestrator(), dispatch_max(ticket, "k", max));
    w.rt(ticket)
}

/// Given a budget, when runs start and end, then reserved and spent follow their facts.
#[test]
fn reservations_while_live_spend_once_ended() {
    type Step = fn(&mut World);
    let rows: [(&str, Step, (f64, f64, f64)); 6] = [
        (
            "a dispatch asking $4 reserves $4",
            |w| {
                w.run(&orchestrator(), dispatch_max("MC-1", "k", Some(4.0)));
            },
            (0.0, 4.0, 6.0),
        ),
        (
            "a dispatch asking nothing reserves the default",
            |w| {
                w.run(&orchestrator(), dispatch_max("MC-1", "k", None));
            },
            (0.0, 1.0, 9.0),
        ),
        (
            "a harvest turns the reservation into its spend",
            |w| {
                let rt = dispatched(w, "MC-1", Some(4.0));
                w.run(&controller(), harvest(&rt, H::Completed, X::Success));
            },
            (3.25, 0.0, 6.75),
        ),
        (
            "a run that spent past its reservation counts what it spent",
            |w| {
                let rt = dispatched(w, "MC-1", Some(1.0));
                w.run(&controller(), harvest(&rt, H::Partial, X::MaxBudget));
            },
            (3.25, 0.0, 6.75),
        ),
        (
            "a kill without a harvest spent nothing known",
            |w| {
                let rt = dispatched(w, "MC-1", Some(4.0));
                w.run(&controller(), kill(&rt));
            },
            (0.0, 0.0, 10.0),
        ),
        (
            "a harvest after a reap corrects the spend",
            |w| {
                let rt = dispatched(w, "MC-1", Some(4.0));
                w.run(&watcher(), reap(&rt, events::ReapCause::TmuxMissing));
                w.run(&watcher(), harvest(&rt, H::Failed, X::Error));
            },
            (3.25, 0.0, 6.75),
        ),
    ];
    for (name, when, then) in rows {
        let mut w = budgeted(10.0, &["MC-1"]);
        when(&mut w);
        assert_eq!(standing(&w, "team"), then, "{name}");
    }
}

#[test]
fn a_dispatch_past_the_remainder_is_refused_and_appends_nothing() {
    let mut w = budgeted(5.0, &["MC-1", "MC-2"]);
    w.run(&orchestrator(), dispatch_max("MC-1", "k", Some(4.0)));
    let before = w.sim.log.len();
    let refused = w
        .try_run(&orchestrator(), dispatch_max("MC-2", "k", Some(2.0)))
        .unwrap_err();
    assert_eq!(refused.code(), "budget_exhausted");
    assert_eq!(
        refused,
        Rejection::BudgetExhausted(projections::BudgetShortfall {
            budget: "team".into(),
            limit_usd: 5.0,
            spent_usd: 0.0,
            reserved_usd: 4.0,
            reservation_usd: 2.0,
        })
    );
    assert_eq!(w.sim.log.len(), before, "nothing appended");
    // Exactly the remainder fits.
    w.run(&orchestrator(), dispatch_max("MC-2", "k", Some(1.0)));
    assert_eq!(standing(&w, "team"), (0.0, 5.0, 0.0));
}

#[test]
fn a_dispatch_writes_each_covering_budget_at_its_version() {
    let mut w = World::new();
    w.run(&orchestrator(), all(10.0));
    w.run(
        &orchestrator(),
        budget("claude", S::Agent, Some("claude"), 10.0, BudgetPeriod::Day),
    );
    tickets(&mut w, &["MC-1"]);
    let Decision::Append(a) = w.run(&orchestrator(), dispatch_max("MC-1", "k", Some(2.5))) else {
        panic!("appended")
    };
    let types: Vec<&str> = a.events.iter().map(|e| e.type_name()).collect();
    assert_eq!(types, ["runtime.dispatched", "runtime.budgeted"]);
    assert_eq!(a.also.len(), 2);
    for also in &a.also {
        assert_eq!(also.events[0].type_name(), "budget.reserved");
        assert_eq!(also.expected_version, 1, "{}", also.ticket);
    }
    let rt = w.rt("MC-1");
    let view = w
        .sim
        .ledger
        .runtime_view(&rt, w.sim.now, &w.sim.config)
        .unwrap();
    assert_eq!(view.max_budget_usd, Some(2.5));
    assert_eq!(view.budgets, ["claude", "team"]);
}

#[test]
fn periods_roll_over_at_utc_midnight_and_month_start() {
    for (period, wait_min, rolled) in [
        (BudgetPeriod::Day, 60, false),
        (BudgetPeriod::Day, 24 * 60, true),
        (BudgetPeriod::Month, 24 * 60, false),
        (BudgetPeriod::Month, 31 * 24 * 60, true),
        (BudgetPeriod::Total, 400 * 24 * 60, false),
    ] {
        let mut w = World::new();
        w.run(&orchestrator(), budget("b", S::All, None, 5.0, period));
        tickets(&mut w, &["MC-1"]);
        let rt = dispatched(&mut w, "MC-1", Some(4.0));
        w.run(&controller(), harvest(&rt, H::Completed, X::Success));
        w.wait_min(wait_min);
        let spent = if rolled { 0.0 } else { 3.25 };
        let row = format!("{period:?} after {wait_min} min");
        assert_eq!(standing(&w, "b").0, spent, "{row}");
        let next = w.try_run(&orchestrator(), dispatch_max("MC-1", "k2", Some(4.0)));
        assert_eq!(
            next.is_ok(),
            rolled,
            "{row}: a $4 run fits only in a new period"
        );
    }
}

#[test]
fn scopes_cover_what_they_name() {
    // MC-1 child of umbrella MC-3, MC-2 not; MC-1 owned by lucienne.
    let rows: [(S, Option<&str>, &str, &str, bool); 9] = [
        (S::All, None, "MC-2", "codex", true),
        (S::Agent, Some("claude"), "MC-1", "claude", true),
        (S::Agent, Some("claude"), "MC-1", "codex", false),
        (S::Owner, Some("lucienne"), "MC-1", "claude", true),
        (S::Owner, Some("lucienne"), "MC-2", "claude", false),
        (S::Umbrella, Some("MC-3"), "MC-1", "claude", true),
        (S::Umbrella, Some("MC-3"), "MC-4", "claude", true),
        (S::Umbrella, Some("MC-3"), "MC-2", "claude", false),
        (S::Ticket, Some("MC-2"), "MC-2", "claude", true),
    ];
    for (kind, value, ticket, agent, covered) in rows {
        let mut w = World::new();
        let mut owned = open("MC-1", "t");
        if let Command::Open { opened, .. } = &mut owned {
            opened.owner = Some("lucienne".into());
        }
        w.run(&orchestrator(), owned);
        w.run(&orchestrator(), open("MC-2", "t"));
        w.run(&orchestrator(), open_umbrella("MC-3", "u"));
        w.run(&orchestrator(), open("MC-4", "grandchild"));
        w.run(&orchestrator(), link("MC-1", Relation::ChildOf, "MC-3"));
        w.run(&orchestrator(), link("MC-4", Relation::ChildOf, "MC-1"));
        w.run(
            &orchestrator(),
            budget("b", kind, value, 10.0, BudgetPeriod::Total),
        );
        w.run(
            &orchestrator(),
            with_agent(dispatch_max(ticket, "k", Some(2.0)), agent),
        );
        let reserved = standing(&w, "b").1;
        assert_eq!(
            reserved,
            if covered { 2.0 } else { 0.0 },
            "{kind:?} {value:?} on {ticket} by {agent}"
        );
    }
}

#[test]
fn a_retry_reserves_again_and_inherits_the_reservation() {
    let mut w = budgeted(10.0, &["MC-1"]);
    let first = dispatched(&mut w, "MC-1", Some(3.0));
    w.run(&controller(), harvest(&first, H::Failed, X::Error));
    w.run(&orchestrator(), retry(&first, false));
    let second = w.rt("MC-1");
    assert_eq!(
        standing(&w, "team"),
        (3.25, 3.0, 3.75),
        "the retry holds $3 again"
    );
    w.run(&controller(), harvest(&second, H::Failed, X::Error));
    // A retry asking more than is left is refused; asking less fits.
    let mut ask = |max: f64| {
        w.try_run(
            &orchestrator(),
            Command::Retry {
                runtime_id: second.clone(),
                resume: false,
                pool: None,
                max_budget_usd: Some(max),
            },
        )
    };
    assert_eq!(ask(3.6).unwrap_err().code(), "budget_exhausted");
    assert!(ask(3.5).is_ok());
}

#[test]
fn a_replacing_dispatch_frees_the_replaced_reservation() {
    let mut w = budgeted(5.0, &["MC-1"]);
    let old = dispatched(&mut w, "MC-1", Some(4.0));
    let mut replace = dispatch_max("MC-1", "k2", Some(4.0));
    if let Command::Dispatch { replace: r, .. } = &mut replace {
        *r = true;
    }
    w.run(&orchestrator(), replace);
    let new = w.rt("MC-1");
    assert_ne!(old, new);
    let b = w.sim.ledger.budget("team", w.sim.now).unwrap();
    assert_eq!((b.spent_usd, b.reserved_usd), (0.0, 4.0));
    assert_eq!(b.holders.len(), 1);
    assert_eq!(b.holders[0].runtime_id, new);
}

#[test]
fn without_max_the_smallest_default_is_reserved_in_every_budget() {
    let mut w = World::new();
    let mut wide = budget("wide", S::All, None, 100.0, BudgetPeriod::Total);
    if let Command::ConfigureBudget { budget } = &mut wide {
        budget.default_reservation_usd = Some(5.0);
    }
    w.run(&orchestrator(), wide);
    w.run(
        &orchestrator(),
        budget("narrow", S::Ticket, Some("MC-1"), 10.0, BudgetPeriod::Total),
    );
    tickets(&mut w, &["MC-1", "MC-2"]);
    w.run(&orchestrator(), dispatch_max("MC-1", "k", None));
    assert_eq!(standing(&w, "wide").1, 1.0);
    assert_eq!(standing(&w, "narrow").1, 1.0);
    w.run(&orchestrator(), dispatch_max("MC-2", "k", None));
    assert_eq!(
        standing(&w, "wide").1,
        6.0,
        "MC-2 is only in wide: its default"
    );
}

#[test]
fn alerts_near_then_exhausted_then_gone() {
    let mut w = budgeted(5.0, &["MC-1", "MC-2", "MC-3"]);
    let budget_alerts = |w: &World| -> Vec<String> {
        w.alert_kinds()
            .into_iter()
            .filter(|k| k.starts_with("budget"))
            .collect()
    };
    assert!(budget_alerts(&w).is_empty());
    w.run(&orchestrator(), dispatch_max("MC-1", "k", Some(3.5)));
    assert!(budget_alerts(&w).is_empty(), "70%: not yet");
    w.run(&orchestrator(), dispatch_max("MC-2", "k", Some(0.5)));
    assert_eq!(budget_alerts(&w), ["budget_near"], "80%");
    w.run(&orchestrator(), dispatch_max("MC-3", "k", Some(0.5)));
    assert_eq!(
        budget_alerts(&w),
        ["budget_exhausted"],
        "$0.50 left, less than the default"
    );
    for t in ["MC-1", "MC-2", "MC-3"] {
        let rt = w.rt(t);
        w.run(&controller(), kill(&rt));
    }
    assert!(budget_alerts(&w).is_empty(), "nothing spent, nothing held");
}

#[test]
fn bad_budgets_are_refused_and_an_unchanged_one_is_a_duplicate() {
    type Edit = fn(&mut BudgetRequest);
    let rows: [(&str, Edit, &str); 8] = [
        ("negative limit", |b| b.limit_usd = -1.0, "limit_usd"),
        (
            "limit not a number",
            |b| b.limit_usd = f64::NAN,
            "limit_usd",
        ),
        (
            "value with all",
            |b| b.scope.value = Some("x".into()),
            "scope.value",
        ),
        (
            "agent without value",
            |b| {
                b.scope = BudgetScope {
                    kind: S::Agent,
                    value: None,
                }
            },
            "scope.value",
        ),
        (
            "umbrella not a ticket",
            |b| {
                b.scope = BudgetScope {
                    kind: S::Umbrella,
                    value: Some("nope".into()),
                }
            },
            "scope.value",
        ),
        ("warn at 0", |b| b.warn_at_pct = Some(0), "warn_at_pct"),
        (
            "zero default",
            |b| b.default_reservation_usd = Some(0.0),
            "default_reservation_usd",
        ),
        ("bad name", |b| b.name = "a b".into(), "name"),
    ];
    for (row, edit, field) in rows {
        let mut w = World::new();
        let Command::ConfigureBudget { mut budget } = all(10.0) else {
            unreachable!()
        };
        edit(&mut budget);
        let err = w
            .try_run(&orchestrator(), Command::ConfigureBudget { budget })
            .unwrap_err();
        assert!(
            matches!(err, Rejection::Invalid { field: f, .. } if f == field),
            "{row}: {err:?}"
        );
        assert!(w.sim.log.is_empty(), "{row}: nothing appended");
    }
    let mut w = World::new();
    w.run(&orchestrator(), all(10.0));
    assert!(matches!(
        w.run(&orchestrator(), all(10.0)),
        Decision::Duplicate(_)
    ));
    assert!(matches!(
        w.run(&orchestrator(), all(20.0)),
        Decision::Append(_)
    ));
    let err = w
        .try_run(
            &orchestrator(),
            budget("team", S::All, None, 20.0, BudgetPeriod::Day),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Rejection::Invalid {
                field: "period",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Budget alerts reach subscriptions as every alert does: one `alert.raised` per episode, kept
/// while it stays (another reservation or an hour does not make it new), `alert.cleared` when
/// it goes.
#[test]
fn a_budget_alert_is_one_episode_to_a_subscription() {
    use projections::subscriptions::alert_notices;
    let mut w = budgeted(5.0, &["MC-1", "MC-2"]);
    let mut open = std::collections::BTreeMap::new();
    let mut told = |w: &World| -> Vec<String> {
        let mut alerts = w.sim.ledger.alerts(w.sim.now, &w.sim.config);
        alerts.retain(|a| a.budget.is_some());
        alert_notices(&mut open, &alerts, w.sim.now, None)
            .into_iter()
            .map(|n| format!("{:?} {}", n.kind, n.alert.kind.as_str()))
            .collect()
    };
    w.run(&orchestrator(), dispatch_max("MC-1", "k", Some(4.5)));
    assert_eq!(told(&w), ["Raised budget_exhausted"]);
    w.wait_min(60);
    w.run(&orchestrator(), comment("MC-1", "later"));
    assert!(told(&w).is_empty(), "the same episode");
    let rt = w.rt("MC-1");
    w.run(&controller(), kill(&rt));
    assert_eq!(told(&w), ["Cleared budget_exhausted"]);
}

/// A harvest reporting an absurd cost, corrected by a second harvest, leaves the budget with
/// the other runs' spend: the sums are exact, so what a correction takes away is what was added.
#[test]
fn a_huge_cost_corrected_later_leaves_the_other_runs_spend() {
    let mut w = budgeted(10.0, &["MC-1", "MC-2"]);
    let first = dispatched(&mut w, "MC-1", Some(1.0));
    w.run(&controller(), harvest(&first, H::Completed, X::Success));
    let second = dispatched(&mut w, "MC-2", Some(1.0));
    let costing = |usd: f64| {
        let mut h = harvest(&second, H::Completed, X::Success);
        if let Command::Harvest { report, .. } = &mut h {
            report.cost_usd = Some(usd);
        }
        h
    };
    w.run(&controller(), costing(1e300));
    assert_eq!(
        standing(&w, "team").0,
        u64::MAX as f64 / 1e9,
        "read as the most a sum shows"
    );
    let version = w.version("MC-2");
    w.sim
        .exec_with(&controller(), &costing(0.0), Some(version))
        .expect("a corrected harvest");
    assert_eq!(standing(&w, "team"), (3.25, 0.0, 6.75));
}
