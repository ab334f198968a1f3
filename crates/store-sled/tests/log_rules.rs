//! Append rules of the sled log as given/when/then tables: expected version, dedupe, limits.

mod common;

use common::*;
use events::*;
use store::*;
use store_sled::*;

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("opens")
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
    vec![
        Row {
            name: "first append to a new stream",
            given: vec![],
            when: append("MC-1", None, vec![comment("a", "hi")]),
            then: Ok((1, 1, false)),
        },
        Row {
            name: "expected 0 on a new stream",
            given: vec![],
            when: append("MC-1", Some(0), vec![comment("a", "hi")]),
            then: Ok((1, 1, false)),
        },
        Row {
            name: "expected 0 on an existing stream",
            given: vec![append("MC-1", None, vec![comment("a", "hi")])],
            when: append("MC-1", Some(0), vec![comment("b", "hi")]),
            then: Err("version_conflict"),
        },
        Row {
            name: "expected version matches",
            given: vec![append(
                "MC-1",
                None,
                vec![comment("a", "1"), comment("b", "2")],
            )],
            when: append("MC-1", Some(2), vec![comment("c", "3")]),
            then: Ok((3, 3, false)),
        },
        Row {
            name: "expected version behind",
            given: vec![append(
                "MC-1",
                None,
                vec![comment("a", "1"), comment("b", "2")],
            )],
            when: append("MC-1", Some(1), vec![comment("c", "3")]),
            then: Err("version_conflict"),
        },
        Row {
            name: "versions are per stream, positions global",
            given: vec![
                append("MC-1", None, vec![comment("a", "1")]),
                append("MC-2", None, vec![comment("b", "1")]),
            ],
            when: append("MC-1", Some(1), vec![comment("c", "2")]),
            then: Ok((3, 2, false)),
        },
        Row {
            name: "same ids again: the originals, nothing appended",
            given: vec![append(
                "MC-1",
                None,
                vec![comment("a", "1"), comment("b", "2")],
            )],
            when: append("MC-1", None, vec![comment("a", "1"), comment("b", "2")]),
            then: Ok((1, 2, true)),
        },
        Row {
            name: "duplicate wins over a stale expected version",
            given: vec![
                append("MC-1", Some(0), vec![comment("a", "1")]),
                append("MC-1", None, vec![comment("b", "2")]),
            ],
            when: append("MC-1", Some(0), vec![comment("a", "1")]),
            then: Ok((1, 1, true)),
        },
        Row {
            name: "some ids exist, some not",
            given: vec![append("MC-1", None, vec![comment("a", "1")])],
            when: append("MC-1", None, vec![comment("a", "1"), comment("z", "2")]),
            then: Err("event_id_conflict"),
        },
        Row {
            name: "an id of another ticket",
            given: vec![append("MC-1", None, vec![comment("a", "1")])],
            when: append("MC-2", None, vec![comment("a", "1")]),
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
            when: append("MC-1", None, vec![comment("a", &big)]),
            then: Err("event_too_large"),
        },
        Row {
            name: "bad event id",
            given: vec![],
            when: append("MC-1", None, vec![comment("has space", "x")]),
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
    for row in rows() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        for g in row.given {
            log.append_blocking(g)
                .unwrap_or_else(|e| panic!("{}: given: {e}", row.name));
        }
        let head_before = log.head();
        let got = log
            .append_blocking(row.when)
            .map(|a| (a.events[0].position, a.last_version(), a.duplicate))
            .map_err(|e| e.code());
        assert_eq!(got, row.then, "{}", row.name);
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
    }
}

#[test]
fn dedupe_is_permanent_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let original = {
        let log = open(dir.path());
        log.append_blocking(append("MC-7", None, vec![comment("keep-me", "first")]))
            .unwrap()
    };
    let log = open(dir.path());
    let again = log
        .append_blocking(append("MC-7", Some(0), vec![comment("keep-me", "first")]))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.events, original.events);
    assert_eq!(log.head(), 1);
    assert_eq!(
        log.event_by_id("keep-me").unwrap().unwrap(),
        original.events[0]
    );
}

#[test]
fn reads_by_stream_range_and_after_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..10 {
        let t = if i % 2 == 0 { "MC-1" } else { "MC-2" };
        log.append_blocking(append(t, None, vec![comment(&format!("e{i}"), "x")]))
            .unwrap();
    }
    let t1 = ticket("MC-1");
    assert_eq!(log.stream_version(&t1).unwrap(), 5);
    assert_eq!(log.stream_version(&ticket("MC-3")).unwrap(), 0);
    let s: Vec<u64> = log
        .read_stream(&t1, 2, 4, 100)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(s, vec![3, 5, 7]);
    let s: Vec<u64> = log
        .read_stream(&t1, 1, u64::MAX, 2)
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(s, vec![1, 2]);
    let a: Vec<u64> = log
        .read_after(6, 3)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(a, vec![7, 8, 9]);
    assert!(log.read_after(10, 3).unwrap().is_empty());
    assert_eq!(log.read_after(0, 1000).unwrap().len(), 10);
    let report = log.verify().unwrap();
    assert_eq!((report.events, report.tickets), (10, 2));
}

#[test]
fn a_second_process_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    // sled's lock is per process, so show it from a child running this same binary.
    let exe = std::env::current_exe().unwrap();
    if std::env::var_os("MC_LEDGER_LOCK_CHILD").is_some() {
        return;
    }
    let out = std::process::Command::new(exe)
        .args(["--exact", "lock_child", "--nocapture"])
        .env("MC_LEDGER_LOCK_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("LOCKED data_dir_locked"),
        "child said: {stdout}"
    );
}

#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os("MC_LEDGER_LOCK_DIR") else {
        return;
    };
    match Log::open(std::path::Path::new(&dir), LogConfig::default()) {
        Ok(_) => println!("OPENED"),
        Err(e) => println!("LOCKED {}", e.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_wake_when_a_later_position_commits() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open(dir.path()));
    let reader = log.read_handle();
    let waiter = tokio::spawn(async move { reader.wait_after(0).await });
    log.append_async(append("MC-1", None, vec![comment("a", "x")]))
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap(), 1);
}

/// Indexes come back from checkpoints (written every few records and on close) plus the
/// records after the last one: versions, reads and dedupe all survive, and verify checks them.
#[test]
fn indexes_survive_reopen_from_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        checkpoint_events: 7,
        ..LogConfig::default()
    };
    let first = {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        let mut first = None;
        for i in 0..30 {
            let t = format!("MC-{}", i % 3);
            let a = log
                .append_blocking(append(&t, None, vec![comment(&format!("c{i}"), "x")]))
                .unwrap();
            first.get_or_insert(a.events[0].clone());
        }
        log.verify().unwrap();
        first.unwrap()
    };
    for round in 0..2 {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        let again = log
            .append_blocking(append("MC-0", Some(0), vec![comment("c0", "x")]))
            .unwrap();
        assert!(again.duplicate, "round {round}");
        assert_eq!(again.events[0], first);
        assert_eq!(log.event_by_id("c29").unwrap().unwrap().position, 30);
        assert_eq!(log.stream_version(&ticket("MC-1")).unwrap(), 10);
        let positions: Vec<u64> = log
            .read_stream(&ticket("MC-2"), 9, 10, 10)
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions, vec![27, 30]);
        let wrong = log.append_blocking(append(
            "MC-1",
            Some(9),
            vec![comment(&format!("w{round}"), "x")],
        ));
        assert_eq!(wrong.map_err(|e| e.code()).err(), Some("version_conflict"));
        assert_eq!(log.verify().unwrap().events, 30);
    }
}

/// Values big enough for sled to write them as separate blob files still reopen and verify
/// under the default (fsync) durability.
#[test]
fn large_commits_survive_reopen_with_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let body = "b".repeat(100 * 1024);
    {
        let log = open(dir.path());
        for i in 0..6 {
            log.append_blocking(append(
                "MC-1",
                None,
                vec![comment(&format!("big{i}"), &body)],
            ))
            .unwrap();
        }
    }
    let log = open(dir.path());
    assert_eq!(log.head(), 6);
    let all = log.read_after(0, 10).unwrap();
    assert!(all
        .iter()
        .all(|e| matches!(&e.data, EventData::TicketCommented(c) if c.body.len() == body.len())));
    log.verify().unwrap();
}
