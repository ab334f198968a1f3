//! mc-ledger's HTTP server: the router, the command and read handlers, auth, SSE, errors,
//! metrics, projection snapshots and rebuilds. It reads the clock and speaks JSON over the
//! wire; the rules it applies are the pure `projections` crate's, and it stores events only
//! through the `store` traits.

pub mod access;
pub mod admin;
pub mod auth;
pub mod commands;
pub mod console;
pub mod error;
pub mod extract;
pub mod home;
pub mod hooks;
pub mod metrics;
pub mod openapi;
pub mod reads;
pub mod rebuild;
pub mod runtime_token;
pub mod server;
pub mod snapshot;
pub mod sse;
pub mod state;
