//! The subscriptions' part of the fold (SPEC §15): each subscription's state from its own
//! stream.

use events::{EventData, RecordedEvent};

use super::Ledger;
use crate::subscription_state::{Parked, Pause, Replay, Subscription};

impl Ledger {
    /// An event of a subscription stream. A fact naming a subscription of another stream is
    /// ignored (a raw append may write anything there); anything else counts as a version.
    pub(crate) fn apply_subscription(&mut self, e: &RecordedEvent) {
        let at = e.recorded_at;
        self.pool_stream_versions
            .insert(e.ticket.clone(), e.version);
        let Some(name) = e.data.subscription_name() else {
            return;
        };
        if events::ids::subscription_stream(name) != e.ticket {
            return;
        }
        match &e.data {
            EventData::SubscriptionCreated(c) | EventData::SubscriptionChanged(c) => {
                let s = self
                    .subscriptions
                    .entry(name.to_owned())
                    .or_insert_with(|| Subscription {
                        name: name.to_owned(),
                        stream: e.ticket.clone(),
                        url: String::new(),
                        format: events::NoticeFormat::Json,
                        types: Vec::new(),
                        tickets: Vec::new(),
                        umbrella: None,
                        agents: Vec::new(),
                        alerts: Vec::new(),
                        remind_every_ms: None,
                        chat_id: None,
                        secret_id: String::new(),
                        created_by: e.actor.clone(),
                        created_at: at,
                        updated_at: at,
                        paused: None,
                        parked: None,
                        replay: None,
                        version: 0,
                        position: 0,
                        origin: e.position,
                    });
                s.set(c);
            }
            EventData::SubscriptionDeleted(_) => {
                self.subscriptions.remove(name);
                return;
            }
            _ => {}
        }
        let Some(s) = self.subscriptions.get_mut(name) else {
            return;
        };
        match &e.data {
            EventData::SubscriptionPaused(p) => {
                s.paused = Some(Pause {
                    by: e.actor.clone(),
                    reason: p.reason.clone(),
                    at,
                });
            }
            EventData::SubscriptionResumed(_) => {
                s.paused = None;
                s.parked = None;
            }
            EventData::SubscriptionReplayed(r) => {
                s.parked = None;
                s.replay = Some(Replay {
                    from_position: r.from_position,
                    requested_at: e.position,
                });
            }
            EventData::SubscriptionParked(p) => {
                s.parked = Some(Parked {
                    delivery_id: p.delivery_id.clone(),
                    position: p.position,
                    attempts: p.attempts,
                    error: p.error.clone(),
                    at,
                });
            }
            _ => {}
        }
        s.version = e.version;
        s.position = e.position;
        s.updated_at = at;
    }
}
