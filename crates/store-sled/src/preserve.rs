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
pub(crate) fn before_open(log_dir: &Path) {
    let kept = kept_dir(log_dir);
    if kept.exists() || !log_dir.join("db").is_file() {
        return;
    }
    if let Err(e) = keep(log_dir, &kept) {
        tracing::warn!(
            kept = %kept.display(),
            "could not keep the log's files aside while sled opens them ({e}); going on without"
        );
        let _ = std::fs::remove_dir_all(&kept);
    }
}

fn keep(log_dir: &Path, kept: &Path) -> std::io::Result<()> {
    // Built under a temporary name and renamed, so a kept directory is always whole.
    let building = log_dir.join("before-open.partial");
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(building.join("blobs"))?;
    let blobs = log_dir.join("blobs");
    if blobs.is_dir() {
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            std::fs::hard_link(entry.path(), building.join("blobs").join(entry.file_name()))?;
        }
    }
    std::fs::copy(log_dir.join("db"), building.join("db"))?;
    std::fs::rename(&building, kept)
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
