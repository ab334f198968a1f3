//! mc-ledger's HTTP server: it translates HTTP to the application layer (`service`) and back.
//! The router and every route's declared operation (`server`, `access`), the middleware that
//! turns a token into a caller (`auth`), the command table (`commands`), the read handlers
//! (`reads`), the event stream (`sse`), agents' hooks (`hooks`), token management (`admin`),
//! errors as problem+json (`error`, `extract`), subscriptions (`subscriptions`), the OpenAPI
//! document (`openapi`) and the
//! operator console (`console`). The rules it applies are the pure `projections` crate's; it
//! reads the clock and stores events only through `service`.

pub mod access;
pub mod admin;
pub mod auth;
pub mod commands;
pub mod console;
pub mod error;
pub mod extract;
pub mod hooks;
pub mod openapi;
pub mod reads;
pub mod restart;
pub mod server;
pub mod sse;
pub mod state;
pub mod subscriptions;
