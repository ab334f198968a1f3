//! What sled's recovery could destroy, kept aside while it runs (SPEC §17).
//!
//! sled, opening a log, takes a commit that fails its checksum for a torn write: it ends the
//! log there, fills the rest of that segment with filler, and deletes every blob file written
//! after it. On a disk that damaged one byte, that silently throws away every later commit.
//! So before each open the log's files are kept aside, in `<log>/before-open`: hard links to
//! the blob files (sled never rewrites one) and a copy of the segment file `db` (which it
//! rewrites in place). Whoever opened the log drops them with [`forget`] once it has checked
//! that nothing acknowledged is missing; otherwise they stay for `mc-ledger salvage`, which
//! reads them as well as the log. A kept copy is never replaced by a later open's (the later
//! one may be of files already cut short); it goes when an open finds the log whole.
//!
//! Best effort: when the copy cannot be made (a full disk) the open goes on without it, with
//! a warning in the log.

use std::path::{Path, PathBuf};

/// Where the files of `log_dir` are kept while sled opens it: a directory of its own inside
/// it, which sled does not look at.
pub fn kept_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("before-open")
}

/// Keeps `log_dir`'s files aside, unless a copy is already kept or there is no log yet.
/// First takes `log_dir/owner.lock` (an exclusive lock, held by the returned file for as
/// long as the log is open): when another process holds it, that process has the log open
/// (its files are live and its own open kept them), so nothing is copied and sled's own lock
/// then refuses this open.
pub(crate) fn before_open(log_dir: &Path) -> Option<std::fs::File> {
    let owner = std::fs::create_dir_all(log_dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(log_dir.join("owner.lock"))
        })
        .ok()?;
    if owner.try_lock().is_err() {
        return None;
    }
    let kept = kept_dir(log_dir);
    if kept.exists() || !log_dir.join("db").is_file() {
        return Some(owner);
    }
    let building = log_dir.join("before-open.partial");
    if let Err(e) = keep(log_dir, &building, &kept) {
        tracing::warn!(
            kept = %kept.display(),
            "could not keep the log's files aside while sled opens them ({e}); going on without"
        );
    }
    // Whole or not, nothing half-built stays (a full disk must not stay fuller).
    let _ = std::fs::remove_dir_all(&building);
    Some(owner)
}

/// Builds the copy under `building` and renames it to `kept` once it is whole and durable.
fn keep(log_dir: &Path, building: &Path, kept: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(building);
    std::fs::create_dir_all(building.join("blobs"))?;
    let blobs = log_dir.join("blobs");
    if blobs.is_dir() {
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            std::fs::hard_link(entry.path(), building.join("blobs").join(entry.file_name()))?;
        }
    }
    std::fs::copy(log_dir.join("db"), building.join("db"))?;
    std::fs::File::open(building.join("db"))?.sync_all()?;
    std::fs::File::open(building.join("blobs"))?.sync_all()?;
    std::fs::File::open(building)?.sync_all()?;
    std::fs::rename(building, kept)?;
    std::fs::File::open(log_dir)?.sync_all()
}

/// Whether sled deleted, while it opened the log, blob files it had before: it does that to
/// the commits after one it takes for torn, so the log may have lost acknowledged ones.
pub fn dropped_at_open(log_dir: &Path) -> bool {
    let Ok(kept) = std::fs::read_dir(kept_dir(log_dir).join("blobs")) else {
        return false;
    };
    kept.flatten()
        .any(|blob| !log_dir.join("blobs").join(blob.file_name()).exists())
}

/// Drops the files kept for `log_dir`: the open found the log whole.
pub fn forget(log_dir: &Path) {
    let kept = kept_dir(log_dir);
    if kept.exists() {
        if let Err(e) = std::fs::remove_dir_all(&kept) {
            tracing::warn!(kept = %kept.display(), "could not remove the kept files: {e}");
        }
    }
}
