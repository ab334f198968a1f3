//! Ticket commands: open, edit, comment, link, park, gates, close, reopen, tasks.

use events::{
    EventData, GateRecorded, Relation, TaskAdded, TaskStatus, TaskUpdated, TicketClosed,
    TicketCommented, TicketEdited, TicketId, TicketLinked, TicketOpened, TicketParked,
    TicketReopened, TicketUnlinked,
};

use crate::ledger::{Ledger, Ticket};

use crate::limits::{
    excerpt, EVIDENCE_BYTES_MAX, KEY_BYTES_MAX, LABELS_MAX, NAME_BYTES_MAX, REASON_BYTES_MAX,
    TASKS_PER_TICKET_MAX, TEXT_BYTES_MAX, WAITING_ON_MAX,
};

use super::checks::*;
use super::types::*;

pub(super) fn open(
    ledger: &Ledger,
    id: &TicketId,
    o: &TicketOpened,
    ctx: &Context,
) -> Result<Decision, Rejection> {
    if ledger.tickets.contains_key(id) {
        return Err(Rejection::TicketExists { ticket: id.clone() });
    }
    if events::ids::is_reserved_stream(id) {
        return Err(Rejection::invalid(
            "id",
            format!(
                "the {}- and {}- prefixes name pool and subscription streams, not tickets",
                events::ids::POOL_STREAM_PREFIX,
                events::ids::SUBSCRIPTION_STREAM_PREFIX
            ),
        ));
    }
    title("title", &o.title)?;
    optional("description", o.description.as_deref(), TEXT_BYTES_MAX)?;
    optional("owner", o.owner.as_deref(), NAME_BYTES_MAX)?;
    optional("project", o.project.as_deref(), NAME_BYTES_MAX)?;
    if o.labels.len() > LABELS_MAX {
        return Err(Rejection::invalid(
            "labels",
            format!("at most {LABELS_MAX} labels"),
        ));
    }
    for label in &o.labels {
        required("labels", label, NAME_BYTES_MAX)?;
    }
    if let Some(v) = ctx.expected_version.filter(|v| *v != 0) {
        return Err(Rejection::VersionConflict {
            expected: Some(v),
            current: 0,
        });
    }
    Ok(Decision::Append(Append {
        ticket: id.clone(),
        expected_version: 0,
        events: vec![EventData::TicketOpened(o.clone())],
        runtime_id: None,
        nonce: None,
        also: Vec::new(),
    }))
}

pub(super) fn edit_ticket(on: On, e: &TicketEdited) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    if e.title.is_none() && e.description.is_none() && e.priority.is_none() && e.owner.is_none() {
        return Err(Rejection::invalid("body", "nothing to edit"));
    }
    if let Some(s) = &e.title {
        title("title", s)?;
    }
    optional("description", e.description.as_deref(), TEXT_BYTES_MAX)?;
    optional("owner", e.owner.as_deref(), NAME_BYTES_MAX)?;
    // Only what changes is recorded, so the log says what an edit actually did.
    let changed = TicketEdited {
        title: e.title.clone().filter(|v| *v != t.title),
        description: e
            .description
            .clone()
            .filter(|v| t.description.as_ref() != Some(v)),
        priority: e.priority.filter(|v| *v != t.priority),
        owner: e.owner.clone().filter(|v| t.owner.as_ref() != Some(v)),
    };
    if changed.title.is_none()
        && changed.description.is_none()
        && changed.priority.is_none()
        && changed.owner.is_none()
    {
        return unchanged(t);
    }
    record(t, ctx, EventData::TicketEdited(changed))
}

pub(super) fn comment(on: On, body: &str) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    // Allowed in every state, closed tickets included (the seeds' W.1 bug).
    required("body", body, TEXT_BYTES_MAX)?;
    record(
        t,
        ctx,
        EventData::TicketCommented(TicketCommented {
            body: body.to_owned(),
        }),
    )
}

pub(super) fn parse_target(
    ledger: &Ledger,
    t: &Ticket,
    target: &str,
) -> Result<TicketId, Rejection> {
    let target =
        TicketId::parse(target).map_err(|e| Rejection::invalid("target", e.to_string()))?;
    let itself = "a ticket cannot link to itself";
    another_ticket(ledger, &t.id, ("target", itself), target)
}

/// `other` is a ticket that exists and is not `id`; else `field` is invalid (`itself` says why
/// it cannot be the same ticket).
fn another_ticket(
    ledger: &Ledger,
    id: &TicketId,
    (field, itself): (&'static str, &'static str),
    other: TicketId,
) -> Result<TicketId, Rejection> {
    if other == *id {
        return Err(Rejection::invalid(field, itself));
    }
    if !ledger.tickets.contains_key(&other) {
        return Err(Rejection::invalid(field, format!("unknown ticket {other}")));
    }
    Ok(other)
}

pub(super) fn link(on: On, relation: Relation, target: &str) -> Result<Decision, Rejection> {
    let On { ledger, t, ctx } = on;
    let id = &t.id;
    let target = parse_target(ledger, t, target)?;
    let exists = match relation {
        Relation::ChildOf => t.parent.as_ref() == Some(&target),
        Relation::BlockedBy => t.blocked_by.contains(&target),
    };
    if exists {
        return unchanged(t);
    }
    if relation == Relation::ChildOf {
        if let Some(p) = &t.parent {
            return Err(Rejection::invalid(
                "target",
                format!("{id} is already child_of {p}; unlink it first"),
            ));
        }
        // Walk up from the target; meeting this ticket means the link would close a cycle.
        // Bounded by the ticket count, so even a cycle already in the log cannot hang us.
        let mut cursor = Some(&target);
        for _ in 0..=ledger.tickets.len() {
            let Some(c) = cursor else { break };
            if c == id {
                return Err(Rejection::invalid(
                    "target",
                    format!("child_of {target} would make a cycle"),
                ));
            }
            cursor = ledger.tickets.get(c).and_then(|x| x.parent.as_ref());
        }
    }
    record(
        t,
        ctx,
        EventData::TicketLinked(TicketLinked {
            relation,
            target: target.into(),
        }),
    )
}

pub(super) fn unlink(on: On, relation: Relation, target: &str) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    let target =
        TicketId::parse(target).map_err(|e| Rejection::invalid("target", e.to_string()))?;
    let exists = match relation {
        Relation::ChildOf => t.parent.as_ref() == Some(&target),
        Relation::BlockedBy => t.blocked_by.contains(&target),
    };
    if !exists {
        return unchanged(t);
    }
    record(
        t,
        ctx,
        EventData::TicketUnlinked(TicketUnlinked {
            relation,
            target: target.into(),
        }),
    )
}

pub(super) fn park(on: On, waiting_on: &[String], reason: &str) -> Result<Decision, Rejection> {
    let On { ledger, t, ctx } = on;
    let id = &t.id;
    required("reason", reason, REASON_BYTES_MAX)?;
    if waiting_on.len() > WAITING_ON_MAX {
        return Err(Rejection::invalid(
            "waiting_on",
            format!("at most {WAITING_ON_MAX} entries"),
        ));
    }
    for w in waiting_on {
        required("waiting_on", w, KEY_BYTES_MAX)?;
        // Free text ("Elmar's approval") is allowed; something shaped like a ticket id must
        // name a real other ticket, or the wait could never resolve and nobody would know.
        if let Ok(w) = TicketId::parse(w) {
            let itself = "a ticket cannot wait on itself";
            another_ticket(ledger, id, ("waiting_on", itself), w)?;
        }
    }
    check_version(t, ctx)?;
    still_open(t)?;
    append(
        t,
        vec![EventData::TicketParked(TicketParked {
            waiting_on: waiting_on.to_vec(),
            reason: reason.to_owned(),
        })],
    )
}

pub(super) fn record_gate(on: On, g: &GateRecorded) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    // Gates are evidence; a validator may record one after the close as well.
    required("gate", &g.gate, NAME_BYTES_MAX)?;
    optional("commit", g.commit.as_deref(), KEY_BYTES_MAX)?;
    optional("evidence", g.evidence.as_deref(), EVIDENCE_BYTES_MAX)?;
    record(t, ctx, EventData::GateRecorded(g.clone()))
}

pub(super) fn close_ticket(on: On, c: &TicketClosed) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    optional("commit", c.commit.as_deref(), KEY_BYTES_MAX)?;
    optional("evidence", c.evidence.as_deref(), EVIDENCE_BYTES_MAX)?;
    check_version(t, ctx)?;
    still_open(t)?;
    append(t, vec![EventData::TicketClosed(c.clone())])
}

pub(super) fn reopen(on: On, reason: &str) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    required("reason", reason, REASON_BYTES_MAX)?;
    check_version(t, ctx)?;
    if t.closed.is_none() {
        return Err(Rejection::TicketOpen {
            ticket: t.id.clone(),
        });
    }
    append(
        t,
        vec![EventData::TicketReopened(TicketReopened {
            reason: reason.to_owned(),
        })],
    )
}

pub(super) fn add_task(
    on: On,
    task_id: Option<&str>,
    task_title: &str,
) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    title("title", task_title)?;
    if let Some(k) = task_id {
        required("task_id", k, KEY_BYTES_MAX)?;
    }
    if let Some(k) = task_id.and_then(|k| t.tasks.iter().find(|x| x.task_id == k)) {
        if k.title == task_title {
            return unchanged(t);
        }
        return Err(Rejection::TaskExists {
            task_id: k.task_id.clone(),
        });
    }
    if t.tasks.len() >= TASKS_PER_TICKET_MAX {
        return Err(Rejection::invalid(
            "task_id",
            format!("at most {TASKS_PER_TICKET_MAX} tasks per ticket"),
        ));
    }
    // Without a client id the task gets the next free `T<n>`: deterministic, so a replay of
    // the decision gives the same id.
    let task_id = match task_id {
        Some(k) => k.to_owned(),
        None => (t.tasks.len() + 1..)
            .map(|n| format!("T{n}"))
            .find(|k| !t.tasks.iter().any(|x| x.task_id == *k))
            .unwrap_or_default(),
    };
    record(
        t,
        ctx,
        EventData::TaskAdded(TaskAdded {
            task_id,
            title: task_title.to_owned(),
        }),
    )
}

pub(super) fn update_task(
    on: On,
    task_id: &str,
    status: TaskStatus,
) -> Result<Decision, Rejection> {
    let On { t, ctx, .. } = on;
    let Some(task) = t.tasks.iter().find(|x| x.task_id == task_id) else {
        return Err(Rejection::TaskNotFound {
            task_id: excerpt(task_id, KEY_BYTES_MAX).to_owned(),
        });
    };
    if task.status == status {
        return unchanged(t);
    }
    record(
        t,
        ctx,
        EventData::TaskUpdated(TaskUpdated {
            task_id: task_id.to_owned(),
            status,
        }),
    )
}
