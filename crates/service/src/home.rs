//! Which store a command opens (`--store URL`), and where a server keeps what is not the log —
//! the projection snapshot and the tokens: files in the sled store's data directory, or rows
//! in the PostgreSQL store's schema, where every replica sees the same ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use store::EventStore;
use store_pg::{PgConfig, PgStore};
use store_sled::{Log, LogConfig};

/// A store named on the command line: `sled:PATH` (a data directory) or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sled(PathBuf),
    Postgres(PgConfig),
}

impl StoreUrl {
    /// `sled:PATH`, `postgres://…` or `postgresql://…` (with `?schema=NAME`, or `pg_schema`).
    pub fn parse(url: &str, pg_schema: Option<&str>) -> anyhow::Result<StoreUrl> {
        if let Some(path) = url.strip_prefix("sled:") {
            anyhow::ensure!(!path.is_empty(), "--store sled:PATH needs a path");
            return Ok(StoreUrl::Sled(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(PgConfig::parse(url, pg_schema)?));
        }
        anyhow::bail!("--store must be sled:PATH or postgres://…, not {url:?}")
    }

    /// For logs and messages: the data directory, or the database without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreUrl::Sled(dir) => format!("sled:{}", dir.display()),
            StoreUrl::Postgres(pg) => {
                let url = match (pg.url.find("://"), pg.url.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        let credentials = &pg.url[scheme + 3..at];
                        let user = credentials.split(':').next().unwrap_or("");
                        format!("{}{user}{}", &pg.url[..scheme + 3], &pg.url[at..])
                    }
                    _ => pg.url.clone(),
                };
                format!("{url} (schema {})", pg.schema)
            }
        }
    }
}

/// Where the snapshot and the tokens live.
#[derive(Clone)]
pub enum Home {
    Dir(PathBuf),
    Pg(PgBlobs),
}

/// The PostgreSQL store's named blobs, and nothing else of it: a home can read and append
/// blobs, never the event log (a read handler that reaches a home cannot write an event).
#[derive(Clone)]
pub struct PgBlobs(Arc<PgStore>);

impl PgBlobs {
    /// The blobs of a PostgreSQL store.
    pub fn of(store: Arc<PgStore>) -> PgBlobs {
        PgBlobs(store)
    }

    /// Replaces a named blob (the snapshot).
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        Ok(self.0.put_blob(name, bytes)?)
    }
}

impl Home {
    /// A named blob, if there is one.
    pub fn read(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Home::Dir(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(name).display())),
            },
            Home::Pg(pg) => Ok(pg.0.get_blob(name)?),
        }
    }

    /// Appends a line durably (a file fsynced, or one atomic UPDATE).
    pub fn append_line(&self, name: &str, line: &str) -> anyhow::Result<()> {
        match self {
            Home::Dir(dir) => {
                std::fs::create_dir_all(dir)?;
                // Owner-only: these are token hashes and the runtime-token key.
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(dir.join(name))?;
                writeln!(f, "{line}")?;
                f.sync_all()?;
                Ok(())
            }
            Home::Pg(pg) => Ok(pg.0.append_blob(name, format!("{line}\n").into_bytes())?),
        }
    }

    /// The data directory, for what only the sled store keeps in files.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Home::Dir(dir) => Some(dir),
            Home::Pg(_) => None,
        }
    }
}

/// A store opened for a command, with its home.
pub struct OpenedStore {
    pub store: Arc<dyn EventStore>,
    pub home: Home,
}

/// Opens the store a URL names: the sled log in `PATH/log`, or the PostgreSQL schema
/// (created or migrated on first use).
/// Opens a store as it is, without the check that a sled log lost no acknowledged tail:
/// commands open with [`crate::open_store`], which checks.
pub fn open_store_unchecked(url: &StoreUrl, config: LogConfig) -> anyhow::Result<OpenedStore> {
    match url {
        StoreUrl::Sled(dir) => {
            std::fs::create_dir_all(dir)?;
            let log = Log::open(&dir.join("log"), config)?;
            Ok(OpenedStore {
                store: Arc::new(log),
                home: Home::Dir(dir.clone()),
            })
        }
        StoreUrl::Postgres(pg) => {
            let store = Arc::new(
                PgStore::open(pg.clone()).with_context(|| format!("opening {}", url.describe()))?,
            );
            Ok(OpenedStore {
                store: store.clone(),
                home: Home::Pg(PgBlobs(store)),
            })
        }
    }
}
