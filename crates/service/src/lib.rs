//! mc-ledger's application layer: what a command does from the caller to the log and back,
//! with no HTTP in it. [`Service::submit`] authorizes a caller's command
//! (`projections::authorize`), decides it against the projections, appends it with the
//! version it was decided against (re-deciding after a lost race) and answers an
//! [`Outcome`](execute::Outcome). Around it: the token store (`tokens`, `runtime_token`), the
//! store's home (`home`: the snapshot and the tokens), the projections in memory and their
//! snapshots (`state`, `snapshot`, `rebuild`), the counters (`metrics`) and the clock
//! (`clock`). The HTTP server (`api`), the CLI and the agents' MCP server are its callers.

pub mod clock;
pub mod credentials;
pub mod execute;
pub mod home;
pub mod metrics;
pub mod pressure;
pub mod rebuild;
pub mod runtime_token;
pub mod salvage;
pub mod snapshot;
pub mod state;
pub mod subscriptions;
pub mod tokens;
pub mod turns;

use std::sync::Arc;

use projections::{Config, Ledger};
use store::{EventReader, EventStore};
use store_sled::LogConfig;

use crate::home::{open_store_unchecked, Home, OpenedStore, StoreUrl};
use crate::runtime_token::RuntimeTokens;
use crate::state::{anchor_hash, Shared, Snapshots};
use crate::tokens::Auth;

pub use execute::{Failure, IdempotencyKey, Outcome, Writer};

/// Everything a command needs: the projections, the store that appends, the tokens, the
/// snapshots and the store's home.
pub struct Service {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn EventStore>,
    pub auth: Arc<Auth>,
    pub snapshots: Arc<Snapshots>,
    /// The runtime tokens' key and index (minted at dispatch, checked when presented).
    pub runtime_tokens: Arc<RuntimeTokens>,
    pub home: Home,
    /// Taken by a command whose append also writes a pool's or a budget's stream, from its
    /// decision to its commit: such commands meet on those shared streams, so in one process
    /// they take turns (fairly, in arrival order) instead of racing and re-deciding until one
    /// gives up. Other replicas still race them; their expected versions keep that safe.
    pub admission: Arc<tokio::sync::Mutex<()>>,
    /// Commands on one stream take turns in this process ([`turns`]).
    pub turns: Arc<turns::Turns>,
}

impl Service {
    /// Opens any store: loads the snapshot from its home, folds what is newer, and loads the
    /// tokens (read again every `tokens::RELOAD_MS` for as long as the service lives).
    pub fn open(url: &StoreUrl, config: LogConfig) -> anyhow::Result<Service> {
        Service::open_inner(url, config, false)
    }

    /// [`Service::open`] for a server: a log that lost acknowledged events it cannot put back
    /// is served read-only ([`Shared::damage`]) instead of refused (SPEC §17: the server starts
    /// and serves everything else).
    pub fn open_serving(url: &StoreUrl, config: LogConfig) -> anyhow::Result<Service> {
        Service::open_inner(url, config, true)
    }

    fn open_inner(url: &StoreUrl, config: LogConfig, tolerate: bool) -> anyhow::Result<Service> {
        let started = std::time::Instant::now();
        let (OpenedStore { store, home }, lost) = open_store_tolerant(url, config)?;
        let store_s = started.elapsed().as_secs_f64();
        if let Some(lost) = &lost {
            if !tolerate {
                anyhow::bail!("{lost}");
            }
            tracing::error!(
                "{}. Serving what the log kept, read-only: every write answers 503 and the \
                 tickets named answer corrupt_record; the log's files as they were are kept in \
                 `log/before-open` for `mc-ledger salvage` (docs/operations.md)",
                lost.summary()
            );
        }
        let reader: Arc<dyn EventReader> = store.reader();
        let loading = std::time::Instant::now();
        let mut ledger = load_projections(reader.as_ref(), &home);
        let snapshot_position = ledger.position();
        if ledger.position() == 0 && reader.head() > 0 {
            // No usable snapshot: a full rebuild, with decoding pipelined against the fold.
            ledger = crate::rebuild::fold_all(reader.as_ref(), |_| {})?;
        }
        let projections_s = loading.elapsed().as_secs_f64();
        let auth = Auth::watch(&home)?;
        let shared = Arc::new(Shared::new(reader, ledger, Config::default()));
        if let Some(lost) = lost {
            let _ = shared.damage.set(lost);
        }
        let catching_up = std::time::Instant::now();
        shared.catch_up()?;
        // Where start-up time goes (SPEC §18 bounds it), with RUST_LOG=debug.
        tracing::debug!(
            store_s,
            snapshot_position,
            projections_s,
            catch_up_s = catching_up.elapsed().as_secs_f64(),
            head = shared.reader.head(),
            "opened"
        );
        let snapshots = Arc::new(Snapshots::new(shared.clone(), home.clone()));
        Ok(Service {
            shared,
            store,
            auth,
            snapshots,
            runtime_tokens: Arc::new(RuntimeTokens::default()),
            home,
            admission: Arc::default(),
            turns: Arc::default(),
        })
    }
}

/// Opens any store for a command. sled alone can lose a committed tail (PostgreSQL loses no
/// committed row by itself): a sled log that lost acknowledged events gets back what the
/// log's files still hold whole (`salvage::restore_lost_tail`), or is refused, naming the
/// loss, with the files sled had before it opened them kept for salvage
/// (`store_sled::preserve`); a whole one drops that copy. What was acknowledged is known from
/// the log's `acked` file (`store_sled::acked`), and from the projections' snapshot for a log
/// written before that file existed.
pub fn open_store(url: &StoreUrl, config: LogConfig) -> anyhow::Result<OpenedStore> {
    let (opened, lost) = open_store_tolerant(url, config)?;
    if let Some(lost) = lost {
        anyhow::bail!("{lost}");
    }
    Ok(opened)
}

/// [`open_store`], but a loss it cannot put back is answered beside the store instead of
/// refusing: the server serves what the log kept, read-only (`Shared::damage`), and keeps the
/// evidence (the log's files as they were, `acked`, the snapshot) for `salvage`.
pub fn open_store_tolerant(
    url: &StoreUrl,
    config: LogConfig,
) -> anyhow::Result<(OpenedStore, Option<LostTail>)> {
    let StoreUrl::Sled(dir) = url else {
        return Ok((open_store_unchecked(url, config)?, None));
    };
    let log_dir = dir.join("log");
    // Read before the open: the first commit after it writes the file again.
    let acked = store_sled::acked::read(&log_dir);
    let opened = open_store_unchecked(url, config)?;
    let head = opened.store.head();
    let lost = lost_tail(opened.store.reader().as_ref(), &opened.home, acked);
    // The snapshot sees a loss up to where it was saved; blob files sled deleted while it
    // opened the log say it dropped commits, wherever the snapshot was (or without one).
    if lost.is_some() || store_sled::preserve::dropped_at_open(&log_dir) {
        let known = lost.as_ref().map_or(0, |l| l.acknowledged);
        // With the acked file, records past it were never acknowledged: damage there is not a
        // loss, and what is put back must reach it, no more.
        let exact = acked.is_some();
        match salvage::restore_lost_tail(opened.store.as_ref(), &log_dir, known, exact)? {
            Ok(put_back) => {
                if put_back.events > 0 {
                    tracing::warn!(
                        from = head + 1,
                        put_back = put_back.events,
                        "sled ended the log at position {head} when it opened it (a damaged \
                         copy of a commit); every later record was whole in the log's files and \
                         is back"
                    );
                }
                if put_back.past {
                    tracing::warn!(
                        "the log's files hold records past its end that do not continue it: \
                         writes cut off before they were acknowledged, or damage. The files as \
                         they were are kept in log/before-open: `mc-ledger verify --all` names \
                         the records and `mc-ledger salvage` copies them; remove \
                         log/before-open once done"
                    );
                    return Ok((opened, None));
                }
            }
            Err(seen) => match lost {
                Some(mut lost) => {
                    lost.tickets.extend(seen);
                    lost.tickets.sort();
                    lost.tickets.dedup();
                    return Ok((opened, Some(lost)));
                }
                // Without a record of what was acknowledged, records sled cut off may be
                // writes a crash or a full disk ended before they were acknowledged: go on,
                // loudly, and keep the files for `verify --all` and `salvage`.
                None => {
                    tracing::warn!(
                        head,
                        "sled ended the log at position {head} when it opened it, and the \
                         log's files hold records past it that do not continue it whole: writes \
                         cut off before they were acknowledged, or damage. The files as they \
                         were are kept in log/before-open: `mc-ledger verify --all` names the \
                         records and `mc-ledger salvage` copies them; remove log/before-open \
                         once done"
                    );
                    return Ok((opened, None));
                }
            },
        }
    }
    store_sled::preserve::forget(&log_dir);
    Ok((opened, None))
}

/// Events the log acknowledged once and no longer has (SPEC §17): its `acked` file, or the
/// projections' snapshot, names a position past the log's head. Seen with sled: a commit that
/// fails its checksum at open ends its log there, silently, dropping every later commit.
#[derive(Debug)]
pub struct LostTail {
    pub head: u64,
    /// The last position known to have been acknowledged.
    pub acknowledged: u64,
    /// Whether that is the `acked` file's (else the snapshot's).
    pub by_acked_file: bool,
    /// Tickets the snapshot has more events of than the log (when a snapshot says so), and
    /// those of records the log's files hold past its head.
    pub tickets: Vec<events::ids::TicketId>,
}

impl LostTail {
    /// One line: where the log ends, what was acknowledged, what is missing.
    pub fn summary(&self) -> String {
        let tickets: Vec<String> = self.tickets.iter().map(ToString::to_string).collect();
        let known = if self.by_acked_file {
            "the log had acknowledged appends up to position"
        } else {
            "the projections were saved at position"
        };
        format!(
            "the log ends at position {} but {known} {}: positions {} to {} (tickets {}) were \
             acknowledged and are missing",
            self.head,
            self.acknowledged,
            self.head + 1,
            self.acknowledged,
            if tickets.is_empty() {
                "unknown".to_owned()
            } else {
                tickets.join(", ")
            }
        )
    }
}

impl std::fmt::Display for LostTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accept = if self.by_acked_file {
            "move the files `log/acked` and `projections.snapshot` aside"
        } else {
            "move the file `projections.snapshot` aside"
        };
        write!(
            f,
            "{}, so the log's files are damaged. Nothing was started. The log's files as they \
             were before this open are kept in `log/before-open`: `mc-ledger salvage --from \
             sled:DATA_DIR --to sled:NEW_DIR` copies every whole event into a new ledger, and a \
             backup has the rest (docs/operations.md); `mc-ledger serve` serves what the log \
             kept, read-only. To go on without those events instead, {accept} and start again",
            self.summary()
        )
    }
}

/// Whether the log has lost acknowledged events (see [`LostTail`]): `acked` is the position
/// the log's `acked` file names, if it has one.
pub fn lost_tail(reader: &dyn EventReader, home: &Home, acked: Option<u64>) -> Option<LostTail> {
    let head = reader.head();
    // The header first: a whole load (seconds for a large snapshot) only when it names a
    // position past the head, which is rare; a body that does not load counts as no snapshot.
    let said = snapshot::header_position(home).unwrap_or(0);
    if said.max(acked.unwrap_or(0)) <= head {
        return None;
    }
    let snapshot = snapshot::load(home).ok();
    let snapshot_position = snapshot.as_ref().map_or(0, |s| s.ledger.position());
    let acknowledged = snapshot_position.max(acked.unwrap_or(0));
    if acknowledged <= head {
        return None;
    }
    let mut tickets: Vec<events::ids::TicketId> = snapshot
        .iter()
        .flat_map(|s| s.ledger.ticket_versions())
        .filter(|(t, version)| reader.stream_version(t).is_ok_and(|v| v < *version))
        .map(|(t, _)| t.clone())
        .collect();
    tickets.sort();
    Some(LostTail {
        head,
        acknowledged,
        by_acked_file: acked.is_some_and(|a| a >= snapshot_position),
        tickets,
    })
}

/// Loads the snapshot if it belongs to this log and this schema; otherwise starts empty
/// (the caller's catch-up then folds the whole log: a rebuild).
pub fn load_projections(reader: &dyn EventReader, home: &Home) -> Ledger {
    match snapshot::load(home) {
        Ok(loaded) => {
            let position = loaded.ledger.position();
            match anchor_hash(reader, position) {
                Ok(hash) if hash == loaded.anchor => {
                    tracing::info!(position, "loaded projection snapshot");
                    loaded.ledger
                }
                _ => {
                    tracing::warn!(
                        position,
                        "snapshot does not match the log; rebuilding projections"
                    );
                    Ledger::default()
                }
            }
        }
        Err(snapshot::Unusable::Missing) => Ledger::default(),
        Err(e) => {
            tracing::warn!("{e}; rebuilding projections from the log");
            Ledger::default()
        }
    }
}
