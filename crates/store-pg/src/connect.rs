//! Connections and what their failures mean: a lost connection is "unavailable" (retry), a
//! refused statement a storage failure; every round trip is bounded in time.

use std::time::Duration;

use store::LogError;
use tokio_postgres::{Client, NoTls};

use crate::config::{PgConfig, CONNECT_TIMEOUT};

/// A PostgreSQL error as the log's error: a lost connection is "unavailable" (503, retry),
/// anything else a storage failure.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> LogError {
    pg_error_ref(&e)
}

/// An error that means the connection (or the server) went away, as opposed to a statement
/// the server refused: SQLSTATE class 08, admin/crash shutdown and "starting up" (57P01-03).
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    }) || e.to_string().contains("connection closed")
}

fn pg_error_ref(e: &tokio_postgres::Error) -> LogError {
    // SQLSTATE classes 08 (connection exception), 53 (insufficient resources: a full disk,
    // too many connections), 57 (operator intervention: shutdown, crash, starting up) and 58
    // (system error: an I/O error) pass: 503, and a keyed retry once the database recovers.
    let transient = e.code().is_none_or(|c| {
        ["08", "53", "57", "58"]
            .iter()
            .any(|class| c.code().starts_with(class))
    });
    if e.is_closed() || transient {
        LogError::Unavailable(format!("{e:#}"))
    } else {
        LogError::Storage(format!("{e:#}"))
    }
}

/// Connects, start-up and authentication included, within [`CONNECT_TIMEOUT`] (the driver's
/// own connect timeout covers only the TCP connect: a server that accepts and then says
/// nothing would hang here).
pub(crate) async fn connect(config: &PgConfig) -> Result<Client, LogError> {
    let pg = config.connection();
    let connecting = pg.connect(NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => connected.map_err(pg_error)?,
        Err(_) => {
            return Err(LogError::Unavailable(format!(
                "PostgreSQL did not complete a connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// How long a read of records older than the tail may wait for PostgreSQL.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a round trip that gets no answer within [`READ_TIMEOUT`] becomes: the database (or
/// the network to it) stopped answering, though the connection may look open (a proxy or a
/// NAT that still acknowledges TCP).
pub(crate) fn no_answer() -> LogError {
    LogError::Unavailable(format!(
        "PostgreSQL did not answer within {} s",
        READ_TIMEOUT.as_secs()
    ))
}

/// A round trip bounded by [`READ_TIMEOUT`].
pub(crate) async fn answered<T>(
    round_trip: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, LogError> {
    match tokio::time::timeout(READ_TIMEOUT, round_trip).await {
        Ok(answer) => answer.map_err(pg_error),
        Err(_) => Err(no_answer()),
    }
}
