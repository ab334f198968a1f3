//! Budgets over HTTP with the real binary (SPEC §16), on both stores: 16 racing dispatches
//! into a budget with room for exactly 3 reservations, on sled and through two PostgreSQL
//! replicas: exactly 3 win, the losers are 409 `budget_exhausted` with the numbers and append
//! nothing; a harvest turns a reservation into spend; a restart keeps it all; the CLI, the
//! console and `/metrics` show it; bad budgets are clear 4xx.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};

const RACERS: usize = 16;

/// A budget of $10, each racer asking $3: room for exactly 3. Returns the winners' runtime ids, sorted.
fn race(addrs: &[SocketAddr]) -> Vec<String> {
    orchestrated(
        addrs[0],
        "/v1/budgets",
        json!({"name": "team", "scope": {"kind": "all"}, "limit_usd": 10.0, "period": "day"}),
    );
    let (winners, appended) = race_winners(
        addrs,
        RACERS,
        &json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "max_budget_usd": 3.0}),
        |body| {
            assert_eq!(body["code"], "budget_exhausted", "{body}");
            assert_eq!(body["budget"], "team", "{body}");
            assert_eq!(body["limit_usd"], 10.0, "{body}");
            assert_eq!(body["reserved_usd"], 9.0, "{body}");
            assert_eq!(body["reservation_usd"], 3.0, "{body}");
        },
    );
    assert_eq!(winners.len(), 3, "exactly 3 win");
    // Each winner appended dispatched + budgeted on its ticket and reserved on the budget.
    assert_eq!(appended, 3 * 3);
    winners
}

fn check(addr: SocketAddr, winners: &[String], spent: f64) {
    let b = get(addr, "/v1/budgets/team").json();
    let mut holders = strs(b["holders"].as_array().unwrap(), "runtime_id");
    // The view lists them by start; the winners come sorted by id.
    holders.sort_unstable();
    let live: Vec<&str> = winners
        .iter()
        .map(String::as_str)
        .filter(|w| get(addr, &format!("/v1/runtimes/{w}")).json()["live"] == true)
        .collect();
    assert_eq!(holders, live, "{b}");
    let reserved = 3.0 * live.len() as f64;
    assert_eq!(
        (b["spent_usd"].as_f64(), b["reserved_usd"].as_f64()),
        (Some(spent), Some(reserved)),
        "{b}"
    );
    assert_eq!(b["remaining_usd"].as_f64(), Some(10.0 - spent - reserved));
    for w in winners {
        let r = get(addr, &format!("/v1/runtimes/{w}")).json();
        assert_eq!(r["max_budget_usd"], 3.0, "{r}");
        assert_eq!(r["budgets"], json!(["team"]), "{r}");
    }
}

/// A harvest with a cost turns one reservation into its spend, with no budget write.
fn harvest_one(addr: SocketAddr, winners: &[String]) {
    let version = get(addr, "/v1/budgets/team").json()["version"].clone();
    orchestrated(
        addr,
        &format!("/v1/runtimes/{}/harvest", winners[0]),
        json!({"outcome": "completed", "exit_reason": "success", "cost_usd": 1.25}),
    );
    assert_eq!(get(addr, "/v1/budgets/team").json()["version"], version);
}

#[test]
fn sixteen_racers_on_sled_reserve_exactly_three_and_a_restart_keeps_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(dir.path());
    let winners = race(&[server.addr]);
    check(server.addr, &winners, 0.0);
    harvest_one(server.addr, &winners);
    check(server.addr, &winners, 1.25);
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    let mut server = spawn_binary(dir.path());
    check(server.addr, &winners, 1.25);
    // $10 − $1.25 spent − $6 reserved leaves $2.75: a $3 run is refused, a $2.75 one fits.
    let addr = server.addr;
    orchestrated(
        addr,
        "/v1/tickets",
        json!({"id": "MC-17", "title": "after the race"}),
    );
    let asking = |usd: f64| {
        post(
            addr,
            "/v1/tickets/MC-17/dispatch",
            &with_actor(
                json!({"dispatch_key": "k2", "agent": "claude", "transport": "tmux", "max_budget_usd": usd}),
                "luci",
                "orchestrator",
            ),
        )
    };
    let before = event_count(addr);
    let r = asking(3.0);
    assert_eq!(
        (r.status, r.json()["spent_usd"].as_f64()),
        (409, Some(1.25)),
        "{}",
        r.body
    );
    assert_eq!(event_count(addr), before, "a refusal appends nothing");
    assert_eq!(asking(2.75).status, 201);
    let b = get(addr, "/v1/budgets/team").json();
    assert_eq!(
        (b["remaining_usd"].as_f64(), b["status"].as_str()),
        (Some(0.0), Some("exhausted"))
    );
    assert_alert(addr, "budget_exhausted", "budget", "team");
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

#[test]
fn sixteen_racers_through_two_postgres_replicas_reserve_exactly_three() {
    let pg = PgSchema::new("budgets");
    let (mut replicas, addrs) = spawn_replicas(&pg.store_url(), 2);
    let winners = race(&addrs);
    for addr in &addrs {
        check(*addr, &winners, 0.0);
    }
    harvest_one(addrs[1], &winners);
    caught_up(&addrs);
    for addr in &addrs {
        check(*addr, &winners, 1.25);
    }
    stop_all(&mut replicas);
}

#[test]
fn the_cli_console_and_metrics_show_budgets_and_bad_ones_are_clear_4xx() {
    let (_dir, mut server) = spawn_temp_binary();
    let addr = server.addr;
    let url = format!("http://{addr}");
    let create = [
        "budget",
        "create",
        "claude-daily",
        "--scope",
        "agent",
        "--value",
        "claude",
        "--limit-usd",
        "20",
        "--period",
        "day",
        "--server",
        &url,
    ];
    let out = mc_ledger_ok(&create);
    assert!(out.contains("claude-daily saved"), "{out}");
    let out = mc_ledger_ok(&create);
    assert!(out.contains("unchanged"), "{out}");
    orchestrated(addr, "/v1/tickets", json!({"id": "MC-1", "title": "t"}));
    orchestrated(
        addr,
        "/v1/tickets/MC-1/dispatch",
        json!({"dispatch_key": "k", "agent": "claude", "transport": "tmux", "tmux_target": "x"}),
    );
    let list = mc_ledger_ok(&["budget", "list", "--server", &url]);
    let row = list
        .lines()
        .find(|l| l.starts_with("claude-daily"))
        .expect(&list);
    assert!(
        row.contains("agent:claude") && row.contains("$20.00") && row.contains("$2.00"),
        "the default reservation is a tenth of the limit: {row}"
    );
    let show: Value = serde_json::from_str(&mc_ledger_ok(&[
        "budget",
        "show",
        "claude-daily",
        "--server",
        &url,
    ]))
    .unwrap();
    assert_eq!(show["holders"].as_array().unwrap().len(), 1, "{show}");
    let board = get(addr, "/").body;
    assert!(
        board.contains("data-budget=\"claude-daily\""),
        "the board's header"
    );
    let alerts_page = get(addr, "/alerts").body;
    assert!(
        alerts_page.contains("id=\"budgets\""),
        "the Budgets section"
    );
    let metrics = get(addr, "/metrics").body;
    for line in [
        "mc_ledger_budget_limit_usd{budget=\"claude-daily\"} 20.0",
        "mc_ledger_budget_reserved_usd{budget=\"claude-daily\"} 2.0",
        "mc_ledger_budget_spent_usd{budget=\"claude-daily\"} 0.0",
        "mc_ledger_alerts{kind=\"budget_near\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    let before = event_count(addr);
    for (body, status, field) in [
        (
            json!({"name": "b", "scope": {"kind": "all"}}),
            422,
            "limit_usd",
        ),
        (json!({"name": "b", "limit_usd": 1.0}), 422, "scope"),
        (
            json!({"name": "b", "scope": {"kind": "all"}, "limit_usd": -1.0}),
            422,
            "limit_usd",
        ),
        (
            json!({"name": "b", "scope": {"kind": "agent"}, "limit_usd": 1.0}),
            422,
            "scope.value",
        ),
        (
            json!({"name": "b", "scope": {"kind": "nope"}, "limit_usd": 1.0}),
            422,
            "",
        ),
        (
            json!({"name": "claude-daily", "scope": {"kind": "agent", "value": "claude"}, "limit_usd": 20.0, "period": "month"}),
            422,
            "period",
        ),
    ] {
        let r = post(
            addr,
            "/v1/budgets",
            &with_actor(body.clone(), "luci", "orchestrator"),
        );
        assert_eq!(r.status, status, "{body}: {}", r.body);
        if !field.is_empty() {
            assert_eq!(r.json()["field"], field, "{body}: {}", r.body);
        }
    }
    let r = post(
        addr,
        "/v1/tickets/MC-1/dispatch",
        &with_actor(
            json!({"dispatch_key": "k9", "agent": "claude", "transport": "tmux", "replace": true, "max_budget_usd": -2}),
            "luci",
            "orchestrator",
        ),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = get(addr, "/v1/budgets/nope");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("budget_not_found"))
    );
    assert_eq!(event_count(addr), before, "nothing appended");
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}
