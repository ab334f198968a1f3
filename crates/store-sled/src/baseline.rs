//! The storage engine's own ceiling, for benchmarks: raw sled inserts of given values with one
//! flush per `flush_every` inserts. It lives here because only this crate touches sled.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::durable::{Durability, SyncTarget};

/// Inserts every value under a fresh big-endian counter key, flushing every `flush_every`
/// inserts and once at the end, with the same meaning of "flush" as the log under
/// `durability`; returns the elapsed time.
pub fn raw_sled_inserts(
    dir: &Path,
    values: &[Vec<u8>],
    flush_every: usize,
    durability: Durability,
) -> Result<Duration, sled::Error> {
    let db = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("baseline")?;
    let mut sync = match durability {
        Durability::Fsync => Some(SyncTarget::open(dir)?),
        Durability::SledFlush => None,
    };
    let mut flush = |db: &sled::Db| -> Result<(), sled::Error> {
        db.flush()?;
        if let Some(sync) = sync.as_mut() {
            sync.sync()?;
        }
        Ok(())
    };
    let start = Instant::now();
    for (i, value) in values.iter().enumerate() {
        let key = u64::try_from(i).unwrap_or(u64::MAX).to_be_bytes();
        tree.insert(key, value.as_slice())?;
        if (i + 1) % flush_every.max(1) == 0 {
            flush(&db)?;
        }
    }
    flush(&db)?;
    Ok(start.elapsed())
}
