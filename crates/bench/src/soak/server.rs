//! The soak's server: the real binary as a child process, its RSS, and SIGTERM.

use std::ffi::OsString;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The server's resident set, from `/proc/<pid>/status` (`VmRSS`, in kB).
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A size line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` …), in bytes.
pub(crate) fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no {field} line"))?;
    Ok(kb * 1024)
}

/// The server child: killed if the bench bails out before it is stopped properly.
pub(crate) struct Server {
    pub(crate) child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn spawn_server(data_dir: &Path, log: &Path, cache_mib: u64) -> anyhow::Result<Server> {
    let mut args = vec![OsString::from("--data-dir"), data_dir.into()];
    args.extend(["--cache-mib".into(), cache_mib.to_string().into()]);
    spawn(&args, log)
}

/// `mc-ledger serve ARGS --listen 127.0.0.1:PORT` (this binary), once it says it listens.
pub(crate) fn spawn(args: &[OsString], log: &Path) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .args(args)
        .args(["--listen", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("spawning the server")?;
    let pid = child.id();
    let stdout = child.stdout.take().context("server stdout")?;
    let mut server = Server {
        child: Some(child),
        addr,
        pid,
    };
    let mut lines = std::io::BufReader::new(stdout);
    let mut line = String::new();
    lines.read_line(&mut line)?;
    if !line.contains("listening") {
        let _ = server.child.as_mut().map(Child::kill);
        bail!(
            "the server did not start (said {line:?}; see {})",
            log.display()
        );
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    Ok(server)
}

pub(crate) fn sigterm(server: &mut Server) -> anyhow::Result<Option<i32>> {
    let mut child = server.child.take().context("server already stopped")?;
    let sent = Command::new("kill")
        .args(["-TERM", &server.pid.to_string()])
        .status()?;
    anyhow::ensure!(sent.success(), "kill -TERM {} failed", server.pid);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server did not exit within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
