//! The harvest classifiers (`projections::ingest::harvest`, SPEC §5.2): one row per Claude Code result
//! subtype (and its quirks), one per Codex stream ending; neither ever panics.

use events::{ExitReason, HarvestOutcome};
use projections::ingest::harvest::{
    classify_claude, classify_codex, CodexUsage, SUMMARY_BYTES_MAX,
};
use proptest::prelude::*;
use serde_json::{json, Value};

use ExitReason as E;
use HarvestOutcome as O;

/// A Claude Code `-p --output-format json` result with the given subtype and is_error.
fn claude(subtype: &str, is_error: bool) -> Value {
    json!({
        "type": "result", "subtype": subtype, "is_error": is_error,
        "duration_ms": 81234, "duration_api_ms": 80000, "num_turns": 42,
        "result": "Implemented the fix; tests pass.",
        "session_id": "0b7c1a52-5f0e-4d7e-9a39-1f2d3c4b5a69",
        "total_cost_usd": 1.2345,
        "usage": {"input_tokens": 10, "output_tokens": 20},
    })
}

#[test]
fn claude_subtypes() {
    let rows: &[(Value, O, E, Option<&str>)] = &[
        (claude("success", false), O::Completed, E::Success, None),
        // API errors arrive as a success with is_error: true.
        (claude("success", true), O::Failed, E::ApiError, None),
        (
            claude("error_max_turns", true),
            O::Partial,
            E::MaxTurns,
            None,
        ),
        (
            claude("error_max_budget_usd", true),
            O::Partial,
            E::MaxBudget,
            None,
        ),
        (
            claude("error_during_execution", true),
            O::Failed,
            E::Error,
            None,
        ),
        // A subtype a newer CLI adds: failed/error, the subtype kept.
        (
            claude("error_max_structured_output_retries", true),
            O::Failed,
            E::Error,
            Some("error_max_structured_output_retries"),
        ),
        (
            claude("something_new", false),
            O::Failed,
            E::Error,
            Some("something_new"),
        ),
    ];
    for (value, outcome, exit, raw) in rows {
        let r = classify_claude(value);
        let name = &value["subtype"];
        assert_eq!((r.outcome, r.exit_reason), (*outcome, *exit), "{name}");
        assert_eq!(r.raw_subtype.as_deref(), *raw, "{name}");
        // Turns, cost, session and summary are kept on failure too.
        assert_eq!(r.turns, Some(42), "{name}");
        assert_eq!(r.cost_usd, Some(1.2345), "{name}");
        assert_eq!(
            r.session_id.as_deref(),
            Some("0b7c1a52-5f0e-4d7e-9a39-1f2d3c4b5a69")
        );
        assert_eq!(
            r.summary.as_deref(),
            Some("Implemented the fix; tests pass.")
        );
    }
}

#[test]
fn claude_missing_or_malformed_results() {
    let no_result = [
        Value::Null,
        json!("claude: command not found"),
        json!(3),
        json!([]),
        json!({}),
        json!({"type": "system", "subtype": "init"}),
        json!([{"type": "system", "subtype": "init"}, {"type": "assistant"}]),
    ];
    for v in no_result {
        let r = classify_claude(&v);
        assert_eq!((r.outcome, r.exit_reason), (O::Failed, E::NoResult), "{v}");
        assert_eq!(r.summary, None);
    }
    // `--verbose` prints every message: the last result element counts.
    let verbose = json!([{"type": "system", "subtype": "init"}, claude("error_max_turns", true)]);
    let r = classify_claude(&verbose);
    assert_eq!((r.outcome, r.exit_reason), (O::Partial, E::MaxTurns));

    // Wrong types are dropped, never a panic; a success whose is_error is not a boolean is
    // not trusted.
    let wrong = json!({
        "type": "result", "subtype": "success", "is_error": "false", "num_turns": "42",
        "total_cost_usd": -1, "session_id": 7, "result": {"text": "x"},
    });
    let r = classify_claude(&wrong);
    assert_eq!((r.outcome, r.exit_reason), (O::Failed, E::Error));
    assert_eq!(r.raw_subtype.as_deref(), Some("success"));
    assert_eq!(
        (r.turns, r.cost_usd, r.session_id, r.summary),
        (None, None, None, None)
    );
    let r = classify_claude(&json!({"type": "result", "subtype": 5, "num_turns": 1e30}));
    assert_eq!(
        (r.outcome, r.exit_reason, r.raw_subtype.as_deref(), r.turns),
        (O::Failed, E::Error, Some("5"), None)
    );
    let r = classify_claude(&json!({"type": "result", "is_error": false}));
    assert_eq!((r.outcome, r.exit_reason), (O::Failed, E::Error));
    // Limits: a huge subtype and summary are cut, an overlong session id dropped.
    let big = json!({
        "type": "result", "subtype": "x".repeat(10_000), "result": "é".repeat(10_000),
        "session_id": "s".repeat(300), "cost_usd": 0.5,
    });
    let r = classify_claude(&big);
    assert!(r.raw_subtype.expect("kept").len() <= 128);
    assert!(r.summary.expect("kept").len() <= SUMMARY_BYTES_MAX);
    assert_eq!((r.session_id, r.cost_usd), (None, Some(0.5)));
    // Newer error results carry `errors` instead of `result`.
    let r = classify_claude(
        &json!({"type": "result", "subtype": "error_during_execution", "is_error": true, "errors": ["tool crashed", "again"]}),
    );
    assert_eq!(r.summary.as_deref(), Some("tool crashed; again"));
}

const THREAD: &str =
    r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}"#;
const TURN: &str = r#"{"type":"turn.started"}"#;
const MESSAGE: &str = r#"{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Fixed the reaper; tests pass."}}"#;
const COMMAND: &str = r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#;
const COMPLETED: &str = r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#;

fn stream(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

#[test]
fn codex_streams() {
    let failed = r#"{"type":"turn.failed","error":{"message":"model gpt-5.5 is not supported with ChatGPT OAuth"}}"#;
    let error = r#"{"type":"error","message":"stream disconnected before completion"}"#;
    let rows: Vec<(&str, String, O, E, Option<&str>)> = vec![
        (
            "completed",
            stream(&[THREAD, TURN, COMMAND, MESSAGE, COMPLETED]),
            O::Completed,
            E::Success,
            Some("Fixed the reaper; tests pass."),
        ),
        (
            "turn.failed",
            stream(&[THREAD, TURN, COMMAND, failed]),
            O::Failed,
            E::Error,
            Some("model gpt-5.5 is not supported with ChatGPT OAuth"),
        ),
        (
            "error then end",
            stream(&[THREAD, TURN, error]),
            O::Failed,
            E::Error,
            Some("stream disconnected before completion"),
        ),
        (
            "error before any turn",
            stream(&[THREAD, error]),
            O::Failed,
            E::Error,
            Some("stream disconnected before completion"),
        ),
        // A retried error followed by a completed turn: the last word counts.
        (
            "error then completed",
            stream(&[THREAD, TURN, error, MESSAGE, COMPLETED]),
            O::Completed,
            E::Success,
            Some("Fixed the reaper; tests pass."),
        ),
        // An interrupted turn has no event of its own: the stream stops inside the turn.
        (
            "stopped mid-turn",
            stream(&[THREAD, TURN, COMMAND, MESSAGE]),
            O::Failed,
            E::Interrupted,
            Some("Fixed the reaper; tests pass."),
        ),
        (
            "turn.aborted",
            stream(&[
                THREAD,
                TURN,
                r#"{"type":"turn.aborted","reason":"interrupted"}"#,
            ]),
            O::Failed,
            E::Interrupted,
            None,
        ),
        (
            "second turn stopped",
            stream(&[THREAD, TURN, COMPLETED, TURN]),
            O::Failed,
            E::Interrupted,
            None,
        ),
        ("no turn", stream(&[THREAD]), O::Failed, E::NoResult, None),
        ("empty", String::new(), O::Failed, E::NoResult, None),
        (
            "not json",
            "Error: not logged in\n".to_owned(),
            O::Failed,
            E::NoResult,
            None,
        ),
    ];
    for (name, jsonl, outcome, exit, summary) in rows {
        let h = classify_codex(&jsonl);
        assert_eq!(
            (h.report.outcome, h.report.exit_reason),
            (outcome, exit),
            "{name}"
        );
        assert_eq!(h.report.summary.as_deref(), summary, "{name}");
        assert_eq!(h.report.raw_subtype, None, "{name}");
        if jsonl.contains("thread.started") {
            assert_eq!(
                h.report.session_id.as_deref(),
                Some("0199a213-81c0-7800-8aa1-bbab2a035a53"),
                "{name}"
            );
        }
    }
}

#[test]
fn codex_keeps_usage_turns_and_counts_what_it_ignores() {
    let jsonl = format!(
        "{THREAD}\nwarning: something on stdout\n{TURN}\n[1,2]\n{{\"type\":\"turn.\n{COMPLETED}\n\n{TURN}\n{COMPLETED}\n"
    );
    let h = classify_codex(&jsonl);
    assert_eq!(
        (h.report.outcome, h.report.exit_reason),
        (O::Completed, E::Success)
    );
    assert_eq!(h.report.turns, Some(2));
    assert_eq!((h.events, h.unparseable_lines), (5, 3));
    assert_eq!(
        h.usage,
        Some(CodexUsage {
            input_tokens: 24763,
            cached_input_tokens: 24448,
            output_tokens: 122
        }),
        "turn.completed reports the thread's running total: the last one is the run's"
    );
    assert_eq!(h.report.cost_usd, None, "Codex reports tokens, not cost");
}

/// Claude's spend: given a result with `modelUsage`, or with `usage` only, or neither, then
/// these usage lines (input counts cache reads and writes; a cut name that collides merges).
#[test]
fn claude_usage_by_model() {
    use events::ModelUsage as U;
    let long = "m".repeat(200);
    let rows: Vec<(&str, Value, Vec<U>)> = vec![
        (
            "two models",
            json!({"type": "result", "subtype": "success", "total_cost_usd": 0.3,
            "modelUsage": {
                "claude-sonnet-4-5": {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 100, "cacheCreationInputTokens": 20, "costUSD": 0.25, "contextWindow": 200000},
                "claude-haiku-4-5": {"inputTokens": 7, "outputTokens": 3, "costUSD": 0.05}
            }}),
            vec![
                U {
                    model: Some("claude-haiku-4-5".into()),
                    input_tokens: 7,
                    cached_input_tokens: 0,
                    output_tokens: 3,
                    cost_usd: Some(0.05),
                },
                U {
                    model: Some("claude-sonnet-4-5".into()),
                    input_tokens: 130,
                    cached_input_tokens: 100,
                    output_tokens: 5,
                    cost_usd: Some(0.25),
                },
            ],
        ),
        (
            "usage only",
            json!({"type": "result", "subtype": "success",
                "usage": {"input_tokens": 4, "cache_read_input_tokens": 13613, "cache_creation_input_tokens": 6198, "output_tokens": 5}}),
            vec![U {
                model: None,
                input_tokens: 19815,
                cached_input_tokens: 13613,
                output_tokens: 5,
                cost_usd: None,
            }],
        ),
        (
            "neither",
            json!({"type": "result", "subtype": "success"}),
            vec![],
        ),
        (
            "names cut to 128 bytes merge",
            json!({"type": "result", "subtype": "success", "modelUsage": {
                format!("{long}a"): {"inputTokens": 1, "outputTokens": 1, "costUSD": 0.5},
                format!("{long}b"): {"inputTokens": 2, "outputTokens": 2},
                "bad": "not an object",
                "negative": {"inputTokens": -5, "costUSD": -1.0}
            }}),
            vec![
                U {
                    model: Some("m".repeat(128)),
                    input_tokens: 3,
                    cached_input_tokens: 0,
                    output_tokens: 3,
                    cost_usd: Some(0.5),
                },
                U {
                    model: Some("negative".into()),
                    input_tokens: 0,
                    cached_input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: None,
                },
            ],
        ),
    ];
    for (name, result, usage) in rows {
        assert_eq!(classify_claude(&result).usage, usage, "{name}");
    }
    // Codex: the last turn.completed's usage, with no model name (the runtime's applies).
    let h = classify_codex(&stream(&[THREAD, TURN, COMPLETED]));
    assert_eq!(
        h.report.usage,
        vec![U {
            model: None,
            input_tokens: 24763,
            cached_input_tokens: 24448,
            output_tokens: 122,
            cost_usd: None
        }]
    );
}

#[test]
fn codex_legacy_protocol() {
    let jsonl = stream(&[
        r#"{"id":"0","msg":{"type":"session_configured","session_id":"5973b6c0-94b8-487b-a530-2aeb6098ae0e","model":"codex-mini-latest"}}"#,
        r#"{"id":"1","msg":{"type":"task_started"}}"#,
        r#"{"id":"1","msg":{"type":"agent_message","message":"Done."}}"#,
        r#"{"id":"1","msg":{"type":"task_complete","last_agent_message":"All done."}}"#,
    ]);
    let h = classify_codex(&jsonl);
    assert_eq!(
        (h.report.outcome, h.report.exit_reason),
        (O::Completed, E::Success)
    );
    assert_eq!(
        h.report.session_id.as_deref(),
        Some("5973b6c0-94b8-487b-a530-2aeb6098ae0e")
    );
    assert_eq!(h.report.summary.as_deref(), Some("All done."));
    let aborted = stream(&[
        r#"{"id":"1","msg":{"type":"task_started"}}"#,
        r#"{"id":"1","msg":{"type":"turn_aborted","reason":"interrupted"}}"#,
    ]);
    let h = classify_codex(&aborted);
    assert_eq!(
        (h.report.outcome, h.report.exit_reason),
        (O::Failed, E::Interrupted)
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            5 => proptest::sample::select(&[
                "result",
                "success",
                "error_max_turns",
                "turn.started",
                "turn.completed",
            ])
            .prop_map(str::to_owned),
            1 => ".{0,8}".prop_map(String::from),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(&[
                    "type",
                    "subtype",
                    "is_error",
                    "num_turns",
                    "total_cost_usd",
                    "session_id",
                    "result",
                    "item",
                    "msg",
                    "usage",
                    "thread_id",
                    "error",
                    "text",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any JSON is a report that `decide` accepts (a consistent pair, bounded strings, a
    /// finite non-negative cost): never a panic, never a refusal for its shape.
    #[test]
    fn classifiers_are_total_and_within_limits(values in proptest::collection::vec(json_value(), 0..6), junk in ".{0,40}") {
        let mut jsonl = String::new();
        for v in &values {
            jsonl.push_str(&v.to_string());
            jsonl.push('\n');
        }
        jsonl.push_str(&junk);
        let reports = [classify_claude(&Value::Array(values.clone())), classify_codex(&jsonl).report, projections::ingest::harvest::classify_claude_stream(&jsonl)]
            .into_iter()
            .chain(values.iter().map(classify_claude));
        for r in reports {
            let ok = matches!(
                (r.outcome, r.exit_reason),
                (O::Completed, E::Success)
                    | (O::Partial, E::MaxTurns | E::MaxBudget)
                    | (O::Failed, E::Error | E::ApiError | E::Interrupted | E::NoResult)
            );
            prop_assert!(ok, "{:?}", r);
            prop_assert!(r.cost_usd.is_none_or(|c| c.is_finite() && c >= 0.0));
            prop_assert!(r.summary.as_ref().is_none_or(|s| s.len() <= SUMMARY_BYTES_MAX));
            prop_assert!(r.session_id.as_ref().is_none_or(|s| s.len() <= 256));
            prop_assert!(r.raw_subtype.as_ref().is_none_or(|s| s.len() <= 128));
            prop_assert!(r.usage.len() <= 16);
            for (i, m) in r.usage.iter().enumerate() {
                prop_assert!(m.model.as_ref().is_none_or(|s| s.len() <= 128));
                prop_assert!(m.cost_usd.is_none_or(|c| c.is_finite() && c >= 0.0));
                prop_assert!(m.cached_input_tokens <= m.input_tokens);
                prop_assert!(r.usage[..i].iter().all(|o| o.model != m.model), "each model once");
            }
        }
    }
}

/// Claude `--output-format stream-json`: given each fixture (Agent SDK message lines), then the
/// last `result` line decides, like the single result object.
#[test]
fn claude_stream_json_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude");
    /// (fixture, outcome, exit reason, turns, cost)
    type Row = (
        &'static str,
        HarvestOutcome,
        ExitReason,
        Option<u32>,
        Option<f64>,
    );
    let rows: &[Row] = &[
        (
            "stream_success.jsonl",
            HarvestOutcome::Completed,
            ExitReason::Success,
            Some(6),
            Some(0.4123),
        ),
        (
            "stream_max_turns.jsonl",
            HarvestOutcome::Partial,
            ExitReason::MaxTurns,
            Some(2),
            Some(0.05),
        ),
        (
            "stream_cut_off.jsonl",
            HarvestOutcome::Failed,
            ExitReason::NoResult,
            None,
            None,
        ),
    ];
    for (file, outcome, exit_reason, turns, cost) in rows {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let r = projections::ingest::harvest::classify_claude_stream(&text);
        assert_eq!(
            (r.outcome, r.exit_reason),
            (*outcome, *exit_reason),
            "given {file}"
        );
        assert_eq!((r.turns, r.cost_usd), (*turns, *cost), "given {file}");
    }
    // Its spend, model by model (the fixture's modelUsage).
    let text = std::fs::read_to_string(format!("{dir}/stream_success.jsonl")).unwrap();
    assert_eq!(
        projections::ingest::harvest::classify_claude_stream(&text).usage,
        vec![events::ModelUsage {
            model: Some("claude-sonnet-4-5".into()),
            input_tokens: 3100,
            cached_input_tokens: 0,
            output_tokens: 36,
            cost_usd: Some(0.4123),
        }]
    );
    // The last result wins over an earlier one (a resumed session appends to the file).
    let two = "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"is_error\":true}\n\
               {\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1}\n";
    let r = projections::ingest::harvest::classify_claude_stream(two);
    assert_eq!(
        (r.outcome, r.exit_reason),
        (HarvestOutcome::Completed, ExitReason::Success)
    );
    // An API error arrives as success with is_error.
    let api = "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true}";
    let r = projections::ingest::harvest::classify_claude_stream(api);
    assert_eq!(
        (r.outcome, r.exit_reason),
        (HarvestOutcome::Failed, ExitReason::ApiError)
    );
}
