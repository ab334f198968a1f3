//! The `mc-ledger` command line, run as the real binary: demo → replay, verify, export and
//! import round trip, clear one-line errors, and `--server` while a server holds the data.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn mc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_then_replay_shows_the_banner_appear_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = mc(&["demo", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("failure_reason: tmux_session_missing"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("(duplicate: nothing appended)").count(),
        4,
        "five pickups, one runtime"
    );

    let out = mc(&["replay", "MC-4502", "--json", "--data-dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows
        .iter()
        .any(|r| r["failure_reason"] == "tmux_session_missing"));
    let last = rows.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["failure_reason"].clone()),
        (Some("done"), Value::Null)
    );

    let human = mc(&["replay", "MC-4030", "--data-dir", d]);
    assert!(
        text(&human.stdout).contains("next: resume"),
        "{}",
        text(&human.stdout)
    );
    let out = mc(&["verify", "--data-dir", d]);
    assert!(
        out.status.success() && text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stderr)
    );
    // A second demo into the same directory refuses rather than duplicating stories.
    assert!(!mc(&["demo", "--data-dir", d]).status.success());
}

#[test]
fn export_import_round_trip_is_idempotent() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        a.path().to_str().unwrap().to_owned(),
        b.path().to_str().unwrap().to_owned(),
    );
    assert!(mc(&["demo", "--data-dir", &a]).status.success());
    let export = mc(&["export", "--data-dir", &a]);
    assert!(export.status.success());
    let file = std::path::Path::new(&b).join("export.jsonl");
    std::fs::write(&file, &export.stdout).unwrap();
    let target = std::path::Path::new(&b).join("data");
    let target = target.to_str().unwrap();
    let first = mc(&["import", file.to_str().unwrap(), "--data-dir", target]);
    assert!(
        text(&first.stdout).contains("imported 26 events (0 already present)"),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let again = mc(&["import", file.to_str().unwrap(), "--data-dir", target]);
    assert!(
        text(&again.stdout).contains("imported 0 events (26 already present)"),
        "{}",
        text(&again.stdout)
    );
    // The same events, ids and times give the same hash chain.
    let head = |d: &str| text(&mc(&["verify", "--data-dir", d]).stdout);
    assert_eq!(head(&a), head(target));
}

#[test]
fn errors_are_one_clear_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["verify", "--data-dir", d],
        vec!["replay", "not-a-ticket", "--data-dir", d],
        vec!["import", "/nonexistent/file.jsonl", "--data-dir", d],
        vec!["export", "--server", "ftp://x"],
    ] {
        let out = mc(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("mc-ledger: "), "{args:?}: {err}");
    }
}

#[test]
fn a_held_data_dir_says_so_and_server_mode_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(mc(&["demo", "--data-dir", d]).status.success());
    let mut server = spawn_binary(dir.path());
    let url = format!("http://{}", server.addr);
    let out = mc(&["verify", "--data-dir", d]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--server URL"),
        "{}",
        text(&out.stderr)
    );
    let out = mc(&["verify", "--server", &url]);
    assert!(
        out.status.success() && text(&out.stdout).contains("26 events"),
        "{}",
        text(&out.stderr)
    );
    let out = mc(&["export", "--server", &url]);
    assert_eq!(text(&out.stdout).lines().count(), 26);
    let out = mc(&["replay", "MC-4502", "--server", &url]);
    assert!(
        text(&out.stdout).contains("ticket.closed"),
        "{}",
        text(&out.stderr)
    );
    let out = mc(&["rebuild", "--server", &url]);
    assert!(
        text(&out.stdout).contains("no ticket view differs"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}
