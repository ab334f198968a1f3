//! Restart in place after a storage fault (SPEC §17), without dropping the listening socket.
//!
//! sled keeps a failed I/O as a global error and its flush may never return, so the store
//! cannot be reopened beside it in one process. When it has been unavailable for 5 s and the
//! data directory takes a 1 MiB fsync'd write again, the server stops taking connections,
//! lets the requests in flight finish (they answer 503 within [`DRAIN`]), and execs itself
//! (same PID, arguments and environment); a signal meanwhile stops it instead ([`Phase`]),
//! and a failed exec ends it with an error (a supervisor restarts it). The listening socket
//! goes across the exec by the systemd socket-activation protocol (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDS_FIRST_FD`), so a client that connects meanwhile waits in the
//! kernel's queue for the new image instead of being refused. The same protocol lets systemd hand `serve` its socket.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Restarts in place after a storage fault, at most, per process.
const RESTARTS_MAX: u32 = 3;

/// How long the requests in flight get to finish before the exec: a write waiting on the
/// stalled disk is answered 503 within `CONFIRM_WITHIN`, so every one is answered. (A stream
/// of server-sent events does not end by itself; it is cut, and its client resumes with
/// `Last-Event-ID`.)
const DRAIN: Duration = Duration::from_secs(store_sled::log::CONFIRM_WITHIN.as_secs() + 1);

/// A listening socket handed to this process (systemd socket activation, or this binary's own
/// restart in place), if any: the first one named (a TCP socket). Call before any thread
/// starts: it reads and clears the protocol's environment variables, so no child sees them.
pub fn inherited_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    if std::env::var_os("MC_LEDGER_RESTARTS_IN_PLACE").is_some() {
        // An exec of /proc/self/exe names the process `exe`; `ps` and `pkill mc-ledger` should
        // still find it by the name it was started with.
        let _ = rustix::thread::set_name(c"mc-ledger");
    }
    let mut fds = listenfd::ListenFd::from_env();
    // listenfd clears LISTEN_FDS and LISTEN_PID; the rest of the protocol goes too.
    std::env::remove_var("LISTEN_FDS_FIRST_FD");
    std::env::remove_var("LISTEN_FDNAMES");
    if fds.len() == 0 {
        return Ok(None);
    }
    fds.take_tcp_listener(0)
        .map_err(|e| anyhow::anyhow!("the listening socket handed over (LISTEN_FDS): {e}"))
}

/// The socket to serve on: the inherited one, else a new one bound to `listen`; and a second
/// handle on it, kept for a restart in place.
pub(crate) async fn listener(
    inherited: Option<std::net::TcpListener>,
    listen: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::TcpListener)> {
    let std = match inherited {
        Some(l) => {
            let at = l.local_addr()?;
            if at != listen {
                tracing::info!(%at, asked = %listen, "serving on the socket handed over");
            }
            l
        }
        None => tokio::net::TcpListener::bind(listen).await?.into_std()?,
    };
    let kept = std.try_clone()?;
    std.set_nonblocking(true)?;
    Ok((tokio::net::TcpListener::from_std(std)?, kept))
}

/// Where the server is in its life: serving, draining for a restart in place, or stopping
/// (SIGTERM or SIGINT). Stopping wins: a signal during a drain ends the server instead of the
/// exec, and a restart asked after a signal is not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    Restarting,
    Stopping,
}

/// The [`Phase`], shared by the signal handler, the disk watcher and the server.
#[derive(Clone)]
pub(crate) struct Life(Arc<tokio::sync::watch::Sender<Phase>>);

impl Life {
    pub(crate) fn new() -> Life {
        Life(Arc::new(tokio::sync::watch::channel(Phase::Serving).0))
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// A signal came: stop, whatever else was under way.
    pub(crate) fn stop(&self) {
        self.0.send_replace(Phase::Stopping);
    }

    /// The disk recovered: restart in place, unless the server is already stopping.
    fn restart(&self) {
        self.0.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::Restarting;
            }
            serving
        });
    }

    /// Resolves when the server should stop taking connections.
    pub(crate) async fn left_serving(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Serving).await;
    }

    /// Resolves [`DRAIN`] after a restart was asked (never without one): how long requests in
    /// flight get before the exec.
    pub(crate) async fn drain_over(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|p| *p == Phase::Restarting).await;
        tokio::time::sleep(DRAIN).await;
    }
}

/// Called once the server stopped serving: when a restart in place was asked (and no signal
/// came since), execs with `socket`, and answers only if that failed; otherwise closes the
/// socket at once (a stopping server refuses new connections rather than queue them).
pub(crate) fn exec_if_restarting(life: &Life, socket: std::net::TcpListener) -> anyhow::Result<()> {
    if life.phase() != Phase::Restarting {
        return Ok(());
    }
    let failed = exec_with(&socket, restarts_so_far() + 1);
    anyhow::bail!("cannot restart in place ({failed}); restart the server")
}

/// Restarts in place this process made so far (`MC_LEDGER_RESTARTS_IN_PLACE`).
fn restarts_so_far() -> u32 {
    std::env::var("MC_LEDGER_RESTARTS_IN_PLACE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Watches the store; once it has been unavailable for 5 s and the disk under `dir` takes
/// writes again, asks for a restart in place (the server drains and execs). At most
/// [`RESTARTS_MAX`] times per process lifetime, so a fault the probe does not see cannot loop.
pub(crate) async fn when_the_disk_recovers(
    reader: Arc<dyn store::EventReader>,
    dir: PathBuf,
    life: Life,
) {
    let restarts = restarts_so_far();
    if restarts >= RESTARTS_MAX {
        tracing::warn!(
            restarts,
            "restarted in place too often; will not do it again"
        );
        return;
    }
    let mut unready_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if reader.ready().is_ok() {
            unready_since = None;
            continue;
        }
        let since = *unready_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < Duration::from_secs(5) {
            continue;
        }
        let probe = dir.join(".mc-ledger-disk-probe");
        let takes_writes = tokio::task::spawn_blocking(move || disk_takes_writes(&probe))
            .await
            .unwrap_or(false);
        if takes_writes {
            break;
        }
    }
    tracing::warn!(
        dir = %dir.display(),
        "the disk takes writes again: restarting in place to reopen the store"
    );
    life.restart();
}

/// Execs `/proc/self/exe` with this process's arguments, `socket` handed over by the
/// socket-activation protocol. Returns only on failure, with close-on-exec set again.
fn exec_with(socket: &std::net::TcpListener, restarts: u32) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // The socket survives the exec only without close-on-exec (as do stdin, stdout, stderr).
    if let Err(e) = rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::empty()) {
        return e.into();
    }
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(name) = std::env::args_os().next() {
        command.arg0(name);
    }
    let failed = command
        .args(std::env::args_os().skip(1))
        .env("MC_LEDGER_RESTARTS_IN_PLACE", restarts.to_string())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDS_FIRST_FD", socket.as_raw_fd().to_string())
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    let _ = rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::CLOEXEC);
    failed
}

/// Whether `probe` can be written (1 MiB), fsync'd and removed.
fn disk_takes_writes(probe: &std::path::Path) -> bool {
    use std::io::Write;
    let written = std::fs::File::create(probe).and_then(|mut f| {
        f.write_all(&vec![0u8; 1024 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(probe);
    written.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `future` has resolved after the runtime had a moment to run it.
    async fn resolves(future: impl std::future::Future<Output = ()>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_wins_over_a_restart_either_way() {
        // Given a serving server, nothing ends it and no drain runs;
        let life = Life::new();
        assert!(!resolves(life.left_serving()).await);
        // when the disk recovers, then it leaves serving and the drain ends after DRAIN;
        life.restart();
        assert_eq!(life.phase(), Phase::Restarting);
        assert!(resolves(life.left_serving()).await);
        assert!(
            tokio::time::timeout(DRAIN + Duration::from_millis(1), life.drain_over())
                .await
                .is_ok()
        );
        // when a signal comes during the drain, then it stops instead of restarting.
        life.stop();
        assert_eq!(life.phase(), Phase::Stopping);
        // Given a signal first, a restart asked after it is not made, and no drain runs.
        let life = Life::new();
        life.stop();
        life.restart();
        assert_eq!(life.phase(), Phase::Stopping);
        assert!(resolves(life.left_serving()).await);
        assert!(!resolves(life.drain_over()).await);
    }

    #[test]
    fn a_stopping_server_does_not_exec_and_closes_its_socket() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let life = Life::new();
        life.stop();
        // When the server stopped (not restarting), then no exec, and the socket is closed:
        // a new connection is refused at once rather than queued.
        exec_if_restarting(&life, socket).unwrap();
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
