//! The embedded store: mc-ledger's append-only log on sled, behind the [`store`] traits.
//! This crate and the other store crates are the only ones that touch a storage engine.

pub mod acked;
pub mod baseline;
mod blob;
pub mod carve;
mod checkpoints;
mod commit;
mod config;
mod disk;
pub mod durable;
mod errors;
mod flusher;
mod index;
mod indexer;
mod layout;
pub mod log;
pub mod preserve;
mod reader;
mod recover;
mod verify;
mod writer;

pub use durable::Durability;
pub use log::{Log, LogConfig, LogReader};
