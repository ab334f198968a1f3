//! `/metrics`: the server's counters in a `prometheus-client` registry, encoded in the
//! OpenMetrics text format (which Prometheus asks for), or in the Prometheus text format 0.0.4
//! for any other client (`promtool`, curl). Names are stable: dashboards and alerts
//! (`docs/prometheus-rules.yml`) rely on them. Besides what the server counts, every scrape
//! sets the gauges of what needs a person from the projections (`projections::Gauges`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`] in OpenMetrics.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of the HTTP request latency histogram, in seconds.
const HTTP_BUCKETS_S: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Bucket bounds of the append latency histogram, in seconds.
const BUCKETS_S: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: String,
}

type Dollars = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentClassLabel {
    agent: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentModelLabel {
    agent: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabel {
    subscription: String,
}

/// One subscription's delivery, as its checkpoint says, for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSample {
    pub name: String,
    pub lag: u64,
    pub delivered: u64,
    pub failures: u64,
    pub parked: u64,
}

/// Per subscription: its lag and parked deliveries (gauges), its deliveries and failures
/// (counters, from the checkpoint's counts, which every replica shares).
#[derive(Default)]
struct Deliveries {
    lag: Family<SubscriptionLabel, Gauge>,
    parked: Family<SubscriptionLabel, Gauge>,
    delivered: Family<SubscriptionLabel, Counter>,
    failures: Family<SubscriptionLabel, Counter>,
    /// What each counter was last set to: a counter goes up by the difference.
    seen: Mutex<HashMap<String, (u64, u64)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatusLabel {
    method: String,
    route: String,
    status: u16,
}

/// The gauges of what needs a person, set from the projections at every scrape.
#[derive(Default)]
struct Attention {
    alerts: Family<KindLabel, Gauge>,
    tickets: Family<StateLabel, Gauge>,
    runtimes_live: Family<AgentClassLabel, Gauge>,
    cost_usd: Family<AgentModelLabel, Counter<f64, AtomicU64>>,
    /// The spend each cost counter was last set to, in nanodollars: a counter only goes up,
    /// by the difference.
    cost_seen: Mutex<HashMap<(String, String), u64>>,
    budget_limit: Family<BudgetLabel, Dollars>,
    budget_spent: Family<BudgetLabel, Dollars>,
    budget_reserved: Family<BudgetLabel, Dollars>,
}

pub struct Metrics {
    registry: Registry,
    appends: Counter,
    appended_events: Counter,
    pub duplicates: Counter,
    /// Open SSE streams; `inc` answers the count before, which bounds the clients.
    pub sse_clients: Gauge,
    append_seconds: Histogram,
    rejections: Family<CodeLabel, Counter>,
    projection_lag: Gauge,
    head_position: Gauge,
    store_ready: Gauge,
    attention: Attention,
    http_requests: Family<RouteStatusLabel, Counter>,
    http_seconds: Family<RouteLabel, Histogram>,
    deliveries: Deliveries,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let appends = Counter::default();
        let appended_events = Counter::default();
        let duplicates = Counter::default();
        let sse_clients = Gauge::default();
        let append_seconds = Histogram::new(BUCKETS_S);
        let rejections = Family::default();
        let projection_lag = Gauge::default();
        let head_position = Gauge::default();
        let store_ready = Gauge::default();
        // Counters are exposed with the `_total` suffix: `mc_ledger_appends_total`, ….
        let r = &mut registry;
        r.register(
            "mc_ledger_appends",
            "Appends acknowledged durable",
            appends.clone(),
        );
        r.register(
            "mc_ledger_appended_events",
            "Events in acknowledged appends",
            appended_events.clone(),
        );
        r.register(
            "mc_ledger_duplicate_commands",
            "Commands answered as duplicates",
            duplicates.clone(),
        );
        r.register(
            "mc_ledger_append_seconds",
            "Latency of durable appends",
            append_seconds.clone(),
        );
        r.register(
            "mc_ledger_rejections",
            "Commands refused, by stable code",
            rejections.clone(),
        );
        r.register(
            "mc_ledger_sse_clients",
            "Open event streams",
            sse_clients.clone(),
        );
        r.register(
            "mc_ledger_projection_lag_events",
            "Durable events not yet folded",
            projection_lag.clone(),
        );
        r.register(
            "mc_ledger_log_head_position",
            "The last durable position",
            head_position.clone(),
        );
        r.register(
            "mc_ledger_store_ready",
            "1 while the store takes appends (/readyz 200), 0 while it cannot: a full or failing disk, PostgreSQL out of reach",
            store_ready.clone(),
        );
        let attention = Attention::default();
        r.register(
            "mc_ledger_alerts",
            "Alerts open now, by kind",
            attention.alerts.clone(),
        );
        r.register(
            "mc_ledger_tickets",
            "Tickets by state",
            attention.tickets.clone(),
        );
        r.register(
            "mc_ledger_runtimes_live",
            "Live runtimes by agent and class",
            attention.runtimes_live.clone(),
        );
        r.register(
            "mc_ledger_cost_usd",
            "What harvested runs cost, in US dollars, by agent and model",
            attention.cost_usd.clone(),
        );
        for (name, help, family) in [
            (
                "mc_ledger_budget_limit_usd",
                "A budget's limit, in US dollars, by budget",
                &attention.budget_limit,
            ),
            (
                "mc_ledger_budget_spent_usd",
                "What runs that ended in a budget's current period spent, in US dollars",
                &attention.budget_spent,
            ),
            (
                "mc_ledger_budget_reserved_usd",
                "What live runs hold in a budget (each its reservation or its spend so far), in US dollars",
                &attention.budget_reserved,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        let http_requests = Family::<RouteStatusLabel, Counter>::default();
        let http_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(HTTP_BUCKETS_S)) as fn() -> Histogram,
        );
        r.register(
            "mc_ledger_http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        r.register(
            "mc_ledger_http_request_seconds",
            "Latency of HTTP requests, by method and route",
            http_seconds.clone(),
        );
        let deliveries = Deliveries::default();
        r.register(
            "mc_ledger_subscription_lag_events",
            "Log positions after the one a subscription has delivered",
            deliveries.lag.clone(),
        );
        r.register(
            "mc_ledger_subscription_parked",
            "Parked deliveries of a subscription (it stops at one)",
            deliveries.parked.clone(),
        );
        r.register(
            "mc_ledger_subscription_deliveries",
            "Deliveries a receiver answered 2xx, by subscription",
            deliveries.delivered.clone(),
        );
        r.register(
            "mc_ledger_subscription_failures",
            "Delivery attempts that failed, by subscription",
            deliveries.failures.clone(),
        );
        Metrics {
            deliveries,
            registry,
            attention,
            http_requests,
            http_seconds,
            appends,
            appended_events,
            duplicates,
            sse_clients,
            append_seconds,
            rejections,
            projection_lag,
            head_position,
            store_ready,
        }
    }
}

impl Metrics {
    pub fn observe_append(&self, elapsed: Duration, events: usize) {
        self.appends.inc();
        self.appended_events
            .inc_by(u64::try_from(events).unwrap_or(0));
        self.append_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn rejected(&self, code: &'static str) {
        self.rejections.get_or_create(&CodeLabel { code }).inc();
    }

    /// An HTTP request answered: its method, route template (`unmatched` for none), status
    /// and time.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.http_seconds
            .get_or_create(&RouteLabel {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .get_or_create(&RouteStatusLabel {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The registry in OpenMetrics text, with the log head, the projections' position and
    /// the gauges of what needs a person.
    pub fn render(
        &self,
        (head, store_ready): (u64, bool),
        projected: u64,
        gauges: &projections::Gauges,
        subscriptions: &[SubscriptionSample],
    ) -> String {
        self.head_position
            .set(i64::try_from(head).unwrap_or(i64::MAX));
        self.store_ready.set(i64::from(store_ready));
        self.projection_lag
            .set(i64::try_from(head.saturating_sub(projected)).unwrap_or(i64::MAX));
        self.set_attention(gauges);
        self.set_deliveries(subscriptions);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn set_deliveries(&self, samples: &[SubscriptionSample]) {
        let d = &self.deliveries;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        // Subscriptions come and go: only the present ones have gauges.
        d.lag.clear();
        d.parked.clear();
        let mut seen = d.seen.lock().unwrap_or_else(|p| p.into_inner());
        for s in samples {
            let label = SubscriptionLabel {
                subscription: s.name.clone(),
            };
            d.lag.get_or_create(&label).set(count(s.lag));
            d.parked.get_or_create(&label).set(count(s.parked));
            let before = seen.entry(s.name.clone()).or_insert((0, 0));
            // A subscription created again counts from 0: the counter goes on from there.
            let step = |now: u64, was: &mut u64| {
                let delta = if now >= *was { now - *was } else { now };
                *was = now;
                delta
            };
            d.delivered
                .get_or_create(&label)
                .inc_by(step(s.delivered, &mut before.0));
            d.failures
                .get_or_create(&label)
                .inc_by(step(s.failures, &mut before.1));
        }
    }

    fn set_attention(&self, g: &projections::Gauges) {
        let a = &self.attention;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (kind, n) in &g.alerts {
            a.alerts.get_or_create(&KindLabel { kind }).set(count(*n));
        }
        for (state, n) in &g.tickets {
            a.tickets
                .get_or_create(&StateLabel { state })
                .set(count(*n));
        }
        // Agents and classes come and go: only the live ones are series.
        a.runtimes_live.clear();
        for ((agent, class), n) in &g.runtimes_live {
            let label = AgentClassLabel {
                agent: agent.clone(),
                class,
            };
            a.runtimes_live.get_or_create(&label).set(count(*n));
        }
        // Budgets come and go like agents: only the present ones are series.
        a.budget_limit.clear();
        a.budget_spent.clear();
        a.budget_reserved.clear();
        // Nanodollars to dollars: exact below 2^53 nanodollars (~$9M).
        #[allow(clippy::cast_precision_loss)]
        let usd = |n: u64| n as f64 / 1e9;
        for (budget, (limit, spent, reserved)) in &g.budgets {
            let label = BudgetLabel {
                budget: budget.clone(),
            };
            a.budget_limit.get_or_create(&label).set(usd(*limit));
            a.budget_spent.get_or_create(&label).set(usd(*spent));
            a.budget_reserved.get_or_create(&label).set(usd(*reserved));
        }
        let mut seen = a.cost_seen.lock().unwrap_or_else(|p| p.into_inner());
        for ((agent, model), nanos) in &g.cost_nanos {
            let before = seen.entry((agent.clone(), model.clone())).or_insert(0);
            if *nanos > *before {
                let label = AgentModelLabel {
                    agent: agent.clone(),
                    model: model.clone(),
                };
                let delta = *nanos - *before;
                // Nanodollars to dollars: exact below 2^53 nanodollars (~$9M) per step.
                #[allow(clippy::cast_precision_loss)]
                a.cost_usd.get_or_create(&label).inc_by(delta as f64 / 1e9);
                *before = *nanos;
            }
        }
    }
}

/// OpenMetrics text as the Prometheus text format 0.0.4, for clients that did not ask for
/// OpenMetrics (`promtool check metrics`, curl): a counter's family is named with its
/// `_total` suffix, and `# EOF` and `# UNIT` lines go.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // Held until the TYPE says whether the name needs `_total`.
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str("# HELP ");
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
