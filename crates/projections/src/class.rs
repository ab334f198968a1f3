//! Runtime class (SPEC §5.1): what a runtime is, derived from its terminal facts by rank.

use events::{ExitReason, HarvestOutcome, ReapCause, Timestamp, Transport};
use serde::{Deserialize, Serialize};

events::names! {
    /// A runtime's class. Live classes first, then ended classes in §5.1 precedence order.
    #[derive(utoipa::ToSchema)]
    pub enum RuntimeClass as "kebab-case" {
        /// Live, no activity or signal yet.
        Starting,
        Live,
        /// Live websocket console with no activity for `idle_after`.
        WebsocketIdle,
        CompletedByController,
        KilledByController,
        Cancelled,
        Completed,
        Partial,
        Failed,
        TmuxMissing,
        ProcessDead,
        TimedOut,
        /// Reaped because the ticket reached a terminal state (`terminal_state`).
        Closed,
        LaunchAborted,
        /// The agent reported its session ended (`runtime.session_ended`), ranked with the reaps.
        SessionEnded,
    }
}

impl RuntimeClass {
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RuntimeClass::Starting | RuntimeClass::Live | RuntimeClass::WebsocketIdle
        )
    }

    /// The classes a reap gives (the worker's session or process was found gone).
    pub fn is_reaped(self) -> bool {
        matches!(
            self,
            RuntimeClass::TmuxMissing
                | RuntimeClass::ProcessDead
                | RuntimeClass::TimedOut
                | RuntimeClass::SessionEnded
        )
    }

    /// The classes §5.4 counts as a failure of the worker.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RuntimeClass::TmuxMissing
                | RuntimeClass::ProcessDead
                | RuntimeClass::TimedOut
                | RuntimeClass::Failed
                | RuntimeClass::LaunchAborted
                | RuntimeClass::SessionEnded
        )
    }
}

/// The last harvest folded for a runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Harvest {
    pub(crate) outcome: HarvestOutcome,
    pub(crate) exit_reason: ExitReason,
    pub(crate) turns: Option<u32>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) session_id: Option<String>,
}

/// Terminal facts of one runtime, kept one slot per rank. Because every rank has its own slot
/// and a later fact only overwrites its own rank, the class never depends on the order in which
/// facts of different ranks arrive (a reap after a harvest, a harvest after a reap: same class).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TerminalFacts {
    pub(crate) completed_by_controller: bool,
    pub(crate) killed: bool,
    pub(crate) cancelled: bool,
    pub(crate) harvest: Option<Harvest>,
    /// Latest reap cause (within one rank the latest event wins).
    pub(crate) reap: Option<ReapCause>,
    /// Latest launch-abort reason.
    pub(crate) launch_aborted: Option<String>,
    /// Latest session-end reason (the agent's own report, ranked with the reaps).
    pub(crate) session_ended: Option<String>,
    /// The session end came after the latest reap (within one rank the latest wins).
    pub(crate) session_end_is_latest: bool,
}

impl TerminalFacts {
    /// The ended class by §5.1 precedence, or `None` while no terminal fact is known.
    pub(crate) fn class(&self) -> Option<RuntimeClass> {
        if self.completed_by_controller {
            return Some(RuntimeClass::CompletedByController);
        }
        if self.killed {
            return Some(RuntimeClass::KilledByController);
        }
        if self.cancelled {
            return Some(RuntimeClass::Cancelled);
        }
        if let Some(h) = &self.harvest {
            return Some(match h.outcome {
                HarvestOutcome::Completed => RuntimeClass::Completed,
                HarvestOutcome::Partial => RuntimeClass::Partial,
                HarvestOutcome::Failed => RuntimeClass::Failed,
            });
        }
        if self.session_ended.is_some() && (self.session_end_is_latest || self.reap.is_none()) {
            return Some(RuntimeClass::SessionEnded);
        }
        if let Some(cause) = self.reap {
            return Some(match cause {
                ReapCause::TmuxMissing => RuntimeClass::TmuxMissing,
                ReapCause::ProcessDead => RuntimeClass::ProcessDead,
                ReapCause::IdleTimeout => RuntimeClass::TimedOut,
                ReapCause::TerminalState => RuntimeClass::Closed,
            });
        }
        if self.launch_aborted.is_some() {
            return Some(RuntimeClass::LaunchAborted);
        }
        None
    }

    /// The §5.4 `failure_reason` value this class would give, if it is a failure class.
    pub(crate) fn failure_value(&self) -> Option<String> {
        match self.class()? {
            RuntimeClass::TmuxMissing => Some("tmux_session_missing".to_owned()),
            RuntimeClass::ProcessDead => Some("process_dead".to_owned()),
            RuntimeClass::TimedOut => Some("idle_timeout".to_owned()),
            RuntimeClass::Failed => {
                let reason = self
                    .harvest
                    .as_ref()
                    .map_or("error", |h| h.exit_reason.as_str());
                Some(format!("agent_failed: {reason}"))
            }
            RuntimeClass::LaunchAborted => Some(format!(
                "launch_aborted: {}",
                self.launch_aborted.as_deref().unwrap_or("")
            )),
            RuntimeClass::SessionEnded => Some(format!(
                "session_ended: {}",
                self.session_ended.as_deref().unwrap_or("")
            )),
            _ => None,
        }
    }
}

/// Class of a live runtime at `now`: `websocket-idle` beats `starting` because an idle console
/// that never spoke is still idle, and idleness is what an operator must see.
pub(crate) fn live_class(
    transport: Transport,
    started_at: Timestamp,
    last_activity_at: Option<Timestamp>,
    now: Timestamp,
    idle_after_ms: u64,
) -> RuntimeClass {
    let last_seen = last_activity_at.unwrap_or(started_at);
    let idle_ms = now.millis().saturating_sub(last_seen.millis());
    if transport == Transport::Websocket && idle_ms >= idle_after_ms {
        return RuntimeClass::WebsocketIdle;
    }
    if last_activity_at.is_none() {
        return RuntimeClass::Starting;
    }
    RuntimeClass::Live
}
