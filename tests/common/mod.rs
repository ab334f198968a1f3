//! A tiny HTTP/1.1 client over a real TCP socket, and helpers to run the server: in-process
//! on port 0, or as the real `mc-ledger` binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Every header, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Reply {
    try_request(addr, method, path, body, token).expect("connect")
}

/// `None` when the server cannot be reached (e.g. while it shuts down).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<Reply> {
    try_request_with(addr, method, path, body, token, &[])
}

/// A POST with an `Idempotency-Key`.
pub fn post_keyed(addr: SocketAddr, path: &str, body: &Value, key: &str) -> Reply {
    try_request_with(
        addr,
        "POST",
        path,
        Some(&body.to_string()),
        None,
        &[("Idempotency-Key", key)],
    )
    .expect("connect")
}

/// A request with extra headers; `None` when the server cannot be reached.
pub fn try_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let body = body.unwrap_or("");
    let authorization = token.map(|t| format!("Bearer {t}"));
    let length = body.len().to_string();
    let mut all = vec![("Connection", "close")];
    if let Some(a) = &authorization {
        all.push(("Authorization", a));
    }
    all.extend_from_slice(headers);
    if method != "GET" {
        all.extend([
            ("Content-Type", "application/json"),
            ("Content-Length", &length),
        ]);
    }
    let mut stream = send_head(addr, method, path, &all, Duration::from_secs(30))?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    Some(parse(&raw))
}

/// Connects to `addr` and writes the head of a request, `method path` with the Host and
/// `headers`; the stream, to write a body to and read the answer from (each read waits at most
/// `read_timeout`). `None` when the server cannot be reached.
pub fn send_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    read_timeout: Duration,
) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    Some(stream)
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut content_type = String::new();
    let mut chunked = false;
    let mut headers = Vec::new();
    for line in head.lines().skip(1) {
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        match k.to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_owned(),
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        content_type,
        body,
        headers,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None, None)
}

pub fn post_with_token(addr: SocketAddr, path: &str, body: &Value, token: &str) -> Reply {
    request(addr, "POST", path, Some(&body.to_string()), Some(token))
}

pub fn get_with_headers(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_request_with(addr, "GET", path, None, None, headers).expect("connect")
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    request(addr, "POST", path, Some(&body.to_string()), None)
}

/// A body with the standard actor added.
pub fn with_actor(mut body: Value, name: &str, kind: &str) -> Value {
    body["actor"] = serde_json::json!({"name": name, "kind": kind});
    body
}

/// An in-process server on a real socket (port 0), on its own runtime thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub head: std::sync::Arc<dyn store::EventReader>,
    _runtime: tokio::runtime::Runtime,
    _dir: Option<tempfile::TempDir>,
}

pub fn start_in_process(dir: &Path) -> TestServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opened = api::server::open(dir).expect("opens");
    let head = opened.state.read.shared.reader.clone();
    let app = api::server::app(opened.state.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let _keep = opened;
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    TestServer {
        addr,
        head,
        _runtime: runtime,
        _dir: None,
    }
}

pub fn start_temp() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_in_process(dir.path());
    server._dir = Some(dir);
    server
}

/// The real binary as a child process.
pub struct Child {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

/// A server a test started ends with the test, on every path, panics included: a test that
/// stopped it already (SIGTERM, SIGKILL) leaves nothing to kill, and that is fine.
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_binary(data_dir: &Path) -> Child {
    let dir = data_dir.to_string_lossy().into_owned();
    spawn_serve(&["--data-dir", &dir])
}

/// `mc-ledger serve` with these store arguments, on a free port, once it listens.
pub fn spawn_serve(store_args: &[&str]) -> Child {
    spawn_serve_under(&[], store_args)
}

/// Whether the slow tests run (`MC_LEDGER_SLOW_TESTS=1`, as CI sets); says so when not.
pub fn slow_tests(needs: &str) -> bool {
    let on = std::env::var_os("MC_LEDGER_SLOW_TESTS").is_some();
    if !on {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 ({needs})");
    }
    on
}

/// `mc-ledger serve` run by `launcher` (a command and its arguments that end by running the
/// binary, e.g. `fiu-run -x`), or directly when `launcher` is empty.
pub fn spawn_serve_under(launcher: &[&str], store_args: &[&str]) -> Child {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let binary = env!("CARGO_BIN_EXE_mc-ledger");
    let mut command = match launcher.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => std::process::Command::new(binary),
    };
    let mut child = command
        .arg("serve")
        .args(store_args)
        .args(["--listen", &addr.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(serve_log(port))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "server said: {line}");
    Child { child, addr }
}

/// Where a spawned server's log goes: nowhere, or with `MC_LEDGER_TEST_SERVE_LOG=DIR` to
/// `DIR/serve-PORT.log` (to see what a server did in a failing test).
fn serve_log(port: u16) -> std::process::Stdio {
    match std::env::var_os("MC_LEDGER_TEST_SERVE_LOG") {
        Some(dir) => std::fs::File::create(Path::new(&dir).join(format!("serve-{port}.log")))
            .map_or_else(|_| std::process::Stdio::null(), Into::into),
        None => std::process::Stdio::null(),
    }
}

pub fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

/// The PostgreSQL server the tests use (`MC_LEDGER_TEST_PG`, default the local cluster).
pub fn test_pg_url() -> String {
    std::env::var("MC_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs SQL on the test database as its superuser; panics with psql's answer when it fails.
pub fn psql(sql: &str) {
    run_ok(std::process::Command::new("psql").args([
        &test_pg_url(),
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        sql,
    ]));
}

/// A schema of its own on the test database for one test, dropped when it ends.
pub struct PgSchema {
    pub config: store_pg::PgConfig,
}

impl PgSchema {
    pub fn new(name: &str) -> PgSchema {
        let schema = format!("t_{name}_{}", std::process::id());
        let config = store_pg::PgConfig::parse(&test_pg_url(), Some(&schema)).expect("url");
        store_pg::PgStore::drop_schema(&config).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {}: {e}; scripts/test.sh starts it",
                config.url
            )
        });
        PgSchema { config }
    }

    /// `--store URL` for the binary.
    pub fn store_url(&self) -> String {
        format!("{}?schema={}", self.config.url, self.config.schema)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = store_pg::PgStore::drop_schema(&self.config);
    }
}

/// Runs `mc-ledger ARGS` to its end and answers its stdout; a failure fails the test with
/// the command's stderr.
pub fn mc_ledger_ok(args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mc-ledger"));
    let out = run_ok(command.args(args));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command` to its end; a failure fails the test with the command and its stderr.
pub fn run_ok(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The seed of a randomized test: `PROPTEST_RNG_SEED` to replay one, else from the clock;
/// printed, so every run can be replayed.
pub fn logged_seed(what: &str) -> u64 {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                .into()
        });
    println!("{what} seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    seed
}

/// Runs `command` with `stdin` written to it and its stdout and stderr captured.
pub fn output_with_stdin(mut command: std::process::Command, stdin: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `n` dispatches released at once by a barrier, the i-th on ticket `MC-{i+1}` through
/// `addrs[i % len]`, each with `body` plus an orchestrator actor; the answers in racer order.
pub fn race_dispatches(addrs: &[SocketAddr], n: usize, body: &Value) -> Vec<(u16, Value)> {
    let (addrs, body) = (addrs.to_vec(), body.clone());
    at_once(n, move |i| {
        let mut body = with_actor(body.clone(), "luci", "orchestrator");
        body["tmux_target"] = serde_json::json!(format!("mc-{i}"));
        let addr = addrs[i % addrs.len()];
        let r = post(addr, &format!("/v1/tickets/MC-{}/dispatch", i + 1), &body);
        (r.status, r.json())
    })
}

/// Runs `f(0)` … `f(n - 1)` on `n` threads that start together (a barrier); their results, in
/// order.
pub fn at_once<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let f = std::sync::Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The head a server has folded, from `/readyz`.
pub fn ready_head(addr: SocketAddr) -> u64 {
    get(addr, "/readyz").json()["head"].as_u64().unwrap_or(0)
}

/// Waits (at most 5 s) until every replica serves the highest head any of them serves:
/// replicas follow each other's commits (LISTEN plus a poll), so a read at one right after a
/// write through another may lag by a few milliseconds.
pub fn caught_up(addrs: &[SocketAddr]) {
    let started = std::time::Instant::now();
    loop {
        let heads: Vec<u64> = addrs.iter().map(|a| ready_head(*a)).collect();
        if heads.iter().all(|h| Some(h) == heads.iter().max()) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "replicas still apart after 5 s: heads {heads:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A token made with `mc-ledger token create` on a sled data directory (before its server
/// starts); the secret.
pub fn create_token(data_dir: &Path, kind: &str, scope: &str, name: &str) -> String {
    let dir = data_dir.display().to_string();
    mc_ledger_ok(&[
        "token",
        "create",
        "--scope",
        scope,
        "--kind",
        kind,
        "--name",
        name,
        "--data-dir",
        &dir,
    ])
    .trim()
    .to_owned()
}

/// A ticket view's tasks, each as `title status`.
pub fn task_lines(ticket: &Value) -> Vec<String> {
    ticket["tasks"]["items"]
        .as_array()
        .expect("a ticket view's tasks")
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["title"].as_str().unwrap(),
                t["status"].as_str().unwrap()
            )
        })
        .collect()
}

/// The entries waiting in a hook spool, in order.
pub fn spooled(spool: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A write's answer, which must be 201 (recorded) or 200 (already recorded): its JSON.
pub fn written(path: &str, r: Reply) -> Value {
    assert!(
        r.status == 201 || r.status == 200,
        "{path}: {} {}",
        r.status,
        r.body
    );
    r.json()
}

/// Each `(path, token, status)`: a GET of the path with the token answers the status.
pub fn assert_gets(addr: SocketAddr, cases: &[(&str, Option<&str>, u16)]) {
    for (path, token, want) in cases {
        let r = request(addr, "GET", path, None, *token);
        assert_eq!(r.status, *want, "GET {path} with {token:?}: {}", r.body);
    }
}

/// Posts `body` to `path` with the actor `actor` (name, kind); it must be recorded (201): the
/// answer's JSON.
pub fn recorded(addr: SocketAddr, path: &str, body: Value, actor: (&str, &str)) -> Value {
    let r = post(addr, path, &with_actor(body, actor.0, actor.1));
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.json()
}

/// Opens ticket `id` titled `title` as `actor` (name, kind); it must be recorded (201).
pub fn open_ticket_as(addr: SocketAddr, id: &str, title: &str, actor: (&str, &str)) {
    recorded(
        addr,
        "/v1/tickets",
        serde_json::json!({"id": id, "title": title}),
        actor,
    );
}

/// The position and the id of the first event a write appended, from its answer.
pub fn first_event(answer: &Value) -> (u64, String) {
    let event = &answer["events"][0];
    (
        answer["position"].as_u64().unwrap(),
        event["id"].as_str().unwrap().to_owned(),
    )
}

/// A strategy that picks one of `choices`, each as likely as any other, as an owned string.
pub fn one_of(
    choices: &'static [&'static str],
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy;
    proptest::sample::select(choices).prop_map(str::to_owned)
}

/// The first 1000 events of the ledger a server serves.
pub fn ledger_events(addr: SocketAddr) -> Vec<Value> {
    get(addr, "/v1/events?limit=1000").json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// The string `field` of each of `items`, in order; an item without it fails the test.
pub fn strs<'a>(items: impl IntoIterator<Item = &'a Value>, field: &str) -> Vec<&'a str> {
    items
        .into_iter()
        .map(|i| {
            i[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field} in {i}"))
        })
        .collect()
}

/// The server at `addr` shows an open alert of `kind` whose `field` is `value`.
pub fn assert_alert(addr: SocketAddr, kind: &str, field: &str, value: &str) {
    let alerts = get(addr, "/v1/alerts").json();
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == kind && a[field] == value),
        "no {kind} alert with {field} {value}: {alerts}"
    );
}

/// How many events a server serves (up to 1000).
pub fn event_count(addr: SocketAddr) -> usize {
    ledger_events(addr).len()
}

/// Posts `body` to `path` as the orchestrator luci; it must be written (201, or 200 when
/// already recorded): the answer's JSON.
pub fn orchestrated(addr: SocketAddr, path: &str, body: Value) -> Value {
    written(
        path,
        post(addr, path, &with_actor(body, "luci", "orchestrator")),
    )
}

/// A race for a scarce resource: opens the racers' tickets through `addrs[0]`, then `n`
/// dispatches of `body` race (as `race_dispatches` runs them) and the replicas catch up. The
/// winners' runtime ids, sorted, and how many events the race appended; each loser must be a
/// 409 that `refused` accepts, and any other answer fails the test.
pub fn race_winners(
    addrs: &[SocketAddr],
    n: usize,
    body: &Value,
    refused: impl Fn(&Value),
) -> (Vec<String>, usize) {
    for i in 0..n {
        orchestrated(
            addrs[0],
            "/v1/tickets",
            serde_json::json!({"id": format!("MC-{}", i + 1), "title": "racer"}),
        );
    }
    let before = event_count(addrs[0]);
    let answers = race_dispatches(addrs, n, body);
    caught_up(addrs);
    let mut winners = Vec::new();
    for (status, body) in answers {
        match status {
            201 => winners.push(body["runtime_id"].as_str().unwrap().to_owned()),
            409 => refused(&body),
            other => panic!("dispatch answered {other}: {body}"),
        }
    }
    winners.sort();
    (winners, event_count(addrs[0]) - before)
}

/// `n` replicas of `mc-ledger serve --store URL`, and their addresses.
pub fn spawn_replicas(url: &str, n: usize) -> (Vec<Child>, Vec<SocketAddr>) {
    let replicas: Vec<Child> = (0..n).map(|_| spawn_serve(&["--store", url])).collect();
    let addrs = replicas.iter().map(|r| r.addr).collect();
    (replicas, addrs)
}

/// Stops each server with SIGTERM; each must exit 0.
pub fn stop_all(servers: &mut [Child]) {
    for server in servers {
        assert_eq!(sigterm(&mut server.child).code(), Some(0));
    }
}

/// The real binary serving a fresh temporary data directory: the directory, which must outlive
/// the server (bind it first, so that it drops last), and the server.
pub fn spawn_temp_binary() -> (tempfile::TempDir, Child) {
    spawn_temp_serve(&[])
}

/// `mc-ledger serve` with `more` arguments on a fresh temporary data directory: the directory
/// (bind it first, so that it drops last), and the server.
pub fn spawn_temp_serve(more: &[&str]) -> (tempfile::TempDir, Child) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let server = spawn_serve(&[&["--data-dir", data.as_str()], more].concat());
    (dir, server)
}
