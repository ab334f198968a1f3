//! Subscriptions' checkpoints in a tree of the log's own database. One process owns a sled
//! directory, so the lease is always this process's: [`Checkpoints::acquire`] never refuses.

use store::{Checkpoints, Lease, LogError};

use crate::blob::storage;

pub(crate) struct SledCheckpoints {
    pub(crate) tree: sled::Tree,
}

impl Checkpoints for SledCheckpoints {
    fn acquire(&self, name: &str, holder: &str, _ttl_ms: u64) -> Result<Option<Lease>, LogError> {
        Ok(Some(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            epoch: 1,
            body: self.load(name)?,
        }))
    }

    fn save(&self, lease: &Lease, body: &[u8], _ttl_ms: u64) -> Result<bool, LogError> {
        self.tree
            .insert(lease.name.as_bytes(), body)
            .map_err(storage)?;
        // Durable before it counts: a restart resumes from what was saved.
        self.tree.flush().map_err(storage)?;
        Ok(true)
    }

    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self
            .tree
            .get(name.as_bytes())
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    fn release(&self, _lease: &Lease) -> Result<(), LogError> {
        Ok(())
    }
}
