//! What handlers get. Read handlers get a [`ReadState`]: the projections and the tokens, no
//! store, no snapshots, nothing that can append or save, so no GET can ever write (the seeds'
//! W.7 bug). Command handlers get a [`WriteState`]: the whole [`Service`].

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use service::state::Shared;
use service::tokens::Auth;
use service::Service;

/// What read handlers get.
#[derive(Clone)]
pub struct ReadState {
    pub shared: Arc<Shared>,
    /// The tokens, for streams that check their caller's token again while they run.
    pub auth: Arc<Auth>,
}

/// What command handlers get: the service, which decides and appends.
#[derive(Clone)]
pub struct WriteState {
    pub service: Arc<Service>,
}

impl Deref for WriteState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

#[derive(Clone)]
pub struct AppState {
    pub read: ReadState,
    pub write: WriteState,
    pub auth: Arc<Auth>,
}

impl AppState {
    pub fn of(service: Arc<Service>) -> AppState {
        AppState {
            read: ReadState {
                shared: service.shared.clone(),
                auth: service.auth.clone(),
            },
            auth: service.auth.clone(),
            write: WriteState { service },
        }
    }
}

impl FromRef<AppState> for ReadState {
    fn from_ref(s: &AppState) -> ReadState {
        s.read.clone()
    }
}

impl FromRef<AppState> for WriteState {
    fn from_ref(s: &AppState) -> WriteState {
        s.write.clone()
    }
}
