//! The acknowledged head, kept outside sled (SPEC §17). sled can drop a committed tail when it
//! opens a damaged log (a commit that fails its checksum ends the log there), and nothing in
//! sled then remembers that the tail was there. So the log writes the position of its last
//! acknowledged record to `acked` (a file of its own, next to sled's, `fdatasync`'d), and an
//! open that finds the log ending before that position knows acknowledged events are missing,
//! however small the lost commits were and whether or not a projections snapshot saw them.
//!
//! A position is written only after sled's flush and the `fdatasync` of its files succeeded,
//! so the file never names a write a crash or a full disk cut off before it was acknowledged.
//! It is written off the write path, at most every `flusher::ACKED_EVERY` (one small fsync per
//! commit cost 17% of `bench append`), and at close: after a crash it may lag the log by that
//! long, which claims nothing false and leaves only a loss of the very last acknowledged
//! commits unseen by it.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file, in the log's directory.
pub const FILE: &str = "acked";
const MAGIC: &[u8; 8] = b"MCACKED1";
const LEN: usize = 24;

fn encode(position: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&position.to_le_bytes());
    let sum = blake3::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&sum.as_bytes()[..8]);
    bytes
}

fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let sum = blake3::hash(&bytes[..16]);
    if bytes[16..] != sum.as_bytes()[..8] {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// The acknowledged head recorded in `log_dir`: `None` when there is none (a log written
/// before this file existed, or with `Durability::SledFlush`) or it cannot be read whole
/// (then said in a warning: the open goes on as without one).
pub fn read(log_dir: &Path) -> Option<u64> {
    let path = log_dir.join(FILE);
    match std::fs::read(&path) {
        // Created at an open that was followed by no commit.
        Ok(bytes) if bytes.is_empty() => None,
        Ok(bytes) => {
            let position = decode(&bytes);
            if position.is_none() {
                tracing::warn!(
                    path = %path.display(),
                    "the acknowledged head is unreadable; the open cannot check for a lost tail by it"
                );
            }
            position
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the acknowledged head");
            None
        }
    }
}

/// The open file, written in place.
pub(crate) struct Acked {
    file: File,
    written: u64,
}

impl Acked {
    /// Opens (or creates) the file without writing it: what it says is the evidence the open
    /// checks (`service::open_store`), so it is left as it is until the first commit after
    /// the open, which writes that commit's position (lower, when a loss was accepted).
    pub(crate) fn open(log_dir: &Path) -> std::io::Result<Acked> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(log_dir.join(FILE))?;
        Ok(Acked { file, written: 0 })
    }

    /// Makes `position` the acknowledged head, durably, unless a later one was written since
    /// the open (flushers finish out of order).
    pub(crate) fn advance(&mut self, position: u64) -> std::io::Result<()> {
        // A commit of refusals only has no position (0): nothing to record.
        if position == 0 || (self.written != 0 && position <= self.written) {
            return Ok(());
        }
        self.record(position)
    }

    fn record(&mut self, position: u64) -> std::io::Result<()> {
        self.file.write_all_at(&encode(position), 0)?;
        self.file.sync_data()?;
        self.written = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_round_trips_and_damage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        // Given no file, when read, then there is no acknowledged head.
        assert_eq!(read(dir.path()), None);
        // Given a file that says 7, when opened again, then it still says 7 (the evidence
        // an open checks), and the first commit after writes its own position, even a lower one.
        Acked::open(dir.path()).unwrap().advance(7).unwrap();
        let mut acked = Acked::open(dir.path()).unwrap();
        assert_eq!(read(dir.path()), Some(7));
        acked.advance(5).unwrap();
        assert_eq!(read(dir.path()), Some(5));
        // When advanced to 42, then it says 42.
        acked.advance(42).unwrap();
        assert_eq!(read(dir.path()), Some(42));
        // When a flusher that finished later advances to an earlier position, then it stays.
        acked.advance(30).unwrap();
        assert_eq!(read(dir.path()), Some(42));
        // Given any one byte changed, when read, then it is None (a torn or damaged file).
        let good = std::fs::read(dir.path().join(FILE)).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(dir.path().join(FILE), &bad).unwrap();
            assert_eq!(read(dir.path()), None, "byte {i} changed");
        }
        // Given a short file, or an empty one (opened, never written), when read, then None.
        std::fs::write(dir.path().join(FILE), &good[..10]).unwrap();
        assert_eq!(read(dir.path()), None);
        std::fs::write(dir.path().join(FILE), b"").unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
