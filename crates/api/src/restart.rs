//! Restart in place after a storage fault (SPEC §17), without dropping the listening socket.
//!
//! sled keeps a failed I/O as a global error and its flush may never return, so the store
//! cannot be reopened beside it in one process. When it has been unavailable for 5 s and the
//! data directory takes a 1 MiB fsync'd write again, the server stops taking connections,
//! lets the requests in flight finish (they answer 503 within [`DRAIN`]), and execs itself
//! (same PID, arguments and environment). The listening socket goes across the exec by the
//! systemd socket-activation protocol (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDS_FIRST_FD`), so
//! a client that connects meanwhile waits in the kernel's queue for the new image instead of
//! being refused. The same protocol lets systemd hand `serve` its socket.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Restarts in place after a storage fault, at most, per process.
const RESTARTS_MAX: u32 = 3;

/// How long the requests in flight get to finish before the exec: a write waiting on the
/// stalled disk is answered 503 within `CONFIRM_WITHIN`, so every one is answered. (A stream
/// of server-sent events does not end by itself; it is cut, and its client resumes with
/// `Last-Event-ID`.)
const DRAIN: Duration = Duration::from_secs(store_sled::log::CONFIRM_WITHIN.as_secs() + 1);

/// A listening socket handed to this process (systemd socket activation, or this binary's own
/// restart in place), if any. Call before any thread starts: it reads and clears environment
/// variables.
pub fn inherited_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    if std::env::var_os("MC_LEDGER_RESTARTS_IN_PLACE").is_some() {
        // An exec of /proc/self/exe names the process `exe`; `ps` and `pkill mc-ledger` should
        // still find it by the name it was started with.
        let _ = rustix::thread::set_name(c"mc-ledger");
    }
    let mut fds = listenfd::ListenFd::from_env();
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

/// What the restart watcher and the server say to each other.
#[derive(Default)]
pub(crate) struct Restart {
    asked: AtomicBool,
    stop_serving: Notify,
    drained: Notify,
}

impl Restart {
    /// Resolves when the server should stop taking connections for a restart.
    pub(crate) async fn asked(&self) {
        self.stop_serving.notified().await;
    }

    /// Called when the server stopped serving: on a restart, waits for the exec (never returns).
    pub(crate) async fn after_serving(&self) {
        if self.asked.load(Ordering::SeqCst) {
            self.drained.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// Watches the store; once it has been unavailable for 5 s and the disk under `dir` takes
/// writes again, drains the server and execs this binary in place with `socket`. At most
/// [`RESTARTS_MAX`] times per process lifetime, so a fault the probe does not see cannot loop.
pub(crate) async fn when_the_disk_recovers(
    reader: Arc<dyn store::EventReader>,
    dir: PathBuf,
    socket: std::net::TcpListener,
    restart: Arc<Restart>,
) {
    let restarts: u32 = std::env::var("MC_LEDGER_RESTARTS_IN_PLACE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
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
        if !takes_writes {
            continue;
        }
        break;
    }
    tracing::warn!(
        dir = %dir.display(),
        "the disk takes writes again: restarting in place to reopen the store"
    );
    restart.asked.store(true, Ordering::SeqCst);
    restart.stop_serving.notify_one();
    if tokio::time::timeout(DRAIN, restart.drained.notified())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; restarting without them");
    }
    let failed = exec_with(&socket, restarts + 1);
    tracing::error!(error = %failed, "cannot restart in place; restart the server");
}

/// Execs `/proc/self/exe` with this process's arguments, `socket` handed over by the
/// socket-activation protocol. Returns only on failure.
fn exec_with(socket: &std::net::TcpListener, restarts: u32) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // The handle survives the exec only without close-on-exec; nothing else of this image does.
    if let Err(e) = rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::empty()) {
        return e.into();
    }
    std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .env("MC_LEDGER_RESTARTS_IN_PLACE", restarts.to_string())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDS_FIRST_FD", socket.as_raw_fd().to_string())
        .env("LISTEN_PID", std::process::id().to_string())
        .exec()
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
