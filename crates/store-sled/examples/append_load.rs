//! Append load without the HTTP server: `cargo run --release -p store-sled --example append_load --
//! EVENTS CONCURRENCY`, for profiling the log alone (the real benchmark is `mc-ledger bench`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use events::{Actor, ActorKind, EventData, NewEvent, TicketCommented, TicketId, Timestamp};
use store::AppendRequest;
use store_sled::{Log, LogConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let mut config = LogConfig::default();
    if let Some(flushers) = args.next().and_then(|a| a.parse().ok()) {
        config.flushers = flushers;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(Log::open(dir.path(), config).expect("opens"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (log, next) = (log.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        break;
                    }
                    let mut body = format!("bench event {i}: ");
                    while body.len() < 240 {
                        body.push_str("lorem ipsum dolor sit amet ");
                    }
                    body.truncate(240);
                    let event = NewEvent {
                        id: format!("b-{i}"),
                        recorded_at: Timestamp(1_790_000_000_000),
                        actor: Actor {
                            name: "bench".into(),
                            kind: ActorKind::System,
                        },
                        token_id: None,
                        data: EventData::TicketCommented(TicketCommented { body }),
                    };
                    let ticket = TicketId::parse(&format!("BENCH-{}", i % 10_000)).expect("ticket");
                    log.append_async(AppendRequest {
                        also: Vec::new(),
                        ticket,
                        expected_version: None,
                        events: vec![event],
                    })
                    .await
                    .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{events} events, {concurrency} appenders: {:.0} events/s",
        f64::from(u32::try_from(events).unwrap_or(u32::MAX)) / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    log.close().expect("closes");
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopens");
    println!("close + reopen: {:?}", started.elapsed());
    drop(log);
}
