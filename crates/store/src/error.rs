//! The log's error type: stable, named variants (a `code()` each) that callers map to
//! statuses in one place.

use events::codec::CodecError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("ticket {ticket} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        ticket: String,
        expected: u64,
        actual: u64,
    },
    #[error("event id {id:?} already belongs to another append")]
    IdConflict { id: String },
    #[error("event id {id:?} appears twice in one append")]
    DuplicateIdInAppend { id: String },
    #[error("invalid event id {id:?}: 1 to 64 characters of A-Z a-z 0-9 _ . : -")]
    InvalidEventId { id: String },
    #[error("invalid actor name: 1 to {max} bytes")]
    InvalidActor { max: usize },
    #[error("invalid token id {id:?}: 1 to 64 characters of A-Z a-z 0-9 _ . : -")]
    InvalidTokenId { id: String },
    #[error("recorded_at of {millis} ms is past 9999-12-31")]
    InvalidTimestamp { millis: u64 },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("stream {ticket} appears twice in one append")]
    StreamTwiceInAppend { ticket: String },
    #[error("{count} events in one append; at most {max}")]
    TooManyEvents { count: usize, max: usize },
    #[error("event data of {bytes} bytes; at most {max}")]
    EventTooLarge { bytes: usize, max: usize },
    #[error("record at position {position} is corrupt: {detail}")]
    Corruption { position: u64, detail: String },
    #[error("the data directory is held by another process (is a server running? use --server URL): {0}")]
    Locked(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the log's writer has stopped after a storage error; restart to recover")]
    Closed,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl LogError {
    /// A stable machine-readable code; never reworded.
    pub fn code(&self) -> &'static str {
        match self {
            LogError::VersionConflict { .. } => "version_conflict",
            LogError::IdConflict { .. } => "event_id_conflict",
            LogError::DuplicateIdInAppend { .. } => "duplicate_event_id",
            LogError::InvalidEventId { .. } => "invalid_event_id",
            LogError::InvalidActor { .. } => "invalid_actor",
            LogError::InvalidTokenId { .. } => "invalid_token_id",
            LogError::InvalidTimestamp { .. } => "invalid_timestamp",
            LogError::EmptyAppend => "empty_append",
            LogError::StreamTwiceInAppend { .. } => "stream_twice_in_append",
            LogError::TooManyEvents { .. } => "too_many_events",
            LogError::EventTooLarge { .. } => "event_too_large",
            LogError::Corruption { .. } => "corrupt_record",
            LogError::Locked(_) => "data_dir_locked",
            LogError::Storage(_) => "storage",
            LogError::Closed => "log_closed",
            LogError::Unavailable(_) => "store_unavailable",
        }
    }

    /// True when the caller sent something wrong (a 4xx), false for the log's own failures.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            LogError::Corruption { .. }
                | LogError::Locked(_)
                | LogError::Storage(_)
                | LogError::Closed
                | LogError::Unavailable(_)
        )
    }

    pub fn corrupt(position: u64, e: impl std::fmt::Display) -> LogError {
        LogError::Corruption {
            position,
            detail: e.to_string(),
        }
    }
}

impl From<CodecError> for LogError {
    fn from(e: CodecError) -> LogError {
        match e {
            CodecError::TooLarge { bytes, max } => LogError::EventTooLarge { bytes, max },
            other => LogError::Corruption {
                position: 0,
                detail: other.to_string(),
            },
        }
    }
}
