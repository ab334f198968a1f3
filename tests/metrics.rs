//! SPEC §15's Prometheus side: given a ledger with a lost worker, a harvested cost and a live
//! runtime, when /metrics is scraped over a real socket, then the gauges say so, Prometheus's
//! own `promtool check metrics` accepts the scrape, Prometheus (asking for OpenMetrics) gets
//! OpenMetrics, and `promtool check rules` accepts docs/prometheus-rules.yml. `promtool` comes
//! from Debian's `prometheus` package; scripts/test.sh unpacks it into target/promtool.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

fn promtool() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("MC_LEDGER_PROMTOOL").map(PathBuf::from),
        Some(root.join("target/promtool/usr/bin/promtool")),
        Some(PathBuf::from("/usr/bin/promtool")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .expect(
            "promtool: scripts/test.sh unpacks Debian's prometheus package into target/promtool",
        )
}

/// Runs `promtool ARGS` with `input` on stdin: (success, what it printed).
fn run_promtool(args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The value of the sample `line_start` (a name with its labels) in a scrape.
fn sample(scrape: &str, line_start: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn the_scrape_says_what_needs_a_person_and_promtool_accepts_it() {
    let s = start_temp();
    let human = |b: serde_json::Value| with_actor(b, "elmar", "human");
    // A budget for codex: the live codex run holds its default reservation ($5 of $50).
    let budget =
        json!({"name": "codex", "scope": {"kind": "agent", "value": "codex"}, "limit_usd": 50.0});
    assert_eq!(post(s.addr, "/v1/budgets", &human(budget)).status, 201);
    for id in ["MC-1", "MC-2"] {
        assert_eq!(
            post(
                s.addr,
                "/v1/tickets",
                &human(json!({"id": id, "title": "t"}))
            )
            .status,
            201
        );
    }
    let dispatch = |t: &str, agent: &str| {
        let body = json!({"dispatch_key": "k", "agent": agent, "transport": "tmux", "tmux_target": t, "model": "opus"});
        let r = post(s.addr, &format!("/v1/tickets/{t}/dispatch"), &human(body));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["runtime_id"].as_str().unwrap().to_owned()
    };
    let lost = dispatch("MC-1", "claude");
    let live = dispatch("MC-2", "codex");
    let harvest = json!({"outcome": "partial", "exit_reason": "max_turns", "cost_usd": 1.25});
    assert_eq!(
        post(
            s.addr,
            &format!("/v1/runtimes/{lost}/harvest"),
            &human(harvest)
        )
        .status,
        201
    );
    let reap = json!({"cause": "tmux_missing"});
    assert_eq!(
        post(s.addr, &format!("/v1/runtimes/{lost}/reap"), &human(reap)).status,
        201
    );
    assert_eq!(get(s.addr, "/v1/nothing").status, 404);
    // A subscription (this in-process server delivers nothing): its lag is the log after it.
    let sub = json!({"name": "ops", "url": "http://127.0.0.1:9/hook"});
    let created = post(s.addr, "/v1/subscriptions", &human(sub));
    assert_eq!(created.status, 201, "{}", created.body);
    let origin = created.json()["position"].as_u64().unwrap();
    assert_eq!(
        post(
            s.addr,
            "/v1/tickets/MC-1/comments",
            &human(json!({"body": "after"}))
        )
        .status,
        201
    );

    let scrape = get(s.addr, "/metrics");
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        scrape.content_type
    );
    let text = &scrape.body;
    let (ok, said) = run_promtool(&["check", "metrics"], text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    let rows: &[(&str, f64)] = &[
        ("mc_ledger_tickets{state=\"open\"}", 1.0),
        ("mc_ledger_tickets{state=\"in_progress\"}", 1.0),
        ("mc_ledger_tickets{state=\"done\"}", 0.0),
        (
            "mc_ledger_runtimes_live{agent=\"codex\",class=\"starting\"}",
            1.0,
        ),
        (
            "mc_ledger_cost_usd_total{agent=\"claude\",model=\"opus\"}",
            1.25,
        ),
        ("mc_ledger_budget_limit_usd{budget=\"codex\"}", 50.0),
        ("mc_ledger_budget_reserved_usd{budget=\"codex\"}", 5.0),
        ("mc_ledger_budget_spent_usd{budget=\"codex\"}", 0.0),
        (
            "mc_ledger_http_requests_total{method=\"POST\",route=\"/v1/tickets\",status=\"201\"}",
            2.0,
        ),
        (
            "mc_ledger_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            1.0,
        ),
        ("mc_ledger_subscription_parked{subscription=\"ops\"}", 0.0),
        (
            "mc_ledger_subscription_deliveries_total{subscription=\"ops\"}",
            0.0,
        ),
        (
            "mc_ledger_subscription_failures_total{subscription=\"ops\"}",
            0.0,
        ),
    ];
    for (series, expected) in rows {
        assert_eq!(sample(text, series), Some(*expected), "{series} in\n{text}");
    }
    let head = sample(text, "mc_ledger_log_head_position").unwrap();
    #[allow(clippy::cast_precision_loss)]
    let lag = head - origin as f64;
    assert_eq!(
        sample(
            text,
            "mc_ledger_subscription_lag_events{subscription=\"ops\"}"
        ),
        Some(lag)
    );
    // Every alert kind is a series, zeros included; a lost worker is not an alert once
    // harvested partial work outranks the reap, so count what the API says.
    let alerts = get(s.addr, "/v1/alerts").json();
    for kind in [
        "worker_lost",
        "stale_worker",
        "retry_loop",
        "unanswered_question",
        "ready_to_resume",
        "pool_saturated",
        "subscription_failing",
    ] {
        let open = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == kind)
            .count();
        let series = format!("mc_ledger_alerts{{kind=\"{kind}\"}}");
        #[allow(clippy::cast_precision_loss)]
        let expected = open as f64;
        assert_eq!(sample(text, &series), Some(expected), "{series}");
    }
    assert!(
        sample(text, "mc_ledger_runtimes_live{agent=\"claude\"").is_none(),
        "ended runtimes are no series"
    );
    let _ = live;

    // Prometheus asks for OpenMetrics and gets it.
    let om = get_with_headers(
        s.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "{}",
        om.content_type
    );
    assert!(om.body.trim_end().ends_with("# EOF"));
    assert!(om.body.contains("# TYPE mc_ledger_cost_usd counter"));

    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/prometheus-rules.yml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    let (ok, said) = run_promtool(&["check", "rules", path.to_str().unwrap()], "");
    assert!(ok, "promtool check rules: {said}");
}
