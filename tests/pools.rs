//! Pools over HTTP with the real binary (SPEC §14), on both stores: racing dispatches into a
//! pool of capacity k take exactly k slots (on PostgreSQL, through two replicas at once), the
//! losers are 409 `pool_full` with the holders and append nothing, an ending frees its slot,
//! and a restart keeps pools and holders.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};

const RACERS: usize = 12;
const CAPACITY: u64 = 3;

fn orchestrator(mut body: Value) -> Value {
    body["actor"] = json!({"name": "luci", "kind": "orchestrator"});
    body
}

fn holders(addr: SocketAddr) -> Vec<String> {
    let pool = get(addr, "/v1/pools/gpu").json();
    let mut ids: Vec<String> = pool["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["runtime_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Opens the pool and the racers' tickets through `addrs[0]`, then every racer dispatches at
/// once, through the replicas in turn. Returns the winners' runtime ids.
fn race(addrs: &[SocketAddr]) -> Vec<String> {
    orchestrated(
        addrs[0],
        "/v1/pools",
        json!({"name": "gpu", "capacity": CAPACITY}),
    );
    let (winners, appended) = race_winners(
        addrs,
        RACERS,
        &json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "pool": "gpu"}),
        |body| {
            assert_eq!(body["code"], "pool_full", "{body}");
            assert_eq!(body["capacity"], CAPACITY, "{body}");
            assert_eq!(
                body["holders"].as_array().unwrap().len(),
                usize::try_from(CAPACITY).unwrap(),
                "{body}"
            );
        },
    );
    assert_eq!(
        winners.len(),
        usize::try_from(CAPACITY).unwrap(),
        "exactly k win"
    );
    // The log holds the winners' appends and nothing of the losers': three events each
    // (dispatched and pooled on the ticket, admitted on the pool).
    assert_eq!(appended, winners.len() * 3);
    winners
}

fn check_after_race(addr: SocketAddr, winners: &[String]) {
    assert_eq!(holders(addr), winners);
    let pool = get(addr, "/v1/pools/gpu").json();
    assert_eq!(
        (pool["free"].as_u64(), pool["capacity"].as_u64()),
        (Some(0), Some(CAPACITY))
    );
    assert!(pool["full_since"].is_string(), "{pool}");
    let list = get(addr, "/v1/pools").json();
    assert_eq!(list["pools"].as_array().unwrap().len(), 1, "{list}");
    for w in winners {
        assert_eq!(
            get(addr, &format!("/v1/runtimes/{w}")).json()["pool"],
            "gpu"
        );
    }
}

/// One of them ends: its slot is free with no pool write, and a loser gets in.
fn an_ending_frees_a_slot(addrs: &[SocketAddr], winners: &[String]) {
    let pool_version = get(addrs[0], "/v1/pools/gpu").json()["version"].clone();
    orchestrated(
        addrs[0],
        &format!("/v1/runtimes/{}/reap", winners[0]),
        json!({"cause": "tmux_missing"}),
    );
    caught_up(addrs);
    let last = addrs[addrs.len() - 1];
    assert_eq!(get(last, "/v1/pools/gpu").json()["version"], pool_version);
    assert_eq!(holders(last).len(), usize::try_from(CAPACITY).unwrap() - 1);
    // The first loser's ticket: the lowest-numbered ticket without a runtime.
    let loser = (1..=RACERS)
        .map(|i| format!("MC-{i}"))
        .find(|t| get(addrs[0], &format!("/v1/tickets/{t}")).json()["current_runtime"].is_null())
        .unwrap();
    let d = orchestrated(
        last,
        &format!("/v1/tickets/{loser}/dispatch"),
        json!({"dispatch_key": "k2", "agent": "claude", "transport": "tmux", "tmux_target": "x", "pool": "gpu"}),
    );
    assert_eq!(d["version"], 3, "the ticket's version, not the pool's: {d}");
    assert_eq!(holders(last).len(), usize::try_from(CAPACITY).unwrap());
}

#[test]
fn racing_dispatches_take_exactly_capacity_slots_on_sled_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(dir.path());
    let winners = race(&[server.addr]);
    check_after_race(server.addr, &winners);
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    let mut server = spawn_binary(dir.path());
    check_after_race(server.addr, &winners);
    an_ending_frees_a_slot(&[server.addr], &winners);
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

#[test]
fn racing_dispatches_through_two_postgres_replicas_take_exactly_capacity_slots() {
    let pg = PgSchema::new("pools");
    let url = pg.store_url();
    let (mut replicas, addrs) = spawn_replicas(&url, 2);
    let winners = race(&addrs);
    for addr in &addrs {
        // Each replica catches up on reads.
        check_after_race(*addr, &winners);
    }
    stop_all(&mut replicas);
    let (mut fresh, addrs) = spawn_replicas(&url, 2);
    check_after_race(addrs[0], &winners);
    an_ending_frees_a_slot(&addrs, &winners);
    stop_all(&mut fresh);
}

#[test]
fn bad_pool_requests_are_clear_4xx_and_change_nothing() {
    let (_dir, mut server) = spawn_temp_binary();
    let addr = server.addr;
    orchestrated(addr, "/v1/tickets", json!({"id": "MC-1", "title": "t"}));
    let head = || event_count(addr);
    let before = head();
    for (body, status, code) in [
        (json!({"name": "gpu"}), 422, "invalid"),
        (json!({"name": "has space", "capacity": 1}), 422, "invalid"),
        (json!({"name": "gpu", "capacity": 10_001}), 422, "invalid"),
        (json!({"name": "gpu", "capacity": -1}), 422, "invalid"),
        (json!({"capacity": 1}), 422, "invalid"),
    ] {
        let r = post(addr, "/v1/pools", &orchestrator(body.clone()));
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            r.body
        );
    }
    let r = post(
        addr,
        "/v1/tickets/MC-1/dispatch",
        &orchestrator(
            json!({"dispatch_key": "k", "agent": "a", "transport": "tmux", "pool": "nope"}),
        ),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("pool_not_found")),
        "{}",
        r.body
    );
    let r = get(addr, "/v1/pools/nope");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("pool_not_found"))
    );
    let r = post(
        addr,
        "/v1/tickets",
        &orchestrator(json!({"id": "POOL-1", "title": "t"})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(head(), before, "nothing appended");
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}
