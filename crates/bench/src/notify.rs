//! `mc-ledger bench notify`: the delivery engine under load (SPEC §15). An in-process server
//! with `subscriptions` subscriptions (one filtered to an umbrella over a tenth of the tickets)
//! delivering to a keep-alive receiver on loopback:
//! - **latency:** comments appended open-loop at `rate` events/s for `seconds`; for every
//!   delivery, the time from its append's acknowledgement to its receipt (p50, p99), and
//!   deliveries/s;
//! - **cost to appends:** closed-loop append throughput (`concurrency` appenders, `events`
//!   comments) with the subscriptions delivering vs with none, interleaved `rounds` times in
//!   the same run (the ratio is of the medians).
//!
//! Every comment is appended as a client's raw append is, through the service, which folds
//! the projections after it: a server folds with or without subscriptions, so both arms pay
//! for it (until 2026-12-04 the appends went to the store alone, and the subscriptions' fold
//! was counted as their cost).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use events::{
    Actor, ActorKind, EventData, NewEvent, Relation, TicketId, TicketLinked, TicketOpened,
    Timestamp,
};
use serde_json::json;
use service::subscriptions::SubscriptionInput;
use store::AppendRequest;

use crate::{machine, per_second, percentile, print_result, work_dir};

#[derive(Args, Debug)]
pub struct NotifyArgs {
    #[arg(long, default_value_t = 10)]
    pub subscriptions: usize,
    /// Events per second offered in the latency phase.
    #[arg(long, default_value_t = 1000)]
    pub rate: usize,
    /// Length of the latency phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Comments per closed-loop append run.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// With/without runs, interleaved.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 100)]
    pub tickets: usize,
    #[command(flatten)]
    pub out: crate::Out,
}

/// What the receiver got: (path, webhook-id, when).
type Receipts = Arc<Mutex<Vec<(String, String, Instant)>>>;

/// A keep-alive HTTP/1.1 receiver answering 200 to every POST.
fn receiver() -> anyhow::Result<(SocketAddr, Receipts)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let got: Receipts = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || serve(conn, &sink));
        }
    });
    Ok((addr, got))
}

fn serve(conn: TcpStream, sink: &Mutex<Vec<(String, String, Instant)>>) {
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (mut length, mut id) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "webhook-id" => v.trim().clone_into(&mut id),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path, id, Instant::now()));
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn bench_actor() -> Actor {
    Actor {
        name: "bench".into(),
        kind: ActorKind::System,
    }
}

fn fact(id: String, data: EventData) -> NewEvent {
    NewEvent {
        id,
        recorded_at: Timestamp(1_790_000_000_000),
        actor: bench_actor(),
        token_id: None,
        data,
    }
}

fn load_ticket(i: usize, tickets: usize) -> TicketId {
    TicketId::parse(&format!("LOAD-{}", i % tickets.max(1))).expect("a ticket id")
}

/// A server on `dir` with its tickets (a tenth of them under UMB-1) and, when `subscribed`,
/// the subscriptions and the engine delivering them to `receiver`.
struct Server {
    runtime: tokio::runtime::Runtime,
    opened: api::server::Opened,
    engine: Option<notify::Engine>,
}

fn server(dir: &Path, args: &NotifyArgs, receiver: Option<SocketAddr>) -> anyhow::Result<Server> {
    let runtime = crate::runtime()?;
    let opened = api::server::open(dir)?;
    let store = opened.store.clone();
    let opened_events = |t: &TicketId, title: &str| {
        AppendRequest::new(
            t.clone(),
            Some(0),
            vec![fact(
                format!("open-{t}"),
                EventData::TicketOpened(TicketOpened {
                    title: title.into(),
                    description: None,
                    priority: Default::default(),
                    owner: None,
                    project: None,
                    umbrella: false,
                    labels: Vec::new(),
                }),
            )],
        )
    };
    runtime.block_on(async {
        let umbrella = TicketId::parse("UMB-1")?;
        store.append(opened_events(&umbrella, "umbrella")).await?;
        for i in 0..args.tickets {
            let t = load_ticket(i, args.tickets);
            let mut append = opened_events(&t, "load");
            if i.is_multiple_of(10) {
                let mut events: Vec<NewEvent> = append.all_events().cloned().collect();
                events.push(fact(
                    format!("link-{t}"),
                    EventData::TicketLinked(TicketLinked {
                        relation: Relation::ChildOf,
                        target: umbrella.to_string(),
                    }),
                ));
                append = AppendRequest::new(t.clone(), Some(0), events);
            }
            store.append(append).await?;
        }
        anyhow::Ok(())
    })?;
    let service = opened.state.write.service.clone();
    service.shared.catch_up()?;
    let engine = match receiver {
        None => None,
        Some(addr) => {
            runtime.block_on(async {
                for s in 0..args.subscriptions {
                    let filter = events::SubscriptionFilter {
                        types: vec!["ticket.commented".into()],
                        umbrella: (s == 0).then(|| "UMB-1".to_owned()),
                        ..Default::default()
                    };
                    let input = SubscriptionInput {
                        name: format!("s{s}"),
                        url: format!("http://{addr}/s{s}"),
                        format: events::NoticeFormat::Json,
                        filter,
                        remind_every_ms: None,
                        chat_id: None,
                        secret: None,
                    };
                    service
                        .configure_subscription(None, Some(bench_actor()), input, None)
                        .await
                        .map_err(|e| anyhow::anyhow!("subscribing: {e:?}"))?;
                }
                anyhow::Ok(())
            })?;
            let _enter = runtime.enter();
            let mut config = notify::EngineConfig::new("http://bench");
            config.tick = Duration::from_millis(200);
            Some(notify::Engine::start(service, config))
        }
    };
    Ok(Server {
        runtime,
        opened,
        engine,
    })
}

/// One comment appended the way a client's raw append is (`POST /v1/tickets/{id}/events`):
/// through the service, which folds the projections after it. Both arms pay the fold, as a
/// server does with or without subscriptions.
async fn append(
    service: &service::Service,
    ticket: TicketId,
    event: NewEvent,
) -> anyhow::Result<()> {
    service
        .append_raw(AppendRequest::new(ticket, None, vec![event]))
        .await
        .map_err(|e| anyhow::anyhow!("append: {e:?}"))?;
    Ok(())
}

impl Server {
    fn service(&self) -> Arc<service::Service> {
        self.opened.state.write.service.clone()
    }

    fn stop(self) -> anyhow::Result<()> {
        if let Some(engine) = self.engine {
            self.runtime.block_on(engine.stop(Duration::from_secs(5)));
        }
        self.opened.store.close()?;
        Ok(())
    }
}

/// Closed loop: `concurrency` appenders, `events` comments; events/s.
fn throughput(s: &Server, args: &NotifyArgs, run: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let tickets = args.tickets;
    let workers = (0..args.concurrency).map(|_| (s.service(), run.to_owned()));
    s.runtime.block_on(crate::workers::on_tasks(
        workers,
        args.events,
        |(service, run), next| async move {
            while let Some(i) = next.take() {
                let e = crate::event(i, &run);
                append(&service, load_ticket(i, tickets), e).await?;
            }
            anyhow::Ok(())
        },
    ))?;
    Ok(per_second(args.events, started.elapsed()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn run(args: NotifyArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(args.out.dir.clone())?;
    let (addr, got) = receiver()?;

    // Cost to appends: none, subscribed, none, subscribed, … on fresh stores.
    let (mut none, mut subscribed) = (Vec::new(), Vec::new());
    // Deliveries received while the appenders ran: what the subscriptions took from them.
    let mut delivered_meanwhile = Vec::new();
    let received = || got.lock().unwrap_or_else(|p| p.into_inner()).len();
    for round in 0..args.rounds {
        for with in [false, true] {
            let s = server(
                &dir.join(format!("t{round}{with}")),
                &args,
                with.then_some(addr),
            )?;
            let before = received();
            let rate = throughput(&s, &args, &format!("r{round}"))?;
            let meanwhile = received() - before;
            s.stop()?;
            if with {
                delivered_meanwhile.push(meanwhile);
                subscribed.push(rate)
            } else {
                none.push(rate)
            }
        }
    }

    // Latency: open loop at `rate` events/s.
    got.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let s = server(&dir.join("latency"), &args, Some(addr))?;
    let total = args.rate * usize::try_from(args.seconds).unwrap_or(0);
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut under_umbrella = 0usize;
    let started = Instant::now();
    s.runtime.block_on(async {
        let mut tasks = Vec::with_capacity(total);
        let step = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
        for i in 0..total {
            let due = started + step.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let ticket = load_ticket(i, args.tickets);
            if (i % args.tickets.max(1)).is_multiple_of(10) {
                under_umbrella += 1;
            }
            let (service, committed) = (s.service(), committed.clone());
            tasks.push(tokio::spawn(async move {
                let e = crate::event(i, "lat");
                let id = e.id.clone();
                append(&service, ticket, e).await?;
                committed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let offered = per_second(total, started.elapsed());
    let expected = total * args.subscriptions.saturating_sub(1) + under_umbrella;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.lock().unwrap_or_else(|p| p.into_inner()).len() < expected
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop()?;
    let got = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let committed = committed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<Duration> = got
        .iter()
        .filter_map(|(_, id, at)| committed.get(id).map(|c| at.saturating_duration_since(*c)))
        .collect();
    latencies.sort_unstable();
    let first = got.iter().map(|(_, _, at)| *at).min();
    let last = got.iter().map(|(_, _, at)| *at).max();
    let span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    let (none_median, with_median) = (median(none.clone()), median(subscribed.clone()));
    let line = json!({
        "bench": "notify",
        "subscriptions": args.subscriptions,
        "offered_events_per_s": offered.round(),
        "deliveries_expected": expected,
        "deliveries": got.len(),
        "deliveries_per_s": per_second(got.len(), span).round(),
        "commit_to_receipt_p50_ms": percentile(&latencies, 500),
        "commit_to_receipt_p99_ms": percentile(&latencies, 990),
        "commit_to_receipt_max_ms": percentile(&latencies, 1000),
        "append_events_per_s_without": none.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "append_events_per_s_with": subscribed.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "append_ratio_with_to_without": with_median / none_median.max(1e-9),
        "delivered_during_append_runs": delivered_meanwhile,
        "machine": machine(),
    });
    print_result(&line, args.out.json);
    Ok(())
}
