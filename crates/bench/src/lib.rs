//! The benchmark harness: `mc-ledger bench …` prints one JSON line per run. Figures are
//! always reported beside a baseline measured in the same run, because this machine is
//! shared and noisy and single absolute timings are not stable.

mod budgets;
mod console;
mod http;
mod memory;
mod notify;
mod peers;
mod rebuild;
mod soak;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use events::{Actor, ActorKind, EventData, NewEvent, TicketCommented, TicketId, Timestamp};
use serde_json::json;
use store::{AppendRequest, EventReader};
use store_sled::{Log, LogConfig};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Durable appends from concurrent appenders, against raw sled inserts of the same bytes.
    Append(AppendArgs),
    /// Cold open + read + decode of a whole log.
    Scan(ScanArgs),
    /// The same durable workload against PostgreSQL, SQLite and mc-ledger over HTTP.
    Peers(PeersArgs),
    /// HTTP load on loopback: POST comment and GET ticket over 64 keep-alive connections.
    Http(HttpArgs),
    /// Refold every projection from a realistic log (cold and warm), and time start-up.
    Rebuild(RebuildArgs),
    /// Sustained mixed load on the real binary: throughput, p99 and RSS per interval.
    Soak(crate::soak::SoakArgs),
    /// The console's server time (board, ticket pages, lists) on a big generated ledger.
    Console(ConsoleArgs),
    /// Subscriptions delivering under load: commit-to-receipt latency, deliveries/s, and
    /// append throughput with them vs without.
    Notify(crate::notify::NotifyArgs),
    /// HTTP writes with dispatches covered by N budgets against none, arms interleaved.
    Budgets(crate::budgets::BudgetsArgs),
    /// A server over a long generated history: start-up, resident memory, open and closed
    /// ticket reads, board and alerts (SPEC §18).
    Memory(crate::memory::MemoryArgs),
}

/// `--dir` and `--json`, as every bench takes them: where it works (a fresh temporary
/// directory by default), and its result as one JSON line instead of pretty JSON.
#[derive(Args, Debug, Clone)]
pub struct Out {
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Events in the generated log (20 per ticket).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

#[derive(Args, Debug, Clone)]
pub struct PeersArgs {
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// PostgreSQL to compare with (a scratch table `mc_bench_events` is created and dropped).
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )]
    pub postgres_url: String,
    #[command(flatten)]
    pub out: crate::Out,
}

#[derive(Args, Debug)]
pub struct HttpArgs {
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 100_000)]
    pub writes: usize,
    #[arg(long, default_value_t = 200_000)]
    pub reads: usize,
    #[arg(long, default_value_t = 1000)]
    pub tickets: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// Events in the generated log (about 20 per ticket).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

/// `--durability`: what an acknowledged append has survived (see `store_sled::durable`).
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum DurabilityArg {
    /// sled's flush plus fdatasync: survives power loss (the default, SPEC §8).
    #[default]
    Fsync,
    /// sled's flush only (sync_file_range): survives a killed process, not a power cut.
    SledFlush,
}

impl From<DurabilityArg> for store_sled::Durability {
    fn from(d: DurabilityArg) -> store_sled::Durability {
        match d {
            DurabilityArg::Fsync => store_sled::Durability::Fsync,
            DurabilityArg::SledFlush => store_sled::Durability::SledFlush,
        }
    }
}

#[derive(Args, Debug)]
pub struct AppendArgs {
    /// The log and the raw-sled baseline use the same meaning of "flushed".
    #[arg(long, value_enum, default_value = "fsync")]
    pub durability: DurabilityArg,
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10_000)]
    pub tickets: usize,
    /// Where to put the logs (a fresh temporary directory by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 50_000)]
    pub tickets: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Append(a) => bench_append(a),
        BenchCommand::Scan(s) => bench_scan(s),
        BenchCommand::Rebuild(r) => crate::rebuild::run(r),
        BenchCommand::Http(h) => crate::http::run(h),
        BenchCommand::Notify(n) => crate::notify::run(n),
        BenchCommand::Budgets(b) => crate::budgets::run(b),
        BenchCommand::Memory(m) => crate::memory::run(m),
        BenchCommand::Peers(p) => crate::peers::run(p),
        BenchCommand::Soak(s) => crate::soak::run(s),
        BenchCommand::Console(c) => crate::console::run(c),
    }
}

/// A 240-byte comment body: with its envelope, a ≈250-byte payload.
pub(crate) fn payload_body(i: usize) -> String {
    let mut body = format!("bench event {i}: ");
    while body.len() < 240 {
        body.push_str("lorem ipsum dolor sit amet ");
    }
    body.truncate(240);
    body
}

fn payload(i: usize) -> EventData {
    EventData::TicketCommented(TicketCommented {
        body: payload_body(i),
    })
}

fn ticket(i: usize, tickets: usize) -> TicketId {
    TicketId::parse(&format!("BENCH-{}", i % tickets.max(1))).expect("valid ticket id")
}

pub(crate) fn event(i: usize, run: &str) -> NewEvent {
    NewEvent {
        id: format!("{run}-{i}"),
        recorded_at: Timestamp(1_790_000_000_000),
        actor: Actor {
            name: "bench".into(),
            kind: ActorKind::System,
        },
        token_id: None,
        data: payload(i),
    }
}

pub(crate) fn work_dir(
    dir: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            Ok((d, None))
        }
        None => {
            let t = tempfile::tempdir()?;
            Ok((t.path().to_owned(), Some(t)))
        }
    }
}

/// The latency at `per_mille` thousandths of the sorted list (nearest rank), in ms.
pub(crate) fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    sorted[(last * per_mille.min(1000)).div_ceil(1000)].as_secs_f64() * 1000.0
}

/// A small, seeded generator (splitmix64): the workload's choices, replayable by seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed for a run that was not given one (logged by the caller, so the run can be repeated).
pub(crate) fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
}

/// A multi-threaded tokio runtime with every driver on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

pub(crate) fn per_second(count: usize, elapsed: Duration) -> f64 {
    f64::from(u32::try_from(count).unwrap_or(u32::MAX)) / elapsed.as_secs_f64().max(1e-9)
}

pub(crate) fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({"cpus": cpus, "os": std::env::consts::OS, "arch": std::env::consts::ARCH})
}

/// Durable appends of `events` comment events from `concurrency` appenders: the latencies,
/// the elapsed time, and the log's bytes on disk.
pub(crate) fn timed_appends(
    log_dir: &std::path::Path,
    events: usize,
    concurrency: usize,
    tickets: usize,
    durability: store_sled::Durability,
) -> anyhow::Result<(Vec<Duration>, Duration, u64)> {
    let runtime = crate::runtime()?;
    let config = LogConfig {
        durability,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(log_dir, config)?);
    let (latencies, elapsed) =
        runtime.block_on(store_appends(log.clone(), events, concurrency, tickets))?;
    let head = log.head();
    log.close()?;
    let disk = log.size_on_disk();
    drop(log);
    anyhow::ensure!(
        head == u64::try_from(events)?,
        "log holds {head} events, not {events}"
    );
    Ok((latencies, elapsed, disk))
}

/// One single-event append per `i < events` from `concurrency` tasks, on any store; the
/// latencies come back sorted.
pub(crate) async fn store_appends(
    store: Arc<dyn store::EventStore>,
    events: usize,
    concurrency: usize,
    tickets: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let workers = vec![store; concurrency.max(1)];
    let done = workers::on_tasks(workers, events, |store, next| async move {
        let mut mine = Vec::new();
        while let Some(i) = next.take() {
            let t = Instant::now();
            store
                .append(AppendRequest {
                    also: Vec::new(),
                    ticket: ticket(i, tickets),
                    expected_version: None,
                    events: vec![event(i, "b")],
                })
                .await?;
            mine.push(t.elapsed());
        }
        anyhow::Ok(mine)
    })
    .await?;
    let mut all: Vec<Duration> = done.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok((all, elapsed))
}

/// Durable in-process append rate (events/s) for the HTTP bench's ratio.
pub(crate) fn append_rate(
    dir: &std::path::Path,
    events: usize,
    concurrency: usize,
    tickets: usize,
) -> anyhow::Result<f64> {
    let (_, elapsed, _) = timed_appends(
        dir,
        events,
        concurrency,
        tickets,
        store_sled::Durability::Fsync,
    )?;
    Ok(per_second(events, elapsed))
}

fn bench_append(args: AppendArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.dir)?;
    let (latencies, elapsed, disk) = timed_appends(
        &dir.join("log"),
        args.events,
        args.concurrency,
        args.tickets,
        args.durability.into(),
    )?;

    // Baseline: the same record bytes, raw sled inserts, one flush per 1000.
    let values: Vec<Vec<u8>> = (0..args.events)
        .map(|i| {
            let e = event(i, "b");
            let t = ticket(i, args.tickets);
            let mut out = Vec::new();
            let head = events::codec::RecordHead {
                position: u64::try_from(i).unwrap_or(u64::MAX),
                ticket: &t,
                version: 1,
                id: &e.id,
                recorded_at: e.recorded_at,
                actor: &e.actor,
                token_id: None,
            };
            events::codec::encode_record(&mut out, &events::Hash::ZERO, &head, &e.data).map(|_| out)
        })
        .collect::<Result<_, _>>()?;
    let record_bytes = values.iter().map(Vec::len).sum::<usize>() / values.len().max(1);
    let baseline = store_sled::baseline::raw_sled_inserts(
        &dir.join("baseline"),
        &values,
        1000,
        args.durability.into(),
    )?;

    let events_per_s = per_second(args.events, elapsed);
    let baseline_events_per_s = per_second(args.events, baseline);
    let line = json!({
        "bench": "append",
        "durability": match args.durability { DurabilityArg::Fsync => "fsync", DurabilityArg::SledFlush => "sled-flush" },
        "events": args.events,
        "concurrency": args.concurrency,
        "tickets": args.tickets,
        "record_bytes": record_bytes,
        "events_per_s": events_per_s.round(),
        "p50_ms": percentile(&latencies, 500),
        "p99_ms": percentile(&latencies, 990),
        "max_ms": percentile(&latencies, 1000),
        "baseline_events_per_s": baseline_events_per_s.round(),
        "ratio_to_baseline": events_per_s / baseline_events_per_s,
        "disk_bytes": disk,
        "machine": machine(),
    });
    print_result(&line, args.json);
    Ok(())
}

fn bench_scan(args: ScanArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir)?;
    let log_dir = dir.join("log");
    // Build the log quickly: many events per append, many appenders.
    let build_started = Instant::now();
    {
        let log = Arc::new(Log::open(&log_dir, LogConfig::default())?);
        let (total, tickets) = (args.events, args.tickets);
        workers::fill_log(&log, total.div_ceil(16), move |chunk| {
            let start = chunk * 16;
            AppendRequest {
                also: Vec::new(),
                ticket: ticket(chunk, tickets),
                expected_version: None,
                events: (start..(start + 16).min(total))
                    .map(|i| event(i, "s"))
                    .collect(),
            }
        })?;
        log.close()?;
    }
    let build = build_started.elapsed();

    let started = Instant::now();
    let log = Log::open(&log_dir, LogConfig::default())?;
    let opened = started.elapsed();
    let mut after = 0;
    let mut count = 0usize;
    let mut bytes = 0usize;
    loop {
        let page = log.read_after(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        count += page.len();
        bytes += page
            .iter()
            .map(|e| match &e.data {
                EventData::TicketCommented(c) => c.body.len(),
                _ => 0,
            })
            .sum::<usize>();
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        count == args.events,
        "scanned {count} of {} events",
        args.events
    );
    let line = json!({
        "bench": "scan",
        "events": count,
        "events_per_s": per_second(count, elapsed).round(),
        "open_ms": opened.as_secs_f64() * 1000.0,
        "scan_ms": elapsed.as_secs_f64() * 1000.0,
        "body_bytes": bytes,
        "build_events_per_s": per_second(args.events, build).round(),
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}

pub(crate) fn print_result(line: &serde_json::Value, json: bool) {
    if json {
        println!("{line}");
    } else {
        println!("{}", serde_json::to_string_pretty(line).unwrap_or_default());
    }
}
