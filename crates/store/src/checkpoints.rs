//! What a subscription's deliverer keeps beside the log (SPEC §15): its checkpoint (the
//! position delivered and what it was told of, opaque bytes to the store) and, where several
//! servers share one ledger, the lease that lets exactly one of them deliver it.

use crate::LogError;

/// The right to deliver one subscription, held until `ttl_ms` after the last
/// [`Checkpoints::acquire`] or [`Checkpoints::save`]. `epoch` grows each time another holder
/// takes it over, and a save under an older epoch is refused: that is the fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub epoch: u64,
    /// The checkpoint as the last holder saved it.
    pub body: Option<Vec<u8>>,
}

pub trait Checkpoints: Send + Sync {
    /// Takes the lease on `name` for `holder`, or keeps it: `None` while another holder's
    /// lease has not expired.
    fn acquire(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<Option<Lease>, LogError>;
    /// Saves the checkpoint and extends the lease; `false` (nothing saved) when the lease was
    /// taken over.
    fn save(&self, lease: &Lease, body: &[u8], ttl_ms: u64) -> Result<bool, LogError>;
    /// The checkpoint last saved, whoever holds the lease (views on any server).
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, LogError>;
    /// Gives the lease up at once (a server stopping, a subscription paused or deleted).
    fn release(&self, lease: &Lease) -> Result<(), LogError>;
}
