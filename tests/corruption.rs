//! SPEC §17, corruption names its place: bytes flipped in one of sled's blob files (a commit
//! too large for its segments), with the server stopped. sled, opening, ends its log at the
//! blob that fails its checksum and drops every later commit without a word; the projections'
//! snapshot remembers how far the log went, so `verify` names the missing positions and
//! tickets in words and `serve` refuses to start on a log that lost acknowledged events.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

/// An incompressible comment of `len` characters that starts with `mark`.
fn comment(mark: &str, len: usize) -> serde_json::Value {
    let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ mark.len() as u64;
    let noise: String = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        })
        .collect();
    json!({"body": format!("{mark} {noise}"), "actor": {"name": "ops", "kind": "human"}})
}

/// Every file below `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_log_that_lost_its_tail_to_a_corrupt_blob_is_named_and_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let mut server = spawn_binary(&data);
    // Given three tickets, each with one comment large enough to be a blob file of its own,
    for t in ["MC-1", "MC-2", "MC-3"] {
        let open = post(
            server.addr,
            "/v1/tickets",
            &json!({"id": t, "title": "corrupt me", "actor": {"name": "ops", "kind": "human"}}),
        );
        assert_eq!(open.status, 201, "{}", open.body);
        // One raw append of three 60 KB comments: one commit of ~180 KB, which sled keeps as
        // a blob file of its own.
        let events: Vec<serde_json::Value> = (0..3)
            .map(|k| {
                let c = comment(&format!("MARK-{t}-MARK-{k}"), 60_000);
                json!({"type": "ticket.commented", "data": {"body": c["body"]},
                       "actor": {"name": "import", "kind": "system"}})
            })
            .collect();
        let r = post(
            server.addr,
            &format!("/v1/tickets/{t}/events"),
            &json!({ "events": events }),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
    // when two bytes of the blob holding MC-2's comment are changed,
    let holding = files_holding(&data, b"MARK-MC-2-MARK-1");
    assert_eq!(
        holding.len(),
        1,
        "one file holds MC-2's comment: {holding:?}"
    );
    let blob = &holding[0];
    assert!(
        blob.components().any(|c| c.as_os_str() == "blobs"),
        "a sled blob file: {}",
        blob.display()
    );
    let mut bytes = std::fs::read(blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes[middle + 1] ^= 0xff;
    std::fs::write(blob, &bytes).unwrap();

    // then verify fails, saying in words which positions and tickets are missing (sled ends
    // its log at a blob that fails its checksum when it opens, silently dropping every later
    // commit; the projections' snapshot remembers how far the log went),
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["verify", "--data-dir", &data_arg])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "verify fails: {said}");
    assert!(said.contains("were acknowledged and are missing"), "{said}");
    assert!(
        said.contains("MC-2") && said.contains("MC-3"),
        "names the tickets: {said}"
    );
    assert!(
        !said.contains("MC-1,") && !said.contains("MC-1)"),
        "not MC-1: {said}"
    );
    assert!(
        !said.contains("backtrace"),
        "words, not a debug dump: {said}"
    );

    // and the server refuses to start on it rather than serve a ledger that forgot,
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(["serve", "--data-dir", &data_arg, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "serve refuses: {said}");
    assert!(said.contains("are missing"), "{said}");

    // until the operator moves the snapshot aside (going on without those events): then it
    // serves what the log has.
    std::fs::rename(
        data.join("projections.snapshot"),
        dir.path().join("projections.snapshot.aside"),
    )
    .unwrap();
    let server = spawn_binary(&data);
    let r = get(server.addr, "/v1/tickets/MC-1/events");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 4);
    assert_eq!(get(server.addr, "/v1/tickets/MC-3").status, 404);
}
