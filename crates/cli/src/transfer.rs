//! `mc-ledger export` and `import`: the log as JSON lines of SPEC §3 envelopes. Import keeps
//! each event's id and time and appends consecutive events of one ticket together, so it is
//! idempotent (ids dedupe) and a crash mid-import leaves whole appends only.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use events::{NewEvent, RecordedEvent};
use serde_json::{json, Value};
use store::{AppendRequest, EventStore};

use client::Client;

const PAGE: usize = 1000;
const GROUP_EVENTS_MAX: usize = 64;

/// Where the events come from or go to: the data directory, or a running server.
pub enum Target<'a> {
    Local(&'a dyn EventStore),
    Server(Client),
}

/// Runs `work` on the server at `server`, or else on the ledger in `store` (created if
/// missing when `create`).
pub(crate) fn with_target<T>(
    server: Option<String>,
    store: &crate::StoreArg,
    create: bool,
    work: impl FnOnce(&Target<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match server {
        Some(url) => work(&Target::Server(Client::new(&url)?)),
        None => {
            let local = crate::open_existing(&store.url()?, create)?;
            work(&Target::Local(local.store.as_ref()))
        }
    }
}

pub(crate) fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what}, {{per_sec}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub fn export(target: &Target<'_>, after: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut after = after;
    let mut count = 0u64;
    let head = match target {
        Target::Local(log) => log.head(),
        Target::Server(_) => 0,
    };
    let progress = bar(head.saturating_sub(after), "events");
    loop {
        let page: Vec<Value> = match target {
            Target::Local(log) => log
                .read_after(after, PAGE)?
                .into_iter()
                .map(|e| serde_json::to_value(&e))
                .collect::<Result<_, _>>()?,
            Target::Server(client) => {
                let body = client
                    .get(&format!("/v1/events?after={after}&limit={PAGE}"))?
                    .ok()?;
                body["events"].as_array().cloned().unwrap_or_default()
            }
        };
        let Some(last) = page.last() else { break };
        after = last["position"]
            .as_u64()
            .context("event without position")?;
        for e in &page {
            writeln!(out, "{e}")?;
        }
        count += u64::try_from(page.len())?;
        progress.inc(u64::try_from(page.len())?);
    }
    progress.finish_and_clear();
    out.flush()?;
    Ok(count)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub appended: u64,
    pub duplicates: u64,
}

pub fn import(target: &Target<'_>, file: &Path) -> anyhow::Result<Imported> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let lines = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let progress = bar(lines, "bytes");
    let mut result = Imported::default();
    let mut group: Vec<RecordedEvent> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        progress.inc(u64::try_from(line.len() + 1)?);
        if line.trim().is_empty() {
            continue;
        }
        let event: RecordedEvent = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not an event envelope", file.display(), n + 1))?;
        if group.first().is_some_and(|g| g.ticket != event.ticket)
            || group.len() == GROUP_EVENTS_MAX
        {
            flush(target, std::mem::take(&mut group), &mut result)?;
        }
        group.push(event);
    }
    flush(target, group, &mut result)?;
    progress.finish_and_clear();
    Ok(result)
}

fn flush(
    target: &Target<'_>,
    group: Vec<RecordedEvent>,
    result: &mut Imported,
) -> anyhow::Result<()> {
    let Some(first) = group.first() else {
        return Ok(());
    };
    let ticket = first.ticket.clone();
    let count = u64::try_from(group.len())?;
    let duplicate = match target {
        Target::Local(log) => {
            let events = group.into_iter().map(NewEvent::from).collect();
            service::salvage::block_on(log.append(AppendRequest {
                also: Vec::new(),
                ticket,
                expected_version: None,
                events,
            }))??
            .duplicate
        }
        Target::Server(client) => {
            let events: Vec<Value> = group
                .iter()
                .map(|e| {
                    let mut v = serde_json::to_value(e)?;
                    if let Some(map) = v.as_object_mut() {
                        for key in ["position", "version", "ticket", "prev_hash", "hash"] {
                            map.remove(key);
                        }
                    }
                    Ok(v)
                })
                .collect::<Result<_, serde_json::Error>>()?;
            let reply = client.post(
                &format!("/v1/tickets/{ticket}/events"),
                &json!({"events": events}),
            )?;
            let status = reply.status;
            reply.ok()?;
            status == 200
        }
    };
    if duplicate {
        result.duplicates += count;
    } else {
        result.appended += count;
    }
    Ok(())
}

/// Appends `events` (in order) to `to` as import does: consecutive events of one ticket
/// together, each keeping its id, time, actor and data; the store numbers them afresh.
/// Answers how many were appended (an id already there is not appended again).
pub fn append_all(to: &dyn EventStore, events: Vec<RecordedEvent>) -> anyhow::Result<u64> {
    let progress = bar(u64::try_from(events.len())?, "events written");
    let target = Target::Local(to);
    let mut result = Imported::default();
    let mut group: Vec<RecordedEvent> = Vec::new();
    for event in events {
        if group.first().is_some_and(|g| g.ticket != event.ticket)
            || group.len() == GROUP_EVENTS_MAX
        {
            flush(&target, std::mem::take(&mut group), &mut result)?;
            progress.set_position(result.appended + result.duplicates);
        }
        group.push(event);
    }
    flush(&target, group, &mut result)?;
    progress.finish_and_clear();
    Ok(result.appended)
}

/// Copies every event of `from` that `to` lacks, in position order and in the same appends as
/// import makes them, so positions, versions, ids and hashes come out equal. `to` must be empty
/// or hold a prefix of `from` (an interrupted copy resumes); anything else is refused before a
/// single event is written.
pub fn copy(from: &dyn EventStore, to: &dyn EventStore) -> anyhow::Result<u64> {
    let done = to.head();
    if done > from.head() {
        anyhow::bail!(
            "the target holds {done} events, more than the source's {}",
            from.head()
        );
    }
    if done > 0 {
        let theirs = to.read_after(done - 1, 1)?;
        let ours = from.read_after(done - 1, 1)?;
        if theirs.first().map(|e| e.hash) != ours.first().map(|e| e.hash) {
            anyhow::bail!(
                "the target's {done} events are not the source's first {done}: refusing to mix two ledgers"
            );
        }
    }
    let progress = bar(from.head() - done, "events");
    let mut after = done;
    let mut copied = 0u64;
    let mut group: Vec<RecordedEvent> = Vec::new();
    loop {
        let page = from.read_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page {
            if group.first().is_some_and(|g| g.ticket != event.ticket)
                || group.len() == GROUP_EVENTS_MAX
            {
                copied += service::salvage::append_as_recorded(to, std::mem::take(&mut group))?;
                progress.set_position(copied);
            }
            group.push(event);
        }
    }
    copied += service::salvage::append_as_recorded(to, group)?;
    progress.finish_and_clear();
    Ok(copied)
}
