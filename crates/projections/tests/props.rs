//! Properties of the fold and the decisions, over random command sequences (only what
//! `decide` accepts reaches the log) and over random raw events (for "apply never panics").
//!
//! Seeds: every run prints `proptest seed N`; replay a failure with `PROPTEST_RNG_SEED=N`
//! (proptest also prints the minimal failing input). `PROPTEST_CASES` overrides case counts.

mod common;

use std::collections::HashMap;

use common::*;
use events::{
    EventData, ExitReason as X, HarvestOutcome as H, Priority, ReapCause, RecordedEvent, Relation,
    Resolution, TicketId, Timestamp, Transport, Verdict,
};
use projections::{as_of, timeline, Command, Config, Decision, Ledger};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

fn cfg(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    let seed = match c.rng_seed {
        RngSeed::Fixed(s) => s,
        RngSeed::Random => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    };
    c.rng_seed = RngSeed::Fixed(seed);
    println!("proptest seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    c
}

const TICKETS: [&str; 3] = ["MC-1", "MC-2", "MC-3"];

#[derive(Debug, Clone)]
enum Op {
    Open(usize, bool),
    Comment(usize),
    Link(usize, usize, bool),
    Unlink(usize, usize, bool),
    Park(usize, usize),
    Close(usize, u8),
    Reopen(usize),
    Dispatch(usize, u8, bool, u8),
    /// runtime, verdict, nonce: 0 current, 1 an earlier one, 2 never issued
    Signal(usize, u8, u8),
    Harvest(usize, u8, bool),
    Reap(usize, u8),
    Kill(usize),
    Cancel(usize),
    Switch(usize),
    Retry(usize, bool),
    Complete(usize),
    Input(usize),
    Activity(usize),
    Abort(usize),
    /// runtime, permission (true) or idle prompt
    RequestInput(usize, bool),
    EndSession(usize),
    /// Configure pool `p0`/`p1` with a capacity of 0 to 2.
    Pool(usize, u32),
    /// Dispatch into a pool: ticket, key, replace, pool.
    DispatchIn(usize, u8, bool, usize),
    /// Budget `b0`/`b1`: scope (all, agent claude, umbrella MC-3, ticket MC-1), limit in
    /// dollars, period (total, day, month).
    Budget(usize, u8, u8, u8),
    /// Dispatch with a reservation: ticket, key, replace, dollars (0: none asked).
    DispatchBudgeted(usize, u8, bool, u8),
    /// Subscription `s0`/`s1`: 0 create or change (a format), 1 pause, 2 resume, 3 replay,
    /// 4 park, 5 delete.
    Subscription(usize, u8, u8),
    Wait(u16),
}

const POOLS: [&str; 2] = ["p0", "p1"];
const BUDGETS: [&str; 2] = ["b0", "b1"];

fn budget_command(b: usize, scope: u8, limit: u8, period: u8) -> Command {
    let (kind, value) = match scope {
        0 => (events::BudgetScopeKind::All, None),
        1 => (events::BudgetScopeKind::Agent, Some("claude")),
        2 => (events::BudgetScopeKind::Umbrella, Some("MC-3")),
        _ => (events::BudgetScopeKind::Ticket, Some("MC-1")),
    };
    Command::ConfigureBudget {
        budget: projections::BudgetRequest {
            name: BUDGETS[b].to_owned(),
            scope: events::BudgetScope {
                kind,
                value: value.map(str::to_owned),
            },
            limit_usd: f64::from(limit),
            period: [
                events::BudgetPeriod::Total,
                events::BudgetPeriod::Day,
                events::BudgetPeriod::Month,
            ][usize::from(period % 3)],
            warn_at_pct: None,
            default_reservation_usd: Some(1.0),
        },
    }
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TICKETS.len();
    let r = 0usize..8;
    prop_oneof![
        3 => (t.clone(), any::<bool>()).prop_map(|(a, u)| Op::Open(a, u)),
        1 => t.clone().prop_map(Op::Comment),
        1 => (t.clone(), t.clone(), any::<bool>()).prop_map(|(a, b, c)| Op::Link(a, b, c)),
        1 => (t.clone(), t.clone(), any::<bool>()).prop_map(|(a, b, c)| Op::Unlink(a, b, c)),
        1 => (t.clone(), t.clone()).prop_map(|(a, b)| Op::Park(a, b)),
        2 => (t.clone(), 0u8..4).prop_map(|(a, b)| Op::Close(a, b)),
        1 => t.clone().prop_map(Op::Reopen),
        4 => (t.clone(), 0u8..3, any::<bool>(), 0u8..3).prop_map(|(a, k, rep, tr)| Op::Dispatch(a, k, rep, tr)),
        3 => (r.clone(), 0u8..3, 0u8..3).prop_map(|(a, v, n)| Op::Signal(a, v, n)),
        2 => (r.clone(), 0u8..6, any::<bool>()).prop_map(|(a, o, v)| Op::Harvest(a, o, v)),
        2 => (r.clone(), 0u8..4).prop_map(|(a, c)| Op::Reap(a, c)),
        1 => r.clone().prop_map(Op::Kill),
        1 => r.clone().prop_map(Op::Cancel),
        1 => r.clone().prop_map(Op::Switch),
        2 => (r.clone(), any::<bool>()).prop_map(|(a, b)| Op::Retry(a, b)),
        1 => r.clone().prop_map(Op::Complete),
        1 => r.clone().prop_map(Op::Input),
        1 => r.clone().prop_map(Op::Activity),
        1 => r.clone().prop_map(Op::Abort),
        1 => (r.clone(), any::<bool>()).prop_map(|(a, p)| Op::RequestInput(a, p)),
        1 => r.prop_map(Op::EndSession),
        2 => (0..POOLS.len(), 0u32..3).prop_map(|(p, c)| Op::Pool(p, c)),
        4 => (t.clone(), 0u8..3, any::<bool>(), 0..POOLS.len()).prop_map(|(a, k, rep, p)| Op::DispatchIn(a, k, rep, p)),
        2 => (0usize..2, 0u8..6, 0u8..3).prop_map(|(s, what, f)| Op::Subscription(s, what, f)),
        2 => (0..BUDGETS.len(), 0u8..4, 0u8..12, 0u8..3).prop_map(|(b, s, l, p)| Op::Budget(b, s, l, p)),
        4 => (t.clone(), 0u8..3, any::<bool>(), 0u8..5).prop_map(|(a, k, rep, d)| Op::DispatchBudgeted(a, k, rep, d)),
        2 => (0u16..90).prop_map(Op::Wait),
    ]
}

/// Sequences that start by opening the tickets (the third one an umbrella or not), so most
/// commands have something to act on.
fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    (any::<bool>(), prop::collection::vec(op(), 1..max)).prop_map(|(umbrella, rest)| {
        let mut v = vec![
            Op::Open(0, false),
            Op::Open(1, false),
            Op::Open(2, umbrella),
        ];
        v.extend(rest);
        v
    })
}

const OUTCOMES: [(H, X); 6] = [
    (H::Completed, X::Success),
    (H::Partial, X::MaxTurns),
    (H::Partial, X::MaxBudget),
    (H::Failed, X::Error),
    (H::Failed, X::ApiError),
    (H::Failed, X::NoResult),
];
const CAUSES: [ReapCause; 4] = ReapCause::ALL;
const VERDICTS: [Verdict; 3] = Verdict::ALL;
const RESOLUTIONS: [Resolution; 4] = Resolution::ALL;
const TRANSPORTS: [Transport; 3] = Transport::ALL;

/// A link's relation: child_of, or else blocked_by.
fn relation(child: bool) -> Relation {
    if child {
        Relation::ChildOf
    } else {
        Relation::BlockedBy
    }
}

/// Plays `ops` through `decide`; returns the world and the ledger as it stood after each
/// event (position → ledger), for the time-travel property.
/// The board, built from the open-ticket and closed-column indexes, equals a scan of every
/// ticket's state: same ids per column (uncapped), totals that count them, and a capped
/// closed column that keeps `min(cap, total)` of them.
fn board_matches_a_scan(
    ledger: &Ledger,
    now: Timestamp,
    cfg: &Config,
) -> Result<(), TestCaseError> {
    let full = ledger.board(now, cfg, usize::MAX);
    let capped = ledger.board(now, cfg, 1);
    let totals = serde_json::to_value(full.totals).unwrap();
    prop_assert_eq!(&totals, &serde_json::to_value(capped.totals).unwrap());
    for state in projections::TicketState::ALL {
        let filter = projections::TicketFilter {
            state: Some(state),
            ..Default::default()
        };
        let scanned: Vec<String> = ledger
            .tickets(&filter, None, usize::MAX, now, cfg)
            .tickets
            .into_iter()
            .map(|t| t.id.to_string())
            .collect();
        let column: Vec<String> = full
            .column(state)
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        prop_assert_eq!(&column, &scanned, "{:?}", state);
        let name = serde_json::to_value(state).unwrap();
        prop_assert_eq!(
            totals[name.as_str().unwrap()].as_u64(),
            Some(u64::try_from(scanned.len()).unwrap())
        );
        let kept = capped.column(state).len();
        if matches!(
            state,
            projections::TicketState::Done | projections::TicketState::Cancelled
        ) {
            prop_assert_eq!(kept, scanned.len().min(1), "{:?}", state);
        } else {
            prop_assert_eq!(kept, scanned.len(), "{:?}", state);
        }
    }
    Ok(())
}

fn play(ops: &[Op]) -> (World, Vec<Ledger>) {
    let mut w = World::new();
    let mut issued: Vec<String> = Vec::new();
    let mut history = vec![Ledger::default()];
    for op in ops {
        let runtimes: Vec<String> = w
            .sim
            .ledger
            .runtimes(
                &Default::default(),
                None,
                usize::MAX,
                w.sim.now,
                &w.sim.config,
            )
            .runtimes
            .into_iter()
            .map(|r| r.id)
            .collect();
        let rt = |i: usize| runtimes.get(i % runtimes.len().max(1)).cloned();
        let mut expected = None;
        let cmd = match op {
            Op::Open(t, umbrella) => Some(if *umbrella {
                open_umbrella(TICKETS[*t], "u")
            } else {
                open(TICKETS[*t], "t")
            }),
            Op::Comment(t) => Some(comment(TICKETS[*t], "c")),
            Op::Link(a, b, child) => Some(link(TICKETS[*a], relation(*child), TICKETS[*b])),
            Op::Unlink(a, b, child) => Some(unlink(TICKETS[*a], relation(*child), TICKETS[*b])),
            Op::Park(a, b) => Some(park(TICKETS[*a], &[TICKETS[*b]], "wait")),
            Op::Close(t, r) => Some(close(TICKETS[*t], RESOLUTIONS[usize::from(*r)])),
            Op::Reopen(t) => Some(reopen(TICKETS[*t])),
            Op::Dispatch(t, k, rep, tr) => Some(dispatch_with(
                TICKETS[*t],
                &format!("key-{k}"),
                TRANSPORTS[usize::from(*tr)],
                *rep,
            )),
            Op::Signal(i, v, n) => rt(*i).map(|id| {
                let current = w
                    .sim
                    .ledger
                    .runtime_view(&id, w.sim.now, &w.sim.config)
                    .map(|r| r.nonce)
                    .unwrap_or_default();
                let nonce = match n {
                    0 => current,
                    1 => issued.first().cloned().unwrap_or(current),
                    _ => "MC_TICKET_TURN:1:1:ffffffff".to_owned(),
                };
                signal(&id, VERDICTS[usize::from(*v)], &nonce, "p")
            }),
            Op::Harvest(i, o, with_version) => rt(*i).map(|id| {
                if *with_version {
                    expected = w
                        .sim
                        .ledger
                        .runtime_ticket(&id)
                        .and_then(|t| w.sim.ledger.ticket_version(t));
                }
                let (outcome, exit) = OUTCOMES[usize::from(*o)];
                harvest(&id, outcome, exit)
            }),
            Op::Reap(i, c) => rt(*i).map(|id| reap(&id, CAUSES[usize::from(*c)])),
            Op::Kill(i) => rt(*i).map(|id| kill(&id)),
            Op::Cancel(i) => rt(*i).map(|id| cancel(&id)),
            Op::Switch(i) => rt(*i).map(|id| switch(&id)),
            Op::Retry(i, resume) => rt(*i).map(|id| retry(&id, *resume)),
            Op::Complete(i) => rt(*i).map(|id| complete(&id)),
            Op::Input(i) => rt(*i).map(|id| input(&id, "answer")),
            Op::Activity(i) => rt(*i).map(|id| activity(&id)),
            Op::Abort(i) => rt(*i).map(|id| abort_launch(&id, "smoke")),
            Op::RequestInput(i, permission) => rt(*i).map(|id| Command::RequestInput {
                runtime_id: id,
                kind: if *permission {
                    "permission_prompt"
                } else {
                    "idle_prompt"
                }
                .into(),
                message: Some("waiting".into()),
            }),
            Op::EndSession(i) => rt(*i).map(|id| Command::EndSession {
                runtime_id: id,
                reason: "other".into(),
            }),
            Op::Subscription(s, what, f) => Some(subscription_command(*s, *what, *f)),
            Op::Pool(p, capacity) => Some(Command::ConfigurePool {
                name: POOLS[*p].to_owned(),
                capacity: *capacity,
            }),
            Op::DispatchIn(t, k, rep, p) => {
                let mut d =
                    dispatch_with(TICKETS[*t], &format!("pool-key-{k}"), Transport::Tmux, *rep);
                if let Command::Dispatch { pool, .. } = &mut d {
                    *pool = Some(POOLS[*p].to_owned());
                }
                Some(d)
            }
            Op::Budget(b, scope, limit, period) => {
                Some(budget_command(*b, *scope, *limit, *period))
            }
            Op::DispatchBudgeted(t, k, rep, dollars) => {
                let mut d = dispatch_with(
                    TICKETS[*t],
                    &format!("budget-key-{k}"),
                    Transport::Tmux,
                    *rep,
                );
                if let Command::Dispatch { max_budget_usd, .. } = &mut d {
                    *max_budget_usd = (*dollars > 0).then_some(f64::from(*dollars));
                }
                Some(d)
            }
            Op::Wait(m) => {
                w.sim.advance_ms(u64::from(*m) * MIN);
                None
            }
        };
        let Some(cmd) = cmd else { continue };
        let before = w.sim.log.len();
        if let Ok(Decision::Append(a)) = w.sim.exec_with(&agent(), &cmd, expected) {
            issued.extend(a.nonce);
        }
        w.sim.advance_ms(1000);
        for e in &w.sim.log[before..] {
            let mut l = history.last().cloned().unwrap_or_default();
            l.apply(e);
            history.push(l);
        }
        assert_eq!(history.last(), Some(&w.sim.ledger));
    }
    (w, history)
}

/// Position of the first terminal fact of a runtime in the log.
fn ended_position(log: &[RecordedEvent], runtime_id: &str) -> Option<u64> {
    const TERMINAL: [&str; 7] = [
        "runtime.session_ended",
        "runtime.harvested",
        "runtime.reaped",
        "runtime.killed",
        "runtime.cancelled",
        "runtime.completed_by_controller",
        "runtime.launch_aborted",
    ];
    log.iter()
        .find(|e| e.data.runtime_id() == Some(runtime_id) && TERMINAL.contains(&e.type_name()))
        .map(|e| e.position)
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Folding event by event equals a full rebuild; a prefix then the rest equals all;
    /// `as_of(p)` equals the ledger as it stood at p.
    #[test]
    fn fold_is_a_function_of_the_log(ops in ops(100), split in any::<prop::sample::Index>()) {
        let (w, history) = play(&ops);
        let log = &w.sim.log;
        if std::env::var_os("PROPS_STATS").is_some() {
            let mut types: Vec<&str> = log.iter().map(|e| e.type_name()).collect();
            types.sort_unstable();
            types.dedup();
            println!("{} events, {} types: {types:?}", log.len(), types.len());
        }
        prop_assert_eq!(&Ledger::fold(log), &w.sim.ledger);

        let k = split.index(log.len() + 1);
        let mut l = Ledger::fold(&log[..k]);
        for e in &log[k..] {
            l.apply(e);
        }
        prop_assert_eq!(&l, &w.sim.ledger);

        for (p, expected) in history.iter().enumerate().step_by(7) {
            let p = u64::try_from(p).unwrap();
            prop_assert_eq!(&as_of(log, p), expected);
        }

        // Stream versions are gapless and what the fold reports.
        let mut counts: HashMap<&TicketId, u64> = HashMap::new();
        for e in log {
            let c = counts.entry(&e.ticket).or_default();
            *c += 1;
            prop_assert_eq!(e.version, *c);
        }
        for (t, c) in counts {
            prop_assert_eq!(w.sim.ledger.ticket_version(t), Some(c));
        }
    }

    /// The rules decide never lets into the log: one runtime per dispatch key per ticket, at
    /// most one live runtime per ticket, one reap per (runtime, cause).
    #[test]
    fn accepted_logs_keep_the_invariants(ops in ops(100)) {
        let (w, _) = play(&ops);
        let mut keys = std::collections::HashSet::new();
        let mut reaps = std::collections::HashSet::new();
        for e in &w.sim.log {
            match &e.data {
                EventData::RuntimeDispatched(d) => prop_assert!(keys.insert((e.ticket.clone(), d.dispatch_key.clone()))),
                EventData::RuntimeReaped(r) => prop_assert!(reaps.insert((r.runtime_id.clone(), r.cause))),
                _ => {}
            }
        }
        for t in TICKETS {
            let live = w.sim.ledger.runtimes(
                &projections::RuntimeFilter { ticket: TicketId::parse(t).ok(), live: Some(true) },
                None, usize::MAX, w.sim.now, &w.sim.config,
            );
            prop_assert!(live.runtimes.len() <= 1);
        }
    }

    /// After a close, failure_reason stays null in every continuation unless the ticket's
    /// current runtime ended after that close (a new failure).
    /// SPEC §14: after every command, each pool's holders are exactly the live runtimes
    /// admitted into it, never more than its capacity, whatever ended the others.
    #[test]
    fn pool_holders_are_the_live_runtimes_admitted(ops in ops(100)) {
        for prefix in 1..=ops.len() {
            let (w, _) = play(&ops[..prefix]);
            let l = &w.sim.ledger;
            let live = l.runtimes(&projections::RuntimeFilter { live: Some(true), ..Default::default() }, None, usize::MAX, w.sim.now, &w.sim.config).runtimes;
            for p in l.pools().pools {
                let mut admitted: Vec<String> = live.iter().filter(|r| r.pool.as_deref() == Some(p.name.as_str())).map(|r| r.id.clone()).collect();
                admitted.sort();
                let mut holders: Vec<String> = p.holders.iter().map(|h| h.runtime_id.clone()).collect();
                holders.sort();
                prop_assert_eq!(&holders, &admitted, "pool {}", p.name);
                prop_assert!(holders.len() <= usize::try_from(p.capacity).unwrap(), "pool {}: {} holders, capacity {}", p.name, holders.len(), p.capacity);
            }
        }
    }

    /// SPEC §16: after every accepted dispatch or retry, each budget it reserved in stands at
    /// no more than its limit; each budget's holders are exactly the live runtimes that
    /// reserved in it; a `total` budget's spend is what its ended runtimes spent.
    #[test]
    fn budgets_are_never_overrun_by_a_dispatch(ops in ops(100)) {
        for prefix in 1..=ops.len() {
            let (w, _) = play(&ops[..prefix]);
            let l = &w.sim.ledger;
            let runtimes = l.runtimes(&Default::default(), None, usize::MAX, w.sim.now, &w.sim.config).runtimes;
            // The budgets the latest append reserved in, when it was a dispatch's.
            let last_reserved = match w.sim.log.last().map(|e| &e.data) {
                Some(EventData::BudgetReserved(x)) => runtimes.iter().find(|r| r.id == x.runtime_id).map(|r| r.budgets.clone()).unwrap_or_default(),
                _ => Vec::new(),
            };
            for b in l.budgets(w.sim.now).budgets {
                let mut reserved: Vec<String> = runtimes.iter().filter(|r| r.live && r.budgets.contains(&b.name)).map(|r| r.id.clone()).collect();
                reserved.sort();
                let mut holders: Vec<String> = b.holders.iter().map(|h| h.runtime_id.clone()).collect();
                holders.sort();
                prop_assert_eq!(&holders, &reserved, "budget {}", b.name);
                // What they hold, summed from the runtimes: each its reservation or its spend.
                let held: f64 = runtimes.iter().filter(|r| r.live && r.budgets.contains(&b.name))
                    .map(|r| r.max_budget_usd.unwrap_or(0.0).max(r.cost.usd.unwrap_or(0.0))).sum();
                prop_assert!((held - b.reserved_usd).abs() < 1e-6, "budget {}: {} held by the runtimes, {} by the view", b.name, held, b.reserved_usd);
                if b.period == events::BudgetPeriod::Total {
                    let spent: f64 = runtimes.iter().filter(|r| !r.live && r.budgets.contains(&b.name)).map(|r| r.cost.usd.unwrap_or(0.0)).sum();
                    prop_assert!((spent - b.spent_usd).abs() < 1e-6, "budget {}: spent {} by the runtimes, {} by the view", b.name, spent, b.spent_usd);
                }
                if last_reserved.contains(&b.name) {
                    prop_assert!(b.spent_usd + b.reserved_usd <= b.limit_usd + 1e-9,
                        "budget {} overrun after a dispatch: {} spent + {} reserved > {}", b.name, b.spent_usd, b.reserved_usd, b.limit_usd);
                }
            }
        }
    }

    #[test]
    fn a_close_clears_the_failure_for_good(ops in ops(100)) {
        let (w, history) = play(&ops);
        let log = &w.sim.log;
        for (p, ledger) in history.iter().enumerate().skip(1) {
            for t in TICKETS {
                let id = TicketId::parse(t).unwrap();
                let Some(status) = ledger.status(&id) else { continue };
                let Some(reason) = status.failure_reason else { continue };
                let last_close = log[..p].iter().rev().find(|e| e.ticket == id && e.type_name() == "ticket.closed").map(|e| e.position);
                let Some(close) = last_close else { continue };
                let view = ledger.ticket_view(&id, Timestamp(0), &Config::default()).unwrap();
                let current = view.current_runtime.unwrap();
                let ended = ended_position(&log[..p], &current.id);
                prop_assert!(ended.is_some_and(|e| e > close),
                    "{t}: failure {reason} at position {p} but its runtime ended at {ended:?}, before the close at {close}");
            }
        }
    }

    /// The timeline has one entry per event of the ticket, each equal to the status of the
    /// ledger at that event's position.
    #[test]
    fn timeline_matches_time_travel(ops in ops(80)) {
        let (w, history) = play(&ops);
        let id = TicketId::parse("MC-1").unwrap();
        let rows = timeline(&w.sim.log, &id, &w.sim.config);
        let own = w.sim.log.iter().filter(|e| e.ticket == id).count();
        prop_assert_eq!(rows.len(), if w.sim.ledger.contains_ticket(&id) { own } else { 0 });
        for row in rows {
            let at = &history[usize::try_from(row.event.position).unwrap()];
            let status = at.status(&id).unwrap();
            prop_assert_eq!(row.state, status.state);
            prop_assert_eq!(row.next_action, status.next_action);
            prop_assert_eq!(row.failure_reason, status.failure_reason);
        }
    }

    /// The board's indexes never drift from the tickets they index.
    #[test]
    fn board_equals_a_scan_of_every_ticket(ops in ops(80)) {
        let (w, _) = play(&ops);
        board_matches_a_scan(&w.sim.ledger, w.sim.now, &w.sim.config)?;
    }

    /// Folding only a ticket's sources (its stream and those of every ticket a link or park
    /// tied to it) gives the same timeline, and the same view as of every position, as
    /// folding the whole log: what lets the server answer both without reading the log.
    #[test]
    fn timeline_from_sources_equals_full_fold(ops in ops(80)) {
        let (w, history) = play(&ops);
        let log = &w.sim.log;
        for name in TICKETS {
            let id = TicketId::parse(name).unwrap();
            let sources = w.sim.ledger.sources(&id);
            let own: Vec<RecordedEvent> =
                log.iter().filter(|e| sources.contains(&e.ticket)).cloned().collect();
            prop_assert_eq!(
                timeline(&own, &id, &w.sim.config),
                timeline(log, &id, &w.sim.config),
                "{} with sources {:?}", name, sources
            );
            for (i, e) in log.iter().enumerate() {
                let p = e.position;
                let part = as_of(&own, p).ticket_view(&id, e.recorded_at, &w.sim.config);
                let full = history[i + 1].ticket_view(&id, e.recorded_at, &w.sim.config);
                prop_assert_eq!(part, full, "{} as of {}", name, p);
            }
        }
    }
}

// ---- class order independence ----

#[derive(Debug, Clone, Copy)]
enum Fact {
    Completed,
    Killed,
    Cancelled,
    Harvest(u8),
    Reap(u8),
    Aborted,
}

fn fact_data(f: Fact, rt: &str) -> EventData {
    match f {
        Fact::Completed => {
            EventData::RuntimeCompletedByController(events::RuntimeCompletedByController {
                runtime_id: rt.into(),
                reason: "r".into(),
                commit: None,
            })
        }
        Fact::Killed => EventData::RuntimeKilled(events::RuntimeKilled {
            runtime_id: rt.into(),
            reason: "r".into(),
        }),
        Fact::Cancelled => EventData::RuntimeCancelled(events::RuntimeCancelled {
            runtime_id: rt.into(),
            reason: "r".into(),
        }),
        Fact::Harvest(o) => {
            let (outcome, exit_reason) = OUTCOMES[usize::from(o)];
            harvested(rt, outcome, exit_reason)
        }
        Fact::Reap(c) => reaped(rt, CAUSES[usize::from(c)]),
        Fact::Aborted => EventData::RuntimeLaunchAborted(events::RuntimeLaunchAborted {
            runtime_id: rt.into(),
            reason: "r".into(),
            detail: None,
        }),
    }
}

/// One optional fact per rank, so all facts have different ranks.
fn facts() -> impl Strategy<Value = Vec<Fact>> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u8..6),
        prop::option::of(0u8..4),
        any::<bool>(),
    )
        .prop_map(|(c, k, x, h, r, a)| {
            let mut v = Vec::new();
            if c {
                v.push(Fact::Completed)
            }
            if k {
                v.push(Fact::Killed)
            }
            if x {
                v.push(Fact::Cancelled)
            }
            if let Some(h) = h {
                v.push(Fact::Harvest(h))
            }
            if let Some(r) = r {
                v.push(Fact::Reap(r))
            }
            if a {
                v.push(Fact::Aborted)
            }
            v
        })
}

fn class_after(facts: &[Fact]) -> Option<String> {
    let mut w = World::new();
    let rt = w.open_and_dispatch(open("MC-1", "t"), dispatch("MC-1", "k"));
    let data = facts.iter().map(|f| fact_data(*f, &rt)).collect();
    w.sim.append(&id("MC-1"), &watcher(), data);
    let v = w.view("MC-1");
    // failure_reason may depend on order only through *when* the runtime ended, which here is
    // the same moment in both orders, so it must agree too.
    Some(format!("{} {:?}", w.class(&rt), v.failure_reason))
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn class_does_not_depend_on_the_order_of_ranks((a, b) in facts().prop_flat_map(|f| (Just(f.clone()), Just(f).prop_shuffle()))) {
        prop_assert_eq!(class_after(&a), class_after(&b));
    }
}

// ---- apply never panics ----

fn raw_event() -> impl Strategy<Value = (usize, EventData)> {
    let rt = prop::sample::select(vec!["rt_000002", "rt_000003", "rt_x", ""]);
    let text = prop::sample::select(vec![
        "",
        "MC-1",
        "MC-2",
        "MC-404",
        "x y",
        "MC_TICKET_TURN:1:0:00000000",
    ]);
    let data = prop_oneof![
        (text.clone(), any::<bool>()).prop_map(|(t, u)| EventData::TicketOpened(
            events::TicketOpened {
                title: t.into(),
                description: None,
                priority: Priority::High,
                owner: None,
                project: None,
                umbrella: u,
                labels: vec![],
            }
        )),
        (text.clone(), any::<bool>()).prop_map(|(t, c)| EventData::TicketLinked(
            events::TicketLinked {
                relation: relation(c),
                target: t.into()
            }
        )),
        (text.clone(), any::<bool>()).prop_map(|(t, c)| EventData::TicketUnlinked(
            events::TicketUnlinked {
                relation: relation(c),
                target: t.into()
            }
        )),
        text.clone()
            .prop_map(|t| EventData::TicketParked(events::TicketParked {
                waiting_on: vec![t.into()],
                reason: "r".into()
            })),
        (0u8..4).prop_map(|r| EventData::TicketClosed(events::TicketClosed {
            resolution: RESOLUTIONS[usize::from(r)],
            commit: None,
            evidence: None
        })),
        Just(EventData::TicketReopened(events::TicketReopened {
            reason: "r".into()
        })),
        text.clone()
            .prop_map(|t| EventData::TaskUpdated(events::TaskUpdated {
                task_id: t.into(),
                status: events::TaskStatus::Done
            })),
        (rt.clone(), text.clone(), any::<Option<String>>()).prop_map(|(r, k, rep)| {
            EventData::RuntimeDispatched(events::RuntimeDispatched {
                runtime_id: r.into(),
                dispatch_key: k.into(),
                attempt: 1,
                agent: "a".into(),
                profile: None,
                provider: None,
                model: None,
                transport: Transport::Websocket,
                tmux_target: None,
                process_id: None,
                cwd: None,
                nonce: k.into(),
                replaces: rep,
                resume_session: None,
            })
        }),
        (rt.clone(), 0u8..3, text.clone()).prop_map(|(r, v, n)| EventData::RuntimeSignaled(
            events::RuntimeSignaled {
                runtime_id: r.into(),
                verdict: VERDICTS[usize::from(v)],
                nonce: n.into(),
                payload: "é".repeat(700)
            }
        )),
        rt.clone()
            .prop_map(|r| EventData::RuntimeInputSent(events::RuntimeInputSent {
                runtime_id: r.into(),
                text: "t".into()
            })),
        rt.clone()
            .prop_map(|r| EventData::RuntimeActivity(events::RuntimeActivity {
                runtime_id: r.into(),
                note: None
            })),
        (rt.clone(), text.clone()).prop_map(|(r, n)| EventData::RuntimeSwitched(
            events::RuntimeSwitched {
                runtime_id: r.into(),
                agent: None,
                profile: None,
                model: None,
                nonce: n.into()
            }
        )),
        (rt.clone(), 0u8..6).prop_map(|(r, o)| fact_data(Fact::Harvest(o), r)),
        (rt.clone(), 0u8..4).prop_map(|(r, c)| fact_data(Fact::Reap(c), r)),
        rt.clone().prop_map(|r| fact_data(Fact::Killed, r)),
        rt.clone().prop_map(|r| fact_data(Fact::Completed, r)),
        rt.prop_map(|r| fact_data(Fact::Aborted, r)),
    ];
    (0usize..4, data)
}

proptest! {
    #![proptest_config(cfg(256))]

    /// Any sequence of well-typed events, in any order, at any positions (even repeated or
    /// going backwards), folds without a panic, and every view and alert can be built.
    #[test]
    fn apply_never_panics(events in prop::collection::vec((raw_event(), 0u64..50, 0u64..4_000_000), 0..60)) {
        let tickets = ["MC-1", "MC-2", "MC-3", "MC-404"];
        let mut ledger = Ledger::default();
        let mut log = Vec::new();
        for (i, ((t, data), pos_jitter, at)) in events.into_iter().enumerate() {
            let position = u64::try_from(i).unwrap() + 1 - pos_jitter.min(u64::try_from(i).unwrap());
            let e = RecordedEvent {
                position,
                ticket: TicketId::parse(tickets[t]).unwrap(),
                version: position,
                id: format!("e{i}"),
                recorded_at: Timestamp(at),
                actor: agent(),
                token_id: None,
                data,
                prev_hash: events::Hash::ZERO,
                hash: events::Hash::ZERO,
            };
            ledger.apply(&e);
            log.push(e);
        }
        let cfg = Config::default();
        for now in [Timestamp(0), Timestamp(5_000_000)] {
            // Odd events too (a close of a closed ticket, a reopen of an open one).
            board_matches_a_scan(&ledger, now, &cfg)?;
            let _ = ledger.alerts(now, &cfg);
            let _ = ledger.tickets(&Default::default(), None, 100, now, &cfg);
            let _ = ledger.runtimes(&Default::default(), None, 100, now, &cfg);
            for t in tickets {
                let id = TicketId::parse(t).unwrap();
                let _ = ledger.ticket_view(&id, now, &cfg);
                let _ = timeline(&log, &id, &cfg);
                // Decisions on a ledger built from odd events must not panic either.
                for cmd in [dispatch(t, "k"), comment(t, "c"), close(t, Resolution::Done), reopen(t), link(t, Relation::ChildOf, "MC-1")] {
                    let _ = projections::decide(&ledger, &cmd, &projections::Context::new(now, "rt_new", "n"));
                }
            }
            for r in ["rt_000002", "rt_000003", "rt_x", ""] {
                for cmd in [retry(r, true), kill(r), signal(r, Verdict::Done, "x", "p"), harvest(r, H::Failed, X::Error), activity(r)] {
                    let _ = projections::decide(&ledger, &cmd, &projections::Context::new(now, "rt_new", "n"));
                }
            }
        }
        let json = serde_json::to_string(&ledger).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, ledger);
    }
}

fn subscription_command(s: usize, what: u8, f: u8) -> Command {
    let name = ["s0", "s1"][s % 2].to_owned();
    match what {
        0 => Command::ConfigureSubscription {
            config: events::SubscriptionConfigured {
                name,
                url: "http://127.0.0.1:9/hook".into(),
                format: [
                    events::NoticeFormat::Json,
                    events::NoticeFormat::Slack,
                    events::NoticeFormat::Telegram,
                ][usize::from(f % 3)],
                filter: events::SubscriptionFilter {
                    alerts: vec!["worker_lost".into()],
                    ..Default::default()
                },
                remind_every_ms: Some(60_000),
                chat_id: Some("42".into()),
                secret_id: format!("{f:016x}"),
            },
        },
        1 => Command::PauseSubscription { name, reason: None },
        2 => Command::ResumeSubscription { name },
        3 => Command::ReplaySubscription {
            name,
            from_position: 1,
        },
        4 => Command::ParkDelivery {
            parked: events::SubscriptionParked {
                name,
                delivery_id: format!("d{f}"),
                position: 1,
                attempts: 3,
                error: "HTTP 500".into(),
            },
        },
        _ => Command::DeleteSubscription { name },
    }
}

#[test]
fn command_builders_cover_every_command() {
    // Keeps the property generators honest: if Command grows a variant, this match fails to
    // compile until the generator (and this list) learns it.
    fn covered(c: &Command) -> bool {
        match c {
            Command::Open { .. }
            | Command::Edit { .. }
            | Command::Comment { .. }
            | Command::Link { .. }
            | Command::Unlink { .. }
            | Command::Park { .. }
            | Command::Gate { .. }
            | Command::Close { .. }
            | Command::Reopen { .. }
            | Command::AddTask { .. }
            | Command::UpdateTask { .. }
            | Command::Dispatch { .. }
            | Command::Signal { .. }
            | Command::Harvest { .. }
            | Command::Reap { .. }
            | Command::Kill { .. }
            | Command::Cancel { .. }
            | Command::Switch { .. }
            | Command::Retry { .. }
            | Command::Complete { .. }
            | Command::Input { .. }
            | Command::Activity { .. }
            | Command::AbortLaunch { .. }
            | Command::RequestInput { .. }
            | Command::EndSession { .. }
            | Command::ConfigurePool { .. }
            | Command::ConfigureBudget { .. }
            | Command::ConfigureSubscription { .. }
            | Command::PauseSubscription { .. }
            | Command::ResumeSubscription { .. }
            | Command::ReplaySubscription { .. }
            | Command::DeleteSubscription { .. }
            | Command::ParkDelivery { .. } => true,
        }
    }
    assert!(covered(&comment("MC-1", "x")));
}
