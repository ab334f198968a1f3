//! Agents as clients with the real CLIs (SPEC §19): Claude Code and Codex (npm, pinned in
//! `scripts/install-agents.sh`) against the scripted model API, through `mc-ledger run` and
//! `mc-ledger mcp`: MCP tool calls, the task list, W.8, and `run`'s failure modes. Behind
//! `MC_LEDGER_SLOW_TESTS=1` (CI sets it).

mod common;
#[path = "agents/rig.rs"]
mod rig;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use rig::*;
use serde_json::json;

/// SPEC §19 with the real CLIs, through `mc-ledger run` and `mc-ledger mcp`: the scripted model
/// calls the MCP `signal` tool and the ledger records the verdict, as the runtime's agent with
/// its runtime token, signed with the runtime's current nonce — after a `switch` too, with the
/// nonce the switch issued (the seeds' W.8); a call from a runtime that a replacing dispatch
/// ended is refused and records nothing. Claude Code's task list (TodoWrite, and its default
/// TaskCreate/TaskUpdate) lands on the ticket's tasks.
#[test]
fn agents_reach_the_ledger_through_mcp_and_their_task_lists_become_tasks() {
    if !slow() {
        return;
    }
    let rig = Rig::new("mcp", &[]);
    let todos = |statuses: [&str; 3]| {
        json!({"tool": "TodoWrite", "input": {"todos": [
            {"content": "Read the launcher", "status": statuses[0], "activeForm": "Reading the launcher"},
            {"content": "Patch the launcher", "status": statuses[1], "activeForm": "Patching the launcher"},
            {"content": "Run the tests", "status": statuses[2], "activeForm": "Running the tests"},
        ]}})
    };
    // Claude Code through `mc-ledger run`, with TodoWrite (CLAUDE_CODE_ENABLE_TASKS=false).
    rig.open("MC-1");
    script(
        &rig.script,
        json!([
            todos(["in_progress", "pending", "pending"]),
            todos(["completed", "in_progress", "pending"]),
            {"tool": "signal", "input": {"verdict": "REVIEW", "payload": "patched through MCP"}},
            {"text": "Handed over for review."},
        ]),
    );
    let mut env = rig.env.clone();
    env.push(("CLAUDE_CODE_ENABLE_TASKS", "false".to_owned()));
    env.push(("ENABLE_TOOL_SEARCH", "false".to_owned()));
    let pass = [
        "--pass-env",
        "CLAUDE_CODE_ENABLE_TASKS",
        "--pass-env",
        "ENABLE_TOOL_SEARCH",
    ];
    let (rt, stdout) = dispatch_with("claude", "claude-sonnet-4-5", "MC-1", &env, &pass);
    assert!(
        stdout.contains("runtime.harvested completed/success"),
        "{stdout}"
    );
    let ev = rig.events("MC-1");
    let signal = one(&ev, "runtime.signaled");
    let runtime = rig.get(&format!("/v1/runtimes/{rt}"));
    assert_eq!(signal["data"]["verdict"], "REVIEW", "{signal}");
    assert_eq!(signal["data"]["payload"], "patched through MCP");
    assert_eq!(
        signal["data"]["nonce"], runtime["nonce"],
        "the current nonce"
    );
    assert_eq!(signal["actor"], json!({"name": "claude", "kind": "agent"}));
    assert_eq!(
        signal["token_id"],
        format!("rtk_{rt}"),
        "the runtime's own token"
    );
    let tasks = task_lines(&rig.get("/v1/tickets/MC-1"));
    assert_eq!(
        tasks,
        [
            "Read the launcher done",
            "Patch the launcher in_progress",
            "Run the tests open"
        ],
        "three tasks mirrored, then their status changes"
    );
    let kinds = types(&ev);
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(
        (count("task.added"), count("task.updated")),
        (3, 3),
        "{kinds:?}"
    );
    assert_eq!(rig.get("/v1/tickets/MC-1")["state"], "review");

    // Claude Code's default task tools: TaskCreate then TaskUpdate.
    rig.open("MC-2");
    script(
        &rig.script,
        json!([
            {"tool": "TaskCreate", "input": {"subject": "Read the launcher", "description": "Read scripts/launch.sh"}},
            {"tool": "TaskUpdate", "input": {"taskId": "1", "status": "completed"}},
            {"text": "Read it."},
        ]),
    );
    let mut env = rig.env.clone();
    env.push(("ENABLE_TOOL_SEARCH", "false".to_owned()));
    // … as a child process of `mc-ledger run` (`--transport process`) instead of in tmux.
    let process = [&pass[2..], &["--transport", "process"][..]].concat();
    let (rt, _) = dispatch_with("claude", "claude-sonnet-4-5", "MC-2", &env, &process);
    assert_eq!(
        rig.get(&format!("/v1/runtimes/{rt}"))["transport"],
        "process"
    );
    let items = rig.get("/v1/tickets/MC-2")["tasks"]["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["title"], "Read the launcher");
    assert_eq!(items[0]["status"], "done");

    // Codex through `mc-ledger run`: its MCP tool call (approved by the run's -c overrides).
    rig.open("MC-3");
    script(
        &rig.script,
        json!([
            {"tool": "signal", "input": {"verdict": "DONE", "payload": "codex via MCP"}},
            {"text": "Finished."},
        ]),
    );
    let (rt, _) = dispatch("codex", "gpt-5.5", "MC-3", &rig.env);
    let ev = rig.events("MC-3");
    let signal = one(&ev, "runtime.signaled");
    assert_eq!(signal["data"]["verdict"], "DONE", "{signal}");
    assert_eq!(signal["data"]["runtime_id"], rt.as_str());
    assert_eq!(signal["actor"], json!({"name": "codex", "kind": "agent"}));

    // W.8, for both CLIs: a switch issues a new nonce; the MCP tool signs with it, never with
    // the old one. Then a replacing dispatch ends the runtime: its token, and so its MCP
    // server, is refused, and nothing is recorded.
    for (ticket, agent) in [("MC-4", "claude"), ("MC-5", "codex")] {
        rig.open(ticket);
        let d = rig.post(
            &format!("/v1/tickets/{ticket}/dispatch"),
            &json!({"dispatch_key": "w8", "agent": agent, "transport": "process"}),
        );
        assert_eq!(d.status, 201, "{}", d.body);
        let d = d.json();
        let (rt, token, first) = (
            d["runtime_id"].as_str().unwrap().to_owned(),
            d["runtime_token"].as_str().unwrap().to_owned(),
            d["nonce"].as_str().unwrap().to_owned(),
        );
        let s = rig.post(
            &format!("/v1/runtimes/{rt}/switch"),
            &json!({"model": "another-model"}),
        );
        assert_eq!(s.status, 201, "{}", s.body);
        let switched = s.json()["nonce"].as_str().unwrap().to_owned();
        assert_ne!(switched, first);
        script(
            &rig.script,
            json!([
                {"tool": "signal", "input": {"verdict": "REVIEW", "payload": "after the switch"}},
                {"text": "Over to review."},
            ]),
        );
        rig.agent_with_mcp(agent, &rt, &token);
        let ev = rig.events(ticket);
        let signal = one(&ev, "runtime.signaled");
        assert_eq!(
            signal["data"]["nonce"],
            switched.as_str(),
            "{agent}: the switch's nonce"
        );
        assert!(
            !types(&ev).contains(&"runtime.signal_rejected".to_owned()),
            "{agent}: no stale nonce sent: {:?}",
            types(&ev)
        );
        let d = rig.post(
            &format!("/v1/tickets/{ticket}/dispatch"),
            &json!({"dispatch_key": "w8-2", "agent": agent, "transport": "process", "replace": true}),
        );
        assert_eq!(d.status, 201, "{}", d.body);
        let before = rig.events(ticket).len();
        let out = rig.agent_with_mcp(agent, &rt, &token);
        assert!(
            out.contains("token_expired"),
            "{agent}: the tool answered the API's refusal: {out}"
        );
        assert_eq!(
            rig.events(ticket).len(),
            before,
            "{agent}: nothing recorded"
        );
    }
}

/// `mc-ledger run`'s failure modes (SPEC §19): given the server down, or a dispatch the ledger
/// refuses, then a clear error and nothing started; given an agent binary that is not there, then `runtime.launch_aborted`
/// with the reason and nothing started; given the agent's session killed mid-run, then no
/// harvest, a clear error, the spool flushed, and the runtime not left live (its SessionEnd
/// hook, or the watcher's reap); given the launcher of a process run killed, the run reaps it.
/// While it runs, the agent holds the runtime's token and not the dispatcher's, no command line
/// and no tmux environment holds a token, and the run's files are the owner's only.
#[test]
fn mc_ledger_run_fails_clearly() {
    if !slow() {
        return;
    }
    // Each model call is held 3 s, so the agent is alive when its session is killed.
    let rig = Rig::new("fails", &[("MODEL_DELAY_MS", "3000".to_owned())]);
    let socket = rig._tmux.0.clone();
    rig.open("MC-1");
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let mut down = rig.env.clone();
    down.retain(|(k, _)| *k != "MC_LEDGER_SERVER");
    down.push(("MC_LEDGER_SERVER", "http://127.0.0.1:9".to_owned()));
    let out = mc_run("claude", "claude-sonnet-4-5", "MC-1", &down, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was started") && stderr(&out).contains("127.0.0.1:9"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sessions(&socket), ["keep"], "no session started");
    assert_eq!(types(&rig.events("MC-1")), ["ticket.opened"]);

    // A dispatch the ledger refuses (a pool that does not exist): nothing started either.
    let out = mc_run(
        "claude",
        "claude-sonnet-4-5",
        "MC-1",
        &rig.env,
        &["--pool", "gpu"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was started: the dispatch answered 404 pool_not_found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sessions(&socket), ["keep"], "no session started");
    assert_eq!(types(&rig.events("MC-1")), ["ticket.opened"]);

    let missing = rig.dir.path().join("no-such/claude");
    let missing = missing.to_str().unwrap();
    let out = mc_run(
        "claude",
        "claude-sonnet-4-5",
        "MC-1",
        &rig.env,
        &["--agent-bin", missing],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("agent_missing"), "{}", stderr(&out));
    let ev = rig.events("MC-1");
    let aborted = one(&ev, "runtime.launch_aborted");
    assert_eq!(aborted["data"]["reason"], "agent_missing", "{aborted}");
    assert!(
        aborted["data"]["detail"]
            .as_str()
            .unwrap()
            .contains(missing),
        "{aborted}"
    );
    assert_eq!(sessions(&socket), ["keep"], "no session started");
    let rt = aborted["data"]["runtime_id"].as_str().unwrap();
    assert_eq!(rig.get(&format!("/v1/runtimes/{rt}"))["live"], false);

    rig.open("MC-2");
    let mut run = spawn_run(&rig, "MC-2", &[]);
    wait_until("the agent's session", || {
        sessions(&socket).iter().any(|s| s.starts_with("mc-MC-2-"))
    });
    let session = sessions(&socket)
        .into_iter()
        .find(|s| s.starts_with("mc-MC-2-"))
        .unwrap();
    let rt = live_runtime(&rig, "MC-2");
    // While it runs: the agent has the runtime's token and not the dispatcher's, and neither
    // the tmux server nor any command line holds either; the run's files are the owner's.
    let agent = agent_process(&rt);
    let environ = std::fs::read(format!("/proc/{agent}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    let runtime_token = environ
        .split('\0')
        .find_map(|v| v.strip_prefix("MC_LEDGER_TOKEN="))
        .expect("the runtime's token")
        .to_owned();
    assert!(runtime_token.starts_with("mcr_"), "the runtime's token");
    assert!(!environ.contains(&rig.orchestrator), "not the dispatcher's");
    let global = Command::new("tmux")
        .args(["-L", &socket, "show-environment", "-g"])
        .output()
        .unwrap();
    let global = String::from_utf8_lossy(&global.stdout);
    assert!(!global.contains("MC_LEDGER_TOKEN"), "{global}");
    assert!(!global.contains("ANTHROPIC_API_KEY"), "{global}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains("mcr_"),
                "a token on a command line: {cmdline}"
            );
            assert!(!cmdline.contains(&rig.orchestrator), "{cmdline}");
        }
    }
    let run_dir = workdir(&rig.env).join(".mc-ledger").join(&rt);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run_dir), 0o700);
    for file in [
        "run.sh",
        "settings.json",
        "mcp.json",
        "out.jsonl",
        "err.txt",
    ] {
        assert_eq!(mode(&run_dir.join(file)), 0o600, "{file}");
    }
    // A hook the server cannot take now (it is stopped) waits in the spool; the run delivers it.
    let spool = rig.dir.path().join("spool");
    let pid = rig.server.child.id().to_string();
    run_ok(Command::new("kill").args(["-STOP", &pid]));
    let mut hook = Command::new(env!("CARGO_BIN_EXE_mc-ledger"));
    hook.args(["hook", "claude"])
        .envs(rig.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MC_LEDGER_RUNTIME", &rt)
        .env("MC_LEDGER_TOKEN", &runtime_token);
    output_with_stdin(
        hook,
        br#"{"hook_event_name": "Stop", "last_assistant_message": "QUESTION: which lock first?"}"#,
    );
    run_ok(Command::new("kill").args(["-CONT", &pid]));
    let waiting = spooled(&spool);
    assert_eq!(waiting.len(), 1, "spooled while the server was stopped");
    run_ok(Command::new("tmux").args(["-L", &socket, "kill-session", "-t", &session]));
    let status = run.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("without an exit status"), "{err}");
    let ev = rig.events("MC-2");
    assert!(
        !types(&ev).contains(&"runtime.harvested".to_owned()),
        "{:?}",
        types(&ev)
    );
    // Delivered by the run's flush (a hook the dying agent runs after it may still be on its
    // way).
    assert!(
        !spooled(&spool).contains(&waiting[0]),
        "the spool is flushed"
    );
    assert_eq!(one(&ev, "runtime.signaled")["data"]["verdict"], "QUESTION");
    // The watcher sees the session gone and reaps the runtime.
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
            .args(["watch", "--once", "--server", &url_of(&rig.server)])
            .args(["--tmux-socket-name", &socket])
            .env("MC_LEDGER_TOKEN", &rig.orchestrator),
    );
    // Killed by its session's end, Claude Code may still run its SessionEnd hook (the runtime
    // then ended itself); else the watcher reaps it. Either way it is not left live.
    let ev = rig.events("MC-2");
    let kinds = types(&ev);
    if !kinds.contains(&"runtime.session_ended".to_owned()) {
        let reaped = one(&ev, "runtime.reaped");
        assert_eq!(reaped["data"]["cause"], "tmux_missing", "{reaped}");
    }
    let ticket = rig.get("/v1/tickets/MC-2");
    assert!(ticket["current_runtime"]["live"] == false, "{ticket}");

    // `--transport process`: the launcher killed before the agent's exit status: no watcher
    // knows that process, so the run reaps the runtime itself.
    rig.open("MC-3");
    let mut run = spawn_run(&rig, "MC-3", &["--transport", "process"]);
    let rt = live_runtime(&rig, "MC-3");
    let agent = agent_process(&rt);
    let launcher = std::fs::read_to_string(format!("/proc/{agent}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    run_ok(Command::new("kill").args(["-KILL", &launcher, &agent.to_string()]));
    let status = run.0.wait().unwrap();
    assert!(!status.success());
    let ev = rig.events("MC-3");
    let reaped = one(&ev, "runtime.reaped");
    assert_eq!(reaped["data"]["cause"], "process_dead", "{reaped}");
    assert_eq!(rig.get(&format!("/v1/runtimes/{rt}"))["live"], false);

    // Ctrl-C on a process run: the run stops the agent and records the runtime as killed,
    // with the reason, rather than dying and leaving it live.
    rig.open("MC-4");
    let mut run = spawn_run(&rig, "MC-4", &["--transport", "process"]);
    let rt = live_runtime(&rig, "MC-4");
    let agent = agent_process(&rt);
    run_ok(Command::new("kill").args(["-INT", &run.0.id().to_string()]));
    let status = run.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("interrupted: the agent was stopped"), "{err}");
    // (gone, or a zombie where PID 1 does not reap orphans)
    wait_until("the agent's process gone", || {
        std::fs::read_to_string(format!("/proc/{agent}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    });
    let ev = rig.events("MC-4");
    let killed = one(&ev, "runtime.killed");
    assert!(
        killed["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{killed}"
    );
    assert_eq!(rig.get(&format!("/v1/runtimes/{rt}"))["live"], false);
}
