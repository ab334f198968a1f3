//! `Idempotency-Key`: a command sent again with the same key, route and body is applied once
//! and answered 200 with the original result, even where deciding it again would refuse it
//! (a second close, a retry of a runtime that is now live). Given/when/then rows, run in
//! order on one ledger, on the sled store and on the PostgreSQL store.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};

/// When `key` (or no key) sends `body` to `path` (`{rt}`: the dispatched runtime, `{rt2}`: its
/// retry), then the answer is `status`, the log grows
/// by `appended` events, and a row naming `same_as` answers that row's position.
struct Row {
    when: &'static str,
    path: String,
    body: Value,
    key: Option<&'static str>,
    status: u16,
    appended: u64,
    same_as: Option<&'static str>,
    /// The same command sent again right after: its row's name and status.
    again: Option<(&'static str, u16)>,
}

fn row(when: &'static str, path: &str, body: Value, key: Option<&'static str>) -> Row {
    Row {
        when,
        path: path.to_owned(),
        body,
        key,
        status: 201,
        appended: 1,
        same_as: None,
        again: None,
    }
}

impl Row {
    fn answers(mut self, status: u16, appended: u64) -> Row {
        self.status = status;
        self.appended = appended;
        self
    }
    fn same_as(mut self, earlier: &'static str) -> Row {
        self.same_as = Some(earlier);
        self
    }
    /// Then the same command again (same key, route and body): answered `status` with this
    /// row's position, appending nothing.
    fn again(mut self, when: &'static str, status: u16) -> Row {
        self.again = Some((when, status));
        self
    }
    /// This row, then the row sending it again if there is one.
    fn and_again(mut self) -> Vec<Row> {
        let Some((when, status)) = self.again.take() else {
            return vec![self];
        };
        let replay = row(when, &self.path, self.body.clone(), self.key)
            .answers(status, 0)
            .same_as(self.when);
        vec![self, replay]
    }
}

fn head(addr: SocketAddr) -> u64 {
    get(addr, "/v1/events?limit=1000").json()["events"]
        .as_array()
        .map_or(0, |a| a.len() as u64)
}

fn comment(text: &str) -> Value {
    json!({"body": text})
}

/// Runs the rows on a fresh ledger served at `addr`.
fn run_rows(addr: SocketAddr) {
    let open = |id: &str| json!({"id": id, "title": "keyed"});
    let rows = vec![
        row("a keyed open", "/v1/tickets", open("MC-1"), Some("k-open"))
            .again("the same open again", 200),
        row(
            "a keyed comment",
            "/v1/tickets/MC-1/comments",
            comment("one"),
            Some("k1"),
        )
        .again("the same comment again", 200),
        row(
            "the same key with another body",
            "/v1/tickets/MC-1/comments",
            comment("two"),
            Some("k1"),
        ),
        row(
            "the same comment without a key",
            "/v1/tickets/MC-1/comments",
            comment("one"),
            None,
        ),
        row(
            "an empty key",
            "/v1/tickets/MC-1/comments",
            comment("x"),
            Some(""),
        )
        .answers(400, 0),
        row(
            "a key with a space",
            "/v1/tickets/MC-1/comments",
            comment("x"),
            Some("a b"),
        )
        .answers(400, 0),
        row(
            "a dispatch",
            "/v1/tickets/MC-1/dispatch",
            json!({"dispatch_key": "d1", "agent": "codex", "transport": "process"}),
            Some("k-dispatch"),
        ),
        row(
            "a keyed kill",
            "/v1/runtimes/{rt}/kill",
            json!({"reason": "stuck"}),
            Some("k-kill"),
        )
        .again("the kill again (deciding it again says runtime_ended)", 200),
        row(
            "a keyed retry",
            "/v1/runtimes/{rt}/retry",
            json!({}),
            Some("k-retry"),
        )
        .again("the retry again (deciding it again says runtime_live)", 200),
        row(
            "a signal with a nonce that is not the runtime's",
            "/v1/runtimes/{rt2}/signals",
            json!({"verdict": "DONE", "nonce": "MC_TICKET_TURN:1:1:deadbeef", "payload": "x"}),
            Some("k-stale"),
        )
        .answers(409, 1)
        .again("the refused signal again", 409),
        row(
            "a keyed close",
            "/v1/tickets/MC-1/close",
            json!({"resolution": "done"}),
            Some("k-close"),
        )
        .again(
            "the close again (deciding it again says ticket_closed)",
            200,
        ),
        row(
            "another close under a new key",
            "/v1/tickets/MC-1/close",
            json!({"resolution": "done"}),
            Some("k-close-2"),
        )
        .answers(409, 0),
    ]
    .into_iter()
    .flat_map(Row::and_again);
    let mut positions: Vec<(&str, u64)> = Vec::new();
    let mut runtime = String::new();
    let mut retried = String::new();
    let mut retried_nonce = String::new();
    for r in rows {
        let path = r.path.replace("{rt2}", &retried).replace("{rt}", &runtime);
        let body = with_actor(r.body.clone(), "tester", "human");
        let before = head(addr);
        let reply = match r.key {
            Some(k) => post_keyed(addr, &path, &body, k),
            None => post(addr, &path, &body),
        };
        assert_eq!(reply.status, r.status, "when {}: {}", r.when, reply.body);
        assert_eq!(
            head(addr) - before,
            r.appended,
            "when {}: events appended",
            r.when
        );
        let v = reply.json();
        let position = v["position"]
            .as_u64()
            .or(v["recorded_position"].as_u64())
            .unwrap_or(0);
        if let Some(earlier) = r.same_as {
            let (_, first) = positions.iter().find(|(w, _)| *w == earlier).unwrap();
            assert_eq!(position, *first, "when {}: the original's position", r.when);
            if r.status == 200 {
                assert_eq!(v["duplicate"], true, "when {}", r.when);
            }
        }
        if r.when == "a dispatch" {
            runtime = v["runtime_id"].as_str().unwrap().to_owned();
        }
        if r.when == "a keyed retry" {
            retried = v["runtime_id"].as_str().unwrap().to_owned();
            retried_nonce = v["nonce"].as_str().unwrap().to_owned();
        }
        if r.when.starts_with("the retry again") {
            assert_eq!(v["runtime_id"], retried.as_str(), "the original runtime");
            assert_eq!(v["nonce"], retried_nonce.as_str(), "the original nonce");
        }
        positions.push((r.when, position));
    }
    let events = get(addr, "/v1/events?limit=1000").json();
    let comments = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ticket.commented")
        .count();
    assert_eq!(comments, 3, "one, two, and one without a key");
}

#[test]
fn a_keyed_command_is_applied_once_on_sled() {
    let s = start_temp();
    run_rows(s.addr);
}

#[test]
fn a_keyed_command_is_applied_once_on_postgres() {
    let pg = PgSchema::new("idempotency");
    let mut replica = spawn_serve(&["--store", &pg.store_url()]);
    run_rows(replica.addr);
    let _ = replica.child.kill();
    let _ = replica.child.wait();
}
