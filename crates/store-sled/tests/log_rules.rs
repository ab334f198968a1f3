//! What only the sled store has: the data-directory lock, checkpoints across reopen, the disk
//! index, large commits. The append rules every store shares are in `crates/store/tests/conformance.rs`.

mod common;

use common::*;
use events::*;
use store::*;
use store_sled::*;

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("opens")
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

/// Indexes come back from checkpoints (written every few records and on close) plus the
/// records after the last one: versions, reads and dedupe all survive, and verify checks them.
#[test]
fn indexes_survive_reopen_from_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = checkpoint_every(7);
    let first = {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        let mut first = None;
        for i in 0..30 {
            let t = format!("MC-{}", i % 3);
            let a = log
                .append_blocking(append_comment(&t, None, &format!("c{i}"), "x"))
                .unwrap();
            first.get_or_insert(a.events[0].clone());
        }
        log.verify().unwrap();
        first.unwrap()
    };
    for round in 0..2 {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        let again = log
            .append_blocking(append_comment("MC-0", Some(0), "c0", "x"))
            .unwrap();
        assert!(again.duplicate, "round {round}");
        assert_eq!(again.events[0], first);
        assert_eq!(log.event_by_id("c29").unwrap().unwrap().position, 30);
        assert_eq!(log.stream_version(&ticket("MC-1")).unwrap(), 10);
        let positions = positions_of(&log.read_stream(&ticket("MC-2"), 9, 10, 10).unwrap());
        assert_eq!(positions, vec![27, 30]);
        let wrong = log.append_blocking(append_comment("MC-1", Some(9), &format!("w{round}"), "x"));
        assert_eq!(wrong.map_err(|e| e.code()).err(), Some("version_conflict"));
        assert_eq!(log.verify().unwrap().events, 30);
    }
}

/// Waits until the disk index holds at least `position` (the indexer is a thread of its own).
fn indexed(log: &Log, position: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log.indexed_on_disk() < position {
        assert!(
            std::time::Instant::now() < deadline,
            "the disk index stayed at {} (waited for {position})",
            log.indexed_on_disk()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every answer of a log of 300 events over 5 tickets whose older positions are on disk.
fn answers_of_300(log: &Log, round: &str) {
    for i in [0, 1, 150, 299] {
        let id = format!("d{i}");
        let found = log.event_by_id(&id).unwrap().unwrap();
        assert_eq!(found.position, i + 1, "{round}: {id}");
        let again = log
            .append_blocking(append_comment(&format!("MC-{}", i % 5), None, &id, "x"))
            .unwrap();
        assert!(again.duplicate, "{round}: {id} is a duplicate");
        assert_eq!(again.events[0], found, "{round}");
    }
    for t in 0..5u64 {
        let ticket = ticket(&format!("MC-{t}"));
        assert_eq!(log.stream_version(&ticket).unwrap(), 60, "{round}");
        let positions = positions_of(&log.read_stream(&ticket, 1, 60, 100).unwrap());
        let expected: Vec<u64> = (0..60).map(|k| k * 5 + t + 1).collect();
        assert_eq!(positions, expected, "{round}: MC-{t}");
        let middle: Vec<u64> = log
            .read_stream(&ticket, 30, 32, 2)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(middle, vec![30, 31], "{round}");
    }
    let refused = log.append_blocking(append_comment("MC-3", Some(59), "late", "x"));
    assert_eq!(
        refused.map_err(|e| e.code()).err(),
        Some("version_conflict"),
        "{round}"
    );
    let after = positions_of(&log.read_after(140, 3).unwrap());
    assert_eq!(after, vec![141, 142, 143], "{round}");
    assert_eq!(log.verify().unwrap().events, 300, "{round}");
}

/// SPEC §18: the index of older positions moves to disk (`log/index/`) and answers as memory
/// did: dedupe, versions, stream and position reads, verify; after a reopen; and when the disk
/// index is missing or belongs to another log (it is rebuilt from the checkpoints).
#[test]
fn the_disk_index_answers_for_what_left_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = checkpoint_every(7);
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        for i in 0..300u64 {
            log.append_blocking(append_comment(
                &format!("MC-{}", i % 5),
                None,
                &format!("d{i}"),
                "x",
            ))
            .unwrap();
        }
        indexed(&log, 294);
        answers_of_300(&log, "written");
    }
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert!(log.indexed_on_disk() >= 294, "the base survives a reopen");
        answers_of_300(&log, "reopened");
    }
    // Another log's disk index: its base's hash does not match this log's record.
    let other = tempfile::tempdir().unwrap();
    {
        let log = Log::open(other.path(), config.clone()).unwrap();
        for i in 0..100u64 {
            log.append_blocking(append_comment("MC-9", None, &format!("o{i}"), "y"))
                .unwrap();
        }
        indexed(&log, 98);
    }
    let index = dir.path().join("index");
    std::fs::remove_dir_all(&index).unwrap();
    copy_dir(&other.path().join("index"), &index);
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        answers_of_300(&log, "another log's index");
        indexed(&log, 294);
    }
    std::fs::remove_dir_all(&index).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    answers_of_300(&log, "no index");
    indexed(&log, 294);
    answers_of_300(&log, "rebuilt");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
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
            log.append_blocking(append_comment("MC-1", None, &format!("big{i}"), &body))
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
