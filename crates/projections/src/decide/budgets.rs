//! Budgets (SPEC §16): the reservation a new runtime makes in every budget covering it, and
//! budget configuration.

use events::{
    BudgetConfigured, BudgetPeriod, BudgetReserved, BudgetScope, BudgetScopeKind, EventData,
    RuntimeBudgeted,
};

use crate::cost::{nanos, usd};
use crate::ledger::Budget;
use crate::ledger::{Ledger, Ticket};
use crate::limits::{excerpt, BUDGETS_MAX, NAME_BYTES_MAX};
use events::ids::POOL_NAME_BYTES_MAX;

use super::checks::{append_named, unchanged_named};
use super::types::*;

/// The most a budget's limit or a run's reservation may be, in dollars.
pub const BUDGET_USD_MAX: f64 = 1e9;

/// A budget as `POST /v1/budgets` asks for it; what is left out takes its default.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRequest {
    pub name: String,
    pub scope: BudgetScope,
    pub limit_usd: f64,
    pub period: BudgetPeriod,
    pub warn_at_pct: Option<u8>,
    pub default_reservation_usd: Option<f64>,
}

/// Checks a dollar amount: finite, not negative (positive when `positive`), at most
/// [`BUDGET_USD_MAX`].
pub(super) fn dollars(field: &'static str, v: f64, positive: bool) -> Result<u64, Rejection> {
    if !v.is_finite() || v < 0.0 || (positive && v <= 0.0) || v > BUDGET_USD_MAX {
        let least = if positive {
            "more than 0"
        } else {
            "at least 0"
        };
        return Err(Rejection::invalid(
            field,
            format!("a number of dollars, {least} and at most {BUDGET_USD_MAX}"),
        ));
    }
    let n = nanos(v);
    if positive && n == 0 {
        return Err(Rejection::invalid(field, "at least one nano-dollar"));
    }
    Ok(n)
}

/// The reservation of a new runtime on `t` by `agent`: `runtime.budgeted` after its dispatch
/// on the ticket's stream, and each covering budget's part of the append (`budget.reserved`
/// at the budget's version, so that of racing dispatches all but one are re-decided); or
/// `budget_exhausted` naming the first budget without room. `max_budget_usd` is what the run
/// may spend; without it the smallest default of the covering budgets is reserved. `freed`
/// are runtimes the same append ends: their spend counts instead of their reservation.
pub(super) fn reservation(
    ledger: &Ledger,
    t: &Ticket,
    agent: &str,
    max_budget_usd: Option<f64>,
    freed: &[&str],
    ctx: &Context,
    events: &mut Vec<EventData>,
) -> Result<Vec<AlsoAppend>, Rejection> {
    let asked = max_budget_usd
        .map(|v| dollars("max_budget_usd", v, true))
        .transpose()?;
    let covering: Vec<&Budget> = ledger.budgets_covering(t, agent).collect();
    let Some(amount) = asked.or_else(|| covering.iter().map(|b| b.default_reservation).min())
    else {
        return Ok(Vec::new());
    };
    for b in &covering {
        let s = b.standing(ledger, ctx.now, freed);
        if s.used().saturating_add(amount) > b.limit {
            return Err(Rejection::BudgetExhausted(BudgetShortfall {
                budget: b.name.clone(),
                limit_usd: usd(b.limit),
                spent_usd: usd(s.spent),
                reserved_usd: usd(s.reserved),
                reservation_usd: usd(amount),
            }));
        }
    }
    let reservation_usd = usd(amount);
    events.push(EventData::RuntimeBudgeted(RuntimeBudgeted {
        runtime_id: ctx.runtime_id.clone(),
        reservation_usd,
        budgets: covering.iter().map(|b| b.name.clone()).collect(),
    }));
    Ok(covering
        .iter()
        .map(|b| AlsoAppend {
            ticket: b.stream.clone(),
            expected_version: ledger.pool_stream_version(&b.stream),
            events: vec![EventData::BudgetReserved(BudgetReserved {
                runtime_id: ctx.runtime_id.clone(),
                ticket: t.id.as_str().to_owned(),
                reservation_usd,
            })],
        })
        .collect())
}

pub(super) fn configure_budget(
    ledger: &Ledger,
    req: &BudgetRequest,
) -> Result<Decision, Rejection> {
    let name = &req.name;
    if !events::ids::is_pool_name(name) {
        return Err(Rejection::invalid(
            "name",
            format!("1 to {POOL_NAME_BYTES_MAX} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    let value = req.scope.value.as_deref();
    match (req.scope.kind, value) {
        (BudgetScopeKind::All, None) => {}
        (BudgetScopeKind::All, Some(_)) => {
            return Err(Rejection::invalid("scope.value", "not with kind all"))
        }
        (_, None) => {
            return Err(Rejection::invalid(
                "scope.value",
                "required: the agent, owner, umbrella or ticket the budget covers",
            ))
        }
        (BudgetScopeKind::Umbrella | BudgetScopeKind::Ticket, Some(v)) => {
            if !events::is_ticket_id(v) {
                return Err(Rejection::invalid(
                    "scope.value",
                    "a ticket id, e.g. MC-4000",
                ));
            }
        }
        (BudgetScopeKind::Agent | BudgetScopeKind::Owner, Some(v)) => {
            if v.is_empty() || v.len() > NAME_BYTES_MAX {
                return Err(Rejection::invalid(
                    "scope.value",
                    format!("1 to {NAME_BYTES_MAX} bytes"),
                ));
            }
        }
    }
    let limit = dollars("limit_usd", req.limit_usd, false)?;
    let warn_at_pct = req.warn_at_pct.unwrap_or(80);
    if !(1..=100).contains(&warn_at_pct) {
        return Err(Rejection::invalid("warn_at_pct", "1 to 100"));
    }
    // Without a default, a tenth of the limit: ten runs at once before the budget is full.
    let default_reservation = match req.default_reservation_usd {
        Some(v) => dollars("default_reservation_usd", v, true)?,
        None => (limit / 10).max(1),
    };
    let stream = events::ids::budget_stream(name);
    let config = BudgetConfigured {
        name: name.clone(),
        scope: req.scope.clone(),
        limit_usd: usd(limit),
        period: req.period,
        warn_at_pct,
        default_reservation_usd: usd(default_reservation),
    };
    match ledger.budgets.get(&stream) {
        Some(b) if b.name != *name => {
            return Err(Rejection::invalid(
                "name",
                format!(
                    "{name:?} shares its stream {stream} with budget {:?}; choose another name",
                    excerpt(&b.name, POOL_NAME_BYTES_MAX)
                ),
            ))
        }
        Some(b)
            if b.scope == config.scope.kind
                && b.scope_value == config.scope.value
                && b.limit == limit
                && b.period == config.period
                && b.warn_at_pct == warn_at_pct
                && b.default_reservation == default_reservation =>
        {
            return Ok(unchanged_named(ledger, stream));
        }
        Some(b) if b.period != config.period => {
            return Err(Rejection::invalid(
                "period",
                format!(
                    "budget {name} counts by {}; a period cannot change (create another budget)",
                    b.period.as_str()
                ),
            ))
        }
        Some(_) => {}
        None if ledger.budgets.len() >= BUDGETS_MAX => {
            return Err(Rejection::invalid(
                "name",
                format!("there are {BUDGETS_MAX} budgets already, the most there may be"),
            ));
        }
        None => {}
    }
    Ok(append_named(
        ledger,
        stream,
        EventData::BudgetConfigured(config),
    ))
}
