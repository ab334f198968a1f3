//! Budgets (SPEC §16): spend caps reserved at dispatch. A budget's reservations are the live
//! runtimes admitted into it (`budget.reserved`, appended with the dispatch over both streams,
//! and `runtime.budgeted` on the ticket's); its spend is what those runtimes spent once they
//! ended. Both are kept by the fold from runtime facts, never counted apart from them, so no
//! reservation can leak: a runtime's end, by any path, turns its reservation into its spend.
//!
//! This module reads what the fold keeps (`ledger::budget_fold`): views, scopes covered,
//! and the two alerts.

use events::{BudgetPeriod, BudgetScopeKind, TicketId, Timestamp};
use serde::Serialize;

use crate::cost::{spend_nanos, usd};
pub use crate::ledger::BudgetStatus;
use crate::ledger::{period_start, Budget, Ledger, Ticket};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BudgetHolder {
    pub runtime_id: String,
    pub ticket: TicketId,
    pub agent: String,
    /// What it reserved, and what it has spent so far (null: nothing reported yet).
    pub reservation_usd: f64,
    pub spent_usd: Option<f64>,
    pub started_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BudgetScopeView {
    pub kind: BudgetScopeKind,
    pub value: Option<String>,
}

/// `GET /v1/budgets/{name}`: what the budget stands at now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub name: String,
    pub scope: BudgetScopeView,
    pub period: BudgetPeriod,
    /// When the current period began (null for `total`).
    pub period_start: Option<Timestamp>,
    pub limit_usd: f64,
    /// What runtimes that ended in this period spent.
    pub spent_usd: f64,
    /// What live runtimes hold (each its reservation, or its spend so far when larger).
    pub reserved_usd: f64,
    /// limit − spent − reserved; negative when runs spent past their reservations.
    pub remaining_usd: f64,
    pub warn_at_pct: u8,
    pub default_reservation_usd: f64,
    /// `ok`, `near` (spent + reserved ≥ warn_at_pct of the limit) or `exhausted` (nothing
    /// left for the default reservation).
    pub status: BudgetStatus,
    pub holders: Vec<BudgetHolder>,
    pub stream: TicketId,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `GET /v1/budgets`: every budget, by name, in one page.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BudgetPage {
    pub budgets: Vec<BudgetView>,
    /// Always null: budgets come in one page.
    pub next_cursor: Option<String>,
}

fn signed_usd(limit: u64, used: u64) -> f64 {
    if limit >= used {
        usd(limit - used)
    } else {
        -usd(used - limit)
    }
}

impl Ledger {
    fn budget_view(&self, b: &Budget, now: Timestamp) -> BudgetView {
        let s = b.standing(self, now, &[]);
        let mut holders: Vec<BudgetHolder> = b
            .holders
            .iter()
            .filter_map(|(id, hold)| self.runtimes.get(id).map(|r| (r, hold.reserved)))
            .map(|(r, reserved)| {
                let spend = spend_nanos(r);
                BudgetHolder {
                    runtime_id: r.id.clone(),
                    ticket: r.ticket.clone(),
                    agent: r.agent.clone(),
                    reservation_usd: usd(reserved),
                    spent_usd: (spend > 0).then(|| usd(spend)),
                    started_at: r.started_at,
                }
            })
            .collect();
        holders.sort_by(|a, b| (a.started_at, &a.runtime_id).cmp(&(b.started_at, &b.runtime_id)));
        BudgetView {
            name: b.name.clone(),
            scope: BudgetScopeView {
                kind: b.scope,
                value: b.scope_value.clone(),
            },
            period: b.period,
            period_start: (b.period != BudgetPeriod::Total).then(|| period_start(b.period, now)),
            limit_usd: usd(b.limit),
            spent_usd: usd(s.spent),
            reserved_usd: usd(s.reserved),
            remaining_usd: signed_usd(b.limit, s.used()),
            warn_at_pct: b.warn_at_pct,
            default_reservation_usd: usd(b.default_reservation),
            status: b.status(s),
            holders,
            stream: b.stream.clone(),
            version: b.version,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }

    /// `budget_near` and `budget_exhausted` at `now`, by budget name. An alert that stayed
    /// across a new period begins again with it.
    pub(crate) fn budget_alerts(&self, now: Timestamp, out: &mut Vec<crate::alerts::Alert>) {
        use crate::alerts::{Alert, AlertKind};
        let mut found: Vec<Alert> = Vec::new();
        for b in self.budgets.values() {
            let s = b.standing(self, now, &[]);
            let (kind, since) = match b.status(s) {
                BudgetStatus::Ok => continue,
                BudgetStatus::Near => (AlertKind::BudgetNear, b.near_since),
                BudgetStatus::Exhausted => (AlertKind::BudgetExhausted, b.exhausted_since),
            };
            let start = period_start(b.period, now);
            found.push(Alert {
                kind,
                ticket: None,
                pool: None,
                subscription: None,
                budget: Some(b.name.clone()),
                runtime_id: None,
                since: since.map_or(start, |s| s.max(start)),
                detail: format!(
                    "budget {}: ${} spent and ${} reserved of ${} ({} {})",
                    b.name,
                    usd(s.spent),
                    usd(s.reserved),
                    usd(b.limit),
                    b.scope.as_str(),
                    b.scope_value.as_deref().unwrap_or("runtimes"),
                ),
            });
        }
        found.sort_by(|a, b| a.budget.cmp(&b.budget));
        out.extend(found);
    }

    pub fn budget(&self, name: &str, now: Timestamp) -> Option<BudgetView> {
        self.budget_named(name).map(|b| self.budget_view(b, now))
    }

    /// Every budget by name, as it stands at `now`.
    pub fn budgets(&self, now: Timestamp) -> BudgetPage {
        let mut budgets: Vec<BudgetView> = self
            .budgets
            .values()
            .map(|b| self.budget_view(b, now))
            .collect();
        budgets.sort_by(|a, b| a.name.cmp(&b.name));
        BudgetPage {
            budgets,
            next_cursor: None,
        }
    }

    pub(crate) fn budget_named(&self, name: &str) -> Option<&Budget> {
        self.budgets
            .get(&events::ids::budget_stream(name))
            .filter(|b| b.name == name)
    }

    /// The budgets whose scope covers a dispatch on `t` by `agent`, by name.
    pub(crate) fn budgets_covering<'a>(
        &'a self,
        t: &'a Ticket,
        agent: &'a str,
    ) -> impl Iterator<Item = &'a Budget> + 'a {
        self.budgets
            .values()
            .filter(move |b| b.covers(self, t, agent))
    }
}
