//! mc-ledger's event vocabulary, envelope and codec: pure data, no IO.
//!
//! The `projections` crate folds these types; the store crates (`store-sled`, and behind the
//! same traits any other) persist them in the codec's record format.

pub mod codec;
pub mod envelope;
pub mod event;
pub mod ids;
#[doc(hidden)]
pub mod names;
pub mod schema;

pub use envelope::{Hash, NewEvent, RecordedEvent, Timestamp};
pub use event::*;
pub use ids::{is_event_id, is_ticket_id, InvalidId, TicketId};
