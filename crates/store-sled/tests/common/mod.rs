//! Shared generators and helpers for the sled store's tests: the vocabulary's generators (one
//! copy, in the events crate's tests) plus the append request the store takes.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../events/tests/common/mod.rs"]
mod vocabulary;

use events::{NewEvent, RecordedEvent};
use store::AppendRequest;
pub use vocabulary::*;

pub fn append(t: &str, expected: Option<u64>, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        also: Vec::new(),
        ticket: ticket(t),
        expected_version: expected,
        events,
    }
}

/// `append` of one comment, `id` with `body`.
pub fn append_comment(t: &str, expected: Option<u64>, id: &str, body: &str) -> AppendRequest {
    append(t, expected, vec![comment(id, body)])
}

/// `append` with a second stream in the same atomic append.
pub fn append_also(
    first: AppendRequest,
    t: &str,
    expected: Option<u64>,
    events: Vec<NewEvent>,
) -> AppendRequest {
    let mut request = first;
    request.also.push(store::StreamAppend {
        ticket: ticket(t),
        expected_version: expected,
        events,
    });
    request
}

/// The default configuration, but with a checkpoint every `events` records: reopening loads
/// the last checkpoint and rebuilds the records after it.
pub fn checkpoint_every(events: u64) -> store_sled::LogConfig {
    store_sled::LogConfig {
        checkpoint_events: events,
        ..store_sled::LogConfig::default()
    }
}

/// The positions of events read back, in order.
pub fn positions_of(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}
