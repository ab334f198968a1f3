//! Projection snapshots: loaded when they belong to this log and schema, refused (and the
//! projections rebuilt from the log) when stale, foreign or damaged; a rebuild names the
//! tickets whose view a refold changed.

use api::server::open;
use projections::Ledger;
use service::home::Home;
use service::snapshot;
use store::EventReader;
use store_sled::{Log, LogConfig};

/// A data dir with the demo's stories and a current snapshot.
fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cli::demo::run(dir.path()).unwrap();
    dir
}

fn log_events(dir: &std::path::Path) -> (Vec<events::RecordedEvent>, u64) {
    let log = Log::open(&dir.join("log"), LogConfig::default()).unwrap();
    let all = log.read_after(0, usize::MAX).unwrap();
    let head = log.head();
    (all, head)
}

#[test]
fn a_current_snapshot_is_loaded_and_a_changed_one_is_refused() {
    let dir = demo_dir();
    let (all, head) = log_events(dir.path());
    let reference = Ledger::fold(&all);
    let log = Log::open(&dir.path().join("log"), LogConfig::default()).unwrap();
    let reader = log.read_handle();

    // Given the demo's snapshot, when loaded, then it is the fold of the whole log.
    let loaded = service::load_projections(&reader, &Home::Dir(dir.path().to_owned()));
    assert_eq!((loaded.position(), &loaded), (head, &reference));

    let path = snapshot::path(dir.path());
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("another schema version", {
            let mut b = good.clone();
            b[8] ^= 0xff;
            b
        }),
        ("another log's anchor hash", {
            let mut b = good.clone();
            b[20] ^= 0x01;
            b
        }),
        ("truncated body", good[..good.len() / 2].to_vec()),
        ("not a snapshot", b"hello".to_vec()),
        ("empty file", Vec::new()),
    ];
    for (name, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let ledger = service::load_projections(&reader, &Home::Dir(dir.path().to_owned()));
        assert_eq!(
            ledger.position(),
            0,
            "{name}: refused, so the caller rebuilds"
        );
    }
    drop(reader);
    drop(log);
    // And a server over the refused snapshot serves the full fold all the same.
    let opened = open(dir.path()).unwrap();
    assert_eq!(opened.state.read.shared.read(Ledger::clone), reference);
}

#[test]
fn rebuild_names_the_tickets_a_refold_changes() {
    let dir = demo_dir();
    let (all, head) = log_events(dir.path());
    // A "buggy fold": one MC-4030 comment never applied.
    let skipped = all
        .iter()
        .position(|e| e.ticket.as_str() == "MC-4030" && e.type_name() == "ticket.commented")
        .unwrap();
    let buggy = Ledger::fold(
        all.iter()
            .enumerate()
            .filter(|(i, _)| *i != skipped)
            .map(|(_, e)| e),
    );
    assert_eq!(buggy.position(), head);
    let anchor = all.last().unwrap().hash;
    snapshot::write_atomically(dir.path(), &snapshot::encode(&buggy, anchor).unwrap()).unwrap();

    let opened = open(dir.path()).unwrap();
    let shared = opened.state.read.shared.clone();
    let snapshots = opened.state.write.snapshots.clone();
    let (position, differences) = snapshots.rebuild().unwrap();
    assert_eq!(position, head);
    let names: Vec<&str> = differences.iter().map(|t| t.as_str()).collect();
    assert_eq!(names, vec!["MC-4030"]);
    // After the swap the projections are the true fold, and a second rebuild finds nothing.
    assert_eq!(shared.read(Ledger::clone), Ledger::fold(&all));
    assert!(snapshots.rebuild().unwrap().1.is_empty());
}
