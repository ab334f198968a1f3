//! `mc-ledger watch`: finds live tmux and process runtimes whose worker is gone and reaps them
//! over HTTP. A runtime is reaped only when a second probe, a moment after the first, confirms
//! that the worker is gone; a probe that cannot tell (tmux missing or unreachable, permission
//! denied) is reported and never taken as death. Rules and evidence format: `docs/watch.md`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use events::{ReapCause, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};

use api::state::now;
use client::Client;

/// How long one tmux probe may take before it counts as a probe error: a wedged tmux server
/// must not stall the watcher.
const PROBE_TIMEOUT_MS: u64 = 5_000;
/// Probe output kept in the evidence; tmux answers in one short line.
const OUTPUT_BYTES_MAX: usize = 512;
/// Runtimes asked for per page of `GET /v1/runtimes` (the server's maximum).
const PAGE_LIMIT: usize = 1_000;
/// Pages followed in one cycle, so a server whose cursor never ends cannot loop us forever.
const PAGES_MAX: usize = 10_000;

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The mc-ledger server, http://host:port (token in MC_LEDGER_TOKEN, write scope).
    #[arg(long)]
    pub server: String,
    /// Seconds between cycles.
    #[arg(long = "interval", value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_s: u64,
    /// Run one full cycle (confirmations included), print a summary and exit.
    #[arg(long)]
    pub once: bool,
    /// Milliseconds between a failed probe and the probe that confirms it.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub confirm_ms: u64,
    /// Probe the tmux server with this socket name (`tmux -L NAME`).
    #[arg(long, value_name = "NAME")]
    pub tmux_socket_name: Option<String>,
    /// Reap even when a cycle would reap more than half of the runtimes it probed (and more
    /// than 3), which otherwise reaps none as a suspected probe failure.
    #[arg(long)]
    pub allow_mass_reap: bool,
    /// Seconds after its dispatch before a worker pane holding only an idle shell counts as a
    /// crashed agent (at once if the runtime was ever heard from).
    #[arg(long = "shell-grace", value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub shell_grace_s: u64,
}

/// What a live runtime's worker can be probed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A tmux target as the dispatcher recorded it (`session`, `session:window.pane`).
    Tmux(String),
    /// A process id, and when its runtime was dispatched: a process with that id that
    /// started after the dispatch is another process that reused the id.
    Process { pid: u32, dispatched_at: Timestamp },
}

/// One look at a target: when, the exit status of the probe command (none for `/proc`), what
/// it said, and what else was looked at (the pane, the tmux socket, the process's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub at: Timestamp,
    pub exit: Option<i32>,
    pub output: String,
    /// A JSON object merged into the probe's evidence (`pane`, `socket`, `process`).
    pub detail: Option<Value>,
}

impl Observation {
    fn new(at: Timestamp, exit: Option<i32>, output: String) -> Observation {
        Observation {
            at,
            exit,
            output,
            detail: None,
        }
    }

    fn with(mut self, detail: Value) -> Observation {
        self.detail = Some(detail);
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"at": self.at.to_rfc3339(), "exit": self.exit, "output": self.output});
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.detail, &mut v) {
            map.extend(extra.clone());
        }
        v
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Alive,
    /// The authority (a reachable tmux server, a tmux socket that is absent or refusing, the
    /// kernel) says the worker is not there.
    Gone {
        cause: ReapCause,
        seen: Observation,
    },
    /// The worker's pane holds a shell with no child: the agent crashed and the shell stayed,
    /// or the dispatcher has not started the agent yet. Death only for a runtime past its
    /// start grace ([`Candidate::idle_shell_is_dead`]).
    IdleShell(Observation),
    /// The probe could not tell; never taken as death.
    Error(String),
}

impl Seen {
    fn gone(cause: ReapCause, seen: Observation) -> Seen {
        Seen::Gone { cause, seen }
    }
}

/// A way to look at workers. [`SystemProbe`] is the real one; tests script their own.
pub trait Probe {
    /// The command a probe of `target` runs, as written into the evidence.
    fn command(&self, target: &Target) -> String;
    fn look(&self, target: &Target) -> Seen;
}

/// `tmux has-session` for tmux targets and `/proc/<pid>/stat` for process ids.
#[derive(Debug, Clone, Default)]
pub struct SystemProbe {
    pub tmux_socket_name: Option<String>,
}

impl SystemProbe {
    fn socket_args(&self) -> Vec<String> {
        match &self.tmux_socket_name {
            Some(name) => vec!["-L".to_owned(), name.clone()],
            None => Vec::new(),
        }
    }

    fn tmux_args(&self, target: &str) -> Vec<String> {
        let mut args = self.socket_args();
        args.extend([
            "has-session".to_owned(),
            "-t".to_owned(),
            exact_target(target),
        ]);
        args
    }

    fn pane_args(&self, target: &str) -> Vec<String> {
        let mut args = self.socket_args();
        args.extend([
            "display-message".to_owned(),
            "-p".to_owned(),
            "-t".to_owned(),
            pane_target(target),
            PANE_FORMAT.to_owned(),
        ]);
        args
    }

    /// Runs tmux with `args`, at most [`PROBE_TIMEOUT_MS`]: its exit status and what it said
    /// (stderr, then stdout), or why it could not be asked.
    fn tmux(&self, args: &[String]) -> Result<(Option<i32>, String, String), String> {
        let child = Command::new("tmux")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("tmux is not installed (not found on PATH)".to_owned())
            }
            Err(e) => return Err(format!("cannot run tmux: {e}")),
        };
        let deadline = Instant::now() + Duration::from_millis(PROBE_TIMEOUT_MS);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("tmux did not answer within {PROBE_TIMEOUT_MS} ms"));
                }
                Err(e) => return Err(format!("waiting for tmux: {e}")),
            }
        };
        let read = |pipe: Option<Box<dyn Read>>| {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let limit = u64::try_from(OUTPUT_BYTES_MAX * 4).unwrap_or(u64::MAX);
                let _ = pipe.take(limit).read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>));
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>));
        Ok((status.code(), stderr, stdout))
    }

    /// The session, then its server, then its pane.
    fn look_tmux(&self, target: &str) -> Seen {
        let (exit, stderr, stdout) = match self.tmux(&self.tmux_args(target)) {
            Ok(answer) => answer,
            Err(e) => return Seen::Error(e),
        };
        let output = format!("{stderr}{stdout}");
        let at = now();
        match classify_tmux(exit, &output, at) {
            Seen::Alive => self.look_pane(target),
            Seen::Error(e) if no_server(&output) => match self.socket_state() {
                Ok(Some(socket)) => Seen::gone(
                    ReapCause::TmuxMissing,
                    Observation::new(at, exit, clip(output.trim())).with(json!({"socket": socket})),
                ),
                Ok(None) => Seen::Error(e),
                Err(why) => Seen::Error(format!("{e} ({why})")),
            },
            seen => seen,
        }
    }

    /// Where tmux keeps the server's socket: `$TMUX`'s when no name is given and the watcher
    /// runs inside tmux, else `$TMUX_TMPDIR` (default `/tmp`) `/tmux-<uid>/<name or default>`,
    /// as tmux itself resolves it.
    fn socket_path(&self) -> std::path::PathBuf {
        if self.tmux_socket_name.is_none() {
            if let Some(tmux) = std::env::var_os("TMUX") {
                let tmux = tmux.to_string_lossy().into_owned();
                if let Some(path) = tmux.split(',').next().filter(|p| !p.is_empty()) {
                    return path.into();
                }
            }
        }
        let dir = std::env::var_os("TMUX_TMPDIR")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/tmp".into());
        let uid = rustix::process::getuid().as_raw();
        let name = self.tmux_socket_name.as_deref().unwrap_or("default");
        std::path::Path::new(&dir)
            .join(format!("tmux-{uid}"))
            .join(name)
    }

    /// tmux said there is no server: is its socket absent, or refusing connections (a server
    /// that was killed leaves its socket behind)? `Ok(None)`: the socket answers, so tmux's
    /// word is not confirmed; `Err`: the socket cannot be examined (permissions).
    fn socket_state(&self) -> Result<Option<Value>, String> {
        let path = self.socket_path();
        let shown = path.display().to_string();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(json!({"path": shown, "state": "absent"})))
            }
            Err(e) => return Err(format!("cannot examine {shown}: {e}")),
            Ok(_) => {}
        }
        match std::os::unix::net::UnixStream::connect(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Ok(Some(json!({"path": shown, "state": "refusing"})))
            }
            Err(e) => Err(format!("cannot connect to {shown}: {e}")),
            Ok(_) => Ok(None),
        }
    }

    /// The session exists: is its pane's process alive, and is it more than a shell left
    /// behind? A pane that cannot be examined counts as alive (the session is there).
    fn look_pane(&self, target: &str) -> Seen {
        let Ok((Some(0), _, stdout)) = self.tmux(&self.pane_args(target)) else {
            return Seen::Alive;
        };
        let at = now();
        let Some(pane) = parse_pane(&stdout) else {
            return Seen::Alive;
        };
        let children = if cfg!(target_os = "linux") {
            children_of(pane.pid)
        } else {
            None
        };
        classify_pane(&pane, children.as_deref(), at, &self.pane_command(target))
    }

    fn pane_command(&self, target: &str) -> String {
        let mut words = vec!["tmux".to_owned()];
        words.extend(self.pane_args(target));
        words.join(" ")
    }

    fn look_process(pid: u32, dispatched_at: Timestamp) -> Seen {
        if !cfg!(target_os = "linux") {
            return Seen::Error("process probes need Linux's /proc".to_owned());
        }
        if pid == 0 {
            return Seen::Error("process id 0 is not a process".to_owned());
        }
        // Without a mounted /proc every pid would look gone: check that /proc answers first.
        if let Err(e) = std::fs::metadata("/proc/self/stat") {
            return Seen::Error(format!("/proc is not usable here: {e}"));
        }
        let at = now();
        let read = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        match classify_stat(read, at) {
            Seen::Alive => match process_started_at(pid) {
                Some(started) => classify_start(pid, started, dispatched_at, at),
                None => Seen::Alive,
            },
            seen => seen,
        }
    }
}

/// What the pane probe asks tmux: dead flag, process id and current command, tab-separated.
const PANE_FORMAT: &str = "#{pane_dead}\t#{pane_pid}\t#{pane_current_command}";
/// Children listed in the evidence.
const CHILDREN_MAX: usize = 16;
/// A process that started this much after its runtime's dispatch reused the dispatched pid.
/// Generous: the boot time `/proc` gives is whole seconds, and the ledger's clock is the
/// server's.
pub const PID_REUSE_SLACK_MS: u64 = 5_000;

/// The shells a pane is left holding when the agent started in it exits.
const SHELLS: [&str; 9] = [
    "sh", "bash", "zsh", "fish", "dash", "ksh", "mksh", "tcsh", "csh",
];

/// A tmux pane as [`PANE_FORMAT`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub dead: bool,
    pub pid: u32,
    pub command: String,
}

pub fn parse_pane(line: &str) -> Option<Pane> {
    let mut fields = line.trim_end_matches(['\n', '\r']).splitn(3, '\t');
    let dead = fields.next()? == "1";
    let pid = fields.next()?.trim().parse().ok()?;
    let command = fields.next().unwrap_or("").trim().to_owned();
    Some(Pane { dead, pid, command })
}

/// A live session's pane: dead (`remain-on-exit` kept it) is gone; a shell with no child is an
/// idle shell; anything else is alive. `children` is `None` when they could not be listed, and
/// then a shell is not judged.
pub fn classify_pane(
    pane: &Pane,
    children: Option<&[(u32, String)]>,
    at: Timestamp,
    command: &str,
) -> Seen {
    let detail = |children: Option<&[(u32, String)]>| {
        json!({"pane": {
            "command": command,
            "pane_dead": pane.dead,
            "pane_pid": pane.pid,
            "pane_current_command": pane.command,
            "children": children.map(|c| c.iter().map(|(pid, comm)| json!({"pid": pid, "command": comm})).collect::<Vec<_>>()),
        }})
    };
    let seen =
        |output: &str| Observation::new(at, Some(0), output.to_owned()).with(detail(children));
    if pane.dead {
        return Seen::gone(
            ReapCause::ProcessDead,
            seen("the pane is dead: its process exited"),
        );
    }
    let shell = SHELLS.contains(&pane.command.trim_start_matches('-'));
    match children {
        Some([]) if shell => Seen::IdleShell(seen(&format!(
            "the pane holds an idle {} with no child process",
            pane.command
        ))),
        _ => Seen::Alive,
    }
}

/// The live children of `pid` (pid and command name), from a scan of `/proc`; zombies are
/// left out (they are dead). `None` if `/proc` cannot be read.
fn children_of(pid: u32) -> Option<Vec<(u32, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let Some((comm, state, ppid)) = stat_fields(&stat) {
            if ppid == pid && !matches!(state, 'Z' | 'X' | 'x') && out.len() < CHILDREN_MAX {
                out.push((child, comm.to_owned()));
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

/// `pid (comm) S ppid …`: the command name, the state and the parent's id. comm may hold spaces
/// and parentheses, so the fields follow the last `)`.
fn stat_fields(stat: &str) -> Option<(&str, char, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// When `pid` started, on the wall clock: boot time (`btime` of `/proc/stat`) plus its start
/// in clock ticks (field 22 of `/proc/<pid>/stat`).
fn process_started_at(pid: u32) -> Option<Timestamp> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    // Field 3 (state) is the first after the `)`; starttime is field 22.
    let ticks: u64 = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot_s: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_s = rustix::param::clock_ticks_per_second().max(1);
    Some(Timestamp(
        boot_s
            .saturating_mul(1_000)
            .saturating_add(ticks.saturating_mul(1_000) / per_s),
    ))
}

/// A live pid whose process started after its runtime's dispatch (beyond the slack) is not the
/// process that was dispatched: gone, as far as the runtime is concerned.
pub fn classify_start(
    pid: u32,
    started: Timestamp,
    dispatched_at: Timestamp,
    at: Timestamp,
) -> Seen {
    if started.millis() > dispatched_at.millis().saturating_add(PID_REUSE_SLACK_MS) {
        let output = format!(
            "pid {pid} belongs to a process started at {}, after the runtime's dispatch at {}: the pid was reused",
            started.to_rfc3339(),
            dispatched_at.to_rfc3339()
        );
        Seen::gone(
            ReapCause::ProcessDead,
            Observation::new(at, None, output).with(json!({"process": {
                "pid": pid,
                "started_at": started.to_rfc3339(),
                "dispatched_at": dispatched_at.to_rfc3339(),
            }})),
        )
    } else {
        Seen::Alive
    }
}

/// tmux's words for "no server on this socket".
fn no_server(output: &str) -> bool {
    output.contains("no server running") || output.contains("error connecting to")
}

impl Probe for SystemProbe {
    fn command(&self, target: &Target) -> String {
        match target {
            Target::Tmux(t) => {
                let mut words = vec!["tmux".to_owned()];
                words.extend(self.tmux_args(t));
                words.join(" ")
            }
            Target::Process { pid, .. } => format!("read /proc/{pid}/stat"),
        }
    }

    fn look(&self, target: &Target) -> Seen {
        match target {
            Target::Tmux(t) => self.look_tmux(t),
            Target::Process { pid, dispatched_at } => {
                SystemProbe::look_process(*pid, *dispatched_at)
            }
        }
    }
}

/// tmux matches `-t name` against session-name *prefixes* (and patterns), so a gone `mc-4030`
/// would look alive while `mc-40301` runs. `=` asks for the exact session name. Ids (`$1`,
/// `@2`, `%3`) and targets that already say `=` are left alone.
fn exact_target(target: &str) -> String {
    if target.starts_with(['=', '$', '@', '%']) {
        target.to_owned()
    } else {
        format!("={target}")
    }
}

/// The pane a target names: a bare session (`=name`, `$1`) names no pane for tmux, so it gets
/// the `:` that means "its current window's active pane".
fn pane_target(target: &str) -> String {
    let t = exact_target(target);
    if t.starts_with(['=', '$']) && !t.contains(':') {
        format!("{t}:")
    } else {
        t
    }
}

/// A tmux answer: exit 0 is alive; exit 1 saying the session cannot be found is gone (the server
/// was reached and answered); anything else — no server on the socket, a refused connection, a
/// missing window of a live session — cannot tell.
pub fn classify_tmux(exit: Option<i32>, output: &str, at: Timestamp) -> Seen {
    let text = output.trim();
    match exit {
        Some(0) => Seen::Alive,
        Some(1) if text.contains("can't find session") || text.contains("session not found") => {
            Seen::gone(
                ReapCause::TmuxMissing,
                Observation::new(at, exit, clip(text)),
            )
        }
        Some(code) => Seen::Error(format!("tmux exited {code}: {}", clip(text))),
        None => Seen::Error(format!("tmux was killed by a signal: {}", clip(text))),
    }
}

/// A `/proc/<pid>/stat` read: missing is gone, a zombie (`Z`) or dead (`X`) state is gone, any
/// other state is alive, and any other read error (permission, IO) cannot tell.
pub fn classify_stat(read: std::io::Result<String>, at: Timestamp) -> Seen {
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::gone(
            ReapCause::ProcessDead,
            Observation::new(at, None, format!("missing: {e}")),
        ),
        Err(e) => Seen::Error(format!("cannot read the process status: {e}")),
        Ok(stat) => {
            // `pid (comm) S …`: comm may hold spaces and parentheses, so the state follows the
            // last `)`.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next());
            match state {
                Some('Z' | 'X' | 'x') => Seen::gone(
                    ReapCause::ProcessDead,
                    Observation::new(at, None, clip(stat.trim())),
                ),
                Some(_) => Seen::Alive,
                None => Seen::Error(format!("unreadable process status: {}", clip(stat.trim()))),
            }
        }
    }
}

fn clip(s: &str) -> String {
    if s.len() <= OUTPUT_BYTES_MAX {
        return s.to_owned();
    }
    let mut end = OUTPUT_BYTES_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A live runtime the watcher can probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub runtime_id: String,
    pub ticket: String,
    pub target: Target,
    /// A pane holding only an idle shell means the agent is gone: the runtime was heard from,
    /// or was dispatched longer than `--shell-grace` ago (before that, the dispatcher may not
    /// have started the agent in it yet).
    pub idle_shell_is_dead: bool,
}

/// The verdict on one candidate after the confirm rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Alive,
    /// Gone twice: reap with this cause and evidence (a compact JSON string).
    Dead {
        cause: ReapCause,
        evidence: String,
    },
    Error(String),
}

/// The confirm rule. Every candidate is probed once; if any looked gone, `wait` runs once (the
/// confirmation delay) and those are probed again. Only gone-then-gone is death; a second look
/// that finds the worker alive (a restart, a slow tmux) or cannot tell keeps it alive or
/// reports the error.
pub fn confirm(
    probe: &dyn Probe,
    candidates: &[Candidate],
    wait: &mut dyn FnMut(),
) -> Vec<Finding> {
    let first: Vec<Seen> = candidates
        .iter()
        .map(|c| judged(c, probe.look(&c.target)))
        .collect();
    if first.iter().any(|s| matches!(s, Seen::Gone { .. })) {
        wait();
    }
    candidates
        .iter()
        .zip(first)
        .map(|(c, seen)| match seen {
            Seen::Alive | Seen::IdleShell(_) => Finding::Alive,
            Seen::Error(e) => Finding::Error(e),
            Seen::Gone {
                cause,
                seen: before,
            } => match judged(c, probe.look(&c.target)) {
                Seen::Alive | Seen::IdleShell(_) => Finding::Alive,
                Seen::Error(e) => Finding::Error(format!(
                    "looked gone, then the confirming probe failed: {e}"
                )),
                Seen::Gone { seen: after, .. } => Finding::Dead {
                    cause,
                    evidence: json!({
                        "command": probe.command(&c.target),
                        "probes": [before.to_json(), after.to_json()],
                    })
                    .to_string(),
                },
            },
        })
        .collect()
}

/// An idle shell is the agent's death for a candidate past its grace, else the agent may not
/// have started yet: alive.
fn judged(c: &Candidate, seen: Seen) -> Seen {
    match seen {
        Seen::IdleShell(o) if c.idle_shell_is_dead => Seen::gone(ReapCause::ProcessDead, o),
        Seen::IdleShell(_) => Seen::Alive,
        other => other,
    }
}

/// What one cycle did; printed as one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runtimes probed (tmux and process transports with a target).
    pub probed: usize,
    pub alive: usize,
    /// Reaps the server recorded (201).
    pub reaped: usize,
    /// Probe errors, unprobeable runtimes and refused reaps.
    pub errors: usize,
    /// Live tmux/process runtimes with no tmux_target / process_id: reported, not probed.
    pub not_probed: usize,
    /// Reaps the server answered as already applied or ended meanwhile (200 duplicate, 409).
    pub already_ended: usize,
    /// Confirmed deaths not reaped because they were too many at once (the mass-reap limit).
    pub withheld: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "watch: probed {}, alive {}, reaped {}, errors {}, not probed {}, already ended {}",
            self.probed, self.alive, self.reaped, self.errors, self.not_probed, self.already_ended
        )?;
        if self.withheld > 0 {
            write!(
                f,
                "; suspected probe failure: {} of {} look dead, none reaped (--allow-mass-reap reaps them)",
                self.withheld, self.probed
            )?;
        }
        Ok(())
    }
}

/// The fields of a runtime view the watcher reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct LiveRuntime {
    id: String,
    ticket: String,
    transport: String,
    tmux_target: Option<String>,
    process_id: Option<u32>,
    started_at: Timestamp,
    last_activity_at: Option<Timestamp>,
}

/// What a cycle needs besides the server and the probe.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub confirm_wait: Duration,
    pub shell_grace: Duration,
    pub allow_mass_reap: bool,
}

/// Deaths that need `--allow-mass-reap`: more than half of those probed, and more than this.
pub const MASS_REAP_MIN: usize = 3;

/// The safety limit: reaping more than half of the probed runtimes (and more than
/// [`MASS_REAP_MIN`]) in one cycle is what a wrong socket name or a broken probe looks like.
pub fn is_mass_reap(dead: usize, probed: usize) -> bool {
    dead > MASS_REAP_MIN && dead * 2 > probed
}

/// The server could not be reached or would not list runtimes: the cycle did nothing useful.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Unreachable(anyhow::Error);

/// One full cycle: list live runtimes, probe, confirm, reap. Probe errors and refused reaps are
/// reported and counted; only a server that cannot be reached is an error.
pub fn cycle(client: &Client, probe: &dyn Probe, rules: Rules) -> Result<Summary, Unreachable> {
    let runtimes = list_live(client).map_err(Unreachable)?;
    let now = now();
    let grace_ms = u64::try_from(rules.shell_grace.as_millis()).unwrap_or(u64::MAX);
    let mut summary = Summary::default();
    let mut candidates = Vec::new();
    for r in runtimes {
        let target = match (r.transport.as_str(), r.tmux_target, r.process_id) {
            ("tmux", Some(t), _) if !t.trim().is_empty() => Target::Tmux(t),
            ("process", _, Some(pid)) => Target::Process {
                pid,
                dispatched_at: r.started_at,
            },
            ("tmux" | "process", _, _) => {
                summary.not_probed += 1;
                summary.errors += 1;
                let missing = if r.transport == "tmux" {
                    "tmux_target"
                } else {
                    "process_id"
                };
                tracing::warn!(runtime = %r.id, ticket = %r.ticket, "live {} runtime has no {missing}: not probed", r.transport);
                continue;
            }
            _ => continue,
        };
        let idle_shell_is_dead = r.last_activity_at.is_some()
            || now.millis().saturating_sub(r.started_at.millis()) >= grace_ms;
        candidates.push(Candidate {
            runtime_id: r.id,
            ticket: r.ticket,
            target,
            idle_shell_is_dead,
        });
    }
    summary.probed = candidates.len();
    let findings = confirm(probe, &candidates, &mut || {
        std::thread::sleep(rules.confirm_wait)
    });
    let dead = findings
        .iter()
        .filter(|f| matches!(f, Finding::Dead { .. }))
        .count();
    let withhold = !rules.allow_mass_reap && is_mass_reap(dead, summary.probed);
    if withhold {
        summary.withheld = dead;
        tracing::warn!(
            dead,
            probed = summary.probed,
            "suspected probe failure: more than half of the probed runtimes look dead; reaping none (is --tmux-socket-name right? --allow-mass-reap reaps them)"
        );
    }
    for (c, finding) in candidates.iter().zip(findings) {
        match finding {
            Finding::Alive => summary.alive += 1,
            Finding::Error(e) => {
                summary.errors += 1;
                tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, target = ?c.target, "probe error, not reaped: {e}");
            }
            Finding::Dead { cause, .. } if withhold => {
                tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, cause = cause.as_str(), "looks dead, not reaped (mass-reap limit)");
            }
            Finding::Dead { cause, evidence } => match reap(client, c, cause, &evidence) {
                Ok(Reaped::Recorded) => {
                    summary.reaped += 1;
                    tracing::info!(runtime = %c.runtime_id, ticket = %c.ticket, cause = cause.as_str(), "reaped");
                }
                Ok(Reaped::AlreadyEnded(how)) => {
                    summary.already_ended += 1;
                    tracing::info!(runtime = %c.runtime_id, ticket = %c.ticket, "not reaped: {how}");
                }
                Ok(Reaped::Refused(why)) => {
                    summary.errors += 1;
                    tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, "reap refused: {why}");
                }
                Err(e) => return Err(Unreachable(e)),
            },
        }
    }
    Ok(summary)
}

fn list_live(client: &Client) -> anyhow::Result<Vec<LiveRuntime>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..PAGES_MAX {
        let mut path = format!("/v1/runtimes?live=true&limit={PAGE_LIMIT}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode_component(c)));
        }
        let page = client.get(&path)?.ok().context("listing live runtimes")?;
        let runtimes: Vec<LiveRuntime> = serde_json::from_value(page["runtimes"].clone())
            .context("the server's runtime list is not what this watcher understands")?;
        out.extend(runtimes);
        match page["next_cursor"].as_str() {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
    anyhow::bail!("the runtime list did not end after {PAGES_MAX} pages")
}

enum Reaped {
    Recorded,
    AlreadyEnded(String),
    Refused(String),
}

fn reap(
    client: &Client,
    c: &Candidate,
    cause: ReapCause,
    evidence: &str,
) -> anyhow::Result<Reaped> {
    let body = json!({
        "cause": cause.as_str(),
        "evidence": evidence,
        "actor": {"name": "watcher", "kind": "system"},
    });
    let path = format!("/v1/runtimes/{}/reap", encode_component(&c.runtime_id));
    let r = client.post(&path, &body)?;
    let code = r.body["code"].as_str().unwrap_or("error");
    let detail = r.body["detail"].as_str().unwrap_or("");
    Ok(match r.status {
        201 => Reaped::Recorded,
        200 => Reaped::AlreadyEnded("already reaped with this cause".to_owned()),
        409 => Reaped::AlreadyEnded(format!("{code}: {detail}")),
        s => Reaped::Refused(format!("server answered {s} {code}: {detail}")),
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or a
/// query value.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `mc-ledger watch`: one cycle with `--once`, else a cycle every `--interval` seconds until
/// SIGINT or SIGTERM.
pub fn run(args: &WatchArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.tmux_socket_name {
        if name.is_empty() || name.contains('/') {
            anyhow::bail!("--tmux-socket-name must be a socket name without '/', not {name:?}");
        }
    }
    let client = Client::new(&args.server)?;
    let probe = SystemProbe {
        tmux_socket_name: args.tmux_socket_name.clone(),
    };
    let rules = Rules {
        confirm_wait: Duration::from_millis(args.confirm_ms),
        shell_grace: Duration::from_secs(args.shell_grace_s),
        allow_mass_reap: args.allow_mass_reap,
    };
    if args.once {
        let summary = cycle(&client, &probe, rules)?;
        println!("{summary}");
        return Ok(());
    }
    let stop = shutdown_signals()?;
    let interval = Duration::from_secs(args.interval_s);
    tracing::info!(server = %args.server, interval_s = args.interval_s, "watching live tmux and process runtimes");
    loop {
        match cycle(&client, &probe, rules) {
            Ok(s) => tracing::info!(
                probed = s.probed,
                alive = s.alive,
                reaped = s.reaped,
                errors = s.errors,
                not_probed = s.not_probed,
                already_ended = s.already_ended,
                withheld = s.withheld,
                "cycle done"
            ),
            // The server may be restarting; the next cycle tries again.
            Err(e) => tracing::warn!("cycle skipped: {e}"),
        }
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::info!("stop signal received; watcher exits");
                return Ok(());
            }
        }
    }
}

/// A channel that receives once SIGINT or SIGTERM arrives. The handlers are installed before
/// this returns, so a signal from then on never kills the process mid-reap.
fn shutdown_signals() -> anyhow::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("watch-signals".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            });
            let _ = tx.send(());
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// Answers each target from a script, one answer per look; `Alive` once it runs out.
    struct Scripted {
        answers: RefCell<HashMap<String, Vec<Seen>>>,
        looks: RefCell<Vec<String>>,
    }

    fn key(t: &Target) -> String {
        match t {
            Target::Tmux(s) => s.clone(),
            Target::Process { pid, .. } => pid.to_string(),
        }
    }

    impl Scripted {
        fn new(script: &[(&str, Vec<Seen>)]) -> Scripted {
            Scripted {
                answers: RefCell::new(
                    script
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.iter().rev().cloned().collect()))
                        .collect(),
                ),
                looks: RefCell::default(),
            }
        }
    }

    impl Probe for Scripted {
        fn command(&self, target: &Target) -> String {
            format!("probe {}", key(target))
        }
        fn look(&self, target: &Target) -> Seen {
            self.looks.borrow_mut().push(key(target));
            self.answers
                .borrow_mut()
                .get_mut(&key(target))
                .and_then(Vec::pop)
                .unwrap_or(Seen::Alive)
        }
    }

    fn gone(ms: u64) -> Seen {
        Seen::gone(
            ReapCause::TmuxMissing,
            Observation::new(Timestamp(ms), Some(1), "can't find session: x".to_owned()),
        )
    }

    fn process_gone(ms: u64) -> Seen {
        Seen::gone(
            ReapCause::ProcessDead,
            Observation::new(Timestamp(ms), None, "missing".to_owned()),
        )
    }

    fn idle_shell(ms: u64) -> Seen {
        Seen::IdleShell(
            Observation::new(Timestamp(ms), Some(0), "idle bash".to_owned())
                .with(json!({"pane": {"pane_pid": 7, "children": []}})),
        )
    }

    fn tmux(name: &str) -> Candidate {
        Candidate {
            runtime_id: format!("rt_{name}"),
            ticket: "MC-1".to_owned(),
            target: Target::Tmux(name.to_owned()),
            idle_shell_is_dead: true,
        }
    }

    #[test]
    fn gone_twice_is_dead_and_the_evidence_has_both_probes() {
        let probe = Scripted::new(&[("a", vec![gone(1_000), gone(1_500)])]);
        let mut waits = 0;
        let found = confirm(&probe, &[tmux("a")], &mut || waits += 1);
        assert_eq!(waits, 1);
        let Finding::Dead { cause, evidence } = &found[0] else {
            panic!("{found:?}")
        };
        assert_eq!(*cause, ReapCause::TmuxMissing);
        let ev: Value = serde_json::from_str(evidence).unwrap();
        assert_eq!(ev["command"], "probe a");
        assert_eq!(ev["probes"][0]["at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(ev["probes"][1]["at"], "1970-01-01T00:00:01.500Z");
        assert_eq!(ev["probes"][1]["exit"], 1);
        assert_eq!(ev["probes"][1]["output"], "can't find session: x");
    }

    #[test]
    fn one_gone_look_is_not_enough() {
        let probe = Scripted::new(&[("flaps", vec![gone(1), Seen::Alive])]);
        let found = confirm(&probe, &[tmux("flaps")], &mut || {});
        assert_eq!(found, vec![Finding::Alive]);
    }

    #[test]
    fn an_error_is_never_death_on_either_look() {
        let err = || Seen::Error("no server running on /tmp/tmux-0/x".to_owned());
        let probe = Scripted::new(&[("e1", vec![err(), gone(2)]), ("e2", vec![gone(1), err()])]);
        let mut waits = 0;
        let found = confirm(&probe, &[tmux("e1"), tmux("e2")], &mut || waits += 1);
        assert!(matches!(&found[0], Finding::Error(e) if e.contains("no server running")));
        assert!(matches!(&found[1], Finding::Error(e) if e.contains("confirming probe failed")));
        // e1 was not looked at again: its first look could not tell.
        assert_eq!(*probe.looks.borrow(), ["e1", "e2", "e2"]);
        assert_eq!(waits, 1);
    }

    #[test]
    fn all_alive_needs_no_wait_and_one_look_each() {
        let probe = Scripted::new(&[]);
        let mut waits = 0;
        let cands = [tmux("a"), tmux("b")];
        let found = confirm(&probe, &cands, &mut || waits += 1);
        assert_eq!(found, vec![Finding::Alive, Finding::Alive]);
        assert_eq!((waits, probe.looks.borrow().len()), (0, 2));
    }

    /// Given an idle shell in the pane twice, then a runtime past its grace is process_dead
    /// with the pane in the evidence, and one within its grace is alive.
    #[test]
    fn an_idle_shell_is_death_only_past_the_grace() {
        let probe = Scripted::new(&[
            ("old", vec![idle_shell(1), idle_shell(2)]),
            ("new", vec![idle_shell(1), idle_shell(2)]),
            ("restarted", vec![idle_shell(1), Seen::Alive]),
        ]);
        let new = Candidate {
            idle_shell_is_dead: false,
            ..tmux("new")
        };
        let found = confirm(&probe, &[tmux("old"), new, tmux("restarted")], &mut || {});
        let Finding::Dead { cause, evidence } = &found[0] else {
            panic!("{found:?}")
        };
        assert_eq!(*cause, ReapCause::ProcessDead);
        let ev: Value = serde_json::from_str(evidence).unwrap();
        assert_eq!(ev["probes"][1]["pane"]["pane_pid"], 7, "{ev}");
        assert_eq!(found[1..], [Finding::Alive, Finding::Alive]);
    }

    #[test]
    fn the_mass_reap_limit() {
        // (dead, probed, limited)
        for (dead, probed, limited) in [
            (5, 5, true),
            (4, 7, true),
            (4, 8, false),
            (3, 3, false),
            (1, 1, false),
            (0, 0, false),
            (50, 99, true),
        ] {
            assert_eq!(is_mass_reap(dead, probed), limited, "{dead} of {probed}");
        }
    }

    #[test]
    fn many_gone_share_one_wait_and_process_targets_die_as_process_dead() {
        let probe = Scripted::new(&[
            ("a", vec![gone(1), gone(2)]),
            ("42", vec![process_gone(1), process_gone(2)]),
            ("c", vec![Seen::Alive]),
        ]);
        let cands = [
            tmux("a"),
            Candidate {
                runtime_id: "rt_p".to_owned(),
                ticket: "MC-2".to_owned(),
                target: Target::Process {
                    pid: 42,
                    dispatched_at: Timestamp(0),
                },
                idle_shell_is_dead: true,
            },
            tmux("c"),
        ];
        let mut waits = 0;
        let found = confirm(&probe, &cands, &mut || waits += 1);
        assert_eq!(waits, 1);
        assert!(matches!(
            found[0],
            Finding::Dead {
                cause: ReapCause::TmuxMissing,
                ..
            }
        ));
        assert!(matches!(
            found[1],
            Finding::Dead {
                cause: ReapCause::ProcessDead,
                ..
            }
        ));
        assert_eq!(found[2], Finding::Alive);
    }

    #[test]
    fn tmux_answers_are_classified() {
        let at = Timestamp(0);
        assert_eq!(classify_tmux(Some(0), "", at), Seen::Alive);
        for gone in ["can't find session: mc-1\n", "session not found: mc-1"] {
            assert!(
                matches!(classify_tmux(Some(1), gone, at), Seen::Gone { .. }),
                "{gone}"
            );
        }
        for error in [
            "no server running on /tmp/tmux-0/x",
            "error connecting to /tmp/tmux-0/x (No such file or directory)",
            "error connecting to /tmp/tmux-0/x (Permission denied)",
            "server exited unexpectedly",
            "can't find window: 5",
        ] {
            assert!(
                matches!(classify_tmux(Some(1), error, at), Seen::Error(_)),
                "{error}"
            );
        }
        // A session-missing text with another exit status is not tmux's answer.
        assert!(matches!(
            classify_tmux(Some(2), "can't find session: x", at),
            Seen::Error(_)
        ));
        assert!(matches!(classify_tmux(None, "", at), Seen::Error(_)));
    }

    #[test]
    fn proc_stat_is_classified() {
        let at = Timestamp(0);
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(matches!(
            classify_stat(Err(not_found), at),
            Seen::Gone { .. }
        ));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(classify_stat(Err(denied), at), Seen::Error(_)));
        let stat = |s: &str| classify_stat(Ok(s.to_owned()), at);
        assert_eq!(stat("42 (sleep) S 1 42 42 0"), Seen::Alive);
        assert!(matches!(stat("42 (sleep) Z 1 42 42 0"), Seen::Gone { .. }));
        // A command name with spaces and parentheses does not fool the parser.
        assert_eq!(stat("42 (a) Z (b) R 1 2"), Seen::Alive);
        assert!(matches!(stat("42 (a) R (b) Z 1 2"), Seen::Gone { .. }));
        assert!(matches!(stat("garbage"), Seen::Error(_)));
        assert_eq!(
            stat_fields("42 (my (agent)) S 7 42"),
            Some(("my (agent)", 'S', 7))
        );
    }

    /// Given what tmux says of a pane and its children, then alive, idle shell or gone.
    #[test]
    fn panes_are_classified() {
        let at = Timestamp(0);
        let pane = |line: &str| parse_pane(line).expect(line);
        let kid = [(8, "claude".to_owned())];
        type Row<'a> = (&'a str, Option<&'a [(u32, String)]>, &'a str);
        let rows: [Row; 7] = [
            ("0\t7\tclaude\n", Some(&[]), "alive"),
            ("0\t7\tbash\n", Some(&kid), "alive"),
            ("0\t7\tbash\n", Some(&[]), "idle"),
            ("0\t7\t-zsh\n", Some(&[]), "idle"),
            ("0\t7\tbash\n", None, "alive"),
            ("1\t7\tbash\n", Some(&[]), "gone"),
            ("1\t7\tclaude\n", None, "gone"),
        ];
        for (line, children, then) in rows {
            let seen = classify_pane(&pane(line), children, at, "tmux display-message");
            let got = match &seen {
                Seen::Alive => "alive",
                Seen::IdleShell(_) => "idle",
                Seen::Gone {
                    cause: ReapCause::ProcessDead,
                    ..
                } => "gone",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, then, "{line:?} with {children:?}");
        }
        assert_eq!(parse_pane("garbage"), None);
        assert_eq!(parse_pane(""), None);
    }

    /// Given a live pid, then a process that started after the dispatch (beyond the slack)
    /// reused the pid.
    #[test]
    fn a_process_started_after_its_dispatch_reused_the_pid() {
        let d = Timestamp(1_000_000);
        let at = Timestamp(9_000_000);
        assert_eq!(classify_start(7, Timestamp(1), d, at), Seen::Alive);
        assert_eq!(
            classify_start(7, Timestamp(1_000_000 + PID_REUSE_SLACK_MS), d, at),
            Seen::Alive
        );
        let Seen::Gone { cause, seen } =
            classify_start(7, Timestamp(1_000_001 + PID_REUSE_SLACK_MS), d, at)
        else {
            panic!("reused")
        };
        assert_eq!(cause, ReapCause::ProcessDead);
        assert!(
            seen.output.contains("the pid was reused"),
            "{}",
            seen.output
        );
        // This process started before now.
        let me = std::process::id();
        let started = process_started_at(me).expect("our own start time");
        assert!(started.millis() <= now().millis() + 1_000, "{started:?}");
    }

    #[test]
    fn tmux_targets_match_exactly_and_the_command_names_the_socket() {
        let probe = SystemProbe {
            tmux_socket_name: Some("s1".to_owned()),
        };
        assert_eq!(
            probe.command(&Target::Tmux("mc-4030:1.0".to_owned())),
            "tmux -L s1 has-session -t =mc-4030:1.0"
        );
        assert_eq!(exact_target("$3"), "$3");
        assert_eq!(pane_target("mc-4030"), "=mc-4030:");
        assert_eq!(pane_target("mc-4030:1.0"), "=mc-4030:1.0");
        assert_eq!(pane_target("$3"), "$3:");
        assert_eq!(pane_target("%7"), "%7");
        assert_eq!(exact_target("=x"), "=x");
        assert_eq!(encode_component("rt_01 /?"), "rt_01%20%2F%3F");
        assert_eq!(clip(&"é".repeat(400)).len(), OUTPUT_BYTES_MAX + "…".len());
    }

    #[test]
    fn summary_is_one_line() {
        let s = Summary {
            probed: 3,
            alive: 1,
            reaped: 1,
            errors: 1,
            not_probed: 0,
            already_ended: 0,
            withheld: 0,
        };
        assert_eq!(
            s.to_string(),
            "watch: probed 3, alive 1, reaped 1, errors 1, not probed 0, already ended 0"
        );
        let limited = Summary {
            probed: 5,
            alive: 0,
            reaped: 0,
            withheld: 5,
            ..s
        };
        assert!(limited
            .to_string()
            .ends_with("; suspected probe failure: 5 of 5 look dead, none reaped (--allow-mass-reap reaps them)"));
    }
}
