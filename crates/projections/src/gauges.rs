//! What needs a person, as numbers a Prometheus can page on (SPEC §15): alerts by kind,
//! tickets by state, live runtimes by agent and class, and spend by agent and model. A pure
//! function of the projections at `now`; the server turns it into gauges at every scrape.

use std::collections::BTreeMap;

use events::Timestamp;

use crate::alerts::AlertKind;
use crate::rules::TicketState;
use crate::views::class_at;
use crate::{Config, Ledger};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Every alert kind, zeros included (a series that vanishes cannot resolve an alert).
    pub alerts: BTreeMap<&'static str, u64>,
    /// Every ticket state, zeros included.
    pub tickets: BTreeMap<&'static str, u64>,
    /// Live runtimes by (agent, class).
    pub runtimes_live: BTreeMap<(String, &'static str), u64>,
    /// Spend by (agent, model), in nanodollars (exact sums; shown as dollars).
    pub cost_nanos: BTreeMap<(String, String), u64>,
    /// Each budget's (limit, spent this period, reserved), in nanodollars (SPEC §16).
    pub budgets: BTreeMap<String, (u64, u64, u64)>,
}

impl Ledger {
    /// The gauges at `now`.
    pub fn gauges(&self, now: Timestamp, cfg: &Config) -> Gauges {
        let mut g = Gauges::default();
        for kind in AlertKind::ALL {
            g.alerts.insert(kind.as_str(), 0);
        }
        for alert in self.alerts(now, cfg) {
            *g.alerts.entry(alert.kind.as_str()).or_default() += 1;
        }
        for state in TicketState::ALL {
            g.tickets.insert(state.as_str(), 0);
        }
        for key in &self.active {
            if let Some(t) = self.tickets.get(&key.id) {
                *g.tickets.entry(self.state(t).as_str()).or_default() += 1;
            }
        }
        let closed = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        *g.tickets.entry(TicketState::Done.as_str()).or_default() += closed(self.closed_done.len());
        *g.tickets
            .entry(TicketState::Cancelled.as_str())
            .or_default() += closed(self.closed_cancelled.len());
        for r in self.runtimes.values() {
            if r.is_live() {
                let class = class_at(r, now, cfg).as_str();
                *g.runtimes_live.entry((r.agent.clone(), class)).or_default() += 1;
            }
            for (model, nanos) in crate::cost::spend_by_model(r) {
                *g.cost_nanos
                    .entry((r.agent.clone(), model.to_owned()))
                    .or_default() += nanos;
            }
        }
        for b in self.budgets.values() {
            let s = b.standing(self, now, &[]);
            g.budgets
                .insert(b.name.clone(), (b.limit, s.spent, s.reserved));
        }
        g
    }
}
