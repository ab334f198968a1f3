//! `mc-ledger bench http`: a load generator on loopback against a real server (in process, on
//! its own runtime): 64 keep-alive connections POSTing comments, then GETting tickets. The
//! in-process append rate of the same event shape is measured in the same run, as the ratio's
//! denominator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{machine, per_second, percentile, print_result, work_dir, HttpArgs};

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub(crate) async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    pub(crate) async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<u16> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if !body.is_empty() {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed");
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

struct Phase {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

async fn phase(
    addr: std::net::SocketAddr,
    connections: usize,
    requests: usize,
    tickets: usize,
    write: bool,
) -> anyhow::Result<Phase> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let ticket = format!("LOAD-{}", i % tickets);
                let t = Instant::now();
                let status = if write {
                    let body = json!({"body": format!("load comment {i}: {}", "x".repeat(180)), "actor": {"name": "bench", "kind": "system"}});
                    conn.call("POST", &format!("/v1/tickets/{ticket}/comments"), &body.to_string()).await?
                } else {
                    conn.call("GET", &format!("/v1/tickets/{ticket}"), "").await?
                };
                latencies.push(t.elapsed());
                if !(200..300).contains(&status) {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Phase {
        requests: latencies.len(),
        elapsed,
        latencies,
        errors,
    })
}

pub(crate) fn run(args: HttpArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.dir)?;
    // The server gets its own runtime (its own threads), like a separate process would.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opened = api::server::open(&dir.join("server"))?;
    let router = api::server::app(opened.state.clone());
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    server_rt.spawn(async move { axum::serve(listener, router).await });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (writes, reads) = client_rt.block_on(async {
        let mut conn = Conn::open(addr).await?;
        for t in 0..args.tickets {
            let body = json!({"id": format!("LOAD-{t}"), "title": "load ticket", "actor": {"name": "bench", "kind": "system"}});
            let status = conn.call("POST", "/v1/tickets", &body.to_string()).await?;
            anyhow::ensure!(status == 201, "creating LOAD-{t}: {status}");
        }
        let writes = phase(addr, args.connections, args.writes, args.tickets, true).await?;
        let reads = phase(addr, args.connections, args.reads, args.tickets, false).await?;
        Ok::<_, anyhow::Error>((writes, reads))
    })?;
    drop(client_rt);
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
    print_result(&line, args.json);
    Ok(())
}
