//! `mc-ledger bench soak`: sustained mixed load against the real binary in its own process —
//! ticket lifecycles, reads, a dashboard poll and SSE subscribers — with throughput, latency
//! and the server's RSS per interval, then the end checks: SSE consistent, a rebuild equal to
//! the live views, SIGTERM exits 0, and `verify` passes.
//!
//! An "error" is a connection failure or any status a step does not expect; the goal is zero.
//! The server's projections live in memory and a ledger never forgets, so its RSS grows with
//! the data by design; the report gives RSS beside the event count so a leak (growth that
//! the data does not explain) stands out from that.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

pub(crate) mod server;

use crate::http::Conn;
use crate::{fresh_seed, machine, per_second, percentile, print_result, work_dir, Rng};
use server::{rss_bytes, sigterm, spawn_server};

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value_t = 600)]
    pub duration_s: u64,
    /// One report row per interval.
    #[arg(long, default_value_t = 60)]
    pub interval_s: u64,
    /// Tasks running ticket lifecycles, each on its own tickets and connection.
    #[arg(long, default_value_t = 32)]
    pub writers: usize,
    /// Tasks reading tickets, runtimes and event pages.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// SSE clients following `/v1/events/stream` from position 1.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// A dashboard polls `GET /v1/board` and `GET /v1/alerts` this often (both scan every
    /// ticket, so they are paced like a real dashboard rather than in the reader mix).
    #[arg(long, default_value_t = 2000)]
    pub dashboard_ms: u64,
    /// Seed of the workload's choices (logged; a fresh one by default).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to put the server's data (a fresh temporary directory by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The server's sled page cache (`serve --cache-mib`).
    #[arg(long, default_value_t = store_sled::log::DEFAULT_CACHE_MIB)]
    pub cache_mib: u64,
    #[arg(long)]
    pub json: bool,
}

/// No single request may take longer than this; beyond it the request counts as an error.
const REQUEST_TIMEOUT_S: u64 = 60;
/// How long the end checks wait for the SSE subscribers to reach the head.
const SSE_CATCH_UP_S: u64 = 300;
/// Error descriptions kept for the report (all are counted).
const ERROR_SAMPLES_MAX: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Dashboard,
}

/// What one interval collected; swapped out by the reporter.
#[derive(Default)]
struct Window {
    writes: Vec<Duration>,
    reads: Vec<Duration>,
    dashboard: Vec<Duration>,
    errors: usize,
}

#[derive(Default)]
struct Totals {
    writes: usize,
    reads: usize,
    dashboard: usize,
    lifecycles: usize,
    retries: usize,
    coalesced: usize,
    duplicates: usize,
}

struct Shared {
    addr: SocketAddr,
    stop: AtomicBool,
    /// Set once the end checks are done, just before the SSE connections are shut down: a
    /// subscriber's broken stream is then no error.
    closing: AtomicBool,
    window: Mutex<Window>,
    all_writes: Mutex<Vec<Duration>>,
    all_reads: Mutex<Vec<Duration>>,
    totals: Mutex<Totals>,
    errors: AtomicUsize,
    error_samples: Mutex<Vec<String>>,
    /// Tickets each writer has opened (acknowledged), so readers ask for ones that exist.
    opened: Vec<AtomicU64>,
    /// The highest position any write answered with.
    position: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.window).errors += 1;
        let mut samples = lock(&self.error_samples);
        if samples.len() < ERROR_SAMPLES_MAX {
            eprintln!("soak error: {what}");
            samples.push(what);
        }
    }

    fn record(&self, kind: Kind, latency: Duration) {
        let mut w = lock(&self.window);
        match kind {
            Kind::Write => w.writes.push(latency),
            Kind::Read => w.reads.push(latency),
            Kind::Dashboard => w.dashboard.push(latency),
        }
    }

    /// One request with the statuses its step expects. The parsed body on success; `None`
    /// (and an error counted) otherwise, and the connection is dropped if it failed.
    fn step(
        &self,
        conn: &mut Option<Conn>,
        kind: Kind,
        method: &str,
        path: &str,
        body: Option<&Value>,
        expect: &[u16],
    ) -> Option<(u16, Value)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let started = Instant::now();
        let c = conn.get_or_insert_with(|| {
            Conn::with_timeout(self.addr, Some(Duration::from_secs(REQUEST_TIMEOUT_S)))
        });
        let result = c.call(method, path, &body);
        let latency = started.elapsed();
        let (status, bytes) = match result {
            Ok(reply) => reply,
            Err(e) => {
                *conn = None;
                if matches!(e.downcast_ref(), Some(ureq::Error::Timeout(_))) {
                    self.error(format!(
                        "{method} {path}: no answer in {REQUEST_TIMEOUT_S} s"
                    ));
                } else {
                    self.error(format!("{method} {path}: {e:#}"));
                }
                return None;
            }
        };
        self.record(kind, latency);
        if !expect.contains(&status) {
            let text = String::from_utf8_lossy(&bytes);
            self.error(format!(
                "{method} {path}: {status}, expected {expect:?}: {:.300}",
                text
            ));
            return None;
        }
        // Big dashboard bodies are not parsed: only their status matters.
        let value = if kind == Kind::Dashboard {
            Value::Null
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    self.error(format!(
                        "{method} {path}: {status} with a body that is not JSON: {e}"
                    ));
                    return None;
                }
            }
        };
        if let Some(p) = value.get("position").and_then(Value::as_u64) {
            self.position.fetch_max(p, Ordering::Relaxed);
        }
        Some((status, value))
    }
}

fn actor(name: &str, kind: &str) -> Value {
    json!({"name": name, "kind": kind})
}

fn with_actor(mut body: Value, name: &str, kind: &str) -> Value {
    body["actor"] = actor(name, kind);
    body
}

/// What one lifecycle did, for the totals.
#[derive(Default)]
struct Lifecycle {
    writes: usize,
    retried: bool,
    coalesced: usize,
    duplicates: usize,
}

/// open → dispatch → activity ×1–3 → signal → harvest → reap → (retry a failed one) →
/// comment → close. Stops at the first unexpected answer (already counted as an error).
fn lifecycle(
    s: &Shared,
    conn: &mut Option<Conn>,
    rng: &mut Rng,
    writer: usize,
    n: u64,
) -> Lifecycle {
    let mut done = Lifecycle::default();
    let ticket = format!("SK{writer}-{n}");
    let w = Kind::Write;
    // One write of the lifecycle; the lifecycle ends at the first unexpected answer.
    macro_rules! post {
        ($path:expr, $body:expr, $expect:expr) => {{
            done.writes += 1;
            let path: String = $path;
            match s.step(conn, w, "POST", &path, Some(&$body), $expect) {
                Some(reply) => reply,
                None => return done,
            }
        }};
    }
    let open = json!({"id": ticket, "title": format!("soak ticket {n} of writer {writer}"),
        "priority": "normal", "labels": ["soak"]});
    post!(
        "/v1/tickets".to_owned(),
        with_actor(open, "soak", "human"),
        &[201]
    );
    s.opened[writer].fetch_max(n, Ordering::Relaxed);

    let key = format!("soak-{ticket}-1");
    let dispatch = with_actor(
        json!({"dispatch_key": key, "agent": "claude", "transport": "tmux", "tmux_target": ticket.to_lowercase()}),
        "dispatcher",
        "orchestrator",
    );
    let dispatch_path = format!("/v1/tickets/{ticket}/dispatch");
    let (_, reply) = post!(dispatch_path.clone(), dispatch, &[201]);
    let (Some(mut runtime), Some(mut nonce)) = (
        reply["runtime_id"].as_str().map(str::to_owned),
        reply["nonce"].as_str().map(str::to_owned),
    ) else {
        s.error(format!(
            "dispatch of {ticket} answered without runtime_id/nonce: {reply}"
        ));
        return done;
    };
    if rng.below(10) == 0 {
        // The dispatcher posting "picked up" twice: the same key is a 200 duplicate.
        let (_, again) = post!(dispatch_path, dispatch, &[200]);
        done.duplicates += 1;
        if again["runtime_id"].as_str() != Some(runtime.as_str()) {
            s.error(format!(
                "duplicate dispatch of {ticket} named another runtime: {again}"
            ));
            return done;
        }
    }
    for i in 0..=rng.below(3) {
        let (status, _) = post!(
            format!("/v1/runtimes/{runtime}/activity"),
            with_actor(json!({"note": format!("turn {i}")}), "watcher", "system"),
            &[201, 202]
        );
        done.coalesced += usize::from(status == 202);
    }
    let verdict = ["REVIEW", "DONE", "QUESTION"][usize::try_from(rng.below(3)).unwrap_or(0)];
    post!(
        format!("/v1/runtimes/{runtime}/signals"),
        with_actor(
            json!({"verdict": verdict, "nonce": nonce, "payload": format!("{ticket}: work summary")}),
            "claude",
            "agent"
        ),
        &[201]
    );
    let (outcome, exit_reason) = match rng.below(10) {
        0..=6 => ("completed", "success"),
        7 | 8 => ("partial", "max_turns"),
        _ => ("failed", "error"),
    };
    let harvest = json!({"outcome": outcome, "exit_reason": exit_reason, "turns": rng.below(200),
        "cost_usd": 0.25, "session_id": format!("sess-{ticket}")});
    post!(
        format!("/v1/runtimes/{runtime}/harvest"),
        with_actor(harvest, "harvester", "system"),
        &[201]
    );
    let reap = with_actor(json!({"cause": "tmux_missing"}), "watcher", "system");
    post!(format!("/v1/runtimes/{runtime}/reap"), reap, &[201]);
    if rng.below(4) == 0 {
        // Watchers poll: a second reap with the same cause is a 200 no-op.
        post!(format!("/v1/runtimes/{runtime}/reap"), reap, &[200]);
        done.duplicates += 1;
    }
    if outcome == "failed" && rng.below(2) == 0 {
        let (_, reply) = post!(
            format!("/v1/runtimes/{runtime}/retry"),
            with_actor(
                json!({"resume": rng.below(2) == 0}),
                "dispatcher",
                "orchestrator"
            ),
            &[201]
        );
        let (Some(r), Some(no)) = (reply["runtime_id"].as_str(), reply["nonce"].as_str()) else {
            s.error(format!(
                "retry on {ticket} answered without runtime_id/nonce: {reply}"
            ));
            return done;
        };
        (runtime, nonce) = (r.to_owned(), no.to_owned());
        done.retried = true;
        post!(
            format!("/v1/runtimes/{runtime}/activity"),
            with_actor(json!({}), "watcher", "system"),
            &[201]
        );
        post!(
            format!("/v1/runtimes/{runtime}/signals"),
            with_actor(
                json!({"verdict": "DONE", "nonce": nonce, "payload": "fixed on retry"}),
                "claude",
                "agent"
            ),
            &[201]
        );
        post!(
            format!("/v1/runtimes/{runtime}/harvest"),
            with_actor(
                json!({"outcome": "completed", "exit_reason": "success", "turns": 12}),
                "harvester",
                "system"
            ),
            &[201]
        );
        post!(format!("/v1/runtimes/{runtime}/reap"), reap, &[201]);
    }
    post!(
        format!("/v1/tickets/{ticket}/comments"),
        with_actor(
            json!({"body": crate::payload_body(usize::try_from(n).unwrap_or(0))}),
            "reviewer",
            "human"
        ),
        &[201]
    );
    post!(
        format!("/v1/tickets/{ticket}/close"),
        with_actor(
            json!({"resolution": "done", "evidence": "soak"}),
            "validator",
            "validator"
        ),
        &[201]
    );
    done
}

fn writer(s: &Shared, index: usize, seed: u64) {
    let mut rng = Rng(seed ^ (u64::try_from(index).unwrap_or(0) << 32));
    let mut conn = None;
    let mut n = 0;
    while !s.stop.load(Ordering::Relaxed) {
        n += 1;
        let done = lifecycle(s, &mut conn, &mut rng, index, n);
        let mut t = lock(&s.totals);
        t.writes += done.writes;
        t.lifecycles += 1;
        t.retries += usize::from(done.retried);
        t.coalesced += done.coalesced;
        t.duplicates += done.duplicates;
    }
}

fn known_ticket(s: &Shared, rng: &mut Rng) -> Option<String> {
    let writers = u64::try_from(s.opened.len()).ok()?;
    let w = rng.below(writers);
    let opened = s.opened[usize::try_from(w).ok()?].load(Ordering::Relaxed);
    (opened > 0).then(|| format!("SK{w}-{}", 1 + rng.below(opened)))
}

fn reader(s: &Shared, index: usize, seed: u64) {
    let mut rng = Rng(seed ^ 0xABCD ^ (u64::try_from(index).unwrap_or(0) << 40));
    let mut conn = None;
    let mut reads = 0;
    while !s.stop.load(Ordering::Relaxed) {
        let path = match (rng.below(100), known_ticket(s, &mut rng)) {
            (0..=49, Some(t)) => format!("/v1/tickets/{t}"),
            (50..=54, Some(t)) => format!("/v1/tickets/{t}/timeline"),
            (55..=59, Some(t)) => format!("/v1/tickets/{t}/events?limit=50"),
            (60..=69, _) => "/v1/tickets?limit=50".to_owned(),
            (70..=79, _) => "/v1/runtimes?limit=50".to_owned(),
            _ => {
                let head = s.position.load(Ordering::Relaxed);
                format!("/v1/events?after={}&limit=100", rng.below(head))
            }
        };
        reads += 1;
        if s.step(&mut conn, Kind::Read, "GET", &path, None, &[200])
            .is_none()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if reads % 64 == 0 {
            lock(&s.totals).reads += 64;
        }
    }
    lock(&s.totals).reads += reads % 64;
}

/// Polls every `every`, the first at once; a poll that comes late moves the next ones back.
fn dashboard(s: &Shared, every: Duration) {
    let mut conn = None;
    let mut tick = Instant::now();
    while !s.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < tick {
            std::thread::sleep(tick - now);
            tick += every;
        } else {
            tick = now + every;
        }
        for path in ["/v1/board", "/v1/alerts"] {
            s.step(&mut conn, Kind::Dashboard, "GET", path, None, &[200]);
            lock(&s.totals).dashboard += 1;
        }
    }
}

/// What one SSE subscriber saw.
#[derive(Default)]
struct Subscriber {
    events: AtomicU64,
    last_id: AtomicU64,
    /// Ids that were not exactly the previous one plus one.
    out_of_order: AtomicU64,
    failed: Mutex<Option<String>>,
}

/// Follows the stream on `conn` until it breaks; a break after the end checks (the run shuts
/// the connection down) is no error.
fn subscribe(s: &Shared, me: &Subscriber, conn: &Conn) {
    if let Err(e) = follow(s, me, conn) {
        if s.closing.load(Ordering::Relaxed) {
            return;
        }
        *lock(&me.failed) = Some(format!("{e:#}"));
        s.error(format!("SSE subscriber: {e:#}"));
    }
}

fn follow(s: &Shared, me: &Subscriber, conn: &Conn) -> anyhow::Result<()> {
    let (status, body) = conn.stream("/v1/events/stream?after=0")?;
    anyhow::ensure!(status == 200, "stream answered {status}");
    let mut stream = std::io::BufReader::with_capacity(64 * 1024, body);
    let mut line: Vec<u8> = Vec::new();
    let mut id: Option<u64> = None;
    loop {
        line.clear();
        let n = stream.read_until(b'\n', &mut line)?;
        anyhow::ensure!(n > 0, "the stream ended");
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            if let Some(position) = id.take() {
                let last = me.last_id.swap(position, Ordering::Relaxed);
                if position != last + 1 {
                    me.out_of_order.fetch_add(1, Ordering::Relaxed);
                    s.error(format!("SSE id {position} after {last}"));
                }
                me.events.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(v) = text.strip_prefix(b"id:") {
            let v = std::str::from_utf8(v).unwrap_or("").trim();
            id = Some(v.parse().with_context(|| format!("bad SSE id {v:?}"))?);
        }
    }
}

/// RSS of a fresh server on the finished data directory, after it has loaded its snapshot and
/// served what the run's readers and dashboard ask for: every ticket view once, then five
/// boards and alert lists. What the ledger's data needs, against which the soak's RSS is
/// judged (a ledger never forgets, so its memory grows with what it holds).
fn restart_rss(data_dir: &Path, log: &Path, cache_mib: u64) -> anyhow::Result<u64> {
    let mut server = spawn_server(data_dir, log, cache_mib)?;
    let client = client::Client::new(&format!("http://{}", server.addr))?;
    let mut cursor: Option<String> = None;
    loop {
        let path = tickets_page(cursor.as_deref());
        let page = client.get(&path)?.ok()?;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    for _ in 0..5 {
        client.get("/v1/board")?.ok()?;
        client.get("/v1/alerts")?.ok()?;
    }
    let rss = rss_bytes(server.pid)?;
    let code = sigterm(&mut server)?;
    anyhow::ensure!(code == Some(0), "the restarted server exited with {code:?}");
    Ok(rss)
}

/// One page of every ticket view, after `cursor`.
fn tickets_page(cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("/v1/tickets?limit=1000&cursor={c}"),
        None => "/v1/tickets?limit=1000".to_owned(),
    }
}

/// Every ticket view, paging `GET /v1/tickets?limit=1000`.
fn all_views(s: &Shared) -> anyhow::Result<Vec<Value>> {
    let mut conn = None;
    let mut views = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = tickets_page(cursor.as_deref());
        let (_, page) = s
            .step(&mut conn, Kind::Read, "GET", &path, None, &[200])
            .context("listing tickets")?;
        views.extend(page["tickets"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(views),
        }
    }
}

/// Least-squares slope of `(seconds, bytes)` samples, in bytes per second.
fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

fn ms(d: &[Duration], per_mille: usize) -> f64 {
    (percentile(d, per_mille) * 100.0).round() / 100.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

pub(crate) fn run(args: SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_s > 0 && args.interval_s > 0,
        "durations must be positive"
    );
    anyhow::ensure!(args.writers > 0, "at least one writer");
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let (dir, _guard) = work_dir(args.dir.clone())?;
    let data_dir = dir.join("data");
    let log_path = dir.join("server.log");
    let mut server = spawn_server(&data_dir, &log_path, args.cache_mib)?;
    eprintln!(
        "soak: seed {seed}, server pid {} on {}, data in {}, {} s in {} s rows, {} writers, {} readers, {} subscribers",
        server.pid,
        server.addr,
        data_dir.display(),
        args.duration_s,
        args.interval_s,
        args.writers,
        args.readers,
        args.subscribers
    );
    let rss_start = rss_bytes(server.pid)?;

    let shared = Arc::new(Shared {
        addr: server.addr,
        stop: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        window: Mutex::default(),
        all_writes: Mutex::default(),
        all_reads: Mutex::default(),
        totals: Mutex::default(),
        errors: AtomicUsize::new(0),
        error_samples: Mutex::default(),
        opened: (0..args.writers).map(|_| AtomicU64::new(0)).collect(),
        position: AtomicU64::new(0),
    });
    let subscribers: Vec<Arc<Subscriber>> = (0..args.subscribers).map(|_| Arc::default()).collect();

    // A thread per subscriber, writer, reader and the dashboard, each on a connection of its
    // own; the subscribers' agents are kept to shut their streams down at the end.
    let s = shared.clone();
    let subs = subscribers.clone();
    let pid = server.pid;
    let started = Instant::now();
    let (sse_agents, sse): (Vec<ureq::Agent>, Vec<JoinHandle<()>>) = subs
        .iter()
        .map(|me| {
            let conn = Conn::open(s.addr);
            let agent = conn.agent();
            let (s, me) = (s.clone(), me.clone());
            (agent, std::thread::spawn(move || subscribe(&s, &me, &conn)))
        })
        .unzip();
    let mut load: Vec<JoinHandle<()>> = Vec::new();
    for i in 0..args.writers {
        let s = s.clone();
        load.push(std::thread::spawn(move || writer(&s, i, seed)));
    }
    for i in 0..args.readers {
        let s = s.clone();
        load.push(std::thread::spawn(move || reader(&s, i, seed)));
    }
    let every = Duration::from_millis(args.dashboard_ms.max(1));
    let dash = s.clone();
    load.push(std::thread::spawn(move || dashboard(&dash, every)));

    let report = (|| {
        let mut rows = Vec::new();
        let mut rss_samples = vec![(0.0, rss_start)];
        let mut sse_before = 0;
        let mut window_started = Instant::now();
        let duration = Duration::from_secs(args.duration_s);
        let interval = Duration::from_secs(args.interval_s);
        let mut next_row = interval;
        let mut sample = Instant::now() + Duration::from_secs(1);
        while started.elapsed() < duration {
            let now = Instant::now();
            if now < sample {
                std::thread::sleep(sample - now);
            }
            sample += Duration::from_secs(1);
            let t = started.elapsed();
            let rss = rss_bytes(pid)?;
            rss_samples.push((t.as_secs_f64(), rss));
            if t < next_row.min(duration) && t < duration {
                continue;
            }
            next_row += interval;
            let mut w = std::mem::take(&mut *lock(&s.window));
            let elapsed = window_started.elapsed();
            window_started = Instant::now();
            w.writes.sort_unstable();
            w.reads.sort_unstable();
            w.dashboard.sort_unstable();
            let sse_now: u64 = subs.iter().map(|x| x.events.load(Ordering::Relaxed)).sum();
            let row = json!({
                "row": rows.len() + 1,
                "t_s": t.as_secs(),
                "requests": w.writes.len() + w.reads.len() + w.dashboard.len(),
                "writes_per_s": per_second(w.writes.len(), elapsed).round(),
                "reads_per_s": per_second(w.reads.len(), elapsed).round(),
                "write_p50_ms": ms(&w.writes, 500),
                "write_p99_ms": ms(&w.writes, 990),
                "read_p50_ms": ms(&w.reads, 500),
                "read_p99_ms": ms(&w.reads, 990),
                "dashboard_p99_ms": ms(&w.dashboard, 990),
                "errors": w.errors,
                "position": s.position.load(Ordering::Relaxed),
                "rss_bytes": rss,
                "sse_events": sse_now - sse_before,
            });
            eprintln!(
                "soak row {:>3} t={:>4}s req={:>7} w/s={:>6} r/s={:>6} w p50/p99={:.2}/{:.2} ms r p50/p99={:.2}/{:.2} ms board+alerts p99={:.1} ms errors={} position={} rss={:.1} MiB sse={}",
                rows.len() + 1,
                t.as_secs(),
                row["requests"],
                row["writes_per_s"],
                row["reads_per_s"],
                row["write_p50_ms"].as_f64().unwrap_or(0.0),
                row["write_p99_ms"].as_f64().unwrap_or(0.0),
                row["read_p50_ms"].as_f64().unwrap_or(0.0),
                row["read_p99_ms"].as_f64().unwrap_or(0.0),
                row["dashboard_p99_ms"].as_f64().unwrap_or(0.0),
                w.errors,
                row["position"],
                mib(rss),
                sse_now - sse_before,
            );
            sse_before = sse_now;
            lock(&s.all_writes).extend(w.writes);
            lock(&s.all_reads).extend(w.reads);
            rows.push(row);
        }
        Ok::<_, anyhow::Error>((rows, rss_samples))
    })();
    // The load stops, also when the report failed; the subscribers keep following, they are
    // checked below.
    s.stop.store(true, Ordering::Relaxed);
    for task in load {
        task.join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
    }
    let (rows, rss_samples) = report?;
    let leftover = std::mem::take(&mut *lock(&s.window));
    lock(&s.all_writes).extend(leftover.writes);
    lock(&s.all_reads).extend(leftover.reads);
    let load_elapsed = started.elapsed();
    let rss_end = rss_samples.last().map_or(rss_start, |x| x.1);
    let rss_max = rss_samples.iter().map(|x| x.1).max().unwrap_or(rss_start);
    let rss_first_row = rows
        .first()
        .and_then(|r| r["rss_bytes"].as_u64())
        .unwrap_or(rss_start);

    // End checks, against the still-running server.
    let s = shared.clone();
    let subs = subscribers.clone();
    let checks = (|| {
        let mut conn = None;
        // Wait until the projections have folded the head.
        let folding = Instant::now();
        let head = loop {
            let (_, ready) = s
                .step(&mut conn, Kind::Read, "GET", "/readyz", None, &[200])
                .context("readyz")?;
            let head = ready["head"].as_u64().unwrap_or(0);
            if ready["projected"].as_u64() == Some(head) {
                break head;
            }
            anyhow::ensure!(
                folding.elapsed() < Duration::from_secs(SSE_CATCH_UP_S),
                "the projections did not reach the head: {ready}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let waited = Instant::now();
        while subs
            .iter()
            .any(|x| x.last_id.load(Ordering::Relaxed) < head && lock(&x.failed).is_none())
            && waited.elapsed() < Duration::from_secs(SSE_CATCH_UP_S)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let sse_catch_up_ms = waited.elapsed().as_millis();
        let per_subscriber: Vec<Value> = subs
            .iter()
            .map(|x| {
                json!({
                    "events": x.events.load(Ordering::Relaxed),
                    "last_id": x.last_id.load(Ordering::Relaxed),
                    "out_of_order": x.out_of_order.load(Ordering::Relaxed),
                    "failed": *lock(&x.failed),
                })
            })
            .collect();
        let sse_ok = subs.iter().all(|x| {
            x.events.load(Ordering::Relaxed) == head
                && x.last_id.load(Ordering::Relaxed) == head
                && x.out_of_order.load(Ordering::Relaxed) == 0
                && lock(&x.failed).is_none()
        });

        let live = all_views(&s)?;
        let (_, rebuilt) = s
            .step(
                &mut conn,
                Kind::Write,
                "POST",
                "/v1/admin/rebuild",
                Some(&json!({})),
                &[200],
            )
            .context("POST /v1/admin/rebuild")?;
        let after = all_views(&s)?;
        let views_equal = live == after;
        let differences = rebuilt["differences"].clone();
        Ok::<_, anyhow::Error>(json!({
            "head": head,
            "views": live.len(),
            "differences": differences,
            "views_equal_after_rebuild": views_equal,
            "rebuild_ms": rebuilt["elapsed_ms"],
            "sse": {"ok": sse_ok, "head": head, "catch_up_ms": sse_catch_up_ms,
                    "subscribers": per_subscriber},
        }))
    })()?;
    let rss_after_rebuild = rss_bytes(server.pid).ok();
    // Close the SSE streams, so the server's graceful shutdown does not wait on them.
    shared.closing.store(true, Ordering::Relaxed);
    for agent in sse_agents {
        agent.shutdown();
    }
    for subscriber in sse {
        subscriber
            .join()
            .map_err(|_| anyhow::anyhow!("an SSE subscriber thread panicked"))?;
    }
    let exit_code = sigterm(&mut server)?;

    let verify = Command::new(std::env::current_exe()?)
        .args(["verify", "--data-dir"])
        .arg(&data_dir)
        .output()
        .context("running verify")?;
    let verify_ok = verify.status.success();
    let verify_output = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout).trim(),
        String::from_utf8_lossy(&verify.stderr).trim()
    );

    let rss_restart = if verify_ok {
        Some(restart_rss(
            &data_dir,
            &dir.join("restart.log"),
            args.cache_mib,
        )?)
    } else {
        None
    };

    let mut all_writes = std::mem::take(&mut *lock(&shared.all_writes));
    let mut all_reads = std::mem::take(&mut *lock(&shared.all_reads));
    all_writes.sort_unstable();
    all_reads.sort_unstable();
    let totals = std::mem::take(&mut *lock(&shared.totals));
    let errors = shared.errors.load(Ordering::Relaxed);
    let half = args.duration_s as f64 / 2.0;
    let second_half: Vec<(f64, f64)> = rss_samples
        .iter()
        .filter(|(t, _)| *t >= half)
        .map(|(t, b)| (*t, *b as f64))
        .collect();
    let rss_slope = slope(&second_half);
    let head = checks["head"].as_u64().unwrap_or(0);
    let differences_empty = checks["differences"].as_array().is_some_and(Vec::is_empty);
    let sse_ok = checks["sse"]["ok"] == json!(true);
    let ok = errors == 0
        && verify_ok
        && differences_empty
        && checks["views_equal_after_rebuild"] == json!(true)
        && sse_ok
        && exit_code == Some(0);
    let line = json!({
        "bench": "soak",
        "ok": ok,
        "seed": seed,
        "duration_s": args.duration_s,
        "interval_s": args.interval_s,
        "writers": args.writers,
        "readers": args.readers,
        "subscribers": args.subscribers,
        "dashboard_ms": args.dashboard_ms,
        "cache_mib": args.cache_mib,
        "totals": {
            "requests": all_writes.len() + all_reads.len() + totals.dashboard,
            "writes": totals.writes,
            "reads": totals.reads,
            "dashboard_polls": totals.dashboard,
            "lifecycles": totals.lifecycles,
            "retries": totals.retries,
            "coalesced_activity": totals.coalesced,
            "duplicates": totals.duplicates,
            "events": head,
            "tickets": checks["views"],
            "writes_per_s": per_second(all_writes.len(), load_elapsed).round(),
            "reads_per_s": per_second(all_reads.len(), load_elapsed).round(),
            "write_p50_ms": ms(&all_writes, 500),
            "write_p99_ms": ms(&all_writes, 990),
            "read_p50_ms": ms(&all_reads, 500),
            "read_p99_ms": ms(&all_reads, 990),
        },
        "errors": errors,
        "error_samples": *lock(&shared.error_samples),
        "minutes": rows,
        "rss_start_bytes": rss_start,
        "rss_first_row_bytes": rss_first_row,
        "rss_restart_bytes": rss_restart,
        "rss_end_over_restart": rss_restart.map(|r| rss_end as f64 / (r.max(1) as f64)),
        "rss_max_bytes": rss_max,
        "rss_end_bytes": rss_end,
        "rss_after_rebuild_bytes": rss_after_rebuild,
        "rss_max_over_start": rss_max as f64 / (rss_start.max(1) as f64),
        "rss_end_over_first_row": rss_end as f64 / (rss_first_row.max(1) as f64),
        "rss_slope_second_half_bytes_per_s": rss_slope.round(),
        "rss_bytes_per_event_end": (rss_end.saturating_sub(rss_start) as f64 / (head.max(1) as f64)).round(),
        "server_exit_code": exit_code,
        "verify_ok": verify_ok,
        "verify_output": verify_output,
        "rebuild_differences": checks["differences"],
        "rebuild_ms": checks["rebuild_ms"],
        "views_equal_after_rebuild": checks["views_equal_after_rebuild"],
        "sse": checks["sse"],
        "server_log": log_path.display().to_string(),
        "machine": machine(),
    });
    print_result(&line, args.json);
    if !ok {
        bail!(
            "soak failed: {errors} errors, verify_ok={verify_ok}, rebuild differences {}, SSE ok={sse_ok}, exit code {exit_code:?}",
            checks["differences"]
        );
    }
    Ok(())
}
