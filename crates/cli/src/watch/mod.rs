//! `mc-ledger watch`: finds live tmux and process runtimes whose worker is gone and reaps them
//! over HTTP. A runtime is reaped only when a second probe, a moment after the first, confirms
//! that the worker is gone; a probe that cannot tell (tmux missing or unreachable, permission
//! denied) is reported and never taken as death. Rules and evidence format: `docs/watch.md`.
//!
//! By concern: `classify` holds the pure classifiers and the confirm rule, `probe` the IO that
//! feeds them (tmux, `/proc`), `cycle` the HTTP cycle against the server; this file the
//! command's arguments and its loop.

use std::sync::mpsc;
use std::time::Duration;

use client::Client;

mod classify;
mod cycle;
mod probe;

pub use classify::{
    classify_pane, classify_start, classify_stat, classify_tmux, confirm, is_mass_reap, parse_pane,
    Candidate, Finding, Observation, Pane, Probe, Seen, Target, MASS_REAP_MIN, PID_REUSE_SLACK_MS,
};
pub use cycle::{cycle, encode_component, Rules, Summary, Unreachable};
pub use probe::SystemProbe;

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The mc-ledger server, http://host:port (token in MC_LEDGER_TOKEN, write scope).
    #[arg(long)]
    pub server: String,
    /// Seconds between cycles.
    #[arg(long = "interval", value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_s: u64,
    /// Run one full cycle (confirmations included), print a summary and exit.
    #[arg(long)]
    pub once: bool,
    /// Milliseconds between a failed probe and the probe that confirms it.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub confirm_ms: u64,
    /// Probe the tmux server with this socket name (`tmux -L NAME`).
    #[arg(long, value_name = "NAME")]
    pub tmux_socket_name: Option<String>,
    /// Reap even when a cycle would reap more than half of the runtimes it probed (and more
    /// than 3), which otherwise reaps none as a suspected probe failure.
    #[arg(long)]
    pub allow_mass_reap: bool,
    /// Seconds after its dispatch before a worker pane holding only an idle shell counts as a
    /// crashed agent (at once if the runtime was ever heard from).
    #[arg(long = "shell-grace", value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub shell_grace_s: u64,
}

/// `mc-ledger watch`: one cycle with `--once`, else a cycle every `--interval` seconds until
/// SIGINT or SIGTERM.
pub fn run(args: &WatchArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.tmux_socket_name {
        if name.is_empty() || name.contains('/') {
            anyhow::bail!("--tmux-socket-name must be a socket name without '/', not {name:?}");
        }
    }
    let client = Client::new(&args.server)?;
    let probe = SystemProbe {
        tmux_socket_name: args.tmux_socket_name.clone(),
    };
    let rules = Rules {
        confirm_wait: Duration::from_millis(args.confirm_ms),
        shell_grace: Duration::from_secs(args.shell_grace_s),
        allow_mass_reap: args.allow_mass_reap,
    };
    if args.once {
        let summary = cycle(&client, &probe, rules)?;
        out!("{summary}");
        return Ok(());
    }
    let stop = crate::signals::shutdown_signals()?;
    let interval = Duration::from_secs(args.interval_s);
    tracing::info!(server = %args.server, interval_s = args.interval_s, "watching live tmux and process runtimes");
    loop {
        match cycle(&client, &probe, rules) {
            Ok(s) => tracing::info!(
                probed = s.probed,
                alive = s.alive,
                reaped = s.reaped,
                errors = s.errors,
                not_probed = s.not_probed,
                already_ended = s.already_ended,
                withheld = s.withheld,
                "cycle done"
            ),
            // The server may be restarting; the next cycle tries again.
            Err(e) => tracing::warn!("cycle skipped: {e}"),
        }
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::info!("stop signal received; watcher exits");
                return Ok(());
            }
        }
    }
}
