//! `mc-ledger run claude|codex TICKET PROMPT` (SPEC §19): one agent run wired to the ledger,
//! start to end.
//!
//! 1. Dispatch a runtime on the ticket (with `--pool` and `--max-budget-usd`; a refusal —
//!    `budget_exhausted`, `pool_full`, `runtime_live`, … — or a server that cannot be reached
//!    ends the run before anything is started).
//! 2. Write the run's own directory (`STATE_DIR/<runtime>/`, never the user's global config):
//!    a launcher script, and for Claude Code a settings file with its hooks (Stop,
//!    SubagentStop, Notification, SessionEnd, and PostToolUse of its task tools — TodoWrite,
//!    TaskCreate, TaskUpdate: SPEC §13, §19) and an MCP config naming `mc-ledger mcp`, allowed
//!    with `--allowedTools mcp__mc-ledger`; Codex gets its `notify` and the MCP server as `-c`
//!    overrides (its tools approved, since `codex exec` never asks, and required: a server that
//!    cannot start fails the run rather than leaving the agent without its ledger).
//! 3. Start the agent in a new tmux session (or, with `--transport process`, as a child
//!    process) with the runtime's environment: `MC_LEDGER_SERVER`, `MC_LEDGER_RUNTIME`, the
//!    runtime's own token as `MC_LEDGER_TOKEN` when the server has tokens, the hook spool, and
//!    the variables named by `--pass-env` (by default the agents' own that are set). An agent
//!    binary that cannot be started is recorded as `runtime.launch_aborted` with the reason.
//! 4. Wait for the agent to exit, deliver what the hook spool holds (while the runtime's token
//!    still works), harvest its output with the dispatcher's token, and print where to watch
//!    the ticket in the console. A session that vanished without an exit status (killed) is
//!    not harvested: the watcher reaps it (`tmux_session_missing`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};
use client::Client;
use serde_json::{json, Value};

use crate::helpers::Harvest;

/// Variables handed to the agent by default, when set: what the two CLIs read.
const AGENT_ENV: [&str; 11] = [
    "HOME",
    "PATH",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "CLAUDE_CODE_SESSIONEND_HOOKS_TIMEOUT_MS",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "CODEX_HOME",
    "OPENAI_API_KEY",
];

/// How often the waiter looks for the agent's end.
const POLL: Duration = Duration::from_millis(200);

/// The MCP server's name in the agents' configs (Codex takes letters, digits, `_` and `-`).
const MCP_NAME: &str = "mc-ledger";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The agent: claude or codex.
    #[arg(value_parser = ["claude", "codex"])]
    pub agent: String,
    /// The ticket to work on.
    pub ticket: String,
    /// The prompt (it may start with `-`).
    #[arg(allow_hyphen_values = true)]
    pub prompt: String,
    /// The server, http://host:port (the dispatcher's token in MC_LEDGER_TOKEN).
    #[arg(
        long,
        env = "MC_LEDGER_SERVER",
        default_value = "http://127.0.0.1:7171"
    )]
    pub server: String,
    /// Where the agent runs: a new tmux session, or a child process of this command.
    #[arg(long, value_parser = ["tmux", "process"], default_value = "tmux")]
    pub transport: String,
    /// Start the session on `tmux -L NAME` (the watcher's --tmux-socket-name).
    #[arg(long, env = "TMUX_SOCKET_NAME")]
    pub tmux_socket_name: Option<String>,
    /// The model to ask for (recorded on the dispatch).
    #[arg(long)]
    pub model: Option<String>,
    /// The most the run may spend (SPEC §16); the reservation the ledger makes is passed to
    /// Claude Code as --max-budget-usd (Codex has no such flag).
    #[arg(long)]
    pub max_budget_usd: Option<f64>,
    /// Take a slot of this pool (SPEC §14).
    #[arg(long)]
    pub pool: Option<String>,
    /// The agent's working directory (default: the current one).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Where each run's directory goes (default: WORKDIR/.mc-ledger).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The agent's binary (default: `claude` or `codex` on PATH).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// A further variable to hand to the agent, by name (repeatable).
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// The name recorded as the dispatcher (without a token).
    #[arg(long, default_value = "mc-ledger-run")]
    pub actor: String,
}

/// What a dispatch answered that the run needs.
struct Dispatched {
    runtime: String,
    token: Option<String>,
    reservation: Option<f64>,
}

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let workdir = match &args.workdir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()?,
    };
    let workdir = workdir
        .canonicalize()
        .with_context(|| format!("the working directory {}", workdir.display()))?;
    let mc = std::env::current_exe().context("this binary's path")?;
    let session = format!(
        "mc-{}-{}",
        args.ticket,
        ulid::Ulid::new().to_string().to_lowercase()
    );
    // From here a SIGINT (Ctrl-C) or SIGTERM ends the run through `stop`, not mid-step.
    let interrupted = crate::signals::shutdown_signals()?;
    let d = dispatch(&client, args, &session, &workdir)?;
    tell!("runtime {} session {session}", d.runtime);
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| workdir.join(".mc-ledger"));
    let dir = state.join(&d.runtime);
    let launched = env(args, &d)
        .and_then(|vars| prepare(args, &d, &mc, &dir, &workdir, &vars))
        .and_then(|script| {
            // Interrupted while dispatching: nothing is started.
            if interrupted.try_recv().is_ok() {
                bail!("launch_failed: interrupted (SIGINT or SIGTERM) before the agent started");
            }
            start(args, &session, &workdir, &script)
        });
    let child = match launched {
        Ok(child) => child,
        Err(why) => {
            abort(&client, args, &d.runtime, &why);
            return Err(why.context("the agent did not start; recorded as runtime.launch_aborted"));
        }
    };
    let exited = match wait(args, &session, child, &dir, &interrupted)? {
        Waited::Ended(exited) => exited,
        Waited::Interrupted(child) => return stop(&client, args, &d.runtime, &session, child),
    };
    flush_spool();
    let console = format!(
        "{}/tickets/{}",
        args.server.trim_end_matches('/'),
        args.ticket
    );
    let Some(status) = exited else {
        tell!("watch it at {console}");
        if args.transport == "tmux" {
            bail!(
                "the agent's session ended without an exit status (killed?): not harvested; \
                 the watcher reaps it (tmux_missing)"
            );
        }
        // No watcher can probe a process it was never told the id of: this run reaps it.
        reap(&client, args, &d.runtime);
        bail!("the agent's process ended without an exit status (killed?): not harvested; reaped as process_dead");
    };
    let source = match args.agent.as_str() {
        "claude" => Harvest::Claude(dir.join("out.jsonl")),
        _ => Harvest::Codex(dir.join("out.jsonl")),
    };
    let harvested = crate::helpers::harvest(
        &args.server,
        &d.runtime,
        &source,
        None,
        &args.actor,
        "orchestrator",
    );
    tell!("watch it at {console}");
    harvested.with_context(|| format!("the agent exited with status {status}; harvesting it"))
}

fn dispatch(
    client: &Client,
    args: &RunArgs,
    session: &str,
    workdir: &Path,
) -> anyhow::Result<Dispatched> {
    let mut body = json!({
        "dispatch_key": session,
        "agent": args.agent,
        "transport": args.transport,
        "cwd": workdir.display().to_string(),
        "actor": {"name": args.actor, "kind": "orchestrator"},
    });
    if args.transport == "tmux" {
        body["tmux_target"] = json!(session);
    }
    for (key, value) in [
        ("model", args.model.as_ref().map(|m| json!(m))),
        ("pool", args.pool.as_ref().map(|p| json!(p))),
        ("max_budget_usd", args.max_budget_usd.map(|u| json!(u))),
    ] {
        if let Some(v) = value {
            body[key] = v;
        }
    }
    let path = format!(
        "/v1/tickets/{}/dispatch",
        crate::watch::encode_component(&args.ticket)
    );
    let r = client
        .post(&path, &body)
        .context("nothing was started: the dispatch did not reach the server")?;
    if !(200..300).contains(&r.status) {
        bail!(
            "nothing was started: the dispatch answered {} {}: {}",
            r.status,
            r.body["code"].as_str().unwrap_or("error"),
            r.body["detail"].as_str().unwrap_or("no detail")
        );
    }
    let reservation = r.body["events"].as_array().and_then(|events| {
        events
            .iter()
            .find(|e| e["type"] == "runtime.budgeted")
            .and_then(|e| e["data"]["reservation_usd"].as_f64())
    });
    Ok(Dispatched {
        runtime: r.body["runtime_id"]
            .as_str()
            .context("the dispatch answered no runtime_id")?
            .to_owned(),
        token: r.body["runtime_token"].as_str().map(str::to_owned),
        reservation,
    })
}

/// The runtime's environment for the agent, its hooks and its MCP server.
fn env(args: &RunArgs, d: &Dispatched) -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = vec![
        ("MC_LEDGER_SERVER".to_owned(), args.server.clone()),
        ("MC_LEDGER_RUNTIME".to_owned(), d.runtime.clone()),
    ];
    if let Some(token) = &d.token {
        vars.push(("MC_LEDGER_TOKEN".to_owned(), token.clone()));
    }
    // The agent's hooks spool where this run flushes.
    let spool = crate::spool::Spool::for_user()?;
    vars.push((
        "MC_LEDGER_SPOOL".to_owned(),
        spool.dir().display().to_string(),
    ));
    let names = AGENT_ENV
        .iter()
        .map(|n| (*n).to_owned())
        .chain(args.pass_env.iter().cloned());
    for name in names {
        if vars.iter().any(|(k, _)| *k == name) {
            continue;
        }
        if let Ok(value) = std::env::var(&name) {
            vars.push((name, value));
        }
    }
    Ok(vars)
}

/// Writes the run's directory and returns its launcher script.
fn prepare(
    args: &RunArgs,
    d: &Dispatched,
    mc: &Path,
    dir: &Path,
    workdir: &Path,
    vars: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    let agent = resolve(args)?;
    private_dir(dir)?;
    let mc_str = mc.display().to_string();
    let mut command: Vec<String> = vec![agent.display().to_string()];
    match args.agent.as_str() {
        "claude" => {
            let hook = format!("{} hook claude", shell(&mc_str));
            let h = |matcher: Option<&str>| {
                let mut entry = json!({"hooks": [{"type": "command", "command": hook}]});
                if let Some(m) = matcher {
                    entry["matcher"] = json!(m);
                }
                json!([entry])
            };
            let settings = json!({"hooks": {
                "Stop": h(None),
                "SubagentStop": h(None),
                "Notification": h(None),
                "SessionEnd": h(None),
                "PostToolUse": h(Some("TodoWrite|TaskCreate|TaskUpdate")),
            }});
            // Claude Code hands an MCP server its own environment, which holds the runtime's
            // variables: the config names no secret.
            let mcp = json!({"mcpServers": {MCP_NAME: {
                "type": "stdio",
                "command": mc_str,
                "args": ["mcp"],
            }}});
            private_file(&dir.join("settings.json"), &settings.to_string())?;
            private_file(&dir.join("mcp.json"), &mcp.to_string())?;
            command.extend(
                [
                    "-p",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--settings",
                    &dir.join("settings.json").display().to_string(),
                    "--mcp-config",
                    &dir.join("mcp.json").display().to_string(),
                    "--strict-mcp-config",
                    "--allowedTools",
                    &format!("mcp__{MCP_NAME}"),
                ]
                .map(str::to_owned),
            );
            if let Some(m) = &args.model {
                command.extend(["--model".to_owned(), m.clone()]);
            }
            if let Some(usd) = d.reservation {
                command.extend(["--max-budget-usd".to_owned(), usd.to_string()]);
            }
            command.extend(["--".to_owned(), args.prompt.clone()]);
        }
        _ => {
            // The MCP server copies the runtime's variables from Codex's environment
            // (`env_vars`): a literal `env` table would put the token on Codex's command line.
            let names: Vec<String> = vars
                .iter()
                .filter(|(k, _)| k.starts_with("MC_LEDGER_"))
                .map(|(k, _)| toml_str(k))
                .collect();
            command.extend([
                "exec".to_owned(),
                "--json".to_owned(),
                "--skip-git-repo-check".to_owned(),
                "-c".to_owned(),
                format!("notify=[{},\"hook\",\"codex\"]", toml_str(&mc_str)),
                "-c".to_owned(),
                format!(
                    "mcp_servers.{MCP_NAME}={{command={},args=[\"mcp\"],env_vars=[{}],\
                     default_tools_approval_mode=\"approve\",required=true}}",
                    toml_str(&mc_str),
                    names.join(",")
                ),
            ]);
            if let Some(m) = &args.model {
                command.extend(["-m".to_owned(), m.clone()]);
            }
            command.extend(["--".to_owned(), args.prompt.clone()]);
        }
    }
    let quoted: Vec<String> = command.iter().map(|a| shell(a)).collect();
    let environment: Vec<String> = vars
        .iter()
        .map(|(k, v)| shell(&format!("{k}={v}")))
        .collect();
    let out = dir.join("out.jsonl");
    // The agent's environment is set here (`env -i`), in a 0600 file, not on a command line;
    // what it writes is the owner's only (`umask 077`).
    let script = format!(
        "#!/bin/sh\n# mc-ledger run: {agent} on {ticket}, runtime {rt}\numask 077\n\
         cd {workdir} || exit 127\n\
         env -i {environment} {command} </dev/null >{out} 2>{err}\nstatus=$?\n\
         echo $status >{exit}.tmp && mv {exit}.tmp {exit}\n",
        agent = args.agent,
        ticket = args.ticket,
        rt = d.runtime,
        workdir = shell(&workdir.display().to_string()),
        environment = environment.join(" "),
        command = quoted.join(" "),
        out = shell(&out.display().to_string()),
        err = shell(&dir.join("err.txt").display().to_string()),
        exit = shell(&dir.join("exit").display().to_string()),
    );
    let path = dir.join("run.sh");
    private_file(&path, &script)?;
    Ok(path)
}

/// The agent's binary: `--agent-bin`, else the agent's name on PATH.
fn resolve(args: &RunArgs) -> anyhow::Result<PathBuf> {
    let wanted = args
        .agent_bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.agent));
    let found = if wanted.components().count() > 1 {
        wanted.is_file().then(|| wanted.clone())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(&wanted))
                .find(|p| p.is_file())
        })
    };
    found.with_context(|| {
        format!(
            "agent_missing: the {} binary {} was not found",
            args.agent,
            wanted.display()
        )
    })
}

/// A file only its owner reads (it may hold the runtime's token).
fn private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// A TOML basic string: JSON's escaping, and DEL, which TOML does not allow bare.
fn toml_str(s: &str) -> String {
    Value::String(s.to_owned())
        .to_string()
        .replace('\u{7f}', "\\u007F")
}

/// A directory only its owner may enter (0700), its parents as `create_dir_all` makes them;
/// a `.gitignore` of `*` in the state directory keeps runs out of the agent's repository.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(state) = dir.parent() {
        std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
        let ignore = state.join(".gitignore");
        if !ignore.exists() {
            private_file(
                &ignore,
                "# mc-ledger run's state: never commit it (it holds transcripts)\n*\n",
            )?;
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn shell(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| "''".to_owned(), |q| q.into_owned())
}

/// tmux with only the variables it needs to find its server: a tmux server started here must
/// not hold this process's environment (the dispatcher's token among it) for its sessions.
fn tmux(args: &RunArgs) -> Command {
    let mut command = Command::new("tmux");
    command.env_clear();
    for name in ["PATH", "HOME", "TMUX_TMPDIR", "TERM", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Some(name) = &args.tmux_socket_name {
        command.args(["-L", name]);
    }
    command
}

/// Starts the launcher: in a new detached tmux session, or as a child process. Neither gets
/// this process's environment (the launcher sets the agent's own with `env -i`), and no
/// variable goes on a command line, where `ps` would show it.
fn start(
    args: &RunArgs,
    session: &str,
    workdir: &Path,
    script: &Path,
) -> anyhow::Result<Option<std::process::Child>> {
    if args.transport == "process" {
        use std::os::unix::process::CommandExt;
        // A process group of its own: the run decides what a Ctrl-C does to it (`stop`).
        let child = Command::new("/bin/sh")
            .arg(script)
            .current_dir(workdir)
            .process_group(0)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("launch_failed: cannot start /bin/sh")?;
        return Ok(Some(child));
    }
    let mut command = tmux(args);
    command.args(["new-session", "-d", "-s", session, "-c"]);
    command.arg(workdir);
    command.arg(format!("/bin/sh {}", shell(&script.display().to_string())));
    let out = command
        .output()
        .context("launch_failed: cannot run tmux (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "launch_failed: tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(None)
}

/// Delivers the hooks the server could not take in time, first, while the runtime's token
/// holds.
fn flush_spool() {
    match crate::spool::Spool::for_user().and_then(|s| s.flush(None, None, true)) {
        Ok(f) if f.left > 0 => eprintln!(
            "mc-ledger run: {} hook(s) still spooled (deliver them with `mc-ledger hook flush`)",
            f.left
        ),
        Ok(_) => {}
        Err(e) => eprintln!("mc-ledger run: the hook spool: {e:#}"),
    }
}

/// How the wait ended.
enum Waited {
    /// The agent ended: its exit status, or `None` when it ended without one (the session or
    /// the launcher was killed).
    Ended(Option<i32>),
    /// The run got SIGINT or SIGTERM first (with the process run's launcher, still running).
    Interrupted(Option<std::process::Child>),
}

/// Waits for the agent's end, or for the run to be interrupted.
fn wait(
    args: &RunArgs,
    session: &str,
    child: Option<std::process::Child>,
    dir: &Path,
    interrupted: &mpsc::Receiver<()>,
) -> anyhow::Result<Waited> {
    let exit_file = dir.join("exit");
    let status = || -> Option<i32> {
        std::fs::read_to_string(&exit_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    if let Some(mut child) = child {
        loop {
            if child.try_wait().context("waiting for the agent")?.is_some() {
                return Ok(Waited::Ended(status()));
            }
            if interrupted.try_recv().is_ok() {
                return Ok(Waited::Interrupted(Some(child)));
            }
            std::thread::sleep(POLL);
        }
    }
    loop {
        if let Some(s) = status() {
            return Ok(Waited::Ended(Some(s)));
        }
        if interrupted.try_recv().is_ok() {
            return Ok(Waited::Interrupted(None));
        }
        let alive = tmux(args)
            .args(["has-session", "-t", &format!("={session}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !alive {
            return Ok(Waited::Ended(status()));
        }
        std::thread::sleep(POLL);
    }
}

/// The run was interrupted. A process run's runtime is recorded as killed, with the reason,
/// and its agent stopped (SIGTERM to its process group, SIGKILL after 5 s); a tmux run's agent
/// goes on in its session (that is what a session is for): the run says how to reach it, and
/// its SessionEnd hook or the watcher ends the runtime.
fn stop(
    client: &Client,
    args: &RunArgs,
    runtime: &str,
    session: &str,
    child: Option<std::process::Child>,
) -> anyhow::Result<()> {
    let Some(mut child) = child else {
        bail!(
            "interrupted: stopped waiting; the agent goes on in tmux session {session} \
             (`tmux{} attach -t {session}`); its SessionEnd hook or the watcher ends runtime \
             {runtime}",
            args.tmux_socket_name
                .as_ref()
                .map(|s| format!(" -L {s}"))
                .unwrap_or_default()
        );
    };
    // Recorded first: the interruption is why the runtime ends, and an agent that ends
    // gracefully (Claude Code runs its SessionEnd hook on SIGTERM) would otherwise record an
    // ordinary end before it.
    flush_spool();
    let body = json!({
        "reason": "interrupted: mc-ledger run got SIGINT or SIGTERM and stopped the agent",
        "actor": {"name": args.actor, "kind": "orchestrator"},
    });
    report(client, runtime, "kill", &body);
    use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
    let group = Pid::from_child(&child);
    let _ = kill_process_group(group, Signal::TERM);
    // The launcher's shell ends at once; the agent it waits for may not: watch the group.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let _ = child.try_wait();
        if test_kill_process_group(group).is_err() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let _ = kill_process_group(group, Signal::KILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    bail!("interrupted: the agent was stopped and runtime {runtime} recorded as killed")
}

/// Records that the agent's process died without an exit status (`runtime.reaped
/// process_dead`).
fn reap(client: &Client, args: &RunArgs, runtime: &str) {
    let body = json!({
        "cause": "process_dead",
        "evidence": "mc-ledger run: the launcher ended without the agent's exit status",
        "actor": {"name": args.actor, "kind": "orchestrator"},
    });
    report(client, runtime, "reap", &body);
}

/// Posts a runtime command of the run's own; a failure is a line on stderr (the run's outcome
/// is already decided).
fn report(client: &Client, runtime: &str, what: &str, body: &Value) {
    let path = format!(
        "/v1/runtimes/{}/{what}",
        crate::watch::encode_component(runtime)
    );
    match client.post(&path, body) {
        Ok(r) if (200..300).contains(&r.status) => {}
        Ok(r) => eprintln!("mc-ledger run: {what} answered {}: {}", r.status, r.body),
        Err(e) => eprintln!("mc-ledger run: {what}: {e:#}"),
    }
}

/// Records that the launch failed: `runtime.launch_aborted` with the reason (the text before
/// the first `:` of the error) and the error as its detail.
fn abort(client: &Client, args: &RunArgs, runtime: &str, why: &anyhow::Error) {
    let text = format!("{why:#}");
    let reason = if text.starts_with("agent_missing") {
        "agent_missing"
    } else {
        "launch_failed"
    };
    let body = json!({
        "reason": reason,
        "detail": text,
        "actor": {"name": args.actor, "kind": "orchestrator"},
    });
    report(client, runtime, "abort", &body);
}
