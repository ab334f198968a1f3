//! Opening a log: the head of the chain from the last commit blob, and the in-memory index
//! from the checkpoints plus the records after the last one (or from every record, when a
//! checkpoint does not fit).

use events::envelope::Hash;
use store::LogError;

use crate::blob::{count, log_key, position_of_key, storage, BlobRecords, TAG_CHECKPOINT};
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

/// Rebuilds the index: checkpoints first, then the records after the last one. Returns the
/// index and the records not yet checkpointed (the next checkpoint's start).
///
/// Checkpoints are derived data and the records stay the source of truth: if a checkpoint is
/// unreadable or does not fit the records, every checkpoint is dropped and the whole index is
/// rebuilt from the records (slow once; the next checkpoint repairs it).
pub(crate) fn load_index(tree: &sled::Tree, head: u64) -> Result<(Index, Checkpoint), LogError> {
    match load_with_checkpoints(tree, head) {
        Ok(loaded) => Ok(loaded),
        Err(_) => {
            for key in tree.scan_prefix([TAG_CHECKPOINT]).keys() {
                tree.remove(key.map_err(storage)?).map_err(storage)?;
            }
            let mut index = Index::default();
            let mut pending = Checkpoint::new(1);
            index_records_after(tree, &mut index, &mut pending, head)?;
            Ok((index, pending))
        }
    }
}

fn load_with_checkpoints(tree: &sled::Tree, head: u64) -> Result<(Index, Checkpoint), LogError> {
    let mut index = Index::default();
    for entry in tree.scan_prefix([TAG_CHECKPOINT]) {
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
        index.apply(&checkpoint);
    }
    let mut pending = Checkpoint::new(index.len() + 1);
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
            index.push(first, &event.ticket, id, offset, len);
            pending.push(first, &event.ticket, id, len);
            if count(index.stream(&event.ticket).len()) != event.version {
                return Err(LogError::corrupt(
                    event.position,
                    "stream version out of order",
                ));
            }
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
