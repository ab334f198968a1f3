//! Pools and their slots (SPEC §14): views of what the fold keeps. A slot is held by a live
//! runtime admitted into the pool (`pool.admitted`, appended with its dispatch over both
//! streams), and is free again the moment that runtime ends, by whatever path.

use events::{TicketId, Timestamp};
use serde::Serialize;

use crate::ledger::{Ledger, Pool};

/// A live runtime holding a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolHolder {
    pub runtime_id: String,
    pub ticket: TicketId,
    pub started_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub name: String,
    pub capacity: u32,
    /// The live runtimes holding slots, oldest first.
    pub holders: Vec<PoolHolder>,
    /// Slots free now (0 when the pool was shrunk below its holders).
    pub free: u32,
    /// Since when every slot has been held; null while one is free.
    pub full_since: Option<Timestamp>,
    /// The pool stream's id and version (what an `as_of` or an audit needs).
    pub stream: TicketId,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `GET /v1/pools`: every pool, by name, in one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolPage {
    pub pools: Vec<PoolView>,
    /// Always null: pools come in one page.
    pub next_cursor: Option<String>,
}

impl Ledger {
    pub fn pool(&self, name: &str) -> Option<PoolView> {
        self.pools.get(name).map(|p| self.pool_view(p))
    }

    pub fn pools(&self) -> PoolPage {
        PoolPage {
            pools: self.pools.values().map(|p| self.pool_view(p)).collect(),
            next_cursor: None,
        }
    }

    /// The runtime ids holding a slot of `name` (empty for an unknown pool).
    pub fn pool_holders(&self, name: &str) -> Vec<String> {
        self.pools
            .get(name)
            .map(|p| p.holders.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn pool_view(&self, p: &Pool) -> PoolView {
        let mut holders: Vec<PoolHolder> = p
            .holders
            .iter()
            .filter_map(|id| self.runtimes.get(id))
            .map(|r| PoolHolder {
                runtime_id: r.id.clone(),
                ticket: r.ticket.clone(),
                started_at: r.started_at,
            })
            .collect();
        holders.sort_by(|a, b| (a.started_at, &a.runtime_id).cmp(&(b.started_at, &b.runtime_id)));
        let held = u32::try_from(holders.len()).unwrap_or(u32::MAX);
        PoolView {
            name: p.name.clone(),
            capacity: p.capacity,
            free: p.capacity.saturating_sub(held),
            holders,
            full_since: p.full_since,
            stream: p.stream.clone(),
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
