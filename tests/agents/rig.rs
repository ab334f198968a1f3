//! What the real-agent tests share (`tests/agents_real.rs`, `tests/agents_mcp.rs`): the scripted
//! model API (`tests/agents/model-api.mjs`) as a process, a tmux socket, the agents'
//! environment, `mc-ledger run` as a dispatcher runs it, and a rig with a server with tokens.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

pub const REPLY: &str = "The fix is in.\nREVIEW: patched the launcher, tests pass";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The scripted model API, killed when dropped.
pub struct ModelApi {
    pub child: std::process::Child,
    pub url: String,
}

impl ModelApi {
    pub fn start() -> ModelApi {
        ModelApi::start_with(&[])
    }

    /// With further settings of the mock (`MODEL_SCRIPT_FILE`, `MODEL_DELAY_MS`, …).
    pub fn start_with(settings: &[(&str, String)]) -> ModelApi {
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

pub struct Tmux(pub String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

pub fn events(addr: std::net::SocketAddr, ticket: &str) -> Vec<Value> {
    get(addr, &format!("/v1/tickets/{ticket}/events")).json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `mc-ledger run AGENT TICKET PROMPT` (SPEC §19) in a tmux session; returns the runtime
/// id and its output.
pub fn dispatch(
    agent: &str,
    model: &str,
    ticket: &str,
    env: &[(&str, String)],
) -> (String, String) {
    dispatch_with(agent, model, ticket, env, &[])
}

/// The working directory the agents run in: `WORKDIR` of the test's environment.
pub fn workdir(env: &[(&str, String)]) -> PathBuf {
    env.iter()
        .find(|(k, _)| *k == "WORKDIR")
        .map(|(_, v)| PathBuf::from(v))
        .expect("WORKDIR in the test's environment")
}

pub fn dispatch_with(
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
pub fn mc_run(
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

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn bin(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} missing: scripts/test.sh installs the agents with the slow tests (scripts/install-agents.sh)",
        path.display()
    );
    path
}

/// The agents' binaries (`scripts/install-agents.sh` installs them with the slow tests).
pub fn agents_bin() -> PathBuf {
    let agents = std::env::var_os("MC_LEDGER_AGENTS_DIR")
        .map_or_else(|| repo().join("target/agents"), PathBuf::from);
    // Both in the same `node_modules/.bin`, which goes first on `mc-ledger run`'s PATH.
    bin(&agents, "codex");
    bin(&agents, "claude").parent().unwrap().to_owned()
}

pub fn url_of(server: &Child) -> String {
    format!("http://{}", server.addr)
}

/// The environment the agents run in, under `dir`: a throwaway HOME and CODEX_HOME pointed at
/// the mock, a working directory, the tmux socket (a long-lived session holds its server up
/// between the agents' sessions) and the server.
pub fn agent_env(
    dir: &Path,
    api: &ModelApi,
    tmux: &Tmux,
    url: &str,
) -> Vec<(&'static str, String)> {
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

/// Writes the mock's script (re-read on every model call).
pub fn script(path: &Path, steps: Value) {
    std::fs::write(path, steps.to_string()).unwrap();
}

pub fn slow() -> bool {
    if std::env::var_os("MC_LEDGER_SLOW_TESTS").is_none() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (runs the real Claude Code and Codex CLIs)");
        return false;
    }
    true
}

/// A server with tokens, the mock following a script file, a tmux socket, and the dispatcher's
/// (orchestrator) token in the agents' environment as `mc-ledger run` would have it.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub server: Child,
    pub api: ModelApi,
    pub _tmux: Tmux,
    pub env: Vec<(&'static str, String)>,
    pub script: PathBuf,
    pub orchestrator: String,
}

impl Rig {
    pub fn new(name: &str, mock: &[(&str, String)]) -> Rig {
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

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        post_with_token(self.server.addr, path, body, &self.orchestrator)
    }

    pub fn get(&self, path: &str) -> Value {
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

    pub fn open(&self, ticket: &str) {
        let r = self.post(
            "/v1/tickets",
            &json!({"id": ticket, "title": "launcher fix"}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    pub fn events(&self, ticket: &str) -> Vec<Value> {
        self.get(&format!("/v1/tickets/{ticket}/events"))["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Runs the real agent on its own (not through `mc-ledger run`) with `mc-ledger mcp` as its
    /// MCP server for `runtime` with that runtime's token; returns its JSON output.
    pub fn agent_with_mcp(&self, agent: &str, runtime: &str, token: &str) -> String {
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

pub fn one<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["type"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {:?}", types(events));
    found[0]
}

/// The sessions on the rig's tmux socket.
pub fn sessions(socket: &str) -> Vec<String> {
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
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mc-ledger run claude TICKET` in the background, with the rig's environment.
pub fn spawn_run(rig: &Rig, ticket: &str, extra: &[&str]) -> Guard {
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
pub fn live_runtime(rig: &Rig, ticket: &str) -> String {
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
pub fn agent_process(runtime: &str) -> u32 {
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
