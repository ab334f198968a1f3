//! Subscriptions (SPEC §15): the fold of their facts, the view of one, which events and
//! alerts one wants, and the pure rule of alert notices (raised, cleared, reminded) with time
//! passed in as data. The delivering (HTTP, retries, the position delivered) is the server's.

use std::collections::{BTreeMap, BTreeSet};

use events::{Actor, NoticeFormat, RecordedEvent, SubscriptionFilter, TicketId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alerts::{Alert, AlertKind};
use crate::filter::{EventFilter, FilterError};
use crate::subscription_state::{Parked, Pause, Replay, Subscription, SubscriptionState};
use crate::Ledger;

/// One subscription as the API shows it (the secret never; its fingerprint only).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub name: String,
    /// The receiver's address with its path hidden (a Slack or Telegram URL carries a
    /// credential in its path).
    pub url: String,
    pub format: NoticeFormat,
    pub filter: SubscriptionFilter,
    /// Reminders of an alert that stays, every this many milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remind_every_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Which secret signs the deliveries (a fingerprint, not the secret).
    pub secret_id: String,
    pub state: SubscriptionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    pub created_by: Actor,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
    pub stream: TicketId,
    /// The log position of the fact that created it; its deliveries begin after it.
    pub origin: u64,
}

fn view(s: &Subscription) -> SubscriptionView {
    s.view()
}

impl Subscription {
    pub(crate) fn view(&self) -> SubscriptionView {
        let c = self.config();
        SubscriptionView {
            name: c.name,
            url: c.url,
            format: c.format,
            filter: c.filter,
            remind_every_ms: c.remind_every_ms,
            chat_id: c.chat_id,
            secret_id: c.secret_id,
            state: self.state(),
            paused: self.paused.clone(),
            parked: self.parked.clone(),
            replay: self.replay,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
            stream: self.stream.clone(),
            origin: self.origin,
        }
    }
}

impl Ledger {
    /// Every subscription, by name.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        self.subscriptions
            .values()
            .map(Subscription::view)
            .collect()
    }

    /// A subscription's stream version: whether it changed since a view was taken.
    pub fn subscription_version(&self, name: &str) -> Option<u64> {
        self.subscriptions.get(name).map(|s| s.version)
    }

    pub fn subscription(&self, name: &str) -> Option<SubscriptionView> {
        self.subscriptions.get(name).map(view)
    }
}

/// What a subscription wants, ready to match: its events and its alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    pub events: EventFilter,
    pub alerts: BTreeSet<AlertKind>,
}

/// Why a filter is refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFilter {
    pub field: &'static str,
    pub message: String,
}

/// Items a filter list may hold.
pub const FILTER_ITEMS_MAX: usize = 64;

impl Wants {
    pub fn of(filter: &SubscriptionFilter) -> Result<Wants, BadFilter> {
        let bad = |e: FilterError| BadFilter {
            field: match e.field() {
                "types" => "filter.types",
                "tickets" => "filter.tickets",
                "agents" => "filter.agents",
                other => other,
            },
            message: e.to_string(),
        };
        for (field, list) in [
            ("filter.types", &filter.types),
            ("filter.tickets", &filter.tickets),
            ("filter.agents", &filter.agents),
            ("filter.alerts", &filter.alerts),
        ] {
            if list.len() > FILTER_ITEMS_MAX {
                return Err(BadFilter {
                    field,
                    message: format!("at most {FILTER_ITEMS_MAX} items"),
                });
            }
            if list.iter().any(|s| s.is_empty() || s.contains(',')) {
                return Err(BadFilter {
                    field,
                    message: "items must be non-empty and hold no comma".into(),
                });
            }
        }
        let mut events = EventFilter::default();
        if !filter.types.is_empty() {
            events.types = EventFilter::parse_types(&filter.types.join(",")).map_err(bad)?;
        }
        if !filter.tickets.is_empty() {
            events.tickets =
                EventFilter::parse_tickets("tickets", &filter.tickets.join(",")).map_err(bad)?;
        }
        if let Some(u) = &filter.umbrella {
            events.umbrella = Some(TicketId::parse(u).map_err(|_| BadFilter {
                field: "filter.umbrella",
                message: format!("{:?} is not a ticket id", crate::limits::excerpt(u, 64)),
            })?);
        }
        if filter.agents.iter().any(|a| a.len() > 64) {
            return Err(BadFilter {
                field: "filter.agents",
                message: "agent names are at most 64 bytes".into(),
            });
        }
        events.agents = filter.agents.iter().cloned().collect();
        let mut alerts = BTreeSet::new();
        for name in &filter.alerts {
            let kind = AlertKind::parse(name).ok_or_else(|| BadFilter {
                field: "filter.alerts",
                message: format!(
                    "{:?} is not an alert kind (one of {})",
                    crate::limits::excerpt(name, 64),
                    AlertKind::ALL.map(AlertKind::as_str).join(", ")
                ),
            })?;
            alerts.insert(kind);
        }
        Ok(Wants { events, alerts })
    }

    /// Whether an event is one to deliver. A subscription's own facts are not delivered to it
    /// (a parked delivery's record must not queue behind the delivery it records).
    pub fn wants_event(&self, ledger: &Ledger, own_stream: &TicketId, e: &RecordedEvent) -> bool {
        e.ticket != *own_stream && self.events.matches(ledger, e)
    }

    /// Whether an alert is one to notify: a kind asked for, and a ticket's alert only when the
    /// ticket passes the ticket and umbrella parts of the filter.
    pub fn wants_alert(&self, ledger: &Ledger, alert: &Alert) -> bool {
        if !self.alerts.contains(&alert.kind) {
            return false;
        }
        match &alert.ticket {
            Some(t) => {
                (self.events.tickets.is_empty() || self.events.tickets.contains(t))
                    && self
                        .events
                        .umbrella
                        .as_ref()
                        .is_none_or(|u| ledger.is_within(t, u))
            }
            None => self.events.tickets.is_empty() && self.events.umbrella.is_none(),
        }
    }
}

events::names! {
    /// What an alert notice says happened.
    #[derive(ToSchema)]
    pub enum NoticeKind as "snake_case" {
        Raised = "alert.raised",
        Cleared = "alert.cleared",
        Reminder = "alert.reminder",
    }
}

/// One alert notice, with its stable delivery id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// `alert.<kind>.<subject>.<since ms>` and, for the n-th reminder, `.r<n>`: the same on
    /// every replica and after every restart.
    pub id: String,
    pub alert: Alert,
    pub at: Timestamp,
}

/// An alert a subscription has been told of and not yet told is cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub alert: Alert,
    /// Reminders sent for this episode.
    pub reminders: u32,
}

/// The subject of an alert: its ticket, pool, subscription or budget.
pub fn alert_subject(a: &Alert) -> &str {
    a.ticket
        .as_ref()
        .map(TicketId::as_str)
        .or(a.pool.as_deref())
        .or(a.subscription.as_deref())
        .or(a.budget.as_deref())
        .unwrap_or("")
}

/// The episode of an alert: its kind, subject and start. A new start is a new episode.
pub fn alert_key(a: &Alert) -> String {
    format!("{}.{}", a.kind.as_str(), alert_subject(a))
}

fn notice_id(a: &Alert, suffix: &str) -> String {
    let base = format!("alert.{}.{}", alert_key(a), a.since.millis());
    if suffix.is_empty() {
        base
    } else {
        format!("{base}.{suffix}")
    }
}

/// The notices due at `now`, given the alerts a subscription wants now and those it was told
/// of (`open`, updated in place): `alert.raised` for each new episode, `alert.cleared` for each
/// gone (a new `since` clears the old episode and raises the new), and `alert.reminder` every
/// `remind_every_ms` after the start while it stays. Pure; notices come out cleared first,
/// then raised, then reminders, each in key order.
pub fn alert_notices(
    open: &mut BTreeMap<String, OpenAlert>,
    wanted: &[Alert],
    now: Timestamp,
    remind_every_ms: Option<u64>,
) -> Vec<Notice> {
    let current: BTreeMap<String, &Alert> = wanted.iter().map(|a| (alert_key(a), a)).collect();
    let mut out = Vec::new();
    let gone: Vec<String> = open
        .iter()
        .filter(|(k, o)| current.get(*k).is_none_or(|a| a.since != o.alert.since))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        if let Some(o) = open.remove(&key) {
            out.push(Notice {
                kind: NoticeKind::Cleared,
                id: notice_id(&o.alert, "cleared"),
                alert: o.alert,
                at: now,
            });
        }
    }
    for (key, alert) in &current {
        if !open.contains_key(key) {
            // Reminders count from the start; those already past when it is first seen are
            // not sent (the raise says it all).
            let past = match remind_every_ms.filter(|e| *e > 0) {
                Some(every) => now.millis().saturating_sub(alert.since.millis()) / every,
                None => 0,
            };
            open.insert(
                key.clone(),
                OpenAlert {
                    alert: (*alert).clone(),
                    reminders: u32::try_from(past).unwrap_or(u32::MAX),
                },
            );
            out.push(Notice {
                kind: NoticeKind::Raised,
                id: notice_id(alert, ""),
                alert: (*alert).clone(),
                at: now,
            });
        }
    }
    if let Some(every) = remind_every_ms.filter(|e| *e > 0) {
        for o in open.values_mut() {
            // Reminders fall at since + n·every; one notice however many were missed.
            let due = now.millis().saturating_sub(o.alert.since.millis()) / every;
            let due = u32::try_from(due).unwrap_or(u32::MAX);
            if due > o.reminders {
                o.reminders = due;
                if let Some(a) = current.get(&alert_key(&o.alert)) {
                    o.alert = (*a).clone();
                }
                out.push(Notice {
                    kind: NoticeKind::Reminder,
                    id: notice_id(&o.alert, &format!("r{due}")),
                    alert: o.alert.clone(),
                    at: now,
                });
            }
        }
    }
    out
}
