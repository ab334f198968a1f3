//! The real agent CLIs, end to end (issue 13): Claude Code and Codex from npm
//! (`scripts/install-agents.sh`, which `scripts/test.sh` runs with the slow tests) against the
//! scripted model API of `tests/agents/model-api.mjs` on loopback, each started by
//! `mc-ledger run` (SPEC §19) in a real tmux session with its hooks (`settings.json`) or its
//! `notify` wired to `mc-ledger hook …`, and harvested at exit. What lands in the ledger is
//! checked: the signal from the hook, the session's end, the harvest and its cost. Behind
//! `MC_LEDGER_SLOW_TESTS=1` (CI sets it).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const REPLY: &str = "The fix is in.\nREVIEW: patched the launcher, tests pass";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The scripted model API, killed when dropped.
struct ModelApi {
    child: std::process::Child,
    url: String,
}

impl ModelApi {
    fn start() -> ModelApi {
        ModelApi::start_with(&[])
    }

    /// With further settings of the mock (`MODEL_SCRIPT_FILE`, `MODEL_DELAY_MS`, …).
    fn start_with(settings: &[(&str, String)]) -> ModelApi {
        let mut child = Command::new("node")
            .arg(repo().join("tests/agents/model-api.mjs"))
            .args(["0", REPLY])
            // Fixed counts, so the cost is exact: 1200 in, 8 out, 3000 cache reads, 500 writes.
            .env("MODEL_INPUT_TOKENS", "1200")
            .env("MODEL_OUTPUT_TOKENS", "8")
            .env("MODEL_CACHE_READ_TOKENS", "3000")
            .env("MODEL_CACHE_CREATION_TOKENS", "500")
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (scripts/install-agents.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .expect(&line)
            .to_owned();
        ModelApi {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ModelApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn events(addr: std::net::SocketAddr, ticket: &str) -> Vec<Value> {
    get(addr, &format!("/v1/tickets/{ticket}/events")).json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `mc-ledger run AGENT TICKET PROMPT` (SPEC §19) in a tmux session; returns the runtime
/// id and its output.
fn dispatch(agent: &str, model: &str, ticket: &str, env: &[(&str, String)]) -> (String, String) {
    dispatch_with(agent, model, ticket, env, &[])
}

/// The working directory the agents run in: `WORKDIR` of the test's environment.
fn workdir(env: &[(&str, String)]) -> PathBuf {
    env.iter()
        .find(|(k, _)| *k == "WORKDIR")
        .map(|(_, v)| PathBuf::from(v))
        .expect("WORKDIR in the test's environment")
}

fn dispatch_with(
    agent: &str,
    model: &str,
    ticket: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> (String, String) {
    let out = mc_run(agent, model, ticket, env, extra);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{agent}: {stdout}{stderr}");
    let rt = stdout
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("runtime line")
        .to_owned();
    assert!(
        stdout.contains(&format!("/tickets/{ticket}")),
        "run prints the console URL: {stdout}"
    );
    (rt, stdout)
}

/// `mc-ledger run` with the test's environment (the agents' variables, the server, the tmux
/// socket, the working directory), as a dispatcher with no token would run it.
fn mc_run(
    agent: &str,
    model: &str,
    ticket: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["run", agent, ticket, "Fix the launcher", "--model", model])
        .args(extra)
        .current_dir(workdir(env))
        .env_remove("TMUX")
        .env_remove("MC_LEDGER_TOKEN")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bin(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} missing: scripts/test.sh installs the agents with the slow tests (scripts/install-agents.sh)",
        path.display()
    );
    path
}

/// The agents' binaries (`scripts/install-agents.sh` installs them with the slow tests).
fn agents_bin() -> PathBuf {
    let agents = std::env::var_os("MC_LEDGER_AGENTS_DIR")
        .map_or_else(|| repo().join("target/agents"), PathBuf::from);
    // Both in the same `node_modules/.bin`, which goes first on `mc-ledger run`'s PATH.
    bin(&agents, "codex");
    bin(&agents, "claude").parent().unwrap().to_owned()
}

fn url_of(server: &Child) -> String {
    format!("http://{}", server.addr)
}

/// The environment the agents run in, under `dir`: a throwaway HOME and CODEX_HOME pointed at
/// the mock, a working directory, the tmux socket (a long-lived session holds its server up
/// between the agents' sessions) and the server.
fn agent_env(dir: &Path, api: &ModelApi, tmux: &Tmux, url: &str) -> Vec<(&'static str, String)> {
    let keep = Command::new("tmux")
        .env_remove("TMUX")
        .args([
            "-L",
            &tmux.0,
            "new-session",
            "-d",
            "-s",
            "keep",
            "sleep 600",
        ])
        .output()
        .unwrap();
    assert!(keep.status.success());
    let home = dir.join("home");
    let codex_home = dir.join("codex-home");
    let work = dir.join("work");
    for d in [&home, &codex_home, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"gpt-5.5\"\nmodel_provider = \"mock\"\n\n[model_providers.mock]\nname = \"Mock\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"OPENAI_API_KEY\"\n\n[features]\nplugins = false\n\n[analytics]\nenabled = false\n",
            api.url
        ),
    )
    .unwrap();
    vec![
        ("MC_LEDGER_SERVER", url.to_owned()),
        ("MC_LEDGER_SPOOL", dir.join("spool").display().to_string()),
        ("TMUX_SOCKET_NAME", tmux.0.clone()),
        ("WORKDIR", work.display().to_string()),
        (
            "PATH",
            format!(
                "{}:{}",
                agents_bin().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("HOME", home.display().to_string()),
        (
            "CLAUDE_CONFIG_DIR",
            home.join(".claude").display().to_string(),
        ),
        ("ANTHROPIC_BASE_URL", api.url.clone()),
        ("ANTHROPIC_API_KEY", "sk-ant-mock".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("CLAUDE_CODE_SESSIONEND_HOOKS_TIMEOUT_MS", "5000".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("CODEX_HOME", codex_home.display().to_string()),
        ("OPENAI_API_KEY", "mock".to_owned()),
    ]
}

#[test]
fn claude_code_and_codex_report_to_the_ledger_through_their_hooks() {
    if std::env::var_os("MC_LEDGER_SLOW_TESTS").is_none() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (runs the real Claude Code and Codex CLIs)");
        return;
    }
    let claude = agents_bin().join("claude");
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary(&dir.path().join("data"));
    let api = ModelApi::start();
    let tmux = Tmux(format!("mc-ledger-agents-{}", std::process::id()));
    let env = agent_env(dir.path(), &api, &tmux, &url_of(&server));
    for t in ["MC-1", "MC-2"] {
        let r = post(
            server.addr,
            "/v1/tickets",
            &json!({"id": t, "title": "launcher fix", "owner": "luci", "actor": {"name": "luci", "kind": "orchestrator"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    // Claude Code: Stop carries the signal, SessionEnd ends the session, the stream is harvested.
    let (rt, stdout) = dispatch("claude", "claude-sonnet-4-5", "MC-1", &env);
    assert!(
        stdout.contains("201 appended runtime.harvested completed/success, runtime.usage_recorded"),
        "{stdout}"
    );
    let ev = events(server.addr, "MC-1");
    let kinds = types(&ev);
    for kind in [
        "runtime.dispatched",
        "runtime.signaled",
        "runtime.session_ended",
        "runtime.harvested",
        "runtime.usage_recorded",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    let signal = ev.iter().find(|e| e["type"] == "runtime.signaled").unwrap();
    assert_eq!(signal["data"]["verdict"], "REVIEW");
    assert_eq!(signal["actor"], json!({"name": "claude", "kind": "agent"}));
    let ended = ev
        .iter()
        .find(|e| e["type"] == "runtime.session_ended")
        .unwrap();
    assert_eq!(ended["data"]["reason"], "other");
    let usage = ev
        .iter()
        .find(|e| e["type"] == "runtime.usage_recorded")
        .unwrap();
    let model = &usage["data"]["models"][0];
    assert_eq!(model["model"], "claude-sonnet-4-5", "{usage}");
    assert_eq!(model["cached_input_tokens"], 3000, "{usage}");
    let t = get(server.addr, "/v1/tickets/MC-1").json();
    assert_eq!(t["state"], "review", "{t}");
    assert_eq!(t["failure_reason"], Value::Null, "the hand-off rule: {t}");
    assert_eq!(t["cost"]["runtimes"], 1, "{t}");
    // Sonnet's prices: 1200 in at $3/M, 8 out at $15/M, 3000 cache reads at 0.1x, 500 writes
    // at 1.25x, as Claude Code itself computed them.
    assert_eq!(t["cost"]["usd"], 0.006495, "{t}");
    assert_eq!(t["cost"]["output_tokens"], 8, "{t}");
    assert_eq!(t["current_runtime"]["id"], rt.as_str());

    // Codex: notify (after the turn, without waiting) carries the signal; the JSONL is harvested.
    let (rt, stdout) = dispatch("codex", "gpt-5.5", "MC-2", &env);
    assert!(
        stdout.contains("201 appended runtime.harvested completed/success, runtime.usage_recorded"),
        "{stdout}"
    );
    wait_until("codex's notify", || {
        types(&events(server.addr, "MC-2")).contains(&"runtime.signaled".to_owned())
    });
    let ev = events(server.addr, "MC-2");
    let signal = ev.iter().find(|e| e["type"] == "runtime.signaled").unwrap();
    assert_eq!(signal["data"]["verdict"], "REVIEW");
    assert_eq!(signal["data"]["runtime_id"], rt.as_str());
    let t = get(server.addr, "/v1/tickets/MC-2").json();
    assert_eq!(t["state"], "review", "{t}");
    assert_eq!(
        t["cost"]["usd"],
        Value::Null,
        "Codex reports no dollars: {t}"
    );
    assert!(t["cost"]["input_tokens"].as_u64().unwrap() >= 1200, "{t}");

    let by_agent = get(server.addr, "/v1/costs?group_by=agent").json();
    let keys: Vec<&str> = by_agent["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["key"].as_str())
        .collect();
    assert_eq!(keys, ["claude", "codex"], "{by_agent}");
    let by_model = get(server.addr, "/v1/costs?group_by=model").json();
    let keys: Vec<&str> = by_model["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["claude-sonnet-4-5", "gpt-5.5"],
        "Claude names its model; Codex's is the dispatch's: {by_model}"
    );

    // SPEC §16: a reservation reaches Claude Code as --max-budget-usd; the run stops on it
    // (`error_max_budget_usd`), is harvested as partial/max_budget, and its spend lands in the
    // budget covering the ticket.
    let r = post(
        server.addr,
        "/v1/budgets",
        &json!({"name": "mc-4", "scope": {"kind": "ticket", "value": "MC-4"}, "limit_usd": 1.0,
                "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        server.addr,
        "/v1/tickets",
        &json!({"id": "MC-4", "title": "a capped run", "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let (rt, stdout) = dispatch_with(
        "claude",
        "claude-sonnet-4-5",
        "MC-4",
        &env,
        &["--max-budget-usd", "0.0001"],
    );
    assert!(
        stdout.contains("201 appended runtime.harvested partial/max_budget"),
        "{stdout}"
    );
    let runtime = get(server.addr, &format!("/v1/runtimes/{rt}")).json();
    assert_eq!(runtime["max_budget_usd"], 0.0001, "{runtime}");
    assert_eq!(runtime["exit"]["exit_reason"], "max_budget", "{runtime}");
    let budget = get(server.addr, "/v1/budgets/mc-4").json();
    assert_eq!(
        (
            budget["spent_usd"].as_f64(),
            budget["reserved_usd"].as_f64()
        ),
        (Some(0.006495), Some(0.0)),
        "Claude Code's own cost of the turn it stopped after: {budget}"
    );

    // SPEC §17: the real Claude Code CLI's Stop and SessionEnd hooks while the server is
    // stopped are spooled, and after it starts `hook flush` records each exactly once.
    let r = post(
        server.addr,
        "/v1/tickets",
        &json!({"id": "MC-3", "title": "hooks while down", "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        server.addr,
        "/v1/tickets/MC-3/dispatch",
        &json!({"dispatch_key": "down", "agent": "claude", "transport": "tmux", "tmux_target": "mc-3",
                "actor": {"name": "luci", "kind": "orchestrator"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let rt = r.json()["runtime_id"].as_str().unwrap().to_owned();
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    let spool = dir.path().join("spool");
    let settings = dir.path().join("hooks.json");
    let hook = json!([{"hooks": [{"type": "command",
        "command": format!("{} hook claude", env!("CARGO_BIN_EXE_mc-ledger"))}]}]);
    std::fs::write(
        &settings,
        json!({"hooks": {"Stop": hook, "SessionEnd": hook}}).to_string(),
    )
    .unwrap();
    run_ok(
        Command::new(&claude)
            .args(["-p", "Fix the launcher", "--model", "claude-sonnet-4-5"])
            .args(["--output-format", "json", "--settings"])
            .arg(&settings)
            .current_dir(workdir(&env))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("MC_LEDGER_RUNTIME", &rt)
            .env("MC_LEDGER_SPOOL", &spool)
            .env_remove("MC_LEDGER_TOKEN")
            .stdin(Stdio::null()),
    );
    let waiting: Vec<String> = spooled(&spool)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        waiting.iter().any(|w| w.contains("\\\"Stop\\\""))
            && waiting.iter().any(|w| w.contains("\\\"SessionEnd\\\"")),
        "Stop and SessionEnd spooled: {waiting:?}"
    );
    let mut server = spawn_binary(&dir.path().join("data"));
    let flush = |url: &str| {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
                .args(["hook", "flush", "--server", url])
                .env("MC_LEDGER_SPOOL", &spool)
                .env_remove("MC_LEDGER_TOKEN"),
        )
    };
    let url = format!("http://{}", server.addr);
    flush(&url);
    let again = flush(&url);
    assert!(String::from_utf8_lossy(&again.stdout).contains("delivered 0 hook(s)"));
    let kinds = types(&events(server.addr, "MC-3"));
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("runtime.signaled"), 1, "{kinds:?}");
    assert_eq!(count("runtime.session_ended"), 1, "{kinds:?}");
    assert_eq!(
        get(server.addr, "/v1/tickets/MC-3").json()["state"],
        "review"
    );
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

/// Writes the mock's script (re-read on every model call).
fn script(path: &Path, steps: Value) {
    std::fs::write(path, steps.to_string()).unwrap();
}

fn slow() -> bool {
    if std::env::var_os("MC_LEDGER_SLOW_TESTS").is_none() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (runs the real Claude Code and Codex CLIs)");
        return false;
    }
    true
}

/// A server with tokens, the mock following a script file, a tmux socket, and the dispatcher's
/// (orchestrator) token in the agents' environment as `mc-ledger run` would have it.
struct Rig {
    dir: tempfile::TempDir,
    server: Child,
    api: ModelApi,
    _tmux: Tmux,
    env: Vec<(&'static str, String)>,
    script: PathBuf,
    orchestrator: String,
}

impl Rig {
    fn new(name: &str, mock: &[(&str, String)]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let orchestrator = create_token(&data, "orchestrator", "write", "luci");
        let server = spawn_binary(&data);
        let script = dir.path().join("script.json");
        std::fs::write(&script, "[]").unwrap();
        let mut settings = vec![("MODEL_SCRIPT_FILE", script.display().to_string())];
        settings.extend(mock.iter().cloned());
        let api = ModelApi::start_with(&settings);
        let tmux = Tmux(format!("mc-ledger-{name}-{}", std::process::id()));
        let mut env = agent_env(dir.path(), &api, &tmux, &url_of(&server));
        env.push(("MC_LEDGER_TOKEN", orchestrator.clone()));
        Rig {
            dir,
            server,
            api,
            _tmux: tmux,
            env,
            script,
            orchestrator,
        }
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        post_with_token(self.server.addr, path, body, &self.orchestrator)
    }

    fn get(&self, path: &str) -> Value {
        let r = request(
            self.server.addr,
            "GET",
            path,
            None,
            Some(&self.orchestrator),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    fn open(&self, ticket: &str) {
        let r = self.post(
            "/v1/tickets",
            &json!({"id": ticket, "title": "launcher fix"}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    fn events(&self, ticket: &str) -> Vec<Value> {
        self.get(&format!("/v1/tickets/{ticket}/events"))["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Runs the real agent on its own (not through `mc-ledger run`) with `mc-ledger mcp` as its
    /// MCP server for `runtime` with that runtime's token; returns its JSON output.
    fn agent_with_mcp(&self, agent: &str, runtime: &str, token: &str) -> String {
        let mc = env!("CARGO_BIN_EXE_mc-ledger");
        let url = url_of(&self.server);
        let mut command = Command::new(agents_bin().join(agent));
        if agent == "claude" {
            let config = self.dir.path().join(format!("{runtime}.mcp.json"));
            let mcp = json!({"mcpServers": {"mc-ledger": {"command": mc, "args": ["mcp"]}}});
            std::fs::write(&config, mcp.to_string()).unwrap();
            command
                .args(["-p", "Fix the launcher", "--model", "claude-sonnet-4-5"])
                .args(["--output-format", "stream-json", "--verbose"])
                .arg("--mcp-config")
                .arg(&config)
                .args(["--strict-mcp-config", "--allowedTools", "mcp__mc-ledger"])
                .env("ENABLE_TOOL_SEARCH", "false");
        } else {
            // The server copies the runtime's variables from Codex's environment (never a
            // token on a command line).
            let server = format!(
                "mcp_servers.mc-ledger={{command={mc:?},args=[\"mcp\"],\
                 env_vars=[\"MC_LEDGER_SERVER\",\"MC_LEDGER_RUNTIME\",\"MC_LEDGER_TOKEN\"],\
                 default_tools_approval_mode=\"approve\"}}"
            );
            command
                .args(["exec", "--json", "--skip-git-repo-check", "-c", &server])
                .arg("Fix the launcher");
        }
        let out = run_ok(
            command
                .current_dir(workdir(&self.env))
                .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("MC_LEDGER_SERVER", url)
                .env("MC_LEDGER_RUNTIME", runtime)
                .env("MC_LEDGER_TOKEN", token)
                .stdin(Stdio::null()),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.api.child.kill();
    }
}

fn one<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["type"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {:?}", types(events));
    found[0]
}

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

/// The sessions on the rig's tmux socket.
fn sessions(socket: &str) -> Vec<String> {
    let out = Command::new("tmux")
        .args(["-L", socket, "list-sessions", "-F", "#{session_name}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A process this test started, killed on every path.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
}

/// `mc-ledger run claude TICKET` in the background, with the rig's environment.
fn spawn_run(rig: &Rig, ticket: &str, extra: &[&str]) -> Guard {
    let started = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["run", "claude", ticket, "Fix the launcher"])
        .args(extra)
        .current_dir(workdir(&rig.env))
        .env_remove("TMUX")
        .envs(rig.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(started)
}

/// The ticket's live runtime, once there is one.
fn live_runtime(rig: &Rig, ticket: &str) -> String {
    let mut found = None;
    wait_until("a live runtime", || {
        found = rig.get(&format!("/v1/tickets/{ticket}"))["current_runtime"]["id"]
            .as_str()
            .map(str::to_owned);
        found.is_some()
    });
    found.unwrap()
}

/// The agent's process: the one whose command line names the run's directory and is the
/// agent's binary (not the launcher's shell), once it runs.
fn agent_process(runtime: &str) -> u32 {
    let mut found = None;
    wait_until("the agent's process", || {
        found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            let first = cmdline.split('\0').next()?;
            (first.ends_with("/claude") && cmdline.contains(runtime)).then_some(pid)
        });
        found.is_some()
    });
    found.unwrap()
}
