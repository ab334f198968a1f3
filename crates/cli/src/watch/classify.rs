//! The watcher's pure half: what a probe saw ([`Observation`], [`Seen`]), the classifiers that
//! turn what tmux and `/proc` answered into a verdict, and the confirm rule over the [`Probe`]
//! trait. Nothing here runs a command or reads a file; the IO is in `probe.rs`.

use events::{ReapCause, Timestamp};
use serde_json::{json, Value};

/// Probe output kept in the evidence; tmux answers in one short line.
pub(super) const OUTPUT_BYTES_MAX: usize = 512;

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
    pub(super) fn new(at: Timestamp, exit: Option<i32>, output: String) -> Observation {
        Observation {
            at,
            exit,
            output,
            detail: None,
        }
    }

    pub(super) fn with(mut self, detail: Value) -> Observation {
        self.detail = Some(detail);
        self
    }

    pub(super) fn to_json(&self) -> Value {
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
    pub(super) fn gone(cause: ReapCause, seen: Observation) -> Seen {
        Seen::Gone { cause, seen }
    }
}

/// A way to look at workers. `SystemProbe` (in `probe.rs`) is the real one; tests script their
/// own.
pub trait Probe {
    /// The command a probe of `target` runs, as written into the evidence.
    fn command(&self, target: &Target) -> String;
    fn look(&self, target: &Target) -> Seen;
}

/// What the pane probe asks tmux: dead flag, process id and current command, tab-separated.
pub(super) const PANE_FORMAT: &str = "#{pane_dead}\t#{pane_pid}\t#{pane_current_command}";

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

/// `pid (comm) S ppid …`: the command name, the state and the parent's id. comm may hold spaces
/// and parentheses, so the fields follow the last `)`.
pub(super) fn stat_fields(stat: &str) -> Option<(&str, char, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
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
pub(super) fn no_server(output: &str) -> bool {
    output.contains("no server running") || output.contains("error connecting to")
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

pub(super) fn clip(s: &str) -> String {
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

/// Deaths that need `--allow-mass-reap`: more than half of those probed, and more than this.
pub const MASS_REAP_MIN: usize = 3;

/// The safety limit: reaping more than half of the probed runtimes (and more than
/// [`MASS_REAP_MIN`]) in one cycle is what a wrong socket name or a broken probe looks like.
pub fn is_mass_reap(dead: usize, probed: usize) -> bool {
    dead > MASS_REAP_MIN && dead * 2 > probed
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
    }

    #[test]
    fn long_output_is_clipped_on_a_char_boundary() {
        assert_eq!(clip(&"é".repeat(400)).len(), OUTPUT_BYTES_MAX + "…".len());
    }
}
