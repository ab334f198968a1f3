//! The watcher's IO: [`SystemProbe`] runs tmux (`has-session`, `display-message`), examines
//! the tmux socket and reads `/proc`, then hands what it found to the pure classifiers of
//! `classify.rs`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use events::{ReapCause, Timestamp};
use serde_json::{json, Value};

use service::clock::now;

use super::classify::{
    classify_pane, classify_start, classify_stat, classify_tmux, clip, no_server, parse_pane,
    stat_fields, Observation, Probe, Seen, Target, OUTPUT_BYTES_MAX, PANE_FORMAT,
};

/// How long one tmux probe may take before it counts as a probe error: a wedged tmux server
/// must not stall the watcher.
const PROBE_TIMEOUT_MS: u64 = 5_000;

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

/// Children listed in the evidence.
const CHILDREN_MAX: usize = 16;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Given this test's own pid, then its start time is read from `/proc` and is not in the
    /// future.
    #[test]
    fn a_process_start_time_is_read_from_proc() {
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
    }
}
