//! Server state. Read handlers get a [`ReadState`], which holds the projections and a log
//! *reader*: it has no way to append, so no GET can ever write (the seeds' W.7 bug). Only
//! command handlers get a [`WriteState`].

use std::sync::{Arc, Mutex, RwLock};

use axum::extract::FromRef;
use events::Timestamp;
use projections::{Config, Ledger};
use store::{EventReader, EventStore, LogError};

use crate::snapshot;

/// Events folded per catch-up step, so a long catch-up does not hold the write lock long.
const CATCH_UP_BATCH: usize = 4096;

pub struct Shared {
    ledger: RwLock<Ledger>,
    /// One catch-up at a time; readers and writers of `ledger` are not blocked by it.
    catch_up: Mutex<()>,
    /// One snapshot write at a time: they share the temporary file.
    snapshot: Mutex<()>,
    pub reader: Arc<dyn EventReader>,
    pub config: Config,
    pub metrics: crate::metrics::Metrics,
    /// Where the snapshot is kept.
    pub home: crate::home::Home,
}

impl Shared {
    pub fn new(
        reader: Arc<dyn EventReader>,
        ledger: Ledger,
        config: Config,
        home: crate::home::Home,
    ) -> Shared {
        Shared {
            ledger: RwLock::new(ledger),
            catch_up: Mutex::new(()),
            snapshot: Mutex::new(()),
            reader,
            config,
            metrics: crate::metrics::Metrics::default(),
            home,
        }
    }

    /// Folds every durable event the projections have not seen yet; returns the position.
    pub fn catch_up(&self) -> Result<u64, LogError> {
        // Fast path for reads: nothing new is durable.
        let head = self.reader.head();
        let position = self.read(|l| l.position());
        if position >= head {
            return Ok(position);
        }
        let _one = self.catch_up.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let from = self.read(|l| l.position());
            let batch = self.reader.read_after(from, CATCH_UP_BATCH)?;
            if batch.is_empty() {
                return Ok(from);
            }
            let mut ledger = self.ledger.write().unwrap_or_else(|p| p.into_inner());
            for event in &batch {
                ledger.apply(event);
            }
        }
    }

    /// Runs `f` on the current projections (never across an await).
    pub fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        let ledger = self.ledger.read().unwrap_or_else(|p| p.into_inner());
        f(&ledger)
    }

    /// Refolds the projections from position 1, swaps them in (blue/green: the old ones serve
    /// reads until the swap) and saves a snapshot. Returns the position and the tickets whose
    /// view the refold changed.
    pub fn rebuild(&self) -> anyhow::Result<(u64, Vec<events::TicketId>)> {
        let mut new = crate::rebuild::fold_all(self.reader.as_ref(), |_| {})?;
        let _one = self.catch_up.lock().unwrap_or_else(|p| p.into_inner());
        let mut old = self.read(Ledger::clone);
        // Bring both to the same position (appends may land meanwhile).
        loop {
            crate::rebuild::catch_up_with(&mut new, self.reader.as_ref(), |_| {})?;
            crate::rebuild::catch_up_with(&mut old, self.reader.as_ref(), |_| {})?;
            if new.position() == old.position() {
                break;
            }
        }
        let position = new.position();
        let at = crate::rebuild::view_time(self.reader.as_ref(), position)?;
        let differences = crate::rebuild::differences(&old, &new, at, &self.config);
        *self.ledger.write().unwrap_or_else(|p| p.into_inner()) = new;
        drop(_one);
        self.save_snapshot()?;
        Ok((position, differences))
    }

    /// Writes a snapshot of the projections to the data directory.
    ///
    /// Position, anchor and body come from one read of the projections: reading the position
    /// first and encoding later let a fold in between pair a newer body with an older
    /// anchor, a snapshot the next start would reject. The encoding streams to the file
    /// under the read lock; the fsync and rename happen after it is released.
    pub fn save_snapshot(&self) -> anyhow::Result<u64> {
        let _one = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let (position, pending) = self.read(|l| {
            let anchor = anchor_hash(self.reader.as_ref(), l.position())?;
            let pending = snapshot::save(&self.home, l, anchor)?;
            Ok::<_, anyhow::Error>((l.position(), pending))
        })?;
        pending.commit()?;
        Ok(position)
    }
}

/// The hash of the event at `position` (zeros for 0): a snapshot is only valid for the log
/// whose event at its position has this hash.
pub fn anchor_hash(reader: &dyn EventReader, position: u64) -> anyhow::Result<events::Hash> {
    if position == 0 {
        return Ok(events::Hash::ZERO);
    }
    let event = reader.read_after(position - 1, 1)?;
    event
        .first()
        .filter(|e| e.position == position)
        .map(|e| e.hash)
        .ok_or_else(|| anyhow::anyhow!("the log has no event at position {position}"))
}

/// What read handlers get.
#[derive(Clone)]
pub struct ReadState {
    pub shared: Arc<Shared>,
    /// The tokens, for streams that check their caller's token again while they run.
    pub auth: Arc<crate::auth::Auth>,
}

/// What command handlers get: the read side plus the store that appends.
#[derive(Clone)]
pub struct WriteState {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn EventStore>,
    /// For minting runtime tokens at dispatch and retry.
    pub auth: Arc<crate::auth::Auth>,
}

#[derive(Clone)]
pub struct AppState {
    pub read: ReadState,
    pub write: WriteState,
    pub auth: Arc<crate::auth::Auth>,
}

impl FromRef<AppState> for ReadState {
    fn from_ref(s: &AppState) -> ReadState {
        s.read.clone()
    }
}

impl FromRef<AppState> for WriteState {
    fn from_ref(s: &AppState) -> WriteState {
        s.write.clone()
    }
}

/// The server clock, in the only crate allowed to read it.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(ms).unwrap_or(0))
}

/// A fresh ULID string: event ids and (prefixed) runtime ids.
pub fn new_ulid() -> String {
    ulid::Ulid::new().to_string()
}

pub fn random_u32() -> u32 {
    let u = ulid::Ulid::new();
    // The low 32 bits of a ULID are random.
    u32::try_from(u.random() & 0xffff_ffff).unwrap_or(0)
}
