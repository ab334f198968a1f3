//! Subscriptions' checkpoints and leases in the shared schema (SPEC §15): exactly one replica
//! delivers a subscription at a time.
//!
//! A lease is a row (`holder`, `epoch`, `expires_at` by the database's clock, so replicas'
//! clocks do not matter). A replica takes it when it is free or expired, which bumps `epoch`;
//! its holder renews it with every save. Saves are fenced: `UPDATE … WHERE holder = $me AND
//! epoch = $mine`, so a holder that was paused past its lease and lost it to another replica
//! can no longer move the position. What the fence cannot stop is one HTTP request already on
//! its way when the pause began: the receiver may then get one delivery twice, with the same
//! `webhook-id` (`docs/decisions.md`).

use std::sync::Arc;

use store::{Checkpoints, Lease, LogError};
use tokio_postgres::Client;

use crate::connect::{answered, connect};
use crate::replica::Inner;

pub(crate) struct PgCheckpoints {
    pub(crate) inner: Arc<Inner>,
}

fn millis(ttl_ms: u64) -> i64 {
    i64::try_from(ttl_ms).unwrap_or(i64::MAX)
}

fn epoch(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgCheckpoints {
    /// Runs one statement on the leases' own connection (reconnecting once it broke).
    fn on_connection<T: Send>(
        &self,
        f: impl for<'c> FnOnce(
                &'c Client,
                &'c str,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, LogError>> + Send + 'c>,
            > + Send,
    ) -> Result<T, LogError> {
        let inner = Arc::clone(&self.inner);
        self.inner.block_on(async move {
            let mut leases = inner.leases.lock().await;
            if leases.as_ref().is_none_or(Client::is_closed) {
                *leases = Some(connect(&inner.config).await?);
            }
            let client = leases.as_ref().expect("connected just now");
            let answer = f(client, &inner.config.schema).await;
            if answer.is_err() {
                *leases = None;
            }
            answer
        })
    }
}

impl Checkpoints for PgCheckpoints {
    fn acquire(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<Option<Lease>, LogError> {
        let (name, holder, ttl) = (name.to_owned(), holder.to_owned(), millis(ttl_ms));
        self.on_connection(move |client, s| {
            Box::pin(async move {
                let sql = format!(
                    "INSERT INTO {s}.checkpoints AS c (name, holder, epoch, expires_at) \
                     VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond') \
                     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                       epoch = CASE WHEN c.holder = EXCLUDED.holder THEN c.epoch ELSE c.epoch + 1 END, \
                       expires_at = EXCLUDED.expires_at \
                     WHERE c.holder = EXCLUDED.holder OR c.expires_at < now() \
                     RETURNING epoch, body"
                );
                let rows = answered(client.query(&sql, &[&name, &holder, &ttl])).await?;
                Ok(rows.first().map(|row| Lease {
                    name: name.clone(),
                    holder: holder.clone(),
                    epoch: epoch(row.get(0)),
                    body: row.get(1),
                }))
            })
        })
    }

    fn save(&self, lease: &Lease, body: &[u8], ttl_ms: u64) -> Result<bool, LogError> {
        let lease = lease.clone();
        let body = body.to_vec();
        let ttl = millis(ttl_ms);
        self.on_connection(move |client, s| {
            Box::pin(async move {
                let sql = format!(
                    "UPDATE {s}.checkpoints SET body = $4, \
                       expires_at = now() + $5::bigint * interval '1 millisecond' \
                     WHERE name = $1 AND holder = $2 AND epoch = $3"
                );
                let epoch = i64::try_from(lease.epoch).unwrap_or(i64::MAX);
                let n = answered(
                    client.execute(&sql, &[&lease.name, &lease.holder, &epoch, &body, &ttl]),
                )
                .await?;
                Ok(n == 1)
            })
        })
    }

    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        let name = name.to_owned();
        self.on_connection(move |client, s| {
            Box::pin(async move {
                let sql = format!("SELECT body FROM {s}.checkpoints WHERE name = $1");
                let rows = answered(client.query(&sql, &[&name])).await?;
                Ok(rows.first().and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
            })
        })
    }

    fn release(&self, lease: &Lease) -> Result<(), LogError> {
        let lease = lease.clone();
        self.on_connection(move |client, s| {
            Box::pin(async move {
                let sql = format!(
                    "UPDATE {s}.checkpoints SET expires_at = now() - interval '1 second' \
                     WHERE name = $1 AND holder = $2 AND epoch = $3"
                );
                let epoch = i64::try_from(lease.epoch).unwrap_or(i64::MAX);
                answered(client.execute(&sql, &[&lease.name, &lease.holder, &epoch])).await?;
                Ok(())
            })
        })
    }
}
