//! Cost and tokens (SPEC §13): what a harvest's usage appends or refuses, and how it is summed
//! per runtime, per ticket, per umbrella and in `GET /v1/costs` groups.

mod common;

use common::*;
use events::{ExitReason as X, HarvestOutcome as H, ModelUsage, Relation};
use projections::{Command, CostGroupBy, CostView, Decision, HarvestReport, RejectionKind};
use proptest::prelude::*;

fn usage(
    model: Option<&str>,
    input: u64,
    cached: u64,
    output: u64,
    usd: Option<f64>,
) -> ModelUsage {
    ModelUsage {
        model: model.map(str::to_owned),
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        cost_usd: usd,
    }
}

fn harvest_with(runtime_id: &str, cost_usd: Option<f64>, usage: Vec<ModelUsage>) -> Command {
    Command::Harvest {
        runtime_id: runtime_id.to_owned(),
        report: HarvestReport {
            outcome: H::Completed,
            exit_reason: X::Success,
            turns: Some(3),
            cost_usd,
            session_id: None,
            summary: None,
            raw_subtype: None,
            usage,
        },
    }
}

fn sonnet() -> Vec<ModelUsage> {
    vec![
        usage(Some("claude-sonnet-4-5"), 48_000, 40_000, 3_000, Some(0.25)),
        usage(Some("claude-haiku-4-5"), 2_000, 0, 500, Some(0.01)),
    ]
}

fn cost(usd: Option<f64>, input: u64, cached: u64, output: u64, runtimes: u64) -> CostView {
    CostView {
        usd,
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        runtimes,
    }
}

fn dispatched(w: &mut World, ticket: &str) -> String {
    w.run(&orchestrator(), open(ticket, "Cost story"));
    w.run(&orchestrator(), dispatch(ticket, "k1"));
    w.rt(ticket)
}

/// Given a dispatched runtime, when a harvest with this usage arrives, then it appends the
/// harvest and the usage, or refuses it as invalid with nothing appended.
#[test]
fn a_harvests_usage_is_recorded_or_refused() {
    type Row = (
        &'static str,
        Vec<ModelUsage>,
        Result<&'static [&'static str], &'static str>,
    );
    let many: Vec<ModelUsage> = (0..17)
        .map(|i| usage(Some(&format!("m{i}")), 1, 0, 1, None))
        .collect();
    let rows: Vec<Row> = vec![
        (
            "models with tokens and dollars",
            sonnet(),
            Ok(&["runtime.harvested", "runtime.usage_recorded"]),
        ),
        (
            "no usage: the harvest alone",
            Vec::new(),
            Ok(&["runtime.harvested"]),
        ),
        (
            "tokens without a model name (Codex)",
            vec![usage(None, 24_763, 24_448, 122, None)],
            Ok(&["runtime.harvested", "runtime.usage_recorded"]),
        ),
        (
            "a model twice",
            vec![
                usage(Some("m"), 1, 0, 1, None),
                usage(Some("m"), 1, 0, 1, None),
            ],
            Err("usage.model"),
        ),
        (
            "more cached tokens than input tokens",
            vec![usage(Some("m"), 10, 11, 1, None)],
            Err("usage.cached_input_tokens"),
        ),
        (
            "a negative cost",
            vec![usage(Some("m"), 1, 0, 1, Some(-0.5))],
            Err("usage.cost_usd"),
        ),
        (
            "a cost that is not a number",
            vec![usage(Some("m"), 1, 0, 1, Some(f64::NAN))],
            Err("usage.cost_usd"),
        ),
        ("17 models", many, Err("usage")),
        (
            "a model name over 128 bytes",
            vec![usage(Some(&"m".repeat(129)), 1, 0, 1, None)],
            Err("usage.model"),
        ),
    ];
    for (name, models, then) in rows {
        let mut w = World::new();
        let rt = dispatched(&mut w, "MC-1");
        let before = w.version("MC-1");
        match (
            w.try_run(&agent(), harvest_with(&rt, Some(0.26), models)),
            then,
        ) {
            (Ok(Decision::Append(a)), Ok(types)) => {
                let got: Vec<&str> = a.events.iter().map(|e| e.type_name()).collect();
                assert_eq!(got, types, "{name}");
            }
            (Err(r), Err(field)) => {
                assert_eq!(r.kind(), RejectionKind::Invalid, "{name}");
                assert!(r.to_string().contains(field), "{name}: {r}");
                assert_eq!(w.version("MC-1"), before, "{name}: nothing appended");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

/// Given a harvest with usage, when the same harvest comes again, then it is a duplicate; with
/// other usage, it needs the ticket's version (the second-harvest rule).
#[test]
fn a_repeated_harvest_is_a_duplicate_and_other_usage_needs_the_version() {
    let mut w = World::new();
    let rt = dispatched(&mut w, "MC-1");
    w.run(&agent(), harvest_with(&rt, Some(0.26), sonnet()));
    assert!(matches!(
        w.try_run(&agent(), harvest_with(&rt, Some(0.26), sonnet())),
        Ok(Decision::Duplicate(_))
    ));
    // Without usage, the same harvest is still the same (a structured retry).
    assert!(matches!(
        w.try_run(&agent(), harvest_with(&rt, Some(0.26), Vec::new())),
        Ok(Decision::Duplicate(_))
    ));
    let other = vec![usage(Some("claude-sonnet-4-5"), 1, 0, 1, Some(0.26))];
    let refused = w
        .try_run(&agent(), harvest_with(&rt, Some(0.26), other))
        .unwrap_err();
    assert_eq!(refused.code(), "version_conflict");
}

/// Given these stories, then the ticket's cost, the umbrella's total and the groups of
/// `GET /v1/costs` are these.
#[test]
fn costs_are_summed_per_runtime_ticket_umbrella_and_group() {
    let mut w = World::new();
    w.run(&orchestrator(), open_umbrella("MC-1", "Umbrella"));
    // MC-2: two runs of Claude, one reporting models, one only a total cost (an older record).
    let a = dispatched(&mut w, "MC-2");
    w.run(&agent(), harvest_with(&a, Some(0.26), sonnet()));
    w.run(&orchestrator(), retry(&a, false));
    let b = w.rt("MC-2");
    w.wait_min(24 * 60);
    w.run(&agent(), harvest_with(&b, Some(1.5), Vec::new()));
    // MC-3: Codex tokens without dollars; a child of the umbrella, as is MC-2.
    w.run(&orchestrator(), open("MC-3", "Codex story"));
    w.run(
        &orchestrator(),
        Command::Dispatch {
            ticket: id("MC-3"),
            dispatch_key: "k1".into(),
            agent: "codex".into(),
            transport: events::Transport::Process,
            profile: None,
            provider: None,
            model: Some("gpt-5.5".into()),
            tmux_target: None,
            process_id: None,
            cwd: None,
            replace: false,
            pool: None,
            max_budget_usd: None,
        },
    );
    let c = w.rt("MC-3");
    w.run(
        &agent(),
        harvest_with(&c, None, vec![usage(None, 24_763, 24_448, 122, None)]),
    );
    // MC-4: dispatched, never harvested: no cost, not counted.
    dispatched(&mut w, "MC-4");
    w.run(&orchestrator(), link("MC-2", Relation::ChildOf, "MC-1"));
    w.run(&orchestrator(), link("MC-3", Relation::ChildOf, "MC-1"));

    assert_eq!(
        w.view("MC-2").cost,
        cost(Some(1.76), 50_000, 40_000, 3_500, 2),
        "MC-2: both runs"
    );
    assert_eq!(w.view("MC-3").cost, cost(None, 24_763, 24_448, 122, 1));
    assert_eq!(w.view("MC-4").cost, cost(None, 0, 0, 0, 0));
    assert_eq!(w.view("MC-2").cost_total, None, "not an umbrella");
    assert_eq!(w.view("MC-1").cost, cost(None, 0, 0, 0, 0), "its own");
    assert_eq!(
        w.view("MC-1").cost_total,
        Some(cost(Some(1.76), 74_763, 64_448, 3_622, 3)),
        "with its children"
    );
    let board = w.sim.ledger.board(w.sim.now, &w.sim.config, 100);
    let card = |t: &str| {
        board
            .open
            .iter()
            .chain(&board.in_progress)
            .chain(&board.review)
            .find(|c| c.id.as_str() == t)
            .unwrap_or_else(|| panic!("{t} on the board"))
            .cost
    };
    assert_eq!(
        card("MC-1"),
        w.view("MC-1").cost_total.unwrap(),
        "umbrella card: total"
    );
    assert_eq!(card("MC-2"), w.view("MC-2").cost);

    let groups = |by| {
        let report = w.sim.ledger.costs(by);
        assert_eq!(
            report.total,
            cost(Some(1.76), 74_763, 64_448, 3_622, 3),
            "{by:?}: the total"
        );
        report
            .groups
            .into_iter()
            .map(|g| (g.key, g.cost.usd, g.cost.input_tokens, g.cost.runtimes))
            .collect::<Vec<_>>()
    };
    let s = |k: &str| Some(k.to_owned());
    assert_eq!(
        groups(CostGroupBy::Agent),
        vec![
            (s("claude"), Some(1.76), 50_000, 2),
            (s("codex"), None, 24_763, 1)
        ]
    );
    assert_eq!(
        groups(CostGroupBy::Model),
        vec![
            (s("claude-haiku-4-5"), Some(0.01), 2_000, 1),
            (s("claude-sonnet-4-5"), Some(0.25), 48_000, 1),
            (s("gpt-5.5"), None, 24_763, 1),
            (s("opus"), Some(1.5), 0, 1),
        ],
        "named by the agent, else the dispatched model"
    );
    assert_eq!(
        groups(CostGroupBy::Owner),
        vec![(s("luci"), Some(1.76), 74_763, 3)]
    );
    assert_eq!(
        groups(CostGroupBy::Day),
        vec![
            (s("2026-11-02"), Some(0.26), 50_000, 1),
            (s("2026-11-03"), Some(1.5), 24_763, 2),
        ]
    );
    // A runtime's view carries its own.
    let view = w
        .sim
        .ledger
        .runtime_view(&a, w.sim.now, &w.sim.config)
        .unwrap();
    assert_eq!(view.cost, cost(Some(0.26), 50_000, 40_000, 3_500, 1));
    assert_eq!(view.usage, sonnet());
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn nanos(usd: Option<f64>) -> u64 {
    usd.map_or(0, |u| (u * 1e9).round() as u64)
}

proptest! {
    /// Over any tickets, runs and harvests: every grouping but `model` splits the total
    /// exactly (dollars to the nano), the tickets' costs add up to it, and it counts the
    /// runtimes that reported something.
    #[test]
    fn groups_and_tickets_add_up_to_the_total(
        runs in proptest::collection::vec(
            (0..4usize, any::<bool>(), proptest::option::of(0u32..5_000_000), 0u64..1_000_000, any::<bool>()),
            1..20
        )
    ) {
        let mut w = World::new();
        for t in 0..4 {
            w.run(&orchestrator(), open(&format!("MC-{}", t + 1), "Story"));
        }
        let mut reported = 0;
        for (i, (t, codex, micros, tokens, harvested)) in runs.iter().enumerate() {
            let ticket = format!("MC-{}", t + 1);
            let mut d = dispatch(&ticket, &format!("k{i}"));
            if let Command::Dispatch { agent, replace, .. } = &mut d {
                if *codex { agent.clone_from(&"codex".to_owned()); }
                *replace = true;
            }
            w.run(&orchestrator(), d);
            let rt = w.rt(&ticket);
            if *harvested {
                let usd = micros.map(|m| f64::from(m) / 1e6);
                let models = if *tokens > 0 { vec![usage(None, *tokens, tokens / 2, tokens / 3, usd)] } else { Vec::new() };
                if usd.is_some() || !models.is_empty() { reported += 1; }
                w.run(&agent(), harvest_with(&rt, usd, models));
            }
            w.wait_min(7 * 60);
        }
        let total = w.sim.ledger.costs(CostGroupBy::Agent).total;
        prop_assert_eq!(total.runtimes, reported);
        let tickets: Vec<CostView> = (1..=4).map(|t| w.view(&format!("MC-{t}")).cost).collect();
        prop_assert_eq!(tickets.iter().map(|c| c.input_tokens).sum::<u64>(), total.input_tokens);
        prop_assert_eq!(tickets.iter().map(|c| nanos(c.usd)).sum::<u64>(), nanos(total.usd));
        for by in [CostGroupBy::Agent, CostGroupBy::Owner, CostGroupBy::Day, CostGroupBy::Model] {
            let report = w.sim.ledger.costs(by);
            prop_assert_eq!(report.total, total);
            let g = &report.groups;
            prop_assert_eq!(g.iter().map(|g| g.cost.input_tokens).sum::<u64>(), total.input_tokens);
            prop_assert_eq!(g.iter().map(|g| g.cost.output_tokens).sum::<u64>(), total.output_tokens);
            prop_assert_eq!(g.iter().map(|g| nanos(g.cost.usd)).sum::<u64>(), nanos(total.usd));
            prop_assert_eq!(g.iter().map(|g| g.cost.runtimes).sum::<u64>(), total.runtimes, "{:?}", by);
        }
    }
}
