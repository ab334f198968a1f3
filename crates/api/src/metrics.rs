//! Counters for `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Bucket bounds of the append latency histogram, in seconds.
const BUCKETS_S: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    pub appends: AtomicU64,
    pub appended_events: AtomicU64,
    pub duplicates: AtomicU64,
    pub sse_clients: AtomicU64,
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn observe_append(&self, elapsed: Duration, events: usize) {
        let seconds = elapsed.as_secs_f64();
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.appended_events
            .fetch_add(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
        for (bound, bucket) in BUCKETS_S.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn rejected(&self, code: &'static str) {
        let mut map = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(code).or_insert(0) += 1;
    }

    pub fn render(&self, head: u64, projected: u64) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mc_ledger_appends_total Appends acknowledged durable."
        );
        let _ = writeln!(out, "# TYPE mc_ledger_appends_total counter");
        let _ = writeln!(out, "mc_ledger_appends_total {}", get(&self.appends));
        let _ = writeln!(out, "# TYPE mc_ledger_appended_events_total counter");
        let _ = writeln!(
            out,
            "mc_ledger_appended_events_total {}",
            get(&self.appended_events)
        );
        let _ = writeln!(out, "# TYPE mc_ledger_duplicate_commands_total counter");
        let _ = writeln!(
            out,
            "mc_ledger_duplicate_commands_total {}",
            get(&self.duplicates)
        );
        let _ = writeln!(
            out,
            "# HELP mc_ledger_append_seconds Latency of durable appends."
        );
        let _ = writeln!(out, "# TYPE mc_ledger_append_seconds histogram");
        for (bound, bucket) in BUCKETS_S.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "mc_ledger_append_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "mc_ledger_append_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = Duration::from_micros(get(&self.latency_sum_us)).as_secs_f64();
        let _ = writeln!(out, "mc_ledger_append_seconds_sum {sum}");
        let _ = writeln!(out, "mc_ledger_append_seconds_count {count}");
        let _ = writeln!(out, "# TYPE mc_ledger_rejections_total counter");
        let map = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        for (code, n) in map.iter() {
            let _ = writeln!(out, "mc_ledger_rejections_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE mc_ledger_sse_clients gauge");
        let _ = writeln!(out, "mc_ledger_sse_clients {}", get(&self.sse_clients));
        let _ = writeln!(
            out,
            "# HELP mc_ledger_projection_lag_events Durable events not yet folded."
        );
        let _ = writeln!(out, "# TYPE mc_ledger_projection_lag_events gauge");
        let _ = writeln!(
            out,
            "mc_ledger_projection_lag_events {}",
            head.saturating_sub(projected)
        );
        let _ = writeln!(out, "# TYPE mc_ledger_log_head_position gauge");
        let _ = writeln!(out, "mc_ledger_log_head_position {head}");
        out
    }
}

use std::time::Duration;
