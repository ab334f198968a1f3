//! Subscriptions from the caller's side (SPEC §15): creating or changing one keeps its
//! credentials beside the log before the fact naming them is appended, and answers a secret
//! the server generated this once. [`Checkpoint`] is what the delivery engine keeps per
//! subscription in the store and what views read of it.

use std::collections::{BTreeMap, VecDeque};

use events::{Actor, ActorKind, NoticeFormat, SubscriptionConfigured, SubscriptionFilter};
use projections::{Command, Notice, OpenAlert, Rejection};
use serde::{Deserialize, Serialize};
use store::LogError;

use crate::credentials::{self, Credentials, Secret};
use crate::execute::blocking;
use crate::tokens::Caller;
use crate::{Failure, IdempotencyKey, Outcome, Service, Writer};

/// A subscription as a client asks for it.
#[derive(Debug, Clone)]
pub struct SubscriptionInput {
    pub name: String,
    pub url: String,
    pub format: NoticeFormat,
    pub filter: SubscriptionFilter,
    pub remind_every_ms: Option<u64>,
    pub chat_id: Option<String>,
    /// `whsec_…`; left out, the subscription keeps its secret, or a new one is generated.
    pub secret: Option<String>,
}

/// The actor the delivery engine records its facts as (a parked delivery, a pause on 410).
pub fn engine_actor() -> Actor {
    Actor {
        name: "mc-ledger-notify".into(),
        kind: ActorKind::System,
    }
}

/// Delivery state of one subscription, kept in the store by whichever server delivers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The position of the fact that created the subscription this belongs to (a subscription
    /// deleted and created again starts afresh).
    pub origin: u64,
    /// Every event at or before this position was delivered or did not match.
    pub position: u64,
    /// The last replay applied (the position of its `subscription.replayed`).
    pub replay_applied: u64,
    /// Alerts the receiver was told are raised and not yet told are cleared.
    pub open: BTreeMap<String, OpenAlert>,
    /// Notices due and not yet delivered, in order.
    pub queue: VecDeque<Notice>,
    /// Failed attempts of the delivery at the head, and since when it fails (ms).
    pub attempts: u32,
    pub failing_since: Option<u64>,
    pub next_attempt_at: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    /// Deliveries answered 2xx, and attempts that failed, since the subscription began.
    pub delivered: u64,
    pub failures: u64,
    pub last_delivered_at: Option<u64>,
    /// The server that saved it (`serve-<pid>-<ulid>`).
    #[serde(default)]
    pub holder: Option<String>,
}

impl Checkpoint {
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Service {
    /// Creates or changes a subscription for a caller: authorized first, then its URL and
    /// secret kept beside the log, then the fact. The secret is answered only when the server
    /// generated it and the fact was appended now.
    pub async fn configure_subscription(
        &self,
        caller: Option<&Caller>,
        body_actor: Option<Actor>,
        input: SubscriptionInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<(Outcome, Option<String>), Failure> {
        let probe = Command::ResumeSubscription {
            name: input.name.clone(),
        };
        let writer = Writer::of(&self.shared, caller, body_actor, &probe)?;
        let invalid = |field: &'static str, message: String| Failure::Rejected {
            rejection: Rejection::Invalid { field, message },
            recorded_position: None,
        };
        let home = self.home.clone();
        let known = blocking(move || {
            credentials::load(&home).map_err(|e| LogError::Storage(e.to_string()))
        })
        .await?;
        let current = self
            .shared
            .read(|l| l.subscription(&input.name).map(|s| s.secret_id));
        let (secret, generated) = match &input.secret {
            Some(s) => (Secret::parse(s).map_err(|m| invalid("secret", m))?, false),
            None => match current
                .and_then(|id| known.get(&id))
                .and_then(Credentials::secret)
            {
                Some(kept) => (kept, false),
                None => (
                    Secret::generate().map_err(|e| Failure::Internal("secret", e.to_string()))?,
                    true,
                ),
            },
        };
        projections::decide::check_url(&input.url)?;
        let creds = Credentials::new(&input.url, &secret);
        let command = Command::ConfigureSubscription {
            config: SubscriptionConfigured {
                name: input.name,
                url: credentials::display_url(&input.url),
                format: input.format,
                filter: input.filter,
                remind_every_ms: input.remind_every_ms,
                chat_id: input.chat_id,
                secret_id: creds.id.clone(),
            },
        };
        // Decided once here to refuse a bad subscription before its credentials are kept.
        let decided = self.shared.read(|l| {
            projections::decide(
                l,
                &command,
                &projections::Context::new(crate::clock::now(), "", ""),
            )
        });
        if let Err(rejection) = decided {
            return Err(rejection.into());
        }
        if !known.contains_key(&creds.id) {
            let home = self.home.clone();
            blocking(move || {
                credentials::save(&home, &creds).map_err(|e| LogError::Storage(e.to_string()))
            })
            .await?;
        }
        let outcome = self.execute(command, writer, None, key).await?;
        let reveal = matches!(outcome, Outcome::Created(_)) && generated;
        Ok((outcome, reveal.then(|| secret.reveal())))
    }

    /// The delivery state of a subscription, as the server delivering it last saved it.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, Failure> {
        let (checkpoints, name) = (self.store.checkpoints(), name.to_owned());
        let bytes = blocking(move || checkpoints.load(&name)).await?;
        Ok(bytes.as_deref().and_then(Checkpoint::decode))
    }
}
