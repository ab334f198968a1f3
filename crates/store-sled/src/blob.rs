//! What the log keeps in sled, shared by every part of it: the keys (`'L'` commit blobs, `'C'`
//! checkpoints; `docs/log-format.md`), the commit blob's framing and its records, and sled's
//! errors as [`LogError`]s. It names only [`crate::index`].

use events::codec;
use events::envelope::{Hash, RecordedEvent};
use events::ids::TicketId;
use store::LogError;

pub(crate) use crate::errors::storage;
use crate::index::Location;

/// The first byte of every commit blob.
pub(crate) const BLOB_FORMAT_V1: u8 = 1;
const TAG_LOG: u8 = b'L';
/// The prefix of every checkpoint key.
pub(crate) const TAG_CHECKPOINT: u8 = b'C';

/// The key of the commit blob whose first record is at `position`.
pub(crate) fn log_key(position: u64) -> [u8; 9] {
    tagged_key(TAG_LOG, position)
}

/// The key of the checkpoint that ends at position `last`.
pub(crate) fn checkpoint_key(last: u64) -> [u8; 9] {
    tagged_key(TAG_CHECKPOINT, last)
}

fn tagged_key(tag: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The position a log or checkpoint key names.
pub(crate) fn position_of_key(key: &[u8]) -> Result<u64, LogError> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LogError::corrupt(0, "malformed log key"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A sled error reading the commit blob that starts at `first`: when sled finds it corrupt
/// (its checksum), the error names the positions and tickets it holds, in words.
pub(crate) fn unreadable(
    e: sled::Error,
    first: u64,
    index: &crate::index::Index,
    tree: &sled::Tree,
) -> LogError {
    match e {
        sled::Error::Corruption { .. } => {
            let (first, last, tickets) = index
                .blob_contents(first)
                .or_else(|| checkpointed_contents(tree, first))
                .unwrap_or((first, first, Vec::new()));
            let tickets: Vec<String> = tickets.iter().map(ToString::to_string).collect();
            LogError::corrupt(
                first,
                format!(
                    "the commit holding positions {first} to {last} (tickets {}) cannot be \
                     read: its checksum does not match; `mc-ledger salvage` copies what is \
                     readable, a backup has the rest",
                    if tickets.is_empty() {
                        "unknown".to_owned()
                    } else {
                        tickets.join(", ")
                    }
                ),
            )
        }
        other => storage(other),
    }
}

pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Iterates the records of one blob, checking framing, hashes and that positions follow on.
pub(crate) struct BlobRecords<'a> {
    bytes: &'a [u8],
    offset: usize,
    next_position: u64,
}

impl<'a> BlobRecords<'a> {
    pub(crate) fn new(first: u64, blob: &'a [u8]) -> Result<BlobRecords<'a>, LogError> {
        BlobRecords::at(first, blob, 1)
    }

    /// From the record at `position`, which starts at byte `offset` of the blob.
    pub(crate) fn at(
        position: u64,
        blob: &'a [u8],
        offset: u32,
    ) -> Result<BlobRecords<'a>, LogError> {
        match blob.first() {
            Some(&BLOB_FORMAT_V1) => Ok(BlobRecords {
                bytes: blob,
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
                next_position: position,
            }),
            Some(other) => Err(LogError::corrupt(
                position,
                format!("unknown blob format {other}"),
            )),
            None => Err(LogError::corrupt(position, "empty commit blob")),
        }
    }
}

impl Iterator for BlobRecords<'_> {
    /// A record, its byte offset in the blob and its length.
    type Item = Result<(RecordedEvent, u32, u32), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.bytes.len() {
            return None;
        }
        let position = self.next_position;
        let result = codec::decode_record(&self.bytes[self.offset..])
            .map_err(|e| LogError::corrupt(position, e))
            .and_then(|(event, used)| {
                if event.position != position {
                    return Err(LogError::corrupt(
                        position,
                        format!("record says position {}", event.position),
                    ));
                }
                let offset = u32::try_from(self.offset)
                    .map_err(|_| LogError::corrupt(position, "blob too large"))?;
                let len = u32::try_from(used)
                    .map_err(|_| LogError::corrupt(position, "record too large"))?;
                self.offset += used;
                self.next_position += 1;
                Ok((event, offset, len))
            });
        if result.is_err() {
            // Stop after the first bad record: what follows cannot be framed reliably.
            self.offset = self.bytes.len();
        }
        Some(result)
    }
}

/// Decodes the record at `loc` from its blob's bytes.
pub(crate) fn decode_at(blob: &[u8], loc: Location) -> Result<RecordedEvent, LogError> {
    let start = usize::try_from(loc.offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(loc.len).unwrap_or(usize::MAX));
    let bytes = blob
        .get(start..end)
        .ok_or_else(|| LogError::corrupt(loc.blob_first, "index points past its blob"))?;
    let (event, _) =
        codec::decode_record(bytes).map_err(|e| LogError::corrupt(loc.blob_first, e))?;
    Ok(event)
}

/// The positions and tickets of the commit blob that starts at `first`, from the checkpoint
/// that covers it (for a blob the in-memory index no longer holds).
fn checkpointed_contents(tree: &sled::Tree, first: u64) -> Option<(u64, u64, Vec<TicketId>)> {
    let (_, bytes) = tree
        .range(checkpoint_key(first)..=checkpoint_key(u64::MAX))
        .next()?
        .ok()?;
    let checkpoint = crate::index::Checkpoint::decode(&bytes).ok()?;
    let mut start = checkpoint.first;
    for (blob_first, records) in checkpoint.blobs() {
        let n = u64::try_from(records.len()).ok()?;
        if blob_first == first {
            let mut tickets: Vec<TicketId> = records
                .iter()
                .filter_map(|r| checkpoint.tickets.get(usize::try_from(r.ticket).ok()?))
                .cloned()
                .collect();
            tickets.sort();
            tickets.dedup();
            return Some((first, start + n - 1, tickets));
        }
        start += n;
    }
    None
}

/// The hash of the record at `position`, in the commit blob that starts at `blob_first`.
pub(crate) fn hash_at(tree: &sled::Tree, blob_first: u64, position: u64) -> Result<Hash, LogError> {
    let blob = tree
        .get(log_key(blob_first))
        .map_err(storage)?
        .ok_or_else(|| LogError::corrupt(blob_first, "a checkpoint names a missing blob"))?;
    for record in BlobRecords::new(blob_first, &blob)? {
        let (event, _, _) = record?;
        if event.position == position {
            return Ok(event.hash);
        }
    }
    Err(LogError::corrupt(
        position,
        "a checkpoint names a missing record",
    ))
}
