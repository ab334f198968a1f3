//! Checks every decision shares: the target exists, strings are within bounds, versions.

use events::{EventData, TicketId};

use crate::class::RuntimeClass;
use crate::ledger::EventRef;
use crate::ledger::{Ledger, Runtime, Ticket};

use crate::limits::{excerpt, KEY_BYTES_MAX, TITLE_CHARS_MAX};

use super::types::*;

/// What a command on an existing ticket is decided against: the ledger, the ticket (found
/// first: 404 before any other check) and the request's context.
#[derive(Clone, Copy)]
pub(super) struct On<'a> {
    pub(super) ledger: &'a Ledger,
    pub(super) t: &'a Ticket,
    pub(super) ctx: &'a Context,
}

pub(super) fn find_ticket<'a>(ledger: &'a Ledger, id: &TicketId) -> Result<&'a Ticket, Rejection> {
    ledger
        .tickets
        .get(id)
        .ok_or_else(|| Rejection::TicketNotFound {
            ticket: id.as_str().to_owned(),
        })
}

pub(super) fn find_runtime<'a>(
    ledger: &'a Ledger,
    id: &str,
) -> Result<(&'a Runtime, &'a Ticket), Rejection> {
    let not_found = || Rejection::RuntimeNotFound {
        runtime_id: excerpt(id, KEY_BYTES_MAX).to_owned(),
    };
    let r = ledger.runtimes.get(id).ok_or_else(not_found)?;
    let t = ledger.tickets.get(&r.ticket).ok_or_else(not_found)?;
    Ok((r, t))
}

pub(super) fn check_version(t: &Ticket, ctx: &Context) -> Result<(), Rejection> {
    match ctx.expected_version {
        Some(v) if v != t.version => Err(Rejection::VersionConflict {
            expected: Some(v),
            current: t.version,
        }),
        _ => Ok(()),
    }
}

pub(super) fn ended(r: &Runtime) -> Rejection {
    Rejection::RuntimeEnded {
        runtime_id: r.id.clone(),
        class: r.ended_class().unwrap_or(RuntimeClass::Closed),
    }
}

/// A required string: not blank, at most `max` bytes.
pub(super) fn required(field: &'static str, s: &str, max: usize) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    optional(field, Some(s), max)
}

pub(super) fn optional(field: &'static str, s: Option<&str>, max: usize) -> Result<(), Rejection> {
    match s {
        Some(s) if s.len() > max => Err(Rejection::invalid(field, format!("at most {max} bytes"))),
        _ => Ok(()),
    }
}

pub(super) fn title(field: &'static str, s: &str) -> Result<(), Rejection> {
    if s.trim().is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    if s.chars().count() > TITLE_CHARS_MAX {
        return Err(Rejection::invalid(
            field,
            format!("at most {TITLE_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

pub(super) fn append(t: &Ticket, events: Vec<EventData>) -> Result<Decision, Rejection> {
    Ok(Decision::Append(Append {
        ticket: t.id.clone(),
        expected_version: t.version,
        events,
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    }))
}

/// The version check, then one event on the ticket's stream.
pub(super) fn record(t: &Ticket, ctx: &Context, data: EventData) -> Result<Decision, Rejection> {
    check_version(t, ctx)?;
    append(t, vec![data])
}

/// A command that changes nothing: 200, the ticket as it is.
pub(super) fn unchanged(t: &Ticket) -> Result<Decision, Rejection> {
    already(t, Vec::new())
}

/// Refused on a closed ticket.
pub(super) fn still_open(t: &Ticket) -> Result<(), Rejection> {
    match t.closed {
        Some(_) => Err(Rejection::TicketClosed {
            ticket: t.id.clone(),
        }),
        None => Ok(()),
    }
}

pub(super) fn already(t: &Ticket, events: Vec<EventRef>) -> Result<Decision, Rejection> {
    Ok(Decision::Duplicate(Duplicate {
        ticket: t.id.clone(),
        version: t.version,
        events,
        runtime_id: None,
        nonce: None,
    }))
}

pub(super) fn fresh_ids(ledger: &Ledger, ctx: &Context) -> Result<(), Rejection> {
    // The server generates these; a reused or empty one is a bug there, still not a panic.
    required("runtime_id", &ctx.runtime_id, KEY_BYTES_MAX)?;
    required("nonce", &ctx.nonce, KEY_BYTES_MAX)?;
    if ledger.runtimes.contains_key(&ctx.runtime_id) {
        return Err(Rejection::invalid("runtime_id", "already in use"));
    }
    Ok(())
}

/// One event on a pool's, budget's or subscription's stream, at the version decided against.
pub(super) fn append_named(ledger: &Ledger, stream: TicketId, data: EventData) -> Decision {
    Decision::Append(Append {
        expected_version: ledger.pool_stream_version(&stream),
        ticket: stream,
        events: vec![data],
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    })
}

/// A configuration that changes nothing: 200, the stream as it is.
pub(super) fn unchanged_named(ledger: &Ledger, stream: TicketId) -> Decision {
    Decision::Duplicate(Duplicate {
        version: ledger.pool_stream_version(&stream),
        ticket: stream,
        events: Vec::new(),
        runtime_id: None,
        nonce: None,
    })
}
