//! The storage traits' contract as one suite run on both stores: given/when/then rows of
//! append rules (expected version, dedupe, limits), reads, subscriptions, a property against a
//! `BTreeMap` model across reopen, and racing appenders. Each test runs on the sled store and,
//! in a schema of its own, on the PostgreSQL store (`MC_LEDGER_TEST_PG`, default the local
//! cluster's `test` database); the PostgreSQL half fails loudly when the database is down.

#[path = "../../store-sled/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use events::*;
use proptest::prelude::*;
use store::*;

/// A place a store lives that survives reopening it.
trait Backend {
    fn name(&self) -> &'static str;
    fn open(&self) -> Arc<dyn Store>;
}

/// What the suite needs of a store: the traits, with a blocking append.
trait Store: EventStore {
    fn append_blocking(&self, request: AppendRequest) -> Result<Appended, LogError> {
        block(self.append(request))
    }
}

impl Store for store_sled::Log {}
impl Store for store_pg::PgStore {}

fn block<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

struct Sled {
    dir: tempfile::TempDir,
    config: store_sled::LogConfig,
}

impl Backend for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }
    fn open(&self) -> Arc<dyn Store> {
        // sled releases its directory lock from its own threads after the last handle is
        // dropped, so an in-process reopen may have to wait a moment (a new process never
        // does). FIXME: seen once in a full test run after the suite moved here (the old
        // sled-only test never showed it); the cause in sled is not pinned down.
        let mut tries = 0;
        loop {
            match store_sled::Log::open(self.dir.path(), self.config.clone()) {
                Ok(log) => return Arc::new(log),
                Err(LogError::Locked(_)) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("sled opens: {e}"),
            }
        }
    }
}

/// A schema of its own on the test database, dropped at the end.
struct Pg {
    config: store_pg::PgConfig,
}

impl Backend for Pg {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            store_pg::PgStore::open(self.config.clone()).unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} ({e}); scripts/test.sh starts the local cluster",
                    self.config.url
                )
            }),
        )
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = store_pg::PgStore::drop_schema(&self.config);
    }
}

fn test_pg_url() -> String {
    std::env::var("MC_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL place; every other one keeps a tail of two records, so reads go to the
/// database for the older ones.
fn pg() -> Pg {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("t_store_{}_{n}", std::process::id());
    let mut config = store_pg::PgConfig::parse(&test_pg_url(), Some(&schema)).expect("url");
    if n % 2 == 1 {
        config.tail_records = 2;
    }
    let _ = store_pg::PgStore::drop_schema(&config);
    Pg { config }
}

fn sled() -> Sled {
    Sled {
        dir: tempfile::tempdir().expect("tempdir"),
        // Checkpoints every few records, so reopening rebuilds a tail after the last one.
        config: checkpoint_every(4),
    }
}

/// Runs `test` on a fresh place of each store.
fn on_both(test: impl Fn(&dyn Backend)) {
    test(&sled());
    test(&pg());
}

/// One append of a comment on MC-1 and one on MC-2 (body "1"), each `id` at its expected version.
fn across(
    expected_1: Option<u64>,
    id_1: &str,
    expected_2: Option<u64>,
    id_2: &str,
) -> AppendRequest {
    append_also(
        append_comment("MC-1", expected_1, id_1, "1"),
        "MC-2",
        expected_2,
        vec![comment(id_2, "1")],
    )
}

/// What one append should do: `Ok((first_position, last_version, duplicate))` or an error code.
type Then = Result<(u64, u64, bool), &'static str>;

struct Row {
    name: &'static str,
    given: Vec<AppendRequest>,
    when: AppendRequest,
    then: Then,
}

fn rows() -> Vec<Row> {
    let big = "x".repeat(events::ids::EVENT_DATA_BYTES_MAX + 1);
    // Comment "a" on MC-1; and two comments on MC-1, "a" and "b".
    let a_on_1 = append_comment("MC-1", None, "a", "1");
    let two = append("MC-1", None, vec![comment("a", "1"), comment("b", "2")]);
    vec![
        Row {
            name: "first append to a new stream",
            given: vec![],
            when: append_comment("MC-1", None, "a", "hi"),
            then: Ok((1, 1, false)),
        },
        Row {
            name: "expected 0 on a new stream",
            given: vec![],
            when: append_comment("MC-1", Some(0), "a", "hi"),
            then: Ok((1, 1, false)),
        },
        Row {
            name: "expected 0 on an existing stream",
            given: vec![append_comment("MC-1", None, "a", "hi")],
            when: append_comment("MC-1", Some(0), "b", "hi"),
            then: Err("version_conflict"),
        },
        Row {
            name: "expected version matches",
            given: vec![two.clone()],
            when: append_comment("MC-1", Some(2), "c", "3"),
            then: Ok((3, 3, false)),
        },
        Row {
            name: "expected version behind",
            given: vec![two.clone()],
            when: append_comment("MC-1", Some(1), "c", "3"),
            then: Err("version_conflict"),
        },
        Row {
            name: "versions are per stream, positions global",
            given: vec![a_on_1.clone(), append_comment("MC-2", None, "b", "1")],
            when: append_comment("MC-1", Some(1), "c", "2"),
            then: Ok((3, 2, false)),
        },
        Row {
            name: "same ids again: the originals, nothing appended",
            given: vec![two.clone()],
            when: two.clone(),
            then: Ok((1, 2, true)),
        },
        Row {
            name: "duplicate wins over a stale expected version",
            given: vec![
                append_comment("MC-1", Some(0), "a", "1"),
                append_comment("MC-1", None, "b", "2"),
            ],
            when: append_comment("MC-1", Some(0), "a", "1"),
            then: Ok((1, 1, true)),
        },
        Row {
            name: "some ids exist, some not",
            given: vec![a_on_1.clone()],
            when: append("MC-1", None, vec![comment("a", "1"), comment("z", "2")]),
            then: Err("event_id_conflict"),
        },
        Row {
            name: "an id of another ticket",
            given: vec![a_on_1.clone()],
            when: append_comment("MC-2", None, "a", "1"),
            then: Err("event_id_conflict"),
        },
        Row {
            name: "one id twice in an append",
            given: vec![],
            when: append("MC-1", None, vec![comment("a", "1"), comment("a", "2")]),
            then: Err("duplicate_event_id"),
        },
        Row {
            name: "empty append",
            given: vec![],
            when: append("MC-1", None, vec![]),
            then: Err("empty_append"),
        },
        Row {
            name: "too many events",
            given: vec![],
            when: append(
                "MC-1",
                None,
                (0..65).map(|i| comment(&format!("e{i}"), "x")).collect(),
            ),
            then: Err("too_many_events"),
        },
        Row {
            name: "event data too large",
            given: vec![],
            when: append_comment("MC-1", None, "a", &big),
            then: Err("event_too_large"),
        },
        Row {
            name: "bad event id",
            given: vec![],
            when: append_comment("MC-1", None, "has space", "x"),
            then: Err("invalid_event_id"),
        },
        Row {
            name: "empty actor name",
            given: vec![],
            when: append(
                "MC-1",
                None,
                vec![NewEvent {
                    actor: Actor {
                        name: String::new(),
                        kind: ActorKind::Human,
                    },
                    ..comment("a", "x")
                }],
            ),
            then: Err("invalid_actor"),
        },
        Row {
            name: "two streams at once: one range of positions, a version each",
            given: vec![a_on_1.clone()],
            when: append_also(
                append_comment("MC-1", Some(1), "b", "2"),
                "MC-2",
                Some(0),
                vec![comment("c", "1"), comment("d", "2")],
            ),
            then: Ok((2, 2, false)),
        },
        Row {
            name: "two streams, the second's version wrong: nothing appended",
            given: vec![append_comment("MC-2", None, "a", "1")],
            when: across(Some(0), "b", Some(0), "c"),
            then: Err("version_conflict"),
        },
        Row {
            name: "two streams, the first's version wrong: nothing appended",
            given: vec![a_on_1.clone()],
            when: across(Some(0), "b", Some(0), "c"),
            then: Err("version_conflict"),
        },
        Row {
            name: "a two-stream append again: the originals",
            given: vec![across(None, "a", None, "b")],
            when: across(Some(0), "a", Some(0), "b"),
            then: Ok((1, 1, true)),
        },
        Row {
            name: "a two-stream append's ids on each other's streams",
            given: vec![across(None, "a", None, "b")],
            when: across(None, "b", None, "a"),
            then: Err("event_id_conflict"),
        },
        Row {
            name: "one stream twice in an append",
            given: vec![],
            when: append_also(a_on_1.clone(), "MC-1", None, vec![comment("b", "1")]),
            then: Err("stream_twice_in_append"),
        },
        Row {
            name: "an empty second stream",
            given: vec![],
            when: append_also(a_on_1.clone(), "MC-2", None, vec![]),
            then: Err("empty_append"),
        },
        Row {
            name: "one id in two streams of an append",
            given: vec![],
            when: append_also(a_on_1.clone(), "MC-2", None, vec![comment("a", "2")]),
            then: Err("duplicate_event_id"),
        },
        Row {
            name: "a time past year 9999",
            given: vec![],
            when: append(
                "MC-1",
                None,
                vec![NewEvent {
                    recorded_at: Timestamp(u64::MAX),
                    ..comment("a", "x")
                }],
            ),
            then: Err("invalid_timestamp"),
        },
    ]
}

#[test]
fn append_rules() {
    for i in 0..rows().len() {
        // A fresh place for every row, on each store.
        on_both(|backend| {
            let row = rows().swap_remove(i);
            let log = backend.open();
            for g in row.given {
                log.append_blocking(g)
                    .unwrap_or_else(|e| panic!("{} {}: given: {e}", backend.name(), row.name));
            }
            let head_before = log.head();
            let got = log
                .append_blocking(row.when)
                .map(|a| (a.events[0].position, a.last_version(), a.duplicate))
                .map_err(|e| e.code());
            assert_eq!(got, row.then, "{} {}", backend.name(), row.name);
            if got.is_err() || got.map(|g| g.2) == Ok(true) {
                assert_eq!(
                    log.head(),
                    head_before,
                    "{}: a refused or duplicate append appends nothing",
                    row.name
                );
            }
            log.verify()
                .unwrap_or_else(|e| panic!("{}: verify: {e}", row.name));
        });
    }
}

#[test]
fn dedupe_is_permanent_across_restart() {
    on_both(|backend| {
        let original = backend
            .open()
            .append_blocking(append_comment("MC-7", None, "keep-me", "first"))
            .unwrap();
        let log = backend.open();
        let again = log
            .append_blocking(append_comment("MC-7", Some(0), "keep-me", "first"))
            .unwrap();
        assert!(again.duplicate, "{}", backend.name());
        assert_eq!(again.events, original.events);
        assert_eq!(log.head(), 1);
        assert_eq!(
            log.event_by_id("keep-me").unwrap().unwrap(),
            original.events[0]
        );
    });
}

/// SPEC §18: dedupe holds without the history in memory. An id written a million events
/// earlier is a duplicate after a restart, on both stores (sled with its default checkpoints,
/// so by then the id is in its disk index, not in memory). Slow: `MC_LEDGER_SLOW_TESTS=1`.
#[test]
fn dedupe_holds_a_million_events_later_across_restart() {
    if std::env::var_os("MC_LEDGER_SLOW_TESTS").is_none() {
        eprintln!("skipped: set MC_LEDGER_SLOW_TESTS=1 (a million events on each store)");
        return;
    }
    let sled = Sled {
        dir: tempfile::tempdir().expect("tempdir"),
        config: store_sled::LogConfig::default(),
    };
    let pg = pg();
    for backend in [&sled as &dyn Backend, &pg] {
        let started = std::time::Instant::now();
        let first = {
            let log = backend.open();
            let first = log
                .append_blocking(append_comment("MC-1", Some(0), "dispatch-key-1", "go"))
                .unwrap();
            // 15,625 appends of 64 (the most one may carry), from 16 threads.
            std::thread::scope(|scope| {
                for t in 0..16 {
                    let log = &log;
                    scope.spawn(move || {
                        for k in (t..15_625).step_by(16) {
                            let events = (0..64)
                                .map(|j| comment(&format!("m{k}-{j}"), "later"))
                                .collect();
                            log.append_blocking(append(&format!("MC-{}", t + 2), None, events))
                                .unwrap();
                        }
                    });
                }
            });
            assert_eq!(log.head(), 1_000_001);
            first
        };
        let opening = std::time::Instant::now();
        let log = backend.open();
        let reopened = opening.elapsed();
        let again = log
            .append_blocking(append_comment("MC-1", Some(0), "dispatch-key-1", "go"))
            .unwrap();
        assert!(again.duplicate, "{}", backend.name());
        assert_eq!(again.events, first.events, "{}", backend.name());
        let middle = log.event_by_id("m7000-30").unwrap().unwrap();
        assert_eq!(middle.ticket.as_str(), "MC-10", "{}", backend.name());
        let conflict = log.append_blocking(append_comment("MC-1", None, "m7000-30", "x"));
        assert_eq!(
            conflict.map_err(|e| e.code()).err(),
            Some("event_id_conflict")
        );
        let new = log
            .append_blocking(append_comment("MC-1", Some(1), "dispatch-key-2", "go"))
            .unwrap();
        assert_eq!((new.duplicate, new.events[0].position), (false, 1_000_002));
        eprintln!(
            "{}: a million events written, reopened and checked in {:.1} s (the reopen {:.2} s)",
            backend.name(),
            started.elapsed().as_secs_f64(),
            reopened.as_secs_f64()
        );
    }
}

#[test]
fn reads_by_stream_range_and_after_position() {
    on_both(|backend| {
        let log = backend.open();
        for i in 0..10 {
            let t = if i % 2 == 0 { "MC-1" } else { "MC-2" };
            log.append_blocking(append_comment(t, None, &format!("e{i}"), "x"))
                .unwrap();
        }
        let t1 = ticket("MC-1");
        assert_eq!(log.stream_version(&t1).unwrap(), 5);
        assert_eq!(log.stream_version(&ticket("MC-3")).unwrap(), 0);
        let s = positions_of(&log.read_stream(&t1, 2, 4, 100).unwrap());
        assert_eq!(s, vec![3, 5, 7]);
        let s: Vec<u64> = log
            .read_stream(&t1, 1, u64::MAX, 2)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(s, vec![1, 2]);
        let a = positions_of(&log.read_after(6, 3).unwrap());
        assert_eq!(a, vec![7, 8, 9]);
        assert!(log.read_after(10, 3).unwrap().is_empty());
        assert!(
            log.read_after(u64::MAX, 3).unwrap().is_empty(),
            "a cursor past the end"
        );
        assert!(log.read_after(0, 0).unwrap().is_empty());
        assert_eq!(log.read_after(0, 1000).unwrap().len(), 10);
        let report = log.verify().unwrap();
        assert_eq!((report.events, report.tickets), (10, 2));
    });
}

#[test]
fn subscribers_wake_when_a_later_position_commits() {
    on_both(|backend| {
        let log = backend.open();
        let mut watch = log.reader().subscribe();
        let waiter = std::thread::spawn(move || {
            block(async move {
                let _ = watch.wait_for(|p| *p > 0).await;
                let head = *watch.borrow();
                head
            })
        });
        log.append_blocking(append_comment("MC-1", None, "a", "x"))
            .unwrap();
        assert_eq!(waiter.join().unwrap(), 1, "{}", backend.name());
    });
}

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` events to ticket `t`, with the right expected version, a wrong one, or none.
    Append {
        t: u8,
        n: u8,
        expect: Expect,
    },
    /// Append one event to each of two tickets in one append; `wrong` gives the second a wrong
    /// expected version (then neither stream gets anything).
    Pair {
        a: u8,
        b: u8,
        wrong: bool,
    },
    /// Re-send an earlier append (by index into what was accepted).
    Retry {
        pick: prop::sample::Index,
    },
    Reopen,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    None,
    Right,
    Wrong,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 1u8..4, prop_oneof![Just(Expect::None), Just(Expect::Right), Just(Expect::Wrong)])
            .prop_map(|(t, n, expect)| Op::Append { t, n, expect }),
        2 => (0u8..4, 0u8..4, any::<bool>()).prop_map(|(a, b, wrong)| Op::Pair { a, b: if a == b { (b + 1) % 4 } else { b }, wrong }),
        2 => any::<prop::sample::Index>().prop_map(|pick| Op::Retry { pick }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: position -> (ticket, version, id), and the accepted appends for retries.
#[derive(Default)]
struct Model {
    log: BTreeMap<u64, (String, u64, String)>,
    versions: BTreeMap<String, u64>,
    accepted: Vec<(AppendRequest, Vec<u64>)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn the_store_behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 1..40), on_pg in any::<bool>()) {
        let backend: Box<dyn Backend> = if on_pg { Box::new(pg()) } else { Box::new(sled()) };
        let mut log = backend.open();
        let mut model = Model::default();
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Append { t, n, expect } => {
                    let ticket = format!("MC-{t}");
                    let current = model.versions.get(&ticket).copied().unwrap_or(0);
                    let expected = match expect {
                        Expect::None => None,
                        Expect::Right => Some(current),
                        Expect::Wrong => Some(current + 1),
                    };
                    let events = (0..n).map(|_| { next_id += 1; comment(&format!("id{next_id}"), "body") }).collect();
                    let request = append(&ticket, expected, events);
                    let result = log.append_blocking(request.clone());
                    if matches!(expect, Expect::Wrong) {
                        prop_assert_eq!(result.map_err(|e| e.code()).err(), Some("version_conflict"));
                        continue;
                    }
                    let appended = result.unwrap();
                    prop_assert!(!appended.duplicate);
                    let mut positions = Vec::new();
                    for event in &appended.events {
                        let version = model.versions.entry(ticket.clone()).or_insert(0);
                        *version += 1;
                        let position = u64::try_from(model.log.len()).unwrap() + 1;
                        prop_assert_eq!((event.position, event.version), (position, *version));
                        model.log.insert(position, (ticket.clone(), *version, event.id.clone()));
                        positions.push(position);
                    }
                    model.accepted.push((request, positions));
                }
                Op::Pair { a, b, wrong } => {
                    let (ta, tb) = (format!("MC-{a}"), format!("MC-{b}"));
                    let va = model.versions.get(&ta).copied().unwrap_or(0);
                    let vb = model.versions.get(&tb).copied().unwrap_or(0);
                    next_id += 2;
                    let request = append_also(
                        append_comment(&ta, Some(va), &format!("id{}", next_id - 1), "a"),
                        &tb,
                        Some(if wrong { vb + 1 } else { vb }),
                        vec![comment(&format!("id{next_id}"), "b")],
                    );
                    let result = log.append_blocking(request.clone());
                    if wrong {
                        prop_assert_eq!(result.map_err(|e| e.code()).err(), Some("version_conflict"));
                        continue;
                    }
                    let appended = result.unwrap();
                    let mut positions = Vec::new();
                    for (event, ticket) in appended.events.iter().zip([&ta, &tb]) {
                        let version = model.versions.entry(ticket.clone()).or_insert(0);
                        *version += 1;
                        let position = u64::try_from(model.log.len()).unwrap() + 1;
                        prop_assert_eq!((event.ticket.as_str(), event.position, event.version), (ticket.as_str(), position, *version));
                        model.log.insert(position, (ticket.clone(), *version, event.id.clone()));
                        positions.push(position);
                    }
                    model.accepted.push((request, positions));
                }
                Op::Retry { pick } => {
                    if model.accepted.is_empty() { continue; }
                    let (request, positions) = model.accepted[pick.index(model.accepted.len())].clone();
                    let again = log.append_blocking(request).unwrap();
                    prop_assert!(again.duplicate);
                    let got: Vec<u64> = again.events.iter().map(|e| e.position).collect();
                    prop_assert_eq!(got, positions);
                }
                Op::Reopen => {
                    drop(log);
                    log = backend.open();
                }
            }
            prop_assert_eq!(log.head(), u64::try_from(model.log.len()).unwrap());
        }
        // Everything reads back as the model says, by position and by stream.
        let all = log.read_after(0, usize::MAX).unwrap();
        let got: BTreeMap<u64, (String, u64, String)> = all.iter().map(|e| (e.position, (e.ticket.to_string(), e.version, e.id.clone()))).collect();
        prop_assert_eq!(&got, &model.log);
        for (ticket, version) in &model.versions {
            let t = TicketId::parse(ticket).unwrap();
            prop_assert_eq!(log.stream_version(&t).unwrap(), *version);
            prop_assert_eq!(log.read_stream(&t, 1, u64::MAX, usize::MAX).unwrap().len(), usize::try_from(*version).unwrap());
        }
        let report = log.verify().unwrap();
        prop_assert_eq!(report.events, u64::try_from(model.log.len()).unwrap());
    }
}

/// Many appenders race one expected version per round: exactly one wins each version, and
/// positions stay gapless.
#[test]
fn racing_appenders_one_winner_per_version() {
    on_both(|backend| on_worker_threads(race(backend.open())));
}

/// Racers each append to their own ticket and, in the same append, to one shared stream at
/// the version they saw (a dispatch into a pool): one wins each round, and a loser's own
/// ticket gets nothing either.
#[test]
fn racing_two_stream_appends_take_the_shared_version_once() {
    on_both(|backend| on_worker_threads(race_pair(backend.open())));
}

/// Runs `future` on a runtime of four worker threads, so that racers really run at once.
fn on_worker_threads<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Each round, `racers` tasks run `attempt(log, round, racer)` at once; `won` checks what each one
/// got and says whether it won: exactly one wins every round.
async fn one_winner_per_round<T, F>(
    log: &Arc<dyn Store>,
    rounds: u64,
    racers: u64,
    attempt: impl Fn(Arc<dyn Store>, u64, u64) -> F,
    won: impl Fn(u64, T) -> bool,
) where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    for round in 0..rounds {
        let tasks: Vec<_> = (0..racers)
            .map(|racer| tokio::spawn(attempt(log.clone(), round, racer)))
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += u32::from(won(round, task.await.unwrap()));
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn race_pair(log: Arc<dyn Store>) {
    const RACERS: u64 = 8;
    const ROUNDS: u64 = 10;
    let attempt = |log: Arc<dyn Store>, round: u64, racer: u64| async move {
        let own = format!("MC-{}", 100 + round * RACERS + racer);
        let request = append_also(
            append_comment(&own, Some(0), &format!("o{round}-{racer}"), "own"),
            "MC-1",
            Some(round),
            vec![comment(&format!("s{round}-{racer}"), "shared")],
        );
        (own, log.append(request).await)
    };
    let won = |round: u64, (own, result): (String, Result<Appended, LogError>)| {
        let own = TicketId::parse(&own).unwrap();
        match result {
            Ok(a) => {
                assert_eq!(a.events.len(), 2);
                assert_eq!(a.events[1].version, round + 1);
                assert_eq!(a.events[1].position, a.events[0].position + 1);
                assert_eq!(log.stream_version(&own).unwrap(), 1);
                true
            }
            Err(e) => {
                assert_eq!(e.code(), "version_conflict");
                assert_eq!(log.stream_version(&own).unwrap(), 0, "all or nothing");
                false
            }
        }
    };
    one_winner_per_round(&log, ROUNDS, RACERS, attempt, won).await;
    assert_eq!(log.head(), ROUNDS * 2);
    log.verify().unwrap();
}

async fn race(log: Arc<dyn Store>) {
    const RACERS: u64 = 16;
    const ROUNDS: u64 = 20;
    let attempt = |log: Arc<dyn Store>, round: u64, racer: u64| {
        async move {
            let event = comment(&format!("r{round}-{racer}"), "race");
            // Noise on another stream in the same commit batches.
            let _ = log
                .append(append_comment(
                    "MC-999",
                    None,
                    &format!("n{round}-{racer}"),
                    "noise",
                ))
                .await;
            log.append(append("MC-1", Some(round), vec![event])).await
        }
    };
    let won = |round: u64, result: Result<Appended, LogError>| match result {
        Ok(a) => {
            assert_eq!(a.last_version(), round + 1);
            true
        }
        Err(e) => {
            assert_eq!(e.code(), "version_conflict");
            false
        }
    };
    one_winner_per_round(&log, ROUNDS, RACERS, attempt, won).await;
    let all = log.read_after(0, usize::MAX).unwrap();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, u64::try_from(i).unwrap() + 1, "gapless");
    }
    assert_eq!(
        all.len(),
        usize::try_from(ROUNDS * RACERS + ROUNDS).unwrap()
    );
    log.verify().unwrap();
}
