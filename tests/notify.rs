//! Subscriptions end to end (SPEC §15), with the real binary and real receivers on loopback:
//! at least once and in order through a receiver that fails every way it can and a SIGKILL of
//! the server; signatures checked by the published `standardwebhooks` library; alert notices
//! raised, reminded and cleared; 410 pauses; a delivery failing past `--delivery-park-after`
//! parks and stops its subscription until it is resumed; two PostgreSQL replicas, one delivers,
//! the other takes over within 10 s of its SIGKILL.

mod common;
#[path = "notify/receiver.rs"]
mod receiver;

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use receiver::{first_seen, Answer, Receiver};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Fast retries, short timeouts: what makes faults cheap to go through in a test.
const FAST: [&str; 4] = ["--delivery-retry-base", "100ms", "--delivery-timeout", "1s"];

fn human(mut body: Value) -> Value {
    body["actor"] = json!({"name": "ops", "kind": "human"});
    body
}

fn ok(addr: SocketAddr, path: &str, body: Value) -> Value {
    let r = post(addr, path, &body);
    assert!(r.status < 300, "POST {path}: {} {}", r.status, r.body);
    r.json()
}

fn subscribe(addr: SocketAddr, body: Value) -> Value {
    let mut body = human(body);
    if body.get("secret").is_none() {
        body["secret"] = json!(SECRET);
    }
    let r = post(addr, "/v1/subscriptions", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn open(addr: SocketAddr, id: &str) {
    ok(
        addr,
        "/v1/tickets",
        human(json!({"id": id, "title": "notify me"})),
    );
}

fn comment(addr: SocketAddr, id: &str, n: usize) -> String {
    let body = ok(
        addr,
        &format!("/v1/tickets/{id}/comments"),
        human(json!({"body": format!("comment {n}")})),
    );
    body["events"][0]["id"].as_str().unwrap().to_owned()
}

fn dispatch(addr: SocketAddr, id: &str) -> String {
    let body = ok(
        addr,
        &format!("/v1/tickets/{id}/dispatch"),
        json!({"dispatch_key": "k1", "agent": "claude", "transport": "tmux", "tmux_target": id,
               "actor": {"name": "dispatcher", "kind": "orchestrator"}}),
    );
    body["runtime_id"].as_str().unwrap().to_owned()
}

fn reap(addr: SocketAddr, rt: &str) {
    ok(
        addr,
        &format!("/v1/runtimes/{rt}/reap"),
        json!({"cause": "tmux_missing", "actor": {"name": "watcher", "kind": "system"}}),
    );
}

fn subscription(addr: SocketAddr, name: &str) -> Value {
    let r = get(addr, &format!("/v1/subscriptions/{name}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve_args<'a>(dir: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--data-dir", dir];
    args.extend_from_slice(more);
    args
}

#[test]
fn at_least_once_in_order_through_every_fault_and_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let args = serve_args(&data, &FAST);
    let receiver = Receiver::start(vec![
        Answer::Status(500),
        Answer::Hang(Duration::from_millis(1500)),
        Answer::Drop,
        Answer::RetryAfter(1),
    ]);
    let mut server = spawn_serve(&args);
    subscribe(
        server.addr,
        json!({"name": "faults", "url": receiver.url("/hook"),
               "filter": {"types": ["ticket.commented"]}}),
    );
    open(server.addr, "MC-1");
    let mut expected: Vec<String> = (0..15).map(|n| comment(server.addr, "MC-1", n)).collect();

    // Given a receiver that answers 500, hangs past the timeout, drops the connection and
    // answers 429 Retry-After: 1, when the first comment is retried through all four, then it
    // is delivered, and the faults were all on that first delivery (nothing overtook it).
    let got = receiver.wait_for(Duration::from_secs(30), "the first delivery", |got| {
        !first_seen(got).is_empty()
    });
    assert_eq!(
        got.iter()
            .take(5)
            .map(|r| r.id().to_owned())
            .collect::<Vec<_>>(),
        vec![expected[0].clone(); 5],
        "every fault hit the first delivery, in turn"
    );
    let (throttled, after) = (&got[3], &got[4]);
    assert_eq!(throttled.answer, Answer::RetryAfter(1));
    assert!(
        after.at.duration_since(throttled.at) >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({:?})",
        after.at.duration_since(throttled.at)
    );

    // When the server is SIGKILLed mid-stream and started again on the same data directory,
    // then delivery resumes from the position it kept: nothing missing, in order.
    receiver.wait_for(Duration::from_secs(30), "some deliveries", |got| {
        first_seen(got).len() >= 8
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = spawn_serve(&args);
    expected.extend((15..30).map(|n| comment(server.addr, "MC-1", n)));
    let got = receiver.wait_for(Duration::from_secs(60), "all 30 comments", |got| {
        first_seen(got).len() >= 30
    });
    assert_eq!(first_seen(&got), expected, "every comment, in log order");
    // Duplicates only with the same id and the same body.
    for r in &got {
        let same: Vec<_> = got.iter().filter(|o| o.id() == r.id()).collect();
        assert!(
            same.iter().all(|o| o.body == r.body),
            "a redelivery is the same body"
        );
        assert!(
            expected.iter().any(|e| e == r.id()),
            "only matching events: {}",
            r.id()
        );
    }
    let view = subscription(server.addr, "faults");
    assert_eq!(view["state"], "active");
    assert!(
        view["delivery"]["failures"].as_u64().unwrap() >= 4,
        "{view}"
    );
    assert!(view["delivery"]["last_error"].is_string(), "{view}");
}

/// The verifying receiver: the published library checks each delivery's signature.
struct Verifier {
    child: std::process::Child,
    port: u16,
    lines: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_verifier() -> Verifier {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/webhooks-venv/bin/python"
    );
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is missing: scripts/test.sh installs it (scripts/install-standardwebhooks.sh)"
    );
    let mut child = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/notify/verify_receiver.py"
        ))
        .arg(SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let port: u16 = first
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    Verifier { child, port, lines }
}

#[test]
fn every_format_verifies_with_the_published_standardwebhooks_library() {
    let verifier = start_verifier();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", verifier.port);
    let (_dir, server) = spawn_temp_serve(&["--public-url", "https://mc.example"]);
    let wanted = json!({"tickets": ["MC-7"], "alerts": ["worker_lost"]});
    subscribe(
        server.addr,
        json!({"name": "j", "url": url("/json"), "filter": wanted}),
    );
    subscribe(
        server.addr,
        json!({"name": "s", "url": url("/slack/T0/B0/x"), "format": "slack", "filter": wanted}),
    );
    subscribe(
        server.addr,
        json!({"name": "t", "url": url("/bot1:ABC/sendMessage"), "format": "telegram", "chat_id": "-1001", "filter": wanted}),
    );
    open(server.addr, "MC-7");
    let rt = dispatch(server.addr, "MC-7");
    reap(server.addr, &rt);

    // Three events each (opened, dispatched, reaped) and the worker_lost notice, per format.
    wait_until(
        Duration::from_secs(30),
        "4 deliveries to each receiver",
        || {
            let lines = verifier.lines.lock().unwrap();
            ["/json", "/slack", "/bot"].iter().all(|p| {
                lines
                    .iter()
                    .filter(|l| l["path"].as_str().unwrap().starts_with(p))
                    .count()
                    >= 4
            })
        },
    );
    let lines = verifier.lines.lock().unwrap().clone();
    for l in &lines {
        assert_eq!(l["ok"], true, "the library refused a signature: {l}");
    }
    let bodies = |prefix: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["path"].as_str().unwrap().starts_with(prefix))
            .map(|l| serde_json::from_str(l["body"].as_str().unwrap()).unwrap())
            .collect()
    };
    let json_bodies = bodies("/json");
    assert_eq!(
        strs(&json_bodies, "type"),
        [
            "ticket.opened",
            "runtime.dispatched",
            "runtime.reaped",
            "alert.raised"
        ]
    );
    // An event is its §3 envelope, as the log serves it.
    let log = get(server.addr, "/v1/tickets/MC-7/events").json();
    assert_eq!(json_bodies[2], log["events"][2]);
    let notice = &json_bodies[3];
    assert_eq!(notice["data"]["alert"]["kind"], "worker_lost");
    assert_eq!(notice["data"]["url"], "https://mc.example/tickets/MC-7");
    let raised_id = lines
        .iter()
        .find(|l| l["path"] == "/json" && l["body"].as_str().unwrap().contains("alert.raised"))
        .unwrap()["id"]
        .clone();
    assert!(
        raised_id
            .as_str()
            .unwrap()
            .starts_with("alert.worker_lost.MC-7."),
        "{raised_id}"
    );
    for slack in bodies("/slack") {
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.contains("MC-7") && text.contains("https://mc.example/tickets/MC-7"),
            "{text}"
        );
        assert_eq!(slack["blocks"][0]["type"], "section");
    }
    for tg in bodies("/bot") {
        assert_eq!(tg["chat_id"], "-1001");
        assert_eq!(tg["parse_mode"], "HTML");
        assert!(tg["text"].as_str().unwrap().contains("MC-7"));
    }
    // Secrets are write-only and URLs show no path (a Telegram URL carries the bot's token).
    let listed = get(server.addr, "/v1/subscriptions").body;
    assert!(
        !listed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{listed}"
    );
    assert!(!listed.contains("bot1:ABC"), "{listed}");
    let events = get(server.addr, "/v1/events?limit=100").body;
    assert!(!events.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") && !events.contains("bot1:ABC"));
}

#[test]
fn a_generated_secret_is_answered_once_and_signs() {
    let (_dir, server) = spawn_temp_serve(&[]);
    let receiver = Receiver::start(vec![]);
    let body = human(json!({"name": "gen", "url": receiver.url("/x")}));
    let created = post(server.addr, "/v1/subscriptions", &body);
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.json()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // The same request again changes nothing and shows no secret.
    let again = post(server.addr, "/v1/subscriptions", &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.json().get("secret").is_none());
    assert!(!get(server.addr, "/v1/subscriptions/gen")
        .body
        .contains(&secret));
}

#[test]
fn alert_notices_are_raised_reminded_and_cleared() {
    let (_dir, server) = spawn_temp_serve(&[]);
    let receiver = Receiver::start(vec![]);
    subscribe(
        server.addr,
        json!({"name": "pager", "url": receiver.url("/page"), "remind_every": "1s",
               "filter": {"types": ["ticket.closed"], "alerts": ["worker_lost"]}}),
    );
    open(server.addr, "MC-9");
    let rt = dispatch(server.addr, "MC-9");
    // Given a reap (worker_lost), then alert.raised and a reminder every second while it stays.
    reap(server.addr, &rt);
    receiver.wait_for(Duration::from_secs(15), "raised and two reminders", |got| {
        got.iter()
            .filter(|r| r.json()["type"] == "alert.reminder")
            .count()
            >= 2
    });
    // When a validator closes the ticket, then the close and alert.cleared follow.
    ok(
        server.addr,
        "/v1/tickets/MC-9/close",
        json!({"resolution": "done", "actor": {"name": "v", "kind": "validator"}}),
    );
    let got = receiver.wait_for(Duration::from_secs(15), "cleared", |got| {
        got.iter().any(|r| r.json()["type"] == "alert.cleared")
    });
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[0], "alert.raised");
    assert!(
        kinds[1..kinds.len() - 2]
            .iter()
            .all(|k| k == "alert.reminder"),
        "{kinds:?}"
    );
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["ticket.closed", "alert.cleared"]
    );
    // Ids are the alert's episode: raised, .rN, .cleared.
    let raised = got[0].id().to_owned();
    assert!(raised.starts_with("alert.worker_lost.MC-9."), "{raised}");
    assert_eq!(got[1].id(), format!("{raised}.r1"));
    assert_eq!(got.last().unwrap().id(), format!("{raised}.cleared"));
}

#[test]
fn gone_pauses_and_a_parked_delivery_waits_for_resume() {
    let (_dir, server) = spawn_temp_serve(&[
        "--delivery-retry-base",
        "100ms",
        "--delivery-timeout",
        "1s",
        "--delivery-park-after",
        "2s",
    ]);
    // A receiver that answers 410: the subscription pauses, recorded by the engine.
    let gone = Receiver::start(vec![Answer::Status(410)]);
    subscribe(
        server.addr,
        json!({"name": "gone", "url": gone.url("/g"), "filter": {"tickets": ["MC-2"]}}),
    );
    // A receiver that is not there yet: its port is reserved and closed.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let later = reserved.local_addr().unwrap();
    drop(reserved);
    subscribe(
        server.addr,
        json!({"name": "later", "url": format!("http://{later}/l"), "filter": {"tickets": ["MC-2"]}}),
    );
    open(server.addr, "MC-2");
    let first = comment(server.addr, "MC-2", 1);

    wait_until(Duration::from_secs(15), "410 pauses", || {
        subscription(server.addr, "gone")["state"] == "paused"
    });
    let paused = subscription(server.addr, "gone");
    assert_eq!(paused["paused"]["by"]["name"], "mc-ledger-notify");
    assert!(
        paused["paused"]["reason"].as_str().unwrap().contains("410"),
        "{paused}"
    );

    // Failing past --delivery-park-after: parked, failing, alert subscription_failing.
    wait_until(Duration::from_secs(20), "parked", || {
        subscription(server.addr, "later")["state"] == "failing"
    });
    let failing = subscription(server.addr, "later");
    let parked_id = failing["parked"]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_alert(server.addr, "subscription_failing", "subscription", "later");
    // Nothing after the parked delivery goes out before a resume.
    let second = comment(server.addr, "MC-2", 2);
    let receiver = Receiver::on(std::net::TcpListener::bind(later).unwrap(), vec![]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        receiver.received().is_empty(),
        "a failing subscription waits"
    );
    ok(
        server.addr,
        "/v1/subscriptions/later/resume",
        human(json!({})),
    );
    let got = receiver.wait_for(
        Duration::from_secs(15),
        "the parked delivery and the next",
        |got| first_seen(got).len() >= 3,
    );
    let ids = first_seen(&got);
    let opened_then = ids.iter().position(|i| *i == parked_id).unwrap();
    assert_eq!(
        opened_then, 0,
        "delivery resumes at the parked one: {ids:?}"
    );
    assert_eq!(&ids[1..3], [first, second]);
    assert_eq!(subscription(server.addr, "later")["state"], "active");
    let alerts = get(server.addr, "/v1/alerts").body;
    assert!(!alerts.contains("subscription_failing"), "{alerts}");
    // The replay shows who did what.
    let facts = get(server.addr, "/v1/events?limit=1000").json();
    let who: Vec<(String, String)> = facts["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["actor"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        who.contains(&("subscription.paused".into(), "mc-ledger-notify".into())),
        "{who:?}"
    );
    assert!(
        who.contains(&("subscription.parked".into(), "mc-ledger-notify".into())),
        "{who:?}"
    );
    assert!(
        who.contains(&("subscription.resumed".into(), "ops".into())),
        "{who:?}"
    );
}

/// Two replicas on one PostgreSQL ledger: exactly one delivers (the lease); when it is
/// SIGKILLed the other takes over within 10 s and resumes where it stopped, nothing missed.
#[test]
fn a_replica_takes_over_delivery_within_ten_seconds_of_the_holders_death() {
    let schema = PgSchema::new("notify_failover");
    let url = schema.store_url();
    let args = ["--store", url.as_str(), "--delivery-retry-base", "100ms"];
    let receiver = Receiver::start(vec![]);
    let mut a = spawn_serve(&args);
    let mut b = spawn_serve(&args);
    subscribe(
        a.addr,
        json!({"name": "ha", "url": receiver.url("/ha"), "filter": {"types": ["ticket.commented"]}}),
    );
    open(a.addr, "MC-3");
    let mut expected: Vec<String> = (0..10).map(|n| comment(a.addr, "MC-3", n)).collect();
    let got = receiver.wait_for(Duration::from_secs(30), "the first ten", |got| {
        first_seen(got).len() >= 10
    });
    assert_eq!(first_seen(&got), expected);
    // Exactly one replica delivered: the one the checkpoint names.
    let holder = subscription(b.addr, "ha")["delivery"]["holder"]
        .as_str()
        .unwrap()
        .to_owned();
    let (dead, survivor) = if holder.starts_with(&format!("serve-{}-", a.child.id())) {
        (&mut a, b.addr)
    } else {
        assert!(
            holder.starts_with(&format!("serve-{}-", b.child.id())),
            "{holder}"
        );
        (&mut b, a.addr)
    };
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed = Instant::now();
    expected.extend((10..20).map(|n| comment(survivor, "MC-3", n)));
    let got = receiver.wait_for(Duration::from_secs(30), "all twenty", |got| {
        first_seen(got).len() >= 20
    });
    assert_eq!(first_seen(&got), expected, "in order, nothing missed");
    let resumed = got
        .iter()
        .find(|r| r.id() == expected[10])
        .map(|r| r.at)
        .unwrap();
    let took = resumed.duration_since(killed);
    println!("the survivor delivered {took:?} after the holder's SIGKILL");
    assert!(took <= Duration::from_secs(10), "took over after {took:?}");
    let now_holder = subscription(survivor, "ha")["delivery"]["holder"].clone();
    assert_ne!(now_holder.as_str(), Some(holder.as_str()));
}

/// A receiver that hangs holds only its own subscription: another one delivers everything
/// meanwhile, and appends are answered as ever.
#[test]
fn a_slow_receiver_holds_only_its_own_subscription() {
    let (_dir, server) = spawn_temp_serve(&FAST);
    let slow = Receiver::start(vec![Answer::Hang(Duration::from_secs(3)); 20]);
    let quick = Receiver::start(vec![]);
    let only_comments = json!({"types": ["ticket.commented"]});
    subscribe(
        server.addr,
        json!({"name": "slow", "url": slow.url("/s"), "filter": only_comments}),
    );
    subscribe(
        server.addr,
        json!({"name": "quick", "url": quick.url("/q"), "filter": only_comments}),
    );
    open(server.addr, "MC-5");
    let expected: Vec<String> = (0..10).map(|n| comment(server.addr, "MC-5", n)).collect();
    let got = quick.wait_for(Duration::from_secs(15), "the quick receiver's ten", |got| {
        first_seen(got).len() >= 10
    });
    assert_eq!(first_seen(&got), expected);
    assert!(
        first_seen(&slow.received()).is_empty(),
        "the slow one has delivered nothing yet"
    );
    wait_until(
        Duration::from_secs(10),
        "the slow one's timeout shows",
        || subscription(server.addr, "slow")["delivery"]["last_error"] == "timed out",
    );
    // The quick one's position is saved within a second of its last delivery.
    wait_until(Duration::from_secs(5), "the quick one caught up", || {
        subscription(server.addr, "quick")["delivery"]["lag"] == 0
    });
}

#[test]
fn a_subscription_far_behind_catches_up_in_order_umbrella_and_all() {
    let (_dir, server) = spawn_temp_serve(&FAST);
    let receiver = Receiver::start(vec![]);
    // Given an umbrella with a child and a grandchild, and a ticket outside it,
    ok(
        server.addr,
        "/v1/tickets",
        human(json!({"id": "UMB-7", "title": "umbrella", "umbrella": true})),
    );
    for (id, parent) in [("MC-70", "UMB-7"), ("MC-71", "MC-70")] {
        open(server.addr, id);
        ok(
            server.addr,
            &format!("/v1/tickets/{id}/links"),
            human(json!({"relation": "child_of", "target": parent})),
        );
    }
    open(server.addr, "MC-72");
    // and two paused subscriptions, one to the umbrella's comments and one to every comment,
    let comments = json!(["ticket.commented"]);
    for (name, filter) in [
        ("under", json!({"types": comments, "umbrella": "UMB-7"})),
        ("every", json!({"types": comments})),
    ] {
        subscribe(
            server.addr,
            json!({"name": name, "url": receiver.url(&format!("/{name}")), "filter": filter}),
        );
        ok(
            server.addr,
            &format!("/v1/subscriptions/{name}/pause"),
            human(json!({"reason": "let a backlog build"})),
        );
    }
    // when 150 comments (far more than a worker delivers at normal priority) are appended
    // while they are paused and then they are resumed,
    let mut under = Vec::new();
    let mut every = Vec::new();
    for n in 0..150 {
        let ticket = ["MC-70", "MC-71", "MC-72"][n % 3];
        let id = comment(server.addr, ticket, n);
        if ticket != "MC-72" {
            under.push(id.clone());
        }
        every.push(id);
    }
    for name in ["under", "every"] {
        ok(
            server.addr,
            &format!("/v1/subscriptions/{name}/resume"),
            human(json!({})),
        );
    }
    // then each receives its backlog in log order: the grandchild's comments as well, nothing
    // outside the umbrella, and both end with no lag.
    let on = |got: &[receiver::Received], path: &str| {
        let only: Vec<_> = got.iter().filter(|r| r.path == path).cloned().collect();
        first_seen(&only)
    };
    let got = receiver.wait_for(Duration::from_secs(60), "both backlogs", |got| {
        on(got, "/under").len() >= under.len() && on(got, "/every").len() >= every.len()
    });
    assert_eq!(
        on(&got, "/under"),
        under,
        "the umbrella's comments, in order"
    );
    assert_eq!(on(&got, "/every"), every, "every comment, in order");
    for name in ["under", "every"] {
        wait_until(Duration::from_secs(5), "no lag", || {
            subscription(server.addr, name)["delivery"]["lag"] == 0
        });
    }
}
