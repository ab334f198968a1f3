//! Bounds on every string a command may carry. Units are named last (TigerStyle).
//!
//! They keep one event well under `events::ids::EVENT_DATA_BYTES_MAX` (128 KiB) even when a
//! command fills every optional field to its limit.

/// Ticket titles: 1–200 characters (SPEC §6), counted in chars, not bytes.
pub const TITLE_CHARS_MAX: usize = 200;
/// Comment bodies (SPEC §6: ≤ 64 KiB), descriptions, signal payloads, input text, summaries.
pub const TEXT_BYTES_MAX: usize = 64 * 1024;
/// Evidence on gates, closes and reaps; half a comment so two fit in one event.
pub const EVIDENCE_BYTES_MAX: usize = 16 * 1024;
/// Reasons (park, kill, cancel, reopen, launch abort) and free-text details.
pub const REASON_BYTES_MAX: usize = 4 * 1024;
/// Short names: owner, project, agent, profile, provider, model, labels, gate names.
pub const NAME_BYTES_MAX: usize = 128;
/// Keys and ids a client chooses: dispatch keys, task ids, session ids, commits, nonces.
pub const KEY_BYTES_MAX: usize = 256;
/// Paths and tmux targets.
pub const PATH_BYTES_MAX: usize = 4096;
pub const LABELS_MAX: usize = 32;
/// Models in one harvest's usage (Claude's `modelUsage` names one per model it called).
pub const USAGE_MODELS_MAX: usize = 16;
pub const WAITING_ON_MAX: usize = 32;
pub const TASKS_PER_TICKET_MAX: usize = 500;
/// Signal payloads and questions kept in the projection (the full text stays in the log).
pub const EXCERPT_BYTES_MAX: usize = 1024;
/// Excerpt of a refused signal written into `runtime.signal_rejected`.
pub const REJECTED_EXCERPT_BYTES_MAX: usize = 256;

/// The most budgets there may be, and so the most one dispatch can reserve in.
pub const BUDGETS_MAX: usize = 64;
pub const BUDGETS_PER_RUNTIME_MAX: usize = BUDGETS_MAX;

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn excerpt(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
