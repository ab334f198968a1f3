//! SIGTERM under load: the real binary is stopped while clients write; it exits 0, every
//! acknowledged write is in the log after a restart, and the restart (from its snapshot)
//! serves the same views as a rebuild from the log alone.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn sigterm_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(dir.path());
    let addr = server.addr;
    for i in 0..8 {
        open_ticket_as(addr, &format!("MC-{i}"), "load", ("a", "human"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = with_actor(
                        json!({"body": format!("writer {w} comment {n}")}),
                        "a",
                        "human",
                    );
                    let Some(r) = try_request(
                        addr,
                        "POST",
                        &format!("/v1/tickets/MC-{w}/comments"),
                        Some(&body.to_string()),
                        None,
                    ) else {
                        continue; // refused: the server has stopped accepting
                    };
                    if r.status == 201 {
                        acked.lock().unwrap().push(first_event(&r.json()));
                    } else {
                        // A connection reset during shutdown reads as status 0; nothing else
                        // but success is acceptable.
                        assert_eq!(r.status, 0, "{}", r.body);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let status = sigterm(&mut server.child);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "load ran: {} acked", acked.len());

    // Restart from the snapshot: every acknowledged event is there.
    let mut server = spawn_binary(dir.path());
    let mut seen = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = get(server.addr, &format!("/v1/events?after={after}&limit=1000")).json();
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        for e in &events {
            seen.insert(
                e["id"].as_str().unwrap().to_owned(),
                e["position"].as_u64().unwrap(),
            );
            after = e["position"].as_u64().unwrap();
        }
    }
    for (position, id) in &acked {
        assert_eq!(
            seen.get(id),
            Some(position),
            "acknowledged {id} at {position}"
        );
    }
    let from_snapshot: Value = get(server.addr, "/v1/tickets?limit=1000").json();
    assert_eq!(sigterm(&mut server.child).code(), Some(0));

    // Without the snapshot the server refolds the log: the same views.
    std::fs::remove_file(dir.path().join("projections.snapshot")).unwrap();
    let mut server = spawn_binary(dir.path());
    let rebuilt: Value = get(server.addr, "/v1/tickets?limit=1000").json();
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    // These tickets have no runtimes, so their views hold nothing clock-dependent.
    assert_eq!(from_snapshot, rebuilt);
}
