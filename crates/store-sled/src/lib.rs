//! The embedded store: mc-ledger's append-only log on sled, behind the [`store`] traits.
//! This crate and the other store crates are the only ones that touch a storage engine.

pub mod baseline;
pub mod durable;
mod index;
pub mod log;

pub use durable::Durability;
pub use log::{Log, LogConfig, LogReader};
