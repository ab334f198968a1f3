//! sled's errors as the log's [`LogError`]s (every part of the crate maps them the same way).

use store::LogError;

/// A sled error as the log's: the disk refusing a read or a write (full, failing) is
/// `Unavailable` (503, retry later), anything else a storage error.
pub(crate) fn storage(e: sled::Error) -> LogError {
    match e {
        sled::Error::Io(io) => LogError::Unavailable(format!("the disk refused: {io}")),
        // A page sled cannot read back (its checksum): where in the log is not known here.
        sled::Error::Corruption { .. } => LogError::corrupt(
            0,
            "the log's files are damaged (a page fails its checksum): `mc-ledger verify --all` \
             names what is lost, `mc-ledger salvage` copies the rest",
        ),
        other => LogError::Storage(other.to_string()),
    }
}
