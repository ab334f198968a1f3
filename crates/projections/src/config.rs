//! Tunables of the time-based rules (idle, stale, retry loops, coalescing), all in ms.

use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60 * 1000;

/// Thresholds the views and decisions evaluate against an explicit `now`. The defaults are the
/// values SPEC §5–§6 names; the server may override them from its own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// A live websocket runtime with no activity for this long is `websocket-idle`.
    pub idle_after_ms: u64,
    /// A live tmux/process worker with no activity for this long raises `stale_worker`.
    pub stale_after_ms: u64,
    /// Window in which `retry_loop_failures` failed attempts raise `retry_loop`.
    pub retry_window_ms: u64,
    pub retry_loop_failures: u32,
    /// A QUESTION with no input for this long raises `unanswered_question`.
    pub question_after_ms: u64,
    /// At most one `runtime.activity` per runtime per this period; others are coalesced.
    pub activity_every_ms: u64,
    /// A pool with every slot held for this long raises `pool_saturated`.
    pub pool_saturated_after_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_after_ms: 10 * MINUTE_MS,
            stale_after_ms: 30 * MINUTE_MS,
            retry_window_ms: 60 * MINUTE_MS,
            retry_loop_failures: 3,
            question_after_ms: 30 * MINUTE_MS,
            activity_every_ms: MINUTE_MS,
            pool_saturated_after_ms: 15 * MINUTE_MS,
        }
    }
}
