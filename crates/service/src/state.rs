//! The projections a server keeps in memory, split by what may be done with them:
//! [`Shared`] folds and reads (what read handlers get: no append, no snapshot save, no
//! rebuild), [`Snapshots`] saves them to the store's home and refolds them (what only the
//! write side and the server's own upkeep get).

use std::sync::{Arc, Mutex, RwLock};

use projections::{Config, Ledger};
use store::{EventReader, LogError};

use crate::home::Home;
use crate::snapshot;

/// Events folded per catch-up step, so a long catch-up does not hold the write lock long.
const CATCH_UP_BATCH: usize = 4096;

/// The projections and the log reader they follow. Folding new events into them on a read is
/// not a write: it only moves the in-memory view up to what is durable.
pub struct Shared {
    ledger: RwLock<Ledger>,
    /// One catch-up (or swap) at a time; readers of `ledger` are not blocked by it.
    catch_up: Mutex<()>,
    pub reader: Arc<dyn EventReader>,
    pub config: Config,
    pub metrics: crate::metrics::Metrics,
    /// Appends in flight: background work steps aside while there are any.
    pub writes: crate::pressure::Writes,
    /// Set when the log lost acknowledged events the open could not put back: the server
    /// then serves what the log kept, read-only, until it is salvaged (SPEC §17).
    pub damage: std::sync::OnceLock<crate::LostTail>,
}

impl Shared {
    pub fn new(reader: Arc<dyn EventReader>, ledger: Ledger, config: Config) -> Shared {
        Shared {
            ledger: RwLock::new(ledger),
            catch_up: Mutex::new(()),
            reader,
            config,
            metrics: crate::metrics::Metrics::default(),
            writes: crate::pressure::Writes::default(),
            damage: std::sync::OnceLock::new(),
        }
    }

    /// Whether appends may be made: not to a log that lost acknowledged events (they would
    /// take positions that were acknowledged for others), which answers 503.
    pub fn writable(&self) -> Result<(), LogError> {
        match self.damage.get() {
            None => Ok(()),
            Some(lost) => Err(LogError::Unavailable(format!(
                "{}; this server serves what the log kept, read-only, until it is salvaged \
                 (`mc-ledger salvage`, docs/operations.md)",
                lost.summary()
            ))),
        }
    }

    /// A read of `ticket` when the log lost some of its events: `corrupt_record` at the first
    /// missing position, rather than a history with a hole. When nothing names the tickets
    /// that lost events, any ticket may have: every one-ticket read answers so.
    pub fn whole(&self, ticket: &events::ids::TicketId) -> Result<(), LogError> {
        match self.damage.get() {
            Some(lost) if lost.tickets.is_empty() || lost.tickets.contains(ticket) => {
                Err(LogError::Corruption {
                    position: lost.head + 1,
                    detail: format!(
                        "ticket {ticket} may have lost events: {}; `mc-ledger salvage` copies \
                         what is whole",
                        lost.summary()
                    ),
                })
            }
            _ => Ok(()),
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
}

/// Saving and refolding the projections: the snapshot in the store's home, and rebuilds.
pub struct Snapshots {
    shared: Arc<Shared>,
    home: Home,
    /// One snapshot write at a time: they share the temporary file.
    saving: Mutex<()>,
}

impl Snapshots {
    pub fn new(shared: Arc<Shared>, home: Home) -> Snapshots {
        Snapshots {
            shared,
            home,
            saving: Mutex::new(()),
        }
    }

    /// Refolds the projections from position 1, swaps them in (blue/green: the old ones serve
    /// reads until the swap) and saves a snapshot. Returns the position and the tickets whose
    /// view the refold changed.
    pub fn rebuild(&self) -> anyhow::Result<(u64, Vec<events::TicketId>)> {
        let shared = &self.shared;
        let reader = shared.reader.as_ref();
        let mut new = crate::rebuild::fold_all(reader, |_| {})?;
        let _one = shared.catch_up.lock().unwrap_or_else(|p| p.into_inner());
        let mut old = shared.read(Ledger::clone);
        // Bring both to the same position (appends may land meanwhile).
        loop {
            crate::rebuild::catch_up_with(&mut new, reader, |_| {})?;
            crate::rebuild::catch_up_with(&mut old, reader, |_| {})?;
            if new.position() == old.position() {
                break;
            }
        }
        let position = new.position();
        let at = crate::rebuild::view_time(reader, position)?;
        let differences = crate::rebuild::differences(&old, &new, at, &shared.config);
        *shared.ledger.write().unwrap_or_else(|p| p.into_inner()) = new;
        drop(_one);
        self.save()?;
        Ok((position, differences))
    }

    /// Writes a snapshot of the projections to the store's home.
    ///
    /// Position, anchor and body come from one read of the projections: reading the position
    /// first and encoding later let a fold in between pair a newer body with an older
    /// anchor, a snapshot the next start would reject. The encoding streams to the file
    /// under the read lock; the fsync and rename happen after it is released.
    pub fn save(&self) -> anyhow::Result<u64> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        if self.shared.damage.get().is_some() {
            // The snapshot on disk is evidence of what was acknowledged: keep it for salvage.
            tracing::warn!("the log is damaged: the projections' snapshot is not replaced");
            return Ok(self.shared.read(|l| l.position()));
        }
        let (position, pending) = self.shared.read(|l| {
            let anchor = anchor_hash(self.shared.reader.as_ref(), l.position())?;
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
