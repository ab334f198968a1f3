//! `verify`: the whole chain recomputed from position 1, every record checked against the
//! in-memory index and against the persisted checkpoints.

use std::sync::RwLock;

use store::chain::ChainCheck;
use store::{LogError, VerifyReport};

use crate::blob::{log_key, position_of_key, unreadable, BlobRecords, TAG_CHECKPOINT};
use crate::index::{id_hash, Checkpoint, Index, Location};

/// Recomputes the chain from position 1 and checks every record against the in-memory index
/// and against the persisted checkpoints; the first bad position is the error.
pub(crate) fn verify_log(
    tree: &sled::Tree,
    index: &RwLock<Index>,
    durable: u64,
) -> Result<VerifyReport, LogError> {
    let mut checkpoints = Vec::new();
    let mut covered = 0u64;
    for entry in tree.scan_prefix([TAG_CHECKPOINT]) {
        let (key, value) = entry.map_err(|e| {
            let index = index
                .read()
                .expect("index lock is never poisoned: nothing panics while holding it");
            unreadable(e, covered + 1, &index, tree)
        })?;
        let checkpoint = Checkpoint::decode(&value)
            .map_err(|e| LogError::corrupt(covered + 1, format!("checkpoint: {e}")))?;
        if checkpoint.first != covered + 1 || position_of_key(&key)? != checkpoint.last() {
            return Err(LogError::corrupt(
                covered + 1,
                "checkpoint does not follow on",
            ));
        }
        covered = checkpoint.last();
        checkpoints.push(checkpoint);
    }
    let mut checkpointed = checkpoints.iter().flat_map(|cp| {
        cp.blobs()
            .flat_map(move |(blob_first, records)| records.iter().map(move |r| (cp, blob_first, r)))
    });

    // The chain and every stream's versions, record by record (`store::chain`).
    let mut chain = ChainCheck::new();
    for entry in tree.range(log_key(0)..=log_key(u64::MAX)) {
        let expected_position = chain.head().position + 1;
        let (key, blob) = entry.map_err(|e| {
            let index = index
                .read()
                .expect("index lock is never poisoned: nothing panics while holding it");
            unreadable(e, expected_position, &index, tree)
        })?;
        let first = position_of_key(&key)?;
        if first > durable {
            break;
        }
        if first != expected_position {
            return Err(LogError::corrupt(
                expected_position,
                format!("next commit blob starts at {first}: a gap or overlap"),
            ));
        }
        // One short read lock per blob, so that a verify never stalls the writer for long.
        let index = index
            .read()
            .expect("index lock is never poisoned: nothing panics while holding it");
        for record in BlobRecords::new(first, &blob)? {
            let (event, offset, len) = record?;
            let position = event.position;
            chain.push(&event)?;
            let loc = Location {
                blob_first: first,
                offset,
                len,
            };
            if index.locate(position)? != Some(loc) {
                return Err(LogError::corrupt(
                    position,
                    "position index entry missing or wrong",
                ));
            }
            let in_stream = index
                .stream(&event.ticket, event.version, event.version)?
                .first()
                .copied();
            if in_stream != Some(position) {
                return Err(LogError::corrupt(
                    position,
                    "stream index entry missing or wrong",
                ));
            }
            let id = id_hash(&event.id);
            if !index.id_candidates(id)?.contains(&position) {
                return Err(LogError::corrupt(
                    position,
                    "id index entry missing or wrong",
                ));
            }
            if position <= covered {
                let fits = checkpointed.next().is_some_and(|(cp, blob_first, r)| {
                    let ticket = usize::try_from(r.ticket)
                        .ok()
                        .and_then(|t| cp.tickets.get(t));
                    blob_first == first
                        && r.len == len
                        && r.id == id
                        && ticket == Some(&event.ticket)
                });
                if !fits {
                    return Err(LogError::corrupt(
                        position,
                        "checkpoint entry missing or wrong",
                    ));
                }
            }
        }
    }
    let events = chain.head().position;
    if events != durable {
        return Err(LogError::corrupt(
            events + 1,
            format!("records end at {events} but the durable head is {durable}"),
        ));
    }
    let (tickets, streams, ids) = index
        .read()
        .expect("index lock is never poisoned: nothing panics while holding it")
        .entries_upto(durable)?;
    if streams != events || ids != events || tickets != chain.tickets() {
        return Err(LogError::corrupt(
            events + 1,
            format!("{events} records but {streams} stream and {ids} id index entries"),
        ));
    }
    Ok(chain.report())
}
