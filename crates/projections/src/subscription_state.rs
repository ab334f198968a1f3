//! A subscription's state as its facts leave it (SPEC §15): the part of the fold the ledger
//! keeps. Views, filters and notices are `subscriptions`'.

use events::{
    Actor, NoticeFormat, SubscriptionConfigured, SubscriptionFilter, TicketId, Timestamp,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A subscription as its facts left it. Plain fields only: the snapshot's bincode form cannot
/// skip a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub(crate) name: String,
    pub(crate) stream: TicketId,
    pub(crate) url: String,
    pub(crate) format: NoticeFormat,
    pub(crate) types: Vec<String>,
    pub(crate) tickets: Vec<String>,
    pub(crate) umbrella: Option<String>,
    pub(crate) agents: Vec<String>,
    pub(crate) alerts: Vec<String>,
    pub(crate) remind_every_ms: Option<u64>,
    pub(crate) chat_id: Option<String>,
    pub(crate) secret_id: String,
    pub(crate) created_by: Actor,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) paused: Option<Pause>,
    pub(crate) parked: Option<Parked>,
    pub(crate) replay: Option<Replay>,
    pub(crate) version: u64,
    pub(crate) position: u64,
    /// The position of the fact that created it: deliveries begin after it.
    pub(crate) origin: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub by: Actor,
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// The delivery a subscription stopped at after its retries ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Parked {
    pub delivery_id: String,
    pub position: u64,
    pub attempts: u32,
    pub error: String,
    pub at: Timestamp,
}

/// The last replay asked for: deliver again from `from_position`. `requested_at` (the
/// position of the `subscription.replayed` fact) tells a deliverer whether it has applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    pub from_position: u64,
    pub requested_at: u64,
}

events::names! {
    /// What a subscription is doing, as its facts say.
    #[derive(ToSchema)]
    pub enum SubscriptionState as "snake_case" {
        Active,
        Paused,
        /// A delivery was parked; nothing after it goes out until a resume or a replay.
        Failing,
    }
}

impl Subscription {
    pub(crate) fn state(&self) -> SubscriptionState {
        if self.paused.is_some() {
            SubscriptionState::Paused
        } else if self.parked.is_some() {
            SubscriptionState::Failing
        } else {
            SubscriptionState::Active
        }
    }

    pub(crate) fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter {
            types: self.types.clone(),
            tickets: self.tickets.clone(),
            umbrella: self.umbrella.clone(),
            agents: self.agents.clone(),
            alerts: self.alerts.clone(),
        }
    }

    /// The configuration as a `subscription.changed` would state it again.
    pub(crate) fn config(&self) -> SubscriptionConfigured {
        SubscriptionConfigured {
            name: self.name.clone(),
            url: self.url.clone(),
            format: self.format,
            filter: self.filter(),
            remind_every_ms: self.remind_every_ms,
            chat_id: self.chat_id.clone(),
            secret_id: self.secret_id.clone(),
        }
    }

    pub(crate) fn set(&mut self, c: &SubscriptionConfigured) {
        self.url.clone_from(&c.url);
        self.format = c.format;
        self.types.clone_from(&c.filter.types);
        self.tickets.clone_from(&c.filter.tickets);
        self.umbrella.clone_from(&c.filter.umbrella);
        self.agents.clone_from(&c.filter.agents);
        self.alerts.clone_from(&c.filter.alerts);
        self.remind_every_ms = c.remind_every_ms;
        self.chat_id.clone_from(&c.chat_id);
        self.secret_id.clone_from(&c.secret_id);
    }
}
