//! The stored form of a record: a format-version byte, the hash chain, and a bincode body.
//!
//! ```text
//! record := len:u32le  format:u8  prev_hash:[u8;32]  hash:[u8;32]  body:[u8; len-65]
//! hash    = blake3(prev_hash ‖ format ‖ body)
//! ```
//!
//! **Upcasting.** bincode is not self-describing, so a payload that gains a field can no
//! longer read old bytes with the new type. The rule: never change the types a format version
//! decodes with. To add a field, copy today's payload types into a `v1` module, bump
//! [`RECORD_FORMAT_CURRENT`], and decode format 1 with the copies followed by a `From`
//! conversion. `tests/fixtures/records_v1.bin` holds records written by format 1; the test
//! `fixtures_still_decode` fails the moment a change would break them. Format 2 added the
//! writer's `token_id` to the body (no payload type changed), so format 1 bodies decode with
//! the same fields but that one, and gain `token_id: None`.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::envelope::{Hash, RecordedEvent, Timestamp};
use crate::event::{Actor, EventData};
use crate::ids::{TicketId, RECORD_BYTES_MAX};

pub const RECORD_FORMAT_V1: u8 = 1;
/// Format 2 adds the writer's `token_id` after the actor.
pub const RECORD_FORMAT_V2: u8 = 2;
/// The newest format; a record is written in the oldest format that holds it (an event with no
/// token id is written as format 1), so re-encoding an old record — `copy`, `import` — gives
/// the same bytes and the same hash.
pub const RECORD_FORMAT_CURRENT: u8 = RECORD_FORMAT_V2;
/// Bytes before the body: len, format, prev_hash, hash.
pub const RECORD_HEADER_BYTES: usize = 4 + 1 + 32 + 32;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<RECORD_BYTES_MAX>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<RECORD_BYTES_MAX>()
}

/// The body as written: format 1 holds these fields without `token_id`, format 2 with it.
struct BodyRef<'a> {
    head: &'a RecordHead<'a>,
    data: &'a EventData,
}

impl Encode for BodyRef<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let head = self.head;
        head.position.encode(e)?;
        head.ticket.as_str().encode(e)?;
        head.version.encode(e)?;
        head.id.encode(e)?;
        head.recorded_at.millis().encode(e)?;
        head.actor.encode(e)?;
        if let Some(token_id) = head.token_id {
            Some(token_id).encode(e)?;
        }
        self.data.encode(e)
    }
}

/// A body as read back; the decoding context is its format, which says whether `token_id`
/// is there (format 1 bodies gain `token_id: None`).
struct Body {
    position: u64,
    ticket: String,
    version: u64,
    id: String,
    recorded_at_ms: u64,
    actor: Actor,
    token_id: Option<String>,
    data: EventData,
}

impl Decode<u8> for Body {
    fn decode<D: Decoder<Context = u8>>(d: &mut D) -> Result<Body, DecodeError> {
        let has_token = *d.context() == RECORD_FORMAT_V2;
        Ok(Body {
            position: Decode::decode(d)?,
            ticket: Decode::decode(d)?,
            version: Decode::decode(d)?,
            id: Decode::decode(d)?,
            recorded_at_ms: Decode::decode(d)?,
            actor: Decode::decode(d)?,
            token_id: if has_token { Decode::decode(d)? } else { None },
            data: Decode::decode(d)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("record of {bytes} bytes exceeds the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("unknown record format version {0}")]
    UnknownFormat(u8),
    #[error("record body does not decode: {0}")]
    Body(String),
    #[error("record hash does not match its bytes")]
    HashMismatch,
    #[error("record body has trailing bytes")]
    TrailingBytes,
    #[error("record names invalid ticket id")]
    BadTicket,
}

/// What an encoder needs to know about one event beyond its payload.
pub struct RecordHead<'a> {
    pub position: u64,
    pub ticket: &'a TicketId,
    pub version: u64,
    pub id: &'a str,
    pub recorded_at: Timestamp,
    pub actor: &'a Actor,
    pub token_id: Option<&'a str>,
}

/// Appends one framed record to `out` and returns its hash.
pub fn encode_record(
    out: &mut Vec<u8>,
    prev_hash: &Hash,
    head: &RecordHead<'_>,
    data: &EventData,
) -> Result<Hash, CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    let format = match head.token_id {
        None => RECORD_FORMAT_V1,
        Some(_) => RECORD_FORMAT_V2,
    };
    let encoded = bincode::encode_into_std_write(BodyRef { head, data }, out, config());
    if let Err(e) = encoded {
        out.truncate(start);
        return Err(CodecError::Body(e.to_string()));
    }
    let total = out.len() - start;
    if total > RECORD_BYTES_MAX {
        out.truncate(start);
        return Err(CodecError::TooLarge {
            bytes: total,
            max: RECORD_BYTES_MAX,
        });
    }
    let body_start = start + RECORD_HEADER_BYTES;
    let hash = chain_hash(prev_hash, format, &out[body_start..]);
    let len = u32::try_from(total - 4).expect("record size is bounded by RECORD_BYTES_MAX");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4] = format;
    out[start + 5..start + 37].copy_from_slice(&prev_hash.0);
    out[start + 37..start + 69].copy_from_slice(&hash.0);
    Ok(hash)
}

/// hash = blake3(prev_hash ‖ format ‖ body)
pub fn chain_hash(prev_hash: &Hash, format: u8, body: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&prev_hash.0);
    hasher.update(&[format]);
    hasher.update(body);
    Hash(*hasher.finalize().as_bytes())
}

/// Length of the framed record at the start of `bytes`, checked against the buffer.
pub fn framed_len(bytes: &[u8]) -> Result<usize, CodecError> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(CodecError::Truncated {
            need: RECORD_HEADER_BYTES,
            have: bytes.len(),
        });
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let total = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(4))
        .ok_or(CodecError::TooLarge {
            bytes: usize::MAX,
            max: RECORD_BYTES_MAX,
        })?;
    if total > RECORD_BYTES_MAX {
        return Err(CodecError::TooLarge {
            bytes: total,
            max: RECORD_BYTES_MAX,
        });
    }
    if total < RECORD_HEADER_BYTES {
        return Err(CodecError::Truncated {
            need: RECORD_HEADER_BYTES,
            have: total,
        });
    }
    if bytes.len() < total {
        return Err(CodecError::Truncated {
            need: total,
            have: bytes.len(),
        });
    }
    Ok(total)
}

/// Decodes the framed record at the start of `bytes`; returns it and the bytes it used.
/// The record's own hash is checked (a pair assertion with [`encode_record`]); whether its
/// `prev_hash` continues the chain is the caller's to check.
pub fn decode_record(bytes: &[u8]) -> Result<(RecordedEvent, usize), CodecError> {
    decode_framed(bytes, true)
}

/// Decodes a record whose hash does not match (salvage's report of a damaged record: what it
/// seems to say, never an event to keep). The framing and body must still decode.
pub fn decode_record_unchecked(bytes: &[u8]) -> Result<(RecordedEvent, usize), CodecError> {
    decode_framed(bytes, false)
}

fn decode_framed(bytes: &[u8], checked: bool) -> Result<(RecordedEvent, usize), CodecError> {
    let total = framed_len(bytes)?;
    let format = bytes[4];
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&bytes[5..37]);
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[37..69]);
    let (prev_hash, hash) = (Hash(prev), Hash(stored));
    let body = &bytes[RECORD_HEADER_BYTES..total];
    if checked && chain_hash(&prev_hash, format, body) != hash {
        return Err(CodecError::HashMismatch);
    }
    if !matches!(format, RECORD_FORMAT_V1 | RECORD_FORMAT_V2) {
        return Err(CodecError::UnknownFormat(format));
    }
    let b = decode_body(body, format)?;
    let event = RecordedEvent {
        position: b.position,
        ticket: TicketId::try_from(b.ticket).map_err(|_| CodecError::BadTicket)?,
        version: b.version,
        id: b.id,
        recorded_at: Timestamp(b.recorded_at_ms),
        actor: b.actor,
        token_id: b.token_id,
        data: b.data,
        prev_hash,
        hash,
    };
    Ok((event, total))
}

fn decode_body(body: &[u8], format: u8) -> Result<Body, CodecError> {
    let (b, used): (Body, usize) = bincode::decode_from_slice_with_context(body, config(), format)
        .map_err(|e| CodecError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes);
    }
    Ok(b)
}

/// Encoded size of an event's data alone, to check the per-event limit before framing.
pub fn data_len(data: &EventData) -> Result<usize, CodecError> {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(data, &mut counter, config())
        .map_err(|e| CodecError::Body(e.to_string()))?;
    Ok(counter.bytes_written)
}
