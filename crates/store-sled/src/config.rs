//! The log's tuning: queue and commit sizes, the page cache, checkpoints, flushers and
//! durability. Re-exported as `store_sled::LogConfig` and `store_sled::log::LogConfig`.

use crate::durable::Durability;

/// Tuning of the writer; the defaults suit a 2-core machine with 64 concurrent appenders.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Appends waiting for the writer; beyond this, appenders wait (back-pressure).
    pub queue_appends_max: usize,
    /// Appends packed into one commit (one flush).
    pub batch_appends_max: usize,
    /// Bytes of records packed into one commit.
    pub batch_bytes_max: usize,
    /// sled page cache.
    pub cache_bytes: u64,
    /// Records between two index checkpoints; an open reads at most this many records (plus
    /// one commit) after the last checkpoint. Close always writes one.
    pub checkpoint_events: u64,
    /// Threads that apply and flush commits. More than one overlaps flushes (see `Flusher`);
    /// on the shared 2-core machine that was not measurably faster, so the default is one.
    pub flushers: usize,
    /// What a flush guarantees before appends are acknowledged (see `durable.rs`).
    pub durability: Durability,
}

/// sled's page cache unless configured (`serve --cache-mib`).
pub const DEFAULT_CACHE_MIB: u64 = 256;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            queue_appends_max: 4096,
            batch_appends_max: 1024,
            batch_bytes_max: 4 * 1024 * 1024,
            cache_bytes: DEFAULT_CACHE_MIB * 1024 * 1024,
            checkpoint_events: 65_536,
            flushers: 1,
            durability: Durability::Fsync,
        }
    }
}
