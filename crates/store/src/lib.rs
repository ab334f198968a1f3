//! The small storage traits the rest of the system sees. The sled log (`store-sled`)
//! implements them; a PostgreSQL backend for multi-replica deployments implements the same
//! traits without touching projections or HTTP handlers.
//!
//! Reads and appends are split on purpose: read paths are handed an [`EventReader`], which has
//! no way to append, so a GET can never write (the seeds' W.7 bug).
//!
//! The store logic both stores share lives here too, pure (no IO): what an append is against
//! what a store holds ([`classify`]), placing, chaining and checking records ([`chain`]), and
//! the in-memory event-id index ([`id_index`]). The store crates keep only their IO.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use events::codec;
use events::ids::{is_event_id, ACTOR_NAME_BYTES_MAX, EVENTS_PER_APPEND_MAX, EVENT_DATA_BYTES_MAX};
use events::{NewEvent, RecordedEvent, TicketId};

pub mod chain;
pub mod checkpoints;
pub mod classify;
pub mod error;
pub mod id_index;

/// What the store core's unit tests share: a ticket id and a one-comment event.
#[cfg(test)]
mod test_support {
    use events::{Actor, ActorKind, EventData, NewEvent, TicketCommented, TicketId, Timestamp};

    pub(crate) fn t(s: &str) -> TicketId {
        TicketId::parse(s).unwrap()
    }

    pub(crate) fn new_event(id: &str) -> NewEvent {
        NewEvent {
            id: id.to_owned(),
            recorded_at: Timestamp(1_000),
            actor: Actor {
                name: "ana".into(),
                kind: ActorKind::Human,
            },
            token_id: None,
            data: EventData::TicketCommented(TicketCommented { body: "hi".into() }),
        }
    }
}

pub use checkpoints::{Checkpoints, Lease};
pub use error::LogError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Events for one stream, appended atomically; with `also`, for several streams at once.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub ticket: TicketId,
    /// The stream version the caller saw; `Some(0)` means "the stream must not exist yet".
    pub expected_version: Option<u64>,
    pub events: Vec<NewEvent>,
    /// Further streams in the same append (a dispatch into a pool writes the ticket's stream
    /// and the pool's): every stream's expected version holds or nothing is appended, and the
    /// events of all of them take one contiguous range of positions, this request's first.
    pub also: Vec<StreamAppend>,
}

/// One more stream of a multi-stream [`AppendRequest`].
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub ticket: TicketId,
    pub expected_version: Option<u64>,
    pub events: Vec<NewEvent>,
}

/// One stream's part of an append, as the stores walk them.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub ticket: &'a TicketId,
    pub expected_version: Option<u64>,
    pub events: &'a [NewEvent],
}

impl AppendRequest {
    /// One stream's append.
    pub fn new(ticket: TicketId, expected_version: Option<u64>, events: Vec<NewEvent>) -> Self {
        AppendRequest {
            ticket,
            expected_version,
            events,
            also: Vec::new(),
        }
    }

    /// Every stream's part, the first stream first.
    pub fn parts(&self) -> impl Iterator<Item = Part<'_>> {
        std::iter::once(Part {
            ticket: &self.ticket,
            expected_version: self.expected_version,
            events: &self.events,
        })
        .chain(self.also.iter().map(|a| Part {
            ticket: &a.ticket,
            expected_version: a.expected_version,
            events: &a.events,
        }))
    }

    /// Every event of every part, in the order they are appended.
    pub fn all_events(&self) -> impl Iterator<Item = &NewEvent> {
        self.parts().flat_map(|p| p.events.iter())
    }

    /// How many events the append holds.
    pub fn len(&self) -> usize {
        self.parts().map(|p| p.events.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an append did. `duplicate` is true when every event id already existed: `events`
/// are then the originals and nothing was appended.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub events: Vec<RecordedEvent>,
    pub duplicate: bool,
}

impl Appended {
    pub fn last_position(&self) -> u64 {
        self.events.last().map_or(0, |e| e.position)
    }
    pub fn last_version(&self) -> u64 {
        self.events.last().map_or(0, |e| e.version)
    }
}

/// What `verify` found in a sound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub tickets: u64,
    pub head_hash: events::Hash,
}

pub trait EventReader: Send + Sync {
    /// The last durable (acknowledged) position; 0 for an empty log.
    fn head(&self) -> u64;
    /// Number of events in a ticket's stream (0 when it has none).
    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError>;
    /// A ticket's events with version in `from_version..=to_version`, at most `limit`.
    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;
    /// Events with position > `after`, in position order, at most `limit`.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;
    fn event_by_id(&self, id: &str) -> Result<Option<RecordedEvent>, LogError>;
    /// A receiver of the last durable position: `wait_for(|p| *p > n)` is the cheap way to
    /// wait for "a position after N was committed".
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Recompute the hash chain and the indexes; the first bad position is an error.
    fn verify(&self) -> Result<VerifyReport, LogError>;
    /// Whether the store can take appends now (`/readyz`); an embedded store always can.
    fn ready(&self) -> Result<(), LogError> {
        Ok(())
    }
}

/// A store whose reads are a reader's it holds (the reader is also the handle it gives read
/// paths): its [`EventReader`] is that reader's, method for method, written once here.
pub trait ReadsThrough: Send + Sync {
    type Reader: EventReader;
    fn read_side(&self) -> &Self::Reader;
}

impl<S: ReadsThrough> EventReader for S {
    fn head(&self) -> u64 {
        self.read_side().head()
    }
    fn stream_version(&self, ticket: &TicketId) -> Result<u64, LogError> {
        self.read_side().stream_version(ticket)
    }
    fn read_stream(
        &self,
        ticket: &TicketId,
        from_version: u64,
        to_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_side()
            .read_stream(ticket, from_version, to_version, limit)
    }
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_side().read_after(after, limit)
    }
    fn event_by_id(&self, id: &str) -> Result<Option<RecordedEvent>, LogError> {
        self.read_side().event_by_id(id)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.read_side().subscribe()
    }
    fn verify(&self) -> Result<VerifyReport, LogError> {
        self.read_side().verify()
    }
    fn ready(&self) -> Result<(), LogError> {
        self.read_side().ready()
    }
}

pub trait EventStore: EventReader {
    /// The subscriptions' checkpoints and leases kept beside this log.
    fn checkpoints(&self) -> Arc<dyn Checkpoints>;
    /// Appends atomically; resolves only once the events are durable.
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, LogError>>;
    /// A handle for read paths that cannot append.
    fn reader(&self) -> Arc<dyn EventReader>;
    /// Answers every queued append, then stops taking new ones and makes everything durable.
    fn close(&self) -> Result<(), LogError> {
        Ok(())
    }
}

/// Limits every append is checked against before it reaches a store's writer (every store
/// applies the same ones, so a request is refused the same way whichever store serves it).
pub fn validate(append: &AppendRequest) -> Result<(), LogError> {
    let parts: Vec<Part<'_>> = append.parts().collect();
    for (i, part) in parts.iter().enumerate() {
        if part.events.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        if parts[..i].iter().any(|p| p.ticket == part.ticket) {
            return Err(LogError::StreamTwiceInAppend {
                ticket: part.ticket.to_string(),
            });
        }
    }
    let total = append.len();
    if total > EVENTS_PER_APPEND_MAX {
        return Err(LogError::TooManyEvents {
            count: total,
            max: EVENTS_PER_APPEND_MAX,
        });
    }
    let all: Vec<&NewEvent> = append.all_events().collect();
    for (i, event) in all.iter().enumerate() {
        check_event(event)?;
        if all[..i].iter().any(|e| e.id == event.id) {
            return Err(LogError::DuplicateIdInAppend {
                id: event.id.clone(),
            });
        }
    }
    Ok(())
}

fn check_event(event: &NewEvent) -> Result<(), LogError> {
    if !is_event_id(&event.id) {
        return Err(LogError::InvalidEventId {
            id: events::ids::truncate_for_message(&event.id),
        });
    }
    if let Some(token_id) = &event.token_id {
        if !is_event_id(token_id) {
            return Err(LogError::InvalidTokenId {
                id: events::ids::truncate_for_message(token_id),
            });
        }
    }
    if event.recorded_at > events::Timestamp::MAX {
        return Err(LogError::InvalidTimestamp {
            millis: event.recorded_at.millis(),
        });
    }
    if event.actor.name.is_empty() || event.actor.name.len() > ACTOR_NAME_BYTES_MAX {
        return Err(LogError::InvalidActor {
            max: ACTOR_NAME_BYTES_MAX,
        });
    }
    let bytes = codec::data_len(&event.data)?;
    if bytes > EVENT_DATA_BYTES_MAX {
        return Err(LogError::EventTooLarge {
            bytes,
            max: EVENT_DATA_BYTES_MAX,
        });
    }
    Ok(())
}
