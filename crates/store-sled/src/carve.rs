//! Salvage's reader of a damaged log (SPEC §17): every record still whole in the log's files,
//! found by its own framing and hash, without opening sled.
//!
//! sled, opening a log with a damaged commit, ends the log there and drops every later
//! commit without a word, and its recovery rewrites the tail it dropped. Salvage must not
//! depend on it: each record carries its length, format, `prev_hash` and `hash`
//! (`events::codec`), so a record whose bytes hash to its stored hash is the record that was
//! written, wherever sled left it (a live page, a blob file, a stale copy not yet reclaimed).
//! The files are only read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use events::codec::{
    decode_record, decode_record_unchecked, framed_len, CodecError, RECORD_FORMAT_V1,
    RECORD_FORMAT_V2, RECORD_HEADER_BYTES,
};
use events::envelope::RecordedEvent;

/// What the log's files still hold.
#[derive(Debug, Default)]
pub struct Carved {
    /// Every whole record, by position. Copies of one record are kept once; two different
    /// records at one position (a log that went on after losing its tail, with old bytes not
    /// yet reclaimed) are both kept for the caller to choose by the chain.
    pub records: BTreeMap<u64, Vec<RecordedEvent>>,
    /// Records whose framing and body decode but whose hash does not match: what they seem to
    /// say, for the report only (never an event to keep).
    pub damaged: BTreeMap<u64, RecordedEvent>,
    /// Bytes read.
    pub bytes: u64,
}

/// Every file under `dir`, in name order (so two runs find the same copies first).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// The total size of the files [`carve`] reads (for a progress bar).
pub fn carve_size(log_dir: &Path) -> std::io::Result<u64> {
    let mut files = Vec::new();
    files_under(log_dir, &mut files)?;
    Ok(files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum())
}

/// Reads every file under `log_dir` (with the copy kept from before an open, `preserve`) and
/// collects the records in them; `progress` hears the bytes read so far after each file.
pub fn carve(log_dir: &Path, progress: &mut dyn FnMut(u64)) -> std::io::Result<Carved> {
    let mut files = Vec::new();
    files_under(log_dir, &mut files)?;
    let mut carved = Carved::default();
    for file in files {
        // A file that cannot be read is damage like any other: its records are missing.
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        carve_bytes(&bytes, &mut carved);
        carved.bytes += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        progress(carved.bytes);
    }
    Ok(carved)
}

/// The records in one file's bytes. A candidate is any offset whose format byte is known and
/// whose length fits; only a matching hash makes it a record, and a record's bytes are then
/// skipped (records of one commit follow each other).
pub fn carve_bytes(bytes: &[u8], carved: &mut Carved) {
    let mut at = 0usize;
    while at + RECORD_HEADER_BYTES <= bytes.len() {
        let here = &bytes[at..];
        let format = here[4];
        if (format == RECORD_FORMAT_V1 || format == RECORD_FORMAT_V2) && framed_len(here).is_ok() {
            match decode_record(here) {
                Ok((event, used)) => {
                    let copies = carved.records.entry(event.position).or_default();
                    if !copies.iter().any(|c| c.hash == event.hash) {
                        copies.push(event);
                    }
                    at += used;
                    continue;
                }
                Err(CodecError::HashMismatch) => {
                    if let Ok((event, _)) = decode_record_unchecked(here) {
                        carved.damaged.entry(event.position).or_insert(event);
                    }
                }
                Err(_) => {}
            }
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::codec::{encode_record, RecordHead};
    use events::envelope::Timestamp;
    use events::event::{Actor, ActorKind, EventData, TicketCommented};
    use events::ids::TicketId;
    use events::Hash;

    /// `n` chained records of ticket MC-1, framed back to back as one commit holds them.
    fn records(n: u64) -> (Vec<u8>, Vec<(usize, usize)>) {
        let ticket = TicketId::try_from("MC-1".to_owned()).unwrap();
        let actor = Actor {
            name: "test".into(),
            kind: ActorKind::System,
        };
        let mut out = Vec::new();
        let mut spans = Vec::new();
        let mut prev = Hash([0; 32]);
        for position in 1..=n {
            let start = out.len();
            let id = format!("ev-{position}");
            prev = encode_record(
                &mut out,
                &prev,
                &RecordHead {
                    position,
                    ticket: &ticket,
                    version: position,
                    id: &id,
                    recorded_at: Timestamp(1_700_000_000_000 + position),
                    actor: &actor,
                    token_id: None,
                },
                &EventData::TicketCommented(TicketCommented {
                    body: format!("comment number {position}"),
                }),
            )
            .unwrap();
            spans.push((start, out.len()));
        }
        (out, spans)
    }

    /// Given records framed among arbitrary bytes, when one byte of one record is changed,
    /// then every other record is found and the changed one is not kept: 512 random cases
    /// (seed printed; replay with `CARVE_SEED=N`).
    #[test]
    fn every_whole_record_is_found_among_noise() {
        let seed = std::env::var("CARVE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| u64::from(d.subsec_nanos()) | 1)
            });
        println!("carve seed {seed} (replay with CARVE_SEED={seed})");
        let mut x = seed;
        let mut next = move |below: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            usize::try_from(x % u64::try_from(below).unwrap()).unwrap()
        };
        for case in 0..512 {
            let n = 1 + next(11);
            let (log, spans) = records(u64::try_from(n).unwrap());
            let noise = |len: usize, next: &mut dyn FnMut(usize) -> usize| -> Vec<u8> {
                (0..len).map(|_| u8::try_from(next(256)).unwrap()).collect()
            };
            let prefix = noise(next(300), &mut next);
            let suffix = noise(next(300), &mut next);
            let victim = next(n);
            let (start, end) = spans[victim];
            let at = start + next(end - start);
            let mut bytes = prefix.clone();
            bytes.extend_from_slice(&log);
            bytes.extend_from_slice(&suffix);
            bytes[prefix.len() + at] ^= 0x5a;
            let mut carved = Carved::default();
            carve_bytes(&bytes, &mut carved);
            let found: Vec<u64> = carved.records.keys().copied().collect();
            let victim_position = u64::try_from(victim).unwrap() + 1;
            let want: Vec<u64> = (1..=u64::try_from(n).unwrap())
                .filter(|p| *p != victim_position)
                .collect();
            assert_eq!(found, want, "case {case}, seed {seed}");
        }
    }

    /// Given the same records twice (a stale copy sled has not reclaimed), when carved, then
    /// each is kept once.
    #[test]
    fn copies_are_kept_once() {
        let (log, _) = records(3);
        let mut bytes = log.clone();
        bytes.extend_from_slice(&[0, 7, 7]);
        bytes.extend_from_slice(&log);
        let mut carved = Carved::default();
        carve_bytes(&bytes, &mut carved);
        assert_eq!(carved.records.len(), 3);
        assert!(carved.records.values().all(|c| c.len() == 1));
    }

    /// Given a record whose stored hash was changed, when carved, then it is reported damaged
    /// with what it says, and not kept.
    #[test]
    fn a_record_with_a_changed_hash_is_damaged_not_kept() {
        let (mut log, spans) = records(2);
        let (start, _) = spans[1];
        log[start + 40] ^= 1;
        let mut carved = Carved::default();
        carve_bytes(&log, &mut carved);
        assert_eq!(carved.records.keys().copied().collect::<Vec<_>>(), vec![1]);
        let damaged = &carved.damaged[&2];
        assert_eq!(damaged.ticket.as_str(), "MC-1");
        assert_eq!(damaged.data.type_name(), "ticket.commented");
    }
}
