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
}

/// What a live runtime's worker can be probed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A tmux target as the dispatcher recorded it (`session`, `session:window.pane`).
    Tmux(String),
    Process(u32),
}

impl Target {
    fn cause(&self) -> ReapCause {
        match self {
            Target::Tmux(_) => ReapCause::TmuxMissing,
            Target::Process(_) => ReapCause::ProcessDead,
        }
    }
}

/// One look at a target: when, the exit status of the probe command (none for `/proc`), and
/// what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub at: Timestamp,
    pub exit: Option<i32>,
    pub output: String,
}

impl Observation {
    fn to_json(&self) -> Value {
        json!({"at": self.at.to_rfc3339(), "exit": self.exit, "output": self.output})
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Alive,
    /// The authority (a reachable tmux server, the kernel) says the worker is not there.
    Gone(Observation),
    /// The probe could not tell; never taken as death.
    Error(String),
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
    fn tmux_args(&self, target: &str) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(name) = &self.tmux_socket_name {
            args.extend(["-L".to_owned(), name.clone()]);
        }
        args.extend([
            "has-session".to_owned(),
            "-t".to_owned(),
            exact_target(target),
        ]);
        args
    }

    fn look_tmux(&self, target: &str) -> Seen {
        let child = Command::new("tmux")
            .args(self.tmux_args(target))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Seen::Error("tmux is not installed (not found on PATH)".to_owned())
            }
            Err(e) => return Seen::Error(format!("cannot run tmux: {e}")),
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
                    return Seen::Error(format!(
                        "tmux did not answer within {PROBE_TIMEOUT_MS} ms"
                    ));
                }
                Err(e) => return Seen::Error(format!("waiting for tmux: {e}")),
            }
        };
        let mut output = String::new();
        for pipe in [
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut bytes = Vec::new();
            let limit = u64::try_from(OUTPUT_BYTES_MAX * 4).unwrap_or(u64::MAX);
            let _ = pipe.take(limit).read_to_end(&mut bytes);
            output.push_str(&String::from_utf8_lossy(&bytes));
        }
        classify_tmux(status.code(), &output, now())
    }

    fn look_process(pid: u32) -> Seen {
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
        classify_stat(std::fs::read_to_string(format!("/proc/{pid}/stat")), at)
    }
}

impl Probe for SystemProbe {
    fn command(&self, target: &Target) -> String {
        match target {
            Target::Tmux(t) => {
                let mut words = vec!["tmux".to_owned()];
                words.extend(self.tmux_args(t));
                words.join(" ")
            }
            Target::Process(pid) => format!("read /proc/{pid}/stat"),
        }
    }

    fn look(&self, target: &Target) -> Seen {
        match target {
            Target::Tmux(t) => self.look_tmux(t),
            Target::Process(pid) => SystemProbe::look_process(*pid),
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

/// A tmux answer: exit 0 is alive; exit 1 saying the session cannot be found is gone (the server
/// was reached and answered); anything else — no server on the socket, a refused connection, a
/// missing window of a live session — cannot tell.
pub fn classify_tmux(exit: Option<i32>, output: &str, at: Timestamp) -> Seen {
    let text = output.trim();
    match exit {
        Some(0) => Seen::Alive,
        Some(1) if text.contains("can't find session") || text.contains("session not found") => {
            Seen::Gone(Observation {
                at,
                exit,
                output: clip(text),
            })
        }
        Some(code) => Seen::Error(format!("tmux exited {code}: {}", clip(text))),
        None => Seen::Error(format!("tmux was killed by a signal: {}", clip(text))),
    }
}

/// A `/proc/<pid>/stat` read: missing is gone, a zombie (`Z`) or dead (`X`) state is gone, any
/// other state is alive, and any other read error (permission, IO) cannot tell.
pub fn classify_stat(read: std::io::Result<String>, at: Timestamp) -> Seen {
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Gone(Observation {
            at,
            exit: None,
            output: format!("missing: {e}"),
        }),
        Err(e) => Seen::Error(format!("cannot read the process status: {e}")),
        Ok(stat) => {
            // `pid (comm) S …`: comm may hold spaces and parentheses, so the state follows the
            // last `)`.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next());
            match state {
                Some('Z' | 'X' | 'x') => Seen::Gone(Observation {
                    at,
                    exit: None,
                    output: clip(stat.trim()),
                }),
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
    let first: Vec<Seen> = candidates.iter().map(|c| probe.look(&c.target)).collect();
    if first.iter().any(|s| matches!(s, Seen::Gone(_))) {
        wait();
    }
    candidates
        .iter()
        .zip(first)
        .map(|(c, seen)| match seen {
            Seen::Alive => Finding::Alive,
            Seen::Error(e) => Finding::Error(e),
            Seen::Gone(before) => match probe.look(&c.target) {
                Seen::Alive => Finding::Alive,
                Seen::Error(e) => Finding::Error(format!(
                    "looked gone, then the confirming probe failed: {e}"
                )),
                Seen::Gone(after) => Finding::Dead {
                    cause: c.target.cause(),
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
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "watch: probed {}, alive {}, reaped {}, errors {}, not probed {}, already ended {}",
            self.probed, self.alive, self.reaped, self.errors, self.not_probed, self.already_ended
        )
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
}

/// The server could not be reached or would not list runtimes: the cycle did nothing useful.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Unreachable(anyhow::Error);

/// One full cycle: list live runtimes, probe, confirm, reap. Probe errors and refused reaps are
/// reported and counted; only a server that cannot be reached is an error.
pub fn cycle(
    client: &Client,
    probe: &dyn Probe,
    confirm_wait: Duration,
) -> Result<Summary, Unreachable> {
    let runtimes = list_live(client).map_err(Unreachable)?;
    let mut summary = Summary::default();
    let mut candidates = Vec::new();
    for r in runtimes {
        let target = match (r.transport.as_str(), r.tmux_target, r.process_id) {
            ("tmux", Some(t), _) if !t.trim().is_empty() => Target::Tmux(t),
            ("process", _, Some(pid)) => Target::Process(pid),
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
        candidates.push(Candidate {
            runtime_id: r.id,
            ticket: r.ticket,
            target,
        });
    }
    summary.probed = candidates.len();
    let findings = confirm(probe, &candidates, &mut || std::thread::sleep(confirm_wait));
    for (c, finding) in candidates.iter().zip(findings) {
        match finding {
            Finding::Alive => summary.alive += 1,
            Finding::Error(e) => {
                summary.errors += 1;
                tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, target = ?c.target, "probe error, not reaped: {e}");
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
    let confirm_wait = Duration::from_millis(args.confirm_ms);
    if args.once {
        let summary = cycle(&client, &probe, confirm_wait)?;
        println!("{summary}");
        return Ok(());
    }
    let stop = shutdown_signals()?;
    let interval = Duration::from_secs(args.interval_s);
    tracing::info!(server = %args.server, interval_s = args.interval_s, "watching live tmux and process runtimes");
    loop {
        match cycle(&client, &probe, confirm_wait) {
            Ok(s) => tracing::info!(
                probed = s.probed,
                alive = s.alive,
                reaped = s.reaped,
                errors = s.errors,
                not_probed = s.not_probed,
                already_ended = s.already_ended,
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
            Target::Process(p) => p.to_string(),
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
        Seen::Gone(Observation {
            at: Timestamp(ms),
            exit: Some(1),
            output: "can't find session: x".to_owned(),
        })
    }

    fn tmux(name: &str) -> Candidate {
        Candidate {
            runtime_id: format!("rt_{name}"),
            ticket: "MC-1".to_owned(),
            target: Target::Tmux(name.to_owned()),
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

    #[test]
    fn many_gone_share_one_wait_and_process_targets_die_as_process_dead() {
        let probe = Scripted::new(&[
            ("a", vec![gone(1), gone(2)]),
            ("42", vec![gone(1), gone(2)]),
            ("c", vec![Seen::Alive]),
        ]);
        let cands = [
            tmux("a"),
            Candidate {
                runtime_id: "rt_p".to_owned(),
                ticket: "MC-2".to_owned(),
                target: Target::Process(42),
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
                matches!(classify_tmux(Some(1), gone, at), Seen::Gone(_)),
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
        assert!(matches!(classify_stat(Err(not_found), at), Seen::Gone(_)));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(matches!(classify_stat(Err(denied), at), Seen::Error(_)));
        let stat = |s: &str| classify_stat(Ok(s.to_owned()), at);
        assert_eq!(stat("42 (sleep) S 1 42 42 0"), Seen::Alive);
        assert!(matches!(stat("42 (sleep) Z 1 42 42 0"), Seen::Gone(_)));
        // A command name with spaces and parentheses does not fool the parser.
        assert_eq!(stat("42 (a) Z (b) R 1 2"), Seen::Alive);
        assert!(matches!(stat("42 (a) R (b) Z 1 2"), Seen::Gone(_)));
        assert!(matches!(stat("garbage"), Seen::Error(_)));
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
        };
        assert_eq!(
            s.to_string(),
            "watch: probed 3, alive 1, reaped 1, errors 1, not probed 0, already ended 0"
        );
    }
}
