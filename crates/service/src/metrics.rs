//! `/metrics`: the server's counters in a `prometheus-client` registry, encoded in the
//! OpenMetrics text format (which Prometheus scrapes natively). Names are stable: dashboards
//! and alerts rely on them.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds of the append latency histogram, in seconds.
const BUCKETS_S: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
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
        Metrics {
            registry,
            appends,
            appended_events,
            duplicates,
            sse_clients,
            append_seconds,
            rejections,
            projection_lag,
            head_position,
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

    /// The registry in OpenMetrics text, with the log head and the projections' position.
    pub fn render(&self, head: u64, projected: u64) -> String {
        self.head_position
            .set(i64::try_from(head).unwrap_or(i64::MAX));
        self.projection_lag
            .set(i64::try_from(head.saturating_sub(projected)).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
