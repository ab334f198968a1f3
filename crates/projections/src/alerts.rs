//! Alerts (SPEC §5.5), evaluated against an explicit `now`: what needs a person's attention.

use events::{TicketId, Timestamp, Transport};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ledger::{Ledger, Ticket};
use crate::rules::{NextActionCode, TicketState};

events::names! {
    #[derive(PartialOrd, Ord, utoipa::ToSchema)]
    pub enum AlertKind as "snake_case" {
        WorkerLost,
        StaleWorker,
        RetryLoop,
        UnansweredQuestion,
        ReadyToResume,
        /// A pool has had every slot taken for `pool_saturated_after` (SPEC §14: 15 minutes).
        PoolSaturated,
        /// A subscription parked a delivery and stopped (SPEC §15).
        SubscriptionFailing,
        /// A budget's spent + reserved reached its `warn_at_pct` (SPEC §16).
        BudgetNear,
        /// A budget has no room left for its default reservation (SPEC §16).
        BudgetExhausted,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub kind: AlertKind,
    /// The ticket the alert is about; absent for a pool's alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    /// The pool a `pool_saturated` alert is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The subscription a `subscription_failing` alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The budget a `budget_near` or `budget_exhausted` alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// When the condition started.
    pub since: Timestamp,
    pub detail: String,
}

const MINUTE_MS: u64 = 60_000;

impl Ledger {
    /// `subscription_failing`: a subscription stopped at a parked delivery.
    pub(crate) fn subscription_alerts(&self, out: &mut Vec<Alert>) {
        for s in self.subscriptions.values() {
            let Some(p) = &s.parked else { continue };
            out.push(Alert {
                kind: AlertKind::SubscriptionFailing,
                ticket: None,
                pool: None,
                subscription: Some(s.name.clone()),
                budget: None,
                runtime_id: None,
                since: p.at,
                detail: format!(
                    "subscription {} parked delivery {} after {} attempts: {}",
                    s.name, p.delivery_id, p.attempts, p.error
                ),
            });
        }
    }

    /// Every alert at `now`: tickets' in ticket id order, then by kind; then pools' by name.
    pub fn alerts(&self, now: Timestamp, cfg: &Config) -> Vec<Alert> {
        let mut out = Vec::new();
        // Closed tickets raise no alerts, so only the open ones are walked.
        for key in &self.active {
            if let Some(t) = self.tickets.get(&key.id) {
                self.ticket_alerts(t, now, cfg, &mut out);
            }
        }
        for p in self.pools.values() {
            let Some(since) = p.full_since else { continue };
            if now.millis().saturating_sub(since.millis()) >= cfg.pool_saturated_after_ms {
                out.push(Alert {
                    kind: AlertKind::PoolSaturated,
                    ticket: None,
                    pool: Some(p.name.clone()),
                    subscription: None,
                    budget: None,
                    runtime_id: None,
                    since,
                    detail: format!(
                        "all {} slots of pool {} held for {} min",
                        p.capacity,
                        p.name,
                        now.millis().saturating_sub(since.millis()) / MINUTE_MS
                    ),
                });
            }
        }
        self.subscription_alerts(&mut out);
        self.budget_alerts(now, &mut out);
        out
    }

    /// Alerts of one ticket at `now`.
    pub fn ticket_alerts_at(&self, id: &TicketId, now: Timestamp, cfg: &Config) -> Vec<Alert> {
        let mut out = Vec::new();
        if let Some(t) = self.tickets.get(id) {
            self.ticket_alerts(t, now, cfg, &mut out);
        }
        out
    }

    fn ticket_alerts(&self, t: &Ticket, now: Timestamp, cfg: &Config, out: &mut Vec<Alert>) {
        if t.closed.is_some() {
            return;
        }
        let status = self.derive(t);
        let current = self.current_runtime(t);
        let alert = |kind, runtime_id: Option<&str>, since, detail: String| Alert {
            kind,
            ticket: Some(t.id.clone()),
            pool: None,
            subscription: None,
            budget: None,
            runtime_id: runtime_id.map(str::to_owned),
            since,
            detail,
        };

        // Umbrella and waiting tickets expect no worker, so they never raise worker alerts.
        let worker_expected = !t.umbrella && status.state != TicketState::Waiting;
        if worker_expected {
            if let (Some(f), Some(r)) = (&status.failure_reason, current) {
                if f == "tmux_session_missing" || f == "process_dead" {
                    let since = r.ended.map_or(r.started_at, |e| e.at);
                    out.push(alert(AlertKind::WorkerLost, Some(&r.id), since, f.clone()));
                }
            }
            if let Some(r) = current {
                let watched = matches!(r.transport, Transport::Tmux | Transport::Process);
                let last_seen = r
                    .last_activity_at
                    .map_or(r.turn_started_at, |a| a.max(r.turn_started_at));
                let silent_ms = now.millis().saturating_sub(last_seen.millis());
                // Only a worker that should be working can be stale: one that asked a
                // question or handed in for review is waiting on people, not hung.
                if r.is_live()
                    && watched
                    && status.state == TicketState::InProgress
                    && silent_ms >= cfg.stale_after_ms
                {
                    let detail = format!("no activity for {} min", silent_ms / MINUTE_MS);
                    out.push(alert(
                        AlertKind::StaleWorker,
                        Some(&r.id),
                        last_seen,
                        detail,
                    ));
                }
            }
            let window_start = now.millis().saturating_sub(cfg.retry_window_ms);
            let mut failed = 0u32;
            let mut since: Option<Timestamp> = None;
            let mut latest: Option<&str> = None;
            for r in t.runtimes.iter().filter_map(|id| self.runtimes.get(id)) {
                let Some(ended) = r.ended else { continue };
                let is_failure = r.failed();
                if !is_failure || ended.at.millis() < window_start || ended.at > now {
                    continue;
                }
                failed += 1;
                since = Some(since.map_or(ended.at, |s| s.min(ended.at)));
                latest = Some(&r.id);
            }
            if failed >= cfg.retry_loop_failures {
                let detail = format!(
                    "{failed} failed attempts within {} min",
                    cfg.retry_window_ms / MINUTE_MS
                );
                out.push(alert(
                    AlertKind::RetryLoop,
                    latest,
                    since.unwrap_or(now),
                    detail,
                ));
            }
        }

        if status.state == TicketState::NeedsInput {
            // Waiting since the input request (a permission or idle prompt), else the QUESTION.
            let waiting = current.and_then(|r| {
                let since = r
                    .input_requested
                    .as_ref()
                    .map(|w| w.at)
                    .or(r.pending.map(|p| p.at))?;
                Some((r, since))
            });
            if let Some((r, since)) = waiting {
                if now.millis().saturating_sub(since.millis()) >= cfg.question_after_ms {
                    let detail = status.next_action.text.clone();
                    out.push(alert(
                        AlertKind::UnansweredQuestion,
                        Some(&r.id),
                        since,
                        detail,
                    ));
                }
            }
        }

        if status.next_action.code == NextActionCode::Resume {
            let since = self
                .blockers(t)
                .closed
                .iter()
                .map(|(_, at)| *at)
                .max()
                .unwrap_or(now);
            out.push(alert(
                AlertKind::ReadyToResume,
                None,
                since,
                status.next_action.text.clone(),
            ));
        }
    }
}
