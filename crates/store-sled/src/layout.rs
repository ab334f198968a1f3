//! Where the log's records are, as every index keeps it: a record's [`Location`] in its commit
//! blob, the hash of an event id ([`IdHash`]), and the checkpoint format that persists the
//! in-memory index (`index.rs`) and feeds the disk index (`disk.rs`).

use std::collections::HashMap;

use events::ids::{TicketId, TICKET_ID_BYTES_MAX};

/// A 128-bit hash of an event id: the id index's key, also stored in checkpoints. A hit is
/// always confirmed by reading the record, so a collision can never merge two ids.
pub(crate) type IdHash = u128;

/// blake3 of the id, first 16 bytes little-endian (`store::id_index::id_hash_128`). Part of the
/// checkpoint format: never change.
pub(crate) use store::id_index::id_hash_128 as id_hash;

/// Where a record's bytes live: in which commit blob, at which byte offset, how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) blob_first: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

const CHECKPOINT_FORMAT_V1: u8 = 1;
const CHECK_BYTES: usize = 32;
/// Bytes per record in a checkpoint: len, ticket number, id hash.
const CHECKPOINT_RECORD_BYTES: usize = 4 + 4 + 16;

/// One record as a checkpoint keeps it: enough to rebuild every index without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointRecord {
    pub(crate) len: u32,
    /// Index into the checkpoint's ticket table.
    pub(crate) ticket: u32,
    pub(crate) id: IdHash,
}

/// The index of positions `first..=last`, which are whole commit blobs.
///
/// ```text
/// checkpoint := format:u8=1 first:u64le last:u64le
///               tickets:u32le (len:u8 ticket_bytes)*
///               blobs:u32le   (blob_first:u64le records:u32le)*
///               (len:u32le ticket:u32le id_hash:[u8;16])*     one per position, in order
///               check:[u8;32]                                  blake3 of everything before
/// ```
#[derive(Debug, Default)]
pub(crate) struct Checkpoint {
    pub(crate) first: u64,
    pub(crate) tickets: Vec<TicketId>,
    ticket_numbers: HashMap<TicketId, u32>,
    /// `(blob_first, records in it)`, ascending.
    pub(crate) blob_sizes: Vec<(u64, u32)>,
    pub(crate) records: Vec<CheckpointRecord>,
}

impl Checkpoint {
    pub(crate) fn new(first: u64) -> Checkpoint {
        Checkpoint {
            first,
            ..Checkpoint::default()
        }
    }

    /// Positions it covers.
    pub(crate) fn count(&self) -> u64 {
        u64::try_from(self.records.len()).unwrap_or(u64::MAX)
    }

    /// Last position covered (`first - 1` when empty).
    pub(crate) fn last(&self) -> u64 {
        self.first + self.count() - 1
    }

    /// Records the next position, which lives in blob `blob_first`.
    pub(crate) fn push(&mut self, blob_first: u64, ticket: &TicketId, id: IdHash, len: u32) {
        match self.blob_sizes.last_mut() {
            Some((first, n)) if *first == blob_first => *n += 1,
            _ => self.blob_sizes.push((blob_first, 1)),
        }
        let ticket = match self.ticket_numbers.get(ticket) {
            Some(&n) => n,
            None => {
                let n = u32::try_from(self.tickets.len())
                    .expect("fewer than 2^32 tickets per checkpoint");
                self.tickets.push(ticket.clone());
                self.ticket_numbers.insert(ticket.clone(), n);
                n
            }
        };
        self.records.push(CheckpointRecord { len, ticket, id });
    }

    /// Each blob's first position and its records.
    pub(crate) fn blobs(&self) -> impl Iterator<Item = (u64, &[CheckpointRecord])> + '_ {
        let mut rest = self.records.as_slice();
        self.blob_sizes.iter().map(move |&(first, n)| {
            let (these, more) =
                rest.split_at(usize::try_from(n).unwrap_or(usize::MAX).min(rest.len()));
            rest = more;
            (first, these)
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 16
                + 8
                + self.tickets.len() * 16
                + self.blob_sizes.len() * 12
                + self.records.len() * CHECKPOINT_RECORD_BYTES
                + CHECK_BYTES,
        );
        let n32 =
            |n: usize| u32::try_from(n).expect("checkpoint tables hold fewer than 2^32 entries");
        out.push(CHECKPOINT_FORMAT_V1);
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.last().to_le_bytes());
        out.extend_from_slice(&n32(self.tickets.len()).to_le_bytes());
        for t in &self.tickets {
            let bytes = t.as_str().as_bytes();
            out.push(u8::try_from(bytes.len()).expect("ticket ids are at most 26 bytes"));
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&n32(self.blob_sizes.len()).to_le_bytes());
        for (first, n) in &self.blob_sizes {
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        for r in &self.records {
            out.extend_from_slice(&r.len.to_le_bytes());
            out.extend_from_slice(&r.ticket.to_le_bytes());
            out.extend_from_slice(&r.id.to_le_bytes());
        }
        let check = blake3::hash(&out);
        out.extend_from_slice(check.as_bytes());
        out
    }

    /// Decodes and checks a checkpoint: its own hash, its tables and its shape.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        let body_len = bytes
            .len()
            .checked_sub(CHECK_BYTES)
            .ok_or("checkpoint truncated")?;
        let (body, check) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != check {
            return Err("checkpoint hash does not match its bytes".into());
        }
        let mut r = Reader { bytes: body };
        if r.u8()? != CHECKPOINT_FORMAT_V1 {
            return Err("unknown checkpoint format".into());
        }
        let first = r.u64()?;
        let last = r.u64()?;
        if first == 0 || last < first {
            return Err(format!("checkpoint covers {first}..={last}"));
        }
        let mut cp = Checkpoint::new(first);
        let tickets = r.u32()?;
        for n in 0..tickets {
            let len = usize::from(r.u8()?);
            if len > TICKET_ID_BYTES_MAX {
                return Err("checkpoint ticket id too long".into());
            }
            let name =
                std::str::from_utf8(r.take(len)?).map_err(|_| "checkpoint ticket id not UTF-8")?;
            let ticket = TicketId::parse(name).map_err(|e| e.to_string())?;
            cp.ticket_numbers.insert(ticket.clone(), n);
            cp.tickets.push(ticket);
        }
        let blobs = r.u32()?;
        let mut next = first;
        let mut total = 0u64;
        for _ in 0..blobs {
            let (blob_first, n) = (r.u64()?, r.u32()?);
            if blob_first != next || n == 0 {
                return Err(format!(
                    "checkpoint blob at {blob_first} where {next} was due"
                ));
            }
            next += u64::from(n);
            total += u64::from(n);
            cp.blob_sizes.push((blob_first, n));
        }
        if total != last - first + 1 {
            return Err(format!(
                "checkpoint has {total} records for {first}..={last}"
            ));
        }
        let expected = usize::try_from(total)
            .ok()
            .and_then(|t| t.checked_mul(CHECKPOINT_RECORD_BYTES))
            .ok_or("checkpoint too large")?;
        if r.bytes.len() != expected {
            return Err("checkpoint record table has the wrong length".into());
        }
        cp.records.reserve(usize::try_from(total).unwrap_or(0));
        for _ in 0..total {
            let len = r.u32()?;
            let ticket = r.u32()?;
            let id = u128::from_le_bytes(r.take(16)?.try_into().map_err(|_| "short id hash")?);
            if ticket >= tickets {
                return Err("checkpoint names an unknown ticket".into());
            }
            cp.records.push(CheckpointRecord { len, ticket, id });
        }
        Ok(cp)
    }
}

/// A bounds-checked cursor over checkpoint bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("checkpoint truncated".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short u32")?,
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "short u64")?,
        ))
    }
}
