//! Agents' hooks (SPEC §13): given each Claude Code hook event and Codex notify JSON, posted
//! the way `mc-ledger hook …` posts them, then the answer and what lands in the ledger. Hook
//! shapes follow Claude Code's hooks reference (hook input: `hook_event_name`, `session_id`,
//! `transcript_path`, `cwd`; Stop: `stop_hook_active`, `last_assistant_message`; Notification:
//! `message`, `notification_type`; SessionEnd: `reason`) and Codex's notify payload
//! (`type: agent-turn-complete`, `thread-id`, `turn-id`, `input-messages`,
//! `last-assistant-message`, as in openai/codex's config docs).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn ledger_types(addr: std::net::SocketAddr) -> Vec<String> {
    get(addr, "/v1/events?limit=1000").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

fn dispatched(addr: std::net::SocketAddr, ticket: &str) -> (String, String) {
    let body = |v: Value| with_actor(v, "ops", "human");
    open_ticket_as(addr, ticket, "hooks", ("ops", "human"));
    let r = post(
        addr,
        &format!("/v1/tickets/{ticket}/dispatch"),
        &body(json!({"dispatch_key": "k", "agent": "claude", "transport": "tmux"})),
    );
    let v = r.json();
    (
        v["runtime_id"].as_str().unwrap().to_owned(),
        v["nonce"].as_str().unwrap().to_owned(),
    )
}

fn common_fields(event: &str) -> Value {
    json!({
        "session_id": "5f0c2a7e-1b1d-4a57-9a0e-3c2b8d1e7f10",
        "transcript_path": "/home/w/.claude/projects/x/5f0c.jsonl",
        "cwd": "/work/mc-4030",
        "hook_event_name": event,
    })
}

fn merged(mut a: Value, b: Value) -> Value {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

#[test]
fn every_claude_hook_event_and_codex_notify() {
    let s = start_temp();
    let (rt, nonce) = dispatched(s.addr, "MC-1");
    let claude = format!("/v1/runtimes/{rt}/hooks/claude");
    let codex = format!("/v1/runtimes/{rt}/hooks/codex");
    // (when, route, body, status, event types appended)
    let rows: Vec<(&str, &str, Value, u16, Vec<&str>)> = vec![
        (
            "a Stop with no verdict in the message",
            &claude,
            merged(
                common_fields("Stop"),
                json!({"stop_hook_active": false, "last_assistant_message": "Reading the files."}),
            ),
            201,
            vec!["runtime.activity"],
        ),
        (
            "a Notification: permission prompt",
            &claude,
            merged(
                common_fields("Notification"),
                json!({"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"}),
            ),
            201,
            vec!["runtime.input_requested"],
        ),
        (
            "the same prompt again",
            &claude,
            merged(
                common_fields("Notification"),
                json!({"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"}),
            ),
            200,
            vec![],
        ),
        (
            "a Notification of another type",
            &claude,
            merged(
                common_fields("Notification"),
                json!({"message": "auth ok", "notification_type": "auth_success"}),
            ),
            202,
            vec![],
        ),
        (
            "an event this server does not know, with new fields",
            &claude,
            merged(
                common_fields("PreCompact"),
                json!({"trigger": "auto", "brand_new_field": [1, 2]}),
            ),
            202,
            vec![],
        ),
        (
            "a SubagentStop whose message says REVIEW",
            &claude,
            merged(
                common_fields("SubagentStop"),
                json!({"last_assistant_message": format!("{{\"mc_signal\": {{\"verdict\": \"REVIEW\", \"nonce\": \"{nonce}\", \"payload\": \"audit done\"}}}}")}),
            ),
            201,
            vec!["runtime.signaled"],
        ),
        (
            "a Codex notify of another type",
            &codex,
            json!({"type": "approval-requested", "thread-id": "t"}),
            202,
            vec![],
        ),
        (
            "a SessionEnd",
            &claude,
            merged(common_fields("SessionEnd"), json!({"reason": "other"})),
            201,
            vec!["runtime.session_ended"],
        ),
        (
            "the SessionEnd again",
            &claude,
            merged(common_fields("SessionEnd"), json!({"reason": "other"})),
            200,
            vec![],
        ),
    ];
    for (when, route, body, status, appended) in rows {
        let before = ledger_types(s.addr).len();
        let r = post(s.addr, route, &body);
        assert_eq!(r.status, status, "when {when}: {}", r.body);
        let after = ledger_types(s.addr);
        let new: Vec<&str> = after[before..].iter().map(String::as_str).collect();
        assert_eq!(new, appended, "when {when}");
    }
    // A body that is not a JSON object is no hook input.
    for route in [&claude, &codex] {
        let r = post(s.addr, route, &json!([null, null]));
        assert_eq!(r.status, 422, "{}", r.body);
    }
    // The hand-off rule: REVIEW, then the session ended: in review, no banner, no alert.
    let view = get(s.addr, "/v1/tickets/MC-1").json();
    assert_eq!(view["state"], "review", "{view}");
    assert_eq!(view["failure_reason"], Value::Null);
    assert_eq!(view["current_runtime"]["class"], "session-ended");

    // Codex: a finished turn is activity and, when it says so, the signal.
    let (rt2, _) = dispatched(s.addr, "MC-2");
    let done = json!({
        "type": "agent-turn-complete",
        "thread-id": "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "turn-id": "12",
        "cwd": "/work/mc-2",
        "input-messages": ["fix the bug"],
        "last-assistant-message": "All tests pass.\nDONE: fixed the off-by-one",
    });
    let r = post(s.addr, &format!("/v1/runtimes/{rt2}/hooks/codex"), &done);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["events"][0]["type"], "runtime.signaled");
    assert_eq!(get(s.addr, "/v1/tickets/MC-2").json()["state"], "review");
}

#[test]
fn a_permission_prompt_waits_for_an_answer() {
    let s = start_temp();
    let (rt, _) = dispatched(s.addr, "MC-3");
    let prompt = merged(
        common_fields("Notification"),
        json!({"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"}),
    );
    assert_eq!(
        post(s.addr, &format!("/v1/runtimes/{rt}/hooks/claude"), &prompt).status,
        201
    );
    let view = get(s.addr, "/v1/tickets/MC-3").json();
    assert_eq!(view["state"], "needs_input");
    assert_eq!(view["next_action"]["code"], "answer");
    let answer = with_actor(json!({"text": "yes, run it"}), "ops", "human");
    assert_eq!(
        post(s.addr, &format!("/v1/runtimes/{rt}/input"), &answer).status,
        201
    );
    assert_eq!(
        get(s.addr, "/v1/tickets/MC-3").json()["state"],
        "in_progress"
    );
}

/// `mc-ledger hook claude` posts stdin to the server named by the environment; with the
/// server down it still exits 0, within 2 s, saying why on stderr.
#[test]
fn the_hook_command_never_fails_the_agent() {
    let s = start_temp();
    let (rt, _) = dispatched(s.addr, "MC-4");
    let spool = tempfile::tempdir().unwrap();
    let run = |server: &str, stdin: &Value| {
        let started = Instant::now();
        let out = hook_claude(server, &rt, spool.path(), stdin);
        (out, started.elapsed())
    };
    let end = merged(
        common_fields("SessionEnd"),
        json!({"reason": "prompt_input_exit"}),
    );
    let (out, _) = run(&format!("http://{}", s.addr), &end);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: Claude Code reads it"
    );
    assert!(ledger_types(s.addr).contains(&"runtime.session_ended".to_owned()));

    // A server that is not there (a port nobody listens on).
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let (out, took) = run(&dead, &end);
    assert!(out.status.success(), "exit 0 with the server down");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("kept in"), "spooled for later: {said}");
    eprintln!("hook with the server down returned after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A server that accepts and never answers: the hook gives up in time.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (out, took) = run(&format!("http://{}", hung.local_addr().unwrap()), &end);
    assert!(out.status.success(), "exit 0 with the server hung");
    eprintln!("hook with the server hung returned after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

fn hook_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let event = prop_oneof![
        5 => one_of(&["Stop", "SubagentStop", "Notification", "SessionEnd", "agent-turn-complete"]),
        1 => "[A-Za-z]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("DONE: shipped")),
        Just(json!("{\"mc_signal\": {\"verdict\": \"REVIEW\"}}")),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_-]{1,24}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let fields = prop_oneof![
        7 => one_of(&[
            "hook_event_name",
            "type",
            "last_assistant_message",
            "last-assistant-message",
            "notification_type",
            "reason",
            "message",
        ]),
        1 => "[a-z_]{1,12}",
    ];
    (
        event,
        proptest::collection::vec((fields, value.clone()), 0..6),
        any::<bool>(),
        value,
    )
        .prop_map(|(event, fields, object, other)| {
            if !object {
                return other;
            }
            let mut map = serde_json::Map::new();
            map.insert("hook_event_name".into(), json!(event));
            map.insert("type".into(), json!(event));
            for (k, v) in fields {
                map.insert(k, v);
            }
            Value::Object(map)
        })
}

/// Fuzz: whatever JSON reaches a hook route, of a live, an ended or an unknown runtime, the
/// answer is never a 5xx (and the server stays up). The seed is logged.
#[test]
fn hook_routes_fuzzed_never_fail() {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    let server = start_temp();
    let (live, _) = dispatched(server.addr, "MC-1");
    let (ended, _) = dispatched(server.addr, "MC-2");
    let r = post(
        server.addr,
        &format!("/v1/runtimes/{ended}/kill"),
        &with_actor(json!({"reason": "r"}), "ops", "human"),
    );
    assert_eq!(r.status, 201);
    let seed = logged_seed("hook fuzz");
    let mut runner = TestRunner::new(Config {
        cases: 400,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    });
    let runtimes = [live, ended, "rt_unknown".to_owned()];
    runner
        .run(
            &(hook_json(), 0..3usize, proptest::bool::ANY),
            |(body, which, codex)| {
                let agent = if codex { "codex" } else { "claude" };
                let path = format!("/v1/runtimes/{}/hooks/{agent}", runtimes[which]);
                let r = post(server.addr, &path, &body);
                proptest::prop_assert!(r.status < 500, "{path} {body}: {} {}", r.status, r.body);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(get(server.addr, "/healthz").status, 200);
}

/// Runs `mc-ledger hook claude` with this stdin against `server`, spooling in `spool`.
fn hook_claude(
    server: &str,
    rt: &str,
    spool: &std::path::Path,
    stdin: &Value,
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mc-ledger"));
    command
        .args(["hook", "claude"])
        .env("MC_LEDGER_SERVER", server)
        .env("MC_LEDGER_RUNTIME", rt)
        .env("MC_LEDGER_SPOOL", spool)
        .env_remove("MC_LEDGER_TOKEN");
    output_with_stdin(command, stdin.to_string().as_bytes())
}

fn hook_flush(server: &str, spool: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["hook", "flush", "--server", server])
        .env("MC_LEDGER_SPOOL", spool)
        .env_remove("MC_LEDGER_TOKEN")
        .output()
        .unwrap()
}

/// SPEC §17: hooks with the server down are spooled (0600, in order) and the agent is not held
/// up; once the server is back, `hook flush` records each exactly once, and sending them again
/// (an answer lost after the server recorded them) records nothing more.
#[test]
fn hooks_spool_while_the_server_is_down_and_flush_records_each_once() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path());
    let (rt, nonce) = dispatched(server.addr, "MC-8");
    let url = format!("http://{}", server.addr);
    // Given the server stopped,
    drop(server);
    // when the agent's Stop (with a REVIEW signal) and SessionEnd hooks run,
    let stop = merged(
        common_fields("Stop"),
        json!({"last_assistant_message": format!(
            "{{\"mc_signal\": {{\"verdict\": \"REVIEW\", \"nonce\": \"{nonce}\", \"payload\": \"spooled\"}}}}"
        )}),
    );
    let end = merged(common_fields("SessionEnd"), json!({"reason": "logout"}));
    for hook in [&stop, &end] {
        let started = Instant::now();
        let out = hook_claude(&url, &rt, spool.path(), hook);
        assert!(out.status.success(), "exit 0 with the server down");
        assert!(out.stdout.is_empty(), "nothing on stdout");
        assert!(started.elapsed() < Duration::from_secs(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("kept in"), "{said}");
    }
    // then both wait in the spool, in order, readable by the user alone.
    let waiting = spooled(spool.path());
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    for path in &waiting {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let first: Value = serde_json::from_slice(&std::fs::read(&waiting[0]).unwrap()).unwrap();
    assert!(
        first["body"].as_str().unwrap().contains("\"Stop\""),
        "{first}"
    );
    let copies = tempfile::tempdir().unwrap();
    for path in &waiting {
        std::fs::copy(path, copies.path().join(path.file_name().unwrap())).unwrap();
    }

    // When the server is back (on another port) and the spool is flushed,
    let server = spawn_binary(data.path());
    let url = format!("http://{}", server.addr);
    let out = hook_flush(&url, spool.path());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("delivered 2 hook(s)"), "{said}");
    assert!(spooled(spool.path()).is_empty());
    // then the signal and the session's end are recorded once each, in that order.
    let recorded = |t: &str| ledger_types(server.addr).iter().filter(|x| *x == t).count();
    assert_eq!(recorded("runtime.signaled"), 1);
    assert_eq!(recorded("runtime.session_ended"), 1);
    let types = ledger_types(server.addr);
    let at = |t: &str| types.iter().position(|x| x == t).unwrap();
    assert!(
        at("runtime.signaled") < at("runtime.session_ended"),
        "{types:?}"
    );
    let view = get(server.addr, "/v1/tickets/MC-8").json();
    assert_eq!(view["state"], "review", "{view}");

    // When the same entries are sent again (as after an answer lost on the way back),
    for copy in std::fs::read_dir(copies.path()).unwrap().flatten() {
        std::fs::copy(copy.path(), spool.path().join(copy.file_name())).unwrap();
    }
    let before = ledger_types(server.addr).len();
    let out = hook_flush(&url, spool.path());
    assert!(out.status.success());
    // then they are answered as already recorded (none refused) and nothing more lands.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("delivered 2 hook(s), 0 refused"), "{said}");
    assert_eq!(ledger_types(server.addr).len(), before);
    assert_eq!(recorded("runtime.signaled"), 1);
    assert_eq!(recorded("runtime.session_ended"), 1);
    assert!(spooled(spool.path()).is_empty());
    // And a flush of an empty spool delivers nothing and succeeds.
    let out = hook_flush(&url, spool.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("delivered 0 hook(s)"));
}

/// Claude Code's task list (SPEC §19): given a `PostToolUse` of `TodoWrite` sent through
/// `mc-ledger hook claude` (the shape Claude Code's hook gets: `tool_name`, `tool_input.todos`
/// with `content`, `status`, `activeForm`, and `tool_response`), then the ticket's tasks mirror
/// the list; the same hook again (Claude Code may repeat a list) appends nothing; a status
/// change is one `task.updated`; another tool's `PostToolUse` is ignored.
#[test]
fn a_todo_list_is_mirrored_onto_the_ticket_s_tasks_once() {
    let s = start_temp();
    let (rt, _) = dispatched(s.addr, "MC-9");
    let server = format!("http://{}", s.addr);
    let spool = tempfile::tempdir().unwrap();
    let todo = |todos: Value| {
        merged(
            common_fields("PostToolUse"),
            json!({
                "tool_name": "TodoWrite",
                "tool_input": {"todos": todos},
                "tool_response": {"oldTodos": [], "newTodos": todos},
            }),
        )
    };
    let three = json!([
        {"content": "Read the launcher", "status": "completed", "activeForm": "Reading the launcher"},
        {"content": "Fix the race", "status": "in_progress", "activeForm": "Fixing the race"},
        {"content": "Run the tests", "status": "pending", "activeForm": "Running the tests"},
    ]);
    let tasks = || task_lines(&get(s.addr, "/v1/tickets/MC-9").json());
    let count = || ledger_types(s.addr).len();
    assert!(
        hook_claude(&server, &rt, spool.path(), &todo(three.clone()))
            .status
            .success()
    );
    assert_eq!(
        tasks(),
        [
            "Read the launcher done",
            "Fix the race in_progress",
            "Run the tests open"
        ]
    );
    let after_first = count();
    assert!(hook_claude(&server, &rt, spool.path(), &todo(three))
        .status
        .success());
    assert_eq!(count(), after_first, "the same list again appends nothing");
    let moved = json!([
        {"content": "Read the launcher", "status": "completed", "activeForm": "Reading the launcher"},
        {"content": "Fix the race", "status": "completed", "activeForm": "Fixing the race"},
        {"content": "Run the tests", "status": "pending", "activeForm": "Running the tests"},
    ]);
    let r = post(
        s.addr,
        &format!("/v1/runtimes/{rt}/hooks/claude"),
        &todo(moved),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(count(), after_first + 1);
    assert_eq!(ledger_types(s.addr).last().unwrap(), "task.updated");
    assert_eq!(tasks()[1], "Fix the race done");
    let other_tool = merged(
        common_fields("PostToolUse"),
        json!({"tool_name": "Bash", "tool_input": {"command": "ls"}}),
    );
    let r = post(
        s.addr,
        &format!("/v1/runtimes/{rt}/hooks/claude"),
        &other_tool,
    );
    assert_eq!((r.status, r.json()["ignored"].clone()), (202, json!(true)));
    assert_eq!(count(), after_first + 1);
    assert!(spooled(spool.path()).is_empty(), "nothing left spooled");
}
