//! The budgets' part of the fold (SPEC §16): reservations of live runtimes and the spend of
//! ended ones, kept from runtime facts, by period. Views are `crate::budgets`'.

use std::collections::BTreeMap;

use events::{
    BudgetConfigured, BudgetPeriod, BudgetScopeKind, EventData, RecordedEvent, TicketId, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::money::{nanos, spend_nanos};
use super::{Ledger, Runtime, Ticket};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Budget {
    pub(crate) name: String,
    pub(crate) stream: TicketId,
    pub(crate) scope: BudgetScopeKind,
    pub(crate) scope_value: Option<String>,
    pub(crate) limit: u64,
    pub(crate) period: BudgetPeriod,
    pub(crate) warn_at_pct: u8,
    pub(crate) default_reservation: u64,
    /// Live runtimes admitted into the budget and what each reserved.
    pub(crate) holders: BTreeMap<String, Hold>,
    /// The sum of the holders' `held`, kept with them: a budget's standing without a walk.
    pub(crate) held: u128,
    /// What ended runtimes spent, by the period their end fell in (key 0 for `total`).
    pub(crate) spent: BTreeMap<u64, u128>,
    /// Since when spent + reserved have stood at or past `warn_at_pct`, and past what a
    /// default reservation needs, as of the budget's latest change (alerts' `since`).
    pub(crate) near_since: Option<Timestamp>,
    pub(crate) exhausted_since: Option<Timestamp>,
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

/// What a live runtime holds in a budget: its reservation, or what it has spent so far when
/// that is more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) reserved: u64,
    pub(crate) held: u64,
}

/// A runtime's reservation (its `runtime.budgeted`), and what its end charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub(crate) nanos: u64,
    pub(crate) budgets: Vec<String>,
    /// The spend charged to the budgets once the runtime ended, and the period it went to.
    pub(crate) charged: Option<(u64, Timestamp)>,
}

const MS_PER_DAY: u64 = 86_400_000;

/// A sum kept exact (u128: no run of u64 additions overflows it, so what is added can always be
/// taken away again) read as nano-dollars, the most a u64 holds when larger.
fn clamp(sum: u128) -> u64 {
    u64::try_from(sum).unwrap_or(u64::MAX)
}

/// The period `at` falls in: 0 for `total`, the UTC day number, or year × 12 + month.
pub(crate) fn period_key(period: BudgetPeriod, at: Timestamp) -> u64 {
    let days = at.millis() / MS_PER_DAY;
    match period {
        BudgetPeriod::Total => 0,
        BudgetPeriod::Day => days,
        BudgetPeriod::Month => {
            let (year, month) = year_month(days);
            year * 12 + (month - 1)
        }
    }
}

/// When the period holding `at` began (the epoch for `total`).
pub(crate) fn period_start(period: BudgetPeriod, at: Timestamp) -> Timestamp {
    let days = at.millis() / MS_PER_DAY;
    match period {
        BudgetPeriod::Total => Timestamp(0),
        BudgetPeriod::Day => Timestamp(days * MS_PER_DAY),
        BudgetPeriod::Month => {
            let (year, month) = year_month(days);
            Timestamp(days_from_civil(year, month) * MS_PER_DAY)
        }
    }
}

/// The civil year and month (1..=12) of a day since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn year_month(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month)
}

/// Days since 1970-01-01 of the first of `month` in `year` (`days_from_civil`).
fn days_from_civil(year: u64, month: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// What a budget stands at, in nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Standing {
    pub(crate) spent: u64,
    pub(crate) reserved: u64,
}

impl Standing {
    pub(crate) fn used(self) -> u64 {
        self.spent.saturating_add(self.reserved)
    }
}

impl Budget {
    /// Spent in the period holding `now` and reserved by live holders, `freed` ones (ended by
    /// the same append) counted at their spend instead. A live runtime that already spent more
    /// than it reserved holds what it spent.
    pub(crate) fn standing(&self, ledger: &Ledger, now: Timestamp, freed: &[&str]) -> Standing {
        let mut s = Standing {
            spent: clamp(
                self.spent
                    .get(&period_key(self.period, now))
                    .copied()
                    .unwrap_or(0),
            ),
            reserved: clamp(self.held),
        };
        for id in freed {
            if let Some(hold) = self.holders.get(*id) {
                let spend = ledger.runtimes.get(*id).map_or(0, spend_nanos);
                s.reserved = s.reserved.saturating_sub(hold.held);
                s.spent = s.spent.saturating_add(spend);
            }
        }
        s
    }

    /// Whether a dispatch on `t` by `agent` falls in this budget's scope. An umbrella's budget
    /// covers the umbrella and every descendant.
    pub(crate) fn covers(&self, ledger: &Ledger, t: &Ticket, agent: &str) -> bool {
        let value = self.scope_value.as_deref();
        match self.scope {
            BudgetScopeKind::All => true,
            BudgetScopeKind::Agent => value == Some(agent),
            BudgetScopeKind::Owner => value.is_some() && t.owner.as_deref() == value,
            BudgetScopeKind::Ticket => value == Some(t.id.as_str()),
            BudgetScopeKind::Umbrella => {
                let Some(value) = value else { return false };
                let mut at = Some(t);
                // A parent chain is acyclic by the link rules; the bound guards a raw append.
                for _ in 0..=ledger.tickets.len().min(10_000) {
                    let Some(cur) = at else { return false };
                    if cur.id.as_str() == value {
                        return true;
                    }
                    at = cur.parent.as_ref().and_then(|p| ledger.tickets.get(p));
                }
                false
            }
        }
    }
}

impl Ledger {
    /// An event of a budget stream. Anything but `budget.configured` counts as a version only
    /// (`budget.reserved` is the budget's record of a dispatch; the reservation is the ticket
    /// stream's `runtime.budgeted`); a `budget.configured` naming a budget of another stream
    /// is ignored.
    pub(crate) fn apply_budget(&mut self, e: &RecordedEvent) {
        let at = e.recorded_at;
        self.pool_stream_versions
            .insert(e.ticket.clone(), e.version);
        if let EventData::BudgetConfigured(x) = &e.data {
            self.configure_budget(e, x);
        }
        if let Some(b) = self.budgets.get_mut(&e.ticket) {
            b.version = e.version;
            b.position = e.position;
            b.updated_at = at;
        }
    }

    fn configure_budget(&mut self, e: &RecordedEvent, x: &BudgetConfigured) {
        if events::ids::budget_stream(&x.name) != e.ticket {
            return;
        }
        if self
            .budgets
            .get(&e.ticket)
            .is_some_and(|b| b.name != x.name)
        {
            return;
        }
        let b = self
            .budgets
            .entry(e.ticket.clone())
            .or_insert_with(|| Budget {
                name: x.name.clone(),
                stream: e.ticket.clone(),
                scope: x.scope.kind,
                scope_value: None,
                limit: 0,
                period: x.period,
                warn_at_pct: 0,
                default_reservation: 0,
                holders: BTreeMap::new(),
                held: 0,
                spent: BTreeMap::new(),
                near_since: None,
                exhausted_since: None,
                version: 0,
                position: 0,
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
            });
        if b.period != x.period {
            // decide refuses a new period (the spend kept per period could not be regrouped);
            // a raw append's is ignored.
            return;
        }
        b.scope = x.scope.kind;
        b.scope_value.clone_from(&x.scope.value);
        b.limit = nanos(x.limit_usd);
        b.warn_at_pct = x.warn_at_pct;
        b.default_reservation = nanos(x.default_reservation_usd);
        let stream = e.ticket.clone();
        self.refresh_budgets(std::iter::once(&stream), e.recorded_at);
    }

    /// Re-reads the standing of these budgets after a change at `at`: when their alerts began.
    pub(crate) fn refresh_budgets<'a>(
        &mut self,
        streams: impl Iterator<Item = &'a TicketId>,
        at: Timestamp,
    ) {
        for stream in streams {
            let Some(b) = self.budgets.get(stream) else {
                continue;
            };
            let status = b.status(b.standing(self, at, &[]));
            let Some(b) = self.budgets.get_mut(stream) else {
                continue;
            };
            if status == BudgetStatus::Ok {
                b.near_since = None;
            } else {
                b.near_since.get_or_insert(at);
            }
            if status == BudgetStatus::Exhausted {
                b.exhausted_since.get_or_insert(at);
            } else {
                b.exhausted_since = None;
            }
        }
    }

    /// After a runtime fact: the budgets the runtime reserved in are read again.
    pub(crate) fn refresh_runtime_budgets(&mut self, runtime_id: &str, at: Timestamp) {
        let Some(names) = self
            .runtimes
            .get(runtime_id)
            .and_then(|r| r.budget.as_ref())
            .map(|b| b.budgets.clone())
        else {
            return;
        };
        let streams: Vec<TicketId> = names
            .iter()
            .map(|n| events::ids::budget_stream(n))
            .collect();
        self.refresh_budgets(streams.iter(), at);
    }

    /// The ticket stream's `runtime.budgeted`: the runtime holds `nanos` in each known budget.
    pub(crate) fn reserve(&mut self, runtime_id: &str, x: &events::RuntimeBudgeted) {
        let Some(r) = self.runtimes.get_mut(runtime_id) else {
            return;
        };
        if r.budget.is_some() {
            return;
        }
        let amount = nanos(x.reservation_usd);
        let mut budgets: Vec<String> = x
            .budgets
            .iter()
            .take(crate::limits::BUDGETS_PER_RUNTIME_MAX)
            .cloned()
            .collect();
        // A raw append may name one twice; it is held, and charged, once.
        budgets.sort();
        budgets.dedup();
        if r.ended.is_none() {
            let hold = Hold {
                reserved: amount,
                held: amount.max(spend_nanos(r)),
            };
            for name in &budgets {
                let stream = events::ids::budget_stream(name);
                if let Some(b) = self.budgets.get_mut(&stream).filter(|b| b.name == *name) {
                    let before = b.holders.insert(r.id.clone(), hold).map_or(0, |h| h.held);
                    b.held = b.held.saturating_sub(u128::from(before)) + u128::from(hold.held);
                }
            }
        }
        r.budget = Some(Reservation {
            nanos: amount,
            budgets,
            charged: None,
        });
    }

    /// After a runtime fact: a live runtime that spent past its reservation holds what it
    /// spent; an ended runtime's spend is charged to its budgets (and its hold released), and a
    /// later change of that spend corrects the charge.
    pub(crate) fn settle(budgets: &mut BTreeMap<TicketId, Budget>, r: &mut Runtime, at: Timestamp) {
        if r.budget.is_none() {
            return;
        }
        let spend = spend_nanos(r);
        let Some(res) = r.budget.as_mut() else {
            return;
        };
        if r.ended.is_none() {
            let held = res.nanos.max(spend);
            for name in &res.budgets {
                let stream = events::ids::budget_stream(name);
                let Some(b) = budgets.get_mut(&stream).filter(|b| b.name == *name) else {
                    continue;
                };
                if let Some(h) = b.holders.get_mut(&r.id) {
                    b.held = b.held.saturating_sub(u128::from(h.held)) + u128::from(held);
                    h.held = held;
                }
            }
            return;
        }
        let (before, charged_at) = res.charged.unwrap_or((0, at));
        if res.charged.is_some() && before == spend {
            return;
        }
        res.charged = Some((spend, charged_at));
        for name in &res.budgets {
            let stream = events::ids::budget_stream(name);
            let Some(b) = budgets.get_mut(&stream).filter(|b| b.name == *name) else {
                continue;
            };
            if let Some(h) = b.holders.remove(&r.id) {
                b.held = b.held.saturating_sub(u128::from(h.held));
            }
            let key = period_key(b.period, charged_at);
            let slot = b.spent.entry(key).or_insert(0);
            *slot = slot.saturating_sub(u128::from(before)) + u128::from(spend);
        }
    }
}

events::names! {
    /// What a budget's standing comes to.
    #[derive(utoipa::ToSchema)]
    pub enum BudgetStatus as "snake_case" { Ok, Near, Exhausted }
}

impl Budget {
    pub(crate) fn status(&self, s: Standing) -> BudgetStatus {
        let used = s.used();
        let left = self.limit.saturating_sub(used);
        if used >= self.limit || left < self.default_reservation {
            BudgetStatus::Exhausted
        } else if u128::from(used) * 100 >= u128::from(self.limit) * u128::from(self.warn_at_pct) {
            BudgetStatus::Near
        } else {
            BudgetStatus::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_roll_over_at_utc_midnight_and_the_first_of_the_month() {
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let rows = [
            // (period, a, b, same period)
            (
                BudgetPeriod::Day,
                "2026-12-03T23:59:59.999Z",
                "2026-12-04T00:00:00Z",
                false,
            ),
            (
                BudgetPeriod::Day,
                "2026-12-04T00:00:00Z",
                "2026-12-04T23:59:59Z",
                true,
            ),
            (
                BudgetPeriod::Month,
                "2026-11-30T23:59:59Z",
                "2026-12-01T00:00:00Z",
                false,
            ),
            (
                BudgetPeriod::Month,
                "2026-12-01T00:00:00Z",
                "2026-12-31T23:59:59Z",
                true,
            ),
            (
                BudgetPeriod::Month,
                "2024-02-29T12:00:00Z",
                "2024-03-01T00:00:00Z",
                false,
            ),
            (
                BudgetPeriod::Month,
                "2026-12-31T23:59:59Z",
                "2027-01-01T00:00:00Z",
                false,
            ),
            (
                BudgetPeriod::Total,
                "1970-01-01T00:00:00Z",
                "9999-12-31T00:00:00Z",
                true,
            ),
        ];
        for (period, a, b, same) in rows {
            assert_eq!(
                period_key(period, at(a)) == period_key(period, at(b)),
                same,
                "{period:?} {a} {b}"
            );
        }
        assert_eq!(
            period_start(BudgetPeriod::Month, at("2024-02-29T12:00:00Z")),
            at("2024-02-01T00:00:00Z")
        );
        assert_eq!(
            period_start(BudgetPeriod::Month, at("2027-01-09T01:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            period_start(BudgetPeriod::Day, at("2027-01-09T01:00:00Z")),
            at("2027-01-09T00:00:00Z")
        );
        // Every day of four years: the month's start is a day of that month, and the key
        // changes exactly when the month does.
        let mut last = None;
        for day in 20_000..21_461u64 {
            let t = Timestamp(day * MS_PER_DAY);
            let start = period_start(BudgetPeriod::Month, t);
            assert_eq!(
                period_key(BudgetPeriod::Month, start),
                period_key(BudgetPeriod::Month, t)
            );
            let rfc = t.to_rfc3339();
            let key = period_key(BudgetPeriod::Month, t);
            if let Some((k, m)) = last.replace((key, rfc[..7].to_owned())) {
                assert_eq!(k == key, m == rfc[..7], "{rfc}");
            }
        }
    }
}
