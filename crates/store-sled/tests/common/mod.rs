//! Shared generators and helpers for the sled store's tests: the vocabulary's generators (one
//! copy, in the events crate's tests) plus the append request the store takes.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../events/tests/common/mod.rs"]
mod vocabulary;

use events::NewEvent;
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
