//! SPEC §14's property on both stores: over generated command sequences sent through the
//! router (dispatch and retry into a pool, replace, every way a runtime ends, resizing), after
//! every command the pool's holders are exactly the live runtimes admitted into it, and never
//! more than its capacity. Each case runs on the sled store or, in a schema of its own, on the
//! PostgreSQL store (`MC_LEDGER_TEST_PG`, default the local cluster).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{json, Value};
use tower::ServiceExt;

const TICKETS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Resize(u32),
    Dispatch { t: usize, key: u8, replace: bool },
    Retry(usize),
    End(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u32..4).prop_map(Op::Resize),
        4 => (0..TICKETS, 0u8..3, any::<bool>()).prop_map(|(t, key, replace)| Op::Dispatch { t, key, replace }),
        2 => (0..TICKETS).prop_map(Op::Retry),
        3 => (0..TICKETS, 0u8..7).prop_map(|(t, how)| Op::End(t, how)),
    ]
}

struct Store {
    app: Router,
    _dir: Option<tempfile::TempDir>,
    pg: Option<store_pg::PgConfig>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(pg) = &self.pg {
            let _ = store_pg::PgStore::drop_schema(pg);
        }
    }
}

fn open(on_pg: bool, case: u32) -> Store {
    if on_pg {
        let url = std::env::var("MC_LEDGER_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("t_pool_props_{}_{case}", std::process::id());
        let pg = store_pg::PgConfig::parse(&url, Some(&schema)).expect("url");
        store_pg::PgStore::drop_schema(&pg).expect("PostgreSQL is up (scripts/test.sh starts it)");
        let opened = api::server::open_url(
            &service::home::StoreUrl::Postgres(pg.clone()),
            store_sled::log::LogConfig::default(),
        )
        .expect("opens");
        Store {
            app: api::server::app(opened.state),
            _dir: None,
            pg: Some(pg),
        }
    } else {
        let dir = tempfile::tempdir().unwrap();
        let opened = api::server::open(dir.path()).expect("opens");
        Store {
            app: api::server::app(opened.state),
            _dir: Some(dir),
            pg: None,
        }
    }
}

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    let body = match body {
        Some(mut b) => {
            b["actor"] = json!({"name": "luci", "kind": "orchestrator"});
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn current(app: &Router, t: usize) -> Option<String> {
    let (_, v) = call(app, "GET", &format!("/v1/tickets/MC-{}", t + 1), None).await;
    v["current_runtime"]["id"].as_str().map(str::to_owned)
}

async fn play(on_pg: bool, case: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = open(on_pg, case);
    let app = &store.app;
    let (s, v) = call(
        app,
        "POST",
        "/v1/pools",
        Some(json!({"name": "gpu", "capacity": 2})),
    )
    .await;
    prop_assert_eq!(s, 201, "{}", v);
    for t in 0..TICKETS {
        let (s, _) = call(
            app,
            "POST",
            "/v1/tickets",
            Some(json!({"id": format!("MC-{}", t + 1), "title": "t"})),
        )
        .await;
        prop_assert_eq!(s, 201);
    }
    for (step, op) in ops.iter().enumerate() {
        let (status, answer) = match op {
            Op::Resize(capacity) => {
                call(
                    app,
                    "POST",
                    "/v1/pools",
                    Some(json!({"name": "gpu", "capacity": capacity})),
                )
                .await
            }
            Op::Dispatch { t, key, replace } => {
                let body = json!({"dispatch_key": format!("k{key}-{step}"), "agent": "claude", "transport": "tmux",
                                  "tmux_target": "x", "pool": "gpu", "replace": replace});
                call(
                    app,
                    "POST",
                    &format!("/v1/tickets/MC-{}/dispatch", t + 1),
                    Some(body),
                )
                .await
            }
            Op::Retry(t) => match current(app, *t).await {
                Some(rt) => {
                    call(
                        app,
                        "POST",
                        &format!("/v1/runtimes/{rt}/retry"),
                        Some(json!({})),
                    )
                    .await
                }
                None => continue,
            },
            Op::End(t, how) => {
                let Some(rt) = current(app, *t).await else {
                    continue;
                };
                let (path, body) = match how {
                    0 => ("reap", json!({"cause": "tmux_missing"})),
                    1 => ("kill", json!({"reason": "r"})),
                    2 => ("cancel", json!({"reason": "r"})),
                    3 => (
                        "harvest",
                        json!({"outcome": "completed", "exit_reason": "success"}),
                    ),
                    4 => ("complete", json!({"reason": "r"})),
                    5 => ("abort", json!({"reason": "r"})),
                    _ => (
                        "hooks/claude",
                        json!({"hook_event_name": "SessionEnd", "reason": "other"}),
                    ),
                };
                call(
                    app,
                    "POST",
                    &format!("/v1/runtimes/{rt}/{path}"),
                    Some(body),
                )
                .await
            }
        };
        prop_assert!(status < 500, "{:?}: {} {}", op, status, answer);
        if status == 409 && answer["code"] == "pool_full" {
            prop_assert!(answer["holders"].is_array());
        }
        let (_, pool) = call(app, "GET", "/v1/pools/gpu", None).await;
        let holders: BTreeSet<String> = pool["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["runtime_id"].as_str().unwrap().to_owned())
            .collect();
        let (_, live) = call(app, "GET", "/v1/runtimes?live=true&limit=1000", None).await;
        let admitted: BTreeSet<String> = live["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["pool"] == "gpu")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        prop_assert_eq!(&holders, &admitted, "after {:?} ({})", op, answer);
        let capacity = pool["capacity"].as_u64().unwrap();
        prop_assert!(
            u64::try_from(holders.len()).unwrap() <= capacity,
            "{} holders, capacity {}",
            holders.len(),
            capacity
        );
    }
    Ok(())
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::from(nanos));
    c.rng_seed = RngSeed::Fixed(seed);
    println!("pool property seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    c
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn holders_are_the_live_runtimes_admitted_on_both_stores(
        ops in proptest::collection::vec(op(), 1..30),
        on_pg in any::<bool>(),
    ) {
        static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(play(on_pg, case, &ops))?;
    }
}
