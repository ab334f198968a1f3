//! The hook spool (SPEC §17): every hook payload is first written here (fsync'd, 0600, in a
//! 0700 directory), then delivered in order: by the hook that wrote it when the server answers
//! within the hook's time, else by the next hook, `mc-ledger hook flush` or the dispatcher.
//! Each entry carries an `Idempotency-Key` made once from its runtime, agent, order and content,
//! so an entry sent twice (its answer lost, two flushers) is recorded once.
//!
//! Where: `MC_LEDGER_SPOOL`, else `$XDG_STATE_HOME/mc-ledger/spool`, else
//! `~/.local/state/mc-ledger/spool`. Bounded: at most [`ENTRIES_MAX`] entries and
//! [`BYTES_MAX`] bytes; a hook that finds it full says so and is not recorded.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// At most this many entries wait (a day of an agent's turns many times over).
pub(crate) const ENTRIES_MAX: usize = 1_000;
/// At most this many bytes of entries wait (a payload is at most 1 MiB).
pub(crate) const BYTES_MAX: u64 = 64 * 1024 * 1024;
/// An entry older than this is set aside (`rejected/`): a spool filled with hooks for a server
/// that is gone would otherwise end up refusing new ones.
const EXPIRES_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long `hook flush` waits for each answer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// One hook as it is to be sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) server: String,
    pub(crate) path: String,
    /// The `Idempotency-Key`: the same on every try.
    pub(crate) key: String,
    /// The payload, byte for byte as the agent gave it.
    pub(crate) body: String,
    /// The runtime's token the hook had (`MC_LEDGER_TOKEN`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    pub(crate) spooled_at_ms: u64,
}

/// What a flush did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub(crate) delivered: usize,
    /// Refused for good (a 4xx other than 408 and 429): moved to `rejected/`.
    pub(crate) rejected: usize,
    /// Still waiting: the server did not answer, or answered 5xx, 408 or 429.
    pub(crate) left: usize,
}

pub(crate) struct Spool {
    dir: PathBuf,
    entries_max: usize,
    bytes_max: u64,
}

/// An entry's file name: its order, zero-padded so names sort as the order does.
fn entry_name(order: u64) -> String {
    format!("{order:016}.json")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// The spool of this user (see the module's documentation).
    pub(crate) fn for_user() -> anyhow::Result<Spool> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = match (var("MC_LEDGER_SPOOL"), var("XDG_STATE_HOME"), var("HOME")) {
            (Some(dir), _, _) => PathBuf::from(dir),
            (None, Some(state), _) => PathBuf::from(state).join("mc-ledger/spool"),
            (None, None, Some(home)) => PathBuf::from(home).join(".local/state/mc-ledger/spool"),
            (None, None, None) => anyhow::bail!("no MC_LEDGER_SPOOL, XDG_STATE_HOME or HOME"),
        };
        Ok(Spool::at(dir))
    }

    pub(crate) fn at(dir: PathBuf) -> Spool {
        Spool {
            dir,
            entries_max: ENTRIES_MAX,
            bytes_max: BYTES_MAX,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn open_lock(&self, name: &str) -> anyhow::Result<File> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating the hook spool {}", self.dir.display()))?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(name))
            .with_context(|| format!("opening {}", self.dir.join(name).display()))
    }

    /// Writes a hook durably (its order from `.seq`, under `.seq.lock`) and answers the entry,
    /// key included. Refused when the spool is full.
    pub(crate) fn push(
        &self,
        server: &str,
        runtime: &str,
        agent: &str,
        body: String,
        token: Option<String>,
    ) -> anyhow::Result<Entry> {
        let lock = self.open_lock(".seq.lock")?;
        lock.lock().context("locking the hook spool")?;
        let (count, bytes) = self.usage()?;
        anyhow::ensure!(
            count < self.entries_max && bytes + body.len() as u64 <= self.bytes_max,
            "the hook spool {} is full ({count} entries, {bytes} bytes): deliver it with \
             `mc-ledger hook flush`",
            self.dir.display()
        );
        let seq_path = self.dir.join(".seq");
        let last: u64 = match fs::read_to_string(&seq_path) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).context("reading the hook spool's order"),
        };
        let order = last + 1;
        // Nanoseconds in the key: two hooks of one payload in the same millisecond differ.
        let at_ns = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let entry = Entry {
            server: server.to_owned(),
            path: format!(
                "/v1/runtimes/{}/hooks/{agent}",
                crate::watch::encode_component(runtime)
            ),
            key: key(runtime, agent, order, at_ns, &body),
            body,
            token,
            spooled_at_ms: at_ns / 1_000_000,
        };
        self.write_atomically(&entry_name(order), &serde_json::to_vec(&entry)?)?;
        self.write_atomically(".seq", order.to_string().as_bytes())?;
        sync_dir(&self.dir)?;
        Ok(entry)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, self.dir.join(name)));
        if written.is_err() {
            // A full or failing disk: leave no half-written file behind.
            let _ = fs::remove_file(&tmp);
        }
        Ok(written?)
    }

    /// The entries waiting, oldest first.
    pub(crate) fn entries(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let listing = match fs::read_dir(&self.dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e).context("reading the hook spool"),
        };
        for item in listing {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with('.') && name.ends_with(".json") && path.is_file() {
                found.push(path);
            }
        }
        found.sort();
        Ok(found)
    }

    fn usage(&self) -> anyhow::Result<(usize, u64)> {
        let entries = self.entries()?;
        let bytes = entries
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        Ok((entries.len(), bytes))
    }

    /// Sends the waiting entries in order until one cannot be delivered now or `deadline`
    /// passes (`None`: each answer waited for up to 10 s). `server` replaces the server each
    /// entry names. One flusher at a time; `wait` says whether to wait for another to finish.
    pub(crate) fn flush(
        &self,
        deadline: Option<Instant>,
        server: Option<&str>,
        wait: bool,
    ) -> anyhow::Result<Flushed> {
        let lock = self.open_lock(".flush.lock")?;
        if wait {
            lock.lock().context("locking the hook spool")?;
        } else if lock.try_lock().is_err() {
            // Another hook or `hook flush` is delivering; what is left is theirs.
            return Ok(Flushed {
                left: self.entries()?.len(),
                ..Flushed::default()
            });
        }
        let mut done = Flushed::default();
        // A server that cannot take one now takes none of the later ones (their order), but
        // another server's entries still go.
        let mut waiting: std::collections::HashSet<String> = Default::default();
        for path in self.entries()? {
            let timeout = match deadline {
                None => FLUSH_TIMEOUT,
                Some(at) => at.saturating_duration_since(Instant::now()),
            };
            let entry = match read_entry(&path) {
                Ok(entry) => entry,
                Err(why) => {
                    self.reject(&path, &why)?;
                    done.rejected += 1;
                    continue;
                }
            };
            let age_ms = crate::now_ms().saturating_sub(entry.spooled_at_ms);
            if Duration::from_millis(age_ms) > EXPIRES_AFTER {
                self.reject(&path, "waited over 7 days: its server is gone")?;
                done.rejected += 1;
                continue;
            }
            let to = server.unwrap_or(&entry.server).to_owned();
            if timeout.is_zero() || waiting.contains(&to) {
                done.left += 1;
                continue;
            }
            match send(entry, &to, timeout)? {
                Sent::Delivered => {
                    fs::remove_file(&path)?;
                    done.delivered += 1;
                }
                Sent::Refused(why) => {
                    self.reject(&path, &why)?;
                    done.rejected += 1;
                }
                Sent::NotNow(why) => {
                    say!("mc-ledger hook: {why}");
                    waiting.insert(to);
                    done.left += 1;
                }
            }
        }
        sync_dir(&self.dir)?;
        Ok(done)
    }

    /// A spooled hook the server refused for good: kept aside in `rejected/`, said on stderr.
    fn reject(&self, path: &Path, why: &str) -> anyhow::Result<()> {
        let rejected = self.dir.join("rejected");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&rejected)?;
        let to = rejected.join(path.file_name().unwrap_or_default());
        fs::rename(path, &to)?;
        say!(
            "mc-ledger hook: a spooled hook was refused ({why}); kept in {}",
            to.display()
        );
        Ok(())
    }
}

fn read_entry(path: &Path) -> Result<Entry, String> {
    let text = fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("not a spooled hook: {e}"))
}

fn send(entry: Entry, server: &str, timeout: Duration) -> anyhow::Result<Sent> {
    let client = client::Client::with_timeout(server, timeout)?.with_token(entry.token);
    let answer = match client.post_raw(&entry.path, &entry.body, Some(&entry.key)) {
        Ok(a) => a,
        Err(e) => return Ok(Sent::NotNow(format!("{e:#}"))),
    };
    let code = answer.body["code"].as_str().unwrap_or("error");
    let detail = answer.body["detail"].as_str().unwrap_or("");
    let problem = format!("{server} answered {} {code}: {detail}", answer.status);
    Ok(match answer.status {
        200..=299 => Sent::Delivered,
        408 | 429 | 500.. => Sent::NotNow(problem),
        _ => Sent::Refused(problem),
    })
}

enum Sent {
    Delivered,
    Refused(String),
    NotNow(String),
}

/// A spooled hook's `Idempotency-Key`: its runtime, agent, order and content.
fn key(runtime: &str, agent: &str, order: u64, at_ns: u64, body: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"mc-ledger hook spool v1\0");
    for part in [runtime.as_bytes(), agent.as_bytes(), body.as_bytes()] {
        h.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
        h.update(part);
    }
    h.update(&order.to_le_bytes());
    h.update(&at_ns.to_le_bytes());
    let hex = h.finalize().to_hex();
    format!("hook-{}", &hex[..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn entries_are_private_ordered_and_keyed_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::at(dir.path().join("spool"));
        let body = r#"{"hook_event_name":"Stop"}"#;
        let a = spool
            .push("http://127.0.0.1:1", "rt_1", "claude", body.into(), None)
            .unwrap();
        let b = spool
            .push("http://127.0.0.1:1", "rt_1", "claude", body.into(), None)
            .unwrap();
        // Given the same payload twice, when spooled, then two entries with their own keys,
        // in order, each 0600 in a 0700 directory.
        assert_ne!(a.key, b.key, "the same payload twice is two hooks");
        let entries = spool.entries().unwrap();
        assert_eq!(entries.len(), 2);
        let first: Entry = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
        assert_eq!(first.key, a.key);
        for path in &entries {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let mode = fs::metadata(spool.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // When nothing answers, then a flush leaves both where they are.
        let left = spool
            .flush(
                Some(Instant::now() + Duration::from_millis(300)),
                None,
                true,
            )
            .unwrap();
        assert_eq!(left.delivered, 0);
        assert_eq!(spool.entries().unwrap().len(), 2);
    }

    #[test]
    fn a_full_spool_refuses_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::at(dir.path().to_path_buf());
        spool.entries_max = 2;
        let push = |spool: &Spool, body: &str| {
            spool.push("http://127.0.0.1:1", "rt_1", "claude", body.into(), None)
        };
        // Given room for two entries, when a third comes, then it is refused, saying so.
        push(&spool, "{}").unwrap();
        push(&spool, "{}").unwrap();
        let refused = push(&spool, "{}").unwrap_err();
        assert!(refused.to_string().contains("is full"), "{refused:#}");
        assert_eq!(spool.entries().unwrap().len(), 2);
        // Given room for 100 bytes, when a larger payload comes, then it is refused.
        let mut small = Spool::at(dir.path().join("small"));
        small.bytes_max = 100;
        let refused = push(&small, &"x".repeat(101)).unwrap_err();
        assert!(refused.to_string().contains("is full"), "{refused:#}");
        assert!(small.entries().unwrap().is_empty());
    }
}
