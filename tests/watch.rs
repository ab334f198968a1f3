//! `mc-ledger watch` and the shell dispatchers' helpers (`signal`, `harvest`), run as the real
//! binary against the real server binary and a real tmux server on a private socket: a live
//! session is left alone, a killed one is reaped as tmux_missing with evidence, a dead process
//! id as process_dead, an umbrella or waiting ticket gets no failure, a gone tmux server takes
//! its sessions with it, a crashed agent's leftover shell is process_dead, a reused pid is not
//! the dispatched process, and a cycle that would reap most of the board reaps none.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A private tmux server (`tmux -L mc-ledger-test-…`), killed when dropped. A `keep` session
/// holds it up (tmux exits with its last session, which takes every session with it).
struct Tmux {
    socket: String,
    socket_path: String,
}

impl Tmux {
    fn start() -> Tmux {
        let mut tmux = Tmux::bare();
        tmux.new_session("keep");
        let out = tmux.run(&["display-message", "-p", "#{socket_path}"]);
        tmux.socket_path = text(&out.stdout).trim().to_owned();
        tmux
    }

    /// A socket name with no server yet; the first session starts it. Its path is where tmux
    /// puts it: `$TMUX_TMPDIR` (or /tmp) `/tmux-<uid>/<name>`.
    fn bare() -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let socket = format!("mc-ledger-test-{}-{nanos:x}", std::process::id());
        let dir = std::env::var("TMUX_TMPDIR")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/tmp".to_owned());
        let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout);
        let socket_path = format!("{dir}/tmux-{}/{socket}", uid.trim());
        Tmux {
            socket,
            socket_path,
        }
    }

    /// Waits up to 10 s until the session's pane runs `command`.
    fn wait_for_command(&self, session: &str, command: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.run(&[
                "display-message",
                "-p",
                "-t",
                &format!("={session}:"),
                "#{pane_current_command}",
            ]);
            if text(&out.stdout).trim() == command {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{session} runs {:?}, not {command}",
                text(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .env_remove("TMUX")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed (scripts/test.sh installs it)")
    }

    fn new_session(&self, name: &str) {
        let out = self.run(&["new-session", "-d", "-s", name, "sleep 600"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    fn kill_session(&self, name: &str) {
        let out = self.run(&["kill-session", "-t", &format!("={name}")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        // tmux leaves its socket file behind.
        if self.socket_path.contains("mc-ledger-test-") {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

/// The server binary on a temporary data directory, killed if a test fails before it stops it.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let (dir, child) = spawn_temp_binary();
        let url = format!("http://{}", child.addr);
        Server {
            child,
            url,
            _dir: dir,
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        orchestrated(self.child.addr, path, body)
    }

    fn get(&self, path: &str) -> Value {
        let r = get(self.child.addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    fn open(&self, id: &str, umbrella: bool) {
        self.post(
            "/v1/tickets",
            json!({"id": id, "title": format!("ticket {id}"), "umbrella": umbrella}),
        );
    }

    /// Dispatches a runtime on `ticket`; returns its id and nonce.
    fn dispatch(&self, ticket: &str, worker: Value) -> (String, String) {
        let mut body = json!({"dispatch_key": format!("pickup-{ticket}"), "agent": "luci"});
        for (k, v) in worker.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.post(&format!("/v1/tickets/{ticket}/dispatch"), body);
        (
            r["runtime_id"].as_str().unwrap().to_owned(),
            r["nonce"].as_str().unwrap().to_owned(),
        )
    }

    /// Opens `ticket` and dispatches a runtime on it in a new session `session` of `tmux`: its
    /// id.
    fn tmux_worker(&self, tmux: &Tmux, ticket: &str, session: &str) -> String {
        self.open(ticket, false);
        tmux.new_session(session);
        self.tmux_runtime(ticket, session)
    }

    fn tmux_runtime(&self, ticket: &str, session: &str) -> String {
        self.dispatch(ticket, json!({"transport": "tmux", "tmux_target": session}))
            .0
    }

    fn runtime(&self, id: &str) -> Value {
        self.get(&format!("/v1/runtimes/{id}"))
    }

    fn ticket(&self, id: &str) -> Value {
        self.get(&format!("/v1/tickets/{id}"))
    }

    fn alerts_for(&self, ticket: &str) -> Vec<Value> {
        self.get("/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["ticket"] == ticket)
            .cloned()
            .collect()
    }

    fn events_of(&self, ticket: &str, kind: &str) -> Vec<Value> {
        self.get(&format!("/v1/tickets/{ticket}/events"))["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.child.kill();
        let _ = self.child.child.wait();
    }
}

/// A private tmux server and the server binary, each stopped when dropped.
fn tmux_and_server() -> (Tmux, Server) {
    (Tmux::start(), Server::start())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .env_remove("TMUX")
        .env_remove("MC_LEDGER_TOKEN")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        std::io::Write::write_all(&mut pipe, input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// `watch --once`; asserts it succeeded and returns the summary line and stderr.
fn watch_once(server: &Server, socket: &str) -> (String, String) {
    watch_once_with(server, socket, &[])
}

fn watch_once_with(server: &Server, socket: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "watch",
        "--once",
        "--server",
        &server.url,
        "--tmux-socket-name",
        socket,
        "--confirm-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    let out = mc(&args, None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "watch failed: {stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    (stdout.trim_end().to_owned(), stderr)
}

fn summary(probed: u32, alive: u32, reaped: u32, errors: u32, not_probed: u32) -> String {
    format!(
        "watch: probed {probed}, alive {alive}, reaped {reaped}, errors {errors}, not probed {not_probed}, already ended 0"
    )
}

#[test]
fn a_killed_tmux_session_is_reaped_with_evidence_and_a_live_one_is_left_alone() {
    let tmux = Tmux::start();
    let mut server = Server::start();
    let live = server.tmux_worker(&tmux, "MC-1", "live-1");
    let dead = server.tmux_worker(&tmux, "MC-2", "dead-1");
    server.open("MC-3", false);
    // `live` is a prefix of the running `live-1`: tmux would match it, the watcher must not.
    let prefix = server.tmux_runtime("MC-3", "live");

    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(3, 2, 1, 0, 0));
    assert_eq!(server.runtime(&prefix)["class"], "tmux-missing");
    assert_eq!(server.runtime(&dead)["live"], true);

    tmux.kill_session("dead-1");
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(2, 1, 1, 0, 0));
    let rt = server.runtime(&dead);
    assert_eq!(
        (rt["class"].as_str(), rt["live"].as_bool()),
        (Some("tmux-missing"), Some(false))
    );
    assert_eq!(server.runtime(&live)["live"], true);
    assert_eq!(
        server.ticket("MC-2")["failure_reason"],
        "tmux_session_missing"
    );
    let alerts = server.alerts_for("MC-2");
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "worker_lost" && a["runtime_id"] == dead),
        "{alerts:?}"
    );
    assert!(server.alerts_for("MC-1").is_empty());

    let reaps = server.events_of("MC-2", "runtime.reaped");
    assert_eq!(reaps.len(), 1);
    let reap = &reaps[0];
    assert_eq!(reap["actor"], json!({"name": "watcher", "kind": "system"}));
    assert_eq!(reap["data"]["cause"], "tmux_missing");
    let evidence: Value = serde_json::from_str(reap["data"]["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(
        evidence["command"],
        format!("tmux -L {} has-session -t =dead-1", tmux.socket)
    );
    let probes = evidence["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 2, "{evidence}");
    let mut times = Vec::new();
    for p in probes {
        assert_eq!(p["exit"], 1, "{evidence}");
        assert!(
            p["output"].as_str().unwrap().contains("can't find session"),
            "{evidence}"
        );
        let at = p["at"].as_str().unwrap();
        assert!(
            at.ends_with('Z') && at.len() == "2026-11-02T10:11:12.345Z".len(),
            "{at}"
        );
        times.push(at.to_owned());
    }
    assert!(
        times[0] < times[1],
        "the confirming probe comes later: {times:?}"
    );

    // The reaped runtimes are no longer live: the next cycle probes only the live one.
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(1, 1, 0, 0, 0));
    assert_eq!(sigterm(&mut server.child.child).code(), Some(0));
}

#[test]
fn a_dead_or_zombie_process_is_reaped_as_process_dead() {
    let server = Server::start();
    for t in ["MC-1", "MC-2", "MC-3"] {
        server.open(t, false);
    }
    let sleep = || Command::new("sleep").arg("600").spawn().unwrap();
    let mut alive = sleep();
    let mut dead = sleep();
    dead.kill().unwrap(); // SIGKILL
    dead.wait().unwrap(); // and reaped: /proc/<pid> is gone
    let mut zombie = sleep();
    zombie.kill().unwrap(); // not waited for: state Z until we do
    let process = |pid: u32| json!({"transport": "process", "process_id": pid});
    let alive_rt = server.dispatch("MC-1", process(alive.id())).0;
    let dead_rt = server.dispatch("MC-2", process(dead.id())).0;
    let zombie_rt = server.dispatch("MC-3", process(zombie.id())).0;

    let (line, _) = watch_once(&server, "unused");
    assert_eq!(line, summary(3, 1, 2, 0, 0));
    assert_eq!(server.runtime(&alive_rt)["live"], true);
    for (rt, ticket) in [(&dead_rt, "MC-2"), (&zombie_rt, "MC-3")] {
        assert_eq!(server.runtime(rt)["class"], "process-dead");
        assert_eq!(server.ticket(ticket)["failure_reason"], "process_dead");
        let reap = &server.events_of(ticket, "runtime.reaped")[0];
        assert_eq!(reap["data"]["cause"], "process_dead");
        let evidence: Value =
            serde_json::from_str(reap["data"]["evidence"].as_str().unwrap()).unwrap();
        assert!(
            evidence["command"]
                .as_str()
                .unwrap()
                .starts_with("read /proc/"),
            "{evidence}"
        );
        assert_eq!(evidence["probes"].as_array().unwrap().len(), 2);
    }
    let zombie_reap = &server.events_of("MC-3", "runtime.reaped")[0];
    assert!(
        zombie_reap["data"]["evidence"]
            .as_str()
            .unwrap()
            .contains(") Z "),
        "{zombie_reap}"
    );
    alive.kill().unwrap();
    alive.wait().unwrap();
    zombie.wait().unwrap();
}

#[test]
fn umbrella_and_waiting_tickets_are_reaped_truthfully_without_failure_or_alert() {
    let (tmux, server) = tmux_and_server();
    server.open("MC-10", true);
    tmux.new_session("umbrella");
    let umbrella = server.tmux_runtime("MC-10", "umbrella");
    let parked = server.tmux_worker(&tmux, "MC-11", "parked");
    server.post(
        "/v1/tickets/MC-11/park",
        json!({"waiting_on": ["Elmar's approval"], "reason": "needs a decision"}),
    );
    assert_eq!(server.ticket("MC-11")["state"], "waiting");
    tmux.kill_session("umbrella");
    tmux.kill_session("parked");

    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(2, 0, 2, 0, 0));
    for (rt, ticket) in [(&umbrella, "MC-10"), (&parked, "MC-11")] {
        assert_eq!(server.runtime(rt)["class"], "tmux-missing", "{ticket}");
        assert_eq!(
            server.ticket(ticket)["failure_reason"],
            Value::Null,
            "{ticket}"
        );
        assert!(server.alerts_for(ticket).is_empty(), "{ticket}");
    }
}

#[test]
fn the_last_session_of_a_tmux_server_takes_the_server_with_it_and_is_reaped() {
    // No `keep` session: tmux exits with its last session, and its socket goes or refuses.
    let tmux = Tmux::bare();
    let server = Server::start();
    let solo = server.tmux_worker(&tmux, "MC-1", "solo");
    server.open("MC-2", false);
    let untargeted = server.dispatch("MC-2", json!({"transport": "tmux"})).0;
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(1, 1, 0, 1, 1));

    tmux.kill_session("solo");
    let (line, stderr) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(1, 0, 1, 1, 1), "{stderr}");
    assert!(
        stderr.contains(&untargeted) && stderr.contains("no tmux_target"),
        "{stderr}"
    );
    assert_eq!(server.runtime(&solo)["class"], "tmux-missing");
    let reap = &server.events_of("MC-1", "runtime.reaped")[0];
    let evidence: Value = serde_json::from_str(reap["data"]["evidence"].as_str().unwrap()).unwrap();
    for probe in evidence["probes"].as_array().unwrap() {
        let output = probe["output"].as_str().unwrap();
        assert!(
            output.contains("no server running") || output.contains("error connecting to"),
            "{evidence}"
        );
        assert_eq!(probe["socket"]["path"], tmux.socket_path, "{evidence}");
        assert!(
            ["absent", "refusing"].contains(&probe["socket"]["state"].as_str().unwrap()),
            "{evidence}"
        );
    }
    assert_eq!(server.runtime(&untargeted)["live"], true);
}

#[test]
fn a_crashed_agents_leftover_shell_is_process_dead_and_a_fresh_shell_is_not() {
    let (tmux, server) = tmux_and_server();
    server.open("MC-1", false);
    server.open("MC-2", false);
    // The dispatcher's way: a shell in the pane, the agent typed into it.
    for session in ["worker", "fresh"] {
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "bash --norc --noprofile",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    tmux.run(&["send-keys", "-t", "=worker:", "sleep 600", "Enter"]);
    tmux.wait_for_command("worker", "sleep");
    let worker = server.tmux_runtime("MC-1", "worker");
    // Heard from: from now on an idle shell in its pane means its agent is gone.
    server.post(&format!("/v1/runtimes/{worker}/activity"), json!({}));
    // Dispatched a moment ago and never heard from: the agent may not be started yet.
    let fresh = server.tmux_runtime("MC-2", "fresh");
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(2, 2, 0, 0, 0));

    // The agent crashes; the shell stays.
    tmux.run(&["send-keys", "-t", "=worker:", "C-c"]);
    tmux.wait_for_command("worker", "bash");
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(2, 1, 1, 0, 0));
    assert_eq!(server.runtime(&worker)["class"], "process-dead");
    assert_eq!(server.runtime(&fresh)["live"], true);
    let reap = &server.events_of("MC-1", "runtime.reaped")[0];
    assert_eq!(reap["data"]["cause"], "process_dead");
    let evidence: Value = serde_json::from_str(reap["data"]["evidence"].as_str().unwrap()).unwrap();
    let pane = &evidence["probes"][1]["pane"];
    assert_eq!(pane["pane_current_command"], "bash", "{evidence}");
    assert_eq!(pane["pane_dead"], false, "{evidence}");
    assert_eq!(pane["children"], json!([]), "{evidence}");
    assert!(pane["pane_pid"].as_u64().unwrap() > 1, "{evidence}");
    assert!(
        pane["command"]
            .as_str()
            .unwrap()
            .contains("display-message"),
        "{evidence}"
    );
}

#[test]
fn more_than_half_dead_reaps_none_unless_allowed() {
    let (tmux, server) = tmux_and_server();
    let mut runtimes = Vec::new();
    for n in 1..=5 {
        let ticket = format!("MC-{n}");
        server.open(&ticket, false);
        // Sessions that do not exist: what a watcher pointed at the wrong server sees.
        runtimes.push(server.tmux_runtime(&ticket, &format!("never-{n}")));
    }
    let (line, stderr) = watch_once(&server, &tmux.socket);
    assert_eq!(
        line,
        format!(
            "{}; suspected probe failure: 5 of 5 look dead, none reaped (--allow-mass-reap reaps them)",
            summary(5, 0, 0, 0, 0)
        )
    );
    assert!(stderr.contains("suspected probe failure"), "{stderr}");
    for rt in &runtimes {
        assert_eq!(server.runtime(rt)["live"], true);
    }
    let (line, _) = watch_once_with(&server, &tmux.socket, &["--allow-mass-reap"]);
    assert_eq!(line, summary(5, 0, 5, 0, 0));
    for rt in &runtimes {
        assert_eq!(server.runtime(rt)["class"], "tmux-missing");
    }
}

#[test]
fn a_worker_that_handed_off_is_reaped_without_a_failure_or_alert() {
    let (tmux, server) = tmux_and_server();
    server.open("MC-1", false);
    tmux.new_session("handoff");
    let (rt, nonce) = server.dispatch(
        "MC-1",
        json!({"transport": "tmux", "tmux_target": "handoff"}),
    );
    server.post(
        &format!("/v1/runtimes/{rt}/signals"),
        json!({"verdict": "REVIEW", "nonce": nonce, "payload": "ready for review"}),
    );
    tmux.kill_session("handoff");
    let (line, _) = watch_once(&server, &tmux.socket);
    assert_eq!(line, summary(1, 0, 1, 0, 0));
    let t = server.ticket("MC-1");
    assert_eq!(server.runtime(&rt)["class"], "tmux-missing");
    assert_eq!(
        (t["state"].as_str(), &t["failure_reason"]),
        (Some("review"), &Value::Null)
    );
    assert!(
        server.alerts_for("MC-1").is_empty(),
        "{:?}",
        server.alerts_for("MC-1")
    );
}

#[test]
fn a_reused_pid_is_not_the_dispatched_process() {
    let server = Server::start();
    server.open("MC-1", false);
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    // A runtime dispatched an hour ago with this pid: the process holding it now started
    // later, so it is another process that got the number.
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 3_600_000;
    let at = events::Timestamp(u64::try_from(hour_ago).unwrap()).to_rfc3339();
    let raw = json!({"events": [{
        "id": "dispatch-hour-ago", "recorded_at": at, "actor": {"name": "import", "kind": "human"},
        "type": "runtime.dispatched",
        "data": {"runtime_id": "rt_reused", "dispatch_key": "old", "attempt": 1, "agent": "codex",
                 "transport": "process", "process_id": sleeper.id(),
                 "nonce": "MC_TICKET_TURN:1:1:00000000"}
    }]});
    let r = post(server.child.addr, "/v1/tickets/MC-1/events", &raw);
    assert_eq!(r.status, 201, "{}", r.body);
    let (line, _) = watch_once(&server, "unused");
    assert_eq!(line, summary(1, 0, 1, 0, 0));
    assert_eq!(server.runtime("rt_reused")["class"], "process-dead");
    let reap = &server.events_of("MC-1", "runtime.reaped")[0];
    let evidence: Value = serde_json::from_str(reap["data"]["evidence"].as_str().unwrap()).unwrap();
    assert!(
        evidence["probes"][1]["output"]
            .as_str()
            .unwrap()
            .contains("the pid was reused"),
        "{evidence}"
    );
    assert_eq!(evidence["probes"][1]["process"]["pid"], sleeper.id());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn the_watch_loop_reaps_on_its_own_and_stops_on_sigterm() {
    let (tmux, server) = tmux_and_server();
    let rt = server.tmux_worker(&tmux, "MC-1", "worker");
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .env_remove("TMUX")
        .args(["watch", "--server", &server.url, "--interval", "1"])
        .args(["--confirm-ms", "100", "--tmux-socket-name", &tmux.socket])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        server.runtime(&rt)["live"],
        true,
        "a live session is left alone"
    );
    tmux.kill_session("worker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.runtime(&rt)["live"] == true {
        assert!(Instant::now() < deadline, "not reaped within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.runtime(&rt)["class"], "tmux-missing");
    assert_eq!(sigterm(&mut watcher).code(), Some(0));
}

#[test]
fn an_unreachable_server_is_a_nonzero_exit_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = mc(
        &[
            "watch",
            "--once",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mc-ledger: cannot reach the server"),
        "{err}"
    );
}

#[test]
fn signal_sends_pane_text_and_reports_the_answer() {
    let server = Server::start();
    server.open("MC-1", false);
    let (rt, nonce) = server.dispatch("MC-1", json!({"transport": "tmux", "tmux_target": "w"}));
    let signal = |pane: &str| {
        mc(
            &["signal", "--server", &server.url, "--runtime", &rt],
            Some(pane),
        )
    };

    // A pane with nothing in it that reads as a signal: one clear line, non-zero.
    let out = signal("$ cargo test\nall green\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("mc-ledger: server answered 422"), "{err}");
    assert!(server.events_of("MC-1", "runtime.signaled").is_empty());

    // A structured signal in the pane, wrapped by the terminal, as seed 000 shows.
    let pane = format!(
        "working…\n{{\"mc_signal\": {{\"verdict\": \"REVIEW\", \"nonce\": \"{nonce}\", \"payload\": \"audit done\"}}}}\n$ "
    );
    let out = signal(&pane);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("201 appended runtime.signaled REVIEW to MC-1 at position"),
        "{stdout}"
    );
    let signaled = server.events_of("MC-1", "runtime.signaled");
    assert_eq!(
        signaled[0]["actor"],
        json!({"name": "agent", "kind": "agent"})
    );
    assert_eq!(signaled[0]["data"]["payload"], "audit done");
    // The same pane again is a duplicate, not a second verdict.
    let out = signal(&pane);
    assert!(
        text(&out.stdout).starts_with("200 duplicate"),
        "{}",
        text(&out.stdout)
    );

    let out = mc(
        &["signal", "--server", &server.url, "--runtime", "rt_nope"],
        Some("DONE: x\n"),
    );
    assert!(
        text(&out.stderr).starts_with("mc-ledger: server answered 404"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn harvest_sends_a_claude_result_or_codex_events() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    server.open("MC-1", false);
    server.open("MC-2", false);
    let (claude_rt, _) = server.dispatch("MC-1", json!({"transport": "process", "process_id": 1}));
    let (codex_rt, _) = server.dispatch("MC-2", json!({"transport": "process", "process_id": 1}));

    let harvest = |runtime: &str, file: &[&str]| {
        let mut args = vec!["harvest", "--server", &server.url, "--runtime", runtime];
        args.extend_from_slice(file);
        mc(&args, None)
    };
    let result = dir.path().join("result.json");
    std::fs::write(
        &result,
        json!({"type": "result", "subtype": "error_max_turns", "is_error": false,
               "num_turns": 200, "total_cost_usd": 4.25, "session_id": "s-1"})
        .to_string(),
    )
    .unwrap();
    let out = harvest(&claude_rt, &["--claude"]);
    assert!(!out.status.success(), "a file is required");
    let out = harvest(&claude_rt, &["--claude", result.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).split(" at position").next(),
        Some("201 appended runtime.harvested partial/max_turns to MC-1")
    );
    let harvested = &server.events_of("MC-1", "runtime.harvested")[0];
    assert_eq!(
        harvested["actor"],
        json!({"name": "controller", "kind": "controller"})
    );
    assert_eq!(
        (
            harvested["data"]["turns"].as_u64(),
            harvested["data"]["cost_usd"].as_f64()
        ),
        (Some(200), Some(4.25))
    );

    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        [
            json!({"type": "thread.started", "thread_id": "t-1"}),
            json!({"type": "turn.started"}),
            json!({"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}}),
        ]
        .iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>(),
    )
    .unwrap();
    let out = harvest(
        &codex_rt,
        &[
            "--codex",
            events.to_str().unwrap(),
            "--actor",
            "dispatch.sh",
            "--actor-kind",
            "orchestrator",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("201 appended runtime.harvested completed/success, runtime.usage_recorded 10 input and 5 output tokens to MC-2"),
        "{}",
        text(&out.stdout)
    );
    let harvested = &server.events_of("MC-2", "runtime.harvested")[0];
    assert_eq!(
        harvested["actor"],
        json!({"name": "dispatch.sh", "kind": "orchestrator"})
    );

    // A refusal from the server is one clear line and a non-zero exit.
    let out = harvest("rt_nope", &["--codex", events.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("mc-ledger: server answered 404"), "{err}");
}
