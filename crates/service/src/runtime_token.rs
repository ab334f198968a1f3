//! Runtime tokens (SPEC §12): a dispatch or retry answers `runtime_token`, which acts as the
//! runtime's agent (`{name: <agent>, kind: agent}`), may only signal, post activity, input or
//! its agent's hooks on that runtime, comment on its ticket, add and update its tasks, and read
//! what relates to it (`projections::authorize` confines it), and stops working the moment the
//! runtime ends.
//!
//! A runtime token is `mcr_` + hex(blake3 keyed with the ledger's runtime-token key, of the
//! runtime id). The key is 256 bits from the CSPRNG, kept in the store's home beside the tokens
//! (the first line of `runtime-tokens.key`, so replicas that create it at once agree), so every
//! replica derives the same token for a runtime: a duplicate dispatch answers the same one, and
//! nothing is written per runtime or per check. Whether the runtime still lives is read from
//! the projections when the token is presented. The token holds no timestamp and no id: a
//! per-server index from the token's first 64 bits to the runtime follows new runtimes.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use events::{Actor, ActorKind};

use crate::home::Home;
use crate::state::Shared;
use crate::tokens::{Caller, Scope, Verdict};

pub const PREFIX: &str = "mcr_";
const KEY: &str = "runtime-tokens.key";

/// The key and the index of the runtimes seen so far.
#[derive(Default)]
pub struct RuntimeTokens {
    key: OnceLock<[u8; 32]>,
    creating: Mutex<()>,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Runtimes (in dispatch order) already in `by_prefix`.
    scanned: usize,
    /// The first 8 bytes of a runtime's token → its place in dispatch order.
    by_prefix: HashMap<u64, Vec<u32>>,
}

fn prefix_of(mac: &blake3::Hash) -> u64 {
    let b = mac.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl RuntimeTokens {
    /// The ledger's key: read from the home, or created there on first use.
    fn key(&self, home: &Home) -> anyhow::Result<[u8; 32]> {
        if let Some(k) = self.key.get() {
            return Ok(*k);
        }
        let _one = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = self.key.get() {
            return Ok(*k);
        }
        let first = |bytes: Option<Vec<u8>>| -> Option<[u8; 32]> {
            let text = String::from_utf8(bytes?).ok()?;
            unhex(text.lines().next()?.trim())
        };
        let key = match first(home.read(KEY)?) {
            Some(k) => k,
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                home.append_line(KEY, &hex(&fresh))?;
                // Another replica may have written its key first: the first line wins.
                first(home.read(KEY)?)
                    .ok_or_else(|| anyhow::anyhow!("{KEY} holds no key after writing one"))?
            }
        };
        let _ = self.key.set(key);
        Ok(key)
    }

    /// The runtime token of a runtime.
    pub fn token_for(&self, home: &Home, runtime_id: &str) -> anyhow::Result<String> {
        let key = self.key(home)?;
        Ok(format!(
            "{PREFIX}{}",
            blake3::keyed_hash(&key, runtime_id.as_bytes()).to_hex()
        ))
    }
}

/// The id recorded on events a runtime token writes.
pub fn token_id(runtime_id: &str) -> String {
    format!("rtk_{runtime_id}")
}

/// Who a presented `mcr_…` token is, if anyone.
pub fn verdict(shared: &Shared, tokens: &RuntimeTokens, home: &Home, secret: &str) -> Verdict {
    let Some(presented) = secret.strip_prefix(PREFIX).and_then(unhex) else {
        return Verdict::Unknown;
    };
    let presented = blake3::Hash::from_bytes(presented);
    // What this replica knows must include everything committed (another replica may have
    // ended the runtime, or dispatched it a moment ago).
    if shared.catch_up().is_err() {
        return Verdict::Unknown;
    }
    let Ok(key) = tokens.key(home) else {
        return Verdict::Unknown;
    };
    let found = shared.read(|ledger| {
        let mut index = tokens.index.lock().unwrap_or_else(|p| p.into_inner());
        let from = index.scanned;
        let new = ledger.runtime_ids_from(from);
        for (k, id) in new.iter().enumerate() {
            let mac = blake3::keyed_hash(&key, id.as_bytes());
            let place = u32::try_from(from + k).unwrap_or(u32::MAX);
            index
                .by_prefix
                .entry(prefix_of(&mac))
                .or_default()
                .push(place);
        }
        index.scanned = from + new.len();
        let candidates = index.by_prefix.get(&prefix_of(&presented)).cloned();
        drop(index);
        candidates?.into_iter().find_map(|place| {
            let id = ledger.runtime_id_at(usize::try_from(place).ok()?)?;
            // A full comparison (constant-time) of the candidate's token.
            if blake3::keyed_hash(&key, id.as_bytes()) != presented {
                return None;
            }
            let (ticket, agent, live) = ledger.runtime_owner(id)?;
            Some((id.to_owned(), ticket.clone(), agent.to_owned(), live))
        })
    });
    let Some((runtime_id, _ticket, agent, live)) = found else {
        return Verdict::Unknown;
    };
    if !live {
        return Verdict::Expired(format!(
            "{} (runtime {runtime_id} has ended)",
            token_id(&runtime_id)
        ));
    }
    Verdict::Accepted(Caller {
        token_id: token_id(&runtime_id),
        actor: Actor {
            name: agent,
            kind: ActorKind::Agent,
        },
        scope: Scope::Write,
        runtime: Some(runtime_id),
    })
}
