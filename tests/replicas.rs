//! Several `serve` replicas on one PostgreSQL database (SPEC §10), as real processes on real
//! sockets: writers spread over three replicas while one is SIGKILLed and restarted; an outage
//! of the database made by cutting a TCP proxy the test runs between a replica and PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn actor(body: Value) -> Value {
    with_actor(body, "tester", "human")
}

fn open_ticket(addr: SocketAddr, id: &str) {
    open_ticket_as(addr, id, id, ("tester", "human"));
}

/// Every event a replica serves, paging `/v1/events`.
fn all_events(addr: SocketAddr) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get(addr, &format!("/v1/events?after={after}&limit=1000")).json();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        out.extend(events);
        match page["next_cursor"].as_u64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

fn head(addr: SocketAddr) -> u64 {
    get(addr, "/readyz").json()["head"].as_u64().unwrap_or(0)
}

/// Waits until `cond` holds, for at most `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Reads an SSE stream from `after` until it has seen position `until`; returns the ids.
fn sse_ids(addr: SocketAddr, until: Arc<AtomicU64>, done: Arc<AtomicBool>) -> Vec<u64> {
    let path = "/v1/events/stream?after=0";
    let stream = send_head(addr, "GET", path, &[], Duration::from_millis(500)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut ids = Vec::new();
    let mut line = String::new();
    let started = Instant::now();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(id) = line.trim_end().strip_prefix("id: ") {
                    ids.push(id.parse::<u64>().unwrap());
                }
            }
            Err(_) => {}
        }
        let target = until.load(Ordering::Relaxed);
        if done.load(Ordering::Relaxed) && ids.last().copied().unwrap_or(0) >= target {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    ids
}

/// Three replicas, writers spread over them, one replica SIGKILLed mid-load and restarted:
/// every acknowledged event is there, positions are gapless, the chain verifies, all replicas
/// serve equal views, an SSE stream on one replica sees every event in order, and a dispatch
/// retried on another replica answers the original runtime.
#[test]
fn three_replicas_share_one_ledger_through_a_sigkill() {
    let pg = PgSchema::new("replicas");
    let url = pg.store_url();
    let (mut replicas, addrs) = spawn_replicas(&url, 3);
    let tickets: Vec<String> = (1..=12).map(|i| format!("MC-{i}")).collect();
    for t in &tickets {
        open_ticket(addrs[0], t);
    }

    let until = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sse = {
        let (until, done) = (until.clone(), done.clone());
        let addr = addrs[1];
        std::thread::spawn(move || sse_ids(addr, until, done))
    };

    // Writers: each comments on the tickets through one replica and keeps what was acked.
    let acked: Arc<Mutex<Vec<(u64, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let victim = Arc::new(Mutex::new(addrs[2]));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (acked, stop, victim) = (acked.clone(), stop.clone(), victim.clone());
            let addrs = addrs.clone();
            let tickets = tickets.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let addr = if w % 3 == 2 {
                        *victim.lock().unwrap()
                    } else {
                        addrs[w % 3]
                    };
                    let ticket = &tickets[(w + n) % tickets.len()];
                    n += 1;
                    let body = actor(json!({"body": format!("w{w} n{n}")})).to_string();
                    let path = format!("/v1/tickets/{ticket}/comments");
                    if let Some(r) = try_request(addr, "POST", &path, Some(&body), None) {
                        if r.status == 201 {
                            acked.lock().unwrap().push(first_event(&r.json()));
                        }
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL the third replica mid-load, then start a new one on the same database.
    replicas[2].child.kill().unwrap();
    replicas[2].child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    replicas[2] = spawn_serve(&["--store", &url]);
    *victim.lock().unwrap() = replicas[2].addr;
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();

    // A dispatch retried on another replica answers the original runtime.
    let dispatch = actor(json!({"dispatch_key": "k-1", "agent": "claude", "transport": "tmux"}));
    let first = post(addrs[0], "/v1/tickets/MC-1/dispatch", &dispatch);
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post(addrs[2], "/v1/tickets/MC-1/dispatch", &dispatch);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["runtime_id"], first.json()["runtime_id"]);
    assert_eq!(again.json()["duplicate"], true);

    let final_head = head(addrs[0]);
    until.store(final_head, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    for &addr in &addrs {
        assert!(
            eventually(Duration::from_secs(1), || head(addr) == final_head),
            "replica {addr} follows the log within 1 s (head {} of {final_head})",
            head(addr)
        );
    }

    let events = all_events(addrs[1]);
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=final_head).collect::<Vec<_>>(),
        "gapless, in order"
    );
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 50, "{} appends acknowledged", acked.len());
    for (position, id) in acked.iter() {
        assert!(
            ids.contains(id.as_str()),
            "acknowledged event {id} at {position} is lost"
        );
        assert_eq!(
            events[usize::try_from(*position - 1).unwrap()]["id"],
            id.as_str()
        );
    }

    let views: Vec<String> = addrs
        .iter()
        .map(|&a| get(a, "/v1/tickets?limit=1000").body)
        .collect();
    assert_eq!(views[0], views[1], "replicas serve equal views");
    assert_eq!(
        views[0], views[2],
        "the restarted replica serves equal views"
    );

    let seen = sse.join().unwrap();
    assert_eq!(
        seen,
        (1..=final_head).collect::<Vec<_>>(),
        "SSE saw every event in order"
    );

    let said = mc_ledger_ok(&["verify", "--store", &url]);
    assert!(said.contains(&format!("ok: {final_head} events")), "{said}");
    for mut r in replicas {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection closed, new ones
/// refused) and restore, or set to lose answers: once a client sends a COMMIT in a
/// transaction whose statements carried a marker, PostgreSQL still gets everything but no
/// answer reaches any client (a network that fails between COMMIT and its answer).
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    /// Answers are thrown away while set.
    swallowing: Arc<AtomicBool>,
    /// The marker that arms the swallowing at the next COMMIT.
    marker: Arc<Mutex<Option<Vec<u8>>>>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicU64::new(0));
        let swallowing = Arc::new(AtomicBool::new(false));
        let marker: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let (up2, generation2) = (up.clone(), generation.clone());
        let (swallowing2, marker2) = (swallowing.clone(), marker.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let born = generation2.load(Ordering::Relaxed);
                for (mut from, mut to, upstream) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let generation = generation2.clone();
                    let swallowing = swallowing2.clone();
                    let marker = marker2.clone();
                    std::thread::spawn(move || {
                        from.set_read_timeout(Some(Duration::from_millis(50)))
                            .unwrap();
                        let mut buf = [0u8; 16 * 1024];
                        let mut marked = false;
                        loop {
                            if generation.load(Ordering::Relaxed) != born {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    let chunk = &buf[..n];
                                    if upstream {
                                        let armed = marker.lock().unwrap().clone();
                                        if let Some(m) = armed {
                                            marked |= contains(chunk, &m);
                                            if marked && contains(chunk, b"COMMIT\0") {
                                                // Before PostgreSQL can answer it.
                                                swallowing.store(true, Ordering::SeqCst);
                                            }
                                        }
                                    } else if swallowing.load(Ordering::SeqCst) {
                                        continue;
                                    }
                                    if to.write_all(chunk).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            addr,
            up,
            generation,
            swallowing,
            marker,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// From the COMMIT of a transaction carrying `marker` on, answers are lost.
    fn lose_answers_after(&self, marker: &str) {
        *self.marker.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    fn restore(&self) {
        *self.marker.lock().unwrap() = None;
        self.swallowing.store(false, Ordering::SeqCst);
        self.up.store(true, Ordering::Relaxed);
    }
}

/// The URL of `pg`'s schema through `proxy`.
fn through(proxy: &Proxy, pg: &PgSchema) -> String {
    let url = pg
        .store_url()
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(url, pg.store_url(), "the replica goes through the proxy");
    url
}

/// The worst moment of an outage: the COMMIT reaches PostgreSQL and commits, its answer never
/// comes back, and the database stays unreachable. The replica cannot know and answers 503;
/// the client sends the command again with the same `Idempotency-Key`, on another replica and
/// on the first one once the network is back: both answer 200 with the original, and the
/// comment is in the log once.
#[test]
fn a_commit_whose_answer_is_lost_is_applied_once_when_retried() {
    let pg = PgSchema::new("lost_answer");
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap());
    let cut_off = spawn_serve(&["--store", &through(&proxy, &pg)]);
    let direct = spawn_serve(&["--store", &pg.store_url()]);
    open_ticket(direct.addr, "MC-1");
    assert!(eventually(Duration::from_secs(3), || head(cut_off.addr) == 1));

    let body = actor(json!({"body": "marker-7f3a: recorded once"}));
    proxy.lose_answers_after("marker-7f3a");
    let first = post_keyed(cut_off.addr, "/v1/tickets/MC-1/comments", &body, "lost-1");
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.json()["code"], "store_unavailable");
    assert_eq!(head(direct.addr), 2, "yet the COMMIT happened");

    let elsewhere = post_keyed(direct.addr, "/v1/tickets/MC-1/comments", &body, "lost-1");
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);
    assert_eq!(elsewhere.json()["duplicate"], true);
    assert_eq!(elsewhere.json()["position"], 2);

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || get(cut_off.addr, "/readyz")
            .status
            == 200),
        "the replica recovers by itself"
    );
    let again = post_keyed(cut_off.addr, "/v1/tickets/MC-1/comments", &body, "lost-1");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["position"], 2);
    for addr in [cut_off.addr, direct.addr] {
        let bodies: Vec<String> = all_events(addr)
            .iter()
            .filter_map(|e| e["data"]["body"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(bodies, vec!["marker-7f3a: recorded once"], "once, on both");
    }
    let written = post(
        cut_off.addr,
        "/v1/tickets/MC-1/comments",
        &actor(json!({"body": "after"})),
    );
    assert_eq!(
        written.status, 201,
        "the replica writes again: {}",
        written.body
    );
    assert_eq!(written.json()["position"], 3);
    for mut r in [cut_off, direct] {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
}

/// The database goes away under a replica: writes answer 503 `store_unavailable` and append
/// nothing, reads keep serving the last folded projections, `/readyz` is 503; when it is back
/// the replica resumes by itself, and a retried command is appended once.
#[test]
fn an_outage_answers_503_serves_reads_and_recovers_without_a_restart() {
    let pg = PgSchema::new("outage");
    let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(target);
    let url = through(&proxy, &pg);
    let mut replica = spawn_serve(&["--store", &url]);
    let addr = replica.addr;
    open_ticket(addr, "MC-1");
    let comment = |n: u32| actor(json!({"body": format!("comment {n}")}));
    assert_eq!(
        post(addr, "/v1/tickets/MC-1/comments", &comment(1)).status,
        201
    );

    proxy.cut();
    let refused = post(addr, "/v1/tickets/MC-1/comments", &comment(2));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["code"], "store_unavailable");
    let read = get(addr, "/v1/tickets/MC-1");
    assert_eq!(read.status, 200, "reads are served from memory");
    assert_eq!(read.json()["version"], 2);
    assert!(
        eventually(Duration::from_secs(3), || get(addr, "/readyz").status
            == 503),
        "/readyz says the store is unavailable"
    );
    assert_eq!(
        post(addr, "/v1/tickets/MC-1/comments", &comment(3)).status,
        503
    );

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(5), || get(addr, "/readyz").status
            == 200),
        "the replica recovers by itself"
    );
    // The client retries the refused command once the store is back: appended once.
    let retried = post(addr, "/v1/tickets/MC-1/comments", &comment(2));
    assert_eq!(retried.status, 201, "{}", retried.body);
    let events = all_events(addr);
    let bodies: Vec<&str> = events
        .iter()
        .filter_map(|e| e["data"]["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        vec!["comment 1", "comment 2"],
        "nothing lost, nothing doubled"
    );
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2, 3]);
    let _ = replica.child.kill();
    let _ = replica.child.wait();
}

/// A token created against the PostgreSQL store works on every replica, one created or revoked
/// while they run is in force on both within a second, and the snapshot a
/// replica saves on SIGTERM is in the database, where the next replica starts from it.
#[test]
fn tokens_and_snapshots_live_in_the_database_for_every_replica() {
    let pg = PgSchema::new("home");
    let url = pg.store_url();
    let token = mc_ledger_ok(&[
        "token", "create", "--scope", "admin", "--name", "ops", "--store", &url,
    ])
    .trim()
    .to_owned();
    let mut a = spawn_serve(&["--store", &url]);
    let mut b = spawn_serve(&["--store", &url]);
    for replica in [&a, &b] {
        assert_eq!(
            get(replica.addr, "/v1/tickets").status,
            401,
            "tokens are configured"
        );
        let r = request(replica.addr, "GET", "/v1/tickets", None, Some(&token));
        assert_eq!(r.status, 200, "the token works on every replica");
    }
    // A token created and revoked while the replicas run: in force on both within a second.
    let late = mc_ledger_ok(&[
        "token",
        "create",
        "--scope",
        "read",
        "--name",
        "late",
        "--kind",
        "controller",
        "--store",
        &url,
    ])
    .trim()
    .to_owned();
    let started = Instant::now();
    for replica in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(3), || request(
                replica.addr,
                "GET",
                "/v1/tickets",
                None,
                Some(&late)
            )
            .status
                == 200),
            "a new token works without a restart"
        );
    }
    eprintln!(
        "new token accepted by both replicas after {:?}",
        started.elapsed()
    );
    let listed = mc_ledger_ok(&["token", "list", "--json", "--store", &url]);
    let late_id = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == "late")
        .expect("token list shows it")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!listed.contains(&late), "no secret in token list");
    mc_ledger_ok(&["token", "revoke", &late_id, "--store", &url]);
    let revoked = Instant::now();
    for replica in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(3), || {
                let r = request(replica.addr, "GET", "/v1/tickets", None, Some(&late));
                r.status == 401 && r.json()["code"] == "token_revoked"
            }),
            "a revoked token is refused without a restart"
        );
    }
    eprintln!(
        "revocation in force on both replicas after {:?}",
        revoked.elapsed()
    );
    // The token's actor is recorded; the body need not name one.
    let body = json!({"id": "MC-9", "title": "snapshot me"}).to_string();
    let r = request(a.addr, "POST", "/v1/tickets", Some(&body), Some(&token));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["events"][0]["actor"]["name"], "ops");
    let said = mc_ledger_ok(&["replay", "MC-9", "--store", &url]);
    assert!(
        said.contains("by ops (human) with tok_"),
        "replay shows who wrote it: {said}"
    );
    assert!(sigterm(&mut a.child).success());
    let store = store_pg::PgStore::open(pg.config.clone()).unwrap();
    let snapshot = store
        .get_blob(service::snapshot::FILE_NAME)
        .unwrap()
        .expect("a snapshot row after a clean stop");
    let loaded = service::snapshot::decode(&snapshot).unwrap();
    assert_eq!(loaded.ledger.position(), 1);
    let store = std::sync::Arc::new(store);
    let ledger = service::load_projections(
        &store.read_handle(),
        &service::home::Home::Pg(service::home::PgBlobs::of(store.clone())),
    );
    assert_eq!(
        ledger.position(),
        1,
        "a new replica starts from the shared snapshot"
    );
    let _ = b.child.kill();
    let _ = b.child.wait();
}

/// `copy` moves a ledger sled → PostgreSQL → sled keeping positions, ids and hashes: `verify`
/// reports the same head hash on all three; a non-empty foreign target is refused.
#[test]
fn copy_keeps_positions_ids_and_hashes_both_ways() {
    let bin = env!("CARGO_BIN_EXE_mc-ledger");
    let run = mc_ledger_ok;
    let source = tempfile::tempdir().unwrap();
    let back = tempfile::tempdir().unwrap();
    let src = source.path().to_str().unwrap().to_owned();
    run(&["demo", "--data-dir", &src]);
    let pg = PgSchema::new("copy");
    let url = pg.store_url();
    run(&["copy", "--from", &format!("sled:{src}"), "--to", &url]);
    let dst = format!("sled:{}", back.path().join("again").display());
    run(&["copy", "--from", &url, "--to", &dst]);
    let hashes: Vec<String> = [
        run(&["verify", "--data-dir", &src]),
        run(&["verify", "--store", &url]),
        run(&["verify", "--store", &dst]),
    ]
    .iter()
    .map(|said| said.split("head hash ").nth(1).unwrap().trim().to_owned())
    .collect();
    assert_eq!(hashes[0], hashes[1], "sled and PostgreSQL agree");
    assert_eq!(hashes[0], hashes[2], "and back");
    let exported = run(&["export", "--store", &url]);
    let original = run(&["export", "--data-dir", &src]);
    assert_eq!(
        exported, original,
        "every envelope equal, positions and ids included"
    );
    // Copying again resumes on the full prefix: nothing to do.
    let again = run(&["copy", "--from", &format!("sled:{src}"), "--to", &url]);
    assert!(again.contains("copied 0 events"), "{again}");
    // Another ledger in the target (the demo again: other times, other hashes) is refused.
    let other = tempfile::tempdir().unwrap();
    let oth = other.path().to_str().unwrap().to_owned();
    run(&["demo", "--data-dir", &oth]);
    let before = run(&["export", "--data-dir", &oth]);
    let refused = Command::new(bin)
        .args(["copy", "--from", &url, "--to", &format!("sled:{oth}")])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "copying onto another ledger is refused"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refusing to mix two ledgers"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        run(&["export", "--data-dir", &oth]),
        before,
        "and nothing was written"
    );
}

/// A schema migrated by a newer mc-ledger is refused with a clear error, not written into.
#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let pg = PgSchema::new("newer");
    drop(store_pg::PgStore::open(pg.config.clone()).unwrap());
    let bumped = Command::new("psql")
        .arg(common::test_pg_url())
        .args([
            "-qc",
            &format!(
                "INSERT INTO {}.migrations (version) VALUES ({})",
                pg.config.schema,
                store_pg::SCHEMA_VERSION + 1
            ),
        ])
        .status()
        .unwrap();
    assert!(bumped.success());
    let err = store_pg::PgStore::open(pg.config.clone())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("newer than this mc-ledger knows"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["verify", "--store", &pg.store_url()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade mc-ledger"));
}
