//! `mc-ledger salvage` and `mc-ledger verify --all` (SPEC §17): what a damaged ledger still
//! holds, copied into a new one that verifies, and a report of what was lost
//! (`service::salvage` reads and judges; this writes and prints).

use std::path::Path;

use service::home::StoreUrl;
use service::salvage::{analyse, Progress, Report, Salvaged};

use crate::transfer;

/// Reads `url`'s ledger with a progress bar on stderr.
fn read_with_progress(url: &StoreUrl) -> anyhow::Result<Salvaged> {
    let bar = transfer::bar(0, "read");
    let start = |len: u64, what: &'static str| {
        bar.set_length(len);
        bar.set_message(what);
    };
    let advance = |done: u64| bar.set_position(done);
    let salvaged = analyse(
        url,
        &Progress {
            start: &start,
            advance: &advance,
        },
    )?;
    bar.finish_and_clear();
    Ok(salvaged)
}

/// `verify --all`: every bad range, in words; an error when there is one.
pub(crate) fn verify_all(url: &StoreUrl) -> anyhow::Result<Option<Report>> {
    let Salvaged { report, .. } = read_with_progress(url)?;
    if report.is_clean() {
        return Ok(None);
    }
    Ok(Some(report))
}

/// `salvage --from --to`: every whole event of `from` appended to the empty store `to` (the
/// positions after a loss move up; each event keeps its id, time, actor and data), the new
/// ledger verified, and the report printed (JSON with `json`) and written to `report_file`.
pub(crate) fn salvage(
    from: &StoreUrl,
    to: &StoreUrl,
    json: bool,
    report_file: Option<&Path>,
) -> anyhow::Result<()> {
    if let StoreUrl::Sled(dir) = to {
        anyhow::ensure!(
            !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
            "{} is not empty: salvage writes a new ledger into an empty directory",
            dir.display()
        );
    }
    let Salvaged { events, report } = read_with_progress(from)?;
    let target = crate::open_existing(to, true)?;
    anyhow::ensure!(
        target.store.head() == 0,
        "{} already holds {} events: salvage writes a new ledger into an empty store",
        to.describe(),
        target.store.head()
    );
    let written = transfer::append_all(target.store.as_ref(), events)?;
    let verified = target.store.verify()?;
    target.store.close()?;
    anyhow::ensure!(
        verified.events == written,
        "wrote {written} events but the new ledger verifies {}",
        verified.events
    );
    let as_json = serde_json::to_string_pretty(&report)?;
    if let Some(file) = report_file {
        std::fs::write(file, format!("{as_json}\n"))?;
    }
    if json {
        out!("{as_json}");
    } else {
        out!(no_newline; "{report}");
        out!(
            "wrote {written} events to {}; it verifies: head hash {}. Tokens are not copied: \
             mint new ones with `mc-ledger token create` on the new store.",
            to.describe(),
            verified.head_hash.to_hex()
        );
    }
    Ok(())
}
