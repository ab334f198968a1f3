//! Crash loop: the test re-runs itself as a child that appends from many tasks and reports
//! every acknowledged event; the parent SIGKILLs it at a random moment, reopens the log and
//! checks that nothing acknowledged is lost, positions are gapless, the chain verifies and no
//! append is half visible — a multi-stream append (a quarter of them span two tickets) never
//! leaves one stream's part without the other's. 30 iterations by default, 300 with `MC_LEDGER_SLOW_TESTS=1`.
//! Replay a run with `MC_LEDGER_CRASH_SEED=<seed>`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use events::*;
use store::*;
use store_sled::*;

const CHILD_DIR: &str = "MC_LEDGER_CRASH_CHILD_DIR";
const CHILD_ITER: &str = "MC_LEDGER_CRASH_CHILD_ITER";

/// xorshift64*: enough randomness for kill times, and replayable from the logged seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Checkpoints every 50 records, so that children are killed after checkpoints and reopening
/// loads them and rebuilds the tail after the last one.
fn crash_config() -> LogConfig {
    checkpoint_every(50)
}

#[test]
fn crash_loop_loses_no_acknowledged_event() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return; // In the child, only `crash_child` does work.
    }
    let slow = std::env::var_os("MC_LEDGER_SLOW_TESTS").is_some();
    let iterations = if slow { 300 } else { 30 };
    let seed: u64 = std::env::var("MC_LEDGER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                .into()
        });
    println!("crash loop: seed {seed} ({iterations} iterations); replay with MC_LEDGER_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let mut dir = tempfile::tempdir().unwrap();
    // id -> position of every event any child reported as acknowledged (in the current dir).
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut acked_total = 0;
    let mut two_stream_appends = 0;
    for iteration in 0..iterations {
        // Ten crashes per directory: recovery after recovery, with bounded verify cost.
        if iteration % 10 == 0 && iteration > 0 {
            acked_total += acked.len();
            acked.clear();
            dir = tempfile::tempdir().unwrap();
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ITER, iteration.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        let kill_after = Duration::from_millis(20 + rng.below(300));
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (position, id) = rest.split_once(' ').unwrap();
                acked.insert(id.to_owned(), position.parse().unwrap());
            }
        }

        let log = Log::open(dir.path(), crash_config())
            .unwrap_or_else(|e| panic!("seed {seed} iteration {iteration}: reopen: {e}"));
        let all = log.read_after(0, usize::MAX).unwrap();
        let by_id: HashMap<&str, &RecordedEvent> = all.iter().map(|e| (e.id.as_str(), e)).collect();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(
                e.position,
                u64::try_from(i).unwrap() + 1,
                "seed {seed} iteration {iteration}: gap"
            );
        }
        for (id, position) in &acked {
            let event = by_id.get(id.as_str()).unwrap_or_else(|| {
                panic!("seed {seed} iteration {iteration}: acknowledged {id} lost")
            });
            assert_eq!(event.position, *position, "seed {seed}: {id} moved");
        }
        // No partial append: ids are `<append>:<k>of<m>`; every append is whole or absent.
        let mut appends: BTreeMap<&str, (usize, usize, Vec<&str>)> = BTreeMap::new();
        for e in &all {
            if let Some((append, part)) = e.id.rsplit_once(':') {
                let m: usize = part.split_once("of").unwrap().1.parse().unwrap();
                let entry = appends.entry(append).or_insert((0, m, Vec::new()));
                entry.0 += 1;
                if !entry.2.contains(&e.ticket.as_str()) {
                    entry.2.push(e.ticket.as_str());
                }
            }
        }
        for (append, (seen, of, streams)) in appends {
            assert_eq!(
                seen, of,
                "seed {seed} iteration {iteration}: append {append} is partial ({streams:?})"
            );
            if streams.len() > 1 {
                two_stream_appends += 1;
            }
        }
        log.verify()
            .unwrap_or_else(|e| panic!("seed {seed} iteration {iteration}: verify: {e}"));
    }
    acked_total += acked.len();
    assert!(
        acked_total > 100,
        "seed {seed}: the children acknowledged only {acked_total} events"
    );
    assert!(
        two_stream_appends > 0,
        "seed {seed}: no two-stream append reached the log"
    );
    println!(
        "crash loop: {acked_total} acknowledged events survived {iterations} SIGKILLs; \
         {two_stream_appends} two-stream appends found whole after reopening"
    );
}

/// The child: 32 tasks append 1–3 events each as fast as they can, printing acks.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let iteration: u64 = std::env::var(CHILD_ITER).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log =
            std::sync::Arc::new(Log::open(std::path::Path::new(&dir), crash_config()).unwrap());
        let mut tasks = Vec::new();
        for task in 0..32u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    n += 1;
                    let m = 1 + (n + task) % 3;
                    let append_id = format!("i{iteration}t{task}n{n}");
                    let events = (0..m)
                        .map(|k| {
                            comment(
                                &format!("{append_id}:{k}of{m}"),
                                "crash loop body, about this long",
                            )
                        })
                        .collect();
                    let ticket = format!("MC-{}", (task * 7 + n) % 50);
                    // Every fourth append of two or more events spans two streams: its first
                    // event on `ticket`, the rest on a second one, all or nothing.
                    let request = if n.is_multiple_of(4) && m > 1 {
                        let mut events: Vec<NewEvent> = events;
                        let rest = events.split_off(1);
                        let other = format!("MC-{}", 50 + (task + n) % 50);
                        append_also(append(&ticket, None, events), &other, None, rest)
                    } else {
                        append(&ticket, None, events)
                    };
                    match log.append_async(request).await {
                        Ok(a) => {
                            let mut out = std::io::stdout().lock();
                            for e in &a.events {
                                writeln!(out, "ACK {} {}", e.position, e.id).unwrap();
                            }
                            out.flush().unwrap();
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}
