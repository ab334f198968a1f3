//! Cost and tokens (SPEC §13): what runs spent, summed per runtime, per ticket, per umbrella
//! over its children, and grouped for `GET /v1/costs`.
//!
//! A runtime's spend is a list of lines, one per model: its latest `runtime.usage_recorded`,
//! and the harvest's `cost_usd` where no line carries a cost (a structured harvest, or a
//! record older than usage). Dollars are summed as whole nano-dollars, so a sum is exact and
//! the same in any order; they are shown as a number of dollars.

use std::collections::{BTreeMap, HashSet};

use events::TicketId;
use serde::Serialize;

use crate::ledger::money::{lines, Line, NANOS_PER_USD};
pub(crate) use crate::ledger::money::{nanos, spend_by_model, spend_nanos, usd};
use crate::ledger::{Ledger, Runtime, Ticket};

/// Tokens and dollars summed over some runtimes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CostView {
    /// Dollars, as the agents reported them; null when none of the runtimes reported a cost
    /// (Codex reports tokens only).
    pub usd: Option<f64>,
    /// Every input token, cached ones included.
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Runtimes that reported a cost or tokens.
    pub runtimes: u64,
}

events::names! {
    /// What `GET /v1/costs` groups by.
    #[derive(Default, utoipa::ToSchema)]
    pub enum CostGroupBy as "snake_case" {
        /// The runtime's agent (`claude`, `codex`, …).
        #[default]
        Agent,
        /// The model the agent reported, else the runtime's dispatched model, else `unknown`.
        Model,
        /// The ticket's owner (null: no owner).
        Owner,
        /// The UTC day the runtime's harvest was recorded, `YYYY-MM-DD`.
        Day,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CostGroup {
    /// The agent, model, owner or day; null only for tickets without an owner.
    pub key: Option<String>,
    #[serde(flatten)]
    pub cost: CostView,
}

/// `GET /v1/costs`: groups in key order (null first), and the total over every runtime. A
/// runtime that used two models counts in both model groups, once in the total.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CostReport {
    pub group_by: CostGroupBy,
    pub groups: Vec<CostGroup>,
    pub total: CostView,
}

/// A sum in exact units; turned into a [`CostView`] at the end.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    nanos: Option<u64>,
    input: u64,
    cached: u64,
    output: u64,
    runtimes: u64,
}

impl Sum {
    fn add_line(&mut self, l: &Line<'_>) {
        if let Some(n) = l.nanos {
            self.nanos = Some(self.nanos.unwrap_or(0).saturating_add(n));
        }
        self.input = self.input.saturating_add(l.input);
        self.cached = self.cached.saturating_add(l.cached);
        self.output = self.output.saturating_add(l.output);
    }

    fn merge(&mut self, o: Sum) {
        if let Some(n) = o.nanos {
            self.nanos = Some(self.nanos.unwrap_or(0).saturating_add(n));
        }
        self.input = self.input.saturating_add(o.input);
        self.cached = self.cached.saturating_add(o.cached);
        self.output = self.output.saturating_add(o.output);
        self.runtimes = self.runtimes.saturating_add(o.runtimes);
    }

    /// Adds a runtime's lines; counts it when it reported anything.
    fn add_runtime(&mut self, r: &Runtime) {
        let lines = lines(r);
        if lines.is_empty() {
            return;
        }
        for l in &lines {
            self.add_line(l);
        }
        self.runtimes += 1;
    }

    fn view(self) -> CostView {
        CostView {
            usd: self.nanos.map(|n| n as f64 / NANOS_PER_USD),
            input_tokens: self.input,
            cached_input_tokens: self.cached,
            output_tokens: self.output,
            runtimes: self.runtimes,
        }
    }
}

/// The UTC day of an RFC 3339 time.
fn day(r: &Runtime) -> String {
    let at = r.cost_at.unwrap_or(r.started_at).to_rfc3339();
    at.get(..10).unwrap_or(&at).to_owned()
}

impl Ledger {
    pub(crate) fn runtime_cost(r: &Runtime) -> CostView {
        let mut sum = Sum::default();
        sum.add_runtime(r);
        sum.view()
    }

    fn ticket_sum(&self, t: &Ticket) -> Sum {
        let mut sum = Sum::default();
        for id in &t.runtimes {
            if let Some(r) = self.runtimes.get(id) {
                sum.add_runtime(r);
            }
        }
        sum
    }

    /// Summed over every runtime of the ticket.
    pub(crate) fn ticket_cost(&self, t: &Ticket) -> CostView {
        self.ticket_sum(t).view()
    }

    /// An umbrella's own cost and its descendants', each ticket counted once (a `child_of`
    /// cycle written by a raw append cannot loop).
    pub(crate) fn cost_total(&self, t: &Ticket) -> Option<CostView> {
        if !t.umbrella {
            return None;
        }
        let mut seen: HashSet<&TicketId> = HashSet::from([&t.id]);
        let mut queue = vec![t];
        let mut total = Sum::default();
        while let Some(t) = queue.pop() {
            total.merge(self.ticket_sum(t));
            for child in self.children.get(&t.id).into_iter().flatten() {
                if let Some(c) = self.tickets.get(child) {
                    if seen.insert(&c.id) {
                        queue.push(c);
                    }
                }
            }
        }
        Some(total.view())
    }

    /// Every runtime's spend, grouped (SPEC §13 `GET /v1/costs`). One pass over the runtimes.
    pub fn costs(&self, group_by: CostGroupBy) -> CostReport {
        let mut groups: BTreeMap<Option<String>, Sum> = BTreeMap::new();
        let mut total = Sum::default();
        for id in &self.runtime_order {
            let Some(r) = self.runtimes.get(id) else {
                continue;
            };
            let lines = lines(r);
            if lines.is_empty() {
                continue;
            }
            total.add_runtime(r);
            match group_by {
                CostGroupBy::Model => {
                    let mut models: Vec<&str> = Vec::new();
                    for l in &lines {
                        let g = groups.entry(Some(l.model.to_owned())).or_default();
                        g.add_line(l);
                        if !models.contains(&l.model) {
                            models.push(l.model);
                            g.runtimes += 1;
                        }
                    }
                }
                by => {
                    let key = match by {
                        CostGroupBy::Agent => Some(r.agent.clone()),
                        CostGroupBy::Owner => {
                            self.tickets.get(&r.ticket).and_then(|t| t.owner.clone())
                        }
                        _ => Some(day(r)),
                    };
                    groups.entry(key).or_default().add_runtime(r);
                }
            }
        }
        CostReport {
            group_by,
            groups: groups
                .into_iter()
                .map(|(key, sum)| CostGroup {
                    key,
                    cost: sum.view(),
                })
                .collect(),
            total: total.view(),
        }
    }
}
