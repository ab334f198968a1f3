//! PostgreSQL killed mid-commit (`pg_ctlcluster … stop -m immediate`, which is a crash: no
//! checkpoint, recovery from the WAL at the next start) under load from a replica: no
//! acknowledged event is lost, a command sent again after a 503 (same `Idempotency-Key`) is
//! recorded once, the chain verifies, and the replica recovers without a restart. Slow (and it stops the local cluster for a moment), so behind
//! `MC_LEDGER_SLOW_TESTS=1`, which CI sets; it needs the local cluster, not `MC_LEDGER_TEST_PG`.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn cluster_version() -> String {
    let entries = std::fs::read_dir("/etc/postgresql").expect("a local PostgreSQL cluster");
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a cluster version")
}

fn cluster(action: &str, version: &str) -> bool {
    let mut args = vec!["--skip-systemctl-redirect", version, "main", action];
    if action == "stop" {
        args.extend(["-m", "immediate"]);
    }
    Command::new("pg_ctlcluster")
        .args(&args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the cluster again however the test ends.
struct Restart(String);

impl Drop for Restart {
    fn drop(&mut self) {
        cluster("start", &self.0);
    }
}

#[test]
fn no_acknowledged_event_is_lost_when_postgres_crashes_mid_commit() {
    if std::env::var("MC_LEDGER_SLOW_TESTS").is_err() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (it stops the local PostgreSQL cluster)");
        return;
    }
    let version = cluster_version();
    let pg = PgSchema::new("crash");
    let url = pg.store_url();
    let mut replica = spawn_serve(&["--store", &url]);
    let addr = replica.addr;
    // One ticket per writer: this test is about the database, not about races on a ticket.
    for w in 0..8 {
        open_ticket_as(addr, &format!("MC-{w}"), "crash", ("t", "human"));
    }

    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(Mutex::new(0u32));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, stop, refused) = (acked.clone(), stop.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = with_actor(json!({"body": format!("w{w} {n}")}), "t", "human");
                    let key = format!("w{w}-{n}");
                    // A client that retries with the same key until it gets an answer.
                    loop {
                        let reply = try_request_with(
                            addr,
                            "POST",
                            &format!("/v1/tickets/MC-{w}/comments"),
                            Some(&body.to_string()),
                            None,
                            &[("Idempotency-Key", &key)],
                        );
                        match reply {
                            Some(r) if r.status == 201 || r.status == 200 => {
                                let id = r.json()["events"][0]["id"].as_str().unwrap().to_owned();
                                acked.lock().unwrap().push(id);
                                break;
                            }
                            Some(r) => {
                                assert_eq!(
                                    r.status, 503,
                                    "only 503 while the database is down: {}",
                                    r.body
                                );
                                *refused.lock().unwrap() += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            None => panic!("the replica stays up"),
                        }
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = acked.lock().unwrap().len();
    let _restart = Restart(version.clone());
    assert!(cluster("stop", &version), "pg_ctlcluster stop -m immediate");
    std::thread::sleep(Duration::from_millis(1000));
    assert!(cluster("start", &version), "pg_ctlcluster start");
    let started = Instant::now();
    while get(addr, "/readyz").status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica recovers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u32> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before, "appends went on after the crash");
    eprintln!(
        "acknowledged {} ({} before the crash), refused {} with 503",
        acked.len(),
        before,
        refused.lock().unwrap()
    );

    // What the database holds, read by a fresh process: every acknowledged id, every comment
    // once although refused tries were sent again, a sound chain.
    let text = mc_ledger_ok(&["export", "--store", &url]);
    let mut bodies: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(b) = e["data"]["body"].as_str() {
            *bodies.entry(b.to_owned()).or_default() += 1;
        }
    }
    for (w, last) in sent.iter().enumerate() {
        for n in 1..=*last {
            let body = format!("w{w} {n}");
            assert_eq!(bodies.get(&body), Some(&1), "{body:?} is recorded once");
        }
    }
    let stored: std::collections::HashSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for id in &acked {
        assert!(
            stored.contains(id),
            "acknowledged event {id} was lost in the crash"
        );
    }
    mc_ledger_ok(&["verify", "--store", &url]);
    let _ = replica.child.kill();
    let _ = replica.child.wait();
}
