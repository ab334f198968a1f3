//! What only the sled store has: the data-directory lock, checkpoints across reopen, large
//! commits. The append rules every store shares are in `crates/store/tests/conformance.rs`.

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
