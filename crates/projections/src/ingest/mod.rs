//! Reading what workers leave behind: a verdict in raw terminal pane text ([`signal`]) and a
//! Claude Code / Codex exit record ([`harvest`]). Both are pure functions of their input, so the
//! HTTP handlers, the watcher and the property tests share one implementation.

pub mod harvest;
pub mod signal;
pub mod todos;

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn bounded(s: &str, max: usize) -> &str {
    crate::limits::excerpt(s, max)
}

/// The largest char boundary of `s` at or below `at` (`str::floor_char_boundary` is unstable).
pub(crate) fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
