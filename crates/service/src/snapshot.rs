//! Projection snapshots on disk: the folded [`Ledger`] with the position it covers, the hash
//! of the event at that position (so a snapshot never applies to another log), and the
//! projection schema version (a changed schema means rebuild, never a wrong load).
//!
//! ```text
//! "MCLSNAP1" schema:u32le position:u64le anchor:[u8;32] body:bincode-serde(Ledger)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use events::Hash;
use projections::{Ledger, SCHEMA_VERSION};

const MAGIC: &[u8; 8] = b"MCLSNAP1";
const HEADER_BYTES: usize = 8 + 4 + 8 + 32;
pub const FILE_NAME: &str = "projections.snapshot";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

pub fn encode(ledger: &Ledger, anchor: Hash) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 20);
    encode_into(ledger, anchor, &mut out)?;
    Ok(out)
}

fn encode_into(ledger: &Ledger, anchor: Hash, out: &mut impl Write) -> anyhow::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&SCHEMA_VERSION.to_le_bytes())?;
    out.write_all(&ledger.position().to_le_bytes())?;
    out.write_all(&anchor.0)?;
    bincode::serde::encode_into_std_write(ledger, out, bincode::config::standard())?;
    Ok(())
}

/// Why a snapshot was not used; the caller then rebuilds from the log.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("no snapshot")]
    Missing,
    #[error("snapshot schema {found} differs from this build's {current}: rebuilding")]
    Schema { found: u32, current: u32 },
    #[error("snapshot is damaged: {0}")]
    Damaged(String),
}

pub struct Loaded {
    pub ledger: Ledger,
    pub anchor: Hash,
}

/// The snapshot kept in `home`, if it is usable.
pub fn load(home: &crate::home::Home) -> Result<Loaded, Unusable> {
    match home.read(FILE_NAME) {
        Ok(Some(bytes)) => decode(&bytes),
        Ok(None) => Err(Unusable::Missing),
        Err(e) => Err(Unusable::Damaged(format!("{e:#}"))),
    }
}

/// The position the snapshot kept in `home` says it covers, read from its header alone in a
/// directory (a whole load of a large snapshot takes seconds; on PostgreSQL the blob is read
/// whole), when the header is this build's. A whole [`load`] may still find the body unusable.
pub fn header_position(home: &crate::home::Home) -> Option<u64> {
    let header = match home {
        crate::home::Home::Dir(dir) => {
            use std::io::Read;
            let mut header = [0u8; HEADER_BYTES];
            File::open(dir.join(FILE_NAME))
                .and_then(|mut f| f.read_exact(&mut header))
                .ok()?;
            header.to_vec()
        }
        crate::home::Home::Pg(_) => home.read(FILE_NAME).ok()??,
    };
    position_in(&header).ok()
}

/// Saves a snapshot into `home`: streamed to a file for the sled store, one row for the
/// PostgreSQL store (shared by every replica; any replica's newest one serves all of them,
/// since the anchor ties it to the log).
pub fn save(home: &crate::home::Home, ledger: &Ledger, anchor: Hash) -> anyhow::Result<Saving> {
    match home {
        crate::home::Home::Dir(dir) => Ok(Saving::File(write_pending(dir, ledger, anchor)?)),
        crate::home::Home::Pg(pg) => Ok(Saving::Row(pg.clone(), encode(ledger, anchor)?)),
    }
}

/// A snapshot encoded under the projections' read lock, made durable after it is released.
pub enum Saving {
    File(Pending),
    Row(crate::home::PgBlobs, Vec<u8>),
}

impl Saving {
    pub fn commit(self) -> anyhow::Result<()> {
        match self {
            Saving::File(pending) => pending.commit(),
            Saving::Row(pg, bytes) => pg.put(FILE_NAME, bytes),
        }
    }
}

pub fn read(data_dir: &Path) -> Result<Loaded, Unusable> {
    let bytes = match std::fs::read(path(data_dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) => return Err(Unusable::Damaged(e.to_string())),
    };
    decode(&bytes)
}

/// The position a snapshot's header names, if the header is this build's (magic, schema).
fn position_in(bytes: &[u8]) -> Result<u64, Unusable> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err(Unusable::Damaged("bad header".into()));
    }
    let schema = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if schema != SCHEMA_VERSION {
        return Err(Unusable::Schema {
            found: schema,
            current: SCHEMA_VERSION,
        });
    }
    Ok(u64::from_le_bytes(
        bytes[12..20].try_into().expect("8 bytes"),
    ))
}

pub fn decode(bytes: &[u8]) -> Result<Loaded, Unusable> {
    let position = position_in(bytes)?;
    let mut anchor = [0u8; 32];
    anchor.copy_from_slice(&bytes[20..52]);
    let (ledger, _): (Ledger, usize) =
        bincode::serde::decode_from_slice(&bytes[HEADER_BYTES..], bincode::config::standard())
            .map_err(|e| Unusable::Damaged(e.to_string()))?;
    if ledger.position() != position {
        return Err(Unusable::Damaged("header and body positions differ".into()));
    }
    Ok(Loaded {
        ledger,
        anchor: Hash(anchor),
    })
}

/// Blue/green: write a new file, fsync it, then rename it over the old one, so a crash leaves
/// either the old snapshot or the new one, never a torn one.
pub fn write_atomically(data_dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let pending = Pending::create(data_dir, |f| Ok(f.write_all(bytes)?))?;
    pending.commit()
}

/// Encodes `ledger` straight into the new snapshot file, with no copy of the encoding in
/// memory (at a million events that copy was hundreds of MB). The caller holds the
/// projections only for this; [`Pending::commit`] does the fsync and the rename after.
pub fn write_pending(data_dir: &Path, ledger: &Ledger, anchor: Hash) -> anyhow::Result<Pending> {
    Pending::create(data_dir, |f| encode_into(ledger, anchor, f))
}

/// A snapshot written to its temporary file, not yet durable nor in place.
pub struct Pending {
    file: File,
    tmp: PathBuf,
    data_dir: PathBuf,
}

impl Pending {
    fn create(
        data_dir: &Path,
        write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Pending> {
        std::fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        Ok(Pending {
            file,
            tmp,
            data_dir: data_dir.to_owned(),
        })
    }

    /// fsync the new file, rename it over the old one, fsync the directory.
    pub fn commit(self) -> anyhow::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, path(&self.data_dir))?;
        File::open(&self.data_dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Home;

    #[test]
    fn the_header_alone_says_the_position_when_it_is_this_builds() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::Dir(dir.path().to_owned());
        // Given no snapshot, then no position;
        assert_eq!(header_position(&home), None);
        let bytes = encode(&Ledger::new(), Hash::ZERO).unwrap();
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes.clone();
            edit(&mut b);
            write_atomically(dir.path(), &b).unwrap();
            header_position(&home)
        };
        // given a snapshot saved at a position, then that position, from the header alone;
        assert_eq!(with(&|_| {}), Some(0));
        assert_eq!(
            with(&|b| b[12..20].copy_from_slice(&42u64.to_le_bytes())),
            Some(42)
        );
        // given another magic, another schema or a file shorter than a header, then none.
        assert_eq!(with(&|b| b[0] ^= 1), None);
        assert_eq!(with(&|b| b[8] ^= 1), None);
        assert_eq!(with(&|b| b.truncate(HEADER_BYTES - 1)), None);
    }
}
