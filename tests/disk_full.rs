//! SPEC §17, a full disk: the real binary on a small tmpfs this test mounts, written to until
//! the disk is full. Every refusal is 503 `store_unavailable` with `Retry-After`, never a 500;
//! `/readyz` is 503 while appends cannot commit; after the filesystem grows a write is answered
//! (503 or 201, never a hang to the 30 s request timeout) and the server recovers by itself
//! (it restarts in place, keeping its listening socket: no connection is refused or left
//! unanswered meanwhile, and the PID stays): the keyed write lands and `/readyz` is 200;
//! SIGTERM ends it within
//! 10 s; after a restart everything acknowledged is there, `verify` passes, and the keyed
//! retries of what was refused are recorded once each. Behind `MC_LEDGER_SLOW_TESTS=1`; the
//! mount needs root (CI runs as root): without it the test says so and fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A tmpfs mounted for the test, unmounted when it ends (panics included).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root, as CI has): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }

    fn grow(&self, size: &str) {
        run_ok(
            Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.0),
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A 60 KiB comment that does not compress (PostgreSQL's TOAST would shrink a repeated one).
fn comment(n: usize) -> serde_json::Value {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ n as u64;
    let noise: String = (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    [(x % 62) as usize],
            )
        })
        .collect();
    json!({"body": format!("{n:05} {noise}"), "actor": {"name": "ops", "kind": "human"}})
}

/// Comments until the disk refuses five: which were acknowledged, which refused. Every
/// refusal is 503 `store_unavailable` with `Retry-After`, never a 500.
fn fill(addr: std::net::SocketAddr) -> (Vec<usize>, Vec<usize>) {
    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for n in 0..400 {
        let r = post_keyed(
            addr,
            "/v1/tickets/MC-1/comments",
            &comment(n),
            &format!("c-{n}"),
        );
        match r.status {
            201 => acknowledged.push(n),
            503 => {
                assert_eq!(r.json()["code"], "store_unavailable", "{}", r.body);
                assert!(r.header("retry-after").is_some(), "Retry-After on 503");
                refused.push(n);
                if refused.len() >= 5 {
                    break;
                }
            }
            other => panic!("comment {n}: {other} {}", r.body),
        }
    }
    (acknowledged, refused)
}

/// Sends each refused comment again with its key; then every acknowledged and every refused
/// comment is there exactly once.
fn retried_once_each(addr: std::net::SocketAddr, acknowledged: &[usize], refused: &[usize]) {
    for n in refused {
        let r = post_keyed(
            addr,
            "/v1/tickets/MC-1/comments",
            &comment(*n),
            &format!("c-{n}"),
        );
        assert!(
            matches!(r.status, 200 | 201),
            "retry of {n}: {} {}",
            r.status,
            r.body
        );
    }
    let there: Vec<String> = get(addr, "/v1/tickets/MC-1/comments?limit=1000").json()["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap()[..5].to_owned())
        .collect();
    for n in acknowledged.iter().chain(refused) {
        let copies = there.iter().filter(|b| **b == format!("{n:05}")).count();
        assert_eq!(copies, 1, "comment {n} recorded once");
    }
}

/// `mc_ledger_store_ready` is 1 exactly when `/readyz` is 200: read between two `/readyz`
/// that agree (a stalled flush may finish in between and the state move on).
fn assert_metrics_agree_with_readyz(addr: std::net::SocketAddr) {
    for _ in 0..20 {
        let before = get(addr, "/readyz").status;
        let metrics = get(addr, "/metrics");
        let after_reply = get(addr, "/readyz");
        let after = after_reply.status;
        if before != after {
            continue;
        }
        assert_eq!(metrics.status, 200);
        let want = format!("\nmc_ledger_store_ready {}\n", u8::from(after == 200));
        assert!(
            metrics.body.contains(&want),
            "/readyz {after} {}: {}",
            after_reply.body,
            metrics.body
        );
        return;
    }
    panic!("/readyz kept changing");
}

/// Opens MC-1, the ticket the comments go to.
fn open_ticket(addr: std::net::SocketAddr) {
    let open = post(
        addr,
        "/v1/tickets",
        &json!({"id": "MC-1", "title": "fill the disk", "actor": {"name": "ops", "kind": "human"}}),
    );
    assert_eq!(open.status, 201, "{}", open.body);
}

/// A server on a fresh 12 MiB tmpfs with ticket MC-1 open.
fn on_small_disk(dir: &Path) -> (Tmpfs, String, Child) {
    let disk = Tmpfs::mount(dir, "12m");
    let data = dir.join("data").to_string_lossy().into_owned();
    let server = spawn_serve(&["--data-dir", &data]);
    open_ticket(server.addr);
    (disk, data, server)
}

#[test]
fn sigterm_on_a_full_disk_ends_the_server_within_ten_seconds() {
    if !slow_tests("mounts a tmpfs; needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_disk, _, mut server) = on_small_disk(dir.path());
    let (_, refused) = fill(server.addr);
    assert!(!refused.is_empty());
    // Given the disk full, when SIGTERMed while a write is in flight, then the server is gone
    // within 10 s and that write was not acknowledged.
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        try_request_with(
            addr,
            "POST",
            "/v1/tickets/MC-1/comments",
            Some(&comment(500).to_string()),
            None,
            &[("Idempotency-Key", "c-500")],
        )
        .map_or(0, |r| r.status)
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = sigterm(&mut server.child);
    let took = started.elapsed();
    eprintln!("SIGTERM on a full disk: {status} after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let answered = in_flight.join().unwrap();
    eprintln!("the write in flight was answered {answered}");
    assert_ne!(answered, 201, "the in-flight write was not acknowledged");
}

#[test]
fn a_full_disk_is_503_never_500_and_loses_nothing_acknowledged() {
    if !slow_tests("mounts a tmpfs; needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, data_arg, mut server) = on_small_disk(dir.path());

    // Given 60 KiB comments, each with its own key, when the 12 MiB disk fills,
    let (mut acknowledged, refused) = fill(server.addr);
    assert!(
        !refused.is_empty(),
        "the disk filled ({} acknowledged)",
        acknowledged.len()
    );
    eprintln!(
        "{} acknowledged before the disk was full",
        acknowledged.len()
    );
    // and /readyz says appends cannot commit.
    let ready = get(server.addr, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    // and /metrics says the same as /readyz (a scrape still answers),
    assert_metrics_agree_with_readyz(server.addr);

    // When the filesystem grows (a prober asking /healthz every 20 ms all the while),
    let prober = Prober::start(server.addr);
    // then a write is answered (no hang to the request timeout):
    // 503 while the store is still stalled, never 201 before it is durable,
    disk.grow("64m");
    let n = 400;
    let started = Instant::now();
    let r = post_keyed(
        server.addr,
        "/v1/tickets/MC-1/comments",
        &comment(n),
        &format!("c-{n}"),
    );
    eprintln!(
        "after the disk grew: {} in {:?}",
        r.status,
        started.elapsed()
    );
    assert!(matches!(r.status, 201 | 503), "{} {}", r.status, r.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // and the server recovers by itself: the same keyed write lands within 30 s, and /readyz
    // is 200 again, with no one restarting it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let landed = loop {
        let r = try_request_with(
            server.addr,
            "POST",
            "/v1/tickets/MC-1/comments",
            Some(&comment(n).to_string()),
            None,
            &[("Idempotency-Key", &format!("c-{n}"))],
        );
        match r {
            Some(r) if matches!(r.status, 200 | 201) => break r,
            Some(r) => assert_eq!(r.status, 503, "{}", r.body),
            None => panic!("a write was refused a connection while the server recovered"),
        }
        assert!(
            Instant::now() < deadline,
            "writes resume within 30 s of the disk growing"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "writes resumed {:?} after the disk grew ({})",
        started.elapsed(),
        landed.status
    );
    acknowledged.push(n);
    // and it recovered in place: the same process, and not one connection of the prober's was
    // refused or closed without an answer.
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/comm", server.child.id()))
            .unwrap()
            .trim(),
        "mc-ledger"
    );
    let (answered, unanswered) = prober.stop();
    eprintln!("the prober: {answered} answered, {unanswered} refused or unanswered");
    assert!(answered > 0);
    assert_eq!(
        unanswered, 0,
        "the listening socket stays across the restart"
    );
    assert_eq!(get(server.addr, "/readyz").status, 200);
    assert_metrics_agree_with_readyz(server.addr);
    let r = post_keyed(
        server.addr,
        "/v1/tickets/MC-1/comments",
        &comment(n + 1),
        "c-401",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    acknowledged.push(n + 1);

    // When SIGTERMed, then the server is gone within 10 s.
    let started = Instant::now();
    let status = sigterm(&mut server.child);
    let took = started.elapsed();
    eprintln!("SIGTERM: {status} after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // When it starts again, then every acknowledged comment is there and each refused one,
    // sent again with its key, is recorded exactly once,
    let server = spawn_serve(&["--data-dir", &data_arg]);
    retried_once_each(server.addr, &acknowledged, &refused);
    drop(server);
    // and the log verifies.
    mc_ledger_ok(&["verify", "--data-dir", &data_arg]);
    drop(disk);
}

/// Asks `/healthz` every 20 ms on a new connection until stopped; counts the requests
/// answered 200 and those refused a connection or closed without an answer.
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl Prober {
    fn start(addr: std::net::SocketAddr) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut answered, mut unanswered) = (0, 0);
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                match try_request(addr, "GET", "/healthz", None, None) {
                    Some(r) if r.status == 200 => answered += 1,
                    _ => unanswered += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (answered, unanswered)
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A tablespace on a small tmpfs of PostgreSQL's own, dropped (with the test's schema) and
/// unmounted when the test ends.
struct SmallTablespace {
    name: String,
    schema: PgSchema,
    disk: Option<Tmpfs>,
}

impl Drop for SmallTablespace {
    fn drop(&mut self) {
        let _ = store_pg::PgStore::drop_schema(&self.schema.config);
        let _ = Command::new("psql")
            .args([
                &test_pg_url(),
                "-qc",
                &format!("DROP TABLESPACE IF EXISTS {}", self.name),
            ])
            .output();
        drop(self.disk.take());
    }
}

/// SPEC §17 on PostgreSQL: the store's tables on a tablespace whose 8 MiB disk fills. Every
/// refusal is 503 `store_unavailable` (SQLSTATE 53100 disk_full), never a 500, and once the
/// disk grows the same keyed writes land, once each, with no restart.
#[test]
fn a_full_postgresql_disk_is_503_and_keyed_retries_land_once() {
    if !slow_tests("mounts a tmpfs; needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let at = dir.path().join("ts");
    std::fs::create_dir(&at).unwrap();
    run_ok(
        Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=8m,uid=postgres,gid=postgres,mode=0700",
                "tmpfs",
            ])
            .arg(&at),
    );
    let name = format!("mc_full_{}", std::process::id());
    let space = SmallTablespace {
        name: name.clone(),
        schema: PgSchema::new("full"),
        disk: Some(Tmpfs(at.clone())),
    };
    psql(&format!(
        "CREATE TABLESPACE {name} LOCATION '{}'",
        at.display()
    ));
    // Every table and index the store creates goes to the small tablespace.
    let url = format!(
        "{}&options=-c%20default_tablespace%3D{name}",
        space.schema.store_url()
    );
    let server = spawn_serve(&["--store", &url]);
    open_ticket(server.addr);
    // Given 60 KiB comments, when the tablespace's disk fills, then 503, never 500.
    let (acknowledged, refused) = fill(server.addr);
    assert!(!refused.is_empty(), "the disk filled");
    eprintln!(
        "{} acknowledged before PostgreSQL's disk was full",
        acknowledged.len()
    );
    // When the disk grows, then each refused write, sent again with its key, lands once.
    space.disk.as_ref().unwrap().grow("64m");
    retried_once_each(server.addr, &acknowledged, &refused);
    drop(server);
    drop(space);
}
