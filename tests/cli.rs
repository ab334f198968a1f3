//! The `mc-ledger` command line, run as the real binary: demo → replay, verify, export and
//! import round trip, clear one-line errors, and `--server` while a server holds the data.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn mc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The arguments of `mc-ledger harvest` sending `file` as the Claude result of `runtime` to the
/// server at `url`.
fn harvest_claude<'a>(url: &'a str, runtime: &'a str, file: &'a str) -> [&'a str; 7] {
    [
        "harvest",
        "--server",
        url,
        "--runtime",
        runtime,
        "--claude",
        file,
    ]
}

#[test]
fn demo_then_replay_shows_the_banner_appear_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = mc(&["demo", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("failure_reason: tmux_session_missing"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("(duplicate: nothing appended)").count(),
        4,
        "five pickups, one runtime"
    );

    let out = mc(&["replay", "MC-4502", "--json", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows
        .iter()
        .any(|r| r["failure_reason"] == "tmux_session_missing"));
    let last = rows.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["failure_reason"].clone()),
        (Some("done"), Value::Null)
    );

    let human = mc(&["replay", "MC-4030", "--data-dir", d]);
    assert!(
        text(&human.stdout).contains("next: resume"),
        "{}",
        text(&human.stdout)
    );
    let out = mc(&["verify", "--data-dir", d]);
    assert!(
        out.status.success() && text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stderr)
    );
    // A second demo into the same directory refuses rather than duplicating stories.
    assert!(!mc(&["demo", "--data-dir", d]).status.success());
}

#[test]
fn export_import_round_trip_is_idempotent() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        a.path().to_str().unwrap().to_owned(),
        b.path().to_str().unwrap().to_owned(),
    );
    assert!(mc(&["demo", "--data-dir", &a]).status.success());
    let export = mc(&["export", "--data-dir", &a]);
    assert!(export.status.success());
    let file = std::path::Path::new(&b).join("export.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let target = std::path::Path::new(&b).join("data");
    let target = target.to_str().unwrap();
    let first = mc(&["import", file.to_str().unwrap(), "--data-dir", target]);
    assert!(
        text(&first.stdout).contains("imported 26 events (0 already present)"),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let again = mc(&["import", file.to_str().unwrap(), "--data-dir", target]);
    assert!(
        text(&again.stdout).contains("imported 0 events (26 already present)"),
        "{}",
        text(&again.stdout)
    );
    // The same events, ids and times give the same hash chain.
    let head = |d: &str| text(&mc(&["verify", "--data-dir", d]).stdout);
    assert_eq!(head(&a), head(target));
}

#[test]
fn errors_are_one_clear_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["verify", "--data-dir", d],
        vec!["replay", "not-a-ticket", "--data-dir", d],
        vec!["import", "/nonexistent/file.jsonl", "--data-dir", d],
        vec!["export", "--server", "ftp://x"],
    ] {
        let out = mc(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("mc-ledger: "), "{args:?}: {err}");
    }
}

#[test]
fn a_held_data_dir_says_so_and_server_mode_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(mc(&["demo", "--data-dir", d]).status.success());
    let mut server = spawn_binary(dir.path());
    let url = format!("http://{}", server.addr);
    let out = mc(&["verify", "--data-dir", d]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--server URL"),
        "{}",
        text(&out.stderr)
    );
    for (args, says) in [
        (vec!["verify", "--server", &url], "26 events"),
        (vec!["replay", "MC-4502", "--server", &url], "ticket.closed"),
        (vec!["rebuild", "--server", &url], "no ticket view differs"),
    ] {
        let out = mc(&args);
        assert!(
            out.status.success() && text(&out.stdout).contains(says),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let out = mc(&["export", "--server", &url]);
    assert_eq!(text(&out.stdout).lines().count(), 26);
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

/// A dispatcher with a controller token starts a worker; the worker's helper
/// (`mc-ledger signal`) sends its pane with the dispatch's runtime token in `MC_LEDGER_TOKEN`:
/// the signal is recorded as the runtime's agent with the runtime token's id, and the same token
/// may not harvest (an agent may not) or touch another ticket.
#[test]
fn a_worker_signals_with_its_runtime_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let ops = create_token(dir.path(), "orchestrator", "write", "ops");
    let dispatcher = create_token(dir.path(), "controller", "write", "dispatcher");
    let server = spawn_serve(&["--data-dir", d]);
    let addr = server.addr;
    let open = serde_json::json!({"id": "MC-7", "title": "worker"}).to_string();
    let r = request(addr, "POST", "/v1/tickets", Some(&open), Some(&ops));
    assert_eq!(r.status, 201, "{}", r.body);
    let dispatch = serde_json::json!({"dispatch_key": "k", "agent": "claude", "transport": "tmux"})
        .to_string();
    let r = request(
        addr,
        "POST",
        "/v1/tickets/MC-7/dispatch",
        Some(&dispatch),
        Some(&dispatcher),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    let runtime = v["runtime_id"].as_str().unwrap().to_owned();
    let token = v["runtime_token"].as_str().unwrap().to_owned();

    let url = format!("http://{addr}");
    let helper = |args: &[&str], stdin: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mc-ledger"));
        command.args(args).env("MC_LEDGER_TOKEN", &token);
        output_with_stdin(command, stdin.as_bytes())
    };
    let out = helper(
        &["signal", "--server", &url, "--runtime", &runtime],
        "working…\nREVIEW: ready for a look\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = get(addr, "/v1/events?limit=100");
    assert_eq!(events.status, 401, "reads need a token too");
    let r = request(addr, "GET", "/v1/events?limit=100", None, Some(&ops));
    let signaled = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "runtime.signaled")
        .cloned()
        .expect("the signal is recorded");
    assert_eq!(
        signaled["actor"],
        serde_json::json!({"name": "claude", "kind": "agent"})
    );
    assert_eq!(signaled["token_id"], format!("rtk_{runtime}"));

    let result = dir.path().join("result.json");
    std::fs::write(
        &result,
        r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","session_id":"s","total_cost_usd":0.01}"#,
    )
    .unwrap();
    let out = helper(
        &harvest_claude(&url, &runtime, result.to_str().unwrap()),
        "",
    );
    assert!(!out.status.success(), "an agent may not harvest");
    assert!(
        text(&out.stderr).contains("not_permitted"),
        "{}",
        text(&out.stderr)
    );

    // The token commands work while the server holds the data directory, and a revoke is in
    // force without a restart.
    let listed = mc(&["token", "list", "--json", "--data-dir", d]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let id = text(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == "dispatcher")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = mc(&["token", "revoke", &id, "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started = std::time::Instant::now();
    loop {
        let r = request(addr, "GET", "/v1/tickets", None, Some(&dispatcher));
        if r.status == 401 {
            assert_eq!(r.json()["code"], "token_revoked");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "revoked in time"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!("revocation in force after {:?}", started.elapsed());
}

/// `harvest --claude FILE` recognises `--output-format stream-json` output and sends it as
/// `claude_stream`; the server classifies it by its last `result` line.
#[test]
fn harvest_takes_a_claude_stream_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = spawn_serve(&["--data-dir", d]);
    let addr = server.addr;
    let body = |v: serde_json::Value| with_actor(v, "ops", "human");
    let r = post(
        addr,
        "/v1/tickets",
        &body(serde_json::json!({"id": "MC-8", "title": "s"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        addr,
        "/v1/tickets/MC-8/dispatch",
        &body(serde_json::json!({"dispatch_key": "k", "agent": "claude", "transport": "process"})),
    );
    let runtime = r.json()["runtime_id"].as_str().unwrap().to_owned();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/projections/tests/fixtures/claude/stream_success.jsonl"
    );
    let url = format!("http://{addr}");
    let out = mc(&harvest_claude(&url, &runtime, fixture));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = get(addr, &format!("/v1/runtimes/{runtime}")).json();
    assert_eq!(view["exit"]["outcome"], "completed", "{view}");
    assert_eq!(view["exit"]["turns"], 6);
    assert_eq!(view["exit"]["cost_usd"], 0.4123);
}

#[test]
fn serve_takes_a_listening_socket_handed_over_by_socket_activation() {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    // Given a socket bound by someone else, as systemd binds it, handed over open across exec,
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::empty()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // when `serve` starts with LISTEN_FDS (and a --listen that is not that socket's address),
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:1"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDS_FIRST_FD", socket.as_raw_fd().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(socket);
    let mut server = Child { child, addr };
    let mut line = String::new();
    std::io::BufReader::new(server.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // then it serves on the socket it was handed.
    assert_eq!(line.trim(), format!("mc-ledger listening on http://{addr}"));
    assert_eq!(get(addr, "/healthz").status, 200);
    let opened = post(
        addr,
        "/v1/tickets",
        &serde_json::json!({"id": "MC-1", "title": "t", "actor": {"name": "ops", "kind": "human"}}),
    );
    assert_eq!(opened.status, 201, "{}", opened.body);
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_not_with_a_panic() {
    // Given stdout a pipe nobody reads any more (`mc-ledger demo | head -1` once head exits),
    let dir = tempfile::tempdir().unwrap();
    let (loaded, other) = (dir.path().join("loaded"), dir.path().join("other"));
    let (loaded, other) = (loaded.to_str().unwrap(), other.to_str().unwrap());
    let demo = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["demo", "--data-dir", loaded])
        .output()
        .unwrap();
    assert!(demo.status.success());
    for args in [
        vec!["demo", "--data-dir", other],
        vec!["replay", "MC-4000", "--data-dir", loaded],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        // when it writes its first line, then it ends there with 141 (a SIGPIPE's status in a
        // shell), saying nothing: no panic, no backtrace.
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
