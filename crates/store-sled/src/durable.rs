//! What "flushed" means. sled's `flush` writes its log with `sync_file_range`, which puts the
//! bytes on the device but neither flushes the device's write cache nor persists file
//! metadata, and it writes large values to files under `blobs/` without syncing them at all.
//! That survives a killed process, not a power cut. SPEC §8 asks for both, so after sled's
//! flush the log `fdatasync`s sled's data file and every blob file it has not synced yet, and
//! only then acknowledges.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// How far an acknowledged append has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// sled's flush, then `fdatasync` of its files: survives SIGKILL and power loss.
    #[default]
    Fsync,
    /// sled's flush only (`sync_file_range`): survives SIGKILL and an OS crash with a
    /// write-through device, not a power cut with a volatile disk cache. For benchmarks and
    /// for deployments on battery-backed storage.
    SledFlush,
}

/// The files of one sled directory that a sync must cover.
pub(crate) struct SyncTarget {
    data: File,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl SyncTarget {
    /// Opens sled's data file and syncs the directory entries once, so the files themselves
    /// are known after a power cut.
    pub(crate) fn open(dir: &Path) -> std::io::Result<SyncTarget> {
        let data = File::open(dir.join("db"))?;
        sync_dir(dir)?;
        let blobs_dir = dir.join("blobs");
        if blobs_dir.is_dir() {
            sync_dir(&blobs_dir)?;
        }
        Ok(SyncTarget {
            data,
            blobs_dir,
            synced_blobs: HashSet::new(),
        })
    }

    /// Makes everything sled has written so far durable.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.sync_new_blobs()?;
        self.data.sync_data()
    }

    fn sync_new_blobs(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_data()?,
                    // sled removes blobs it no longer needs; a vanished one needs no sync.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        if synced_any {
            sync_dir(&self.blobs_dir)?;
        }
        // Forget blobs sled has removed, so the set stays as small as the directory.
        self.synced_blobs = present;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_blob_files_are_synced_once_and_removed_ones_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        let mut target = SyncTarget::open(dir.path()).unwrap();
        target.sync().unwrap();
        assert!(target.synced_blobs.is_empty());
        std::fs::write(dir.path().join("blobs").join("17"), b"big value").unwrap();
        target.sync().unwrap();
        assert_eq!(target.synced_blobs.len(), 1);
        std::fs::remove_file(dir.path().join("blobs").join("17")).unwrap();
        target.sync().unwrap();
        assert!(target.synced_blobs.is_empty());
    }
}
