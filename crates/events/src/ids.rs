//! Identifiers (ticket ids, event ids) and the limits every append is checked against.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest ticket id the pattern `^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$` admits.
pub const TICKET_ID_BYTES_MAX: usize = 26;
/// Event ids are client-suppliable (import, retries); they are kept short and printable.
pub const EVENT_ID_BYTES_MAX: usize = 64;
pub const ACTOR_NAME_BYTES_MAX: usize = 128;
/// Events one append may carry (one command rarely produces more than three).
pub const EVENTS_PER_APPEND_MAX: usize = 64;
/// Encoded size of one event's data. A 64 KiB comment fits with room for the envelope.
pub const EVENT_DATA_BYTES_MAX: usize = 128 * 1024;
/// Encoded size of one whole record (envelope + data + hashes); also the bincode decode limit.
pub const RECORD_BYTES_MAX: usize = EVENT_DATA_BYTES_MAX + 4096;

/// A validated ticket id such as `MC-4030`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketId(String);

impl TicketId {
    pub fn parse(s: &str) -> Result<TicketId, InvalidId> {
        if is_ticket_id(s) {
            Ok(TicketId(s.to_owned()))
        } else {
            Err(InvalidId::Ticket(truncate_for_message(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number after the dash (`4030` for `MC-4030`), used in turn nonces.
    pub fn number(&self) -> &str {
        self.0.rsplit_once('-').map_or("", |(_, n)| n)
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TicketId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_ticket_id(&s) {
            Ok(TicketId(s))
        } else {
            Err(InvalidId::Ticket(truncate_for_message(&s)))
        }
    }
}

impl From<TicketId> for String {
    fn from(t: TicketId) -> String {
        t.0
    }
}

/// `^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$`, by hand: no regex engine for one pattern.
pub fn is_ticket_id(s: &str) -> bool {
    let Some((prefix, number)) = s.split_once('-') else {
        return false;
    };
    let mut prefix_chars = prefix.bytes();
    let first_ok = matches!(prefix_chars.next(), Some(b'A'..=b'Z'));
    first_ok
        && prefix.len() <= 16
        && prefix_chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && (1..=9).contains(&number.len())
        && number.bytes().all(|c| c.is_ascii_digit())
}

/// Pool names: 1..=64 bytes of `[A-Za-z0-9_.-]`.
pub const POOL_NAME_BYTES_MAX: usize = 64;

pub fn is_pool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= POOL_NAME_BYTES_MAX
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The prefix of pool streams; no ticket may use it.
pub const POOL_STREAM_PREFIX: &str = "POOL";

/// The stream a pool's events live on: `POOL-<9 digits of blake3(name)>`, so every replica
/// finds it from the name alone and two racing creates of one pool meet on one stream. Two
/// names whose digits collide (a chance in 10^9 per pair) are told apart by the name their
/// `pool.configured` records: the second is refused.
pub fn pool_stream(name: &str) -> TicketId {
    named_stream(POOL_STREAM_PREFIX, name)
}

/// The prefix of subscription streams; no ticket may use it.
pub const SUBSCRIPTION_STREAM_PREFIX: &str = "SUB";

/// The stream a subscription's events live on: `SUB-<9 digits of blake3(name)>`, found from
/// the name alone as a pool's is.
pub fn subscription_stream(name: &str) -> TicketId {
    named_stream(SUBSCRIPTION_STREAM_PREFIX, name)
}

/// The prefix of budget streams; no ticket may use it.
pub const BUDGET_STREAM_PREFIX: &str = "BUDGET";

/// The stream a budget's events live on: `BUDGET-<9 digits of blake3(name)>`, found from the
/// name alone as a pool's is. Budget names follow pool names' rules ([`is_pool_name`]).
pub fn budget_stream(name: &str) -> TicketId {
    named_stream(BUDGET_STREAM_PREFIX, name)
}

/// The task id a mirrored to-do gets (SPEC §19): `todo-` and 12 hex digits of blake3 of its
/// text, so the same to-do sent again (every `TodoWrite` sends the whole list) is the same task.
pub fn todo_task_id(text: &str) -> String {
    let digest = blake3::hash(text.as_bytes());
    format!("todo-{}", &digest.to_hex()[..12])
}

fn named_stream(prefix: &str, name: &str) -> TicketId {
    let digest = blake3::hash(name.as_bytes());
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&digest.as_bytes()[..8]);
    TicketId(format!(
        "{prefix}-{:09}",
        u64::from_le_bytes(eight) % 1_000_000_000
    ))
}

fn has_prefix(id: &TicketId, wanted: &str) -> bool {
    id.as_str()
        .split_once('-')
        .is_some_and(|(prefix, _)| prefix == wanted)
}

/// A stream of a pool, not a ticket.
pub fn is_pool_stream(id: &TicketId) -> bool {
    has_prefix(id, POOL_STREAM_PREFIX)
}

/// A stream of a subscription, not a ticket.
pub fn is_subscription_stream(id: &TicketId) -> bool {
    has_prefix(id, SUBSCRIPTION_STREAM_PREFIX)
}

/// A stream of a budget, not a ticket.
pub fn is_budget_stream(id: &TicketId) -> bool {
    has_prefix(id, BUDGET_STREAM_PREFIX)
}

/// A stream of a pool, a subscription or a budget: no ticket may be opened on it.
pub fn is_reserved_stream(id: &TicketId) -> bool {
    is_pool_stream(id) || is_subscription_stream(id) || is_budget_stream(id)
}

/// Event ids: 1..=64 bytes of `[A-Za-z0-9_.:-]`.
pub fn is_event_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= EVENT_ID_BYTES_MAX
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error(
        "invalid ticket id {0:?}: expected e.g. MC-4030 (^[A-Z][A-Z0-9]{{0,15}}-[0-9]{{1,9}}$)"
    )]
    Ticket(String),
}

/// Keep error messages bounded whatever a client sent.
pub fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids() {
        for ok in ["MC-4030", "A-0", "ABCDEFGHIJKLMNOP-123456789", "X1-1"] {
            assert!(is_ticket_id(ok), "{ok}");
        }
        for bad in [
            "",
            "mc-1",
            "MC",
            "MC-",
            "-1",
            "1MC-1",
            "MC-1234567890",
            "ABCDEFGHIJKLMNOPQ-1",
            "MC-12a",
            "MC_1",
            "MC-1-2",
            "MÇ-1",
        ] {
            assert!(!is_ticket_id(bad), "{bad}");
        }
        assert_eq!(TicketId::parse("MC-4030").unwrap().number(), "4030");
    }

    #[test]
    fn event_ids() {
        assert!(is_event_id("01JD3Z9K-abc_def.1:2"));
        assert!(!is_event_id(""));
        assert!(!is_event_id("has space"));
        assert!(!is_event_id(&"a".repeat(65)));
    }
}
