//! `mc-ledger bench http`: a load generator on loopback against a real server (in process, on
//! its own runtime): 64 keep-alive connections POSTing comments, then GETting tickets. The
//! in-process append rate of the same event shape is measured in the same run, as the ratio's
//! denominator.
//!
//! The load generator is one thread per connection, each blocking on its own `ureq` agent
//! (the HTTP client `crates/client` already uses), one request at a time: a closed loop, as
//! many requests in flight as there are connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::{machine, per_second, percentile, print_result, work_dir, HttpArgs};

/// One keep-alive HTTP/1.1 connection: a `ureq` agent of its own whose pool keeps one idle
/// connection, so its requests go one after the other over the same socket (Nagle off). The
/// socket is opened by the first request; a failed one is dropped and the next request opens
/// another. The agent's clones share it, and [`ureq::Agent::shutdown`] closes it even in the
/// middle of a response.
pub(crate) struct Conn {
    agent: ureq::Agent,
    base: String,
}

impl Conn {
    /// Requests that wait as long as it takes.
    pub(crate) fn open(addr: SocketAddr) -> Conn {
        Conn::with_timeout(addr, None)
    }

    /// Requests that give up after `timeout` (the whole call, body included).
    pub(crate) fn with_timeout(addr: SocketAddr, timeout: Option<Duration>) -> Conn {
        let agent = ureq::Agent::config_builder()
            // A 4xx or 5xx is an answer the caller counts, not a transport error.
            .http_status_as_error(false)
            // Loopback: never through a proxy named in the environment.
            .proxy(None)
            .no_delay(true)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // The same connection for the whole run, however long a worker pauses.
            .max_idle_age(Duration::from_secs(24 * 3600))
            .timeout_global(timeout)
            .build()
            .into();
        Conn {
            agent,
            base: format!("http://{addr}"),
        }
    }

    /// A handle on the connection, for [`ureq::Agent::shutdown`] from another thread.
    pub(crate) fn agent(&self) -> ureq::Agent {
        self.agent.clone()
    }

    /// A response of the server, status and raw body, read to the end so the connection goes
    /// back to the pool for the next request. A `body` is sent as JSON.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let url = format!("{}{path}", self.base);
        let sent = match method {
            "GET" => self.agent.get(&url).call(),
            "POST" => self
                .agent
                .post(&url)
                .content_type("application/json")
                .send(body),
            other => bail!("the bench sends no {other} requests"),
        };
        let mut response = sent?;
        let status = response.status().as_u16();
        let body = client::read_body(&mut response).context("reading the body")?;
        Ok((status, body))
    }

    /// A streamed response (`text/event-stream`): the status and a reader of the body as it
    /// comes, on this connection.
    pub(crate) fn stream(&self, path: &str) -> anyhow::Result<(u16, ureq::BodyReader<'static>)> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Accept", "text/event-stream")
            .call()?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().into_reader()))
    }
}

pub(crate) struct Phase {
    pub(crate) requests: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) errors: usize,
}

/// The i-th request of a phase: method, path and body.
pub(crate) type Request<'a> = &'a (dyn Fn(usize) -> (&'static str, String, String) + Sync);

/// A comment on `LOAD-{i % tickets}`, the write every HTTP bench measures.
pub(crate) fn comment(i: usize, tickets: usize) -> (&'static str, String, String) {
    let body = json!({"body": format!("load comment {i}: {}", "x".repeat(180)), "actor": {"name": "bench", "kind": "system"}});
    (
        "POST",
        format!("/v1/tickets/LOAD-{}/comments", i % tickets),
        body.to_string(),
    )
}

/// Opens `LOAD-0` … `LOAD-{tickets - 1}`.
pub(crate) fn open_tickets(addr: SocketAddr, tickets: usize) -> anyhow::Result<()> {
    let conn = Conn::open(addr);
    for t in 0..tickets {
        let body = json!({"id": format!("LOAD-{t}"), "title": "load ticket", "actor": {"name": "bench", "kind": "system"}});
        let (status, _) = conn.call("POST", "/v1/tickets", &body.to_string())?;
        anyhow::ensure!(status == 201, "creating LOAD-{t}: {status}");
    }
    Ok(())
}

/// `connections` threads, each on its own connection, taking request numbers from one
/// counter until `requests` are done.
pub(crate) fn phase(
    addr: SocketAddr,
    connections: usize,
    requests: usize,
    request: Request<'_>,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let workers = vec![addr; connections];
    let done = crate::workers::on_threads(workers, requests, |addr, next| {
        let conn = Conn::open(addr);
        let mut latencies = Vec::new();
        let mut errors = 0usize;
        while let Some(i) = next.take() {
            let (method, path, body) = request(i);
            let t = Instant::now();
            let (status, _) = conn.call(method, &path, &body)?;
            latencies.push(t.elapsed());
            if !(200..300).contains(&status) {
                errors += 1;
            }
        }
        Ok((latencies, errors))
    })?;
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for (l, e) in done {
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    Ok(Phase {
        requests: latencies.len(),
        elapsed,
        latencies,
        errors,
    })
}

/// A server in process on `dir`, on its own runtime (its own threads, like a separate
/// process), listening on a free loopback port.
pub(crate) fn start_server(
    dir: &std::path::Path,
) -> anyhow::Result<(tokio::runtime::Runtime, api::server::Opened, SocketAddr)> {
    let server_rt = crate::runtime()?;
    let opened = api::server::open(dir)?;
    let addr = serve(&server_rt, &opened)?;
    Ok((server_rt, opened, addr))
}

/// Serves `opened` on `server_rt`, on a free loopback port.
pub(crate) fn serve(
    server_rt: &tokio::runtime::Runtime,
    opened: &api::server::Opened,
) -> anyhow::Result<SocketAddr> {
    let router = api::server::app(opened.state.clone());
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    server_rt.spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

pub(crate) fn run(args: HttpArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir)?;
    let (server_rt, opened, addr) = start_server(&dir.join("server"))?;

    open_tickets(addr, args.tickets)?;
    let tickets = args.tickets;
    let writes = phase(addr, args.connections, args.writes, &|i| {
        comment(i, tickets)
    })?;
    let read = |i: usize| {
        (
            "GET",
            format!("/v1/tickets/LOAD-{}", i % tickets),
            String::new(),
        )
    };
    let reads = phase(addr, args.connections, args.reads, &read)?;
    opened.store.close()?;
    drop(server_rt);
    drop(opened);

    // The same event shape appended in process, same concurrency, same run.
    let baseline = crate::append_rate(
        &dir.join("inproc"),
        args.writes,
        args.connections,
        args.tickets,
    )?;

    let writes_per_s = per_second(writes.requests, writes.elapsed);
    let line = json!({
        "bench": "http",
        "connections": args.connections,
        "writes": writes.requests,
        "writes_per_s": writes_per_s.round(),
        "write_p50_ms": percentile(&writes.latencies, 500),
        "write_p99_ms": percentile(&writes.latencies, 990),
        "write_errors": writes.errors,
        "reads": reads.requests,
        "reads_per_s": per_second(reads.requests, reads.elapsed).round(),
        "read_p50_ms": percentile(&reads.latencies, 500),
        "read_p99_ms": percentile(&reads.latencies, 990),
        "read_errors": reads.errors,
        "inprocess_append_events_per_s": baseline.round(),
        "writes_ratio_to_inprocess": writes_per_s / baseline.max(1e-9),
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}
