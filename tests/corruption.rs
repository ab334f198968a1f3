//! SPEC §17, corruption names its place, and salvage keeps what is whole: bytes flipped, with
//! the server stopped, in every copy of one record that sled keeps in blob files, in every
//! copy of one record in sled's segment file `db`, and in the projections' snapshot.
//!
//! sled, opening a log with a commit that fails its checksum, ends the log there, fills the
//! rest of the segment and deletes later blob files: every later commit is gone from the log
//! without a word. The projections' snapshot remembers how far the log went, so an open names
//! the missing positions and tickets and refuses to serve a ledger that forgot; the files sled
//! had before it opened them are kept aside (`store_sled::preserve`), so `verify --all` and
//! `salvage` still read every whole record, and salvage's new ledger holds every event but
//! the damaged one. When only the copy sled checks is damaged and its later copies are whole,
//! the open puts the dropped tail back (same positions, same hashes) and nothing is lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

const TICKETS: [&str; 3] = ["MC-1", "MC-2", "MC-3"];
/// Per ticket: the open, one append of three large comments, five small comments.
const EVENTS: usize = 3 * 9;

/// An incompressible comment body of `len` characters that starts with `mark`.
fn body(mark: &str, len: usize) -> String {
    let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ mark.len() as u64;
    let noise: String = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        })
        .collect();
    format!("{mark} {noise}")
}

fn comment_event(body: String) -> serde_json::Value {
    json!({"type": "ticket.commented", "data": {"body": body},
           "actor": {"name": "import", "kind": "system"}})
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

/// Flips the byte `offset` bytes past `needle` in every file below `dir` that holds it;
/// answers the files changed.
fn flip_after(dir: &Path, needle: &[u8], offset: usize) -> Vec<PathBuf> {
    let files = files_holding(dir, needle);
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
            + offset;
        bytes[at] ^= 0xff;
        std::fs::write(file, &bytes).unwrap();
    }
    files
}

fn mc_ledger(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mc-ledger"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mc-ledger salvage --from FROM --to sled:TO` with `extra` arguments, which must succeed;
/// answers its stdout.
fn salvage(from: &str, to: &Path, extra: &[&str]) -> String {
    let to = format!("sled:{}", to.display());
    let mut args = vec!["salvage", "--from", from, "--to", &to];
    args.extend_from_slice(extra);
    let (ok, out, err) = mc_ledger(&args);
    assert!(ok, "salvage {from}: {out}{err}");
    out
}

/// A ledger of [`EVENTS`] events in `data`, written by a server that then stopped cleanly.
fn write_ledger(data: &Path) {
    let mut server = fill_ledger(data);
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

/// A server on `data` that has written the [`EVENTS`] events.
fn fill_ledger(data: &Path) -> Child {
    let server = spawn_binary(data);
    for t in TICKETS {
        open_with_big_comments(server.addr, t);
        for k in 0..5 {
            append_ok(
                server.addr,
                t,
                vec![comment_event(format!("SMALL-{t}-{k} note"))],
            );
        }
    }
    server
}

/// Raw-appends `events` to ticket `t`; they must be acknowledged.
fn append_ok(addr: std::net::SocketAddr, t: &str, events: Vec<serde_json::Value>) {
    let r = post(
        addr,
        &format!("/v1/tickets/{t}/events"),
        &json!({ "events": events }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Opens ticket `t` with one raw append of three 60 KB comments `BIG-t-k`: one commit of
/// ~180 KB, which sled keeps in blob files.
fn open_with_big_comments(addr: std::net::SocketAddr, t: &str) {
    let open = post(
        addr,
        "/v1/tickets",
        &json!({"id": t, "title": "corrupt me", "actor": {"name": "ops", "kind": "human"}}),
    );
    assert_eq!(open.status, 201, "{}", open.body);
    let events = (0..3)
        .map(|k| comment_event(body(&format!("BIG-{t}-{k}"), 60_000)))
        .collect();
    append_ok(addr, t, events);
}

struct Row {
    name: &'static str,
    /// Damages the stopped ledger in `data`.
    damage: fn(&Path),
    /// The lost position and its ticket, or `None` when nothing acknowledged is lost.
    lost: Option<(u64, &'static str)>,
    /// Whether the first open finds sled dropped a tail the files still hold whole, and puts
    /// it back.
    put_back: bool,
}

#[test]
fn damage_is_named_and_salvage_keeps_every_whole_event() {
    let rows = [
        Row {
            name: "every copy of MC-2's second large comment, in blob files",
            damage: |data| {
                let files = flip_after(&data.join("log"), b"BIG-MC-2-1", 30_000);
                assert!(
                    files
                        .iter()
                        .any(|f| f.components().any(|c| c.as_os_str() == "blobs")),
                    "sled keeps the commit in blob files: {files:?}"
                );
            },
            // MC-1's 9 events, MC-2's open, big comment 0, then big comment 1.
            lost: Some((12, "MC-2")),
            put_back: false,
        },
        Row {
            name: "every copy of MC-1's fourth small comment, one in sled's segment file",
            damage: |data| {
                let files = flip_after(&data.join("log"), b"SMALL-MC-1-3 note", 8);
                assert!(
                    files.iter().any(|f| f.ends_with("log/db")),
                    "the segment file holds it: {files:?}"
                );
            },
            // MC-1's open, its three big comments, small comments 0 to 3.
            lost: Some((8, "MC-1")),
            put_back: false,
        },
        Row {
            name: "the projections' snapshot",
            damage: |data| {
                let file = data.join("projections.snapshot");
                let mut bytes = std::fs::read(&file).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(&file, &bytes).unwrap();
            },
            lost: None,
            put_back: false,
        },
        Row {
            name: "the first copy of MC-2's second large comment (sled's later copies whole)",
            // The blob written first (blob files are named by log sequence number) is the one
            // sled's recovery checks: it ends the log there.
            damage: |data| flip_blob_copies(data, b"BIG-MC-2-1", false),
            lost: None,
            put_back: true,
        },
    ];
    for row in rows {
        let name = row.name;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_arg = data.to_string_lossy().into_owned();
        // Given a stopped ledger of 27 events,
        write_ledger(&data);
        // when its bytes are damaged,
        (row.damage)(&data);

        // then `verify --all` reads past the damage and names it: the position, the ticket,
        // in words (a sled log is read from its files, not opened),
        let (ok, out, err) = mc_ledger(&["verify", "--all", "--data-dir", &data_arg]);
        match row.lost {
            Some((position, ticket)) => {
                assert!(!ok, "{name}: verify --all fails: {out}{err}");
                assert!(
                    err.contains(&format!("{} of {EVENTS} events are whole", EVENTS - 1)),
                    "{name}: {err}"
                );
                assert!(
                    err.contains(&format!("position {position} (tickets {ticket})")),
                    "{name}: names the position and ticket: {err}"
                );
                assert!(err.contains("1 bad range"), "{name}: {err}");
                assert!(
                    !err.contains("backtrace"),
                    "{name}: words, not a dump: {err}"
                );
            }
            None => assert!(ok, "{name}: verify --all passes: {out}{err}"),
        }
        // (when sled dropped a tail the files hold whole, the open put it back)
        assert_eq!(err.contains("is back"), row.put_back, "{name}: {err}");

        // and `verify` and `serve`, which open the log, refuse a log that lost acknowledged
        // events (sled ended it at the damage), naming the missing positions and tickets,
        let (ok, out, err) = mc_ledger(&["verify", "--data-dir", &data_arg]);
        if let Some((position, ticket)) = row.lost {
            assert!(!ok, "{name}: verify fails: {out}");
            // (sled ends the log at the commit holding the damage, or before)
            assert!(ends_at(&err, name) < position, "{name}: {err}");
            assert!(
                err.contains("were acknowledged and are missing") && err.contains(ticket),
                "{name}: {err}"
            );
            serves_what_was_kept_read_only(&data, &[ticket], name);
        } else {
            // (a damaged snapshot is rebuilt from the log: nothing is lost)
            assert!(ok, "{name}: {out}{err}");
            assert!(
                out.contains(&format!("ok: {EVENTS} events")),
                "{name}: {out}"
            );
        }

        // and salvage, even after those opens, copies every whole event into a new ledger that
        // verifies, reporting the loss in JSON,
        let new = dir.path().join("salvaged");
        let report_file = dir.path().join("report.json");
        salvage(
            &format!("sled:{data_arg}"),
            &new,
            &["--report", &report_file.to_string_lossy()],
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
        let kept = EVENTS - usize::from(row.lost.is_some());
        assert_eq!(report["expected_events"], json!(EVENTS), "{name}: {report}");
        assert_eq!(report["recovered"], json!(kept), "{name}: {report}");
        match row.lost {
            Some((position, ticket)) => {
                assert_eq!(report["lost_events"], json!(1), "{name}: {report}");
                let range = &report["lost"][0];
                assert_eq!(range["first"], json!(position), "{name}: {report}");
                assert_eq!(range["last"], json!(position), "{name}: {report}");
                assert_eq!(range["tickets"], json!([ticket]), "{name}: {report}");
                assert!(range["after"].is_string() && range["before"].is_string());
            }
            None => assert_eq!(report["lost"], json!([]), "{name}: {report}"),
        }
        let (ok, out, err) = mc_ledger(&["verify", "--data-dir", &new.to_string_lossy()]);
        assert!(ok, "{name}: the new ledger verifies: {err}");
        assert!(
            out.contains(&format!("ok: {kept} events, 3 tickets")),
            "{name}: {out}"
        );

        // and the new ledger serves every ticket with every event but the damaged one.
        serves_events(&new, name, |t| {
            9 - usize::from(row.lost.is_some_and(|(_, ticket)| ticket == t))
        });
    }
}

#[test]
fn a_damaged_postgresql_row_is_named_and_salvaged_into_sled() {
    let schema = PgSchema::new("corrupt_row");
    let url = schema.store_url();
    // Given a PostgreSQL ledger of two tickets with three comments each,
    let mut server = spawn_serve(&["--store", &url]);
    for t in ["MC-1", "MC-2"] {
        let open = post(
            server.addr,
            "/v1/tickets",
            &json!({"id": t, "title": "row", "actor": {"name": "ops", "kind": "human"}}),
        );
        assert_eq!(open.status, 201, "{}", open.body);
        for k in 0..3 {
            let r = post(
                server.addr,
                &format!("/v1/tickets/{t}/comments"),
                &json!({"body": format!("note {k}"), "actor": {"name": "ops", "kind": "human"}}),
            );
            assert_eq!(r.status, 201, "{}", r.body);
        }
    }
    assert!(sigterm(&mut server.child).success());
    // when one byte of the record at position 3 (MC-1's second comment) changes in its row,
    psql(&format!(
        "UPDATE {}.events SET record = set_byte(record, 80, get_byte(record, 80) # 255) \
         WHERE position = 3",
        schema.config.schema
    ));
    // then the store will not open, naming the position,
    let (ok, _, err) = mc_ledger(&["verify", "--store", &url]);
    assert!(!ok && err.contains("position 3"), "{err}");
    // `verify --all` reads the rows past it and names position and ticket,
    let (ok, _, err) = mc_ledger(&["verify", "--all", "--store", &url]);
    assert!(!ok, "{err}");
    assert!(err.contains("7 of 8 events are whole"), "{err}");
    assert!(err.contains("position 3 (tickets MC-1)"), "{err}");
    // and salvage copies the 7 whole events into a sled ledger that verifies and serves.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("salvaged");
    let out = salvage(&url, &new, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["recovered"], json!(7), "{report}");
    assert_eq!(report["lost"][0]["first"], json!(3), "{report}");
    let server = spawn_binary(&new);
    let comments = get(server.addr, "/v1/tickets/MC-1/comments").json();
    let bodies = strs(comments["comments"].as_array().unwrap(), "body");
    assert_eq!(bodies.len(), 2, "{comments}");
    assert!(!bodies.contains(&"note 1"), "{comments}");
}

#[test]
fn a_page_that_turns_bad_while_serving_is_corrupt_record_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    // Given a server with a small page cache, three tickets with three large comments each
    // (one append), 2,500 later comments of 3 KB (so sled's cache lets the first pages go)
    // and a late ticket MC-4,
    let server = spawn_serve(&["--data-dir", &data_arg, "--cache-mib", "1"]);
    for t in TICKETS {
        open_with_big_comments(server.addr, t);
    }
    for k in 0..2_500 {
        append_ok(
            server.addr,
            "MC-3",
            vec![comment_event(body(&format!("FILL-{k}"), 3_000))],
        );
    }
    let open = post(
        server.addr,
        "/v1/tickets",
        &json!({"id": "MC-4", "title": "late", "actor": {"name": "ops", "kind": "human"}}),
    );
    assert_eq!(open.status, 201, "{}", open.body);
    // when the bytes of MC-2's comment change on disk under the running server,
    let files = flip_after(&data.join("log"), b"BIG-MC-2-1", 30_000);
    assert!(!files.is_empty());
    // then a read that reaches the damaged page (once sled's cache has let it go: other
    // pages are read until then) answers 500 `corrupt_record` naming the position and the
    // ticket,
    let mut r = get(server.addr, "/v1/tickets/MC-2/events");
    for after in (0..2_500).step_by(250).cycle().take(40) {
        if r.status != 200 {
            break;
        }
        get(
            server.addr,
            &format!("/v1/tickets/MC-3/events?after={after}&limit=1000"),
        );
        r = get(server.addr, "/v1/tickets/MC-2/events");
    }
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["code"], "corrupt_record", "{}", r.body);
    assert!(r.json()["position"].is_u64(), "{}", r.body);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("MC-2"),
        "{}",
        r.body
    );
    // `GET /v1/admin/verify` says where, as a result rather than a 500,
    let v = get(server.addr, "/v1/admin/verify");
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["ok"], json!(false), "{}", v.body);
    assert!(v.json()["first_bad_position"].is_u64(), "{}", v.body);
    // and everything else is served: the late ticket, the board, /readyz.
    let late = get(server.addr, "/v1/tickets/MC-4/events");
    assert_eq!(late.status, 200, "{}", late.body);
    assert_eq!(get(server.addr, "/v1/board").status, 200);
    assert_eq!(get(server.addr, "/readyz").status, 200);
}

/// Flips a byte of the blob files holding `needle`: only the one sled wrote first (the copy
/// its recovery checks), or every one.
fn flip_blob_copies(data: &Path, needle: &[u8], all: bool) {
    let mut files = files_holding(&data.join("log"), needle);
    files.sort_by_key(|f| {
        f.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    assert!(files.len() > 1, "sled keeps more than one copy: {files:?}");
    let take = if all { files.len() } else { 1 };
    for file in &files[..take] {
        let mut bytes = std::fs::read(file).unwrap();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
            + 30_000;
        bytes[at] ^= 0xff;
        std::fs::write(file, &bytes).unwrap();
    }
}

/// A server started on `data` serves every ticket with `events(ticket)` events.
fn serves_events(data: &Path, name: &str, events: impl Fn(&str) -> usize) {
    let server = spawn_binary(data);
    for t in TICKETS {
        let r = get(server.addr, &format!("/v1/tickets/{t}/events"));
        assert_eq!(r.status, 200, "{name}: {t}: {}", r.body);
        let got = r.json()["events"].as_array().unwrap().len();
        assert_eq!(got, events(t), "{name}: {t}");
    }
}

/// Where an open's refusal says sled ended the log.
fn ends_at(err: &str, name: &str) -> u64 {
    err.split("the log ends at position ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}: names where the log ends: {err}"))
}

/// A server started on a log that lost acknowledged events serves what the log kept (SPEC
/// §17): not ready, every write refused with 503 and nothing appended, the tickets that lost
/// events (at least those of `lost`) answering `corrupt_record` at the first missing position,
/// every other ticket whole (when nothing names the tickets that lost events, every ticket
/// read says so),
/// the board served, verify not ok; and it keeps the evidence, so the next open says the same.
fn serves_what_was_kept_read_only(data: &Path, lost: &[&str], name: &str) {
    let mut server = spawn_binary(data);
    let addr = server.addr;
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503, "{name}: {}", ready.body);
    assert!(ready.body.contains("are missing"), "{name}: {}", ready.body);
    let verify = get(addr, "/v1/admin/verify").json();
    assert_eq!(verify["ok"], json!(false), "{name}: {verify}");
    let first_missing = verify["first_bad_position"].as_u64().unwrap();
    // (every ticket is either whole or says it is not: none is served with a hole)
    for t in TICKETS {
        let r = get(addr, &format!("/v1/tickets/{t}/events"));
        if r.status == 500 {
            assert_eq!(r.json()["code"], json!("corrupt_record"), "{name}: {t}");
            assert_eq!(r.json()["position"], json!(first_missing), "{name}: {t}");
            assert_eq!(
                get(addr, &format!("/v1/tickets/{t}")).status,
                500,
                "{name}: {t}"
            );
        } else {
            assert!(!lost.contains(&t), "{name}: {t} lost events: {}", r.body);
            assert_eq!(r.status, 200, "{name}: {t}: {}", r.body);
            assert_eq!(
                r.json()["events"].as_array().unwrap().len(),
                9,
                "{name}: {t}"
            );
        }
    }
    assert_eq!(get(addr, "/v1/board").status, 200, "{name}");
    let write = post(
        addr,
        "/v1/tickets/MC-1/events",
        &json!({ "events": [comment_event("after the loss".into())] }),
    );
    assert_eq!(write.status, 503, "{name}: {}", write.body);
    assert_eq!(write.json()["code"], json!("store_unavailable"), "{name}");
    assert_eq!(sigterm(&mut server.child).code(), Some(0), "{name}");
    let (ok, _, err) = mc_ledger(&["verify", "--data-dir", &data.to_string_lossy()]);
    assert!(
        !ok && err.contains("are missing"),
        "{name}: still named: {err}"
    );
}

/// The position the log's `acked` file names (`store_sled::acked`: magic, position, sum).
fn acked(data: &Path) -> Option<u64> {
    let bytes = std::fs::read(data.join("log/acked")).ok()?;
    Some(u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?))
}

/// SIGKILLs the server once its log has recorded every event as acknowledged (it does so off
/// the write path, within a tenth of a second).
fn kill_once_acked(mut server: Child, data: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while acked(data) != Some(EVENTS as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "acked: {:?}",
            acked(data)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[test]
fn a_dropped_tail_is_put_back_or_named_without_a_snapshot() {
    struct Case {
        name: &'static str,
        damage: fn(&Path),
        /// Whether the log's `acked` file is removed first (a log written before it existed).
        without_acked: bool,
        /// The damaged position, when the tail cannot be put back.
        lost: Option<u64>,
        /// The tickets whose events the files hold past where sled ended the log.
        tickets: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "the first copy of MC-2's second large comment",
            damage: |data| flip_blob_copies(data, b"BIG-MC-2-1", false),
            without_acked: false,
            lost: None,
            tickets: &[],
        },
        Case {
            name: "every copy of MC-2's second large comment",
            damage: |data| flip_blob_copies(data, b"BIG-MC-2-1", true),
            without_acked: false,
            lost: Some(12),
            tickets: &["MC-2", "MC-3"],
        },
        Case {
            // Small commits only: sled deletes no blob file, so nothing but `acked` says a
            // tail was there.
            name: "every copy of MC-3's last small comment, in sled's segment file",
            damage: |data| {
                flip_after(&data.join("log"), b"SMALL-MC-3-4 note", 8);
            },
            without_acked: false,
            lost: Some(EVENTS as u64),
            // (nothing names MC-3's lost comment: every ticket read says events may be lost)
            tickets: &["MC-1", "MC-2", "MC-3"],
        },
        Case {
            name: "every copy of MC-2's second large comment, in a log without `acked`",
            damage: |data| flip_blob_copies(data, b"BIG-MC-2-1", true),
            without_acked: true,
            lost: None,
            tickets: &[],
        },
    ];
    for case in cases {
        let name = case.name;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_arg = data.to_string_lossy().into_owned();
        // Given a ledger whose server was killed (so no projections snapshot was saved) after
        // its log recorded every event as acknowledged,
        kill_once_acked(fill_ledger(&data), &data);
        assert!(!data.join("projections.snapshot").exists());
        if case.without_acked {
            std::fs::remove_file(data.join("log/acked")).unwrap();
        }
        // when its bytes are damaged,
        (case.damage)(&data);
        let (ok, out, err) = mc_ledger(&["verify", "--data-dir", &data_arg]);
        match case.lost {
            Some(damaged) => {
                // then an open refuses, naming the acknowledged positions that are missing,
                assert!(!ok, "{name}: {out}{err}");
                // (sled ends the log at the commit holding the damage, or before)
                let ends_at = ends_at(&err, name);
                assert!(ends_at < damaged, "{name}: {err}");
                let missing = format!(
                    "but the log had acknowledged appends up to position {EVENTS}: positions {} \
                     to {EVENTS}",
                    ends_at + 1
                );
                assert!(err.contains(&missing), "{name}: {err}");
                serves_what_was_kept_read_only(&data, case.tickets, name);
                assert!(data.join("log/before-open").is_dir(), "{name}");
            }
            None if case.without_acked => {
                // then, with nothing to tell an acknowledged tail from writes a crash cut off,
                // the open goes on with what sled kept but says so and keeps the files,
                assert!(ok, "{name}: {out}{err}");
                assert!(err.contains("log/before-open"), "{name}: {err}");
                assert!(data.join("log/before-open").is_dir(), "{name}");
            }
            None => {
                // then the open puts the dropped tail back and the log verifies whole,
                assert!(ok, "{name}: {out}{err}");
                assert!(err.contains("is back"), "{name}: {err}");
                assert!(
                    out.contains(&format!("ok: {EVENTS} events")),
                    "{name}: {out}"
                );
                // and a server opening it serves every event.
                serves_events(&data, name, |_| 9);
                continue;
            }
        }
        // and salvage keeps every whole event.
        let new = dir.path().join("salvaged");
        let out = salvage(&format!("sled:{data_arg}"), &new, &["--json"]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["recovered"], json!(EVENTS - 1), "{name}: {report}");
    }
}
