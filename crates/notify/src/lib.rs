//! The delivery engine (SPEC §15). Per subscription one worker takes the events matching its
//! filter in log order, then the alert notices due, and delivers them one at a time: at least
//! once, in order, each with a stable `webhook-id`, signed as Standard Webhooks say. A failed
//! attempt is retried with exponential backoff and jitter (or after the receiver's
//! `Retry-After`) for up to `park_after` (24 h), then the delivery is parked: the fact
//! `subscription.parked` is appended (alert `subscription_failing`) and the worker stops
//! before it, so nothing after it is skipped; a resume or a replay starts it again. A 410
//! pauses the subscription.
//!
//! The worker keeps its position and what it told the receiver in the store
//! ([`service::subscriptions::Checkpoint`], through `store::Checkpoints`), saved at least once a
//! second while it moves and before it waits, so a restart resumes there (re-sending at
//! most what was delivered since the last save, with the same ids). Across PostgreSQL
//! replicas the checkpoint's lease lets one replica deliver a subscription; another takes it
//! over within `lease_ttl` + one tick of the holder's death.
//!
//! Bounded: one delivery in flight per subscription, `concurrent` across all, each with a
//! timeout; appends never wait for deliveries (workers read the log after the fact), and a slow
//! receiver holds only its own subscription's worker. A worker is a thread of its own doing
//! blocking calls (the log, the checkpoint, the HTTP request), entering the runtime only to
//! wait and to append: a delivery costs no hand-off between threads on our side.

pub mod body;
pub mod deliver;
pub mod sign;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projections::SubscriptionState;
use service::Service;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// How the engine delivers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The console's address as receivers should open it (`serve --public-url`).
    pub public_url: String,
    /// The first retry's wait; each further one doubles, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a delivery is retried before it is parked.
    pub park_after: Duration,
    /// One attempt's limit, connection to answer.
    pub timeout: Duration,
    /// Deliveries in flight across all subscriptions.
    pub concurrent: usize,
    /// How long a lease outlives its holder's last renewal.
    pub lease_ttl: Duration,
    /// How often alerts are evaluated, leases renewed and new subscriptions noticed.
    pub tick: Duration,
    /// This server, as leases name their holder (`serve-<pid>-<ulid>`).
    pub holder: String,
}

impl EngineConfig {
    pub fn new(public_url: &str) -> EngineConfig {
        EngineConfig {
            public_url: public_url.to_owned(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            park_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            concurrent: 16,
            lease_ttl: Duration::from_secs(6),
            tick: Duration::from_secs(1),
            holder: format!("serve-{}-{}", std::process::id(), ulid::Ulid::new()),
        }
    }
}

/// Counters of this server's deliveries, by subscription (Prometheus).
#[derive(Debug, Default)]
pub struct Counters {
    pub by_subscription: Mutex<HashMap<String, (u64, u64)>>,
}

impl Counters {
    fn count(&self, name: &str, delivered: bool) {
        let mut map = self
            .by_subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(name.to_owned()).or_default();
        if delivered {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
}

pub(crate) struct Ctx {
    pub(crate) service: Arc<Service>,
    /// The runtime workers enter to wait (a commit, the timer) and to append a fact.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) config: EngineConfig,
    pub(crate) agent: ureq::Agent,
    pub(crate) slots: Semaphore,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) counters: Arc<Counters>,
}

/// A running engine; [`Engine::stop`] saves every worker's checkpoint and gives its lease up.
pub struct Engine {
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    pub counters: Arc<Counters>,
}

impl Engine {
    /// Starts delivering every active subscription (on the current tokio runtime).
    pub fn start(service: Arc<Service>, config: EngineConfig) -> Engine {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let ctx = Arc::new(Ctx {
            runtime: tokio::runtime::Handle::current(),
            agent: deliver::agent(config.timeout),
            slots: Semaphore::new(config.concurrent.max(1)),
            service,
            config,
            stop: stopped,
            counters: counters.clone(),
        });
        Engine {
            stop,
            supervisor: tokio::spawn(supervise(ctx)),
            counters,
        }
    }

    /// Stops every worker (each saves its checkpoint and releases its lease), waiting at most
    /// `within` for attempts in flight.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(within, self.supervisor).await.is_err() {
            tracing::warn!("delivery workers did not stop in time");
        }
    }
}

/// Starts a worker for each active subscription that has none, every tick.
async fn supervise(ctx: Arc<Ctx>) {
    let mut workers: HashMap<String, std::thread::JoinHandle<()>> = HashMap::new();
    let mut stop = ctx.stop.clone();
    loop {
        let shared = &ctx.service.shared;
        if let Err(e) = shared.catch_up() {
            tracing::warn!(error = %e, "delivery engine cannot read the log");
        }
        let active: Vec<String> = shared.read(|l| {
            l.subscriptions()
                .into_iter()
                .filter(|s| s.state == SubscriptionState::Active)
                .map(|s| s.name)
                .collect()
        });
        workers.retain(|_, w| !w.is_finished());
        for name in active {
            if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(name) {
                let worker = worker::Worker::new(ctx.clone(), slot.key().clone());
                let thread = std::thread::Builder::new()
                    .name(format!("notify-{}", slot.key()))
                    .spawn(move || worker.run());
                match thread {
                    Ok(t) => {
                        slot.insert(t);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start a delivery worker"),
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(ctx.config.tick) => {}
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        for (_, w) in workers {
            let _ = w.join();
        }
    })
    .await;
}
