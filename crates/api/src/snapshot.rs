//! Projection snapshots on disk: the folded [`Ledger`] with the position it covers, the hash
//! of the event at that position (so a snapshot never applies to another log), and the
//! projection schema version (a changed schema means rebuild, never a wrong load).
//!
//! ```text
//! "MCLSNAP1" schema:u32le position:u64le anchor:[u8;32] body:bincode-serde(Ledger)
//! ```

use std::io::Write;
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
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.extend_from_slice(&ledger.position().to_le_bytes());
    out.extend_from_slice(&anchor.0);
    bincode::serde::encode_into_std_write(ledger, &mut out, bincode::config::standard())?;
    Ok(out)
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

pub fn read(data_dir: &Path) -> Result<Loaded, Unusable> {
    let bytes = match std::fs::read(path(data_dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) => return Err(Unusable::Damaged(e.to_string())),
    };
    decode(&bytes)
}

pub fn decode(bytes: &[u8]) -> Result<Loaded, Unusable> {
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
    let position = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
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
pub fn write_atomically(data_dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(data_dir))?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}
