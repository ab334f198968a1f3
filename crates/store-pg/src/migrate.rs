//! The store's own schema and its versioned migrations. Replicas that start together take a
//! transaction-scoped advisory lock, so exactly one applies a migration; a schema newer than
//! this build knows is refused (an older server must not write into a newer layout).

use store::LogError;
use tokio_postgres::Client;

use crate::connect::pg_error;

/// Migrations in order; `{s}` is the schema. Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the log and its head.
    "CREATE TABLE {s}.head (
         singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
         position bigint NOT NULL,
         hash bytea NOT NULL
     );
     INSERT INTO {s}.head (position, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
     CREATE TABLE {s}.events (
         position bigint PRIMARY KEY,
         ticket text NOT NULL,
         version bigint NOT NULL,
         id text NOT NULL UNIQUE,
         record bytea NOT NULL,
         UNIQUE (ticket, version)
     );",
    // 2: what a server keeps beside the log (the projection snapshot, the tokens), shared by
    // every replica.
    "CREATE TABLE {s}.blobs (
         name text PRIMARY KEY,
         body bytea NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now()
     );",
    // 3: subscriptions' checkpoints and the lease that lets one replica deliver each.
    "CREATE TABLE {s}.checkpoints (
         name text PRIMARY KEY,
         holder text NOT NULL,
         epoch bigint NOT NULL,
         expires_at timestamptz NOT NULL,
         body bytea
     );",
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 3;

pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), LogError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg_error)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.migrations"),
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(LogError::Storage(format!(
            "schema {schema} is at version {current}, newer than this mc-ledger knows \
             ({SCHEMA_VERSION}); upgrade mc-ledger"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if version <= current {
            continue;
        }
        tx.batch_execute(&sql.replace("{s}", schema))
            .await
            .map_err(pg_error)?;
        tx.execute(
            &format!("INSERT INTO {schema}.migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}
