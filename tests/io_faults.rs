//! SPEC §17, I/O errors: the real binary under libfiu's `fiu-run` (Debian's `fiu-utils`,
//! installed by scripts/test.sh), in a loop like the crash loop. Each round starts the server
//! on the same data directory, keeps three writers appending keyed comments, turns on random
//! failures of `pwrite`, `fsync`, `fdatasync` and `write` (EIO or ENOSPC, with a random
//! probability) for two seconds with `fiu-ctrl`, turns them off, waits for the server to be
//! ready again by itself, then ends it with SIGKILL or SIGTERM. No answer is ever a 5xx other
//! than 503; `verify` passes after every round; at the end every acknowledged comment is
//! there exactly once, and every comment never acknowledged, sent again with its key, lands
//! once. Behind `MC_LEDGER_SLOW_TESTS=1`; the seed is printed (`PROPTEST_RNG_SEED` replays).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const ROUNDS: u64 = 6;
const WRITERS: usize = 3;
const POINTS: [&str; 4] = [
    "posix/io/rw/pwrite",
    "posix/io/sync/fsync",
    "posix/io/sync/fdatasync",
    "posix/io/rw/write",
];
const EIO: u32 = 5;
const ENOSPC: u32 = 28;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One libfiu remote-control command to the server's process (bounded: a process that is
/// gone must not hang the test).
fn fiu_ctrl(fifo: &Path, pid: u32, command: &str) -> Result<(), String> {
    let out = Command::new("timeout")
        .args(["10", "fiu-ctrl", "-c", command, "-f"])
        .arg(fifo)
        .arg(pid.to_string())
        .output()
        .expect("fiu-ctrl runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "fiu-ctrl {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether the server under test has ended (a crash under `write` faults), waiting a moment
/// for an exit that is under way.
fn ended(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    for _ in 0..10 {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn comment(key: &str) -> serde_json::Value {
    json!({"body": key, "actor": {"name": "ops", "kind": "human"}})
}

/// What the writers saw: keys acknowledged, keys never answered 201/200, and any answer that
/// is not 201, 200, 503 or a dropped connection.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    /// Answers 503 or dropped connections: the faults reached the writes.
    refused: usize,
    unanswered: Vec<String>,
    wrong: Vec<String>,
}

/// Appends keyed comments until `stop`, sending each refused one again with its key.
fn writer(
    addr: std::net::SocketAddr,
    prefix: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("{prefix}-{n}");
        loop {
            let reply = try_request_with(
                addr,
                "POST",
                "/v1/tickets/MC-1/comments",
                Some(&comment(&key).to_string()),
                None,
                &[("Idempotency-Key", &key)],
            );
            let status = reply.as_ref().map_or(0, |r| r.status);
            let mut seen = seen.lock().unwrap();
            match status {
                200 | 201 => {
                    seen.acknowledged.push(key);
                    break;
                }
                // A refusal or a connection the fault dropped: the outcome is not known.
                0 | 503 => {
                    seen.refused += 1;
                    if stop.load(Ordering::Relaxed) {
                        seen.unanswered.push(key);
                        return;
                    }
                }
                other => {
                    let body = reply.map(|r| r.body).unwrap_or_default();
                    seen.wrong.push(format!("{key}: {other} {body}"));
                    return;
                }
            }
            drop(seen);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ready(addr: std::net::SocketAddr) -> bool {
    try_request(addr, "GET", "/readyz", None, None).is_some_and(|r| r.status == 200)
}

#[test]
fn random_io_errors_lose_nothing_acknowledged_and_never_answer_500() {
    if !slow_tests("runs the server under fiu-run") {
        return;
    }
    assert!(
        Command::new("fiu-run").arg("-h").output().is_ok(),
        "fiu-run is missing: scripts/test.sh installs Debian's fiu-utils"
    );
    let mut rng = Rng(logged_seed("io faults") | 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let fifo = dir.path().join("fiu");
    let fifo_arg = fifo.to_string_lossy().into_owned();
    let seen = Arc::new(Mutex::new(Seen::default()));

    for round in 0..ROUNDS {
        // Given the server under fiu-run with its remote control on,
        let mut server = spawn_serve_under(
            &["fiu-run", "-x", "-f", &fifo_arg],
            &["--data-dir", &data_arg],
        );
        let pid = server.child.id();
        if round == 0 {
            let open = post(
                server.addr,
                "/v1/tickets",
                &json!({"id": "MC-1", "title": "faults", "actor": {"name": "ops", "kind": "human"}}),
            );
            assert_eq!(open.status, 201, "{}", open.body);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, stop, seen) = (server.addr, stop.clone(), seen.clone());
                std::thread::spawn(move || writer(addr, format!("r{round}w{w}"), stop, seen))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));

        // when the disk calls fail at random for two seconds while they write (in every
        // other round `write` too: it also carries the answers and the log lines, and tokio
        // aborts the process when it cannot wake its I/O driver, which is then a crash),
        let errno = if rng.below(2) == 0 { EIO } else { ENOSPC };
        let percent = 2 + rng.below(19);
        let points = if rng.below(2) == 0 {
            &POINTS[..]
        } else {
            &POINTS[..3]
        };
        eprintln!("round {round}: {percent}% of {points:?} fail with errno {errno}");
        for point in points {
            // `write` also carries the answers: fewer of those fail.
            let p = if point.ends_with("/write") {
                percent as f64 / 400.0
            } else {
                percent as f64 / 100.0
            };
            // (write, the last, can end the server at once: that shows below)
            if let Err(e) = fiu_ctrl(
                &fifo,
                pid,
                &format!("enable_random name={point},probability={p},failinfo={errno}"),
            ) {
                assert!(point.ends_with("/write"), "round {round}: {e}");
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let mut crashed = server.child.try_wait().unwrap();
        for point in points {
            if crashed.is_some() {
                break;
            }
            if let Err(e) = fiu_ctrl(&fifo, pid, &format!("disable name={point}")) {
                crashed = ended(&mut server.child);
                assert!(crashed.is_some(), "round {round}: {e}");
            }
        }

        // then the server is ready again by itself (restarting in place if it must), or, only
        // where write() failed, it crashed (tokio aborts when it cannot wake its I/O driver),
        let deadline = Instant::now() + Duration::from_secs(40);
        while crashed.is_none() && !ready(server.addr) {
            crashed = server.child.try_wait().unwrap();
            assert!(
                Instant::now() < deadline,
                "round {round}: not ready 40 s after the faults stopped"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(status) = crashed {
            assert!(
                points.len() == POINTS.len(),
                "round {round}: the server ended ({status}) with only the disk's calls failing"
            );
            eprintln!("round {round}: the server ended under write faults ({status}): a crash");
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        {
            let seen = seen.lock().unwrap();
            assert!(seen.wrong.is_empty(), "round {round}: {:?}", seen.wrong);
            eprintln!(
                "round {round}: {} acknowledged, {} refused or dropped, {} unanswered so far",
                seen.acknowledged.len(),
                seen.refused,
                seen.unanswered.len()
            );
        }
        // and ended by SIGKILL or SIGTERM (unless it crashed),
        let sigkill = rng.below(2) == 0;
        if crashed.is_none() && sigkill {
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        } else if crashed.is_none() {
            let status = sigterm(&mut server.child);
            assert!(
                status.success(),
                "round {round}: SIGTERM ended it with {status}"
            );
        }
        // its log verifies.
        let out = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
            .args(["verify", "--data-dir", &data_arg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert!(
        seen.lock().unwrap().refused > 0,
        "the faults never reached a write: nothing was tested"
    );
    // At the end every acknowledged comment is there once, and every one never acknowledged,
    // sent again with its key, lands once.
    let server = spawn_binary(&data);
    let seen = seen.lock().unwrap();
    for key in &seen.unanswered {
        let r = post_keyed(server.addr, "/v1/tickets/MC-1/comments", &comment(key), key);
        assert!(
            matches!(r.status, 200 | 201),
            "{key}: {} {}",
            r.status,
            r.body
        );
    }
    let mut server = server;
    assert!(sigterm(&mut server.child).success());
    // Every comment in the log, from an export (no page limit).
    let export = run_ok(Command::new(env!("CARGO_BIN_EXE_mc-ledger")).args([
        "export",
        "--data-dir",
        &data_arg,
    ]));
    let bodies: Vec<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|e| e["type"] == "ticket.commented")
        .map(|e| e["data"]["body"].as_str().unwrap().to_owned())
        .collect();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for body in &bodies {
        *copies.entry(body.as_str()).or_default() += 1;
    }
    for key in seen.acknowledged.iter().chain(&seen.unanswered) {
        assert_eq!(copies.get(key.as_str()), Some(&1), "{key} recorded once");
    }
    assert_eq!(
        bodies.len(),
        seen.acknowledged.len() + seen.unanswered.len(),
        "nothing recorded that no writer sent"
    );
    eprintln!(
        "{} comments acknowledged across {ROUNDS} rounds, {} retried at the end",
        seen.acknowledged.len(),
        seen.unanswered.len()
    );
}

/// `mc-ledger hook` never fails the agent: with every `write` failing (ENOSPC: the spool's
/// disk full, stderr redirected to it), the hook still exits 0 and leaves no half-written
/// spool file. Before: `eprintln!` panicked on the failed stderr write and the hook exited 101.
#[test]
fn a_hook_exits_0_when_every_write_fails() {
    if !slow_tests("runs the hook under fiu-run") {
        return;
    }
    let spool = tempfile::tempdir().unwrap();
    let mut command = Command::new("fiu-run");
    command
        .args(["-x", "-c", "enable name=posix/io/rw/write,failinfo=28"])
        .arg(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["hook", "claude"])
        .env("MC_LEDGER_SERVER", "http://127.0.0.1:1")
        .env("MC_LEDGER_RUNTIME", "rt-1")
        .env("MC_LEDGER_TOKEN", "mcl_unused")
        .env("MC_LEDGER_SPOOL", spool.path());
    let out = output_with_stdin(command, br#"{"hook_event_name":"Stop","session_id":"s1"}"#);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the hook exits 0: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<String> = std::fs::read_dir(spool.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "half-written spool files: {left:?}");
}
