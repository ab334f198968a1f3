//! mc-ledger's event vocabulary, envelope and codec, and (feature `store`) the durable
//! append-only log on sled behind the [`EventStore`] trait.
//!
//! Without the `store` feature this crate is pure data: the `projections` crate depends on it
//! that way and so never links sled or tokio.

pub mod codec;
pub mod envelope;
pub mod event;
pub mod ids;

#[cfg(feature = "store")]
pub mod baseline;
#[cfg(feature = "store")]
pub mod durable;
#[cfg(feature = "store")]
pub mod error;
#[cfg(feature = "store")]
mod index;
#[cfg(feature = "store")]
pub mod log;
#[cfg(feature = "store")]
pub mod store;

pub use envelope::{Hash, NewEvent, RecordedEvent, Timestamp};
pub use event::*;
pub use ids::{is_event_id, is_ticket_id, InvalidId, TicketId};

#[cfg(feature = "store")]
pub use durable::Durability;
#[cfg(feature = "store")]
pub use error::LogError;
#[cfg(feature = "store")]
pub use log::{Log, LogConfig, LogReader};
#[cfg(feature = "store")]
pub use store::{AppendRequest, Appended, EventReader, EventStore, VerifyReport};
