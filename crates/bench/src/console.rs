//! `mc-ledger bench console`: the console's server time on a big ledger (issue 15: the board
//! and a ticket page in at most 50 ms at 1M events / 50k tickets). The log is the rebuild
//! bench's (tickets of 20 events in the real mix, a tenth of them left open); the pages are
//! asked of the real router in process, so the time is the handler's: projections, the
//! ticket's streams read from sled, the timeline fold and the HTML.

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::Request;
use serde_json::json;
use tower::ServiceExt;

use crate::{machine, print_result, work_dir, ConsoleArgs};

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn time_page(
    app: &axum::Router,
    path: &str,
    must_show: &str,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty())?)
            .await
            .context("router")?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path} answered {}",
            response.status()
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        times.push(started.elapsed());
        anyhow::ensure!(
            String::from_utf8_lossy(&body).contains(must_show),
            "{path} does not show {must_show:?}"
        );
        bytes = body.len();
    }
    times.sort();
    Ok((times, bytes))
}

pub(crate) fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir)?;
    let data_dir = dir.join("data");
    let tickets = args.events.div_ceil(20).max(1);
    crate::rebuild::build_log(&data_dir, tickets, crate::rebuild::OPEN_EVERY)?;
    let opened = api::server::open(&data_dir)?;
    let events = opened.state.read.shared.read(projections::Ledger::position);
    let app = api::server::app(opened.state.clone());
    let runtime = crate::runtime()?;
    // An open ticket (every tenth is left open) and a closed one, in the middle of the log.
    let open_ticket = format!("/tickets/MC-{}", (tickets / 2 / 10) * 10 + 1);
    let closed_ticket = format!("/tickets/MC-{}", tickets / 2 + 2);
    let mut pages = Vec::new();
    runtime.block_on(async {
        // The API's board (JSON of the same data) is the baseline the board page is held to.
        let open_id = open_ticket.trim_start_matches("/tickets/").to_owned();
        let closed_id = closed_ticket.trim_start_matches("/tickets/").to_owned();
        let asked = [
            ("/v1/board", "in_progress"),
            ("/", "Board"),
            (open_ticket.as_str(), open_id.as_str()),
            (closed_ticket.as_str(), closed_id.as_str()),
            ("/runtimes", "Runtimes"),
            ("/alerts", "Alerts"),
            ("/events", "Event log"),
        ];
        for (path, must_show) in asked {
            let (times, bytes) = time_page(&app, path, must_show, args.runs).await?;
            pages.push(json!({
                "page": path,
                "p50_ms": percentile(&times, 0.5),
                "p99_ms": percentile(&times, 0.99),
                "max_ms": percentile(&times, 1.0),
                "bytes": bytes,
            }));
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let line = json!({
        "bench": "console",
        "events": events,
        "tickets": tickets,
        "runs": args.runs,
        "pages": pages,
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}
