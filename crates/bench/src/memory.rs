//! `mc-ledger bench memory` (SPEC §18, issue 23): what a server over a long history holds in
//! memory. A generated ledger (the rebuild bench's tickets of 20 events, `--open` of them left
//! open, spread over the log) is built once in `--dir` and reused; its snapshot is made by
//! `mc-ledger rebuild`. The real binary then serves it as a child process, and the bench
//! measures its start-up (spawn to `/readyz` ready), its resident set after start and after
//! reading every open ticket, the board, the alerts and `--closed-reads` random closed tickets
//! (seeded), and the read latencies.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use crate::http::Conn;
use crate::soak::server::{rss_bytes, sigterm, spawn, status_bytes, Server};
use crate::{machine, percentile, print_result, work_dir, Rng};

const EVENTS_PER_TICKET: usize = 20;

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Events in the generated ledger (20 per ticket).
    #[arg(long, default_value_t = 20_000_000)]
    pub events: usize,
    /// Tickets left open, spread evenly over the log.
    #[arg(long, default_value_t = 5_000)]
    pub open: usize,
    /// Random closed tickets read once the server is up.
    #[arg(long, default_value_t = 10_000)]
    pub closed_reads: usize,
    /// Requests of the board and of the alerts each.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Seed of the closed tickets' choice (logged; a fresh one by default).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the generated ledger is kept and reused by later runs with the same sizes (a
    /// fresh temporary directory by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// What `built.json` in `--dir` says about the ledger beside it.
fn built(dir: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(dir.join("built.json")).ok()?).ok()
}

/// Runs this binary with `args` to the end; its output goes to `log`.
fn run_self(args: &[OsString], log: &Path) -> anyhow::Result<()> {
    let status = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(std::fs::File::create(log)?)
        .stderr(std::fs::File::create(log.with_extension("err"))?)
        .status()
        .context("running mc-ledger")?;
    if !status.success() {
        bail!(
            "mc-ledger {args:?} failed ({status}); see {}",
            log.display()
        );
    }
    Ok(())
}

/// The generated ledger in `dir/data` with its snapshot: reused when `built.json` names the
/// same sizes, else built (and timed) from nothing.
fn ledger(dir: &Path, tickets: usize, open_every: usize) -> anyhow::Result<Value> {
    let sizes = json!({"tickets": tickets, "open_every": open_every});
    if let Some(b) = built(dir).filter(|b| b["sizes"] == sizes) {
        return Ok(json!({"reused": true, "build_s": b["build_s"], "snapshot_s": b["snapshot_s"]}));
    }
    let data = dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let _ = std::fs::remove_file(dir.join("built.json"));
    eprintln!(
        "building {tickets} tickets ({} events) in {}",
        tickets * EVENTS_PER_TICKET,
        data.display()
    );
    let started = Instant::now();
    crate::rebuild::build_log(&data, tickets, open_every)?;
    let build_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    run_self(
        &["rebuild".into(), "--data-dir".into(), data.into()],
        &dir.join("rebuild.log"),
    )?;
    let snapshot_s = started.elapsed().as_secs_f64();
    let b = json!({"sizes": sizes, "build_s": build_s, "snapshot_s": snapshot_s});
    std::fs::write(dir.join("built.json"), b.to_string())?;
    Ok(json!({"reused": false, "build_s": build_s, "snapshot_s": snapshot_s}))
}

/// GETs each path in turn, timing each; every answer must be 200.
fn timed(conn: &Conn, paths: impl Iterator<Item = String>) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for path in paths {
        let started = Instant::now();
        let (status, body) = conn.call("GET", &path, "")?;
        times.push(started.elapsed());
        if status != 200 {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    times.sort();
    Ok(times)
}

fn latencies(times: &[Duration]) -> Value {
    json!({
        "requests": times.len(),
        "p50_ms": percentile(times, 500),
        "p99_ms": percentile(times, 990),
        "max_ms": percentile(times, 1000),
    })
}

fn mib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    (b / 1024.0 / 1024.0 * 10.0).round() / 10.0
}

/// Starts a server over the ledger, reads what the issue names, and stops it.
fn measure(
    store: &[OsString],
    dir: &Path,
    tickets: usize,
    open_every: usize,
    args: &MemoryArgs,
    seed: u64,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let mut server: Server = spawn(store, &dir.join("serve.log"))?;
    let conn = Conn::open(server.addr);
    loop {
        if matches!(conn.call("GET", "/readyz", ""), Ok((200, _))) {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the server was not ready within an hour");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let startup = started.elapsed();
    let rss_started = rss_bytes(server.pid)?;
    let ticket = |n: usize| format!("/v1/tickets/MC-{}", n + 1);
    let open = timed(&conn, (0..tickets).step_by(open_every).map(ticket))?;
    let board = timed(&conn, (0..args.runs).map(|_| "/v1/board".to_owned()))?;
    let alerts = timed(&conn, (0..args.runs).map(|_| "/v1/alerts".to_owned()))?;
    let mut rng = Rng(seed);
    let closed = (0..args.closed_reads).map(|_| {
        let mut n = usize::try_from(rng.below(tickets as u64)).unwrap_or(1);
        if n.is_multiple_of(open_every) {
            n = (n + 1) % tickets;
        }
        ticket(n)
    });
    let closed = timed(&conn, closed)?;
    let rss_read = rss_bytes(server.pid)?;
    let peak = status_bytes(server.pid, "VmHWM:")?;
    sigterm(&mut server)?;
    Ok(json!({
        "startup_ms": (startup.as_secs_f64() * 1000.0).round(),
        "rss_after_start_mib": mib(rss_started),
        "rss_after_reads_mib": mib(rss_read),
        "rss_peak_mib": mib(peak),
        "open_ticket": latencies(&open),
        "board": latencies(&board),
        "alerts": latencies(&alerts),
        "closed_ticket": latencies(&closed),
    }))
}

pub(crate) fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.dir.clone())?;
    let tickets = args.events.div_ceil(EVENTS_PER_TICKET).max(1);
    let open_every = (tickets / args.open.max(1)).max(1);
    let seed = args.seed.unwrap_or_else(crate::fresh_seed);
    eprintln!("bench memory: seed {seed}");
    let built = ledger(&dir, tickets, open_every)?;
    let data = dir.join("data");
    let sled = measure(
        &["--data-dir".into(), data.into()],
        &dir,
        tickets,
        open_every,
        &args,
        seed,
    )?;
    let line = json!({
        "bench": "memory",
        "events": tickets * EVENTS_PER_TICKET,
        "tickets": tickets,
        "open": tickets.div_ceil(open_every),
        "seed": seed,
        "ledger": built,
        "sled": sled,
        "machine": machine(),
    });
    print_result(&line, args.json);
    Ok(())
}
