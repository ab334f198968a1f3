//! The stored and JSON forms of events: identity, limits, corruption, and old-record fixtures.

mod common;

use common::*;
use events::codec::{decode_record, encode_record, CodecError, RecordHead};
use events::*;
use proptest::prelude::*;

fn encode(position: u64, prev: &Hash, data: &EventData, actor: &Actor) -> (Vec<u8>, Hash) {
    let t = ticket("MC-4030");
    let head = RecordHead {
        position,
        ticket: &t,
        version: position,
        id: &format!("ev-{position}"),
        recorded_at: Timestamp(1_790_000_000_000 + position),
        actor,
        token_id: None,
    };
    let mut out = Vec::new();
    let hash = encode_record(&mut out, prev, &head, data).expect("encodes");
    (out, hash)
}

proptest! {
    #[test]
    fn encode_decode_is_identity(data in event_data(), actor in actor_strategy(), position in 1u64..1_000_000_000_000) {
        let (bytes, hash) = encode(position, &Hash::ZERO, &data, &actor);
        let (event, used) = decode_record(&bytes).expect("decodes");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(event.hash, hash);
        prop_assert_eq!(&event.data, &data);
        prop_assert_eq!(&event.actor, &actor);
        prop_assert_eq!(event.position, position);
        // The JSON form round-trips too.
        let json = serde_json::to_string(&event).unwrap();
        let back: RecordedEvent = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn any_flipped_byte_is_detected(data in event_data(), flip in any::<prop::sample::Index>()) {
        let (mut bytes, _) = encode(7, &Hash::ZERO, &data, &actor());
        let i = flip.index(bytes.len());
        bytes[i] ^= 0x5a;
        // Never a panic; either refused, or (a flipped length byte) framed differently and refused.
        prop_assert!(decode_record(&bytes).is_err());
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_record(&bytes);
    }
}

#[test]
fn json_form_matches_the_spec_envelope() {
    let (bytes, _) = encode(
        42,
        &Hash::ZERO,
        &EventData::RuntimeReaped(RuntimeReaped {
            runtime_id: "rt_1".into(),
            cause: ReapCause::TmuxMissing,
            evidence: None,
        }),
        &Actor {
            name: "watcher".into(),
            kind: ActorKind::System,
        },
    );
    let (event, _) = decode_record(&bytes).unwrap();
    let json = serde_json::to_value(&event).unwrap();
    let keys = json.as_object().unwrap();
    for key in [
        "position",
        "ticket",
        "version",
        "id",
        "type",
        "recorded_at",
        "actor",
        "data",
        "prev_hash",
        "hash",
    ] {
        assert!(keys.contains_key(key), "missing {key} in {json}");
    }
    assert_eq!(json["type"], "runtime.reaped");
    assert_eq!(json["data"]["cause"], "tmux_missing");
    assert_eq!(
        json["actor"],
        serde_json::json!({"name": "watcher", "kind": "system"})
    );
    assert_eq!(json["recorded_at"], "2026-09-21T14:13:20.042Z");
    assert_eq!(json["prev_hash"].as_str().unwrap().len(), 64);
}

#[test]
fn oversized_and_unknown_format_are_errors_not_panics() {
    let (mut bytes, _) = encode(1, &Hash::ZERO, &one_of_each()[0], &actor());
    bytes[4] = 99;
    // The hash covers the format byte, so a changed format is first a hash mismatch.
    assert_eq!(decode_record(&bytes).unwrap_err(), CodecError::HashMismatch);
    let mut huge = vec![0u8; 80];
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_record(&huge),
        Err(CodecError::TooLarge { .. })
    ));
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/records_v1.bin");
const FIXTURE_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/records_v1.jsonl"
);

/// Records written by format 1, one of each event type, checked in. They must decode forever:
/// a change to the payload types that breaks them needs an upcaster (see `codec.rs`).
/// `UPDATE_FIXTURES=1` rewrites them — only ever for a new format version's file.
#[test]
fn fixtures_still_decode() {
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let mut bytes = Vec::new();
        let mut json = String::new();
        let mut prev = Hash::ZERO;
        for (i, data) in one_of_each().iter().enumerate() {
            let position = u64::try_from(i).unwrap() + 1;
            let (record, hash) = encode(position, &prev, data, &actor());
            prev = hash;
            bytes.extend_from_slice(&record);
            let (event, _) = decode_record(&record).unwrap();
            json.push_str(&serde_json::to_string(&event).unwrap());
            json.push('\n');
        }
        std::fs::write(FIXTURE, bytes).unwrap();
        std::fs::write(FIXTURE_JSON, json).unwrap();
    }
    let bytes = std::fs::read(FIXTURE).expect("fixture exists");
    let expected = std::fs::read_to_string(FIXTURE_JSON).expect("fixture json exists");
    let mut offset = 0;
    let mut prev = Hash::ZERO;
    let mut decoded = Vec::new();
    while offset < bytes.len() {
        let (event, used) = decode_record(&bytes[offset..]).expect("old record decodes");
        assert_eq!(event.prev_hash, prev, "chain of fixture records");
        // Written again (as `copy` and `import` do), an old record comes out byte for byte.
        let head = RecordHead {
            position: event.position,
            ticket: &event.ticket,
            version: event.version,
            id: &event.id,
            recorded_at: event.recorded_at,
            actor: &event.actor,
            token_id: event.token_id.as_deref(),
        };
        let mut again = Vec::new();
        encode_record(&mut again, &event.prev_hash, &head, &event.data).unwrap();
        assert_eq!(
            again,
            &bytes[offset..offset + used],
            "re-encoded identically"
        );
        prev = event.hash;
        offset += used;
        decoded.push(event);
    }
    assert_eq!(
        decoded.len(),
        events::EVENT_TYPES_WAVE_1,
        "one record of every event type format 1's fixtures were written with"
    );
    for (event, line) in decoded.iter().zip(expected.lines()) {
        let want: RecordedEvent = serde_json::from_str(line).unwrap();
        assert_eq!(event, &want);
    }
    let names: Vec<&str> = decoded.iter().map(|e| e.type_name()).collect();
    assert_eq!(names, EVENT_TYPES[..events::EVENT_TYPES_WAVE_1].to_vec());
}

proptest! {
    /// Format 2 carries the writer's token id; an event without one is still written as
    /// format 1, byte for byte what format 1 wrote (so `copy` and `import` keep old hashes).
    #[test]
    fn a_token_id_is_kept_and_only_it_needs_format_2(data in event_data(), token in proptest::option::of("tok_[0-9a-f]{16}")) {
        let t = ticket("MC-4030");
        let head = RecordHead {
            position: 7,
            ticket: &t,
            version: 3,
            id: "ev-7",
            recorded_at: Timestamp(1_790_000_000_007),
            actor: &actor(),
            token_id: token.as_deref(),
        };
        let mut out = Vec::new();
        let hash = encode_record(&mut out, &Hash::ZERO, &head, &data).expect("encodes");
        prop_assert_eq!(out[4], if token.is_some() { 2 } else { 1 });
        let (event, used) = decode_record(&out).expect("decodes");
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(event.hash, hash);
        prop_assert_eq!(event.token_id, token);
        prop_assert_eq!(&event.data, &data);
    }
}
