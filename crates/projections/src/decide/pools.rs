//! Pools (SPEC §14): admission of a new runtime into a pool, and pool configuration.

use events::{EventData, PoolAdmitted, PoolConfigured, RuntimePooled};

use crate::ledger::{Ledger, Ticket};
use events::ids::POOL_NAME_BYTES_MAX;

use crate::limits::excerpt;

use super::checks::{append_named, unchanged_named};
use super::types::*;

/// A slot of `pool` for the new runtime: `runtime.pooled` after its dispatch on the ticket's
/// stream, and the pool stream's part of the append (`pool.admitted` at the pool's version,
/// so that of two racing dispatches one is re-decided); or `pool_full` with the holders.
/// `freed` are runtimes the same append ends (a replacing dispatch): their slots pass to the
/// new runtime instead of counting against it.
pub(super) fn admission(
    ledger: &Ledger,
    t: &Ticket,
    pool: Option<&str>,
    freed: &[&str],
    ctx: &Context,
    events: &mut Vec<EventData>,
) -> Result<Vec<AlsoAppend>, Rejection> {
    let Some(name) = pool else {
        return Ok(Vec::new());
    };
    let p = ledger
        .pools
        .get(name)
        .ok_or_else(|| Rejection::PoolNotFound {
            pool: excerpt(name, POOL_NAME_BYTES_MAX).to_owned(),
        })?;
    let staying = p
        .holders
        .iter()
        .filter(|h| !freed.contains(&h.as_str()))
        .count();
    if staying >= usize::try_from(p.capacity).unwrap_or(usize::MAX) {
        return Err(Rejection::PoolFull {
            pool: p.name.clone(),
            capacity: p.capacity,
            holders: p.holders.iter().cloned().collect(),
        });
    }
    events.push(EventData::RuntimePooled(RuntimePooled {
        runtime_id: ctx.runtime_id.clone(),
        pool: p.name.clone(),
    }));
    Ok(vec![AlsoAppend {
        ticket: p.stream.clone(),
        expected_version: ledger.pool_stream_version(&p.stream),
        events: vec![EventData::PoolAdmitted(PoolAdmitted {
            runtime_id: ctx.runtime_id.clone(),
            ticket: t.id.as_str().to_owned(),
        })],
    }])
}

/// The most slots a pool may have.
pub const POOL_CAPACITY_MAX: u32 = 10_000;

pub(super) fn configure_pool(
    ledger: &Ledger,
    name: &str,
    capacity: u32,
) -> Result<Decision, Rejection> {
    if !events::ids::is_pool_name(name) {
        return Err(Rejection::invalid(
            "name",
            format!("1 to {POOL_NAME_BYTES_MAX} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    if capacity > POOL_CAPACITY_MAX {
        return Err(Rejection::invalid(
            "capacity",
            format!("at most {POOL_CAPACITY_MAX}"),
        ));
    }
    let stream = events::ids::pool_stream(name);
    if let Some(other) = ledger.pool_streams.get(&stream).filter(|n| *n != name) {
        return Err(Rejection::invalid(
            "name",
            format!("{name:?} shares its stream {stream} with pool {other:?}; choose another name"),
        ));
    }
    if let Some(p) = ledger.pools.get(name) {
        let held = p.holders.len();
        if usize::try_from(capacity).unwrap_or(usize::MAX) < held {
            // Holders never outnumber the slots: shrink once they have ended.
            return Err(Rejection::PoolInUse {
                pool: p.name.clone(),
                capacity,
                holders: p.holders.iter().cloned().collect(),
            });
        }
        if p.capacity == capacity {
            return Ok(unchanged_named(ledger, stream));
        }
    }
    Ok(append_named(
        ledger,
        stream,
        EventData::PoolConfigured(PoolConfigured {
            name: name.to_owned(),
            capacity,
        }),
    ))
}
