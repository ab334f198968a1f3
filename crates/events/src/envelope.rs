//! The event envelope: what an appender hands in ([`NewEvent`]) and what the log hands back
//! ([`RecordedEvent`], with position, version and hashes).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Actor, EventData};
use crate::ids::TicketId;

/// Serde as a JSON string: written with `$write`, read back with `$parse` (`None` fails with
/// `$expected`).
macro_rules! string_serde {
    ($ty:ident, $write:ident, $parse:ident, $expected:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.$write())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::$parse(&s).ok_or_else(|| serde::de::Error::custom($expected))
            }
        }
    };
}

/// A 32-byte blake3 hash of the chain; hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    pub fn from_hex(s: &str) -> Option<Hash> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0])?;
            let lo = hex_val(pair[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(Hash(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

string_serde!(Hash, to_hex, from_hex, "expected 64 hex digits");

/// Milliseconds since the Unix epoch, UTC. JSON form: RFC 3339 with milliseconds
/// (`2026-11-02T10:11:12.345Z`). The log never reads the clock: the appender stamps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    pub fn millis(self) -> u64 {
        self.0
    }

    /// RFC 3339 with milliseconds. Instants past [`Timestamp::MAX`] (which appends refuse) are
    /// written as `MAX` rather than failing.
    pub fn to_rfc3339(self) -> String {
        let ms = self.0.min(Self::MAX.0);
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(time).to_string()
    }

    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let time = humantime::parse_rfc3339_weak(s).ok()?;
        let ms = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        u64::try_from(ms)
            .ok()
            .map(Timestamp)
            .filter(|t| *t <= Self::MAX)
    }
}

string_serde!(
    Timestamp,
    to_rfc3339,
    parse_rfc3339,
    "expected an RFC 3339 UTC timestamp"
);

/// An event as an appender hands it to the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub id: String,
    pub recorded_at: Timestamp,
    pub actor: Actor,
    /// The token the write came with (its id, never the secret); none without tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(flatten)]
    pub data: EventData,
}

/// An event as the log holds it: the envelope of SPEC §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct RecordedEvent {
    pub position: u64,
    pub ticket: TicketId,
    pub version: u64,
    pub id: String,
    pub recorded_at: Timestamp,
    pub actor: Actor,
    /// The id of the token the write came with (never the secret); absent when the server
    /// runs without tokens, and on events recorded before tokens named their writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(flatten)]
    pub data: EventData,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl RecordedEvent {
    /// `event` as the log records it: at `position`, as `version` of `ticket`, chained from
    /// `prev_hash` to `hash`.
    pub fn placed(
        event: NewEvent,
        position: u64,
        ticket: TicketId,
        version: u64,
        prev_hash: Hash,
        hash: Hash,
    ) -> RecordedEvent {
        let NewEvent {
            id,
            recorded_at,
            actor,
            token_id,
            data,
        } = event;
        RecordedEvent {
            position,
            ticket,
            version,
            id,
            recorded_at,
            actor,
            token_id,
            data,
            prev_hash,
            hash,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.data.type_name()
    }
}

impl From<RecordedEvent> for NewEvent {
    /// The event as an appender hands it in again (import, copy): its id, time, actor and data;
    /// the log assigns position, version and hashes, which come out equal in an equal log.
    fn from(e: RecordedEvent) -> NewEvent {
        NewEvent {
            id: e.id,
            recorded_at: e.recorded_at,
            actor: e.actor,
            token_id: e.token_id,
            data: e.data,
        }
    }
}
