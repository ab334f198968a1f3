//! The projection state and its fold: [`Ledger::apply`] folds one recorded event, never fails
//! and never panics, whatever the event (unknown runtime, link to an unknown ticket, …).
//!
//! The state keeps facts, not conclusions: ticket state, next action, failure_reason and
//! runtime class are derived on read (see `rules` and `class`), so they can never drift from
//! the facts they come from.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use events::{
    EventData, GateVerdict, ModelUsage, Priority, ReapCause, RecordedEvent, Relation, Resolution,
    TaskStatus, TicketId, Timestamp, Transport, Verdict,
};
use serde::{Deserialize, Serialize};

use crate::class::{Harvest, RuntimeClass, TerminalFacts};
use crate::limits::{excerpt, EXCERPT_BYTES_MAX, USAGE_MODELS_MAX};
use crate::subscription_state::Subscription;

mod budget_fold;
pub(crate) mod money;
mod subscription_fold;

pub use budget_fold::BudgetStatus;
pub(crate) use budget_fold::{period_start, Budget, Reservation};

/// Where an event sits in the log: its global position and its ticket stream version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventRef {
    pub position: u64,
    pub version: u64,
}

impl EventRef {
    fn of(e: &RecordedEvent) -> EventRef {
        EventRef {
            position: e.position,
            version: e.version,
        }
    }
}

/// The whole projection: every ticket and runtime, plus the indexes decisions and views need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    position: u64,
    pub(crate) tickets: HashMap<TicketId, Ticket>,
    /// Tickets in natural id order (`MC-9` before `MC-10`), for lists and cursors.
    pub(crate) order: BTreeSet<TicketKey>,
    pub(crate) runtimes: HashMap<String, Runtime>,
    /// Runtime ids in dispatch order, for lists and cursors.
    pub(crate) runtime_order: Vec<String>,
    /// child_of links by parent. Kept apart from tickets so a link recorded before its target
    /// was opened (an import out of order) still counts once the target exists.
    pub(crate) children: HashMap<TicketId, BTreeSet<TicketId>>,
    /// For each ticket, every other ticket a link or park has ever tied to it, in either
    /// direction; never shrinks. The streams of a ticket and of these are all a timeline or
    /// an `as_of` view of it needs (see [`Ledger::sources`]).
    pub(crate) related: HashMap<TicketId, BTreeSet<TicketId>>,
    /// Tickets not closed, in id order: all the board's open columns and the alerts walk,
    /// so their cost follows the open work, not every ticket ever closed.
    pub(crate) active: BTreeSet<TicketKey>,
    /// Closed tickets by the position of their close, one map per closed board column.
    pub(crate) closed_done: BTreeMap<u64, TicketId>,
    pub(crate) closed_cancelled: BTreeMap<u64, TicketId>,
    /// Pools by name (SPEC §14), and the name of each pool stream.
    pub(crate) pools: BTreeMap<String, Pool>,
    pub(crate) pool_streams: HashMap<TicketId, String>,
    /// Every pool stream's version, pool or not (a raw append may write anything there): the
    /// version a decision on that stream must expect.
    pub(crate) pool_stream_versions: HashMap<TicketId, u64>,
    /// Subscriptions by name (SPEC §15); their streams' versions are kept with the pools'.
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
    /// Budgets by stream (SPEC §16); their streams' versions are kept with the pools'.
    pub(crate) budgets: BTreeMap<TicketId, Budget>,
}

/// A pool: its capacity and the live runtimes holding its slots. `holders` is an index the
/// fold keeps from runtime facts (a `pool.admitted` adds a live runtime, the runtime's end
/// removes it); nothing is ever counted apart from the runtimes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub(crate) name: String,
    pub(crate) stream: TicketId,
    pub(crate) capacity: u32,
    /// Live runtimes in the pool, by runtime id.
    pub(crate) holders: BTreeSet<String>,
    /// Since when every slot has been taken (none while a slot is free).
    pub(crate) full_since: Option<Timestamp>,
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

impl Ledger {
    /// The version of a pool stream (0: nothing written there yet).
    pub(crate) fn pool_stream_version(&self, stream: &TicketId) -> u64 {
        self.pool_stream_versions.get(stream).copied().unwrap_or(0)
    }
}

impl Pool {
    /// Full: every slot taken, and at least one (a pool sized 0 admits nobody, but is not
    /// saturated by anybody).
    pub(crate) fn is_full(&self) -> bool {
        !self.holders.is_empty()
            && self.holders.len() >= usize::try_from(self.capacity).unwrap_or(usize::MAX)
    }

    fn refresh_full(&mut self, at: Timestamp) {
        if self.is_full() {
            self.full_since.get_or_insert(at);
        } else {
            self.full_since = None;
        }
    }
}

/// Sort key of a ticket id: prefix, then the number as a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct TicketKey {
    pub(crate) prefix: String,
    pub(crate) number: u64,
    pub(crate) id: TicketId,
}

impl TicketKey {
    pub(crate) fn of(id: &TicketId) -> TicketKey {
        let (prefix, number) = id.as_str().rsplit_once('-').unwrap_or((id.as_str(), ""));
        TicketKey {
            prefix: prefix.to_owned(),
            number: number.parse().unwrap_or(0),
            id: id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ticket {
    pub(crate) id: TicketId,
    pub(crate) title: String,
    pub(crate) description: Option<String>,
    pub(crate) priority: Priority,
    pub(crate) owner: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) umbrella: bool,
    pub(crate) labels: Vec<String>,
    pub(crate) parent: Option<TicketId>,
    pub(crate) blocked_by: BTreeSet<TicketId>,
    /// Set by `ticket.parked`; cleared by a dispatch and by a close.
    pub(crate) park: Option<Park>,
    pub(crate) closed: Option<Closed>,
    /// Position of the last `ticket.closed`; survives a reopen (§5.4: "ended after the last
    /// close").
    pub(crate) last_close_position: Option<u64>,
    pub(crate) runtimes: Vec<String>,
    /// The latest dispatched runtime.
    pub(crate) current_runtime: Option<String>,
    pub(crate) dispatch_keys: HashMap<String, String>,
    /// Every nonce ever issued on this ticket; all but a runtime's current one are stale.
    pub(crate) nonces: HashSet<String>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) gates: Vec<Gate>,
    pub(crate) comment_count: u64,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) version: u64,
    pub(crate) position: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Park {
    pub(crate) waiting_on: Vec<String>,
    pub(crate) reason: String,
    pub(crate) at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Closed {
    pub(crate) resolution: Resolution,
    pub(crate) at: Timestamp,
    pub(crate) commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Task {
    pub(crate) task_id: String,
    pub(crate) title: String,
    pub(crate) status: TaskStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gate {
    pub(crate) gate: String,
    pub(crate) verdict: GateVerdict,
    pub(crate) commit: Option<String>,
    pub(crate) actor: String,
    pub(crate) at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Runtime {
    pub(crate) id: String,
    /// Index of this runtime in `Ledger::runtime_order`: makes a list cursor O(1).
    pub(crate) rank: usize,
    pub(crate) ticket: TicketId,
    pub(crate) attempt: u32,
    pub(crate) dispatch_key: String,
    pub(crate) agent: String,
    pub(crate) profile: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) transport: Transport,
    pub(crate) tmux_target: Option<String>,
    pub(crate) process_id: Option<u32>,
    pub(crate) cwd: Option<String>,
    pub(crate) resume_session: Option<String>,
    /// The current turn nonce (dispatch, then each switch).
    pub(crate) nonce: String,
    pub(crate) replaces: Option<String>,
    pub(crate) replaced_by: Option<String>,
    pub(crate) dispatched: EventRef,
    pub(crate) started_at: Timestamp,
    /// Last `runtime.activity` or signal: what "activity" means for starting/idle/stale.
    pub(crate) last_activity_at: Option<Timestamp>,
    /// When the current turn began (dispatch, input, switch): silence before it was someone
    /// else's wait, so staleness counts from here at the earliest.
    pub(crate) turn_started_at: Timestamp,
    /// Last `runtime.activity` event only: the coalescing clock.
    pub(crate) last_activity_event_at: Option<Timestamp>,
    pub(crate) signals: Vec<SignalRecord>,
    /// The verdict of the current turn; a `runtime.input_sent` or a switch starts a new turn.
    pub(crate) pending: Option<Pending>,
    pub(crate) facts: TerminalFacts,
    pub(crate) harvest_ref: Option<EventRef>,
    pub(crate) reaps: Vec<(ReapCause, EventRef)>,
    pub(crate) completed_ref: Option<EventRef>,
    pub(crate) ended: Option<Ended>,
    /// The worker waits for a person (`runtime.input_requested`) since this; an input, a
    /// switch or a signal ends the wait.
    pub(crate) input_requested: Option<InputRequest>,
    /// The first `runtime.session_ended` (recorded once).
    pub(crate) session_end_ref: Option<EventRef>,
    /// The pool whose slot this runtime holds while it is live (its `pool.admitted`).
    pub(crate) pool: Option<String>,
    /// What it may spend, reserved in budgets while it is live (its `runtime.budgeted`).
    pub(crate) budget: Option<Reservation>,
    /// What the run spent by model: the latest `runtime.usage_recorded` (it states the whole
    /// spend, so it replaces).
    pub(crate) usage: Vec<ModelUsage>,
    /// When the latest harvest or usage was recorded: the day its cost counts on.
    pub(crate) cost_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InputRequest {
    pub(crate) kind: String,
    pub(crate) message: Option<String>,
    pub(crate) at: Timestamp,
    pub(crate) event: EventRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SignalRecord {
    pub(crate) verdict: Verdict,
    pub(crate) nonce: String,
    pub(crate) payload: String,
    pub(crate) at: Timestamp,
    pub(crate) event: EventRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) verdict: Verdict,
    pub(crate) at: Timestamp,
    /// Index into `signals`.
    pub(crate) signal: usize,
}

/// When a runtime stopped being live: its first terminal fact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ended {
    pub(crate) at: Timestamp,
    pub(crate) position: u64,
    /// §5.4: was a worker expected at that moment (ticket not umbrella, not waiting, not
    /// closed)? Frozen here because parking or closing later must not rewrite history.
    pub(crate) worker_expected: bool,
}

impl Runtime {
    pub(crate) fn is_live(&self) -> bool {
        self.ended.is_none()
    }

    /// Ended by a failure of the worker (§5.4): a failure class, unless a reap came after the
    /// worker had handed off.
    pub(crate) fn failed(&self) -> bool {
        self.ended_class()
            .is_some_and(|c| c.is_failure() && !(c.is_reaped() && self.handed_off()))
    }

    /// The current turn ended in DONE or REVIEW: the worker handed its work off (§5.4).
    pub(crate) fn handed_off(&self) -> bool {
        self.pending
            .is_some_and(|p| matches!(p.verdict, Verdict::Done | Verdict::Review))
    }

    /// The ended class, or `None` while live (the live class needs `now`).
    pub(crate) fn ended_class(&self) -> Option<RuntimeClass> {
        self.ended?;
        // A runtime ends with its first terminal fact, so facts always give a class here;
        // `closed` is a harmless fallback should a future fact type forget to record itself.
        Some(self.facts.class().unwrap_or(RuntimeClass::Closed))
    }
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Folds events in order into a fresh ledger.
    pub fn fold<'a, I: IntoIterator<Item = &'a RecordedEvent>>(events: I) -> Ledger {
        let mut ledger = Ledger::default();
        for e in events {
            ledger.apply(e);
        }
        ledger
    }

    /// The position of the last event folded (0 for an empty ledger).
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn ticket_count(&self) -> usize {
        self.tickets.len()
    }

    pub fn runtime_count(&self) -> usize {
        self.runtimes.len()
    }

    /// The tickets whose streams decide `id`'s status and view at any position: `id` itself
    /// and every ticket ever linked to it or named in its parks (blockers, children, parent).
    /// An umbrella's view also adds up the spend of every descendant (`cost_total`), at any
    /// depth: for an umbrella, every ticket ever tied to it through any chain of links (a
    /// superset of its descendants at every position). Folding only these streams, in
    /// position order, gives `id` the same view as folding the whole log (a property test
    /// holds this).
    pub fn sources(&self, id: &TicketId) -> Vec<TicketId> {
        let mut out = vec![id.clone()];
        if let Some(set) = self.related.get(id) {
            out.extend(set.iter().cloned()); // `relate` never ties a ticket to itself
        }
        if self.tickets.get(id).is_some_and(|t| t.umbrella) {
            let mut seen: HashSet<&TicketId> = out.iter().collect();
            let mut queue: Vec<&TicketId> = out.iter().skip(1).collect();
            let mut more = Vec::new();
            while let Some(t) = queue.pop() {
                for r in self.related.get(t).into_iter().flatten() {
                    if seen.insert(r) {
                        more.push(r.clone());
                        queue.push(r);
                    }
                }
            }
            out.extend(more);
        }
        out
    }

    /// A ticket's parent, children and blockers as linked now (what a worker on it may read).
    pub fn neighbours(&self, id: &TicketId) -> BTreeSet<TicketId> {
        let mut out = BTreeSet::new();
        if let Some(t) = self.tickets.get(id) {
            out.extend(t.parent.iter().cloned());
            out.extend(t.blocked_by.iter().cloned());
        }
        if let Some(children) = self.children.get(id) {
            out.extend(children.iter().cloned());
        }
        out.remove(id);
        out
    }

    pub fn contains_ticket(&self, id: &TicketId) -> bool {
        self.tickets.contains_key(id)
    }

    /// Every ticket and its stream version, in no order.
    pub fn ticket_versions(&self) -> impl Iterator<Item = (&TicketId, u64)> + '_ {
        self.tickets.iter().map(|(id, t)| (id, t.version))
    }

    /// The stream version (events folded for it) of a ticket or a pool stream, `None` for an
    /// unknown one.
    pub fn ticket_version(&self, id: &TicketId) -> Option<u64> {
        self.tickets
            .get(id)
            .map(|t| t.version)
            .or_else(|| self.pool_stream_versions.get(id).copied())
    }

    /// Runtime ids in dispatch order from the `from`-th on (an index can follow new runtimes
    /// without walking the old ones again).
    pub fn runtime_ids_from(&self, from: usize) -> &[String] {
        self.runtime_order.get(from..).unwrap_or(&[])
    }

    /// The `index`-th runtime dispatched.
    pub fn runtime_id_at(&self, index: usize) -> Option<&str> {
        self.runtime_order.get(index).map(String::as_str)
    }

    /// A runtime's ticket, agent and whether it is live (no terminal fact yet).
    pub fn runtime_owner(&self, runtime_id: &str) -> Option<(&TicketId, &str, bool)> {
        self.runtimes
            .get(runtime_id)
            .map(|r| (&r.ticket, r.agent.as_str(), r.is_live()))
    }

    /// The ticket a runtime belongs to: the stream its events go to.
    pub fn runtime_ticket(&self, runtime_id: &str) -> Option<&TicketId> {
        self.runtimes.get(runtime_id).map(|r| &r.ticket)
    }

    /// Folds one event. Events at or before [`Ledger::position`] are skipped, so replaying an
    /// overlap after loading a snapshot is harmless. Events for a ticket that was never opened,
    /// and runtime events for a runtime this ticket never dispatched, change nothing but the
    /// position: an odd raw append must not be able to break the fold.
    pub fn apply(&mut self, e: &RecordedEvent) {
        if self.position > 0 && e.position <= self.position {
            return;
        }
        self.position = e.position;

        if events::ids::is_pool_stream(&e.ticket) {
            self.apply_pool(e);
            return;
        }
        if events::ids::is_subscription_stream(&e.ticket) {
            self.apply_subscription(e);
            return;
        }
        if events::ids::is_budget_stream(&e.ticket) {
            self.apply_budget(e);
            return;
        }

        if let EventData::TicketOpened(o) = &e.data {
            if let Some(t) = self.tickets.get_mut(&e.ticket) {
                // A second open of the same stream: keep the first, count the event.
                touch(t, e);
                return;
            }
            let key = TicketKey::of(&e.ticket);
            self.order.insert(key.clone());
            self.active.insert(key);
            self.tickets.insert(
                e.ticket.clone(),
                Ticket {
                    id: e.ticket.clone(),
                    title: o.title.clone(),
                    description: o.description.clone(),
                    priority: o.priority,
                    owner: o.owner.clone(),
                    project: o.project.clone(),
                    umbrella: o.umbrella,
                    labels: o.labels.clone(),
                    parent: None,
                    blocked_by: BTreeSet::new(),
                    park: None,
                    closed: None,
                    last_close_position: None,
                    runtimes: Vec::new(),
                    current_runtime: None,
                    dispatch_keys: HashMap::new(),
                    nonces: HashSet::new(),
                    tasks: Vec::new(),
                    gates: Vec::new(),
                    comment_count: 0,
                    created_at: e.recorded_at,
                    updated_at: e.recorded_at,
                    version: e.version,
                    position: e.position,
                },
            );
            return;
        }

        let Some(t) = self.tickets.get_mut(&e.ticket) else {
            return;
        };
        touch(t, e);

        match &e.data {
            EventData::TicketOpened(_) => {}
            EventData::TicketEdited(x) => {
                if let Some(v) = &x.title {
                    t.title.clone_from(v);
                }
                if let Some(v) = &x.description {
                    t.description = Some(v.clone());
                }
                if let Some(v) = x.priority {
                    t.priority = v;
                }
                if let Some(v) = &x.owner {
                    t.owner = Some(v.clone());
                }
            }
            EventData::TicketCommented(_) => t.comment_count += 1,
            EventData::TicketLinked(x) => {
                let Ok(target) = TicketId::parse(&x.target) else {
                    return;
                };
                relate(&mut self.related, &t.id, &target);
                match x.relation {
                    Relation::ChildOf => {
                        if let Some(old) = t.parent.take() {
                            if let Some(set) = self.children.get_mut(&old) {
                                set.remove(&t.id);
                            }
                        }
                        self.children
                            .entry(target.clone())
                            .or_default()
                            .insert(t.id.clone());
                        t.parent = Some(target);
                    }
                    Relation::BlockedBy => {
                        t.blocked_by.insert(target);
                    }
                }
            }
            EventData::TicketUnlinked(x) => {
                let Ok(target) = TicketId::parse(&x.target) else {
                    return;
                };
                match x.relation {
                    Relation::ChildOf => {
                        if t.parent.as_ref() == Some(&target) {
                            t.parent = None;
                            if let Some(set) = self.children.get_mut(&target) {
                                set.remove(&t.id);
                            }
                        }
                    }
                    Relation::BlockedBy => {
                        t.blocked_by.remove(&target);
                    }
                }
            }
            EventData::TicketParked(x) => {
                for name in &x.waiting_on {
                    if let Ok(other) = TicketId::parse(name) {
                        relate(&mut self.related, &t.id, &other);
                    }
                }
                t.park = Some(Park {
                    waiting_on: x.waiting_on.clone(),
                    reason: x.reason.clone(),
                    at: e.recorded_at,
                });
            }
            EventData::GateRecorded(x) => t.gates.push(Gate {
                gate: x.gate.clone(),
                verdict: x.verdict,
                commit: x.commit.clone(),
                actor: e.actor.name.clone(),
                at: e.recorded_at,
            }),
            EventData::TicketClosed(x) => {
                match (&t.closed, t.last_close_position) {
                    // Closed again (only a raw append can): the earlier close leaves its column.
                    (Some(_), Some(p)) => {
                        forget_close(&mut self.closed_done, &mut self.closed_cancelled, p);
                    }
                    _ => {
                        self.active.remove(&TicketKey::of(&t.id));
                    }
                }
                let column = match x.resolution {
                    Resolution::Done => &mut self.closed_done,
                    _ => &mut self.closed_cancelled,
                };
                column.insert(e.position, t.id.clone());
                t.closed = Some(Closed {
                    resolution: x.resolution,
                    at: e.recorded_at,
                    commit: x.commit.clone(),
                });
                t.last_close_position = Some(e.position);
                // The wait is over once the ticket is closed; a reopen starts afresh.
                t.park = None;
            }
            EventData::TicketReopened(_) => {
                if t.closed.take().is_some() {
                    if let Some(p) = t.last_close_position {
                        forget_close(&mut self.closed_done, &mut self.closed_cancelled, p);
                    }
                    self.active.insert(TicketKey::of(&t.id));
                }
            }
            EventData::TaskAdded(x) => {
                if !t.tasks.iter().any(|k| k.task_id == x.task_id) {
                    t.tasks.push(Task {
                        task_id: x.task_id.clone(),
                        title: x.title.clone(),
                        status: TaskStatus::Open,
                    });
                }
            }
            EventData::TaskUpdated(x) => {
                if let Some(k) = t.tasks.iter_mut().find(|k| k.task_id == x.task_id) {
                    k.status = x.status;
                }
            }
            EventData::RuntimeDispatched(x) => {
                if self.runtimes.contains_key(&x.runtime_id) {
                    return;
                }
                if let Some(old) = x.replaces.as_deref() {
                    if let Some(r) = self.runtimes.get_mut(old) {
                        if r.ticket == t.id && r.replaced_by.is_none() {
                            r.replaced_by = Some(x.runtime_id.clone());
                        }
                    }
                }
                t.runtimes.push(x.runtime_id.clone());
                t.current_runtime = Some(x.runtime_id.clone());
                t.dispatch_keys
                    .entry(x.dispatch_key.clone())
                    .or_insert_with(|| x.runtime_id.clone());
                t.nonces.insert(x.nonce.clone());
                t.park = None;
                let rank = self.runtime_order.len();
                self.runtime_order.push(x.runtime_id.clone());
                self.runtimes.insert(
                    x.runtime_id.clone(),
                    Runtime {
                        id: x.runtime_id.clone(),
                        rank,
                        ticket: t.id.clone(),
                        attempt: x.attempt,
                        dispatch_key: x.dispatch_key.clone(),
                        agent: x.agent.clone(),
                        profile: x.profile.clone(),
                        provider: x.provider.clone(),
                        model: x.model.clone(),
                        transport: x.transport,
                        tmux_target: x.tmux_target.clone(),
                        process_id: x.process_id,
                        cwd: x.cwd.clone(),
                        resume_session: x.resume_session.clone(),
                        nonce: x.nonce.clone(),
                        replaces: x.replaces.clone(),
                        replaced_by: None,
                        dispatched: EventRef::of(e),
                        started_at: e.recorded_at,
                        last_activity_at: None,
                        turn_started_at: e.recorded_at,
                        last_activity_event_at: None,
                        signals: Vec::new(),
                        pending: None,
                        facts: TerminalFacts::default(),
                        harvest_ref: None,
                        reaps: Vec::new(),
                        completed_ref: None,
                        ended: None,
                        input_requested: None,
                        session_end_ref: None,
                        usage: Vec::new(),
                        cost_at: None,
                        pool: None,
                        budget: None,
                    },
                );
            }
            data => {
                let Some(runtime_id) = data.runtime_id() else {
                    return;
                };
                let Some(r) = self.runtimes.get_mut(runtime_id) else {
                    return;
                };
                if r.ticket != t.id {
                    // A runtime event filed under another ticket's stream: not this
                    // runtime's fact as far as the projection is concerned.
                    return;
                }
                if let EventData::RuntimePooled(x) = data {
                    // The slot is taken from the pool's index only if the pool is known here
                    // (a partial fold for `as_of` folds the ticket's streams, not the pool's).
                    if r.pool.is_none() {
                        r.pool = Some(excerpt(&x.pool, EXCERPT_BYTES_MAX).to_owned());
                        if let Some(pool) = self.pools.get_mut(&x.pool) {
                            if r.ended.is_none() {
                                pool.holders.insert(r.id.clone());
                            }
                            pool.refresh_full(e.recorded_at);
                        }
                    }
                    return;
                }
                if let EventData::RuntimeBudgeted(x) = data {
                    let id = r.id.clone();
                    self.reserve(&id, x);
                    self.refresh_runtime_budgets(&id, e.recorded_at);
                    return;
                }
                let worker_expected = t.closed.is_none() && t.park.is_none() && !t.umbrella;
                let was_live = r.is_live();
                apply_runtime(r, &mut t.nonces, data, e, worker_expected);
                if was_live && !r.is_live() {
                    // Every way a runtime ends frees its slot: here, from the fact itself.
                    if let Some(pool) = r.pool.as_ref().and_then(|p| self.pools.get_mut(p)) {
                        pool.holders.remove(&r.id);
                        pool.refresh_full(e.recorded_at);
                    }
                }
                Ledger::settle(&mut self.budgets, r, e.recorded_at);
                if r.budget.is_some() {
                    let id = r.id.clone();
                    self.refresh_runtime_budgets(&id, e.recorded_at);
                }
            }
        }
    }

    /// An event of a pool stream. Anything but `pool.configured` counts as a version only
    /// (`pool.admitted` is the pool's record of a dispatch; the slot is the ticket stream's
    /// `runtime.pooled`); a `pool.configured` naming a pool of another stream is ignored.
    fn apply_pool(&mut self, e: &RecordedEvent) {
        let at = e.recorded_at;
        self.pool_stream_versions
            .insert(e.ticket.clone(), e.version);
        if let EventData::PoolConfigured(x) = &e.data {
            let own_stream = events::ids::pool_stream(&x.name) == e.ticket;
            let named = self.pool_streams.get(&e.ticket);
            if own_stream && named.is_none_or(|n| *n == x.name) {
                if named.is_none() {
                    self.pool_streams.insert(e.ticket.clone(), x.name.clone());
                }
                let pool = self.pools.entry(x.name.clone()).or_insert_with(|| Pool {
                    name: x.name.clone(),
                    stream: e.ticket.clone(),
                    capacity: x.capacity,
                    holders: BTreeSet::new(),
                    full_since: None,
                    version: 0,
                    position: 0,
                    created_at: at,
                    updated_at: at,
                });
                pool.capacity = x.capacity;
                pool.refresh_full(at);
            }
        }
        if let Some(pool) = self
            .pool_streams
            .get(&e.ticket)
            .and_then(|name| self.pools.get_mut(name))
        {
            pool.version = e.version;
            pool.position = e.position;
            pool.updated_at = at;
        }
    }
}

fn touch(t: &mut Ticket, e: &RecordedEvent) {
    t.version = e.version;
    t.position = e.position;
    t.updated_at = e.recorded_at;
}

/// Folds a runtime event other than the dispatch.
fn apply_runtime(
    r: &mut Runtime,
    nonces: &mut HashSet<String>,
    data: &EventData,
    e: &RecordedEvent,
    worker_expected: bool,
) {
    let at = e.recorded_at;
    let terminal = match data {
        EventData::RuntimeActivity(_) => {
            r.last_activity_at = Some(at);
            r.last_activity_event_at = Some(at);
            false
        }
        EventData::RuntimeSignaled(x) => {
            r.last_activity_at = Some(at);
            r.signals.push(SignalRecord {
                verdict: x.verdict,
                nonce: x.nonce.clone(),
                payload: excerpt(&x.payload, EXCERPT_BYTES_MAX).to_owned(),
                at,
                event: EventRef::of(e),
            });
            r.pending = Some(Pending {
                verdict: x.verdict,
                at,
                signal: r.signals.len() - 1,
            });
            r.input_requested = None;
            false
        }
        EventData::RuntimeSignalRejected(_) => false,
        EventData::RuntimeInputSent(_) => {
            r.pending = None;
            r.input_requested = None;
            r.turn_started_at = at;
            false
        }
        EventData::RuntimeSwitched(x) => {
            if let Some(v) = &x.agent {
                r.agent.clone_from(v);
            }
            if let Some(v) = &x.profile {
                r.profile = Some(v.clone());
            }
            if let Some(v) = &x.model {
                r.model = Some(v.clone());
            }
            r.nonce.clone_from(&x.nonce);
            r.turn_started_at = at;
            nonces.insert(x.nonce.clone());
            r.pending = None;
            r.input_requested = None;
            false
        }
        EventData::RuntimeHarvested(x) => {
            r.facts.harvest = Some(Harvest {
                outcome: x.outcome,
                exit_reason: x.exit_reason,
                turns: x.turns,
                cost_usd: x.cost_usd,
                session_id: x.session_id.clone(),
            });
            r.harvest_ref = Some(EventRef::of(e));
            r.cost_at = Some(at);
            true
        }
        EventData::RuntimeUsageRecorded(x) => {
            r.usage = x.models.iter().take(USAGE_MODELS_MAX).cloned().collect();
            r.cost_at = Some(at);
            false
        }
        EventData::RuntimeInputRequested(x) => {
            r.last_activity_at = Some(at);
            r.input_requested = Some(InputRequest {
                kind: excerpt(&x.kind, EXCERPT_BYTES_MAX).to_owned(),
                message: x
                    .message
                    .as_deref()
                    .map(|m| excerpt(m, EXCERPT_BYTES_MAX).to_owned()),
                at,
                event: EventRef::of(e),
            });
            false
        }
        EventData::RuntimeSessionEnded(x) => {
            r.session_end_ref.get_or_insert(EventRef::of(e));
            r.facts.session_ended = Some(excerpt(&x.reason, EXCERPT_BYTES_MAX).to_owned());
            r.facts.session_end_is_latest = true;
            true
        }
        EventData::RuntimeReaped(x) => {
            r.facts.reap = Some(x.cause);
            r.facts.session_end_is_latest = false;
            if !r.reaps.iter().any(|(c, _)| *c == x.cause) {
                r.reaps.push((x.cause, EventRef::of(e)));
            }
            true
        }
        EventData::RuntimeKilled(_) => {
            r.facts.killed = true;
            true
        }
        EventData::RuntimeCancelled(_) => {
            r.facts.cancelled = true;
            true
        }
        EventData::RuntimeCompletedByController(_) => {
            r.facts.completed_by_controller = true;
            if r.completed_ref.is_none() {
                r.completed_ref = Some(EventRef::of(e));
            }
            true
        }
        EventData::RuntimeLaunchAborted(x) => {
            r.facts.launch_aborted = Some(x.reason.clone());
            true
        }
        _ => false,
    };
    if terminal && r.ended.is_none() {
        r.ended = Some(Ended {
            at,
            position: e.position,
            worker_expected,
        });
    }
}

fn relate(related: &mut HashMap<TicketId, BTreeSet<TicketId>>, a: &TicketId, b: &TicketId) {
    if a == b {
        return;
    }
    related.entry(a.clone()).or_default().insert(b.clone());
    related.entry(b.clone()).or_default().insert(a.clone());
}

/// Takes the close at position `p` out of whichever closed column holds it.
fn forget_close(
    done: &mut BTreeMap<u64, TicketId>,
    cancelled: &mut BTreeMap<u64, TicketId>,
    p: u64,
) {
    if done.remove(&p).is_none() {
        cancelled.remove(&p);
    }
}
