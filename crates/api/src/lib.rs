//! mc-ledger's shell: the HTTP server, the command line and the benchmark harness.
//! Everything that reads the clock or speaks JSON over the wire lives here.

pub mod auth;
pub mod bench;
mod bench_http;
mod bench_peers;
mod bench_rebuild;
mod bench_soak;
pub mod cli;
pub mod client;
pub mod commands;
pub mod demo;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod reads;
pub mod rebuild;
pub mod server;
pub mod snapshot;
pub mod sse;
pub mod state;
pub mod transfer;
pub mod watch;
