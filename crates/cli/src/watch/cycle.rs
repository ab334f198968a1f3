//! One watch cycle against the server through [`client::Client`]: list the live runtimes,
//! probe them, apply the confirm rule and the mass-reap limit, and reap the confirmed deaths.

use std::time::Duration;

use anyhow::Context;
use events::{ReapCause, Timestamp};
use serde::Deserialize;
use serde_json::json;

use client::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use service::clock::now;

use super::classify::{confirm, is_mass_reap, Candidate, Finding, Probe, Target};

/// Runtimes asked for per page of `GET /v1/runtimes` (the server's maximum).
const PAGE_LIMIT: usize = 1_000;
/// Pages followed in one cycle, so a server whose cursor never ends cannot loop us forever.
const PAGES_MAX: usize = 10_000;

/// What one cycle did; printed as one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runtimes probed (tmux and process transports with a target).
    pub probed: usize,
    pub alive: usize,
    /// Reaps the server recorded (201).
    pub reaped: usize,
    /// Probe errors, unprobeable runtimes and refused reaps.
    pub errors: usize,
    /// Live tmux/process runtimes with no tmux_target / process_id: reported, not probed.
    pub not_probed: usize,
    /// Reaps the server answered as already applied or ended meanwhile (200 duplicate, 409).
    pub already_ended: usize,
    /// Confirmed deaths not reaped because they were too many at once (the mass-reap limit).
    pub withheld: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "watch: probed {}, alive {}, reaped {}, errors {}, not probed {}, already ended {}",
            self.probed, self.alive, self.reaped, self.errors, self.not_probed, self.already_ended
        )?;
        if self.withheld > 0 {
            write!(
                f,
                "; suspected probe failure: {} of {} look dead, none reaped (--allow-mass-reap reaps them)",
                self.withheld, self.probed
            )?;
        }
        Ok(())
    }
}

/// The fields of a runtime view the watcher reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct LiveRuntime {
    id: String,
    ticket: String,
    transport: String,
    tmux_target: Option<String>,
    process_id: Option<u32>,
    started_at: Timestamp,
    last_activity_at: Option<Timestamp>,
}

/// What a cycle needs besides the server and the probe.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub confirm_wait: Duration,
    pub shell_grace: Duration,
    pub allow_mass_reap: bool,
}

/// The server could not be reached or would not list runtimes: the cycle did nothing useful.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Unreachable(anyhow::Error);

/// One full cycle: list live runtimes, probe, confirm, reap. Probe errors and refused reaps are
/// reported and counted; only a server that cannot be reached is an error.
pub fn cycle(client: &Client, probe: &dyn Probe, rules: Rules) -> Result<Summary, Unreachable> {
    let runtimes = list_live(client).map_err(Unreachable)?;
    let now = now();
    let grace_ms = u64::try_from(rules.shell_grace.as_millis()).unwrap_or(u64::MAX);
    let mut summary = Summary::default();
    let mut candidates = Vec::new();
    for r in runtimes {
        let target = match (r.transport.as_str(), r.tmux_target, r.process_id) {
            ("tmux", Some(t), _) if !t.trim().is_empty() => Target::Tmux(t),
            ("process", _, Some(pid)) => Target::Process {
                pid,
                dispatched_at: r.started_at,
            },
            ("tmux" | "process", _, _) => {
                summary.not_probed += 1;
                summary.errors += 1;
                let missing = if r.transport == "tmux" {
                    "tmux_target"
                } else {
                    "process_id"
                };
                tracing::warn!(runtime = %r.id, ticket = %r.ticket, "live {} runtime has no {missing}: not probed", r.transport);
                continue;
            }
            _ => continue,
        };
        let idle_shell_is_dead = r.last_activity_at.is_some()
            || now.millis().saturating_sub(r.started_at.millis()) >= grace_ms;
        candidates.push(Candidate {
            runtime_id: r.id,
            ticket: r.ticket,
            target,
            idle_shell_is_dead,
        });
    }
    summary.probed = candidates.len();
    let findings = confirm(probe, &candidates, &mut || {
        std::thread::sleep(rules.confirm_wait)
    });
    let dead = findings
        .iter()
        .filter(|f| matches!(f, Finding::Dead { .. }))
        .count();
    let withhold = !rules.allow_mass_reap && is_mass_reap(dead, summary.probed);
    if withhold {
        summary.withheld = dead;
        tracing::warn!(
            dead,
            probed = summary.probed,
            "suspected probe failure: more than half of the probed runtimes look dead; reaping none (is --tmux-socket-name right? --allow-mass-reap reaps them)"
        );
    }
    for (c, finding) in candidates.iter().zip(findings) {
        match finding {
            Finding::Alive => summary.alive += 1,
            Finding::Error(e) => {
                summary.errors += 1;
                tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, target = ?c.target, "probe error, not reaped: {e}");
            }
            Finding::Dead { cause, .. } if withhold => {
                tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, cause = cause.as_str(), "looks dead, not reaped (mass-reap limit)");
            }
            Finding::Dead { cause, evidence } => match reap(client, c, cause, &evidence) {
                Ok(Reaped::Recorded) => {
                    summary.reaped += 1;
                    tracing::info!(runtime = %c.runtime_id, ticket = %c.ticket, cause = cause.as_str(), "reaped");
                }
                Ok(Reaped::AlreadyEnded(how)) => {
                    summary.already_ended += 1;
                    tracing::info!(runtime = %c.runtime_id, ticket = %c.ticket, "not reaped: {how}");
                }
                Ok(Reaped::Refused(why)) => {
                    summary.errors += 1;
                    tracing::warn!(runtime = %c.runtime_id, ticket = %c.ticket, "reap refused: {why}");
                }
                Err(e) => return Err(Unreachable(e)),
            },
        }
    }
    Ok(summary)
}

fn list_live(client: &Client) -> anyhow::Result<Vec<LiveRuntime>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..PAGES_MAX {
        let mut path = format!("/v1/runtimes?live=true&limit={PAGE_LIMIT}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode_component(c)));
        }
        let page = client.get(&path)?.ok().context("listing live runtimes")?;
        let runtimes: Vec<LiveRuntime> = serde_json::from_value(page["runtimes"].clone())
            .context("the server's runtime list is not what this watcher understands")?;
        out.extend(runtimes);
        match page["next_cursor"].as_str() {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
    anyhow::bail!("the runtime list did not end after {PAGES_MAX} pages")
}

enum Reaped {
    Recorded,
    AlreadyEnded(String),
    Refused(String),
}

fn reap(
    client: &Client,
    c: &Candidate,
    cause: ReapCause,
    evidence: &str,
) -> anyhow::Result<Reaped> {
    let body = json!({
        "cause": cause.as_str(),
        "evidence": evidence,
        "actor": {"name": "watcher", "kind": "system"},
    });
    let path = format!("/v1/runtimes/{}/reap", encode_component(&c.runtime_id));
    let r = client.post(&path, &body)?;
    let code = r.body["code"].as_str().unwrap_or("error");
    let detail = r.body["detail"].as_str().unwrap_or("");
    Ok(match r.status {
        201 => Reaped::Recorded,
        200 => Reaped::AlreadyEnded("already reaped with this cause".to_owned()),
        409 => Reaped::AlreadyEnded(format!("{code}: {detail}")),
        s => Reaped::Refused(format!("server answered {s} {code}: {detail}")),
    })
}

/// RFC 3986's unreserved characters are all that stays as is: letters, digits and `-._~`.
/// Everything else, and every byte of a non-ASCII character, is escaped (`%XX`, upper case).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or a
/// query value.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("rt_01 /?"), "rt_01%20%2F%3F");
        assert_eq!(encode_component("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(encode_component("é%+"), "%C3%A9%25%2B");
        // Every ASCII byte: only the unreserved ones are left alone, the rest is `%XX`.
        for b in 0u8..=127 {
            let c = char::from(b);
            let want = if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                c.to_string()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(encode_component(&c.to_string()), want, "{b:#04x}");
        }
    }

    #[test]
    fn summary_is_one_line() {
        let s = Summary {
            probed: 3,
            alive: 1,
            reaped: 1,
            errors: 1,
            not_probed: 0,
            already_ended: 0,
            withheld: 0,
        };
        assert_eq!(
            s.to_string(),
            "watch: probed 3, alive 1, reaped 1, errors 1, not probed 0, already ended 0"
        );
        let limited = Summary {
            probed: 5,
            alive: 0,
            reaped: 0,
            withheld: 5,
            ..s
        };
        assert!(limited
            .to_string()
            .ends_with("; suspected probe failure: 5 of 5 look dead, none reaped (--allow-mass-reap reaps them)"));
    }
}
