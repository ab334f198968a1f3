//! Opening a log: the head of the chain from the last commit blob, and the in-memory index
//! from the checkpoints plus the records after the last one (or from every record, when a
//! checkpoint does not fit).

use events::envelope::Hash;
use store::LogError;

use crate::blob::{
    checkpoint_key, hash_at, log_key, position_of_key, storage, BlobRecords, TAG_CHECKPOINT,
};
use crate::disk::Disk;
use crate::index::{id_hash, Checkpoint, Index};

/// The position and hash of the last record: the last blob's last record.
pub(crate) fn recover_head(tree: &sled::Tree) -> Result<(u64, Hash), LogError> {
    let last = tree
        .range(log_key(0)..=log_key(u64::MAX))
        .next_back()
        .transpose()
        .map_err(storage)?;
    let Some((key, blob)) = last else {
        return Ok((0, Hash::ZERO));
    };
    let first = position_of_key(&key)?;
    let mut last = None;
    for record in BlobRecords::new(first, &blob)? {
        last = Some(record?.0);
    }
    let last = last.ok_or_else(|| LogError::corrupt(first, "empty commit blob"))?;
    Ok((last.position, last.hash))
}

/// Rebuilds the index: the disk index up to its base (when it fits this log), the checkpoints
/// after it, then the records after the last one. Returns the index and the records not yet
/// checkpointed (the next checkpoint's start).
///
/// Checkpoints and the disk index are derived data and the records stay the source of truth:
/// if a checkpoint is unreadable or does not fit the records, every checkpoint and the disk
/// index are dropped and the whole index is rebuilt from the records (slow once; the next
/// checkpoints repair it).
pub(crate) fn load_index(
    tree: &sled::Tree,
    head: u64,
    disk: Option<Disk>,
) -> Result<(Index, Checkpoint), LogError> {
    // A disk index that cannot answer is left out: the checkpoints hold everything it does.
    let (disk, base) = match disk.map(|d| (fitting_base(tree, &d, head), d)) {
        Some((Ok(base), d)) => (Some(d), base),
        Some((Err(e), _)) => {
            tracing::warn!(error = %e, "the disk index cannot be read; the log's index stays in memory");
            (None, 0)
        }
        None => (None, 0),
    };
    let with_disk = disk.is_some();
    let loaded = load_with_checkpoints(tree, head, Index::on(disk.clone(), base));
    let loaded = match loaded {
        Err(e) if with_disk && disk.as_ref().is_some_and(Disk::broken) => {
            tracing::warn!(error = %e, "the disk index failed while the log opened; the log's index stays in memory");
            load_with_checkpoints(tree, head, Index::on(None, 0))
        }
        other => other,
    };
    match loaded {
        Ok(loaded) => Ok(loaded),
        Err(_) => {
            for key in tree.scan_prefix([TAG_CHECKPOINT]).keys() {
                tree.remove(key.map_err(storage)?).map_err(storage)?;
            }
            let disk = disk.filter(|d| !d.broken() && d.clear().is_ok());
            let mut index = Index::on(disk, 0);
            let mut pending = Checkpoint::new(1);
            index_records_after(tree, &mut index, &mut pending, head)?;
            Ok((index, pending))
        }
    }
}

/// The disk index's base if it fits this log (at or below the head, and the record there has
/// the hash it names); otherwise it is cleared and 0.
fn fitting_base(tree: &sled::Tree, disk: &Disk, head: u64) -> Result<u64, LogError> {
    let (base, hash) = disk.base()?;
    // Entries above the head: the log lost a tail the index had seen.
    let last = disk.last_position()?;
    if base == 0 && last == 0 {
        return Ok(0);
    }
    let fits = base > 0
        && base <= head
        && last <= head
        && disk
            .locate(base)
            .ok()
            .flatten()
            .and_then(|loc| hash_at(tree, loc.blob_first, base).ok())
            == Some(hash);
    if fits {
        return Ok(base);
    }
    tracing::warn!(
        base,
        head,
        "the disk index does not fit the log; rebuilding it from the checkpoints"
    );
    disk.clear()?;
    Ok(0)
}

fn load_with_checkpoints(
    tree: &sled::Tree,
    head: u64,
    mut index: Index,
) -> Result<(Index, Checkpoint), LogError> {
    let base = index.base();
    for entry in tree.range(checkpoint_key(base + 1)..=checkpoint_key(u64::MAX)) {
        let (key, value) = entry.map_err(storage)?;
        let next = index.len() + 1;
        let checkpoint = Checkpoint::decode(&value)
            .map_err(|e| LogError::corrupt(next, format!("checkpoint: {e}")))?;
        if checkpoint.first != next
            || checkpoint.last() > head
            || position_of_key(&key)? != checkpoint.last()
        {
            return Err(LogError::corrupt(next, "checkpoint does not follow on"));
        }
        index.apply(&checkpoint)?;
    }
    let mut pending = Checkpoint::new(index.len() + 1);
    index.start_window(index.len() + 1);
    index_records_after(tree, &mut index, &mut pending, head)?;
    Ok((index, pending))
}

/// Indexes every record after what `index` holds, reading the blobs; they must follow on.
fn index_records_after(
    tree: &sled::Tree,
    index: &mut Index,
    pending: &mut Checkpoint,
    head: u64,
) -> Result<(), LogError> {
    for entry in tree.range(log_key(index.len() + 1)..=log_key(u64::MAX)) {
        let (key, blob) = entry.map_err(storage)?;
        let first = position_of_key(&key)?;
        let next = index.len() + 1;
        if first != next {
            return Err(LogError::corrupt(
                next,
                format!("next commit blob starts at {first}: a gap or overlap"),
            ));
        }
        for record in BlobRecords::new(first, &blob)? {
            let (event, offset, len) = record?;
            let id = id_hash(&event.id);
            if index.version(&event.ticket)? + 1 != event.version {
                return Err(LogError::corrupt(
                    event.position,
                    "stream version out of order",
                ));
            }
            index.push(first, &event.ticket, event.version, id, offset, len);
            pending.push(first, &event.ticket, id, len);
        }
    }
    if index.len() != head {
        return Err(LogError::corrupt(
            index.len() + 1,
            "records end before the head",
        ));
    }
    Ok(())
}
