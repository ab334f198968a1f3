//! One subscription's worker: lease, checkpoint, next item, attempt, retry or park.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{RecordedEvent, SubscriptionConfigured, SubscriptionParked};
use projections::{alert_notices, Command, SubscriptionState, SubscriptionView, Wants};
use service::credentials::{self, Credentials};
use service::subscriptions::{engine_actor, Checkpoint};
use service::Writer;
use store::Lease;

use crate::body::{self, Item};
use crate::deliver::{self, Attempt, Request};
use crate::{sign, Ctx};

/// Events read from the log at a time.
const READ_BATCH: usize = 512;
/// A moving worker saves its checkpoint at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// After a commit wakes an idle worker, it waits this long for more before reading.
const COALESCE: Duration = Duration::from_millis(2);
/// Alerts are evaluated at most this often while events keep coming.
const ALERTS_EVERY: Duration = Duration::from_millis(250);
/// A worker with more events than this left to examine or deliver is catching up: it drains
/// its backlog at the lowest CPU priority until it is within `CAUGHT_UP` of the head.
const BEHIND: u64 = 32;
const CAUGHT_UP: u64 = 8;
/// A background stretch returns to the foreground at least this often, to fold what other
/// writers appended (a pause or a deletion made on another replica is seen within it).
const BACKGROUND_STRETCH: Duration = Duration::from_secs(1);
/// The longest a catching-up worker waits for the write path to be quiet before each step.
const YIELD_AT_MOST: Duration = Duration::from_millis(20);
/// Events matched against a filter per hold of the projections' read lock.
const MATCH_PER_LOCK: usize = 64;

pub(crate) struct Worker {
    ctx: Arc<Ctx>,
    name: String,
    lease: Option<Lease>,
    renewed: Instant,
    cp: Checkpoint,
    dirty: bool,
    saved: Instant,
    alerts_at: Option<Instant>,
    credentials: HashMap<String, Credentials>,
    wants: Option<(u64, Wants)>,
    /// The subscription as last read, by its stream version.
    sub: Option<SubscriptionView>,
    /// Matching events read after `cp.position` and not yet delivered, and how far the log
    /// was read: every event up to `read_to` is in `pending` or does not match.
    pending: VecDeque<RecordedEvent>,
    read_to: u64,
    /// Stepping on the low-priority catch-up thread (see `catch_up`).
    background: bool,
    /// The log has events the projections have not folded yet, and this worker (in the
    /// background) did not fold them.
    needs_fold: bool,
}

fn now_ms() -> u64 {
    service::clock::now().millis()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the worker does next.
enum Step {
    Go,
    Wait(Duration, bool),
    Stop,
}

impl Worker {
    pub(crate) fn new(ctx: Arc<Ctx>, name: String) -> Worker {
        Worker {
            ctx,
            name,
            lease: None,
            renewed: Instant::now(),
            cp: Checkpoint::default(),
            dirty: false,
            saved: Instant::now(),
            alerts_at: None,
            credentials: HashMap::new(),
            wants: None,
            sub: None,
            pending: VecDeque::new(),
            read_to: 0,
            background: false,
            needs_fold: false,
        }
    }

    /// The worker's loop, on a thread of its own: every call in it (the log, the checkpoint,
    /// the HTTP request) blocks this thread only, with no hand-off to a pool per delivery; it
    /// enters the runtime only to wait for a commit or the timer and to append a fact.
    pub(crate) fn run(mut self) {
        let mut head = self.ctx.service.shared.reader.subscribe();
        let mut stop = self.ctx.stop.clone();
        let rt = self.ctx.runtime.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            let step = if self.backlog() > BEHIND {
                self.catch_up(&stop)
            } else {
                self.step()
            };
            let (wait, on_head) = match step {
                Step::Go => continue,
                Step::Stop => break,
                Step::Wait(d, on_head) => (d, on_head),
            };
            if self.dirty {
                self.save();
            }
            let stopped = rt.block_on(async {
                tokio::select! {
                    _ = stop.changed() => true,
                    _ = head.changed(), if on_head => {
                        // Let a few more commits come: one read for them all.
                        tokio::time::sleep(COALESCE).await;
                        false
                    }
                    () = tokio::time::sleep(wait) => false,
                }
            });
            if stopped {
                break;
            }
        }
        self.finish();
    }

    /// Events this worker has still to examine or deliver.
    fn backlog(&self) -> u64 {
        let head = self.ctx.service.shared.reader.head();
        let read = self.read_to.max(self.cp.position);
        head.saturating_sub(read) + self.pending.len() as u64
    }

    /// Steps on a thread of the lowest CPU priority until the backlog is small or there is
    /// nothing to do now. A subscription that is current delivers at normal priority (a
    /// notice is waited for); one that is far behind is background work, and when the CPU is
    /// saturated it yields to the write path and to current subscriptions. Niceness can be
    /// raised but not lowered again without privilege, hence a thread per catch-up.
    fn catch_up(&mut self, stop: &tokio::sync::watch::Receiver<bool>) -> Step {
        // Folding is the foreground's: at normal priority, before each background stretch.
        let _ = self.ctx.service.shared.catch_up();
        self.background = true;
        let drain = |w: &mut Worker| {
            use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
            if let Err(e) = thread_priority::set_thread_priority_and_policy(
                thread_priority::thread_native_id(),
                thread_priority::ThreadPriority::Min,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
            ) {
                tracing::debug!(error = %e, "cannot lower a catch-up thread's priority");
            }
            let started = Instant::now();
            loop {
                // Idle priority alone does not keep a delivery's cost (the receiver's side,
                // the kernel's loopback, shared locks and caches) off the write path: step
                // aside while appends are in flight, but never for more than
                // `YIELD_AT_MOST` per step: a backlog drains whenever writes leave the store
                // quiet for a moment, and by 50 steps a second while they never do.
                w.ctx.service.shared.writes.wait_quiet(YIELD_AT_MOST);
                let step = w.step();
                if w.needs_fold || started.elapsed() >= BACKGROUND_STRETCH {
                    // Back to the foreground to fold, and to see any change made elsewhere.
                    return Step::Go;
                }
                if !matches!(step, Step::Go) || *stop.borrow() || w.backlog() <= CAUGHT_UP {
                    return step;
                }
            }
        };
        let step = std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name(format!("catch-up {}", self.name))
                .spawn_scoped(s, || drain(self));
            match spawned {
                Ok(thread) => Some(
                    thread
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "no catch-up thread: one step at normal priority");
                    None
                }
            }
        });
        let step = match step {
            Some(step) => step,
            None => self.step(),
        };
        self.background = false;
        step
    }

    fn step(&mut self) -> Step {
        let shared = self.ctx.service.shared.clone();
        if !self.background {
            if let Err(e) = shared.catch_up() {
                tracing::warn!(subscription = %self.name, error = %e, "cannot read the log");
                return Step::Wait(self.ctx.config.tick, false);
            }
        }
        let version = shared.read(|l| l.subscription_version(&self.name));
        let Some(version) = version else {
            return Step::Stop;
        };
        if self.sub.as_ref().is_none_or(|s| s.version != version) {
            if self.sub.is_some() {
                // Its filter may have changed: match what was read again.
                self.reset_reading();
            }
            self.sub = shared.read(|l| l.subscription(&self.name));
        }
        let Some(sub) = self.sub.clone() else {
            return Step::Stop;
        };
        if sub.state != SubscriptionState::Active {
            return Step::Stop;
        }
        if !self.hold_lease() {
            return Step::Wait(self.renew_every(), false);
        }
        self.align(&sub);
        let wants = self.wants(&sub);
        let item = match self.next(&sub, &wants) {
            Ok(Some(item)) => item,
            Ok(None) => return Step::Wait(self.ctx.config.tick, true),
            Err(e) => {
                tracing::warn!(subscription = %self.name, error = %e, "cannot read the log");
                return Step::Wait(self.ctx.config.tick, false);
            }
        };
        if let Some(at) = self.cp.next_attempt_at {
            let now = now_ms();
            if now < at {
                let left = Duration::from_millis(at - now);
                return Step::Wait(left.min(self.ctx.config.tick), false);
            }
        }
        if self.attempt(&sub, item) {
            Step::Go
        } else {
            Step::Stop
        }
    }

    fn renew_every(&self) -> Duration {
        (self.ctx.config.lease_ttl / 3).max(Duration::from_millis(100))
    }

    /// Takes or renews the lease; a new epoch means another holder may have moved the
    /// checkpoint, so it is loaded again.
    fn hold_lease(&mut self) -> bool {
        if self.lease.is_some() && self.renewed.elapsed() < self.renew_every() {
            return true;
        }
        let checkpoints = self.ctx.service.store.checkpoints();
        let (name, holder) = (self.name.clone(), self.ctx.config.holder.clone());
        let ttl = millis(self.ctx.config.lease_ttl);
        let taken = Ok::<_, ()>(checkpoints.acquire(&name, &holder, ttl));
        match taken {
            Ok(Ok(Some(mut lease))) => {
                let held = self.lease.as_ref().map(|l| l.epoch);
                if held != Some(lease.epoch) {
                    self.cp = lease
                        .body
                        .take()
                        .as_deref()
                        .and_then(Checkpoint::decode)
                        .unwrap_or_default();
                    self.dirty = false;
                    self.reset_reading();
                    if held.is_none() {
                        tracing::info!(subscription = %self.name, position = self.cp.position, "delivering");
                    }
                }
                lease.body = None;
                self.lease = Some(lease);
                self.renewed = Instant::now();
                true
            }
            Ok(Ok(None)) => {
                self.lease = None;
                false
            }
            Ok(Err(e)) => {
                // Without a renewed lease another server may take over: stop delivering.
                tracing::warn!(subscription = %self.name, error = %e, "cannot renew the lease");
                self.lease = None;
                false
            }
            Err(_) => false,
        }
    }

    /// A subscription created again starts afresh after its creation; a replay not yet
    /// applied moves the position back.
    fn align(&mut self, sub: &SubscriptionView) {
        if self.cp.origin != sub.origin {
            self.cp = Checkpoint {
                origin: sub.origin,
                position: sub.origin,
                replay_applied: sub.replay.map_or(0, |r| r.requested_at),
                ..Checkpoint::default()
            };
            self.dirty = true;
            self.reset_reading();
        }
        if let Some(r) = sub.replay {
            if r.requested_at > self.cp.replay_applied {
                self.cp.position = r.from_position.saturating_sub(1);
                self.cp.replay_applied = r.requested_at;
                self.cp.queue.clear();
                self.reset_retries();
                self.dirty = true;
                self.reset_reading();
            }
        }
    }

    /// The position moved other than by a delivery: read the log again from it.
    fn reset_reading(&mut self) {
        self.pending.clear();
        self.read_to = self.cp.position;
    }

    fn reset_retries(&mut self) {
        self.cp.attempts = 0;
        self.cp.failing_since = None;
        self.cp.next_attempt_at = None;
    }

    fn wants(&mut self, sub: &SubscriptionView) -> Wants {
        match &self.wants {
            Some((version, wants)) if *version == sub.version => wants.clone(),
            _ => {
                let wants = Wants::of(&sub.filter).unwrap_or_default();
                self.wants = Some((sub.version, wants.clone()));
                wants
            }
        }
    }

    /// The next item to deliver: a notice already due, else the next matching event, else
    /// (caught up) the notices the alerts call for now.
    fn next(&mut self, sub: &SubscriptionView, wants: &Wants) -> Result<Option<Item>, String> {
        if let Some(n) = self.cp.queue.front() {
            return Ok(Some(Item::Notice(n.clone())));
        }
        let shared = self.ctx.service.shared.clone();
        self.read_to = self.read_to.max(self.cp.position);
        self.needs_fold = false;
        while self.pending.is_empty() {
            // A filter that asks the projections matches only what they have folded. The
            // foreground folds; a background thread never takes the fold's locks, where
            // being descheduled would hold up the write path.
            let folded = if !wants.events.needs_ledger() {
                shared.reader.head()
            } else if self.background {
                shared.read(|l| l.position())
            } else {
                shared.catch_up().map_err(|e| e.to_string())?
            };
            let after = self.read_to;
            if folded <= after {
                self.needs_fold = self.background && shared.reader.head() > after;
                break;
            }
            let limit = READ_BATCH.min(usize::try_from(folded - after).unwrap_or(READ_BATCH));
            let mut batch = shared
                .reader
                .read_after(after, limit)
                .map_err(|e| e.to_string())?;
            batch.retain(|e| e.position <= folded);
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            let full = batch.len() == limit;
            let mut events = batch.into_iter().peekable();
            while events.peek().is_some() {
                // A few events per hold of the read lock, so a writer never waits long.
                shared.read(|l| {
                    for e in events.by_ref().take(MATCH_PER_LOCK) {
                        if wants.wants_event(l, &sub.stream, &e) {
                            self.pending.push_back(e);
                        }
                    }
                });
            }
            self.read_to = last;
            if self.pending.is_empty() {
                // Nothing here to deliver: all of it is handled.
                self.cp.position = last;
                self.dirty = true;
            }
            if !full {
                break;
            }
        }
        if let Some(e) = self.pending.front() {
            return Ok(Some(Item::Event(Box::new(e.clone()))));
        }
        if self.needs_fold {
            // Not caught up yet: alerts wait for the foreground's fold.
            return Ok(None);
        }
        if wants.alerts.is_empty() {
            if !self.cp.open.is_empty() {
                self.cp.open.clear();
                self.dirty = true;
            }
            return Ok(None);
        }
        if self.alerts_at.is_some_and(|at| at.elapsed() < ALERTS_EVERY) {
            return Ok(None);
        }
        self.alerts_at = Some(Instant::now());
        let now = service::clock::now();
        let wanted = shared.read(|l| {
            l.alerts(now, &shared.config)
                .into_iter()
                .filter(|a| wants.wants_alert(l, a))
                .collect::<Vec<_>>()
        });
        let notices = alert_notices(&mut self.cp.open, &wanted, now, sub.remind_every_ms);
        if !notices.is_empty() {
            self.cp.queue.extend(notices);
            self.dirty = true;
        }
        Ok(self.cp.queue.front().cloned().map(Item::Notice))
    }

    fn credentials(&mut self, id: &str) -> Option<Credentials> {
        if !self.credentials.contains_key(id) {
            let home = self.ctx.service.home.clone();
            if let Ok(all) = credentials::load(&home) {
                self.credentials = all;
            }
        }
        self.credentials.get(id).cloned()
    }

    /// One attempt at `item`; `false` when the worker stops (parked, paused).
    fn attempt(&mut self, sub: &SubscriptionView, item: Item) -> bool {
        let creds = self.credentials(&sub.secret_id);
        let secret = creds.as_ref().and_then(Credentials::secret);
        let attempt = match (creds, secret) {
            (Some(creds), Some(secret)) => {
                let config = SubscriptionConfigured {
                    name: sub.name.clone(),
                    url: creds.url.clone(),
                    format: sub.format,
                    filter: sub.filter.clone(),
                    remind_every_ms: sub.remind_every_ms,
                    chat_id: sub.chat_id.clone(),
                    secret_id: sub.secret_id.clone(),
                };
                let body = body::render(&config, &item, &self.ctx.config.public_url);
                let timestamp_s = now_ms() / 1000;
                let signature = sign::signature(secret.key(), item.id(), timestamp_s, &body);
                let permit = self.ctx.runtime.block_on(self.ctx.slots.acquire());
                let sent = deliver::send(
                    &self.ctx.agent,
                    &Request {
                        url: &creds.url,
                        id: item.id(),
                        timestamp_s,
                        signature: &signature,
                        body: &body,
                    },
                );
                drop(permit);
                sent
            }
            _ => Attempt::Failed {
                error: "this server has no credentials for the subscription's secret_id; set \
                        its url and secret again"
                    .into(),
                retry_after: None,
            },
        };
        match attempt {
            Attempt::Delivered => {
                match &item {
                    Item::Event(_) => {
                        if let Some(e) = self.pending.pop_front() {
                            self.cp.position = e.position;
                        }
                        if self.pending.is_empty() {
                            self.cp.position = self.read_to;
                        }
                    }
                    Item::Notice(_) => {
                        self.cp.queue.pop_front();
                    }
                }
                self.reset_retries();
                self.cp.delivered += 1;
                self.cp.last_delivered_at = Some(now_ms());
                self.dirty = true;
                self.ctx.counters.count(&self.name, true);
                if self.saved.elapsed() >= SAVE_EVERY {
                    self.save();
                }
                true
            }
            Attempt::Gone(error) => {
                self.note_error(&error);
                self.save();
                self.record(Command::PauseSubscription {
                    name: self.name.clone(),
                    reason: Some(format!(
                        "the receiver answered 410 Gone to delivery {}",
                        item.id()
                    )),
                });
                false
            }
            Attempt::Failed { error, retry_after } => {
                self.ctx.counters.count(&self.name, false);
                self.note_error(&error);
                self.cp.failures += 1;
                self.cp.attempts = self.cp.attempts.saturating_add(1);
                let now = now_ms();
                let since = *self.cp.failing_since.get_or_insert(now);
                let config = &self.ctx.config;
                if now.saturating_sub(since) >= millis(config.park_after) {
                    self.save();
                    let position = match &item {
                        Item::Event(e) => e.position,
                        Item::Notice(_) => self.cp.position,
                    };
                    self.record(Command::ParkDelivery {
                        parked: SubscriptionParked {
                            name: self.name.clone(),
                            delivery_id: item.id().to_owned(),
                            position,
                            attempts: self.cp.attempts,
                            error,
                        },
                    });
                    return false;
                }
                let delay = match retry_after {
                    Some(d) => d.min(config.retry_max),
                    None => backoff(config.retry_base, config.retry_max, self.cp.attempts),
                };
                self.cp.next_attempt_at = Some(now.saturating_add(millis(delay)));
                self.dirty = true;
                self.save();
                true
            }
        }
    }

    fn note_error(&mut self, error: &str) {
        tracing::warn!(subscription = %self.name, error, "delivery failed");
        self.cp.last_error = Some(error.to_owned());
        self.cp.last_error_at = Some(now_ms());
    }

    /// Appends a fact as the engine (a pause on 410, a parked delivery).
    fn record(&self, command: Command) {
        let writer = Writer {
            actor: engine_actor(),
            token_id: None,
        };
        let service = self.ctx.service.clone();
        let done = self
            .ctx
            .runtime
            .block_on(async move { service.execute(command, writer, None, None).await });
        if let Err(e) = done {
            tracing::error!(subscription = %self.name, error = ?e, "cannot record the delivery engine's fact");
        }
    }

    fn save(&mut self) {
        let Some(lease) = self.lease.clone() else {
            return;
        };
        let checkpoints = self.ctx.service.store.checkpoints();
        self.cp.holder = Some(self.ctx.config.holder.clone());
        let body = self.cp.encode();
        let ttl = millis(self.ctx.config.lease_ttl);
        let saved = Ok::<_, ()>(checkpoints.save(&lease, &body, ttl));
        match saved {
            Ok(Ok(true)) => {
                self.dirty = false;
                self.saved = Instant::now();
                self.renewed = Instant::now();
            }
            Ok(Ok(false)) => {
                tracing::warn!(subscription = %self.name, "lease taken over; this server stops delivering it");
                self.lease = None;
            }
            Ok(Err(e)) => {
                tracing::warn!(subscription = %self.name, error = %e, "cannot save the checkpoint")
            }
            Err(_) => {}
        }
    }

    fn finish(&mut self) {
        if self.dirty {
            self.save();
        }
        if let Some(lease) = self.lease.take() {
            let checkpoints = self.ctx.service.store.checkpoints();
            let _ = checkpoints.release(&lease);
        }
    }
}

/// The wait before retry `attempts` (1 = the first retry): `base · 2^(attempts−1)`, at most
/// `max`, times a random factor in [0.5, 1) so that failed receivers are not hit in step.
pub(crate) fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let jitter = 0.5 + f64::from(service::clock::random_u32() % 1000) / 2000.0;
    full.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(3600));
        for attempts in 1..40u32 {
            let d = backoff(base, max, attempts);
            let full = base
                .saturating_mul(1u32 << attempts.saturating_sub(1).min(30))
                .min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempts}: {d:?} of {full:?}"
            );
        }
    }
}
