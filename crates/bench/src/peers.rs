//! `mc-ledger bench peers`: the same durable workload against what users would otherwise
//! pick, in one run: mc-ledger embedded, mc-ledger over HTTP on loopback, PostgreSQL with the
//! common event-store layout, and SQLite in WAL mode with `synchronous=FULL`. Every append is
//! one event, acknowledged only when durable, from 64 concurrent writers over 10,000 streams.
//! A peer that cannot be reached is reported as skipped with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{machine, payload_body, per_second, percentile, print_result, work_dir, PeersArgs};

/// What one system did.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn result(mut self, system: &str, mode: &str, events: usize) -> Value {
        self.latencies.sort_unstable();
        json!({
            "system": system,
            "mode": mode,
            "events": events,
            "events_per_s": per_second(events, self.elapsed).round(),
            "p50_ms": percentile(&self.latencies, 500),
            "p99_ms": percentile(&self.latencies, 990),
        })
    }
}

fn skipped(system: &str, mode: &str, reason: impl std::fmt::Display) -> Value {
    json!({"system": system, "mode": mode, "skipped": reason.to_string()})
}

fn stream(i: usize, streams: usize) -> String {
    format!("BENCH-{}", i % streams.max(1))
}

/// The `i`-th append as a row of a peer's events table: stream, id and JSON data.
fn row(i: usize, streams: usize) -> (String, String, String) {
    let data = json!({"body": payload_body(i)}).to_string();
    (stream(i, streams), format!("peer-{i}"), data)
}

pub(crate) fn run(args: PeersArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir.clone())?;
    let mut results = Vec::new();

    let (latencies, elapsed, _) = crate::timed_appends(
        &dir.join("embedded"),
        args.events,
        args.concurrency,
        args.streams,
        store_sled::Durability::Fsync,
    )?;
    results.push(Run { latencies, elapsed }.result("mc-ledger", "embedded", args.events));

    let events = args.events;
    let peers: [(&str, &str, anyhow::Result<Run>); 5] = [
        (
            "mc-ledger-pg",
            "PostgreSQL store in process",
            pg_store(&args),
        ),
        (
            "mc-ledger-pg-http",
            "3 replicas on one PostgreSQL, http loopback",
            pg_http(&args),
        ),
        (
            "mc-ledger-http",
            "http loopback",
            http(&dir.join("http"), &args),
        ),
        (
            "postgres",
            "events table, one transaction per append",
            postgres(&args),
        ),
        (
            "sqlite",
            "WAL, synchronous=FULL, one writer connection",
            sqlite(&dir.join("sqlite.db"), &args),
        ),
    ];
    for (system, mode, run) in peers {
        results.push(match run {
            Ok(run) => run.result(system, mode, events),
            Err(e) => skipped(system, mode, format!("{e:#}")),
        });
    }

    let rate = |system: &str| {
        results
            .iter()
            .find(|r| r["system"] == system)
            .and_then(|r| r["events_per_s"].as_f64())
    };
    let ratio = |a: &str, b: &str| match (rate(a), rate(b)) {
        (Some(x), Some(y)) if y > 0.0 => json!(x / y),
        _ => Value::Null,
    };
    let line = json!({
        "bench": "peers",
        "events": args.events,
        "concurrency": args.concurrency,
        "streams": args.streams,
        "results": results,
        "ratios": {
            "embedded_vs_postgres": ratio("mc-ledger", "postgres"),
            "embedded_vs_sqlite": ratio("mc-ledger", "sqlite"),
            "http_vs_postgres": ratio("mc-ledger-http", "postgres"),
            "pg_store_vs_postgres": ratio("mc-ledger-pg", "postgres"),
            "pg_http_vs_postgres": ratio("mc-ledger-pg-http", "postgres"),
        },
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}

/// The PostgreSQL store a bench peer uses: a scratch schema, dropped before and after.
fn pg_config(args: &PeersArgs, schema: &str) -> anyhow::Result<store_pg::PgConfig> {
    let config = store_pg::PgConfig::parse(&args.postgres_url, Some(schema))?;
    store_pg::PgStore::drop_schema(&config)?;
    Ok(config)
}

/// mc-ledger's PostgreSQL store in process, one replica: the embedded workload (64 writers,
/// one event per append), group-committed into shared transactions.
fn pg_store(args: &PeersArgs) -> anyhow::Result<Run> {
    let config = pg_config(args, "mc_bench_pg")?;
    let store = Arc::new(store_pg::PgStore::open(config.clone())?);
    let runtime = crate::runtime()?;
    let (latencies, elapsed) = runtime.block_on(crate::store_appends(
        store.clone(),
        args.events,
        args.concurrency,
        args.streams,
    ))?;
    use store::EventReader;
    anyhow::ensure!(
        store.head() == u64::try_from(args.events)?,
        "the store holds {} events",
        store.head()
    );
    drop(store);
    store_pg::PgStore::drop_schema(&config)?;
    Ok(Run { latencies, elapsed })
}

/// Three replicas on one PostgreSQL schema, in process, each with its own store and listener;
/// the writers are spread over them.
fn pg_http(args: &PeersArgs) -> anyhow::Result<Run> {
    let config = pg_config(args, "mc_bench_pg_http")?;
    let url = service::home::StoreUrl::Postgres(config.clone());
    let server_rt = crate::runtime()?;
    let mut addrs = Vec::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let opened = api::server::open_url(&url, store_sled::LogConfig::default())?;
        addrs.push(crate::http::serve(&server_rt, &opened)?);
        replicas.push(opened);
    }
    let run = load(&addrs, args)?;
    for opened in &replicas {
        opened.store.close()?;
    }
    drop(server_rt);
    drop(replicas);
    store_pg::PgStore::drop_schema(&config)?;
    Ok(run)
}

/// The server in process on its own runtime; writers POST one typed event each.
fn http(dir: &std::path::Path, args: &PeersArgs) -> anyhow::Result<Run> {
    let (server_rt, opened, addr) = crate::http::start_server(dir)?;
    let run = load(&[addr], args)?;
    opened.store.close()?;
    drop(server_rt);
    Ok(run)
}

/// `args.concurrency` keep-alive connections, spread over `addrs`, each on a thread of its own
/// POSTing one typed event per request until `args.events` are acknowledged.
fn load(addrs: &[std::net::SocketAddr], args: &PeersArgs) -> anyhow::Result<Run> {
    let started = Instant::now();
    let workers = (0..args.concurrency).map(|task| addrs[task % addrs.len()]);
    let done = crate::workers::on_threads(workers, args.events, |addr, next| {
        let conn = crate::http::Conn::open(addr);
        let mut mine = Vec::new();
        while let Some(i) = next.take() {
            let body = json!({"events": [{
                "id": format!("peer-{i}"), "type": "ticket.commented",
                "data": {"body": payload_body(i)},
                "actor": {"name": "bench", "kind": "system"},
            }]});
            let t = Instant::now();
            let (status, _) = conn.call(
                "POST",
                &format!("/v1/tickets/{}/events", stream(i, args.streams)),
                &body.to_string(),
            )?;
            anyhow::ensure!(status == 201, "append answered {status}");
            mine.push(t.elapsed());
        }
        Ok(mine)
    })?;
    let elapsed = started.elapsed();
    let latencies = done.into_iter().flatten().collect();
    Ok(Run { latencies, elapsed })
}

const PG_SCHEMA: &str = "
    DROP TABLE IF EXISTS mc_bench_events;
    CREATE TABLE mc_bench_events (
        position    BIGSERIAL PRIMARY KEY,
        stream      TEXT NOT NULL,
        version     BIGINT NOT NULL,
        id          TEXT NOT NULL UNIQUE,
        type        TEXT NOT NULL,
        data        JSONB NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (stream, version)
    );";

/// The common PostgreSQL event-store layout: a global bigserial position and a unique
/// (stream, version); one transaction per append (autocommit, `synchronous_commit` as the
/// server has it, on by default); a lost version race retries.
fn postgres(args: &PeersArgs) -> anyhow::Result<Run> {
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let url = args.postgres_url.clone();
        let connect = || async {
            let (client, connection) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_postgres::connect(&url, tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {url} timed out"))??;
            tokio::spawn(connection);
            Ok::<_, anyhow::Error>(client)
        };
        let admin = connect().await?;
        admin.batch_execute(PG_SCHEMA).await?;
        let sync: String = admin.query_one("SHOW synchronous_commit", &[]).await?.get(0);
        anyhow::ensure!(sync != "off", "synchronous_commit is off: appends would not be durable");
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..args.concurrency {
            clients.push(connect().await?);
        }
        let streams = args.streams;
        let done = crate::workers::on_tasks(clients, args.events, |client, next| async move {
            let insert = client
                .prepare(
                    "INSERT INTO mc_bench_events (stream, version, id, type, data) \
                     SELECT $1, COALESCE(MAX(version), 0) + 1, $2, 'ticket.commented', $3::text::jsonb \
                     FROM mc_bench_events WHERE stream = $1",
                )
                .await?;
            let mut mine = Vec::new();
            while let Some(i) = next.take() {
                let (s, id, data) = row(i, streams);
                let t = Instant::now();
                loop {
                    match client.execute(&insert, &[&s, &id, &data]).await {
                        Ok(_) => break,
                        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => continue,
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
                mine.push(t.elapsed());
            }
            Ok(mine)
        })
        .await?;
        let latencies = done.into_iter().flatten().collect();
        let elapsed = started.elapsed();
        let count: i64 = admin.query_one("SELECT count(*) FROM mc_bench_events", &[]).await?.get(0);
        anyhow::ensure!(usize::try_from(count)? == args.events, "postgres holds {count} events");
        admin.batch_execute("DROP TABLE mc_bench_events").await?;
        Ok(Run { latencies, elapsed })
    })
}

/// SQLite as many mission controls keep tickets today: WAL, `synchronous=FULL`, one
/// `BEGIN IMMEDIATE` transaction per append. SQLite has one writer at a time; 64 connections
/// contending through `busy_timeout` back off and sleep (a few hundred appends/s), so the
/// writers share one connection behind a mutex instead, which is SQLite's best case.
fn sqlite(path: &std::path::Path, args: &PeersArgs) -> anyhow::Result<Run> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL, version INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL, data TEXT NOT NULL, recorded_at TEXT NOT NULL DEFAULT (datetime('now')),
            UNIQUE (stream, version));",
    )?;
    let conn = std::sync::Mutex::new(conn);
    let started = Instant::now();
    let done = crate::workers::on_threads(0..args.concurrency, args.events, |_, next| {
        let mut mine = Vec::new();
        while let Some(i) = next.take() {
            let (s, id, data) = row(i, args.streams);
            let t = Instant::now();
            {
                let mut conn = conn
                    .lock()
                    .map_err(|_| anyhow::anyhow!("sqlite lock poisoned"))?;
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO events (stream, version, id, type, data) \
                     SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, 'ticket.commented', ?3 FROM events WHERE stream = ?1",
                    rusqlite::params![s, id, data],
                )?;
                tx.commit()?;
            }
            mine.push(t.elapsed());
        }
        Ok(mine)
    })?;
    Ok(Run {
        latencies: done.into_iter().flatten().collect(),
        elapsed: started.elapsed(),
    })
}
